"""DU heavy ball: initial parameters, recurrence, and learning beyond Polyak's constants."""

import jax
import numpy as np
import pytest

from du_framework.engine import evaluate, train
from du_framework.schedules import Incremental
from du_framework.testing import SolverCase, parametrize_with_checks, small_ridge
from du_framework.theory import polyak_parameters
from du_momentum import DUHeavyBall


def test_starts_at_polyak_constants_and_learns_past_them():
    problem = small_ridge(n=10, m=20, lam=1.0, seed=1)
    mu_min, mu_max = problem.spectrum_bounds()
    solver = DUHeavyBall(DUHeavyBall.Options(period=0, lr=5e-4, momentum_lr=5e-4), problem=problem, depth=10)
    alpha, beta = polyak_parameters(mu_min, mu_max)
    np.testing.assert_allclose(solver.alpha[...], alpha, rtol=1e-6)
    np.testing.assert_allclose(solver.beta[...], beta, rtol=1e-6)
    before = evaluate(solver, problem, key=3, batch_size=100, batches=2)
    trained = train(solver, problem, Incremental(), steps_per_stage=40, batch_size=32, key=0, progress=False).solver
    after = evaluate(trained, problem, key=3, batch_size=100, batches=2)
    assert after[-1] < before[-1] / 3, (before[-1], after[-1])


def test_recurrence_matches_numpy():
    problem = small_ridge(n=6, m=12, lam=0.5, seed=5)
    solver = DUHeavyBall(DUHeavyBall.Options(period=2), problem=problem, depth=5)
    solver.alpha[...] = np.array([0.02, 0.05], np.float32)
    solver.beta[...] = np.array([0.3, 0.1], np.float32)
    curve = evaluate(solver, problem, key=8, batch_size=4, batches=1)
    batch = problem.sample(jax.random.split(jax.random.key(8), 1)[0], 4)
    A = np.random.default_rng(5).standard_normal((12, 6))
    H, b = A.T @ A + 0.5 * np.eye(6), np.asarray(batch["y"], np.float64) @ A
    target = np.asarray(batch["target"], np.float64)
    x = previous = np.zeros((4, 6))
    for t in range(5):
        x, previous = x - [0.02, 0.05][t % 2] * (x @ H - b) + [0.3, 0.1][t % 2] * (x - previous), x
        assert curve[t] == pytest.approx(np.mean(np.sum((x - target) ** 2, 1)), rel=1e-3)


@parametrize_with_checks([SolverCase(DUHeavyBall, DUHeavyBall.Options(period=2), id="du-heavy-ball-period-2")])
def test_conformance(case, check):
    check(case)
