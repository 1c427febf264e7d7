"""LISTA-CP (coupled weights, optionally with support selection) and ALISTA (analytic weights).

Both iterate ``x <- eta(x + W_t^T (y - A x), theta_t)`` (ALISTA with ``gamma_t W``): the
gradient step of ISTA with ``A^T / L`` replaced by a matrix ``W^T``, which Chen et al. show is
the weight coupling every convergent LISTA must approach. LISTA-CP learns ``W_t``; ALISTA
computes ``W`` once from ``A`` (:func:`analytic_weight`) and learns two scalars per
iteration. Both learn or compute matrices shaped by one fixed ``A``, so a problem whose
operator is drawn per instance is refused.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import IncompatibleProblemError, Tunable, Unconstrained, learned, option, per_iteration

from .solvers import _SparseSolver, soft_threshold

__all__ = ["analytic_weight", "support_counts", "kth_largest_magnitude", "support_selected_threshold", "LISTACP", "ALISTA"]


def analytic_weight(matrix: np.ndarray) -> np.ndarray:
    """ALISTA's weight: ``W = argmin ||W^T A||_F`` subject to ``diag(W^T A) = 1``, in float64.

    The program separates over the columns: ``w_i`` minimises ``||A^T w_i||^2`` subject to
    ``a_i^T w_i = 1``. Stationarity gives ``A A^T w_i = mu_i a_i``, so for ``A`` of full row
    rank ``w_i = (A A^T)^{-1} a_i / (a_i^T (A A^T)^{-1} a_i)``, the unique minimiser (the
    objective is strictly convex on the affine constraint set).

    Args:
        matrix: ``A``, shape ``(m, n)``, of full row rank (``m <= n``, rank ``m``), with no
            zero column.

    Returns:
        ``W``, shape ``(m, n)``.

    Raises:
        ValueError: ``A`` is not of full row rank, or has a zero column (its diagonal
            constraint cannot hold).
    """
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or not np.all(np.isfinite(matrix)):
        raise ValueError(f"A must be a finite 2-D matrix, got shape {matrix.shape}")
    m, n = matrix.shape
    rank = int(np.linalg.matrix_rank(matrix))
    if rank < m:
        raise ValueError(f"ALISTA's analytic weight needs A of full row rank (rank m = {m}, so m <= n); this A "
                         f"({m} x {n}) has rank {rank}: A A^T is singular")
    projected = np.linalg.solve(matrix @ matrix.T, matrix)  # (A A^T)^{-1} a_i, column by column
    scale = np.sum(matrix * projected, axis=0)  # a_i^T (A A^T)^{-1} a_i = ||P a_i||^2 restricted, >= 0
    zero = np.flatnonzero(scale <= 1e-12 * np.max(scale))
    if zero.size:
        raise ValueError(f"ALISTA's analytic weight needs a_i^T W_i = 1 for every column, but column(s) "
                         f"{zero[:5].tolist()} of A are zero")
    return projected / scale


def support_counts(dim: int, depth: int, step_percent: float, max_percent: float) -> np.ndarray:
    """Entries passed unshrunk at each iteration: ``floor(min(step (t + 1), max) % of dim)``, ``t = 0..depth-1``."""
    percent = np.minimum(step_percent * np.arange(1, depth + 1), max_percent)
    return np.floor(percent * dim / 100 + 1e-9).astype(np.int32)


def kth_largest_magnitude(magnitude: jax.Array, count: jax.Array) -> jax.Array:
    """The ``count``-th largest entry of each row of a non-negative array (``count`` clipped to ``1..dim``).

    For float32 it bisects on the bit patterns, which order non-negative floats as their
    values do: 31 halvings of ``[0, 2^31)``, each counting the entries at or above the midpoint,
    find the largest pattern with at least ``count`` entries at or above it, which is an entry's
    own pattern. That is ``O(dim)`` work per halving against a sort's ``O(dim log dim)`` with
    poor vectorisation on a CPU (about 10x faster at ``dim = 500``; the values are the same
    bits). Other dtypes sort. It passes no gradient.

    Args:
        magnitude: shape ``(..., dim)``, non-negative. The sign bit is not read, so ``-0.0``
            counts as ``0.0`` and a NaN of either sign orders last, as in a sort.
        count: a scalar, possibly traced.

    Returns:
        shape ``(...)``.
    """
    magnitude = jax.lax.stop_gradient(magnitude)
    dim = magnitude.shape[-1]
    count = jnp.clip(count, 1, dim)
    if magnitude.dtype != jnp.float32:
        ordered = jnp.sort(jnp.abs(magnitude), axis=-1)
        return jnp.take(ordered, dim - count, axis=-1)
    bits = jax.lax.bitcast_convert_type(magnitude, jnp.int32) & jnp.int32(0x7FFFFFFF)  # |x|'s pattern

    def halve(_, bounds):
        low, high = bounds  # count(bits >= low) >= count always; the answer lies in [low, high]
        mid = high - (high - low) // 2  # the upper midpoint, without overflowing int32
        enough = jnp.sum(bits >= mid[..., None], axis=-1) >= count
        return jnp.where(enough, mid, low), jnp.where(enough, high, mid - 1)

    low = jnp.zeros(magnitude.shape[:-1], jnp.int32)
    high = jnp.full(magnitude.shape[:-1], jnp.iinfo(jnp.int32).max, jnp.int32)
    low, _ = jax.lax.fori_loop(0, 31, halve, (low, high))
    return jax.lax.bitcast_convert_type(low, jnp.float32)


def support_selected_threshold(r: jax.Array, threshold: jax.Array, count: jax.Array) -> jax.Array:
    """Soft threshold, except that the ``count`` largest ``|r_i|`` of each row above ``threshold`` pass unchanged.

    The support-selection shrinkage of Chen et al. (NeurIPS 2018): entries that are
    confidently in the support are not biased towards zero. ``count`` may be traced;
    ``0`` is the plain soft threshold. The selection itself passes no gradient.
    """
    magnitude = jnp.abs(r)
    kth_largest = kth_largest_magnitude(jax.lax.stop_gradient(magnitude), count)[..., None]
    selected = (magnitude >= kth_largest) & (count > 0) & (magnitude > threshold)
    return jnp.where(selected, r, soft_threshold(r, threshold))


def _support_step(default: float):
    return option(default, ge=0, le=100, help="support selection: percent of entries added each iteration to those "
                                              "passed unshrunk (p_t = min(support_step t, support_max) %); 0 for the "
                                              "plain soft threshold")


def _support_max():
    return option(13.0, ge=0, le=100, help="support selection: the largest percent p_t passed unshrunk")


class _CoupledSolver(_SparseSolver):
    """``x <- eta(x + V_t (y - A x), theta_t)`` with support selection, for one shared operator."""

    replaced_by = "ista, fista, du-ista or tista"

    @classmethod
    def fits(cls, problem) -> bool:
        return super().fits(problem) and not getattr(problem, "per_instance_operator", False)

    @classmethod
    def check_problem(cls, problem) -> None:
        super().check_problem(problem)
        if getattr(problem, "per_instance_operator", False):
            raise IncompatibleProblemError(
                f"solver {cls.name!r} uses a weight matrix shaped by one fixed operator A, but problem "
                f"{getattr(problem, 'name', '?')!r} ({type(problem).__name__}) draws A per instance "
                f"(per_instance_operator); use {cls.replaced_by} there, or a shared operator")

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.support = jax.device_put(support_counts(problem.dim, depth, options.support_step, options.support_max))

    def shrink(self, r: jax.Array, threshold: jax.Array, k) -> jax.Array:
        """``eta``: the soft threshold, with support selection when ``support_step > 0``."""
        if self.options.support_step == 0:
            return soft_threshold(r, threshold)
        return support_selected_threshold(r, threshold, self.support[k % self.support.shape[0]])


class LISTACP(_CoupledSolver):
    """LISTA-CP (Chen, Liu, Wang and Yin, NeurIPS 2018): ``x <- eta(x + W_t^T (y - A x), theta_t)``.

    ``W_t`` (``m x n``, one per iteration, or one with ``tied``) and ``theta_t`` are
    learned, initialised at ISTA's ``A / L`` and ``lam / L``, so before training it
    computes ISTA's iterates. With ``support_step > 0`` the shrinkage is the
    support-selection variant (LISTA-CPSS): the ``p_t %`` largest entries pass
    unshrunk, ``p_t = min(support_step t, support_max)``. Shared operator only.

    Attributes:
        W: the learned matrices, ``(depth or 1, m, n)`` (not reported in results and
            plots; checkpoints hold them); learning rate ``lr``.
        theta: thresholds, one per iteration (unconstrained, as DU-ISTA's); learning rate
            ``threshold_lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.05, ge=0, help="l1 weight: thresholds start at lam / L")
        tied: bool = option(False, help="one matrix W for every iteration (theta_t stays per iteration)")
        support_step: float = _support_step(0.0)
        support_max: float = _support_max()
        lr: float = option(1e-3, gt=0, tune=Tunable(1e-6, 1e-2, log=True), help="learning rate of W_t")
        threshold_lr: float = option(3e-3, gt=0, tune=Tunable(1e-5, 1e-1, log=True),
                                     help="learning rate of the thresholds theta_t")

    name = "lista-cp"
    description = "LISTA-CP: learned coupled weight W_t and threshold theta_t (support selection optional); shared operator only"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        matrix = np.asarray(problem.operator(None), np.float64)
        lipschitz = float(problem.lipschitz_bound())
        layers = 1 if options.tied else depth
        self.W = learned(np.broadcast_to(matrix / lipschitz, (layers,) + matrix.shape), lr="lr", report=False,
                         doc="coupled weight W_t (m x n)")
        self.theta = learned(np.full(depth, options.lam / lipschitz), constraint=Unconstrained(), lr="threshold_lr",
                             doc="threshold theta_t")

    def step(self, problem, context, x, k):
        r = x + self.residual(problem, context, x) @ per_iteration(self.W, k)
        return self.shrink(r, per_iteration(self.theta, k), k)


class ALISTA(_CoupledSolver):
    """ALISTA (Liu, Chen, Wang and Yin, ICLR 2019): ``x <- eta(x + gamma_t W^T (y - A x), theta_t)``.

    ``W`` is computed once from ``A`` alone, on the host in float64, by
    :func:`analytic_weight` (the Frobenius form of the paper's coherence
    minimisation); only the step ``gamma_t`` and the threshold ``theta_t`` are learned,
    two scalars per iteration. They start at ``gamma_0 = 1 / ||W^T A||_2`` and
    ``lam gamma_0``. The shrinkage selects the support as LISTA-CPSS does (the paper's
    ALISTA; ``support_step = 0`` turns it off). Shared operator of full row rank only.

    Attributes:
        gamma: steps, one per iteration; learning rate ``lr``.
        theta: thresholds, one per iteration (unconstrained); learning rate ``threshold_lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.05, ge=0, help="l1 weight: thresholds start at lam gamma_0")
        support_step: float = _support_step(1.2)
        support_max: float = _support_max()
        lr: float = option(1e-2, gt=0, tune=Tunable(1e-4, 1e-1, log=True), help="learning rate of the steps gamma_t")
        threshold_lr: float = option(3e-3, gt=0, tune=Tunable(1e-4, 1e-1, log=True),
                                     help="learning rate of the thresholds theta_t")

    name = "alista"
    replaced_by = "tista (its per-instance relative with the pseudo-inverse), ista, fista or du-ista"
    description = "ALISTA: analytic weight W from A, learned step gamma_t and threshold theta_t; shared operator only"

    @classmethod
    def fits(cls, problem) -> bool:
        """The capability, a shared operator, and one of full row rank (the analytic weight exists)."""
        if not super().fits(problem):
            return False
        matrix = np.asarray(problem.operator(None), np.float64)
        return matrix.shape[0] <= matrix.shape[1] and int(np.linalg.matrix_rank(matrix)) == matrix.shape[0]

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        matrix = np.asarray(problem.operator(None), np.float64)
        try:
            weight = analytic_weight(matrix)
        except ValueError as error:
            raise IncompatibleProblemError(f"solver {self.name!r} on problem {getattr(problem, 'name', '?')!r}: "
                                           f"{error}; use ista, fista, du-ista or lista-cp there") from None
        step = 1.0 / float(np.linalg.norm(weight.T @ matrix, 2))
        if not math.isfinite(step):
            raise IncompatibleProblemError(f"solver {self.name!r}: W^T A is not finite for this operator")
        self.weight = jax.device_put(weight.astype(np.float32))
        self.gamma = learned(np.full(depth, step), constraint=Unconstrained(), lr="lr", doc="step size gamma_t")
        self.theta = learned(np.full(depth, options.lam * step), constraint=Unconstrained(), lr="threshold_lr",
                             doc="threshold theta_t")

    def step(self, problem, context, x, k):
        r = x + per_iteration(self.gamma, k) * (self.residual(problem, context, x) @ self.weight)
        return self.shrink(r, per_iteration(self.theta, k), k)
