"""Hook implementations of the ``du-theory`` plugin."""

from du_framework import hookimpl

from .solvers import ChebyshevGD, ConjugateGradient, HeavyBall


@hookimpl
def register_solvers(register):
    for solver in (ChebyshevGD, ConjugateGradient, HeavyBall):
        register(solver)
