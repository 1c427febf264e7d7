"""Hook implementations of the ``du-detection`` plugin."""

from importlib.resources import files

from du_framework import Experiment, hookimpl

from .problem import MIMODetection
from .solvers import LMMSE, OAMP, TPG, MaximumLikelihood, OAMPNet, ProjectedGradient, ZeroForcing


@hookimpl
def register_problems(register):
    register(MIMODetection)


@hookimpl
def register_solvers(register):
    for solver in (ZeroForcing, LMMSE, MaximumLikelihood, ProjectedGradient, TPG, OAMP, OAMPNet):
        register(solver)


def _example(name: str) -> str:
    return files(__package__).joinpath("examples", name).read_text(encoding="utf-8")


@hookimpl
def register_experiments(register):
    register(Experiment("mimo", _example("mimo.toml"),
                        "16x16 QPSK MIMO detection, trained over SNR 10-20 dB and swept: ZF, LMMSE, PG, TPG, "
                        "OAMP, OAMP-Net"))
    register(Experiment("mimo-overloaded", _example("mimo_overloaded.toml"),
                        "overloaded 12x8 QPSK MIMO detection, trained over SNR 15-25 dB and swept: LMMSE, PG "
                        "(default and tuned), TPG, OAMP, OAMP-Net"))
