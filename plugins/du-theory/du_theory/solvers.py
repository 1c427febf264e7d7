"""Classical first-order methods with the parameters theory prescribes."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import QuadraticSolver, option, per_iteration
from du_framework import chebyshev_steps, polyak_parameters
from du_framework import Tunable


class ChebyshevGD(QuadraticSolver):
    """Gradient descent with the Chebyshev step sizes of period ``T``.

    ``x^(t+1) = x^(t) - eta_{t mod T} (H x^(t) - b)`` with
    ``eta_k = 1 / ((mu_max + mu_min)/2 + (mu_max - mu_min)/2 cos((2k+1) pi / (2T)))``
    (Takabe and Wadayama, arXiv:2001.05142). After each whole period the error is
    multiplied by a Chebyshev polynomial of H, bounded by ``1 / T_T((kappa+1)/(kappa-1))``.
    The steps are reported as the constant ``eta``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = option(4, ge=1, help="period T of the Chebyshev steps")

    name = "gd-chebyshev"
    description = "GD with Chebyshev step sizes of period T from the spectrum bounds"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.steps = jax.device_put(chebyshev_steps(*problem.spectrum_bounds(), options.period).astype(np.float32))

    def step(self, problem, context, x, k):
        return x - per_iteration(self.steps, k) * self.gradient(problem, context, x)

    def constants(self):
        return {"eta": np.asarray(self.steps)}


class CGState(NamedTuple):
    """Conjugate gradient's state: iterate, residual ``b - H x``, direction, ``||r||^2`` (batch, 1)."""

    x: jax.Array
    r: jax.Array
    p: jax.Array
    rr: jax.Array


class ConjugateGradient(QuadraticSolver):
    """Conjugate gradient on ``H x = b``, per instance; exact in ``dim`` steps in exact arithmetic."""

    name = "cg"
    description = "conjugate gradient (per-instance Krylov optimum)"

    def init_state(self, problem, context):
        b = context.b
        return CGState(x=jnp.zeros_like(b), r=b, p=b, rr=jnp.sum(b * b, axis=-1, keepdims=True))

    def step(self, problem, context, state, k):
        hp = problem.hessian_apply(state.p)
        curvature = jnp.sum(state.p * hp, axis=-1, keepdims=True)
        # Once an instance has converged exactly, hold it rather than divide by zero.
        alpha = jnp.where(curvature > 0, state.rr / jnp.where(curvature > 0, curvature, 1), 0)
        x = state.x + alpha * state.p
        r = state.r - alpha * hp
        rr = jnp.sum(r * r, axis=-1, keepdims=True)
        beta = jnp.where(state.rr > 0, rr / jnp.where(state.rr > 0, state.rr, 1), 0)
        return CGState(x=x, r=r, p=r + beta * state.p, rr=rr)


class HeavyBallState(NamedTuple):
    """The heavy ball's state: the iterate and the one before it."""

    x: jax.Array
    previous: jax.Array


class HeavyBall(QuadraticSolver):
    """Polyak's heavy ball: ``x^(t+1) = x^(t) - alpha (H x^(t) - b) + beta (x^(t) - x^(t-1))``.

    ``alpha`` and ``beta`` default to the optimal constants for the problem's
    spectrum (:func:`polyak_parameters`); its rate approaches
    ``(sqrt(kappa) - 1)/(sqrt(kappa) + 1)`` per iteration. Both are reported as constants.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        alpha: float = option(0.0, ge=0, tune=Tunable(1e-5, 10.0, log=True),
                              help="step size (0: Polyak's optimal 4/(sqrt(mu_max)+sqrt(mu_min))^2)")
        beta: float = option(-1.0, lt=1, tune=Tunable(0.0, 0.99),
                             help="momentum (negative: Polyak's optimal ((sqrt(kappa)-1)/(sqrt(kappa)+1))^2)")

    name = "heavy-ball"
    description = "Polyak heavy-ball momentum with the optimal constant step and momentum"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        alpha, beta = polyak_parameters(*problem.spectrum_bounds())
        self.alpha = float(options.alpha or alpha)
        self.beta = float(beta if options.beta < 0 else options.beta)

    def init_state(self, problem, context):
        zeros = jnp.zeros_like(context.b)
        return HeavyBallState(x=zeros, previous=zeros)

    def step(self, problem, context, state, k):
        x = state.x
        moved = x - self.alpha * self.gradient(problem, context, x) + self.beta * (x - state.previous)
        return HeavyBallState(x=moved, previous=x)

    def constants(self):
        return {"alpha": np.array([self.alpha]), "beta": np.array([self.beta])}
