"""Exceptions raised to users of du-framework.

Every error names what was wrong and what would be right. All derive from
:class:`DUError`, so a caller can catch the whole family at once; the CLI prints
the message of a :class:`DUError` without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
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
    "nearest",
]


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``word`` (difflib ratio >= 0.5), or None."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


class DUError(Exception):
    """Base class of every error du-framework raises on purpose."""


class ConfigError(DUError, ValueError):
    """A configuration value or key is invalid."""


class UnknownNameError(DUError, KeyError):
    """A problem, solver or schedule name is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        hint = nearest(name, self.known)
        message = f"unknown {kind} {name!r}; known {kind}s: {', '.join(self.known) or '(none)'}"
        if hint:
            message += f" (did you mean {hint!r}?)"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class IncompatibleProblemError(DUError, TypeError):
    """A solver was paired with a problem lacking the capability it requires."""


class PluginError(DUError):
    """A plugin could not be loaded or registered something invalid."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for the same kind."""


class SolverContractError(PluginError):
    """A solver broke the contract at run time (for example ``step`` changed the state's shape)."""


class ProblemDataError(DUError, ValueError):
    """User-supplied problem data (for example an operator matrix) is invalid."""


class CheckpointError(DUError):
    """A checkpoint is missing, corrupt, or belongs to another configuration."""


class TrainingDivergedError(DUError, FloatingPointError):
    """Training produced a non-finite loss or parameter.

    Attributes:
        stage: 1-based index of the stage in which it happened.
        step: 1-based optimiser step within that stage.
        solver: the solver holding the last good (finite) parameters.
        history: the losses recorded before the failure.
    """

    def __init__(self, message: str, *, stage: int, step: int, solver=None, history=None):
        super().__init__(message)
        self.stage, self.step, self.solver, self.history = stage, step, solver, history
