"""du-framework: deep unfolding as a plug-in discipline on JAX.

Problems, unfolded solvers (Flax NNX modules), training schedules and
experiments are registered through pluggy hooks from any installed package; one
engine trains any solver on any problem under any schedule, compiled once.
"""

import importlib
from typing import TYPE_CHECKING

from .version import __version__

if TYPE_CHECKING:  # what static tools (type checkers, the API docs) read; at run time names load on first use
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
    from .networks import Network
    from .params import (Constraint, Interval, NonNegative, Positive, Reciprocal, Unconstrained, learned, learning_rates,
                         per_iteration)
    from .schedules import Incremental, IncrementalFrozen, IncrementalRestart
    from .theory import best_constant_step, chebyshev_period_factor, chebyshev_steps, gd_contraction, polyak_parameters

# Every public name and the kernel module that defines it. They load on first use (PEP 562), so that
# ``import du_framework`` (which the command line does first) imports no JAX: ``unfold --help`` starts fast.
_EXPORTS = {
    "LinearObservation": "capabilities",
    "QuadraticProblem": "capabilities",
    "RegularizedLeastSquares": "capabilities",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "DUError": "errors",
    "DuplicateNameError": "errors",
    "IncompatibleProblemError": "errors",
    "PluginError": "errors",
    "ProblemDataError": "errors",
    "SolverContractError": "errors",
    "TrainingDivergedError": "errors",
    "UnknownNameError": "errors",
    "hookimpl": "hookspecs",
    "Experiment": "interfaces",
    "Instance": "interfaces",
    "Problem": "interfaces",
    "QuadraticContext": "interfaces",
    "QuadraticSolver": "interfaces",
    "Stage": "interfaces",
    "TrainingSchedule": "interfaces",
    "UnfoldedSolver": "interfaces",
    "load_matrix": "matrix",
    "max_entry": "matrix",
    "MSE": "metrics",
    "NMSE_DB": "metrics",
    "Metric": "metrics",
    "RunEnd": "observing",
    "RunObserver": "observing",
    "RunStart": "observing",
    "SolverEnd": "observing",
    "StageEnd": "observing",
    "NoOptions": "options",
    "Tunable": "options",
    "option": "options",
    "parse_options": "options",
    "Constraint": "params",
    "Interval": "params",
    "NonNegative": "params",
    "Positive": "params",
    "Reciprocal": "params",
    "Unconstrained": "params",
    "learned": "params",
    "Network": "networks",
    "learning_rates": "params",
    "per_iteration": "params",
    "Incremental": "schedules",
    "IncrementalFrozen": "schedules",
    "IncrementalRestart": "schedules",
    "best_constant_step": "theory",
    "chebyshev_period_factor": "theory",
    "chebyshev_steps": "theory",
    "gd_contraction": "theory",
    "polyak_parameters": "theory",
}

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
    "Network",
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


def __getattr__(name: str):
    """A public name, or a submodule, imported on first use."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
