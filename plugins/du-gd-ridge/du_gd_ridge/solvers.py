"""DU-GD (learned step sizes, optionally learned regularisation) and classical GD."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from du_framework import (
    NonNegative,
    QuadraticProblem,
    QuadraticSolver,
    Reciprocal,
    RegularizedLeastSquares,
    Unconstrained,
    learned,
    option,
    per_iteration,
)
from du_framework import best_constant_step, chebyshev_steps
from du_framework import Tunable

# Longest period whose Chebyshev steps are offered as reference lines (beyond it they crowd the plot).
_MAX_REFERENCE_PERIOD = 64


class DUGD(QuadraticSolver):
    """Deep-unfolded gradient descent for regularised least squares.

    ``x^(0) = 0``, ``x^(t+1) = x^(t) - eta_t (A^T (A x^(t) - y) + lambda_t x^(t))``.

    ``eta`` has ``period`` entries (``eta_t = eta[t mod period]``; period 0 learns
    one step per iteration). With ``learn_lambda``, ``lam`` (``lambda_t``) is
    learned too, kept non-negative as ``|raw|`` and initialised at the problem's
    lambda, with ``lambda_period`` entries (0: one per iteration).

    How the steps are learned (``parametrization``):

    * ``"reciprocal"`` (default): ``eta`` is stored through
      :class:`~du_framework.Reciprocal` with scale ``c = 2 / (mu_min + mu_max)``,
      the best constant step, so Adam trains ``raw_t = c / eta_t``. ``1 / eta_t``
      is a root of the residual polynomial ``prod_t (1 - eta_t mu)``, so one Adam
      step moves every root by a similar share of the spectrum; learning
      ``eta_t`` itself needs a precision on the small steps (those near
      ``1/mu_max``) that an Adam rate large enough to reach the large steps
      cannot give. ``init_step = 0`` starts every step at ``c`` (raw value 1).
    * ``"step"``: Adam trains ``eta_t`` itself (unconstrained), as in the book;
      ``init_step`` is the initial value (0, the book's choice, by default).

    Attributes:
        eta: learned step sizes, ``period`` slots (learning rate ``lr``).
        lam: learned regularisation weights ``lambda_t >= 0``, present with
            ``learn_lambda`` (learning rate ``lambda_lr``).
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = option(4, ge=0, help="learned steps, used periodically (0: one per iteration)")
        learn_lambda: bool = option(False, help="also learn the regularisation weight lambda_t")
        lambda_period: int = option(0, ge=0, help="learned lambda_t values, used periodically (0: one per iteration)")
        parametrization: Literal["reciprocal", "step"] = option(
            "reciprocal", tune=Tunable(choices=("reciprocal", "step")),
            help="what the optimiser moves: the reciprocal steps (in units of the best "
                 "constant step) or the steps themselves")
        init_step: float = option(0.0, help="initial step: with reciprocal >= 0, 0 meaning the best constant "
                                             "step; with step any value (0, the book's choice)")
        lr: float = option(1e-2, gt=0, tune=Tunable(1e-4, 1e-1, log=True), help="learning rate of the steps eta")
        lambda_lr: float = option(1e-4, gt=0, tune=Tunable(1e-6, 1e-2, log=True),
                                  help="learning rate of the learned lambda_t (lam)")

        def validate(self):
            if self.parametrization == "reciprocal" and self.init_step < 0:
                raise ValueError(f"init_step must be >= 0 with the reciprocal parametrization "
                                 f"(0 = the best constant step), got {self.init_step}")

    name = "dugd"
    requires = RegularizedLeastSquares
    description = "DU-GD: learned step sizes eta_t (period T), optionally learned lambda_t"

    def __init__(self, options: "DUGD.Options", *, problem: RegularizedLeastSquares, depth: int):
        super().__init__(options, problem=problem, depth=depth)
        slots = options.period or depth
        if options.parametrization == "reciprocal":
            unit = best_constant_step(*problem.spectrum_bounds())
            start = options.init_step or unit  # raw = unit / start: exactly 1.0 by default
            self.eta = learned(np.full(slots, start), constraint=Reciprocal(unit), lr="lr",
                               doc="step size eta_t (stored as its reciprocal in units of the best constant step)")
        else:
            self.eta = learned(np.full(slots, options.init_step), constraint=Unconstrained(), lr="lr",
                               doc="step size eta_t")
        if options.learn_lambda:
            self.lam = learned(np.full(options.lambda_period or depth, problem.lam), constraint=NonNegative(),
                               lr="lambda_lr", doc="regularisation weight lambda_t (|raw|)")

    def step(self, problem, context, x, k):
        lam = per_iteration(self.lam, k) if self.options.learn_lambda else problem.lam
        gradient = x @ problem.gram - context.b + lam * x
        return x - per_iteration(self.eta, k) * gradient

    def reference_values(self, problem):
        period = int(self.eta[...].shape[0])
        if not isinstance(problem, QuadraticProblem) or period > _MAX_REFERENCE_PERIOD:
            return {}
        steps = chebyshev_steps(*problem.spectrum_bounds(), period)
        return {"eta": {f"Chebyshev steps (T={period})": steps}}


class ConstantStepGD(QuadraticSolver):
    """Gradient descent with one constant step on a quadratic problem.

    ``step = 0`` (the default) takes the best constant step ``2 / (mu_min + mu_max)``
    from the problem's spectrum; its error contracts by ``(kappa - 1)/(kappa + 1)``
    per iteration. Nothing is learned; the step is reported as the constant ``step``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        step: float = option(0.0, ge=0, tune=Tunable(1e-5, 10.0, log=True),
                             help="the constant step (0: the best constant step 2/(mu_min+mu_max))")

    name = "gd"
    description = "gradient descent, constant step (default 2/(mu_min+mu_max))"

    def __init__(self, options: "ConstantStepGD.Options", *, problem: QuadraticProblem, depth: int):
        super().__init__(options, problem=problem, depth=depth)
        self.step_size = float(options.step or best_constant_step(*problem.spectrum_bounds()))

    def step(self, problem, context, x, k):
        return x - self.step_size * self.gradient(problem, context, x)

    def constants(self):
        return {"step": np.array([self.step_size])}
