"""The training engine: any solver, any problem, any schedule, compiled once.

One concern per module:

* :mod:`.settings`: the ``[train]`` and ``[evaluation]`` tables as one object each;
* :mod:`.unroll`: the unrolled iteration (fixed-length scan, traced active depth, remat);
* :mod:`.transforms`: optax transformations (frozen slots, the divergence latch) and the optimiser;
* :mod:`.program`: the compiled chunk of optimiser steps, kept by JAX's jit cache;
* :mod:`.loop`: :func:`train` and :func:`train_ensemble`, set up; a single run is an ensemble of one;
* :mod:`.host`: the host loop (stages, chunks, progress events, the divergence latch read back);
* :mod:`.evaluation`: every metric at every iteration, compiled once per structure;
* :mod:`.progress`: the progress protocol, a composite of parts, and plain lines (no bar: the
  terminal bar is the workbench's, :mod:`du_framework.workbench.display`);
* :mod:`.cache`: the persistent compile cache;
* :mod:`.distributed`: one run trained by several processes or machines (``jax.distributed``).
"""

from . import distributed
from .cache import enable_compile_cache
from .evaluation import EVALUATION_CHUNK, Evaluation, evaluate, evaluate_counts
from .loop import TrainResult, expand_schedule, program_memory, train, train_ensemble
from .program import clear_program_cache
from .settings import EvaluationSettings, TrainSettings
from .progress import Progress, ProgressParts
from .transforms import build_optimizer, freeze_slots, latch_nonfinite, skip_nonfinite
from .unroll import remat_levels, split_solver, unroll

__all__ = [
    "TrainSettings",
    "EvaluationSettings",
    "TrainResult",
    "train",
    "train_ensemble",
    "evaluate",
    "evaluate_counts",
    "Evaluation",
    "EVALUATION_CHUNK",
    "unroll",
    "remat_levels",
    "split_solver",
    "build_optimizer",
    "freeze_slots",
    "skip_nonfinite",
    "latch_nonfinite",
    "Progress",
    "ProgressParts",
    "expand_schedule",
    "program_memory",
    "clear_program_cache",
    "enable_compile_cache",
    "distributed",
]
