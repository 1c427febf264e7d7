"""Hook implementations of the ``du-linear-systems`` plugin."""

from importlib.resources import files

from du_framework import Experiment, hookimpl

from .problem import LinearSystem
from .solvers import DUPSOR, DUSOR, SOR, ChebyshevPSOR, GaussSeidelSOR, Jacobi


@hookimpl
def register_problems(register):
    register(LinearSystem)


@hookimpl
def register_solvers(register):
    for solver in (Jacobi, SOR, DUPSOR, ChebyshevPSOR, GaussSeidelSOR, DUSOR):
        register(solver)


@hookimpl
def register_experiments(register):
    register(Experiment(
        "linear-system", files(__package__).joinpath("examples", "linear_system.toml").read_text(encoding="utf-8"),
        "SPD linear system (n=64, kappa=50): Jacobi, SOR, Chebyshev-PSOR, DU-PSOR, Gauss-Seidel SOR, DU-SOR "
        "and CG (CG needs the du-theory plugin)"))
