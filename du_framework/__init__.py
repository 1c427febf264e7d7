"""du-framework: deep unfolding as a plug-in discipline on JAX.

Problems, unfolded solvers (Flax NNX modules) and training schedules are
registered through pluggy hooks from any installed package; one engine trains
any solver on any problem under any schedule, compiled once.
"""

from .errors import (
    CheckpointError,
    ConfigError,
    DUError,
    DuplicateNameError,
    IncompatibleProblemError,
    PluginError,
    ProblemDataError,
    TrainingDivergedError,
    UnknownNameError,
)
from .hookspecs import hookimpl
from .interfaces import (
    Instance,
    Problem,
    QuadraticProblem,
    QuadraticSolver,
    RegularizedLeastSquares,
    Stage,
    TrainingSchedule,
    UnfoldedSolver,
    per_iteration,
)
from .options import NoOptions

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "hookimpl",
    "Instance",
    "Problem",
    "QuadraticProblem",
    "RegularizedLeastSquares",
    "UnfoldedSolver",
    "QuadraticSolver",
    "TrainingSchedule",
    "Stage",
    "per_iteration",
    "NoOptions",
    "DUError",
    "ConfigError",
    "UnknownNameError",
    "IncompatibleProblemError",
    "PluginError",
    "DuplicateNameError",
    "ProblemDataError",
    "CheckpointError",
    "TrainingDivergedError",
]
