"""Linear systems: the problem, the classical relaxations against numpy, DU-PSOR against theory."""

import jax
import numpy as np
import pytest

from du_framework import ConfigError, ProblemDataError, Reciprocal, Unconstrained
from du_framework.engine import evaluate as evaluate_metrics
from du_framework.engine import train as train_settings
from du_framework import parse_options
from du_framework import Incremental
from du_framework.testing import ProblemCase, SolverCase, parametrize_with_checks
from du_framework import chebyshev_period_factor, chebyshev_steps
from du_linear_systems import DUPSOR, DUSOR, SOR, ChebyshevPSOR, GaussSeidelSOR, Jacobi, LinearSystem
from du_linear_systems.problem import spectrum_ensemble

SOLVERS = (Jacobi, SOR, ChebyshevPSOR, DUPSOR, GaussSeidelSOR, DUSOR)


def evaluate(solver, problem, **kwargs):
    """The MSE curve (one value per iteration)."""
    return evaluate_metrics(solver, problem, metrics=("mse",), **kwargs)["mse"]


def train(solver, problem, schedule, **kwargs):
    """Train on the MSE itself (not log(MSE)), as these tests were calibrated."""
    return train_settings(solver, problem, schedule, log_loss=False, **kwargs)


def small_system():
    return LinearSystem.from_options(LinearSystem.Options(n=32, kappa=50.0, seed=0))


@pytest.fixture(scope="module")
def system():
    problem = small_system()
    A = spectrum_ensemble(32, 50.0, 0)
    b = np.asarray(problem.sample(jax.random.split(jax.random.key(5), 1)[0], 50)["b"], np.float64)
    return problem, A, b, np.linalg.solve(A, b.T).T


def mse(x, target):
    return np.mean(np.sum((x - target) ** 2, axis=1))


def test_ensemble_has_the_prescribed_spectrum_and_targets_solve_the_system(system):
    problem, A, b, x = system
    eig = np.linalg.eigvalsh(A)
    assert eig[0] == pytest.approx(1 / 50.0, rel=1e-9) and eig[-1] == pytest.approx(1.0, rel=1e-9)
    target = np.asarray(problem.sample(jax.random.split(jax.random.key(5), 1)[0], 50)["target"], np.float64)
    np.testing.assert_allclose(target @ A, b, atol=2e-3)
    d = np.diag(A)
    jacobi = np.linalg.eigvals(A / d[:, None]).real
    assert problem.jacobi_spectrum_bounds() == pytest.approx((jacobi.min(), jacobi.max()), rel=1e-6)


@pytest.mark.parametrize("solver, omega", [(Jacobi, lambda lo, hi: 1.0), (SOR, lambda lo, hi: 2 / (lo + hi))])
def test_constant_relaxations_follow_their_recurrence(system, solver, omega):
    problem, A, b, x_opt = system
    curve = evaluate(solver(solver.Options(), problem=problem, depth=6), problem, key=5, batch_size=50, batches=1)
    w = omega(*problem.jacobi_spectrum_bounds())
    x = np.zeros_like(b)
    for t in range(6):
        x = x + w * (b - x @ A) / np.diag(A)
        assert curve[t] == pytest.approx(mse(x, x_opt), rel=2e-3)


def test_gauss_seidel_sor_follows_the_sweep_and_youngs_factor(system):
    problem, A, b, x_opt = system
    solver = GaussSeidelSOR(GaussSeidelSOR.Options(), problem=problem, depth=5)
    lo, hi = problem.jacobi_spectrum_bounds()
    rho = max(abs(1 - lo), abs(1 - hi))
    assert solver.omega == pytest.approx(2 / (1 + np.sqrt(1 - rho**2)))
    curve = evaluate(solver, problem, key=5, batch_size=50, batches=1)
    w = solver.omega
    x = np.zeros_like(b)
    for t in range(5):
        x_new = x.copy()
        for i in range(32):  # the textbook sweep, one coordinate at a time
            sigma = A[i, :i] @ x_new[:, :i].T + A[i, i + 1:] @ x[:, i + 1:].T
            x_new[:, i] = (1 - w) * x[:, i] + w * (b[:, i] - sigma) / A[i, i]
        x = x_new
        assert curve[t] == pytest.approx(mse(x, x_opt), rel=2e-3)


def test_chebyshev_psor_after_whole_periods_matches_the_polynomial_and_its_bound(system):
    problem, A, b, x_opt = system
    period = 4
    curve = evaluate(ChebyshevPSOR(ChebyshevPSOR.Options(period=period), problem=problem, depth=2 * period),
                     problem, key=5, batch_size=50, batches=1)
    lo, hi = problem.jacobi_spectrum_bounds()
    jacobi_matrix = A / np.diag(A)[:, None]  # D^{-1} A
    one_period = np.eye(32)
    for w in chebyshev_steps(lo, hi, period):
        one_period = (np.eye(32) - w * jacobi_matrix) @ one_period
    for k in (1, 2):
        exact = mse(x_opt @ np.linalg.matrix_power(one_period, k).T, 0)
        assert curve[k * period - 1] == pytest.approx(exact, rel=5e-3)
    # In the D-norm the period's polynomial is bounded by 1 / T_T((kappa+1)/(kappa-1)).
    d_half = np.sqrt(np.diag(A))
    symmetric = d_half[:, None] * one_period / d_half[None, :]
    assert np.max(np.abs(np.linalg.eigvals(symmetric))) <= chebyshev_period_factor(lo, hi, period) * (1 + 1e-6)


def test_du_psor_learns_factors_at_least_as_good_as_chebyshev_and_far_below_sor():
    problem = small_system()
    depth, period = 16, 8
    learned = train(DUPSOR(DUPSOR.Options(period=period), problem=problem, depth=depth), problem, Incremental(),
                    steps_per_stage=20, batch_size=64, key=1, progress=False).solver
    curves = {
        "du-psor": evaluate(learned, problem, key=9, batch_size=100, batches=2),
        "chebyshev-psor": evaluate(ChebyshevPSOR(ChebyshevPSOR.Options(period=period), problem=problem, depth=depth),
                                   problem, key=9, batch_size=100, batches=2),
        "sor": evaluate(SOR(SOR.Options(), problem=problem, depth=depth), problem, key=9, batch_size=100, batches=2),
    }
    assert curves["du-psor"][-1] <= 2 * curves["chebyshev-psor"][-1], curves
    assert curves["du-psor"][-1] < curves["sor"][-1] / 100, curves
    omega = learned.learned_parameters()["omega"]
    assert omega.shape == (period,) and np.all(np.isfinite(omega))
    # The optimiser moves the reciprocals nu = 1 / omega (Reciprocal(1.0)); the report is omega itself.
    np.testing.assert_allclose(np.asarray(learned.omega[...]), 1 / omega, rtol=1e-6)


def test_du_sor_learns_sweep_factors_well_beyond_youngs_constant():
    problem = small_system()
    depth = 16
    learned = train(DUSOR(DUSOR.Options(period=8), problem=problem, depth=depth), problem, Incremental(),
                    steps_per_stage=20, batch_size=64, key=1, progress=False).solver
    du_sor = evaluate(learned, problem, key=9, batch_size=100, batches=2)[-1]
    young = evaluate(GaussSeidelSOR(GaussSeidelSOR.Options(), problem=problem, depth=depth), problem, key=9,
                     batch_size=100, batches=2)[-1]
    assert du_sor < young / 10, (du_sor, young)  # about 21 dB lower over training seeds 0 and 1


def test_du_sor_with_constant_factors_is_gauss_seidel_sor(system):
    problem, *_ = system
    constant = DUSOR(DUSOR.Options(period=1, init_omega=1.3), problem=problem, depth=6)
    classical = GaussSeidelSOR(GaussSeidelSOR.Options(omega=1.3), problem=problem, depth=6)
    np.testing.assert_allclose(evaluate(constant, problem, key=2, batch_size=20, batches=1),
                               evaluate(classical, problem, key=2, batch_size=20, batches=1), rtol=1e-5)


def test_matrix_files_are_validated(tmp_path):
    np.save(tmp_path / "nonsym.npy", np.array([[2.0, 1.0], [0.0, 2.0]]))
    with pytest.raises(ProblemDataError, match="not symmetric"):
        LinearSystem.from_options(LinearSystem.Options(n=2, matrix=str(tmp_path / "nonsym.npy")))
    np.save(tmp_path / "indef.npy", np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ProblemDataError, match="positive definite"):
        LinearSystem.from_options(LinearSystem.Options(n=2, matrix=str(tmp_path / "indef.npy")))
    with pytest.raises(ProblemDataError, match=r"shape \(2, 2\), but problem.n x problem.n = 3 x 3; set problem.n to"):
        LinearSystem.from_options(LinearSystem.Options(n=3, matrix=str(tmp_path / "indef.npy")))
    np.save(tmp_path / "ok.npy", np.array([[2.0, 0.5], [0.5, 1.0]]))
    problem = LinearSystem.from_options(LinearSystem.Options(n=2, matrix=str(tmp_path / "ok.npy")))
    assert problem.describe()["matrix"].endswith("ok.npy")


def test_problem_declares_nmse_db_first_and_mse():
    problem = small_system()
    assert [metric.name for metric in problem.metrics] == ["nmse_db", "mse"] and problem.primary() == "nmse_db"
    curves = evaluate_metrics(Jacobi(Jacobi.Options(), problem=problem, depth=3), problem, key=4, batch_size=30,
                              batches=2)
    targets = np.concatenate([np.asarray(problem.sample(key, 30)["target"], np.float64)
                              for key in jax.random.split(jax.random.key(4), 2)])
    energy = np.mean(np.sum(targets**2, axis=1))
    np.testing.assert_allclose(curves["nmse_db"], 10 * np.log10(curves["mse"] / energy), atol=1e-4)


def test_du_psor_stores_reciprocal_factors_and_offers_chebyshev_psor_references():
    problem = small_system()
    solver = DUPSOR(DUPSOR.Options(period=8), problem=problem, depth=16)
    lo, hi = problem.jacobi_spectrum_bounds()
    assert solver.omega.constraint == Reciprocal(1.0) and solver.omega.lr == "lr"
    # The raw (optimised) value is nu = 1 / omega, initialised at the reciprocal of SOR's optimal factor.
    np.testing.assert_allclose(np.asarray(solver.omega[...]), np.full(8, (lo + hi) / 2), rtol=1e-6)
    np.testing.assert_allclose(solver.learned_parameters()["omega"], np.full(8, 2 / (lo + hi)), rtol=1e-6)
    (label, factors), = solver.reference_values(problem)["omega"].items()
    assert "T=8" in label
    np.testing.assert_allclose(factors, chebyshev_steps(lo, hi, 8))
    cheb = ChebyshevPSOR(ChebyshevPSOR.Options(period=8), problem=problem, depth=16)
    np.testing.assert_allclose(cheb.learned_parameters()["omega"], factors, rtol=1e-6)
    assert DUSOR(DUSOR.Options(), problem=problem, depth=16).omega.constraint == Unconstrained()


@pytest.mark.parametrize("cls, key, value", [
    (SOR, "omega", -0.5), (ChebyshevPSOR, "period", 0), (DUPSOR, "period", -1), (DUPSOR, "init_omega", -1.0),
    (DUPSOR, "lr", 0.0), (GaussSeidelSOR, "omega", 2.0), (DUSOR, "init_omega", 2.0), (DUSOR, "lr", float("nan")),
])
def test_options_refuse_out_of_range_values(cls, key, value):
    with pytest.raises(ConfigError, match=key):
        parse_options(cls.Options, {key: value}, prefix="solvers[0].")


@pytest.mark.parametrize("key, value", [("n", 1), ("kappa", 0.5), ("kappa", float("inf")), ("seed", -1)])
def test_problem_options_refuse_out_of_range_values(key, value):
    with pytest.raises(ConfigError, match=f"problem.{key}"):
        parse_options(LinearSystem.Options, {key: value}, prefix="problem.")


@parametrize_with_checks([ProblemCase(LinearSystem, LinearSystem.Options(n=16))]
                         + [SolverCase(cls, problem=small_system) for cls in SOLVERS])
def test_conformance(case, check):
    check(case)
