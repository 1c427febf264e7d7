"""Theory baselines checked against independent numpy computations."""

import jax
import numpy as np
import pytest

from du_framework.engine import evaluate
from du_framework.testing import SolverCase, parametrize_with_checks, small_problem
from du_framework import chebyshev_period_factor, chebyshev_steps, gd_contraction, polyak_parameters
from du_theory import CGState, ChebyshevGD, ConjugateGradient, HeavyBall, HeavyBallState


@pytest.fixture(scope="module")
def ridge():
    problem = small_problem(n=12, m=24, lam=1.0, seed=2)
    A = np.random.default_rng(2).standard_normal((24, 12))
    H = A.T @ A + np.eye(12)
    y = np.asarray(problem.sample(jax.random.split(jax.random.key(4), 1)[0], 64)["y"], np.float64)
    x_opt = np.linalg.solve(H, A.T @ y.T).T
    return problem, H, A, y, x_opt


def mse(x, target):
    return np.mean(np.sum((x - target) ** 2, axis=1))


def mse_curve(solver, problem, **kwargs):
    return evaluate(solver, problem, **kwargs)["mse"]


def test_chebyshev_steps_are_reciprocal_roots_of_the_mapped_chebyshev_polynomial():
    steps = chebyshev_steps(2.0, 10.0, 5)
    # 1/eta_k mapped to [-1, 1] must be the roots cos((2k+1) pi / 10) of T_5.
    mapped = (2 / steps - 12.0) / 8.0
    np.testing.assert_allclose(np.polynomial.chebyshev.chebval(mapped, [0] * 5 + [1]), 0, atol=1e-12)


def test_cg_reaches_machine_precision_within_n_iterations(ridge):
    problem, H, A, y, x_opt = ridge
    curve = mse_curve(ConjugateGradient(ConjugateGradient.Options(), problem=problem, depth=12), problem,
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
    problem = small_problem(n=50, m=100, lam=3.0, seed=0)
    curve = mse_curve(ConjugateGradient(ConjugateGradient.Options(), problem=problem, depth=50), problem,
                      key=1, batch_size=100, batches=1)
    signal = mse_curve(ConjugateGradient(ConjugateGradient.Options(), problem=problem, depth=1), problem,
                       key=1, batch_size=100, batches=1)  # for scale: MSE after one step
    # Relative squared error at t = n: float32 rounding (eps ~ 1.2e-7) squared, times a modest factor.
    assert curve[49] / signal[0] < 1e-10, curve[49] / signal[0]


def test_chebyshev_gd_after_whole_periods_is_the_chebyshev_polynomial_of_h(ridge):
    problem, H, A, y, x_opt = ridge
    period, periods = 4, 3
    solver = ChebyshevGD(ChebyshevGD.Options(period=period), problem=problem, depth=period * periods)
    curve = mse_curve(solver, problem, key=4, batch_size=64, batches=1)
    eig = np.linalg.eigvalsh(H)
    steps = chebyshev_steps(eig[0], eig[-1], period)
    np.testing.assert_allclose(solver.learned_parameters()["eta"], steps, rtol=1e-6)  # reported as a constant
    assert not solver.is_trainable
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
    solver = HeavyBall(HeavyBall.Options(), problem=problem, depth=depth)
    curve = mse_curve(solver, problem, key=4, batch_size=64, batches=1)
    eig = np.linalg.eigvalsh(H)
    alpha, beta = polyak_parameters(eig[0], eig[-1])
    reported = solver.learned_parameters()
    np.testing.assert_allclose([reported["alpha"][0], reported["beta"][0]], [alpha, beta], rtol=1e-9)
    x = previous = np.zeros_like(x_opt)
    b = (A.T @ y.T).T
    for t in range(8):
        x, previous = x - alpha * (x @ H - b) + beta * (x - previous), x
        assert curve[t] == pytest.approx(mse(x, x_opt), rel=2e-3)
    # Momentum's sqrt(kappa) rate beats the best constant-step GD's kappa rate: against GD run in
    # float64 numpy on the same instances (and its textbook bound).
    step = 2.0 / (eig[0] + eig[-1])
    gd_error = np.linalg.matrix_power(np.eye(12) - step * H, depth) @ x_opt.T
    gd = mse(gd_error.T, 0)
    assert gd <= gd_contraction(eig[0], eig[-1]) ** (2 * depth) * mse(0 * x_opt, x_opt)
    assert curve[-1] < gd / 100


def test_states_are_declared_named_tuples(ridge):
    problem = ridge[0]
    instance = problem.sample(jax.random.key(0), 3)
    for solver, state_type in ((ConjugateGradient(ConjugateGradient.Options(), problem=problem, depth=2), CGState),
                               (HeavyBall(HeavyBall.Options(), problem=problem, depth=2), HeavyBallState)):
        context = solver.prepare(problem, instance)
        state = solver.step(problem, context, solver.init_state(problem, context), 0)
        assert isinstance(state, state_type) and solver.estimate(state) is state.x


@parametrize_with_checks([
    SolverCase(ChebyshevGD),
    SolverCase(ChebyshevGD, ChebyshevGD.Options(period=1), id="gd-chebyshev-period-1"),
    SolverCase(ConjugateGradient),
    SolverCase(HeavyBall),
    SolverCase(HeavyBall, HeavyBall.Options(alpha=0.01, beta=0.5), id="heavy-ball-given-constants"),
])
def test_conformance(case, check):
    check(case)
