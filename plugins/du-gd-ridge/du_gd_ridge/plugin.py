"""Hook implementations of the ``du-gd-ridge`` plugin."""

from du_framework import hookimpl

from .problem import RidgeProblem
from .solvers import DUGD, ConstantStepGD


@hookimpl
def register_problems(register):
    register(RidgeProblem)


@hookimpl
def register_solvers(register):
    register(DUGD)
    register(ConstantStepGD)
