"""The reference plugin checked against independent numpy computations."""

import tomllib

import jax
import numpy as np
import pytest

from du_framework import Experiment, IncompatibleProblemError, NonNegative, ProblemDataError, Reciprocal
from du_framework.engine import evaluate, train
from du_framework import parse_options
from du_framework import learning_rates
from du_framework import Incremental
from du_framework.testing import BareProblem, ProblemCase, SolverCase, parametrize_with_checks
from du_framework import gd_contraction
from du_gd_ridge import DUGD, ConstantStepGD, RidgeProblem
from du_gd_ridge import plugin as ridge_plugin


@pytest.fixture(scope="module")
def problem():
    return RidgeProblem.from_options(RidgeProblem.Options(n=10, m=20, lam=2.0, seed=4))


def mse_curve(solver, problem, **kwargs):
    return evaluate(solver, problem, **kwargs)["mse"]


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


def test_metrics_are_mse_then_nmse_in_db(problem):
    assert problem.primary() == "mse"
    gd = ConstantStepGD(ConstantStepGD.Options(), problem=problem, depth=6)
    curves = evaluate(gd, problem, key=5, batch_size=50, batches=1)
    assert list(curves) == ["mse", "nmse_db"]
    # Independent: NMSE = mean ||x - x_opt||^2 / mean ||x_opt||^2 on the same instances, in dB.
    batch = problem.sample(jax.random.split(jax.random.key(5), 1)[0], 50)
    energy = np.mean(np.sum(np.asarray(batch["target"], np.float64) ** 2, axis=1))
    np.testing.assert_allclose(curves["nmse_db"], 10 * np.log10(curves["mse"] / energy), rtol=1e-4)


def test_gd_curve_follows_the_closed_form_iteration_matrix(problem):
    depth = 30
    gd = ConstantStepGD(ConstantStepGD.Options(), problem=problem, depth=depth)
    curve = mse_curve(gd, problem, key=5, batch_size=50, batches=1)
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
    # Its constant step is reported as such.
    np.testing.assert_allclose(gd.learned_parameters()["step"], [step], rtol=1e-9)
    assert not gd.is_trainable


@pytest.mark.parametrize("parametrization", ["step", "reciprocal"])
def test_dugd_recurrence_matches_numpy(problem, parametrization):
    solver = DUGD(DUGD.Options(period=3, learn_lambda=True, lambda_period=0, parametrization=parametrization),
                  problem=problem, depth=7)
    steps = np.array([0.01, 0.05, 0.02])
    if parametrization == "step":
        solver.eta[...] = steps.astype(np.float32)
    else:  # raw_t = c / eta_t with c the best constant step, computed here from numpy's spectrum
        A = np.random.default_rng(4).standard_normal((20, 10))
        mu = np.linalg.eigvalsh(A.T @ A + problem.lam * np.eye(10))
        solver.eta[...] = (2.0 / (mu[0] + mu[-1]) / steps).astype(np.float32)
    np.testing.assert_allclose(solver.learned_parameters()["eta"], steps, rtol=1e-6)
    solver.lam[...] = -np.linspace(0.0, 3.0, 7).astype(np.float32)  # lambda_t = |raw_t|
    curve = mse_curve(solver, problem, key=8, batch_size=4, batches=1)
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
    trained = train(solver, problem, Incremental(), steps_per_stage=40, batch_size=32, key=0, log_loss=False,
                    progress=False).solver
    gd = ConstantStepGD(ConstantStepGD.Options(), problem=problem, depth=depth)
    learned = mse_curve(trained, problem, key=77, batch_size=100, batches=2)
    baseline = mse_curve(gd, problem, key=77, batch_size=100, batches=2)
    assert learned[-1] < baseline[-1] / 5, (learned[-1], baseline[-1])  # 11x to 92x over training seeds 0-3


def test_dugd_reaches_the_chebyshev_steps_with_the_reference_training(problem):
    # The reference recipe (reciprocal steps, log loss) at test size: depth 24, T = 4, kappa = 10.5.
    depth = 24
    trained = train(DUGD(DUGD.Options(period=4), problem=problem, depth=depth), problem, Incremental(),
                    steps_per_stage=20, batch_size=32, key=0, log_loss=True, progress=False).solver
    learned = mse_curve(trained, problem, key=77, batch_size=100, batches=1)[-1]
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
    # The solver offers the same Chebyshev steps as the reference line of its plot.
    (reference,) = trained.reference_values(problem)["eta"].values()
    np.testing.assert_allclose(reference, chebyshev, rtol=1e-9)


def test_dugd_parameters_carry_their_policy(problem):
    solver = DUGD(DUGD.Options(learn_lambda=True, lambda_period=2), problem=problem, depth=4)
    # Reciprocal steps in units of the best constant step: raw exactly 1 at the start.
    assert isinstance(solver.eta.constraint, Reciprocal)
    mu_min, mu_max = problem.spectrum_bounds()
    assert solver.eta.constraint.scale == pytest.approx(2 / (mu_min + mu_max), rel=1e-12)
    assert np.asarray(solver.eta[...]).tolist() == [1.0] * 4
    # The learned lambda_t: |raw|, initialised at the problem's lambda, reported as "lam".
    assert isinstance(solver.lam.constraint, NonNegative)
    assert np.asarray(solver.lam[...]).tolist() == [2.0, 2.0]
    solver.lam[...] = np.array([-1.5, 2.0], np.float32)
    assert solver.learned_parameters()["lam"].tolist() == [1.5, 2.0]
    assert learning_rates(solver) == {"eta": 1e-2, "lam": 1e-4}
    step = DUGD(DUGD.Options(parametrization="step", lr=1e-3), problem=problem, depth=4)
    assert learning_rates(step) == {"eta": 1e-3}
    assert step.learned_parameters()["eta"].tolist() == [0.0] * 4
    started = DUGD(DUGD.Options(init_step=0.02, period=0), problem=problem, depth=3)
    np.testing.assert_allclose(started.learned_parameters()["eta"], [0.02] * 3, rtol=1e-6)


def test_dugd_offers_no_reference_lines_for_a_long_per_iteration_chain(problem):
    assert DUGD(DUGD.Options(period=0), problem=problem, depth=100).reference_values(problem) == {}


def test_options_are_checked_declaratively():
    from du_framework import ConfigError

    with pytest.raises(ConfigError, match="problem.lam must be >= 0"):
        parse_options(RidgeProblem.Options, {"lam": -1.0}, prefix="problem.")
    with pytest.raises(ConfigError, match="problem.n must be >= 1"):
        parse_options(RidgeProblem.Options, {"n": 0}, prefix="problem.")
    with pytest.raises(ConfigError, match="lr must be > 0"):
        parse_options(DUGD.Options, {"lr": 0.0})
    with pytest.raises(ConfigError, match="init_step must be >= 0 with the reciprocal"):
        parse_options(DUGD.Options, {"init_step": -0.1})
    assert parse_options(DUGD.Options, {"init_step": -0.1, "parametrization": "step"}).init_step == -0.1
    with pytest.raises(ConfigError, match="step must be >= 0"):
        parse_options(ConstantStepGD.Options, {"step": -1.0})


def test_gd_takes_a_user_step(problem):
    gd = ConstantStepGD(ConstantStepGD.Options(step=0.01), problem=problem, depth=3)
    assert gd.step_size == 0.01
    assert gd.learned_parameters() == {"step": pytest.approx([0.01])}


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
    with pytest.raises(IncompatibleProblemError, match="dugd.*RegularizedLeastSquares.*conformance-bare"):
        DUGD(DUGD.Options(), problem=BareProblem(), depth=3)


def test_reference_experiment_is_registered_as_the_default():
    registered = []
    ridge_plugin.register_experiments(registered.append)
    experiment, example = registered
    assert isinstance(experiment, Experiment)
    assert (example.name, example.default) == ("ridge-theory", False)
    assert tomllib.loads(example.config)["problem"]["name"] == "ridge"
    assert (experiment.name, experiment.default) == ("reference", True)
    config = tomllib.loads(experiment.config)
    assert config["problem"] == {"name": "ridge", "n": 50, "m": 100, "lam": 3.0, "seed": 0}
    assert config["train"] == {"schedule": "incremental", "depth": 50, "steps_per_stage": 20, "batch_size": 100,
                               "seed": 1, "log_loss": True}
    assert config["evaluation"] == {"batch_size": 100, "batches": 10, "seed": 2026}
    solvers = {s["label"]: s for s in config["solvers"]}
    assert solvers["dugd"] == {"name": "dugd", "label": "dugd", "period": 4, "learn_lambda": False}
    assert solvers["dugd-lambda"] == {"name": "dugd", "label": "dugd-lambda", "period": 4, "learn_lambda": True,
                                      "lr": 1e-3}
    assert list(solvers) == ["dugd", "dugd-lambda", "gd", "gd-chebyshev", "heavy-ball", "cg"]
    # Every key of this plugin's own components is a valid option.
    parse_options(RidgeProblem.Options, {k: v for k, v in config["problem"].items() if k != "name"})
    for entry in config["solvers"]:
        cls = {"dugd": DUGD, "gd": ConstantStepGD}.get(entry["name"])
        if cls is not None:
            parse_options(cls.Options, {k: v for k, v in entry.items() if k not in ("name", "label")})


def small_ridge():
    return RidgeProblem.from_options(RidgeProblem.Options(n=8, m=16, lam=1.0, seed=3))


@parametrize_with_checks([
    ProblemCase(RidgeProblem),
    ProblemCase(RidgeProblem, RidgeProblem.Options(n=3, m=2, lam=0.5, seed=1), id="ridge-underdetermined"),
    SolverCase(DUGD, problem=small_ridge, id="dugd"),
    SolverCase(DUGD, DUGD.Options(learn_lambda=True, period=2), problem=small_ridge, id="dugd-learned-lambda"),
    SolverCase(DUGD, DUGD.Options(period=0, init_step=0.01), problem=small_ridge, id="dugd-no-period"),
    SolverCase(DUGD, DUGD.Options(parametrization="step", lr=1e-3), problem=small_ridge, id="dugd-step"),
    SolverCase(ConstantStepGD, problem=small_ridge, id="gd"),
    SolverCase(DUGD, id="dugd-on-core-problem"),
])
def test_conformance(case, check):
    check(case)
