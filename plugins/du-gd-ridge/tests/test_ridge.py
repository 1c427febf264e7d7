"""The reference plugin checked against independent numpy computations."""

import jax
import numpy as np
import pytest

from du_framework import IncompatibleProblemError, ProblemDataError
from du_framework.engine import evaluate, train
from du_framework.schedules import Incremental
from du_framework.testing import SolverCase, parametrize_with_checks
from du_framework.theory import gd_contraction
from du_gd_ridge import DUGD, ConstantStepGD, RidgeProblem


@pytest.fixture(scope="module")
def problem():
    return RidgeProblem.from_options(RidgeProblem.Options(n=10, m=20, lam=2.0, seed=4))


def test_targets_are_the_regularised_least_squares_solutions(problem):
    batch = problem.sample(jax.random.key(1), 5)
    A = np.random.default_rng(4).standard_normal((20, 10))
    y = np.asarray(batch["y"], np.float64)
    # Independent: the ridge solution as an augmented least-squares problem.
    augmented = np.vstack([A, np.sqrt(2.0) * np.eye(10)])
    expected = np.linalg.lstsq(augmented, np.hstack([y, np.zeros((5, 10))]).T, rcond=None)[0].T
    np.testing.assert_allclose(np.asarray(batch["target"]), expected, rtol=2e-4, atol=2e-5)


def test_spectrum_bounds_match_numpy(problem):
    A = np.random.default_rng(4).standard_normal((20, 10))
    eig = np.linalg.eigvals(A.T @ A + 2.0 * np.eye(10)).real
    assert problem.spectrum_bounds() == pytest.approx((eig.min(), eig.max()), rel=1e-9)


def test_gd_curve_follows_the_closed_form_iteration_matrix(problem):
    depth = 30
    gd = ConstantStepGD(ConstantStepGD.Options(), problem=problem, depth=depth)
    curve = evaluate(gd, problem, key=5, batch_size=50, batches=1)
    # The same instances, solved independently: e_t = (I - s H)^t e_0, e_0 = -x_opt.
    batch_key = jax.random.split(jax.random.key(5), 1)[0]
    y = np.asarray(problem.sample(batch_key, 50)["y"], np.float64)
    A = np.random.default_rng(4).standard_normal((20, 10))
    H = A.T @ A + 2.0 * np.eye(10)
    x_opt = np.linalg.solve(H, A.T @ y.T).T
    mu = np.linalg.eigvalsh(H)
    step = 2.0 / (mu[0] + mu[-1])
    M = np.eye(10) - step * H
    expected = [np.mean(np.sum((x_opt @ np.linalg.matrix_power(M, t).T) ** 2, axis=1)) for t in range(1, depth + 1)]
    np.testing.assert_allclose(curve, expected, rtol=2e-3, atol=1e-9)
    # And the textbook bound: MSE_t <= rate^(2t) MSE_0.
    rate = gd_contraction(mu[0], mu[-1])
    mse0 = np.mean(np.sum(x_opt**2, axis=1))
    assert np.all(curve <= rate ** (2 * np.arange(1, depth + 1)) * mse0 * (1 + 1e-3))


@pytest.mark.parametrize("parametrization", ["step", "reciprocal"])
def test_dugd_recurrence_matches_numpy(problem, parametrization):
    solver = DUGD(DUGD.Options(period=3, learn_lambda=True, lambda_period=0, parametrization=parametrization),
                  problem=problem, depth=7)
    steps = np.array([0.01, 0.05, 0.02])
    if parametrization == "step":
        solver.eta[...] = steps.astype(np.float32)
    else:  # rho_t = c / eta_t with c the best constant step, computed here from numpy's spectrum
        A = np.random.default_rng(4).standard_normal((20, 10))
        mu = np.linalg.eigvalsh(A.T @ A + problem.lam * np.eye(10))
        solver.rho[...] = (2.0 / (mu[0] + mu[-1]) / steps).astype(np.float32)
    np.testing.assert_allclose(solver.learned_parameters()["eta"], steps, rtol=1e-6)
    solver.xi[...] = -np.linspace(0.0, 3.0, 7).astype(np.float32)  # lambda_t = |xi_t|
    curve = evaluate(solver, problem, key=8, batch_size=4, batches=1)
    batch = problem.sample(jax.random.split(jax.random.key(8), 1)[0], 4)
    A = np.random.default_rng(4).standard_normal((20, 10))
    y, target = np.asarray(batch["y"], np.float64), np.asarray(batch["target"], np.float64)
    x = np.zeros((4, 10))
    for t in range(7):
        lam_t = np.linspace(0.0, 3.0, 7)[t]
        x = x - [0.01, 0.05, 0.02][t % 3] * ((x @ A.T - y) @ A + lam_t * x)
        assert curve[t] == pytest.approx(np.mean(np.sum((x - target) ** 2, axis=1)), rel=1e-3)


def test_dugd_learns_to_beat_the_best_constant_step_on_fresh_instances(problem):
    depth = 12
    solver = DUGD(DUGD.Options(period=4, lr=5e-3), problem=problem, depth=depth)
    trained = train(solver, problem, Incremental(), steps_per_stage=40, batch_size=32, key=0, progress=False).solver
    gd = ConstantStepGD(ConstantStepGD.Options(), problem=problem, depth=depth)
    learned = evaluate(trained, problem, key=77, batch_size=100, batches=2)
    baseline = evaluate(gd, problem, key=77, batch_size=100, batches=2)
    assert learned[-1] < baseline[-1] / 5, (learned[-1], baseline[-1])  # 11x to 92x over training seeds 0-3


def test_dugd_reaches_the_chebyshev_steps_with_the_reference_training(problem):
    # The reference recipe (reciprocal steps, log loss) at test size: depth 24, T = 4, kappa = 10.5.
    depth = 24
    trained = train(DUGD(DUGD.Options(period=4), problem=problem, depth=depth), problem, Incremental(),
                    steps_per_stage=20, batch_size=32, key=0, log_loss=True, progress=False).solver
    learned = evaluate(trained, problem, key=77, batch_size=100, batches=1)[-1]
    # Independent: Chebyshev steps (Takabe and Wadayama) applied in float64 to the same instances.
    A = np.random.default_rng(4).standard_normal((20, 10))
    H = A.T @ A + 2.0 * np.eye(10)
    mu = np.linalg.eigvalsh(H)
    k = np.arange(4)
    chebyshev = 1.0 / ((mu[-1] + mu[0]) / 2 + (mu[-1] - mu[0]) / 2 * np.cos((2 * k + 1) * np.pi / 8))
    y = np.asarray(problem.sample(jax.random.split(jax.random.key(77), 1)[0], 100)["y"], np.float64)
    error = np.linalg.solve(H, A.T @ y.T)
    for t in range(depth):
        error = error - chebyshev[t % 4] * (H @ error)
    theory = np.mean(np.sum(error**2, axis=0))
    # Measured: 0.11-0.12x Chebyshev over training seeds 0-3 (100-150x above it without log loss).
    assert learned < 3 * theory, (learned, theory)
    # The extreme steps are set by the ends of the spectrum (within 5% over seeds 0-3); the middle
    # ones may differ, since n = 10 eigenvalues are not the interval Chebyshev is optimal on.
    learned_eta = np.sort(trained.learned_parameters()["eta"])
    np.testing.assert_allclose(learned_eta[[0, -1]], np.sort(chebyshev)[[0, -1]], rtol=0.1)


def test_learned_lambda_is_reported_non_negative(problem):
    solver = DUGD(DUGD.Options(learn_lambda=True, lambda_period=2), problem=problem, depth=4)
    solver.xi[...] = np.array([-1.5, 2.0], np.float32)
    assert solver.learned_parameters()["lambda"].tolist() == [1.5, 2.0]
    assert solver.learning_rates() == {"rho": 1e-2, "xi": 1e-4}
    step = DUGD(DUGD.Options(parametrization="step", lr=1e-3), problem=problem, depth=4)
    assert step.learning_rates() == {"eta": 1e-3}


def test_gd_takes_a_user_step(problem):
    gd = ConstantStepGD(ConstantStepGD.Options(step=0.01), problem=problem, depth=3)
    assert gd.step_size == 0.01


def test_matrix_file_is_validated(tmp_path):
    good = np.random.default_rng(0).standard_normal((6, 3))
    np.save(tmp_path / "A.npy", good)
    problem = RidgeProblem.from_options(RidgeProblem.Options(n=3, m=6, lam=0.5, matrix=str(tmp_path / "A.npy")))
    np.testing.assert_allclose(np.asarray(problem.A), good, rtol=1e-6)

    with pytest.raises(ProblemDataError, match=r"shape \(6, 3\), but problem.m x problem.n = 3 x 6; set problem.m and problem.n"):
        RidgeProblem.from_options(RidgeProblem.Options(n=6, m=3, matrix=str(tmp_path / "A.npy")))
    bad = good.copy()
    bad[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ProblemDataError, match=r"1 non-finite entries.*index \(2, 1\)"):
        RidgeProblem.from_options(RidgeProblem.Options(n=3, m=6, matrix=str(tmp_path / "nan.npy")))
    with pytest.raises(ProblemDataError, match="no file"):
        RidgeProblem.from_options(RidgeProblem.Options(n=3, m=6, matrix=str(tmp_path / "missing.npy")))
    np.save(tmp_path / "objects.npy", np.array([object()] * 18).reshape(6, 3), allow_pickle=True)
    with pytest.raises(ProblemDataError, match="not a readable .npy array"):
        RidgeProblem.from_options(RidgeProblem.Options(n=3, m=6, matrix=str(tmp_path / "objects.npy")))


def test_singular_problem_is_refused():
    with pytest.raises(ProblemDataError, match="singular"):
        RidgeProblem(np.ones((4, 2)), 0.0)


def test_dugd_refuses_a_problem_without_regularised_least_squares():
    from du_framework.testing import _BareProblem

    with pytest.raises(IncompatibleProblemError, match="dugd.*RegularizedLeastSquares.*conformance-bare"):
        DUGD(DUGD.Options(), problem=_BareProblem(), depth=3)


# The core suite checks every registered solver with its default options; here the variants.
@parametrize_with_checks([
    SolverCase(DUGD, DUGD.Options(learn_lambda=True, period=2), id="dugd-learned-lambda"),
    SolverCase(DUGD, DUGD.Options(period=0, init_step=0.01), id="dugd-no-period"),
    SolverCase(DUGD, DUGD.Options(parametrization="step", lr=1e-3), id="dugd-step"),
])
def test_conformance(case, check):
    check(case)
