"""du-framework: deep unfolding as a plug-in discipline on JAX.

Problems, unfolded solvers (Flax NNX modules), training schedules and
experiments are registered through pluggy hooks from any installed package; one
engine trains any solver on any problem under any schedule, compiled once.
"""

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
from .metrics import MSE, NMSE_DB, Metric
from .options import NoOptions, option
from .params import Constraint, Interval, NonNegative, Positive, Reciprocal, Unconstrained, learned, per_iteration


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
    "learned",
    "per_iteration",
    "Constraint",
    "Unconstrained",
    "Positive",
    "NonNegative",
    "Interval",
    "Reciprocal",
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
