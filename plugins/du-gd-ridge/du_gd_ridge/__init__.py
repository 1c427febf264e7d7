"""Reference du-framework plugin: ridge regression, DU-GD, classical GD and the reference experiment.

Registered through the entry point ``du-gd-ridge`` in the group ``du_framework``,
exactly as a third-party plugin would be. The reference experiment (the
default of ``unfold compare``) is the package data file ``reference.toml``.
"""

__version__ = "0.1.0"

from .plugin import reference_config
from .problem import RidgeProblem
from .solvers import DUGD, ConstantStepGD

__all__ = ["RidgeProblem", "DUGD", "ConstantStepGD", "reference_config"]
