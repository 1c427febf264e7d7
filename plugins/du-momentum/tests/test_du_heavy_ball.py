"""DU heavy ball: initial parameters, recurrence, and learning beyond Polyak's constants."""

import jax
import numpy as np
import pytest

from du_framework.engine import evaluate, train
from du_framework import learning_rates
from du_framework import Incremental
from du_framework.testing import SolverCase, parametrize_with_checks, small_problem
from du_framework import polyak_parameters
from du_momentum import DUHeavyBall, MomentumState


def test_starts_at_polyak_constants_and_learns_past_them():
    problem = small_problem(n=10, m=20, lam=1.0, seed=1)
    mu_min, mu_max = problem.spectrum_bounds()
    solver = DUHeavyBall(DUHeavyBall.Options(period=0, lr=5e-4, momentum_lr=5e-4), problem=problem, depth=10)
    # Independent: Polyak's constants from numpy's spectrum.
    A = np.random.default_rng(1).standard_normal((20, 10))
    eig = np.linalg.eigvalsh(A.T @ A + np.eye(10))
    root = np.sqrt(eig[-1] / eig[0])
    alpha, beta = 4 / (np.sqrt(eig[-1]) + np.sqrt(eig[0])) ** 2, ((root - 1) / (root + 1)) ** 2
    assert polyak_parameters(mu_min, mu_max) == pytest.approx((alpha, beta), rel=1e-9)
    reported = solver.learned_parameters()
    np.testing.assert_allclose(reported["alpha"], [alpha] * 10, rtol=1e-6)
    np.testing.assert_allclose(reported["beta"], [beta] * 10, rtol=1e-6)
    before = evaluate(solver, problem, key=3, batch_size=100, batches=2)["mse"]
    trained = train(solver, problem, Incremental(), steps_per_stage=40, batch_size=32, key=0, log_loss=False,
                    progress=False).solver
    after = evaluate(trained, problem, key=3, batch_size=100, batches=2)["mse"]
    assert after[-1] < before[-1] / 3, (before[-1], after[-1])


def test_each_parameter_has_its_learning_rate():
    problem = small_problem()
    solver = DUHeavyBall(DUHeavyBall.Options(period=3, lr=2e-3, momentum_lr=5e-4), problem=problem, depth=4)
    assert learning_rates(solver) == {"alpha": 2e-3, "beta": 5e-4}
    assert {name: value.shape for name, value in solver.learned_parameters().items()} == {"alpha": (3,), "beta": (3,)}


def test_recurrence_matches_numpy():
    problem = small_problem(n=6, m=12, lam=0.5, seed=5)
    solver = DUHeavyBall(DUHeavyBall.Options(period=2), problem=problem, depth=5)
    solver.alpha[...] = np.array([0.02, 0.05], np.float32)
    solver.beta[...] = np.array([0.3, 0.1], np.float32)
    instance = problem.sample(jax.random.key(0), 2)
    context = solver.prepare(problem, instance)
    assert isinstance(solver.step(problem, context, solver.init_state(problem, context), 0), MomentumState)
    curve = evaluate(solver, problem, key=8, batch_size=4, batches=1)["mse"]
    batch = problem.sample(jax.random.split(jax.random.key(8), 1)[0], 4)
    A = np.random.default_rng(5).standard_normal((12, 6))
    H, b = A.T @ A + 0.5 * np.eye(6), np.asarray(batch["y"], np.float64) @ A
    target = np.asarray(batch["target"], np.float64)
    x = previous = np.zeros((4, 6))
    for t in range(5):
        x, previous = x - [0.02, 0.05][t % 2] * (x @ H - b) + [0.3, 0.1][t % 2] * (x - previous), x
        assert curve[t] == pytest.approx(np.mean(np.sum((x - target) ** 2, 1)), rel=1e-3)


@parametrize_with_checks([
    SolverCase(DUHeavyBall),
    SolverCase(DUHeavyBall, DUHeavyBall.Options(period=2), id="du-heavy-ball-period-2"),
])
def test_conformance(case, check):
    check(case)
