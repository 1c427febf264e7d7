"""AMP, LAMP, ADMM and DU-ADMM: iterates against float64 NumPy, ADMM's limit against the LASSO's
optimality conditions and a long FISTA, AMP against its state evolution, the learned solvers'
start and training, the operator screen and its refusals, and the conformance kit."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from du_framework import IncompatibleProblemError, Incremental
from du_framework.engine import evaluate, train, unroll
from du_framework.testing import SolverCase, parametrize_with_checks
from du_sparse import ADMM, AMP, DUADMM, LAMP, SparseRecovery, iid_diagnosis, lasso_factor
from du_sparse.admm import _factor_per_instance


def problem(n=60, m=30, operator="shared", seed=0, p=0.1, snr_db=40.0):
    return SparseRecovery.from_options(SparseRecovery.Options(n=n, m=m, p=p, snr_db=snr_db, seed=seed,
                                                              operator=operator))


def tiny():
    return problem(20, 10, p=0.2, snr_db=30.0)


def tiny_per_instance():
    return problem(20, 10, "per-instance", p=0.2, snr_db=30.0)


def user_problem(matrix, p=0.1, snr_db=40.0):
    return SparseRecovery(np.asarray(matrix, np.float64), p=p, snr_db=snr_db, source="test matrix")


def soft(r, threshold):
    return np.sign(r) * np.maximum(np.abs(r) - threshold, 0)


def forward(A, x):
    return x @ A.T if A.ndim == 2 else np.einsum("bmn,bn->bm", A, x)


def adjoint(A, r):
    return r @ A if A.ndim == 2 else np.einsum("bmn,bm->bn", A, r)


def batch_of(prob, key, batch_size):
    """An instance and its ``(A, y, x)`` in float64 (``A`` shared ``(m, n)`` or per instance)."""
    instance = prob.sample(jax.random.key(key), batch_size)
    A = np.asarray(instance["A"] if prob.per_instance_operator else prob.A, np.float64)
    return instance, A, np.asarray(instance["y"], np.float64), np.asarray(instance["target"], np.float64)


def iterates(solver, prob, instance):
    """Every iteration's estimate, ``(depth, batch, n)``, in float64."""
    _, recorded = unroll(solver, prob, instance, record=lambda x: x)
    return np.asarray(recorded, np.float64)


def amp_numpy(A, y, alpha, depth):
    """AMP in float64 (Donoho, Maleki, Montanari 2009), written from the paper's recursion."""
    m, n = A.shape[-2:]
    x, z, out = np.zeros(y.shape[:-1] + (n,)), y.copy(), []
    for _ in range(depth):
        x_new = soft(x + adjoint(A, z), alpha * np.linalg.norm(z, axis=-1, keepdims=True) / np.sqrt(m))
        z = y - forward(A, x_new) + (1 / (m / n)) * np.mean(x_new != 0, axis=-1, keepdims=True) * z
        x = x_new
        out.append(x)
    return np.array(out)


def admm_numpy(A, y, lam, rho, depth):
    """Scaled-form ADMM for the LASSO in float64 (Boyd et al. 2011, section 6.4), with explicit solves."""
    n = A.shape[-1]
    gram = A.T @ A if A.ndim == 2 else np.einsum("bmi,bmj->bij", A, A)
    inverse = np.linalg.inv(gram + rho * np.eye(n))
    aty = adjoint(A, y)
    x = z = u = np.zeros_like(aty)
    out = []
    for _ in range(depth):
        v = aty + rho * (z - u)
        x = v @ inverse.T if inverse.ndim == 2 else np.einsum("bij,bj->bi", inverse, v)
        z = soft(x + u, lam / rho)
        u = u + x - z
        out.append(z)
    return np.array(out)


# -- classical iterations against float64 NumPy -------------------------------------------------------------


@pytest.mark.parametrize("operator", ["shared", "per-instance"])
def test_amp_iterates_match_float64_numpy(operator):
    prob, depth, alpha = problem(60, 30, operator), 12, 1.3
    instance, A, y, _ = batch_of(prob, 1, 16)
    expected = amp_numpy(A, y, alpha, depth)
    got = iterates(AMP(AMP.Options(alpha=alpha), problem=prob, depth=depth), prob, instance)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(expected).max())
    assert np.count_nonzero(expected[-1]) > 0


@pytest.mark.parametrize("operator", ["shared", "per-instance"])
def test_admm_iterates_match_float64_numpy(operator):
    prob, depth, lam, rho = problem(60, 30, operator), 12, 0.02, 0.3
    instance, A, y, _ = batch_of(prob, 2, 16)
    expected = admm_numpy(A, y, lam, rho, depth)
    got = iterates(ADMM(ADMM.Options(lam=lam, rho=rho), problem=prob, depth=depth), prob, instance)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("shape", [(30, 60), (60, 30), (40, 40)])
def test_factor_reproduces_the_gram_matrix_for_every_shape(shape):
    A = np.random.default_rng(3).standard_normal(shape)
    factor, s2 = lasso_factor(A)
    np.testing.assert_allclose(factor.T @ factor, A.T @ A, atol=1e-10)
    np.testing.assert_allclose(np.sort(s2), np.sort(np.linalg.eigvalsh(A.T @ A))[-min(shape):], atol=1e-10)
    batch_factor, batch_s2 = _factor_per_instance(jnp.asarray(np.stack([A, 2 * A]), jnp.float32))
    batch_factor = np.asarray(batch_factor, np.float64)
    for index, scale in enumerate((1, 4)):
        np.testing.assert_allclose(batch_factor[index].T @ batch_factor[index], scale * A.T @ A,
                                   atol=2e-4 * scale * np.abs(A.T @ A).max())
        np.testing.assert_allclose(np.sort(np.asarray(batch_s2[index])), scale * np.sort(s2), rtol=1e-4, atol=1e-3)


def lasso_by_fista(A, y, lam, iterations=20000):
    """The LASSO solved independently: FISTA in float64, step 1/||A||_2^2."""
    L = np.linalg.norm(A, 2) ** 2
    x = z = np.zeros((y.shape[0], A.shape[1]))
    t = 1.0
    for _ in range(iterations):
        x_new = soft(z + (y - z @ A.T) @ A / L, lam / L)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z, x, t = x_new + (t - 1) / t_new * (x_new - x), x_new, t_new
    return x


def test_admm_converges_to_the_lasso_solution():
    prob, lam = problem(60, 30, seed=4), 0.05
    instance, A, y, _ = batch_of(prob, 3, 4)
    z = np.asarray(unroll(ADMM(ADMM.Options(lam=lam, rho=0.5), problem=prob, depth=400), prob, instance)[0],
                   np.float64)
    # Optimality (subgradient) conditions: A^T (y - A z) = lam sign(z) on the support, |.| <= lam off it.
    correlation = (y - z @ A.T) @ A
    support = np.abs(z) > 1e-4
    assert support.any() and (~support).any()
    np.testing.assert_allclose(correlation[support], lam * np.sign(z[support]), atol=1e-3)
    assert np.all(np.abs(correlation[~support]) <= lam * 1.01)
    np.testing.assert_allclose(z, lasso_by_fista(A, y, lam), atol=2e-4)


# -- AMP's state evolution ----------------------------------------------------------------------------------


def _gauss_tail(a):
    return 0.5 * math.erfc(a / math.sqrt(2))


def _gauss_density(a):
    return math.exp(-a * a / 2) / math.sqrt(2 * math.pi)


def soft_threshold_mse(tau, alpha, p):
    """``E[(soft(X + tau Z; alpha tau) - X)^2]`` for ``X`` Bernoulli(p)-N(0, 1), in closed form.

    ``X = 0``: ``2 tau^2 ((1 + a^2) Q(a) - a phi(a))`` with ``a = alpha``. ``X ~ N(0, 1)``: with
    ``R = X + tau Z ~ N(0, s^2)``, ``s^2 = 1 + tau^2``, ``b = alpha tau / s``: ``E[soft(R)^2] =
    2 s^2 ((1 + b^2) Q(b) - b phi(b))``, ``E[soft(R) X] = E[soft(R) R] / s^2 = 2 Q(b)``, ``E[X^2] = 1``.
    """
    a = alpha
    off = 2 * tau**2 * ((1 + a * a) * _gauss_tail(a) - a * _gauss_density(a))
    s2 = 1 + tau**2
    b = alpha * tau / math.sqrt(s2)
    on = 2 * s2 * ((1 + b * b) * _gauss_tail(b) - b * _gauss_density(b)) - 4 * _gauss_tail(b) + 1
    return (1 - p) * off + p * on


def test_soft_threshold_mse_matches_monte_carlo():
    rng = np.random.default_rng(0)
    x = (rng.random(2_000_000) < 0.1) * rng.standard_normal(2_000_000)
    r = x + 0.3 * rng.standard_normal(x.size)
    assert soft_threshold_mse(0.3, 1.2, 0.1) == pytest.approx(np.mean((soft(r, 1.2 * 0.3) - x) ** 2), rel=5e-3)


def test_amp_follows_its_state_evolution():
    """tau_{t+1}^2 = sigma^2 + (1/delta) E[(eta(X + tau_t Z; alpha tau_t) - X)^2], MSE per entry within 0.5 dB.

    Finite-size effects make the measured MSE drift above the prediction as the iterations go on
    (about +0.2 dB at t = 4 and +0.5 dB at t = 6 at n = 1000, half that at n = 2000): the first four are checked.
    """
    n, m, p, alpha, depth = 1000, 500, 0.1, 1.2, 4
    prob = problem(n, m, seed=3, p=p)
    tau2, predicted = prob.noise_variance + p * n / m, []
    for _ in range(depth):
        predicted.append(soft_threshold_mse(math.sqrt(tau2), alpha, p))
        tau2 = prob.noise_variance + predicted[-1] * n / m
    measured = evaluate(AMP(AMP.Options(alpha=alpha), problem=prob, depth=depth), prob, key=0, batch_size=100,
                        batches=2, metrics=("mse",))["mse"] / n
    gap = 10 * np.log10(measured) - 10 * np.log10(predicted)
    assert np.all(np.abs(gap) < 0.5), gap
    assert predicted[-1] < predicted[0] / 5  # the check spans a real descent (13.6 to 21.6 dB below p)


# -- the learned solvers -------------------------------------------------------------------------------------


def test_learned_solvers_start_at_their_classical_relatives():
    prob, depth = problem(60, 30), 8
    instance, *_ = batch_of(prob, 5, 16)
    amp = iterates(AMP(AMP.Options(alpha=1.4), problem=prob, depth=depth), prob, instance)
    for options in (LAMP.Options(alpha=1.4), LAMP.Options(alpha=1.4, tied=True)):
        np.testing.assert_allclose(iterates(LAMP(options, problem=prob, depth=depth), prob, instance), amp,
                                   rtol=0, atol=1e-5 * np.abs(amp).max())
    admm = iterates(ADMM(ADMM.Options(lam=0.03, rho=0.4), problem=prob, depth=depth), prob, instance)
    du_admm = iterates(DUADMM(DUADMM.Options(lam=0.03, rho=0.4), problem=prob, depth=depth), prob, instance)
    np.testing.assert_allclose(du_admm, admm, rtol=0, atol=1e-5 * np.abs(admm).max())  # rho = exp(log rho)


def test_lamp_ties_its_matrix_on_request():
    prob = tiny()
    untied, tied = LAMP(LAMP.Options(), problem=prob, depth=4), LAMP(LAMP.Options(tied=True), problem=prob, depth=4)
    assert untied.B[...].shape == (4, 20, 10) and tied.B[...].shape == (1, 20, 10)
    assert tied.alpha[...].shape == (4,)
    assert set(tied.learned_parameters()) == {"alpha"} and set(tied.param_names()) == {"B", "alpha"}
    np.testing.assert_allclose(tied.learned_parameters()["alpha"], 1.2, rtol=1e-6)


@pytest.mark.parametrize("cls, options", [(LAMP, LAMP.Options(tied=True)), (DUADMM, DUADMM.Options())])
def test_learned_solvers_gain_over_their_start_by_training(cls, options):
    prob, depth = problem(100, 50, seed=1), 6

    def final_nmse(solver):
        return evaluate(solver, prob, key=9, batch_size=200, batches=1, metrics=("nmse_db",))["nmse_db"][-1]

    start = cls(options, problem=prob, depth=depth)
    trained = train(start, prob, Incremental(), steps_per_stage=30, batch_size=64, key=0, progress=False).solver
    assert final_nmse(trained) < final_nmse(start) - 1.0, (final_nmse(start), final_nmse(trained))


# -- the operator: what AMP accepts, refuses, and where it diverges --------------------------------------------


def unit_columns(matrix):
    return matrix / np.linalg.norm(matrix, axis=0, keepdims=True)


def ill_conditioned(m, n, kappa, rng):
    """Unit columns, singular values spread geometrically over a factor ``kappa`` before normalising."""
    left, _ = np.linalg.qr(rng.standard_normal((m, m)))
    right, _ = np.linalg.qr(rng.standard_normal((n, m)))
    return unit_columns(left @ np.diag(np.geomspace(1, 1 / kappa, m)) @ right.T)


def non_iid_operators(m=100, n=200):
    rng = np.random.default_rng(6)
    correlation = 0.8 ** np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    return {"ill-conditioned": ill_conditioned(m, n, 20, rng),
            "nonzero mean": unit_columns(rng.standard_normal((m, n)) + 0.3),
            "correlated columns": unit_columns(rng.standard_normal((m, n)) @ np.linalg.cholesky(correlation).T)}


def test_the_screen_accepts_gaussian_operators_of_many_shapes():
    rng = np.random.default_rng(7)
    for m, n in ((10, 20), (20, 40), (30, 60), (100, 200), (250, 500), (40, 40), (16, 8)):
        for _ in range(20):
            matrix = rng.standard_normal((m, n))
            assert iid_diagnosis(unit_columns(matrix)) is None, (m, n)
            assert iid_diagnosis(3.0 * matrix) is None, (m, n)  # any scale: AMP normalises it


@pytest.mark.parametrize("kind", ["ill-conditioned", "nonzero mean", "correlated columns"])
def test_amp_refuses_a_non_iid_operator_and_diverges_on_it_when_told_to_run(kind):
    prob = user_problem(non_iid_operators()[kind])
    reason = iid_diagnosis(np.asarray(prob.A))
    assert reason is not None and "edge" in reason
    with pytest.raises(IncompatibleProblemError) as error:
        AMP(AMP.Options(), problem=prob, depth=16)
    message = str(error.value)
    assert "'amp'" in message and "'sparse-recovery'" in message and "iid_check" in message and "ista" in message
    with pytest.warns(RuntimeWarning, match="iid_check"):
        amp = AMP(AMP.Options(iid_check="warn"), problem=prob, depth=16)
    curve = evaluate(amp, prob, key=0, batch_size=50, batches=1, metrics=("nmse_db",))["nmse_db"]
    # What the docs say: the error grows without bound (or overflows), where ISTA-like methods descend.
    assert not np.all(np.isfinite(curve)) or curve[-1] > curve[0] + 10, curve


def test_the_cli_refuses_amp_on_a_non_iid_matrix_file_before_running(tmp_path, capsys):
    from du_framework.cli import main

    matrix = unit_columns(np.random.default_rng(0).standard_normal((20, 40)) + 0.6)  # a nonzero mean
    assert iid_diagnosis(matrix) is not None
    np.save(tmp_path / "A.npy", matrix)
    config = tmp_path / "c.toml"
    config.write_text(f"""[problem]\nname = "sparse-recovery"\nn = 40\nm = 20\nmatrix = "{tmp_path / 'A.npy'}"
[train]\ndepth = 3\nsteps_per_stage = 1\nbatch_size = 4\n[evaluation]\nbatch_size = 4\nbatches = 1
[[solvers]]\nname = "ista"\n[[solvers]]\nname = "amp"\n""")
    assert main(["compare", "--config", str(config), "--out", str(tmp_path / "run"), "--no-plots", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "'amp'" in error and "i.i.d. screen" in error and "--only ista" in error and "--only ista,amp" not in error
    assert not (tmp_path / "run").exists()
    assert not AMP.fits(user_problem(matrix)) and AMP.fits(tiny()) and LAMP.fits(user_problem(matrix))


def test_amp_is_invariant_to_the_scale_of_the_operator():
    A = np.asarray(problem(60, 30).A, np.float64)
    instance = problem(60, 30).sample(jax.random.key(8), 8)
    unit, scaled = user_problem(A), user_problem(2.5 * A)
    x_unit = iterates(AMP(AMP.Options(), problem=unit, depth=6), unit, instance)
    x_scaled = iterates(AMP(AMP.Options(), problem=scaled, depth=6), scaled, instance)
    np.testing.assert_allclose(2.5 * x_scaled, x_unit, rtol=0, atol=1e-5 * np.abs(x_unit).max())


def test_lamp_warns_on_a_non_iid_operator_and_refuses_a_per_instance_one():
    with pytest.warns(RuntimeWarning, match="'lamp'"):
        LAMP(LAMP.Options(), problem=user_problem(non_iid_operators()["nonzero mean"]), depth=4)
    per_instance = tiny_per_instance()
    assert not LAMP.fits(per_instance) and LAMP.fits(tiny()) and AMP.fits(per_instance)
    for options in (LAMP.Options(), LAMP.Options(tied=True)):
        with pytest.raises(IncompatibleProblemError) as error:
            LAMP(options, problem=per_instance, depth=4)
        message = str(error.value)
        assert "'lamp'" in message and "'sparse-recovery'" in message and "per instance" in message


def test_amp_on_gaussian_operators_raises_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AMP(AMP.Options(iid_check="warn"), problem=tiny(), depth=2)
        AMP(AMP.Options(iid_check="warn"), problem=tiny_per_instance(), depth=2)


def test_classical_solvers_report_their_constants():
    prob = tiny()
    values = AMP(AMP.Options(alpha=1.5), problem=prob, depth=2).learned_parameters()
    assert set(values) == {"alpha"} and values["alpha"] == pytest.approx([1.5])
    values = ADMM(ADMM.Options(lam=0.1, rho=0.5), problem=prob, depth=2).learned_parameters()
    assert set(values) == {"rho", "threshold"} and values["threshold"] == pytest.approx([0.2])


SOLVERS = (AMP, LAMP, ADMM, DUADMM)


@parametrize_with_checks(
    [SolverCase(cls, problem=tiny) for cls in SOLVERS]
    + [SolverCase(LAMP, LAMP.Options(tied=True), problem=tiny, id="lamp-tied")]
    + [SolverCase(cls, problem=tiny_per_instance, id=f"{cls.name}-per-instance") for cls in SOLVERS if cls is not LAMP])
def test_conformance(case, check):
    check(case)
