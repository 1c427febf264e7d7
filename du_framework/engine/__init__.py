"""The training engine: any solver, any problem, any schedule, compiled once.

One concern per module:

* :mod:`.settings`: the ``[train]`` and ``[evaluation]`` tables as one object each;
* :mod:`.unroll`: the unrolled iteration (fixed-length scan, traced active depth, remat);
* :mod:`.transforms`: optax transformations (frozen slots, non-finite guard) and the optimiser;
* :mod:`.program`: the compiled chunk of optimiser steps, kept by JAX's jit cache;
* :mod:`.loop`: the host loop (stages, chunks, divergence); a single run is an ensemble of one;
* :mod:`.evaluation`: every metric at every iteration, compiled once per structure;
* :mod:`.progress`, :mod:`.cache`: the progress bar and the persistent compile cache;
* :mod:`.distributed`: one run trained by several processes or machines (``jax.distributed``).
"""

from . import distributed
from .cache import enable_compile_cache
from .evaluation import evaluate
from .loop import TrainResult, expand_schedule, program_memory, train, train_ensemble
from .program import clear_program_cache
from .settings import EvaluationSettings, TrainSettings
from .transforms import build_optimizer, freeze_slots, skip_nonfinite
from .unroll import remat_levels, split_solver, unroll

__all__ = [
    "TrainSettings",
    "EvaluationSettings",
    "TrainResult",
    "train",
    "train_ensemble",
    "evaluate",
    "unroll",
    "remat_levels",
    "split_solver",
    "build_optimizer",
    "freeze_slots",
    "skip_nonfinite",
    "expand_schedule",
    "program_memory",
    "clear_program_cache",
    "enable_compile_cache",
    "distributed",
]
