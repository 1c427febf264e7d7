"""Hook implementations of the ``du-sparse`` plugin."""

from du_framework import hookimpl

from .problem import SparseRecovery
from .solvers import DUISTA, FISTA, ISTA, LISTA, TISTA


@hookimpl
def register_problems(register):
    register(SparseRecovery)


@hookimpl
def register_solvers(register):
    for solver in (ISTA, FISTA, DUISTA, TISTA, LISTA):
        register(solver)
