"""ISTA, FISTA and their unfolded relatives for sparse recovery."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from du_framework import UnfoldedSolver, per_iteration

from .problem import SparseLinearInverseProblem


def soft_threshold(r: jax.Array, threshold: jax.Array) -> jax.Array:
    """``sign(r) max(|r| - threshold, 0)``, the proximal map of ``threshold ||.||_1``."""
    return jnp.sign(r) * jnp.maximum(jnp.abs(r) - threshold, 0.0)


class _SparseSolver(UnfoldedSolver):
    requires = SparseLinearInverseProblem

    def prepare(self, problem, instance):
        return {"A": problem.matrix, "y": instance["y"]}

    def init_state(self, problem, context):
        return jnp.zeros((context["y"].shape[0], problem.dim), context["y"].dtype)

    @staticmethod
    def gradient_step(x, context, step):
        """``x + step A^T (y - A x)``."""
        return x + step * ((context["y"] - x @ context["A"].T) @ context["A"])


@dataclasses.dataclass(frozen=True)
class _L1Options:
    lam: float = 0.05

    def validate(self):
        if not self.lam >= 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")


class ISTA(_SparseSolver):
    """ISTA for ``min 1/2 ||y - A x||^2 + lam ||x||_1``: step ``1/L``, threshold ``lam/L``."""

    Options = _L1Options
    name = "ista"
    description = "ISTA, step 1/L, threshold lam/L"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.step_size = 1.0 / problem.lipschitz
        self.threshold = options.lam / problem.lipschitz

    def step(self, x, context, k):
        return soft_threshold(self.gradient_step(x, context, self.step_size), self.threshold)

    def learned_parameters(self):
        return {"step": np.array([self.step_size]), "threshold": np.array([self.threshold])}


class FISTA(ISTA):
    """FISTA (Beck and Teboulle 2009): ISTA at an extrapolated point with Nesterov's momentum."""

    name = "fista"
    description = "FISTA, step 1/L, threshold lam/L, Nesterov momentum"

    def init_state(self, problem, context):
        zeros = super().init_state(problem, context)
        return {"x": zeros, "z": zeros, "t": jnp.ones((), zeros.dtype)}

    def step(self, state, context, k):
        x_new = soft_threshold(self.gradient_step(state["z"], context, self.step_size), self.threshold)
        t_new = (1 + jnp.sqrt(1 + 4 * state["t"] ** 2)) / 2
        z_new = x_new + (state["t"] - 1) / t_new * (x_new - state["x"])
        return {"x": x_new, "z": z_new, "t": t_new}


class DUISTA(_SparseSolver):
    """DU-ISTA: ``x^(t+1) = soft(x^(t) + beta_t A^T (y - A x^(t)), theta_t)``, learned ``beta_t, theta_t``.

    Attributes:
        beta: step sizes, shape ``(depth,)``, initialised at ``1/L``; Adam rate ``lr``.
        theta: thresholds, shape ``(depth,)``, initialised at ``lam/L``; Adam rate
            ``threshold_lr`` (three seeds of the test problem gained 11.5 to 12.5 dB over
            ISTA with 1e-2 / 3e-3, 9 to 12 dB with one rate of 1e-2 for both).
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = 0.05
        lr: float = 1e-2
        threshold_lr: float = 3e-3

        def validate(self):
            if not (self.lam >= 0 and self.lr > 0 and self.threshold_lr > 0):
                raise ValueError("need lam >= 0, lr > 0 and threshold_lr > 0")

    name = "du-ista"
    description = "DU-ISTA: learned step beta_t and threshold theta_t per iteration"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.beta = nnx.Param(jnp.full((depth,), 1.0 / problem.lipschitz, jnp.float32))
        self.theta = nnx.Param(jnp.full((depth,), options.lam / problem.lipschitz, jnp.float32))

    def step(self, x, context, k):
        return soft_threshold(self.gradient_step(x, context, per_iteration(self.beta, k)), per_iteration(self.theta, k))

    def learning_rates(self):
        return {"beta": self.options.lr, "theta": self.options.threshold_lr}


class TISTA(_SparseSolver):
    """TISTA (Ito, Takabe and Wadayama, IEEE Trans. Signal Processing 67(12), 2019).

    ``r_t = x_t + gamma_t W (y - A x_t)`` with ``W = A^T (A A^T)^{-1}``, then the MMSE
    estimator of a Bernoulli-Gaussian entry observed in Gaussian noise of variance
    ``tau_t^2``, where ``v_t^2 = max((||y - A x_t||^2 - m sigma^2) / tr(A^T A), eps)`` and
    ``tau_t^2 = v_t^2/n (n + (gamma_t^2 - 2 gamma_t) m) + gamma_t^2 sigma^2/n tr(W W^T)``.
    Only ``gamma_t`` is learned (one scalar per iteration).

    Attributes:
        gamma: learned step sizes of the linear step, shape ``(depth,)``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        init_gamma: float = 1.0
        lr: float = 1e-3
        epsilon: float = 1e-9

        def validate(self):
            if not (self.init_gamma > 0 and self.lr > 0 and self.epsilon > 0):
                raise ValueError("need init_gamma > 0, lr > 0 and epsilon > 0")

    name = "tista"
    description = "TISTA: learned gamma_t, pseudo-inverse linear step, Bernoulli-Gaussian MMSE shrinkage"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.gamma = nnx.Param(jnp.full((depth,), options.init_gamma, jnp.float32))
        self.n, self.m = problem.dim, int(problem.matrix.shape[0])
        self.sigma2 = float(problem.noise_variance)
        self.p = float(problem.sparsity)
        self.alpha2 = float(problem.signal_variance)
        self.trace_gram = float(np.sum(np.asarray(problem.matrix, np.float64) ** 2))
        pinv = np.asarray(problem.pseudo_inverse, np.float64)
        self.trace_wwt = float(np.sum(pinv**2))

    def prepare(self, problem, instance):
        return {"A": problem.matrix, "W": problem.pseudo_inverse, "y": instance["y"]}

    def shrink(self, r, tau2):
        """MMSE estimate of ``x`` from ``r = x + N(0, tau2)`` for the Bernoulli-Gaussian prior."""
        spread = self.alpha2 + tau2

        def log_gauss(variance):
            return -0.5 * jnp.log(2 * jnp.pi * variance) - r**2 / (2 * variance)

        log_on = jnp.log(self.p) + log_gauss(spread)
        log_off = jnp.log1p(-self.p) + log_gauss(tau2) if self.p < 1 else jnp.full_like(r, -jnp.inf)
        posterior_on = jax.nn.sigmoid(log_on - log_off)
        return posterior_on * r * (self.alpha2 / spread)

    def step(self, x, context, k):
        gamma = per_iteration(self.gamma, k)
        residual = context["y"] - x @ context["A"].T
        v2 = (jnp.sum(residual**2, axis=-1, keepdims=True) - self.m * self.sigma2) / self.trace_gram
        v2 = jnp.maximum(v2, self.options.epsilon)
        tau2 = v2 / self.n * (self.n + (gamma**2 - 2 * gamma) * self.m) + gamma**2 * self.sigma2 / self.n * self.trace_wwt
        r = x + gamma * (residual @ context["W"].T)
        return self.shrink(r, tau2)


class LISTA(_SparseSolver):
    """LISTA (Gregor and LeCun, ICML 2010): ``x^(t+1) = soft(B_t y + S_t x^(t), theta_t)``.

    ``B_t`` (``n x m``), ``S_t`` (``n x n``) and ``theta_t`` are learned, initialised at
    ISTA's ``A^T/L``, ``I - A^T A/L`` and ``lam/L``. With ``tied`` one set serves every
    iteration (leading axis 1); otherwise each iteration has its own.

    Attributes:
        B, S, theta: the learned matrices and thresholds, stacked over iterations.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        lam: float = 0.05
        tied: bool = False
        lr: float = 1e-4

        def validate(self):
            if not (self.lam >= 0 and self.lr > 0):
                raise ValueError("need lam >= 0 and lr > 0")

    name = "lista"
    description = "LISTA: learned matrices B_t, S_t and thresholds theta_t (tied or not)"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        A = np.asarray(problem.matrix, np.float64)
        L = problem.lipschitz
        layers = 1 if options.tied else depth
        B = np.broadcast_to(A.T / L, (layers,) + A.T.shape)
        S = np.broadcast_to(np.eye(A.shape[1]) - A.T @ A / L, (layers, A.shape[1], A.shape[1]))
        self.B = nnx.Param(jnp.asarray(B, jnp.float32))
        self.S = nnx.Param(jnp.asarray(S, jnp.float32))
        self.theta = nnx.Param(jnp.full((layers,), options.lam / L, jnp.float32))

    def step(self, x, context, k):
        B, S = per_iteration(self.B, k), per_iteration(self.S, k)
        return soft_threshold(context["y"] @ B.T + x @ S.T, per_iteration(self.theta, k))

    def learned_parameters(self):
        return {"theta": np.asarray(self.theta[...])}
