"""Message-passing decoders on a Tanner graph: one flooding iteration per unfolded step.

Every decoder keeps the variable-to-check messages ``v2c`` (``(batch, edges)``) and the
posterior LLRs ``x`` (``(batch, n)``, the estimate), starts from ``v2c = x = channel LLR``,
and in each iteration computes the check-to-variable messages ``c2v`` from ``v2c`` (the rule
is what distinguishes the decoders), then

    x_v = llr_v + sum_{e at v} c2v_e,        v2c_e = x_v - c2v_e.

Edges are gathered and reduced with ``jax.ops.segment_*`` over the problem's ``int32`` edge
arrays; nothing loops over edges in Python. No decoder stops early: all ``depth``
iterations run (a codeword found earlier is a fixed point of the min-sum decoders and, to
within clipping, of BP).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import NonNegative, Positive, Tunable, Unconstrained, UnfoldedSolver, learned, option, per_iteration

from .problem import TannerGraph

__all__ = ["Messages", "BP", "MinSum", "NormalizedMinSum", "OffsetMinSum", "NeuralBP", "NeuralMinSum",
           "sum_product_check", "min_sum_check"]

# A check whose other edges are all absent (a degree-1 check) sends this magnitude instead of infinity.
_LARGEST_MESSAGE = 1e4


class Messages(NamedTuple):
    """The decoder's state: variable-to-check messages ``(batch, edges)`` and posterior LLRs ``(batch, n)``."""

    v2c: jax.Array
    x: jax.Array


def _per_check(reduce, values: jax.Array, problem: TannerGraph) -> jax.Array:
    """``reduce`` (a ``jax.ops.segment_*``) of ``(batch, edges)`` values over each check, gathered back per edge."""
    return reduce(values.T, problem.check_of_edge, num_segments=problem.checks).T[:, problem.check_of_edge]


def _other_signs(v2c: jax.Array, problem: TannerGraph) -> jax.Array:
    """For each edge, the product of the signs of the other edges' messages of its check (+1 or -1)."""
    negative = (v2c < 0).astype(jnp.int32)
    parity = (_per_check(jax.ops.segment_sum, negative, problem) - negative) % 2
    return (1 - 2 * parity).astype(v2c.dtype)


def min_sum_check(v2c: jax.Array, problem: TannerGraph) -> tuple[jax.Array, jax.Array]:
    """``(sign, magnitude)`` of the min-sum check update: the sign product and the smallest
    ``|v2c|`` over the *other* edges of each edge's check (ties resolved by the lowest edge index)."""
    magnitude = jnp.abs(v2c)
    edges = v2c.shape[-1]
    first = _per_check(jax.ops.segment_min, magnitude, problem)
    edge_ids = jnp.broadcast_to(jnp.arange(edges, dtype=jnp.int32)[None, :], v2c.shape)
    argmin = _per_check(jax.ops.segment_min, jnp.where(magnitude == first, edge_ids, edges), problem)
    is_min = edge_ids == argmin
    second = _per_check(jax.ops.segment_min, jnp.where(is_min, jnp.inf, magnitude), problem)
    others = jnp.minimum(jnp.where(is_min, second, first), _LARGEST_MESSAGE)
    return _other_signs(v2c, problem), others


def sum_product_check(v2c: jax.Array, problem: TannerGraph, clip: float) -> jax.Array:
    """The sum-product (tanh rule) check update, ``2 atanh(prod_{e' != e} tanh(v2c_e' / 2))``, in the log domain.

    ``log tanh(a/2) = log(-expm1(-a)) - log1p(exp(-a))`` is summed per check and the edge's own
    term subtracted (no division by a zero ``tanh``); ``2 atanh(p) = log1p(p) - log(-expm1(log p))``
    stays accurate as ``p`` approaches 1. Incoming magnitudes are clipped to ``[1e-6, clip]``
    and outgoing ones to ``clip``, so the update and its gradient are finite at any SNR.
    """
    a = jnp.clip(jnp.abs(v2c), 1e-6, clip)
    log_tanh = jnp.log(-jnp.expm1(-a)) - jnp.log1p(jnp.exp(-a))
    others = jnp.minimum(_per_check(jax.ops.segment_sum, log_tanh, problem) - log_tanh, -2e-9)
    magnitude = jnp.log1p(jnp.exp(others)) - jnp.log(-jnp.expm1(others))
    return _other_signs(v2c, problem) * jnp.minimum(magnitude, clip)


class _MessagePassing(UnfoldedSolver):
    """Flooding message passing on the problem's Tanner graph; subclasses give :meth:`check_update`."""

    requires = TannerGraph

    def prepare(self, problem, instance):
        return problem.channel_llr(instance)

    def init_state(self, problem, llr):
        return Messages(llr[:, problem.variable_of_edge], llr)

    def step(self, problem, llr, state, k):
        c2v = self.check_update(problem, state.v2c, k)
        x = llr + jax.ops.segment_sum(c2v.T, problem.variable_of_edge, num_segments=problem.n).T
        return Messages(x[:, problem.variable_of_edge] - c2v, x)

    def check_update(self, problem: TannerGraph, v2c: jax.Array, k: jax.Array) -> jax.Array:
        """The check-to-variable messages ``(batch, edges)`` of iteration ``k`` from ``v2c``."""
        raise NotImplementedError


class BP(_MessagePassing):
    """Sum-product (belief propagation) in the log domain, tanh rule with clipped messages."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        clip: float = option(20.0, gt=0, le=80, help="largest message magnitude (LLR) in and out of a check")

    name = "bp"
    description = "sum-product (belief propagation) decoding, log domain, clipped messages"

    def check_update(self, problem, v2c, k):
        return sum_product_check(v2c, problem, self.options.clip)

    def constants(self):
        return {"clip": np.array([self.options.clip])}


class MinSum(_MessagePassing):
    """Min-sum: the sign product times the smallest other magnitude."""

    name = "min-sum"
    description = "min-sum decoding (sign product times the smallest other magnitude)"

    def check_update(self, problem, v2c, k):
        sign, magnitude = min_sum_check(v2c, problem)
        return sign * magnitude


class NormalizedMinSum(_MessagePassing):
    """Normalized min-sum: min-sum scaled by a constant ``alpha``."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        alpha: float = option(0.8, gt=0, le=1.5, tune=Tunable(0.2, 1.0), help="normalisation alpha of the check messages")

    name = "normalized-min-sum"
    description = "normalized min-sum: check messages scaled by a constant alpha"

    def check_update(self, problem, v2c, k):
        sign, magnitude = min_sum_check(v2c, problem)
        return self.options.alpha * sign * magnitude

    def constants(self):
        return {"alpha": np.array([self.options.alpha])}


class OffsetMinSum(_MessagePassing):
    """Offset min-sum: ``sign * max(min - beta, 0)`` with a constant ``beta``."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        beta: float = option(0.5, ge=0, le=10, tune=Tunable(0.0, 2.0), help="offset beta subtracted from the magnitudes")

    name = "offset-min-sum"
    description = "offset min-sum: check magnitudes reduced by a constant beta"

    def check_update(self, problem, v2c, k):
        sign, magnitude = min_sum_check(v2c, problem)
        return sign * jnp.maximum(magnitude - self.options.beta, 0.0)

    def constants(self):
        return {"beta": np.array([self.options.beta])}


class NeuralBP(_MessagePassing):
    """Neural BP: sum-product with a learned weight per edge and iteration on the check-to-variable messages.

    Attributes:
        weights: ``w_{t,e}``, shape ``(depth, edges)`` (``(1, edges)`` with ``tied``), initialised
            at 1 (plain BP); learning rate ``lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        tied: bool = option(False, help="one set of edge weights shared by every iteration")
        clip: float = option(20.0, gt=0, le=80, help="largest message magnitude (LLR) in and out of a check")
        lr: float = option(0.01, gt=0, help="learning rate of the edge weights")

    name = "neural-bp"
    description = "neural BP (Nachmani et al.): sum-product with a learned weight per edge and iteration"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        slots = 1 if options.tied else depth
        self.weights = learned(np.ones((slots, problem.edges)), constraint=Unconstrained(), lr="lr", report=False,
                               doc="weight w_{t,e} of each check-to-variable message")

    def check_update(self, problem, v2c, k):
        weights = per_iteration(self.weights, k)[None, :]
        return weights * sum_product_check(v2c, problem, self.options.clip)


class NeuralMinSum(_MessagePassing):
    """Neural min-sum: a learned normalisation ``alpha_t > 0`` (or offset ``beta_t >= 0``) per iteration.

    With ``per_edge`` every edge has its own value in every iteration (``alpha_{t,e}``, shape
    ``(depth, edges)``), as in Lugosch and Gross's neural offset min-sum.

    Attributes:
        alpha: ``alpha_t`` (``correction = "scale"``), initialised at ``init``; learning rate ``lr``.
        beta: ``beta_t`` (``correction = "offset"``), initialised at ``init``; learning rate ``lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        correction: Literal["scale", "offset"] = option(
            "scale", help="learn a normalisation alpha_t (Lugosch-Gross NNMS) or an offset beta_t (NOMS)")
        init: float = option(0.8, ge=0, le=10, help="initial alpha_t (scale) or beta_t (offset)")
        tied: bool = option(False, help="one value shared by every iteration")
        per_edge: bool = option(False, help="one value per edge and iteration (Lugosch-Gross) instead of per iteration")
        lr: float = option(0.02, gt=0, help="learning rate of alpha_t or beta_t")

        def validate(self):
            if self.correction == "scale" and self.init <= 0:
                raise ValueError("neural-min-sum: init must be > 0 for correction = 'scale'")

    name = "neural-min-sum"
    description = "neural min-sum (Lugosch and Gross): a learned normalisation (or offset) per iteration"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        slots = 1 if options.tied else depth
        initial = np.full((slots, problem.edges) if options.per_edge else slots, options.init)
        if options.correction == "scale":
            self.alpha = learned(initial, constraint=Positive(), lr="lr", report=not options.per_edge,
                                 doc="normalisation alpha_t of the check messages")
        else:
            self.beta = learned(initial, constraint=NonNegative(), lr="lr", report=not options.per_edge,
                                doc="offset beta_t of the check magnitudes")

    def check_update(self, problem, v2c, k):
        sign, magnitude = min_sum_check(v2c, problem)
        value = per_iteration(self.alpha if self.options.correction == "scale" else self.beta, k)
        value = value[None, :] if self.options.per_edge else value  # (1, edges) against (batch, edges)
        if self.options.correction == "scale":
            return value * sign * magnitude
        return sign * jnp.maximum(magnitude - value, 0.0)
