"""MIMO detectors on the real-valued model ``y = H x + w`` (``H``: ``m x N``, per instance).

Closed forms (``zf``, ``lmmse``, ``ml``) are one-shot detectors: they compute their estimate once
per batch (in ``prepare``) and every iteration returns it, so their curve is flat. The iterative
detectors (``pg``, ``tpg``, ``oamp``, ``oamp-net``) start from ``x = 0``. Every matrix inverse is a
batched ``jnp.linalg.solve`` per instance, of the smaller of the two Gram matrices.

Notation: ``sigma^2`` is the variance of a real noise entry (``problem.noise_variance``),
``E_r`` the energy of one real symbol dimension (``constellation.energy_per_dim``).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import (
    ConfigError,
    Instance,
    LinearObservation,
    NoOptions,
    Positive,
    Tunable,
    UnfoldedSolver,
    learned,
    option,
    per_iteration,
)

from .problem import ConstellationDetection

__all__ = ["ZeroForcing", "LMMSE", "MaximumLikelihood", "ProjectedGradient", "TPG", "OAMP", "OAMPNet",
           "regularized_inverse", "OneShotContext", "DetectorContext", "OAMPContext", "OAMPState"]

_EPS = 1e-9


def _matvec(matrix: jax.Array, v: jax.Array) -> jax.Array:
    return jnp.einsum("bij,bj->bi", matrix, v)


def _transpose(matrix: jax.Array) -> jax.Array:
    return jnp.swapaxes(matrix, -1, -2)


def _eye_like(batch: int, n: int, dtype) -> jax.Array:
    return jnp.broadcast_to(jnp.eye(n, dtype=dtype), (batch, n, n))


def regularized_inverse(h: jax.Array, ridge: jax.Array) -> jax.Array:
    """``W = (H^T H + ridge I)^{-1} H^T = H^T (H H^T + ridge I)^{-1}`` per instance, ``(batch, N, m)``.

    ``h`` is ``(batch, m, N)``, ``ridge`` ``(batch,)`` (``>= 0``; ``0`` gives the pseudo-inverse of a
    full-rank ``H``). The Gram matrix of the smaller side is solved (``N x N`` when ``m >= N``).
    """
    batch, m, n = h.shape
    ridge = ridge.astype(h.dtype)[:, None, None]
    ht = _transpose(h)
    if m >= n:
        return jnp.linalg.solve(ht @ h + ridge * _eye_like(batch, n, h.dtype), ht)
    return _transpose(jnp.linalg.solve(h @ ht + ridge * _eye_like(batch, m, h.dtype), h))


def _noise_to_signal(problem: ConstellationDetection, instance: Instance) -> jax.Array:
    """``sigma^2 / E_r`` per instance, ``(batch,)``: the LMMSE regulariser of the real-valued model."""
    return problem.noise_variance(instance) / problem.constellation.energy_per_dim


class OneShotContext(NamedTuple):
    """The closed-form estimate of the batch, ``(batch, N)``."""

    x: jax.Array


class _OneShot(UnfoldedSolver):
    """A closed-form detector: the estimate is formed in ``prepare`` and every iteration returns it."""

    requires = (LinearObservation, ConstellationDetection)
    Options = NoOptions

    @abc.abstractmethod
    def closed_form(self, problem, instance) -> jax.Array:
        """The estimate of every instance of the batch, ``(batch, N)``."""

    def prepare(self, problem, instance):
        return OneShotContext(self.closed_form(problem, instance))

    def init_state(self, problem, context):
        return jnp.zeros_like(context.x)

    def step(self, problem, context, x, k):
        del x, k
        return context.x


class ZeroForcing(_OneShot):
    """Zero forcing, ``x = H^+ y``: ``(H^T H)^{-1} H^T y`` when ``m >= N``, else the minimum-norm
    solution ``H^T (H H^T)^{-1} y`` (an overloaded channel). The same estimate at every iteration."""

    Options = NoOptions
    name = "zf"
    description = "zero-forcing detector x = H^+ y (closed form per instance; flat curve)"

    def closed_form(self, problem, instance):
        h = problem.operator(instance)
        return _matvec(regularized_inverse(h, jnp.zeros(h.shape[:1], h.dtype)), problem.observation(instance))


class LMMSE(_OneShot):
    """Linear MMSE, ``x = (H^T H + (sigma^2 / E_r) I)^{-1} H^T y`` per instance (in complex terms
    ``(H^H H + (N0 / Es) I)^{-1} H^H y``). The same estimate at every iteration."""

    Options = NoOptions
    name = "lmmse"
    description = "linear MMSE detector (closed form per instance; flat curve)"

    def closed_form(self, problem, instance):
        w = regularized_inverse(problem.operator(instance), _noise_to_signal(problem, instance))
        return _matvec(w, problem.observation(instance))


class MaximumLikelihood(_OneShot):
    """Maximum likelihood by exhaustive search: ``argmin_c ||y - H c||^2`` over the ``M^n_tx``
    candidate symbol vectors, in chunks (a ``lax.scan`` keeps the best so far). The same estimate at
    every iteration. Refused when ``M^n_tx`` exceeds ``max_candidates``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        max_candidates: int = option(65536, ge=1, le=2**24, help="largest M^n_tx searched (else refused)")
        chunk: int = option(1024, ge=1, le=65536, help="candidates scored at once")

    name = "ml"
    description = "maximum-likelihood detector by exhaustive search over M^n_tx candidates (small sizes only)"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        constellation = problem.constellation
        self.count = constellation.size ** problem.n_tx
        if self.count > options.max_candidates:
            raise ConfigError(f"solver 'ml' would search {constellation.size}^{problem.n_tx} = {self.count} "
                              f"candidates ({constellation.name}, n_tx = {problem.n_tx}), above the limit "
                              f"max_candidates = {options.max_candidates}; use fewer transmit antennas or a "
                              f"smaller constellation")
        self.chunk = min(options.chunk, self.count)

    def _candidates(self, problem, first: jax.Array, dtype) -> tuple[jax.Array, jax.Array]:
        """Candidates ``first .. first + chunk - 1`` as real vectors ``(chunk, N)`` and a validity mask."""
        number = first + jnp.arange(self.chunk, dtype=jnp.int32)
        return self._vector_of(problem, number, dtype), number < self.count

    def closed_form(self, problem, instance):
        h, y = problem.operator(instance), problem.observation(instance)
        gram = _transpose(h) @ h            # (batch, N, N)
        matched = _matvec(_transpose(h), y)  # H^T y
        batch = y.shape[0]

        def scan_chunk(best, first):
            candidates, valid = self._candidates(problem, first, y.dtype)
            # ||y - H c||^2 - ||y||^2 = c^T G c - 2 c^T H^T y, for every (instance, candidate).
            quadratic = jnp.einsum("kn,bnp,kp->bk", candidates, gram, candidates)
            score = quadratic - 2 * matched @ candidates.T
            score = jnp.where(valid[None, :], score, jnp.inf)
            position = jnp.argmin(score, axis=1)
            value = jnp.take_along_axis(score, position[:, None], axis=1)[:, 0]
            better = value < best[0]
            return (jnp.where(better, value, best[0]), jnp.where(better, first + position.astype(jnp.int32),
                                                                 best[1])), None

        starts = jnp.arange(0, self.count, self.chunk, dtype=jnp.int32)
        init = (jnp.full((batch,), jnp.inf, y.dtype), jnp.zeros((batch,), jnp.int32))
        (_, best), _ = jax.lax.scan(scan_chunk, init, starts)
        return self._vector_of(problem, best, y.dtype)

    @staticmethod
    def _vector_of(problem, number: jax.Array, dtype) -> jax.Array:
        """Candidate ``number`` (base-``M`` digit ``j``: the symbol of antenna ``j``) as a real vector."""
        c, n = problem.constellation, problem.n_tx
        powers = jnp.asarray(np.array([c.size**j for j in range(n)], np.int64).astype(np.int32))
        symbols = (number[:, None] // powers[None, :]) % c.size  # (count, n_tx)
        real_index = symbols % c.levels_per_dim
        index = (jnp.concatenate([real_index, symbols // c.levels_per_dim], axis=1) if c.complex else real_index)
        return c.spacing * (2.0 * index.astype(dtype) - (c.levels_per_dim - 1))


class DetectorContext(NamedTuple):
    """What a projected-gradient iteration reads: the channel, ``y`` and ``W`` per instance."""

    h: jax.Array  # (batch, m, N)
    y: jax.Array  # (batch, m)
    w: jax.Array  # (batch, N, m): the LMMSE matrix H^T (H H^T + (sigma^2 / E_r) I)^{-1}


class _ProjectedGradient(UnfoldedSolver):
    """``r = x + gamma W (y - H x)``, ``x <- project(r, theta)`` from ``x = 0`` (Takabe et al.'s iteration).

    ``W = H^T (H H^T + alpha I)^{-1}`` with ``alpha = sigma^2 / E_r`` per instance (the LMMSE matrix),
    so the first iteration with ``gamma = 1`` projects the LMMSE estimate.
    """

    requires = (LinearObservation, ConstellationDetection)

    def prepare(self, problem, instance):
        h = problem.operator(instance)
        return DetectorContext(h, problem.observation(instance),
                               regularized_inverse(h, _noise_to_signal(problem, instance)))

    def init_state(self, problem, context):
        return jnp.zeros((context.y.shape[0], problem.dim), context.y.dtype)

    @staticmethod
    def iterate(problem, context, x, gamma, theta):
        residual = context.y - _matvec(context.h, x)
        return problem.constellation.project(x + gamma * _matvec(context.w, residual), theta)


class ProjectedGradient(_ProjectedGradient):
    """Projected gradient with constant step ``gamma`` and softness ``theta`` (the untrained TPG)."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        step: float = option(1.0, gt=0, le=2, tune=Tunable(0.05, 2.0), help="step gamma of the W-gradient step")
        softness: float = option(0.5, gt=0, le=10, tune=Tunable(0.02, 5.0, log=True),
                                 help="softness theta of the projection (in units of the level spacing d)")

    name = "pg"
    description = "projected gradient detector: constant step and soft projection onto the constellation"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.gamma = float(options.step)
        self.theta = float(options.softness)

    def step(self, problem, context, x, k):
        del k
        return self.iterate(problem, context, x, self.gamma, self.theta)

    def constants(self):
        return {"gamma": np.array([self.gamma]), "theta": np.array([self.theta])}


class TPG(_ProjectedGradient):
    """Trainable projected gradient detector (TPG; S. Takabe, M. Imanishi, T. Wadayama, R. Hayakawa,
    K. Hayashi, "Trainable projected gradient detector for massive overloaded MIMO channels: data-driven
    tuning approach", IEEE Access 7, 2019): ``r_t = x_t + gamma_t W (y - H x_t)``,
    ``x_{t+1} = project(r_t, theta_t)``.

    Attributes:
        gamma: step sizes ``gamma_t > 0``, one per iteration, initialised at ``step``; rate ``lr``.
        theta: softness ``theta_t > 0`` of the projection, initialised at ``softness``; rate ``softness_lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        step: float = option(1.0, gt=0, le=2, help="initial step gamma_t")
        softness: float = option(0.5, gt=0, le=10, help="initial softness theta_t (units of the level spacing d)")
        lr: float = option(0.02, gt=0, tune=Tunable(1e-3, 0.2, log=True), help="learning rate of gamma_t")
        softness_lr: float = option(0.02, gt=0, tune=Tunable(1e-3, 0.2, log=True), help="learning rate of theta_t")

    name = "tpg"
    description = "trainable projected gradient detector (Takabe et al. 2019): learned gamma_t and theta_t"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.gamma = learned(np.full(depth, options.step), constraint=Positive(), lr="lr", doc="step size gamma_t")
        self.theta = learned(np.full(depth, options.softness), constraint=Positive(), lr="softness_lr",
                             doc="softness theta_t of the projection")

    def step(self, problem, context, x, k):
        return self.iterate(problem, context, x, per_iteration(self.gamma, k), per_iteration(self.theta, k))


class OAMPContext(NamedTuple):
    """OAMP's per-batch quantities: the channel, ``y``, its Gram matrix and ``tr(H^T H)``, ``sigma^2``."""

    h: jax.Array            # (batch, m, N)
    y: jax.Array            # (batch, m)
    gram: jax.Array         # (batch, m, m) H H^T, or (batch, N, N) H^T H when m >= N
    trace_gram: jax.Array   # (batch, 1)
    noise: jax.Array        # (batch, 1): sigma^2


class OAMPState(NamedTuple):
    """``x``: what the next linear step starts from; ``estimate``: the posterior mean reported."""

    x: jax.Array
    estimate: jax.Array


class _OAMP(UnfoldedSolver):
    """The OAMP linear step with an LMMSE-type, de-correlated ``W`` (per instance and iteration):

    ``v^2 = max((||y - H x||^2 - m sigma^2) / tr(H^T H), eps)``,
    ``W_hat = H^T (H H^T + (sigma^2 / v^2) I)^{-1}``, ``W = N / tr(W_hat H) W_hat``,
    ``r = x + gamma W (y - H x)``, ``B = I - theta W H``,
    ``tau^2 = tr(B B^T) v^2 / N + theta^2 tr(W W^T) sigma^2 / N``.
    """

    requires = (LinearObservation, ConstellationDetection)

    def prepare(self, problem, instance):
        h, y = problem.operator(instance), problem.observation(instance)
        _, m, n = h.shape
        ht = _transpose(h)
        gram = ht @ h if m >= n else h @ ht
        trace = jnp.trace(gram, axis1=1, axis2=2)[:, None]
        return OAMPContext(h, y, gram, trace, problem.noise_variance(instance)[:, None].astype(y.dtype))

    def init_state(self, problem, context):
        zeros = jnp.zeros((context.y.shape[0], problem.dim), context.y.dtype)
        return OAMPState(zeros, zeros)

    def estimate(self, state):
        return state.estimate

    @staticmethod
    def linear(context: OAMPContext, x: jax.Array, gamma, theta) -> tuple[jax.Array, jax.Array]:
        """``(r, tau^2)`` of the linear step; ``tau^2`` is ``(batch, 1)``."""
        h, y, sigma2 = context.h, context.y, context.noise
        batch, m, n = h.shape
        residual = y - _matvec(h, x)
        v2 = jnp.maximum((jnp.sum(jnp.square(residual), axis=1, keepdims=True) - m * sigma2) / context.trace_gram,
                         _EPS)
        ratio = (sigma2 / v2)[:, :, None]
        ht = _transpose(h)
        if m >= n:
            w_hat = jnp.linalg.solve(context.gram + ratio * _eye_like(batch, n, h.dtype), ht)
        else:
            w_hat = _transpose(jnp.linalg.solve(context.gram + ratio * _eye_like(batch, m, h.dtype), h))
        w_hat_h = w_hat @ h  # (batch, N, N)
        w = (n / jnp.trace(w_hat_h, axis1=1, axis2=2))[:, None, None] * w_hat
        r = x + gamma * _matvec(w, residual)
        b = _eye_like(batch, n, h.dtype) - theta * (w @ h)
        tau2 = (jnp.sum(jnp.square(b), axis=(1, 2))[:, None] * v2
                + theta**2 * jnp.sum(jnp.square(w), axis=(1, 2))[:, None] * sigma2) / n
        return r, jnp.maximum(tau2, _EPS)


class OAMP(_OAMP):
    """Orthogonal AMP (J. Ma and L. Ping, "Orthogonal AMP", IEEE Access 5, 2017) for a discrete prior:
    the linear step of :class:`_OAMP` with ``gamma = theta = 1`` and the divergence-free denoiser

    ``x <- C (eta(r) - <eta'> r)``, ``<eta'> = mean(var_post) / tau^2``, ``C = 1 / (1 - <eta'>)``,

    where ``eta`` is the posterior mean of a uniform symbol level seen through ``N(0, tau^2)`` and
    ``var_post`` its posterior variance (``<eta'>`` is capped at 0.99). The reported estimate is the
    posterior mean ``eta(r)``.
    """

    Options = NoOptions
    name = "oamp"
    description = "orthogonal AMP (Ma and Ping 2017): de-correlated LMMSE step, divergence-free MMSE denoiser"

    def step(self, problem, context, state, k):
        del k
        r, tau2 = self.linear(context, state.x, 1.0, 1.0)
        mean, variance = problem.constellation.posterior(r, tau2)
        divergence = jnp.minimum(jnp.mean(variance, axis=1, keepdims=True) / tau2, 0.99)
        return OAMPState((mean - divergence * r) / (1.0 - divergence), mean)


class OAMPNet(_OAMP):
    """OAMP-Net (H. He, C.-K. Wen, S. Jin, G. Y. Li, "Model-driven deep learning for MIMO detection",
    IEEE Trans. Signal Processing 68, 2020): the linear step of :class:`_OAMP` with learned
    ``gamma_t`` and ``theta_t`` and the posterior-mean denoiser ``x_{t+1} = eta(r_t; tau_t^2)``.

    Attributes:
        gamma: ``gamma_t > 0`` scaling the linear step, initialised at 1; rate ``lr``.
        theta: ``theta_t > 0`` in ``B = I - theta_t W H`` and the error variance, initialised at 1; rate ``lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lr: float = option(0.01, gt=0, tune=Tunable(1e-3, 0.1, log=True), help="learning rate of gamma_t and theta_t")

    name = "oamp-net"
    description = "OAMP-Net (He et al. 2020): OAMP with learned gamma_t and theta_t per iteration"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.gamma = learned(np.ones(depth), constraint=Positive(), lr="lr", doc="step gamma_t of the linear estimator")
        self.theta = learned(np.ones(depth), constraint=Positive(), lr="lr",
                             doc="theta_t in B = I - theta_t W H and the variance tau_t^2")

    def step(self, problem, context, state, k):
        r, tau2 = self.linear(context, state.x, per_iteration(self.gamma, k), per_iteration(self.theta, k))
        mean, _ = problem.constellation.posterior(r, tau2)
        return OAMPState(mean, mean)
