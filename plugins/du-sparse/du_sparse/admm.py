"""ADMM for the LASSO and its unrolled relative DU-ADMM, on a shared operator or one drawn per instance.

Both solve ``min_x 1/2 ||y - A x||^2 + lam ||x||_1`` split as ``x = z``. The x-update
needs ``(A^T A + rho I)^{-1}`` for a penalty ``rho`` that DU-ADMM changes every
iteration, so the operator is factorised once, ``A^T A = G^T G`` with ``G = S V^T``
(``r x n``, ``r = min(m, n)``, ``A = U S V^T`` a thin SVD), and then for any ``rho > 0``::

    (A^T A + rho I)^{-1} v = v / rho - G^T diag(1 / (rho (s^2 + rho))) G v

(the matrix-inversion lemma on the row space of ``A``): two products with an ``r x n``
matrix per application, the cost of one ISTA iteration.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import (
    LinearObservation,
    Positive,
    Tunable,
    Unconstrained,
    UnfoldedSolver,
    learned,
    option,
    per_iteration,
)

from .solvers import soft_threshold

__all__ = ["lasso_factor", "ADMMContext", "ADMMState", "ADMM", "DUADMM"]


def lasso_factor(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(G, s^2)`` with ``A^T A = G^T G``, ``G = S V^T`` (``r x n``) and ``s^2`` the squared singular values.

    Host float64, from a thin SVD of ``matrix`` (``m x n``); ``r = min(m, n)``.
    """
    _, singular, rows = np.linalg.svd(np.asarray(matrix, np.float64), full_matrices=False)
    return singular[:, None] * rows, singular**2


def _factor_per_instance(matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(G, s^2)`` per instance for ``matrix`` of shape ``(batch, m, n)``, from the smaller Gram matrix.

    ``m <= n``: ``A A^T = U diag(s^2) U^T`` and ``G = U^T A``; otherwise
    ``A^T A = V diag(s^2) V^T`` and ``G = diag(s) V^T``. Either way ``G^T G = A^T A``.
    """
    m, n = matrix.shape[-2:]
    transposed = jnp.swapaxes(matrix, -1, -2)
    if m <= n:
        s2, vectors = jnp.linalg.eigh(matrix @ transposed)
        return jnp.swapaxes(vectors, -1, -2) @ matrix, jnp.maximum(s2, 0.0)
    s2, vectors = jnp.linalg.eigh(transposed @ matrix)
    s2 = jnp.maximum(s2, 0.0)
    return jnp.sqrt(s2)[..., :, None] * jnp.swapaxes(vectors, -1, -2), s2


class ADMMContext(NamedTuple):
    """ADMM's context: ``A^T y`` and the factor of ``A^T A``.

    Attributes:
        aty: ``A^T y``, ``(batch, n)``.
        factor: ``G``, ``(r, n)`` shared or ``(batch, r, n)`` per instance.
        s2: the squared singular values, ``(r,)`` shared or ``(batch, r)`` per instance.
    """

    aty: jax.Array
    factor: jax.Array
    s2: jax.Array


class ADMMState(NamedTuple):
    """ADMM's state: the x-iterate, the sparse z-iterate (the estimate) and the dual variable ``w``."""

    x: jax.Array
    z: jax.Array
    w: jax.Array


class _ADMM(UnfoldedSolver):
    """ADMM's iteration in unscaled dual form, with the penalty and threshold of iteration ``k`` left to subclasses::

        x = (A^T A + rho_k I)^{-1} (A^T y + rho_k z - w)
        z = soft(x + w / rho_k, theta_k)
        w = w + rho_k (x - z)

    The estimate is ``z`` (sparse). ``w`` is the unscaled multiplier (``rho u`` in the
    scaled form), so a penalty that changes between iterations keeps the multiplier's
    meaning (Boyd et al., Found. Trends Mach. Learn. 3(1), 2011, section 3.4.1).
    """

    requires = LinearObservation

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.per_instance = bool(getattr(problem, "per_instance_operator", False))
        if not self.per_instance:  # factorised once, on the host in float64
            factor, s2 = lasso_factor(np.asarray(problem.operator(None)))
            self.factor = jax.device_put(factor.astype(np.float32))
            self.s2 = jax.device_put(s2.astype(np.float32))

    def prepare(self, problem, instance) -> ADMMContext:
        aty = problem.adjoint(instance, problem.observation(instance))
        if self.per_instance:
            factor, s2 = _factor_per_instance(problem.operator(instance))
        else:
            factor, s2 = self.factor, self.s2
        return ADMMContext(aty, factor, s2)

    def init_state(self, problem, context) -> ADMMState:
        zeros = jnp.zeros_like(context.aty)
        return ADMMState(zeros, zeros, zeros)

    def estimate(self, state):
        return state.z

    @staticmethod
    def solve(context: ADMMContext, v: jax.Array, rho) -> jax.Array:
        """``(A^T A + rho I)^{-1} v`` per instance (``v``: ``(batch, n)``; ``rho`` a scalar ``> 0``)."""
        factor = context.factor
        if factor.ndim == 2:
            return v / rho - ((v @ factor.T) / (rho * (context.s2[None, :] + rho))) @ factor
        projected = jnp.einsum("brn,bn->br", factor, v) / (rho * (context.s2 + rho))
        return v / rho - jnp.einsum("brn,br->bn", factor, projected)

    @abc.abstractmethod
    def penalty(self, k) -> jax.Array:
        """The penalty ``rho_k > 0`` of iteration ``k``."""

    @abc.abstractmethod
    def threshold(self, k) -> jax.Array:
        """The threshold ``theta_k`` of the z-update of iteration ``k``."""

    def step(self, problem, context, state, k):
        rho = self.penalty(k)
        x = self.solve(context, context.aty + rho * state.z - state.w, rho)
        z = soft_threshold(x + state.w / rho, self.threshold(k))
        return ADMMState(x, z, state.w + rho * (x - z))


class ADMM(_ADMM):
    """ADMM for ``min 1/2 ||y - A x||^2 + lam ||x||_1`` with penalty ``rho``: threshold ``lam / rho``.

    Reports its fixed ``rho`` and ``threshold``; the estimate is the sparse iterate ``z``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.05, ge=0, tune=Tunable(1e-3, 1.0, log=True), help="weight lam of the l1 penalty")
        rho: float = option(1.0, gt=0, tune=Tunable(1e-3, 10.0, log=True), help="penalty rho of the constraint x = z")

    name = "admm"
    description = "ADMM for the LASSO: penalty rho, threshold lam/rho, factorisation of A^T A formed once"

    def penalty(self, k):
        del k
        return self.options.rho

    def threshold(self, k):
        del k
        return self.options.lam / self.options.rho

    def constants(self):
        return {"rho": np.array([self.options.rho]), "threshold": np.array([self.options.lam / self.options.rho])}


class DUADMM(_ADMM):
    """DU-ADMM: ADMM for the LASSO unrolled with a learned penalty ``rho_t`` and threshold ``theta_t``.

    The learned counterpart of :class:`ADMM` in the spirit of ADMM-Net (Yang, Sun,
    Li and Xu, NeurIPS 2016), which unrolls ADMM for compressive-sensing MRI with
    learned penalties and shrinkage per stage. Initialised at ADMM's constants
    (``rho``, ``lam / rho``) it computes ADMM's iterates before training.

    Attributes:
        rho: penalties, one per iteration, ``> 0`` (through ``exp``); learning rate ``lr``.
        theta: thresholds of the z-update, one per iteration (unconstrained, as
            DU-ISTA's); learning rate ``threshold_lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.05, ge=0, help="l1 weight: thresholds start at lam / rho")
        rho: float = option(1.0, gt=0, help="initial penalty rho_t")
        lr: float = option(3e-2, gt=0, tune=Tunable(1e-3, 3e-1, log=True),
                           help="learning rate of rho_t (moved on a log scale)")
        threshold_lr: float = option(1e-2, gt=0, tune=Tunable(1e-4, 1e-1, log=True),
                                     help="learning rate of the thresholds theta_t")

    name = "du-admm"
    description = "DU-ADMM: ADMM for the LASSO with learned penalty rho_t and threshold theta_t per iteration"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.rho = learned(np.full(depth, options.rho), constraint=Positive(), lr="lr", doc="penalty rho_t")
        self.theta = learned(np.full(depth, options.lam / options.rho), constraint=Unconstrained(),
                             lr="threshold_lr", doc="soft threshold theta_t of the z-update")

    def penalty(self, k):
        return per_iteration(self.rho, k)

    def threshold(self, k):
        return per_iteration(self.theta, k)
