"""DU-GD (learned step sizes, optionally learned regularisation) and classical GD."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp
import numpy as np
from flax import nnx

from du_framework import QuadraticProblem, QuadraticSolver, RegularizedLeastSquares, UnfoldedSolver, per_iteration
from du_framework.theory import best_constant_step


class DUGD(UnfoldedSolver):
    """Deep-unfolded gradient descent for regularised least squares.

    ``x^(0) = 0``, ``x^(t+1) = x^(t) - eta_t (A^T (A x^(t) - y) + lambda_t x^(t))``.

    ``eta`` has ``period`` entries (``eta_t = eta[t mod period]``; period 0 learns
    one step per iteration). With ``learn_lambda``, ``lambda_t = |xi_t|`` is
    learned too (kept non-negative, initialised at the problem's lambda), with
    ``lambda_period`` entries (0: one per iteration).

    How the steps are learned (``parametrization``):

    * ``"reciprocal"`` (default): Adam trains ``rho_t = c / eta_t``, the
      reciprocal step in units of the best constant step
      ``c = 2 / (mu_min + mu_max)``. ``1 / eta_t`` is a root of the residual
      polynomial ``prod_t (1 - eta_t mu)``, so one Adam step moves every root by
      a similar share of the spectrum; learning ``eta_t`` itself needs a
      precision on the small steps (those near ``1/mu_max``) that an Adam rate
      large enough to reach the large steps cannot give.
      ``init_step = 0`` starts every step at ``c`` (``rho_t = 1``).
    * ``"step"``: Adam trains ``eta_t`` as in the book; ``init_step`` is the
      initial value (0, the book's choice, by default).

    Attributes:
        rho: learned reciprocal steps, shape ``(period,)``, with ``"reciprocal"``.
        eta: learned step sizes, shape ``(period,)``, with ``"step"``.
        xi: learned regularisation weights before ``abs``, present with ``learn_lambda``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = 4
        learn_lambda: bool = False
        lambda_period: int = 0
        parametrization: Literal["reciprocal", "step"] = "reciprocal"
        init_step: float = 0.0
        lr: float = 1e-2
        lambda_lr: float = 1e-4

        def validate(self):
            if self.period < 0 or self.lambda_period < 0:
                raise ValueError("period and lambda_period must be >= 0 (0 means one value per iteration)")
            if self.parametrization == "reciprocal" and self.init_step < 0:
                raise ValueError(f"init_step must be >= 0 with the reciprocal parametrization "
                                 f"(0 = the best constant step), got {self.init_step}")
            if not (self.lr > 0 and self.lambda_lr > 0):
                raise ValueError(f"learning rates must be > 0, got lr={self.lr}, lambda_lr={self.lambda_lr}")

    name = "dugd"
    requires = RegularizedLeastSquares
    description = "DU-GD: learned step sizes eta_t (period T), optionally learned lambda_t"

    def __init__(self, options: "DUGD.Options", *, problem: RegularizedLeastSquares, depth: int):
        super().__init__(options, problem=problem, depth=depth)
        steps = options.period or depth
        if options.parametrization == "reciprocal":
            self.unit = best_constant_step(*problem.spectrum_bounds())
            start = self.unit / options.init_step if options.init_step else 1.0
            self.rho = nnx.Param(jnp.asarray(np.full((steps,), start, dtype=np.float32)))
        else:
            self.eta = nnx.Param(jnp.asarray(np.full((steps,), options.init_step, dtype=np.float32)))
        if options.learn_lambda:
            slots = options.lambda_period or depth
            self.xi = nnx.Param(jnp.asarray(np.full((slots,), problem.lam, dtype=np.float32)))

    def prepare(self, problem, instance):
        return {"gram": problem.gram, "aty": problem.adjoint_observation(instance), "lam": problem.lam}

    def init_state(self, problem, context):
        return jnp.zeros_like(context["aty"])

    def step_size(self, k):
        """``eta_k`` (``k`` may be traced)."""
        if self.options.parametrization == "reciprocal":
            return self.unit / per_iteration(self.rho, k)
        return per_iteration(self.eta, k)

    def step(self, x, context, k):
        lam = jnp.abs(per_iteration(self.xi, k)) if self.options.learn_lambda else context["lam"]
        gradient = x @ context["gram"] - context["aty"] + lam * x
        return x - self.step_size(k) * gradient

    def learning_rates(self):
        rates = {"rho" if self.options.parametrization == "reciprocal" else "eta": self.options.lr}
        if self.options.learn_lambda:
            rates["xi"] = self.options.lambda_lr
        return rates

    def learned_parameters(self):
        if self.options.parametrization == "reciprocal":
            eta = self.unit / np.asarray(self.rho[...], dtype=np.float64)
        else:
            eta = np.asarray(self.eta[...])
        learned = {"eta": eta}
        if self.options.learn_lambda:
            learned["lambda"] = np.abs(np.asarray(self.xi[...]))
        return learned


class ConstantStepGD(QuadraticSolver):
    """Gradient descent with one constant step on a quadratic problem.

    ``step = 0`` (the default) takes the best constant step ``2 / (mu_min + mu_max)``
    from the problem's spectrum; its error contracts by ``(kappa - 1)/(kappa + 1)``
    per iteration. Nothing is learned.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        step: float = 0.0

        def validate(self):
            if self.step < 0:
                raise ValueError(f"step must be >= 0 (0 = best constant step), got {self.step}")

    name = "gd"
    description = "gradient descent, constant step (default 2/(mu_min+mu_max))"

    def __init__(self, options: "ConstantStepGD.Options", *, problem: QuadraticProblem, depth: int):
        super().__init__(options, problem=problem, depth=depth)
        self.step_size = float(options.step or best_constant_step(*problem.spectrum_bounds()))

    def step(self, x, context, k):
        return x - self.step_size * self.gradient(x, context)

    def learned_parameters(self):
        return {"step": np.array([self.step_size])}
