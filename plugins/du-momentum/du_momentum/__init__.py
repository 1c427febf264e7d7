"""Deep-unfolded heavy-ball momentum (the ``du-heavy-ball`` solver)."""

from __future__ import annotations

__version__ = "0.1.0"

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import QuadraticSolver, hookimpl, learned, option, per_iteration
from du_framework import polyak_parameters
from du_framework import Tunable

__all__ = ["DUHeavyBall", "MomentumState"]


class MomentumState(NamedTuple):
    """The iterate and the one before it."""

    x: jax.Array
    previous: jax.Array


class DUHeavyBall(QuadraticSolver):
    """``x^(t+1) = x^(t) - alpha_t (H x^(t) - b) + beta_t (x^(t) - x^(t-1))``, ``x^(-1) = x^(0) = 0``.

    ``alpha`` and ``beta`` are learned with ``period`` entries each (0: one per
    iteration), unconstrained, initialised at Polyak's optimal constants for the
    problem's spectrum.

    Attributes:
        alpha: learned step sizes, ``period`` slots (learning rate ``lr``).
        beta: learned momentum factors, ``period`` slots (learning rate ``momentum_lr``).
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = option(0, ge=0, help="learned (alpha, beta) pairs, used periodically (0: one per iteration)")
        lr: float = option(1e-3, gt=0, tune=Tunable(1e-5, 1e-1, log=True), help="learning rate of the steps alpha")
        momentum_lr: float = option(1e-3, gt=0, tune=Tunable(1e-5, 1e-1, log=True),
                                    help="learning rate of the momenta beta")

    name = "du-heavy-ball"
    description = "DU heavy ball: learned step alpha_t and momentum beta_t (optional period T)"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        alpha, beta = polyak_parameters(*problem.spectrum_bounds())
        slots = options.period or depth
        self.alpha = learned(np.full(slots, alpha), lr="lr", doc="step size alpha_t")
        self.beta = learned(np.full(slots, beta), lr="momentum_lr", doc="momentum beta_t")

    def init_state(self, problem, context):
        zeros = jnp.zeros_like(context.b)
        return MomentumState(x=zeros, previous=zeros)

    def step(self, problem, context, state, k):
        x = state.x
        momentum = per_iteration(self.beta, k) * (x - state.previous)
        moved = x - per_iteration(self.alpha, k) * self.gradient(problem, context, x) + momentum
        return MomentumState(x=moved, previous=x)


@hookimpl
def register_solvers(register):
    register(DUHeavyBall)
