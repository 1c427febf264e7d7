"""LISTA-CP and ALISTA: the analytic weight against its program (KKT system, feasible perturbations,
scipy's SLSQP), the support-selection shrinkage and both iterations against float64 NumPy, the start
at ISTA, the refusals of a per-instance operator, training, and the conformance kit."""

import numpy as np
import pytest
import scipy.optimize

import jax

from du_framework import IncompatibleProblemError, Incremental
from du_framework.engine import evaluate, train, unroll
from du_framework.testing import SolverCase, parametrize_with_checks
from du_sparse import (ALISTA, DUISTA, ISTA, LISTA, LISTACP, SparseRecovery, analytic_weight, support_counts,
                       kth_largest_magnitude, support_selected_threshold)


def problem(n=60, m=30, operator="shared", seed=0, p=0.1, snr_db=40.0):
    return SparseRecovery.from_options(SparseRecovery.Options(n=n, m=m, p=p, snr_db=snr_db, seed=seed,
                                                              operator=operator))


def tiny():
    return problem(20, 10, p=0.2, snr_db=30.0)


def tiny_per_instance():
    return problem(20, 10, "per-instance", p=0.2, snr_db=30.0)


def iterates(solver, prob, instance):
    _, recorded = unroll(solver, prob, instance, record=lambda x: x)
    return np.asarray(recorded, np.float64)


def soft(r, threshold):
    return np.sign(r) * np.maximum(np.abs(r) - threshold, 0)


def shrink_ss_numpy(r, threshold, count):
    """Support selection in float64, row by row: the ``count`` largest ``|r_i|`` above ``threshold`` kept."""
    out = soft(r, threshold)
    for row, values in zip(out, r):
        if count > 0:
            top = np.argsort(-np.abs(values))[:count]
            keep = top[np.abs(values[top]) > threshold]
            row[keep] = values[keep]
    return out


# -- the analytic weight -------------------------------------------------------------------------------------


def objective(weight, matrix):
    return np.sum((weight.T @ matrix) ** 2)


def test_analytic_weight_meets_its_constraint_and_solves_the_kkt_system():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((12, 30)) / np.sqrt(12)
    W = analytic_weight(A)
    np.testing.assert_allclose(np.diag(W.T @ A), 1.0, atol=1e-12)
    # Column i minimises ||A^T w||^2 subject to a_i^T w = 1: the KKT system
    # [2 A A^T, a_i; a_i^T, 0] [w; nu] = [0; 1], solved here as one linear system per column.
    m = A.shape[0]
    for i in range(A.shape[1]):
        kkt = np.block([[2 * A @ A.T, A[:, i:i + 1]], [A[:, i:i + 1].T, np.zeros((1, 1))]])
        solution = np.linalg.solve(kkt, np.r_[np.zeros(m), 1.0])
        np.testing.assert_allclose(W[:, i], solution[:m], rtol=1e-9, atol=1e-12)


def test_no_feasible_perturbation_lowers_the_objective():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((8, 20))
    W = analytic_weight(A)
    best = objective(W, A)
    for _ in range(200):
        direction = rng.standard_normal(W.shape)
        direction -= A * np.sum(A * direction, axis=0) / np.sum(A * A, axis=0)  # keep a_i^T w_i = 1
        for size in (1e-3, 1e-1):
            candidate = W + size * direction
            np.testing.assert_allclose(np.diag(candidate.T @ A), 1.0, atol=1e-10)
            assert objective(candidate, A) > best


def test_analytic_weight_matches_a_numerical_solver():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((5, 9))
    W = analytic_weight(A)
    for i in (0, 4, 8):
        found = scipy.optimize.minimize(lambda w: np.sum((A.T @ w) ** 2), np.zeros(5), method="SLSQP",
                                        constraints=[{"type": "eq", "fun": lambda w, i=i: A[:, i] @ w - 1}],
                                        options={"ftol": 1e-14, "maxiter": 500})
        assert found.success
        np.testing.assert_allclose(W[:, i], found.x, atol=1e-5)


def test_analytic_weight_refuses_a_rank_deficient_operator():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 3)) @ rng.standard_normal((3, 12))
    with pytest.raises(ValueError, match="full row rank.*rank 3"):
        analytic_weight(A)
    with pytest.raises(ValueError, match="full row rank"):
        analytic_weight(rng.standard_normal((12, 6)))  # m > n
    A = rng.standard_normal((4, 10))
    A[:, 7] = 0
    with pytest.raises(ValueError, match=r"column\(s\) \[7\]"):
        analytic_weight(A)


# -- support selection ---------------------------------------------------------------------------------------


def test_support_counts_rise_by_a_constant_to_the_maximum():
    np.testing.assert_array_equal(support_counts(500, 14, 1.2, 13.0),
                                  [6, 12, 18, 24, 30, 36, 42, 48, 54, 60, 65, 65, 65, 65])
    np.testing.assert_array_equal(support_counts(20, 3, 0.0, 13.0), [0, 0, 0])


@pytest.mark.parametrize("count", [0, 1, 4, 10])
def test_support_selected_threshold_matches_numpy(count):
    r = np.asarray(jax.random.normal(jax.random.key(0), (6, 10)), np.float64)
    threshold = 0.4
    got = support_selected_threshold(jax.numpy.asarray(r, jax.numpy.float32), threshold, jax.numpy.asarray(count))
    np.testing.assert_allclose(np.asarray(got), shrink_ss_numpy(r, threshold, count), atol=1e-6)


def _awkward_magnitudes() -> np.ndarray:
    """Rows of 50 float32 magnitudes with zeros (of both signs), ties, subnormals, huge values, infinities and
    NaNs (of both signs: x86's default NaN, from 0 * inf, has its sign bit set)."""
    rng = np.random.default_rng(3)
    negative_nan = np.array([0x7FC00000 | -0x80000000], np.int32).view(np.float32)[0]
    rows = [np.abs(rng.standard_normal(50)),
            np.zeros(50),
            np.repeat([0.0, 1.0, 2.5, 2.5000002, 7.0], 10),
            np.abs(rng.standard_normal(50)) * np.float32(1e-39),  # subnormal
            np.concatenate([[np.inf, np.inf, 3e38, np.finfo(np.float32).tiny], np.abs(rng.standard_normal(46))]),
            np.concatenate([[-0.0] * 20, np.abs(rng.standard_normal(30))]),
            np.concatenate([[np.nan, negative_nan], np.abs(rng.standard_normal(48))])]
    return np.stack(rows).astype(np.float32)


def _sorted_entry(magnitude: np.ndarray, count: int) -> np.ndarray:
    """NumPy's answer: the entry ``count`` (clipped to 1..50) from the top of each sorted row of ``|magnitude|``."""
    return np.sort(np.abs(magnitude), axis=-1)[:, 50 - min(max(count, 1), 50)]


@pytest.mark.parametrize("count", [0, 1, 2, 13, 25, 49, 50, 51])
def test_kth_largest_magnitude_is_numpys_sorted_entry_bit_for_bit(count):
    magnitude = _awkward_magnitudes()
    want = _sorted_entry(magnitude, count)
    got = np.asarray(jax.jit(kth_largest_magnitude)(jax.numpy.asarray(magnitude), jax.numpy.asarray(count)))
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    half = np.asarray(kth_largest_magnitude(jax.numpy.asarray(magnitude, jax.numpy.float16), count))  # the sort path
    np.testing.assert_array_equal(half.view(np.int16), _sorted_entry(magnitude.astype(np.float16), count).view(np.int16))


def test_kth_largest_magnitude_passes_no_gradient():
    magnitude = jax.numpy.asarray(_awkward_magnitudes()[:1])
    for dtype in (jax.numpy.float32, jax.numpy.float16):
        grad = jax.grad(lambda m: kth_largest_magnitude(m, 3).astype(jax.numpy.float32).sum())(magnitude.astype(dtype))
        np.testing.assert_array_equal(np.asarray(grad, np.float32), 0.0)


# -- the iterations ------------------------------------------------------------------------------------------


def batch(prob, key, size):
    instance = prob.sample(jax.random.key(key), size)
    return instance, np.asarray(prob.A, np.float64), np.asarray(instance["y"], np.float64)


def test_lista_cp_starts_at_ista():
    prob, depth = problem(), 4
    instance, *_ = batch(prob, 1, 16)
    ista = iterates(ISTA(ISTA.Options(lam=0.1), problem=prob, depth=depth), prob, instance)
    for tied in (False, True):
        got = iterates(LISTACP(LISTACP.Options(lam=0.1, tied=tied), problem=prob, depth=depth), prob, instance)
        np.testing.assert_allclose(got, ista, rtol=0, atol=1e-5 * np.abs(ista).max())


def test_lista_cp_with_support_selection_matches_float64_numpy():
    prob, depth, step = problem(), 6, 5.0
    instance, A, y = batch(prob, 2, 16)
    L = float(prob.lipschitz_bound())
    counts = np.floor(np.minimum(step * np.arange(1, depth + 1), 13.0) * 60 / 100).astype(int)  # 3, 6, 7, 7, ...
    x, expected = np.zeros((16, 60)), []
    for t in range(depth):
        x = shrink_ss_numpy(x + (y - x @ A.T) @ A / L, 0.05 / L, counts[t])
        expected.append(x)
    got = iterates(LISTACP(LISTACP.Options(support_step=step), problem=prob, depth=depth), prob, instance)
    np.testing.assert_allclose(got, np.array(expected), rtol=0, atol=2e-5 * np.abs(expected).max())


def test_alista_matches_float64_numpy_with_its_analytic_weight():
    prob, depth = problem(), 6
    instance, A, y = batch(prob, 3, 16)
    W = analytic_weight(A)
    gamma = 1 / np.linalg.norm(W.T @ A, 2)
    counts = support_counts(60, depth, 1.2, 13.0)
    x, expected = np.zeros((16, 60)), []
    for t in range(depth):
        x = shrink_ss_numpy(x + gamma * (y - x @ A.T) @ W, 0.05 * gamma, counts[t])
        expected.append(x)
    solver = ALISTA(ALISTA.Options(), problem=prob, depth=depth)
    np.testing.assert_allclose(iterates(solver, prob, instance), np.array(expected), rtol=0,
                               atol=2e-5 * np.abs(expected).max())


def test_lista_with_step_scale_is_du_ista_while_its_matrices_are_at_their_start():
    """``soft(x + beta_t (B y + S x - x), theta_t)`` with ISTA's ``B``, ``S``: DU-ISTA's step ``beta_t / L``."""
    prob, depth = problem(), 5
    instance, A, y = batch(prob, 4, 16)
    L = float(prob.lipschitz_bound())
    beta = np.array([1.0, 1.6, 0.7, 1.9, 1.2])
    theta = np.array([0.02, 0.01, 0.005, 0.004, 0.002])
    solver = LISTA(LISTA.Options(step_scale=True), problem=prob, depth=depth)
    solver.beta[...] = beta.astype(np.float32)
    solver.theta[...] = theta.astype(np.float32)
    x, expected = np.zeros((16, 60)), []
    for t in range(depth):
        x = soft(x + beta[t] / L * (y - x @ A.T) @ A, theta[t])
        expected.append(x)
    np.testing.assert_allclose(iterates(solver, prob, instance), np.array(expected), rtol=0,
                               atol=2e-5 * np.abs(expected).max())
    assert set(solver.learned_parameters()) == {"theta", "beta"}
    assert "beta" not in LISTA(LISTA.Options(), problem=prob, depth=depth).learned_parameters()


def test_alista_learns_two_scalars_per_iteration():
    solver = ALISTA(ALISTA.Options(), problem=tiny(), depth=7)
    assert set(solver.param_names()) == {"gamma", "theta"}
    assert sum(np.size(value) for value in solver.learned_parameters().values()) == 2 * 7
    lista_cp = LISTACP(LISTACP.Options(tied=True), problem=tiny(), depth=7)
    assert lista_cp.W[...].shape == (1, 10, 20) and set(lista_cp.learned_parameters()) == {"theta"}


@pytest.mark.parametrize("cls", [ALISTA, LISTACP])
def test_a_per_instance_operator_is_refused_with_a_clear_message(cls):
    prob = tiny_per_instance()
    assert not cls.fits(prob) and cls.fits(tiny())
    with pytest.raises(IncompatibleProblemError) as error:
        cls(cls.Options(), problem=prob, depth=4)
    message = str(error.value)
    assert f"'{cls.name}'" in message and "'sparse-recovery'" in message and "per instance" in message
    assert "tista" in message and "shared operator" in message


def test_alista_refuses_an_operator_without_full_row_rank():
    from du_framework.testing import small_problem

    prob = small_problem()  # a shared LinearObservation with A of 16 x 8: more rows than columns
    assert not ALISTA.fits(prob) and ALISTA.fits(tiny()) and LISTACP.fits(prob)
    with pytest.raises(IncompatibleProblemError, match="'alista'.*full row rank.*16 x 8.*rank 8"):
        ALISTA(ALISTA.Options(), problem=prob, depth=3)


def test_alista_ends_no_worse_than_du_ista_after_the_same_training():
    prob, depth = problem(60, 30, seed=1), 5

    def trained_final_nmse(solver):
        result = train(solver, prob, Incremental(), steps_per_stage=20, batch_size=64, key=0, progress=False)
        return evaluate(result.solver, prob, key=9, batch_size=200, batches=1, metrics=("nmse_db",))["nmse_db"][-1]

    du_ista = trained_final_nmse(DUISTA(DUISTA.Options(), problem=prob, depth=depth))
    alista = trained_final_nmse(ALISTA(ALISTA.Options(), problem=prob, depth=depth))
    assert alista <= du_ista, (alista, du_ista)


@parametrize_with_checks(
    [SolverCase(ALISTA, ALISTA.Options(support_step=10.0), problem=tiny, depth=3, steps_per_stage=15),
     SolverCase(LISTACP, LISTACP.Options(support_step=10.0), problem=tiny, depth=3, steps_per_stage=15,
                id="lista-cpss"),
     SolverCase(LISTA, LISTA.Options(step_scale=True, tied=True), problem=tiny, depth=3, steps_per_stage=15,
                id="lista-step-scale")])
def test_conformance(case, check):
    check(case)


def test_the_cli_refuses_alista_on_a_per_instance_operator_before_running(tmp_path, capsys):
    from du_framework.cli import main

    config = tmp_path / "c.toml"
    config.write_text("""[problem]\nname = "sparse-recovery"\nn = 20\nm = 10\noperator = "per-instance"
[train]\ndepth = 3\nsteps_per_stage = 1\nbatch_size = 4\n[evaluation]\nbatch_size = 4\nbatches = 1
[[solvers]]\nname = "ista"\n[[solvers]]\nname = "alista"\n""")
    assert main(["compare", "--config", str(config), "--out", str(tmp_path / "run"), "--no-plots", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "'alista'" in error and "per instance" in error and "Traceback" not in error
    assert not (tmp_path / "run").exists()
