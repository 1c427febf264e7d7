"""train.backward = "implicit": the gradient at the fixed point, against the closed form in float64, full
backpropagation at a converged depth and finite differences; memory that does not grow with depth; refusals."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from du_framework import ConfigError, QuadraticSolver, Stage, Unconstrained, learned, option
from du_framework.engine import program_memory, train, unroll
from du_framework.engine.unroll import split_solver
from du_framework.testing import small_problem
from du_framework.theory import best_constant_step

from core_solvers import StepGD

LR = 1e-3


class DampedGD(QuadraticSolver):
    """``x <- x - eta ((H + mu I) x - b)`` with one learned ``eta`` and ``mu`` for every iteration: its fixed
    point ``(H + mu I)^{-1} b`` depends on ``mu`` (and not on ``eta``)."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        mu: float = option(0.5, help="initial mu")
        lr: float = option(1e-2, gt=0, help="learning rate")

    name = "test-damped-gd"
    description = "core test solver: damped GD with one map per iteration"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        lo, hi = problem.spectrum_bounds()
        self.eta = learned(np.array([best_constant_step(lo, hi + options.mu)]), constraint=Unconstrained(), lr="lr")
        self.mu = learned(np.array([options.mu]), constraint=Unconstrained(), lr="lr")

    def has_fixed_point(self) -> bool:
        return True

    def step(self, problem, context, x, k):
        return x - self.eta[0] * (self.gradient(problem, context, x) + self.mu[0] * x)


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=6, m=12, lam=1.0, seed=3)


def fixed_point_gradient(problem, mu, instance):
    """d loss / d (eta, mu) at the fixed point x* = (H + mu I)^{-1} b, loss the mean squared error (float64)."""
    A = np.asarray(problem.A, np.float64)
    H = A.T @ A + problem.lam * np.eye(A.shape[1])
    b, target = instance["y"] @ A, instance["target"]
    M = H + mu * np.eye(len(H))
    x = np.linalg.solve(M, b.T).T
    dx = 2.0 * (x - target) / len(x)  # d loss / d x*, loss = mean over instances of ||x - target||^2
    return np.array([0.0, np.sum(dx * -np.linalg.solve(M, x.T).T)])


def first_batch(problem, n=8):
    batch = problem.sample(jax.random.split(jax.random.key(0))[1], n)  # the first step's instances
    return {k: np.asarray(v, np.float64) for k, v in batch.items()}


def test_the_implicit_gradient_is_the_fixed_points_in_float64(problem):
    depth = 200  # converged: the step contracts by about 0.89 per iteration (0.89^200 ~ 1e-10)
    gradient = sgd_gradient_with_rate(problem, depth, "implicit")
    expected = fixed_point_gradient(problem, 0.5, first_batch(problem))
    np.testing.assert_allclose(gradient, expected, rtol=1e-3, atol=1e-4 * abs(expected[1]))


def sgd_gradient_with_rate(problem, depth, backward):
    start = DampedGD(DampedGD.Options(lr=LR), problem=problem, depth=depth)
    result = train(start, problem, [Stage(depth, 1)], batch_size=8, key=0, optimizer="sgd", log_loss=False,
                   progress=False, backward=backward)
    before = np.array([float(start.eta[0]), float(start.mu[0])])
    after = np.array([float(result.solver.eta[0]), float(result.solver.mu[0])])
    return (before - after) / LR


def test_at_a_converged_depth_implicit_and_full_backpropagation_agree(problem):
    implicit = sgd_gradient_with_rate(problem, 200, "implicit")
    full = sgd_gradient_with_rate(problem, 200, "full")
    np.testing.assert_allclose(implicit[1], full[1], rtol=2e-3)
    assert abs(full[0]) < 1e-4 * abs(full[1]) and abs(implicit[0]) < 1e-4 * abs(implicit[1])


def test_the_implicit_gradient_matches_finite_differences_of_the_loss(problem):
    solver = DampedGD(DampedGD.Options(), problem=problem, depth=200)
    merge, params, rest = split_solver(solver)
    batch = problem.sample(jax.random.key(5), 8)

    def loss(params, implicit):
        x, _ = unroll(merge(params, rest), problem, batch, implicit=implicit)
        return jnp.mean(jnp.sum((x - batch["target"]) ** 2, axis=-1))

    gradient = jax.grad(loss)(params, True)
    h = 1e-2
    bumped = lambda d: jax.tree.map(lambda v: v, {**params, "mu": params["mu"] + d})  # noqa: E731
    numeric = (loss(bumped(h), True) - loss(bumped(-h), True)) / (2 * h)
    np.testing.assert_allclose(float(gradient["mu"][0]), float(numeric), rtol=5e-3)


def test_implicit_memory_does_not_grow_with_depth(problem):
    def memory(depth, backward):
        return program_memory(DampedGD(DampedGD.Options(), problem=problem, depth=depth), problem, [Stage(depth, 1)],
                              batch_size=64, backward=backward)

    state = 64 * 6 * 4  # bytes of one iterate of the batch
    assert memory(1000, "implicit") - memory(10, "implicit") < 5 * state  # (the iteration indices: 4 kB)
    assert memory(1000, "full") - memory(10, "full") > 900 * state  # full backpropagation keeps every iterate


def test_implicit_is_refused_for_a_solver_without_a_fixed_point_and_with_weighted_iterations(problem):
    steps = StepGD(StepGD.Options(), problem=problem, depth=4)
    with pytest.raises(ConfigError, match="test-step-gd.*has none.*backward = 'full' or 'truncated'"):
        train(steps, problem, [Stage(4, 1)], batch_size=4, key=0, backward="implicit", progress=False)
    damped = DampedGD(DampedGD.Options(), problem=problem, depth=4)
    with pytest.raises(ConfigError, match="loss_weights = 'final'"):
        train(damped, problem, [Stage(4, 1)], batch_size=4, key=0, backward="implicit", loss_weights="all",
              progress=False)
    with pytest.raises(ConfigError, match="truncate and train.remat do not apply"):
        train(damped, problem, [Stage(4, 1)], batch_size=4, key=0, backward="implicit", remat=True, progress=False)
