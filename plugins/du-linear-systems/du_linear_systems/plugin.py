"""Hook implementations of the ``du-linear-systems`` plugin."""

from du_framework import hookimpl

from .problem import LinearSystem
from .solvers import DUPSOR, DUSOR, SOR, ChebyshevPSOR, GaussSeidelSOR, Jacobi


@hookimpl
def register_problems(register):
    register(LinearSystem)


@hookimpl
def register_solvers(register):
    for solver in (Jacobi, SOR, DUPSOR, ChebyshevPSOR, GaussSeidelSOR, DUSOR):
        register(solver)
