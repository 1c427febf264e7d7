"""Hook implementations of the ``du-decoding`` plugin."""

from importlib.resources import files

from du_framework import Experiment, hookimpl

from .problem import LDPCDecoding
from .solvers import BP, MinSum, NeuralBP, NeuralMinSum, NormalizedMinSum, OffsetMinSum


@hookimpl
def register_problems(register):
    register(LDPCDecoding)


@hookimpl
def register_solvers(register):
    for solver in (BP, MinSum, NormalizedMinSum, OffsetMinSum, NeuralBP, NeuralMinSum):
        register(solver)


@hookimpl
def register_experiments(register):
    register(Experiment(
        "ldpc", files(__package__).joinpath("examples", "ldpc.toml").read_text(encoding="utf-8"),
        "BCH (63,45) over BPSK/AWGN, trained over Eb/N0 2-6 dB and swept 2..6 dB: neural min-sum against "
        "normalized min-sum, min-sum and BP"))
