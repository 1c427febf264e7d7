"""Hook implementations of the ``du-sparse`` plugin."""

from importlib.resources import files

from du_framework import Experiment, hookimpl

from .admm import ADMM, DUADMM
from .alista import ALISTA, LISTACP
from .amp import AMP, LAMP
from .problem import SparseRecovery
from .solvers import DUISTA, FISTA, ISTA, LISTA, TISTA


@hookimpl
def register_problems(register):
    register(SparseRecovery)


@hookimpl
def register_solvers(register):
    for solver in (ISTA, FISTA, DUISTA, TISTA, LISTA):
        register(solver)
    for solver in (AMP, LAMP, ADMM, DUADMM, LISTACP, ALISTA):
        register(solver)


@hookimpl
def register_experiments(register):
    register(Experiment(
        "sparse-recovery", files(__package__).joinpath("examples", "sparse_recovery.toml").read_text(encoding="utf-8"),
        "sparse recovery (n=500, m=250, p=0.1, SNR 40 dB): ISTA, FISTA, DU-ISTA, TISTA, tied/untied LISTA, "
        "LISTA-CPSS, ALISTA, AMP, ADMM, DU-ADMM and tied LAMP"))
