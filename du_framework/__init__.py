"""du-framework: deep unfolding as a plug-in discipline on JAX.

Problems, unfolded solvers (Flax NNX modules), training schedules and
experiments are registered through pluggy hooks from any installed package; one
engine trains any solver on any problem under any schedule, compiled once.
"""

from . import interrupts

interrupts.defer_while_importing()  # in the unfold process, a Ctrl-C while JAX is imported waits for the CLI

from .version import __version__
from .capabilities import LinearObservation, QuadraticProblem, RegularizedLeastSquares
from .errors import (
    CheckpointError,
    ConfigError,
    DUError,
    DuplicateNameError,
    IncompatibleProblemError,
    PluginError,
    ProblemDataError,
    SolverContractError,
    TrainingDivergedError,
    UnknownNameError,
)
from .hookspecs import hookimpl
from .interfaces import (
    Experiment,
    Instance,
    Problem,
    QuadraticContext,
    QuadraticSolver,
    Stage,
    TrainingSchedule,
    UnfoldedSolver,
)
from .matrix import load_matrix, max_entry
from .metrics import MSE, NMSE_DB, Metric
from .observing import RunEnd, RunObserver, RunStart, SolverEnd, StageEnd
from .options import NoOptions, Tunable, option, parse_options
from .params import (Constraint, Interval, NonNegative, Positive, Reciprocal, Unconstrained, learned, learning_rates,
                     per_iteration)
from .schedules import Incremental, IncrementalFrozen, IncrementalRestart
from .theory import best_constant_step, chebyshev_period_factor, chebyshev_steps, gd_contraction, polyak_parameters


__all__ = [
    "__version__",
    "hookimpl",
    "Instance",
    "Problem",
    "QuadraticProblem",
    "RegularizedLeastSquares",
    "LinearObservation",
    "UnfoldedSolver",
    "QuadraticSolver",
    "QuadraticContext",
    "TrainingSchedule",
    "Stage",
    "Experiment",
    "Metric",
    "MSE",
    "NMSE_DB",
    "option",
    "NoOptions",
    "Tunable",
    "parse_options",
    "learned",
    "per_iteration",
    "learning_rates",
    "Constraint",
    "Unconstrained",
    "Positive",
    "NonNegative",
    "Interval",
    "Reciprocal",
    "Incremental",
    "IncrementalRestart",
    "IncrementalFrozen",
    "RunObserver",
    "RunStart",
    "StageEnd",
    "SolverEnd",
    "RunEnd",
    "load_matrix",
    "max_entry",
    "chebyshev_steps",
    "chebyshev_period_factor",
    "best_constant_step",
    "gd_contraction",
    "polyak_parameters",
    "DUError",
    "ConfigError",
    "UnknownNameError",
    "IncompatibleProblemError",
    "PluginError",
    "DuplicateNameError",
    "SolverContractError",
    "ProblemDataError",
    "CheckpointError",
    "TrainingDivergedError",
]
