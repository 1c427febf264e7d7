"""Hook implementations of the ``du-gd-ridge`` plugin."""

from importlib.resources import files

from du_framework import Experiment, hookimpl

from .problem import RidgeProblem
from .solvers import DUGD, ConstantStepGD


def reference_config() -> str:
    """The reference experiment as TOML text (the package data file ``reference.toml``)."""
    return files(__package__).joinpath("reference.toml").read_text(encoding="utf-8")


@hookimpl
def register_problems(register):
    register(RidgeProblem)


@hookimpl
def register_solvers(register):
    register(DUGD)
    register(ConstantStepGD)


@hookimpl
def register_experiments(register):
    register(Experiment(
        "reference", reference_config(),
        "the reference experiment: DU-GD (T=4) and DU-GD with learned lambda against GD, Chebyshev steps, "
        "heavy ball and CG on ridge regression (n=50, m=100, lambda=3)",
        default=True))
    register(Experiment(
        "ridge-theory", files(__package__).joinpath("examples", "ridge_theory.toml").read_text(encoding="utf-8"),
        "ridge regression (n=50, m=100, lambda=3): DU-GD and DU heavy ball against GD, Chebyshev steps, heavy "
        "ball and CG (DU heavy ball needs the du-momentum plugin)"))
