"""Theory baselines checked against independent numpy computations."""

import jax
import numpy as np
import pytest

from du_framework.engine import evaluate
from du_framework.testing import (
    SolverCase,
    check_capability_honoured,
    check_evaluation_curve,
    parametrize_with_checks,
    small_ridge,
)
from du_framework.theory import chebyshev_period_factor, chebyshev_steps, polyak_parameters
from du_theory import ChebyshevGD, ConjugateGradient, HeavyBall


@pytest.fixture(scope="module")
def ridge():
    problem = small_ridge(n=12, m=24, lam=1.0, seed=2)
    A = np.random.default_rng(2).standard_normal((24, 12))
    H = A.T @ A + np.eye(12)
    y = np.asarray(problem.sample(jax.random.split(jax.random.key(4), 1)[0], 64)["y"], np.float64)
    x_opt = np.linalg.solve(H, A.T @ y.T).T
    return problem, H, A, y, x_opt


def mse(x, target):
    return np.mean(np.sum((x - target) ** 2, axis=1))


def test_chebyshev_steps_are_reciprocal_roots_of_the_mapped_chebyshev_polynomial():
    steps = chebyshev_steps(2.0, 10.0, 5)
    # 1/eta_k mapped to [-1, 1] must be the roots cos((2k+1) pi / 10) of T_5.
    mapped = (2 / steps - 12.0) / 8.0
    np.testing.assert_allclose(np.polynomial.chebyshev.chebval(mapped, [0] * 5 + [1]), 0, atol=1e-12)


def test_cg_reaches_machine_precision_within_n_iterations(ridge):
    problem, H, A, y, x_opt = ridge
    curve = evaluate(ConjugateGradient(ConjugateGradient.Options(), problem=problem, depth=12), problem,
                     key=4, batch_size=64, batches=1)
    # The first iterations against a float64 numpy CG on the same instances.
    x, r = np.zeros_like(x_opt), A.T @ y.T
    r = r.T
    p, expected = r.copy(), []
    for _ in range(4):
        hp = p @ H
        alpha = np.sum(r * r, 1, keepdims=True) / np.sum(p * hp, 1, keepdims=True)
        x, r_new = x + alpha * p, r - alpha * hp
        p = r_new + np.sum(r_new * r_new, 1, keepdims=True) / np.sum(r * r, 1, keepdims=True) * p
        r = r_new
        expected.append(mse(x, x_opt))
    np.testing.assert_allclose(curve[:4], expected, rtol=1e-3)


def test_cg_reaches_float32_precision_on_the_reference_instance():
    problem = small_ridge(n=50, m=100, lam=3.0, seed=0)
    curve = evaluate(ConjugateGradient(ConjugateGradient.Options(), problem=problem, depth=50), problem,
                     key=1, batch_size=100, batches=1)
    signal = evaluate(ConjugateGradient(ConjugateGradient.Options(), problem=problem, depth=1), problem,
                      key=1, batch_size=100, batches=1)  # for scale: MSE after one step
    # Relative squared error at t = n: float32 rounding (eps ~ 1.2e-7) squared, times a modest factor.
    assert curve[49] / signal[0] < 1e-10, curve[49] / signal[0]


def test_chebyshev_gd_after_whole_periods_is_the_chebyshev_polynomial_of_h(ridge):
    problem, H, A, y, x_opt = ridge
    period, periods = 4, 3
    curve = evaluate(ChebyshevGD(ChebyshevGD.Options(period=period), problem=problem, depth=period * periods),
                     problem, key=4, batch_size=64, batches=1)
    eig = np.linalg.eigvalsh(H)
    steps = chebyshev_steps(eig[0], eig[-1], period)
    one_period = np.eye(12)
    for eta in steps:
        one_period = (np.eye(12) - eta * H) @ one_period
    mse0 = mse(0 * x_opt, x_opt)
    bound = chebyshev_period_factor(eig[0], eig[-1], period)
    for k in range(1, periods + 1):
        exact = mse(x_opt @ np.linalg.matrix_power(one_period, k).T, 0)
        assert curve[k * period - 1] == pytest.approx(exact, rel=1e-3)
        assert curve[k * period - 1] <= bound ** (2 * k) * mse0 * (1 + 1e-4)
    # The bound is the maximum of |P_T| over the spectrum interval, attained at its ends.
    assert np.max(np.abs(np.linalg.eigvalsh((one_period + one_period.T) / 2))) <= bound + 1e-9


def test_heavy_ball_follows_its_recurrence_and_polyak_rate(ridge):
    problem, H, A, y, x_opt = ridge
    depth = 40
    curve = evaluate(HeavyBall(HeavyBall.Options(), problem=problem, depth=depth), problem, key=4, batch_size=64,
                     batches=1)
    eig = np.linalg.eigvalsh(H)
    alpha, beta = polyak_parameters(eig[0], eig[-1])
    x = previous = np.zeros_like(x_opt)
    b = (A.T @ y.T).T
    for t in range(8):
        x, previous = x - alpha * (x @ H - b) + beta * (x - previous), x
        assert curve[t] == pytest.approx(mse(x, x_opt), rel=2e-3)
    # Momentum's sqrt(kappa) rate beats the best constant-step GD's kappa rate.
    from du_gd_ridge import ConstantStepGD

    gd = evaluate(ConstantStepGD(ConstantStepGD.Options(), problem=problem, depth=depth), problem, key=4,
                  batch_size=64, batches=1)
    assert curve[-1] < gd[-1] / 100


@parametrize_with_checks([SolverCase(ChebyshevGD), SolverCase(ConjugateGradient), SolverCase(HeavyBall)],
                         checks=[check_capability_honoured, check_evaluation_curve])
def test_conformance(case, check):
    check(case)
