"""Classical first-order methods with the parameters theory prescribes."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from du_framework import QuadraticSolver, per_iteration
from du_framework.theory import chebyshev_steps, polyak_parameters


class ChebyshevGD(QuadraticSolver):
    """Gradient descent with the Chebyshev step sizes of period ``T``.

    ``x^(t+1) = x^(t) - eta_{t mod T} (H x^(t) - b)`` with
    ``eta_k = 1 / ((mu_max + mu_min)/2 + (mu_max - mu_min)/2 cos((2k+1) pi / (2T)))``
    (Takabe and Wadayama, arXiv:2001.05142). After each whole period the error is
    multiplied by a Chebyshev polynomial of H, bounded by ``1 / T_T((kappa+1)/(kappa-1))``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = 4

        def validate(self):
            if self.period < 1:
                raise ValueError(f"period must be >= 1, got {self.period}")

    name = "gd-chebyshev"
    description = "GD with Chebyshev step sizes of period T from the spectrum bounds"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.steps = jnp.asarray(chebyshev_steps(*problem.spectrum_bounds(), options.period), jnp.float32)

    def step(self, x, context, k):
        return x - per_iteration(self.steps, k) * self.gradient(x, context)

    def learned_parameters(self):
        return {"eta": np.asarray(self.steps)}


class ConjugateGradient(QuadraticSolver):
    """Conjugate gradient on ``H x = b``, per instance; exact in ``dim`` steps in exact arithmetic."""

    name = "cg"
    description = "conjugate gradient (per-instance Krylov optimum)"

    def init_state(self, problem, context):
        b = context["b"]
        residual_norm = jnp.sum(b * b, axis=-1, keepdims=True)
        return {"x": jnp.zeros_like(b), "r": b, "p": b, "rr": residual_norm}

    def step(self, state, context, k):
        hp = context["problem"].hessian_apply(state["p"])
        curvature = jnp.sum(state["p"] * hp, axis=-1, keepdims=True)
        # Once an instance has converged exactly, hold it rather than divide by zero.
        alpha = jnp.where(curvature > 0, state["rr"] / jnp.where(curvature > 0, curvature, 1), 0)
        x = state["x"] + alpha * state["p"]
        r = state["r"] - alpha * hp
        rr = jnp.sum(r * r, axis=-1, keepdims=True)
        beta = jnp.where(state["rr"] > 0, rr / jnp.where(state["rr"] > 0, state["rr"], 1), 0)
        return {"x": x, "r": r, "p": r + beta * state["p"], "rr": rr}


class HeavyBall(QuadraticSolver):
    """Polyak's heavy ball: ``x^(t+1) = x^(t) - alpha (H x^(t) - b) + beta (x^(t) - x^(t-1))``.

    ``alpha`` and ``beta`` default to the optimal constants for the problem's
    spectrum (:func:`polyak_parameters`); its rate approaches
    ``(sqrt(kappa) - 1)/(sqrt(kappa) + 1)`` per iteration.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        alpha: float = 0.0
        beta: float = -1.0

        def validate(self):
            if self.alpha < 0 or self.beta >= 1:
                raise ValueError("need alpha >= 0 (0 = optimal) and beta < 1 (negative = optimal)")

    name = "heavy-ball"
    description = "Polyak heavy-ball momentum with the optimal constant step and momentum"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        alpha, beta = polyak_parameters(*problem.spectrum_bounds())
        self.alpha = float(options.alpha or alpha)
        self.beta = float(beta if options.beta < 0 else options.beta)

    def init_state(self, problem, context):
        zeros = jnp.zeros_like(context["b"])
        return {"x": zeros, "previous": zeros}

    def step(self, state, context, k):
        x = state["x"]
        return {"x": x - self.alpha * self.gradient(x, context) + self.beta * (x - state["previous"]), "previous": x}

    def learned_parameters(self):
        return {"alpha": np.array([self.alpha]), "beta": np.array([self.beta])}
