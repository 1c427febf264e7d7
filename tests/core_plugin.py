"""An in-process plugin for the experiment-layer tests, built from the core alone.

Core tests import no plugin under plugins/: this module is the plugin. It
registers the core's :class:`SmallLeastSquares` problem, a diagonal quadratic
whose primary metric is its own (``max_error``), a learned and a classical
gradient-descent solver, and an experiment. The fixture :func:`core_plugin`
loads it with ``DU_PLUGINS=""``, so the installed plugins stay out of the way.
"""

import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from du_framework import MSE, Experiment, Metric, Problem, QuadraticProblem, QuadraticSolver, hookimpl, option
from du_framework.registry import plugin_registered
from du_framework.testing.problems import SmallLeastSquares
from du_framework.theory import best_constant_step

from core_solvers import StepGD

SMALL_TOML = """
[problem]
name = "conformance-least-squares"
n = 8
m = 16
lam = 1.0

[train]
depth = 6
steps_per_stage = 20
batch_size = 16

[evaluation]
batch_size = 50
batches = 2

[[solvers]]
name = "learned-gd"
label = "learned"
period = 4

[[solvers]]
name = "constant-gd"
label = "gd"
"""

MAX_ERROR = Metric("max_error", lambda estimate, instance: jnp.max(jnp.abs(estimate - instance["target"]), axis=-1),
                   label="max |error|", format=".2e", log_axis=True)


class DiagonalQuadratic(Problem, QuadraticProblem):
    """``H = diag(linspace(1, kappa, n))``, ``b ~ N(0, I)``, target ``H^-1 b``; primary metric ``max_error``."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        n: int = option(5, ge=1, help="length of x")
        kappa: float = option(10.0, ge=1, help="condition number")

    name = "diag-quadratic"
    description = "core test problem: a diagonal quadratic"
    metrics = (MSE, MAX_ERROR)
    primary_metric = "max_error"

    def __init__(self, options):
        self.n, self.kappa = options.n, options.kappa
        self.diagonal = jnp.linspace(1.0, options.kappa, options.n, dtype=jnp.float32)

    @classmethod
    def from_options(cls, options):
        return cls(options)

    @property
    def dim(self):
        return self.n

    def sample(self, key, batch_size):
        b = jax.random.normal(key, (batch_size, self.n))
        return {"b": b, "target": b / self.diagonal[None, :]}

    def hessian_apply(self, x):
        return x * self.diagonal[None, :]

    def linear_term(self, instance):
        return instance["b"]

    def spectrum_bounds(self):
        return 1.0, float(self.kappa)


class LearnedGD(StepGD):
    """StepGD that draws the best constant step beside its learned steps."""

    name = "learned-gd"
    description = "core test solver: GD with learned steps eta"

    def reference_values(self, problem):
        return {"eta": {"best constant step": np.array([best_constant_step(*problem.spectrum_bounds())])}}


class ConstantGD(QuadraticSolver):
    """``x <- x - s (H x - b)`` with one fixed step ``s``."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        step: float = option(0.0, ge=0, help="the step (0: the best constant step)")

    name = "constant-gd"
    description = "core test solver: GD with a constant step"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.step_size = options.step or best_constant_step(*problem.spectrum_bounds())

    def step(self, problem, context, x, k):
        return x - self.step_size * self.gradient(problem, context, x)

    def constants(self):
        return {"step": np.array([self.step_size])}


@hookimpl
def register_problems(register):
    register(SmallLeastSquares)
    register(DiagonalQuadratic)


@hookimpl
def register_solvers(register):
    register(LearnedGD)
    register(ConstantGD)


@hookimpl
def register_experiments(register):
    register(Experiment("small", SMALL_TOML, "core test experiment: a small least-squares problem"))


@pytest.fixture
def core_plugin(monkeypatch):
    """This module as the only plugin besides the built-in schedules (yields its name)."""
    monkeypatch.setenv("DU_PLUGINS", "")
    with plugin_registered(sys.modules[__name__], "core-tests") as name:
        yield name
