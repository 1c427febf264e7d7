"""Reference du-framework plugin: ridge regression, DU-GD and classical GD.

Registered through the entry point ``du-gd-ridge`` in the group ``du_framework``,
exactly as a third-party plugin would be.
"""

from .problem import RidgeProblem
from .solvers import DUGD, ConstantStepGD

__all__ = ["RidgeProblem", "DUGD", "ConstantStepGD"]
