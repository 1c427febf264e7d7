"""A small learned solver inside the core tests (core tests import no plugin)."""

import dataclasses

import numpy as np

from du_framework import QuadraticSolver, Reciprocal, Unconstrained, learned, option, per_iteration
from du_framework.theory import best_constant_step


class StepGD(QuadraticSolver):
    """``x <- x - eta_t (H x - b)`` with learned steps ``eta`` of period ``period`` (0: one per iteration)."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = option(0, ge=0, help="learned steps (0: one per iteration)")
        init_step: float = option(0.0, ge=0, help="initial step (0: the best constant step)")
        reciprocal: bool = option(False, help="learn c / eta instead of eta")
        lr: float = option(1e-2, gt=0, help="learning rate of the steps")

    name = "test-step-gd"
    description = "core test solver: GD with learned steps"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        unit = best_constant_step(*problem.spectrum_bounds())
        start = options.init_step or unit
        constraint = Reciprocal(unit) if options.reciprocal else Unconstrained()
        self.eta = learned(np.full(options.period or depth, start), constraint=constraint, lr="lr", doc="step")

    def step(self, problem, context, x, k):
        return x - per_iteration(self.eta, k) * self.gradient(problem, context, x)
