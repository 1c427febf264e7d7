"""Deep-unfolded heavy-ball momentum (the ``du-heavy-ball`` solver)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from du_framework import QuadraticSolver, hookimpl, per_iteration
from du_framework.theory import polyak_parameters

__all__ = ["DUHeavyBall"]


class DUHeavyBall(QuadraticSolver):
    """``x^(t+1) = x^(t) - alpha_t (H x^(t) - b) + beta_t (x^(t) - x^(t-1))``, ``x^(-1) = x^(0) = 0``.

    ``alpha`` and ``beta`` are learned with ``period`` entries each (0: one per
    iteration), initialised at Polyak's optimal constants for the problem's spectrum.

    Attributes:
        alpha: learned step sizes, shape ``(period,)``.
        beta: learned momentum factors, shape ``(period,)``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = 0
        lr: float = 1e-3
        momentum_lr: float = 1e-3

        def validate(self):
            if self.period < 0:
                raise ValueError(f"period must be >= 0 (0 = one per iteration), got {self.period}")
            if not (self.lr > 0 and self.momentum_lr > 0):
                raise ValueError("learning rates must be > 0")

    name = "du-heavy-ball"
    description = "DU heavy ball: learned step alpha_t and momentum beta_t (optional period T)"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        alpha, beta = polyak_parameters(*problem.spectrum_bounds())
        slots = options.period or depth
        self.alpha = nnx.Param(jnp.full((slots,), alpha, jnp.float32))
        self.beta = nnx.Param(jnp.full((slots,), beta, jnp.float32))

    def init_state(self, problem, context):
        zeros = jnp.zeros_like(context["b"])
        return {"x": zeros, "previous": zeros}

    def step(self, state, context, k):
        x = state["x"]
        momentum = per_iteration(self.beta, k) * (x - state["previous"])
        moved = x - per_iteration(self.alpha, k) * self.gradient(x, context) + momentum
        return {"x": moved, "previous": x}

    def learning_rates(self):
        return {"alpha": self.options.lr, "beta": self.options.momentum_lr}

    def learned_parameters(self):
        return {"alpha": np.asarray(self.alpha[...]), "beta": np.asarray(self.beta[...])}


@hookimpl
def register_solvers(register):
    register(DUHeavyBall)
