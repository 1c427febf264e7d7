"""Learned parameters and their policy, declared once on the parameter.

A solver's learned constant is a :class:`Learned` variable (an ``nnx.Param``)
made with :func:`learned`::

    self.eta = learned(np.full(period, 0.01), constraint=Positive(), lr="lr",
                       doc="step size eta_t")

It carries its whole policy as metadata:

* ``constraint``: how the stored (raw, unconstrained) array maps to the value
  the iteration uses. The optimiser only ever sees the raw array, so a
  constraint is a reparametrisation, never a clip. Shipped: :class:`Unconstrained`,
  :class:`Positive` (``exp``), :class:`NonNegative` (``|raw|``),
  :class:`Interval` (a scaled sigmoid) and :class:`Reciprocal` (``scale / raw``,
  for step sizes whose reciprocals are the natural unknowns).
* the initial value, given in the parameter's own (interpreted) units and
  converted to raw by the constraint;
* ``lr``: the learning-rate group: the name of the solver option that holds the
  rate of this parameter (``"lr"``, ``"lambda_lr"``, ...). A solver whose
  options lack it is refused with a message, never given a silent default.
* the reported form: results, plots and checkpoints name the parameter by its
  attribute name and report the constrained value (one name per parameter).

Every learned array is stacked over iterations along its leading axis:
iteration ``k`` uses slot ``k mod P`` (``P`` the axis' length).
:func:`per_iteration` reads slot ``k`` of a parameter in its constrained form.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "Constraint",
    "Unconstrained",
    "Positive",
    "NonNegative",
    "Interval",
    "Reciprocal",
    "Learned",
    "learned",
    "per_iteration",
    "constrained",
    "learned_variables",
    "learning_rates",
]


def _numpy_of(raw: Any):
    """numpy for a host array (reports compile nothing), jax.numpy otherwise."""
    return np if isinstance(raw, np.ndarray) else jnp


class Constraint:
    """Maps a raw (unconstrained) array to the value the iteration uses, and back.

    Subclasses are frozen dataclasses (hashable: they are static metadata of
    the compiled program) and implement :meth:`apply` (elementwise; traceable on
    jax arrays, and plain numpy on numpy arrays, for reports) and :meth:`invert`
    (host numpy, for initial values).
    """

    def apply(self, raw: jax.Array) -> jax.Array:
        """The constrained value of ``raw`` (traceable on a jax array; numpy on a numpy array)."""
        raise NotImplementedError

    def invert(self, value: np.ndarray) -> np.ndarray:
        """A raw array whose constrained value is ``value`` (host numpy).

        Raises:
            ValueError: ``value`` is outside the constraint's range.
        """
        raise NotImplementedError

    def describe(self) -> str:
        """A short human-readable form, e.g. ``"> 0"``."""
        return type(self).__name__


@dataclasses.dataclass(frozen=True)
class Unconstrained(Constraint):
    """Any real value; stored as is."""

    def apply(self, raw):
        return raw

    def invert(self, value):
        return np.asarray(value, np.float64)

    def describe(self):
        return "any real"


@dataclasses.dataclass(frozen=True)
class Positive(Constraint):
    """Strictly positive: ``value = exp(raw)`` (an optimiser step is a relative change)."""

    def apply(self, raw):
        return _numpy_of(raw).exp(raw)

    def invert(self, value):
        value = np.asarray(value, np.float64)
        if not np.all(value > 0):
            raise ValueError(f"a Positive parameter needs initial values > 0, got {value}")
        return np.log(value)

    def describe(self):
        return "> 0 (exp)"


@dataclasses.dataclass(frozen=True)
class NonNegative(Constraint):
    """Non-negative: ``value = |raw|`` (the book's choice for a learned lambda_t)."""

    def apply(self, raw):
        return _numpy_of(raw).abs(raw)

    def invert(self, value):
        value = np.asarray(value, np.float64)
        if not np.all(value >= 0):
            raise ValueError(f"a NonNegative parameter needs initial values >= 0, got {value}")
        return value

    def describe(self):
        return ">= 0 (abs)"


@dataclasses.dataclass(frozen=True)
class Interval(Constraint):
    """Inside ``(low, high)``: ``value = low + (high - low) sigmoid(raw)``."""

    low: float
    high: float

    def __post_init__(self):
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"Interval needs finite low < high, got ({self.low}, {self.high})")

    def apply(self, raw):
        share = 1 / (1 + np.exp(-raw)) if isinstance(raw, np.ndarray) else jax.nn.sigmoid(raw)
        return self.low + (self.high - self.low) * share

    def invert(self, value):
        value = np.asarray(value, np.float64)
        if not np.all((value > self.low) & (value < self.high)):
            raise ValueError(f"an Interval({self.low}, {self.high}) parameter needs initial values strictly "
                             f"inside the interval, got {value}")
        share = (value - self.low) / (self.high - self.low)
        return np.log(share) - np.log1p(-share)

    def describe(self):
        return f"in ({self.low:g}, {self.high:g}) (sigmoid)"


@dataclasses.dataclass(frozen=True)
class Reciprocal(Constraint):
    """``value = scale / raw``: the optimiser moves the reciprocal ``raw = scale / value``.

    For step sizes whose reciprocals are the roots of a residual polynomial
    (gradient descent, relaxation factors): one optimiser step moves each root
    by a similar share of the spectrum. ``scale`` sets the raw array's units
    (for example the best constant step, so that raw values are near 1).
    """

    scale: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"Reciprocal needs a finite scale > 0, got {self.scale}")

    def apply(self, raw):
        return self.scale / raw

    def invert(self, value):
        value = np.asarray(value, np.float64)
        if not np.all(value != 0):
            raise ValueError(f"a Reciprocal parameter needs nonzero initial values, got {value}")
        return self.scale / value

    def describe(self):
        return f"scale / raw (scale {self.scale:.4g})"


class Learned(nnx.Param):
    """An ``nnx.Param`` holding a raw array and its policy as metadata.

    Metadata: ``constraint`` (a :class:`Constraint`), ``lr`` (the name of the
    solver option holding this parameter's learning rate), ``doc`` (one line
    for reports) and ``report`` (whether results and plots show it). Make one
    with :func:`learned`.
    """


def learned(initial: Any, *, constraint: Constraint | None = None, lr: str = "lr", doc: str = "",
            report: bool = True, dtype: Any = jnp.float32) -> Learned:
    """A learned parameter initialised at ``initial`` (in constrained units).

    Args:
        initial: the initial values, an array whose leading axis is the
            parameter's slots (iteration ``k`` uses slot ``k mod P``).
        constraint: the reparametrisation (default :class:`Unconstrained`).
        lr: the solver option that holds this parameter's learning rate.
        doc: one line describing the parameter.
        report: include it in results and plots (``False`` for large learned
            matrices; checkpoints always hold every parameter).
        dtype: the dtype of the stored array.

    Raises:
        ValueError: ``initial`` is empty, not finite, or outside the constraint.
    """
    constraint = constraint if constraint is not None else Unconstrained()
    if not isinstance(constraint, Constraint):
        raise TypeError(f"constraint must be a du_framework.params.Constraint, got {constraint!r}")
    if not isinstance(lr, str) or not lr:
        raise TypeError(f"lr must name the solver option holding the learning rate, got {lr!r}")
    value = np.asarray(initial, np.float64)
    if value.ndim == 0:
        value = value[None]
    if value.size == 0 or not np.all(np.isfinite(value)):
        raise ValueError(f"a learned parameter needs finite initial values, got {value}")
    raw = constraint.invert(value)
    # device_put, not jnp.asarray: a transfer, not an eager operation to compile
    return Learned(jax.device_put(np.asarray(raw).astype(dtype)), constraint=constraint, lr=lr, doc=doc, report=report)


def _constraint_of(param: Any) -> Constraint:
    constraint = getattr(param, "constraint", None) if isinstance(param, nnx.Variable) else None
    return constraint if constraint is not None else Unconstrained()


def constrained(param: Any) -> np.ndarray:
    """The whole parameter in its constrained (interpreted) form, on the host in float64 (for reports)."""
    raw = np.asarray(param[...] if isinstance(param, nnx.Variable) else param, np.float64)
    return np.asarray(_constraint_of(param).apply(raw), np.float64)


# Set by the engine while it traces one iteration: ``(k, {id(variable): slot k of variable})``.
_ITERATION_SLICES: contextvars.ContextVar[tuple[Any, dict[int, jax.Array]] | None] = contextvars.ContextVar(
    "du_iteration_slices", default=None)


@contextlib.contextmanager
def iteration_slices(k: jax.Array, slices: dict[int, jax.Array]) -> Iterator[None]:
    """While tracing iteration ``k``: :func:`per_iteration` of a variable whose ``id`` is in ``slices``, called
    with this very ``k``, returns the slice given here instead of indexing the whole parameter.

    The engine hands each iteration of its scan its slot of every per-iteration parameter as a scan input:
    in the backward pass the gradient of iteration ``k``'s slot is then stacked as the scan's output,
    where indexing the whole parameter inside the scan would add a dense gradient of the whole parameter
    (every slot, zeros but one) once per iteration. Values are the same either way.
    """
    token = _ITERATION_SLICES.set((k, slices))
    try:
        yield
    finally:
        _ITERATION_SLICES.reset(token)


def per_iteration(param: Any, k: jax.Array) -> jax.Array:
    """The value of ``param`` used by iteration ``k`` (slot ``k mod P``), constrained.

    ``param`` may be a :class:`Learned` variable (its constraint is applied), a
    plain ``nnx.Param`` or a plain array.
    """
    given = _ITERATION_SLICES.get()
    if given is not None and given[0] is k and id(param) in given[1]:
        return _constraint_of(param).apply(given[1][id(param)])
    raw = param[...] if isinstance(param, nnx.Variable) else param
    return _constraint_of(param).apply(raw[k % raw.shape[0]])


def learned_variables(module: nnx.Module) -> dict[str, nnx.Param]:
    """A module's ``nnx.Param`` variables (``Learned`` or plain) keyed by dotted attribute path."""
    state = nnx.state(module, nnx.Param)
    out = {}
    for path, variable in nnx.to_flat_state(state):
        out[".".join(str(part) for part in path)] = variable
    return out


def learning_rates(solver: Any) -> dict[str, float]:
    """The learning rate of every learned parameter of ``solver``, by dotted name.

    Each parameter names the solver option holding its rate (``lr`` metadata,
    set by :func:`learned` and by :class:`~du_framework.networks.Network` on its
    weights; a plain ``nnx.Param`` uses ``"lr"``).

    Raises:
        ConfigError: the solver's options lack the named rate, or it is not a
            finite number >= 0.
    """
    from .errors import ConfigError

    rates = {}
    for name, variable in learned_variables(solver).items():
        group = getattr(variable, "lr", "lr")  # a Learned's or a Network weight's metadata; "lr" for a plain Param
        rate = getattr(solver.options, group, None)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not np.isfinite(rate) or rate < 0:
            what = "has no option" if rate is None else f"has {group} = {rate!r} for"
            raise ConfigError(
                f"solver {type(solver).name!r} {what} {group!r}, the learning rate of its learned parameter "
                f"{name!r}; declare `{group}: float = option(1e-3, gt=0, help=...)` in its Options (or name "
                f"an existing rate option with learned(..., lr=...))")
        rates[name] = float(rate)
    return rates
