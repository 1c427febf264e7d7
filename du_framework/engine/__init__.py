"""The training engine (being split by concern; see the helpers' work)."""
from .._engine_old import *  # noqa: F401,F403
from .._engine_old import _masked  # noqa: F401
from .settings import EvaluationSettings, TrainSettings  # noqa: F401
