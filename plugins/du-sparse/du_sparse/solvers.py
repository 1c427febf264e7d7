"""ISTA, FISTA and their unfolded relatives for sparse recovery, on any linear observation model.

ISTA, FISTA, DU-ISTA and TISTA use only :class:`~du_framework.LinearObservation`
(``forward``, ``adjoint``, the step bound; TISTA also the pseudo-inverse and the
:class:`~du_sparse.BernoulliGaussianPrior`), so they run on a shared operator
and on one drawn per instance alike. LISTA learns matrices shaped by one fixed
operator and refuses a problem whose operator is drawn per instance.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import (
    IncompatibleProblemError,
    Instance,
    LinearObservation,
    Unconstrained,
    UnfoldedSolver,
    learned,
    option,
    per_iteration,
)
from du_framework import Tunable

from .problem import BernoulliGaussianPrior

__all__ = ["soft_threshold", "LinearContext", "FISTAState", "TISTAContext", "ISTA", "FISTA", "DUISTA", "TISTA",
           "LISTA"]


def soft_threshold(r: jax.Array, threshold: jax.Array) -> jax.Array:
    """``sign(r) max(|r| - threshold, 0)``, the proximal map of ``threshold ||.||_1``."""
    return jnp.sign(r) * jnp.maximum(jnp.abs(r) - threshold, 0.0)


class LinearContext(NamedTuple):
    """Context of the sparse solvers: the batch's instance (for ``forward``/``adjoint``) and ``y``."""

    instance: Instance
    y: jax.Array


class FISTAState(NamedTuple):
    """FISTA's state: the iterate ``x``, the extrapolated point ``z`` and the momentum scalar ``t``."""

    x: jax.Array
    z: jax.Array
    t: jax.Array


class TISTAContext(NamedTuple):
    """TISTA's context: :class:`LinearContext`'s fields, the pseudo-inverse and the traces per instance.

    Attributes:
        w: ``W = A^T (A A^T)^{-1}``, ``(n, m)`` shared or ``(batch, n, m)`` per instance.
        trace_gram: ``tr(A^T A)``: per instance, shape ``(batch, 1)``, or for a shared
            operator a host float (computed once in float64).
        trace_wwt: ``tr(W W^T)``, the same way.
    """

    instance: Instance
    y: jax.Array
    w: jax.Array
    trace_gram: jax.Array | float
    trace_wwt: jax.Array | float


class _SparseSolver(UnfoldedSolver):
    """``x^(0) = 0`` and the gradient step of ``1/2 ||y - A x||^2`` through the problem's operator."""

    requires = LinearObservation

    def prepare(self, problem: LinearObservation, instance: Instance) -> LinearContext:
        return LinearContext(instance, problem.observation(instance))

    def init_state(self, problem, context) -> Any:
        return jnp.zeros((context.y.shape[0], problem.dim), context.y.dtype)

    @staticmethod
    def residual(problem: LinearObservation, context, x: jax.Array) -> jax.Array:
        """``y - A x`` per instance."""
        return context.y - problem.forward(context.instance, x)

    @classmethod
    def gradient_step(cls, problem: LinearObservation, context, x: jax.Array, step: Any) -> jax.Array:
        """``x + step A^T (y - A x)``."""
        return x + step * problem.adjoint(context.instance, cls.residual(problem, context, x))


@dataclasses.dataclass(frozen=True)
class _L1Options:
    lam: float = option(0.05, ge=0, tune=Tunable(1e-3, 1.0, log=True),
                        help="weight lam of the l1 penalty lam ||x||_1 (threshold lam / L)")


class ISTA(_SparseSolver):
    """ISTA for ``min 1/2 ||y - A x||^2 + lam ||x||_1``: step ``1/L``, threshold ``lam/L``.

    ``L`` is the problem's ``lipschitz_bound()`` (``||A||_2^2`` for a shared operator).
    Reports its fixed constants ``step`` and ``threshold``.
    """

    Options = _L1Options
    name = "ista"
    description = "ISTA, step 1/L, threshold lam/L"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        lipschitz = float(problem.lipschitz_bound())
        self.step_size = 1.0 / lipschitz
        self.threshold = options.lam / lipschitz

    def step(self, problem, context, x, k):
        return soft_threshold(self.gradient_step(problem, context, x, self.step_size), self.threshold)

    def constants(self):
        return {"step": np.array([self.step_size]), "threshold": np.array([self.threshold])}


class FISTA(ISTA):
    """FISTA (Beck and Teboulle 2009): ISTA at an extrapolated point with Nesterov's momentum."""

    name = "fista"
    description = "FISTA, step 1/L, threshold lam/L, Nesterov momentum"

    def init_state(self, problem, context) -> FISTAState:
        zeros = super().init_state(problem, context)
        return FISTAState(zeros, zeros, jnp.ones((), zeros.dtype))

    def step(self, problem, context, state, k):
        x_new = soft_threshold(self.gradient_step(problem, context, state.z, self.step_size), self.threshold)
        t_new = (1 + jnp.sqrt(1 + 4 * state.t**2)) / 2
        z_new = x_new + (state.t - 1) / t_new * (x_new - state.x)
        return FISTAState(x_new, z_new, t_new)


class DUISTA(_SparseSolver):
    """DU-ISTA: ``x^(t+1) = soft(x^(t) + beta_t A^T (y - A x^(t)), theta_t)``, learned ``beta_t, theta_t``.

    Attributes:
        beta: step sizes, one per iteration, initialised at ``1/L``; learning rate ``lr``.
        theta: thresholds, one per iteration, initialised at ``lam/L``; learning rate
            ``threshold_lr`` (three seeds of the test problem gained 11.5 to 12.5 dB over
            ISTA with 1e-2 / 3e-3, 9 to 12 dB with one rate of 1e-2 for both).
            Unconstrained on purpose: ``theta`` starts a few Adam steps from 0 and may
            cross it early in training; keeping it ``>= 0`` as ``|raw|`` changed that
            path and cost 2 to 3 dB at 16 iterations on the test problem.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.05, ge=0, help="l1 weight: thresholds start at lam / L")
        lr: float = option(1e-2, gt=0, tune=Tunable(1e-4, 1e-1, log=True), help="learning rate of the steps beta_t")
        threshold_lr: float = option(3e-3, gt=0, tune=Tunable(1e-4, 1e-1, log=True),
                                     help="learning rate of the thresholds theta_t")

    name = "du-ista"
    description = "DU-ISTA: learned step beta_t and threshold theta_t per iteration"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        lipschitz = float(problem.lipschitz_bound())
        self.beta = learned(np.full(depth, 1.0 / lipschitz), constraint=Unconstrained(), lr="lr",
                            doc="step size beta_t of the gradient step")
        self.theta = learned(np.full(depth, options.lam / lipschitz), constraint=Unconstrained(), lr="threshold_lr",
                             doc="soft threshold theta_t")

    def step(self, problem, context, x, k):
        return soft_threshold(self.gradient_step(problem, context, x, per_iteration(self.beta, k)),
                              per_iteration(self.theta, k))


def _apply(matrix: jax.Array, r: jax.Array) -> jax.Array:
    """``M r`` per instance for ``M`` shared ``(p, q)`` or per instance ``(batch, p, q)``; ``r`` is ``(batch, q)``."""
    return r @ matrix.T if matrix.ndim == 2 else jnp.einsum("bpq,bq->bp", matrix, r)


class TISTA(_SparseSolver):
    """TISTA (Ito, Takabe and Wadayama, IEEE Trans. Signal Processing 67(12), 2019).

    ``r_t = x_t + gamma_t W (y - A x_t)`` with ``W = A^T (A A^T)^{-1}``, then the MMSE
    estimator of a Bernoulli-Gaussian entry observed in Gaussian noise of variance
    ``tau_t^2``, where ``v_t^2 = max((||y - A x_t||^2 - m sigma^2) / tr(A^T A), eps)`` and
    ``tau_t^2 = v_t^2/n (n + (gamma_t^2 - 2 gamma_t) m) + gamma_t^2 sigma^2/n tr(W W^T)``.
    Only ``gamma_t`` is learned (one scalar per iteration).

    Needs :class:`~du_framework.LinearObservation` and
    :class:`~du_sparse.BernoulliGaussianPrior`. With a shared operator ``W`` and the
    traces are the problem's (formed once on the host in float64); with one drawn
    per instance they are computed per instance in :meth:`prepare`.

    Attributes:
        gamma: learned step sizes of the linear step, one per iteration; learning rate ``lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        init_gamma: float = option(1.0, gt=0, help="initial gamma_t")
        lr: float = option(1e-3, gt=0, tune=Tunable(1e-5, 1e-1, log=True), help="learning rate of gamma_t")
        epsilon: float = option(1e-9, gt=0, help="floor of the error-variance estimate v_t^2")

    name = "tista"
    requires = (LinearObservation, BernoulliGaussianPrior)
    description = "TISTA: learned gamma_t, pseudo-inverse linear step, Bernoulli-Gaussian MMSE shrinkage"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.gamma = learned(np.full(depth, options.init_gamma), constraint=Unconstrained(), lr="lr",
                             doc="step size gamma_t of the pseudo-inverse step")
        self.n = problem.dim
        self.sigma2 = float(problem.noise_variance)
        self.p = float(problem.sparsity)
        self.alpha2 = float(problem.signal_variance)
        self.per_instance = bool(getattr(problem, "per_instance_operator", False))
        if not self.per_instance:
            matrix = np.asarray(problem.operator(None), np.float64)
            self.trace_gram = float(np.sum(matrix**2))
            self.trace_wwt = float(np.sum(np.asarray(problem.pseudo_inverse(None), np.float64) ** 2))

    def prepare(self, problem, instance) -> TISTAContext:
        y = problem.observation(instance)
        w = problem.pseudo_inverse(instance)
        if self.per_instance:
            matrix = problem.operator(instance)
            trace_gram = jnp.sum(jnp.square(matrix), axis=(-2, -1))[:, None]
            trace_wwt = jnp.sum(jnp.square(w), axis=(-2, -1))[:, None]
        else:  # the host float64 values, folded into the program as constants
            trace_gram, trace_wwt = self.trace_gram, self.trace_wwt
        return TISTAContext(instance, y, w, trace_gram, trace_wwt)

    def shrink(self, r, tau2):
        """MMSE estimate of ``x`` from ``r = x + N(0, tau2)`` for the Bernoulli-Gaussian prior."""
        spread = self.alpha2 + tau2

        def log_gauss(variance):
            return -0.5 * jnp.log(2 * jnp.pi * variance) - r**2 / (2 * variance)

        log_on = jnp.log(self.p) + log_gauss(spread)
        log_off = jnp.log1p(-self.p) + log_gauss(tau2) if self.p < 1 else jnp.full_like(r, -jnp.inf)
        posterior_on = jax.nn.sigmoid(log_on - log_off)
        return posterior_on * r * (self.alpha2 / spread)

    def step(self, problem, context, x, k):
        gamma = per_iteration(self.gamma, k)
        m = context.y.shape[-1]
        residual = self.residual(problem, context, x)
        v2 = (jnp.sum(residual**2, axis=-1, keepdims=True) - m * self.sigma2) / context.trace_gram
        v2 = jnp.maximum(v2, self.options.epsilon)
        tau2 = v2 / self.n * (self.n + (gamma**2 - 2 * gamma) * m) + gamma**2 * self.sigma2 / self.n * context.trace_wwt
        r = x + gamma * _apply(context.w, residual)
        return self.shrink(r, tau2)


class LISTA(_SparseSolver):
    """LISTA (Gregor and LeCun, ICML 2010): ``x^(t+1) = soft(B_t y + S_t x^(t), theta_t)``.

    ``B_t`` (``n x m``), ``S_t`` (``n x n``) and ``theta_t`` are learned, initialised at
    ISTA's ``A^T/L``, ``I - A^T A/L`` and ``lam/L``. With ``tied`` one set serves every
    iteration (leading axis 1); otherwise each iteration has its own. The matrices are
    shaped by one fixed ``A``: a problem whose operator is drawn per instance
    (``per_instance_operator``) is refused.

    With ``step_scale`` a scalar ``beta_t`` (initially 1) scales each iteration's move:
    ``x^(t+1) = soft(x^(t) + beta_t (B_t y + S_t x^(t) - x^(t)), theta_t)``, which is
    LISTA with ``beta_t B_t`` and ``I + beta_t (S_t - I)``: the same functions, but the
    optimiser can change the step of every entry at once, as DU-ISTA does (with
    ``B_t``, ``S_t`` frozen at their start it is DU-ISTA with ``beta_t / L``).

    Attributes:
        B, S: the learned matrices, stacked over iterations (not reported in results
            and plots; checkpoints hold them); learning rate ``lr``.
        theta: thresholds (unconstrained, as DU-ISTA's); learning rate ``threshold_lr``.
        beta: with ``step_scale``, the step scales; learning rate ``step_lr``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = option(0.05, ge=0, help="l1 weight: thresholds start at lam / L")
        tied: bool = option(False, help="one set B, S, theta (and beta) for every iteration")
        step_scale: bool = option(False, help="learn a scalar beta_t that scales each iteration's move "
                                              "(a reparametrisation: the same functions as LISTA)")
        lr: float = option(1e-4, gt=0, tune=Tunable(1e-6, 1e-2, log=True), help="learning rate of B_t and S_t")
        threshold_lr: float = option(1e-4, gt=0, tune=Tunable(1e-5, 1e-1, log=True),
                                     help="learning rate of the thresholds theta_t")
        step_lr: float = option(3e-2, gt=0, tune=Tunable(1e-4, 1e-1, log=True),
                                help="learning rate of the step scales beta_t (with step_scale)")

    name = "lista"
    description = "LISTA: learned matrices B_t, S_t and thresholds theta_t (tied or not); shared operator only"

    @classmethod
    def fits(cls, problem) -> bool:
        return super().fits(problem) and not getattr(problem, "per_instance_operator", False)

    @classmethod
    def check_problem(cls, problem) -> None:
        super().check_problem(problem)
        if getattr(problem, "per_instance_operator", False):
            raise IncompatibleProblemError(
                f"solver {cls.name!r} learns matrices B_t, S_t shaped by one fixed operator A, but problem "
                f"{getattr(problem, 'name', '?')!r} ({type(problem).__name__}) draws A per instance "
                f"(per_instance_operator); use ista, fista, du-ista or tista there, or a shared operator")

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        A = np.asarray(problem.operator(None), np.float64)
        L = float(problem.lipschitz_bound())
        layers = 1 if options.tied else depth
        B = np.broadcast_to(A.T / L, (layers,) + A.T.shape)
        S = np.broadcast_to(np.eye(A.shape[1]) - A.T @ A / L, (layers, A.shape[1], A.shape[1]))
        self.B = learned(B, lr="lr", report=False, doc="input matrix B_t (n x m)")
        self.S = learned(S, lr="lr", report=False, doc="state matrix S_t (n x n)")
        self.theta = learned(np.full(layers, options.lam / L), constraint=Unconstrained(), lr="threshold_lr",
                             doc="soft threshold theta_t")
        if options.step_scale:
            self.beta = learned(np.ones(layers), constraint=Unconstrained(), lr="step_lr",
                                doc="step scale beta_t of the move B_t y + S_t x - x")

    def has_fixed_point(self) -> bool:
        """Tied, every iteration applies one map: ``train.backward = "implicit"`` may differentiate its fixed point."""
        return bool(self.options.tied)

    def step(self, problem, context, x, k):
        B, S = per_iteration(self.B, k), per_iteration(self.S, k)
        r = context.y @ B.T + x @ S.T
        if self.options.step_scale:
            r = x + per_iteration(self.beta, k) * (r - x)
        return soft_threshold(r, per_iteration(self.theta, k))
