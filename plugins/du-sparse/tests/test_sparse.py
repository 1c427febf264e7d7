"""Sparse recovery: the problem's statistics (shared and per-instance operator), the classical
iterations against numpy, the TISTA shrinkage against numerical integration, the learned
solvers' gain, the per-instance step bound, and the conformance kit on both operators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from du_framework import ConfigError, IncompatibleProblemError, LinearObservation
from du_framework.engine import evaluate, train, unroll
from du_framework import parse_options
from du_framework import Incremental
from du_framework.testing import ProblemCase, SolverCase, parametrize_with_checks
from du_sparse import (
    DUISTA,
    FISTA,
    ISTA,
    LISTA,
    TISTA,
    BernoulliGaussianPrior,
    SparseRecovery,
    per_instance_lipschitz_bound,
    soft_threshold,
)


def tiny():
    return SparseRecovery.from_options(SparseRecovery.Options(n=20, m=10, p=0.2, snr_db=30.0))


def tiny_per_instance():
    return SparseRecovery.from_options(SparseRecovery.Options(n=20, m=10, p=0.2, snr_db=30.0, operator="per-instance"))


@pytest.fixture(scope="module")
def medium():
    return SparseRecovery.from_options(SparseRecovery.Options(n=100, m=50, p=0.1, snr_db=40.0, seed=0))


@pytest.fixture(scope="module")
def medium_per_instance():
    return SparseRecovery.from_options(SparseRecovery.Options(n=100, m=50, p=0.1, snr_db=40.0,
                                                              operator="per-instance"))


def snr_db(x, y, A):
    """Empirical ``E||A x||^2 / E||y - A x||^2`` in dB; ``A`` shared ``(m, n)`` or per instance ``(b, m, n)``."""
    signal = x @ A.T if A.ndim == 2 else np.einsum("bmn,bn->bm", A, x)
    return 10 * np.log10(np.mean(np.sum(signal**2, 1)) / np.mean(np.sum((y - signal) ** 2, 1)))


def test_instances_have_the_requested_sparsity_and_snr(medium):
    batch = medium.sample(jax.random.key(0), 4000)
    A = np.asarray(medium.A, np.float64)
    x, y = np.asarray(batch["target"], np.float64), np.asarray(batch["y"], np.float64)
    assert set(batch) == {"y", "target"} and not medium.per_instance_operator
    np.testing.assert_allclose(np.linalg.norm(A, axis=0), 1.0, rtol=1e-5)
    assert np.mean(x != 0) == pytest.approx(0.1, abs=0.005)
    assert snr_db(x, y, A) == pytest.approx(40.0, abs=0.2)


def test_per_instance_operator_is_drawn_for_every_instance_at_the_requested_snr(medium_per_instance):
    problem = medium_per_instance
    batch = problem.sample(jax.random.key(0), 1000)
    A = np.asarray(batch["A"], np.float64)
    x, y = np.asarray(batch["target"], np.float64), np.asarray(batch["y"], np.float64)
    assert problem.per_instance_operator and A.shape == (1000, 50, 100)
    assert isinstance(problem, LinearObservation) and isinstance(problem, BernoulliGaussianPrior)
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), 1.0, rtol=1e-5)  # unit columns, every instance
    assert not np.allclose(A[0], A[1])
    assert np.mean(x != 0) == pytest.approx(0.1, abs=0.005)
    assert snr_db(x, y, A) == pytest.approx(40.0, abs=0.2)
    # The expected noise variance is the shared problem's (||A||_F^2 = n for unit columns).
    shared = SparseRecovery.from_options(SparseRecovery.Options(n=100, m=50, p=0.1, snr_db=40.0))
    assert problem.noise_variance == pytest.approx(shared.noise_variance, rel=1e-6)
    # forward, adjoint and the pseudo-inverse act per instance.
    r = np.asarray(jax.random.normal(jax.random.key(1), (1000, 50)), np.float64)
    np.testing.assert_allclose(np.asarray(problem.forward(batch, batch["target"])), np.einsum("bmn,bn->bm", A, x),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(problem.adjoint(batch, jnp.asarray(r, jnp.float32))),
                               np.einsum("bmn,bm->bn", A, r), rtol=1e-4, atol=1e-4)
    W = np.linalg.pinv(A[:8])
    np.testing.assert_allclose(np.asarray(problem.pseudo_inverse({"A": batch["A"][:8]})), W, rtol=1e-3, atol=1e-4)


def test_per_instance_step_bound_holds_over_the_ensemble():
    """lipschitz_bound() >= ||A||_2^2 for every one of thousands of draws, and it is not loose beyond reason."""
    for n, m, count in ((20, 10, 2000), (100, 50, 200), (16, 16, 500), (6, 2, 500)):
        problem = SparseRecovery.from_options(SparseRecovery.Options(n=n, m=m, operator="per-instance"))
        A = np.asarray(jax.jit(problem.sample, static_argnums=1)(jax.random.key(n + m), count)["A"], np.float64)
        norms = np.linalg.norm(A, 2, axis=(1, 2)) ** 2
        bound = problem.lipschitz_bound()
        assert bound == per_instance_lipschitz_bound(n, m)
        assert norms.max() <= bound, (n, m, norms.max(), bound)
        assert bound <= min(n, 2.5 * (1 + np.sqrt(n / m)) ** 2), (n, m, bound)


def test_shared_operator_keeps_its_exact_constants(medium):
    A = np.asarray(medium.A, np.float64)
    assert medium.lipschitz_bound() == pytest.approx(np.linalg.norm(A, 2) ** 2, rel=1e-5)
    np.testing.assert_allclose(np.asarray(medium.pseudo_inverse(None)), np.linalg.pinv(A), rtol=1e-3, atol=1e-5)
    assert medium.operator(None) is medium.A


def test_a_matrix_file_cannot_be_drawn_per_instance():
    with pytest.raises(ConfigError, match="per-instance"):
        parse_options(SparseRecovery.Options, {"matrix": "a.npy", "operator": "per-instance"}, prefix="problem.")
    with pytest.raises(ConfigError, match="operator"):
        parse_options(SparseRecovery.Options, {"operator": "each"}, prefix="problem.")


def test_soft_threshold_matches_its_definition():
    r = np.linspace(-2, 2, 41)
    expected = np.where(r > 0.5, r - 0.5, np.where(r < -0.5, r + 0.5, 0.0))
    np.testing.assert_allclose(np.asarray(soft_threshold(r, 0.5)), expected, atol=1e-7)


def mse_curve(solver, problem, key, batch_size):
    return evaluate(solver, problem, key=key, batch_size=batch_size, batches=1, metrics=("mse",))["mse"]


def numpy_curve(problem, key, batch_size, depth, update, init):
    """MSE after each iteration of ``update(state, A, y)`` on the evaluation's batch (``A`` per instance or shared)."""
    batch = problem.sample(jax.random.split(jax.random.key(key), 1)[0], batch_size)
    A = np.asarray(batch["A"] if problem.per_instance_operator else problem.A, np.float64)
    y, x_true = np.asarray(batch["y"], np.float64), np.asarray(batch["target"], np.float64)
    state, curve = init(x_true), []
    for _ in range(depth):
        state = update(state, A, y)
        x = state[0] if isinstance(state, tuple) else state
        curve.append(np.mean(np.sum((x - x_true) ** 2, 1)))
    return np.array(curve)


def soft(r, threshold):
    return np.sign(r) * np.maximum(np.abs(r) - threshold, 0)


def test_ista_and_fista_follow_their_recurrences(medium):
    L, lam = np.linalg.norm(np.asarray(medium.A, np.float64), 2) ** 2, 0.05
    ista = mse_curve(ISTA(ISTA.Options(lam=lam), problem=medium, depth=8), medium, 3, 20)
    expected = numpy_curve(medium, 3, 20, 8, lambda x, A, y: soft(x + (y - x @ A.T) @ A / L, lam / L),
                           lambda x: np.zeros_like(x))
    np.testing.assert_allclose(ista, expected, rtol=2e-3)

    def fista_update(state, A, y):
        x, z, t = state
        x_new = soft(z + (y - z @ A.T) @ A / L, lam / L)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        return x_new, x_new + (t - 1) / t_new * (x_new - x), t_new

    fista = mse_curve(FISTA(FISTA.Options(lam=lam), problem=medium, depth=8), medium, 3, 20)
    expected = numpy_curve(medium, 3, 20, 8, fista_update, lambda x: (np.zeros_like(x), np.zeros_like(x), 1.0))
    np.testing.assert_allclose(fista, expected, rtol=2e-3)


def test_ista_and_fista_report_their_constants(medium):
    L = medium.lipschitz_bound()
    for cls in (ISTA, FISTA):
        values = cls(cls.Options(lam=0.05), problem=medium, depth=3).learned_parameters()
        assert set(values) == {"step", "threshold"}
        np.testing.assert_allclose(values["step"], [1 / L])
        np.testing.assert_allclose(values["threshold"], [0.05 / L])


def test_solvers_run_on_a_per_instance_operator(medium_per_instance):
    problem, depth, lam = medium_per_instance, 8, 0.05
    L = problem.lipschitz_bound()
    # ISTA against numpy, each instance with its own A and the ensemble's step bound.
    ista = mse_curve(ISTA(ISTA.Options(lam=lam), problem=problem, depth=depth), problem, 5, 20)
    expected = numpy_curve(problem, 5, 20, depth,
                           lambda x, A, y: soft(x + np.einsum("bmn,bm->bn", A, y - np.einsum("bmn,bn->bm", A, x)) / L,
                                                lam / L),
                           lambda x: np.zeros_like(x))
    np.testing.assert_allclose(ista, expected, rtol=2e-3)
    assert expected[-1] < expected[0]
    # FISTA, DU-ISTA (untrained: ISTA's constants) and TISTA run and improve on the first iteration.
    for solver in (FISTA(FISTA.Options(lam=lam), problem=problem, depth=depth),
                   DUISTA(DUISTA.Options(lam=lam), problem=problem, depth=depth),
                   TISTA(TISTA.Options(), problem=problem, depth=depth)):
        curves = evaluate(solver, problem, key=5, batch_size=20, batches=1)
        assert set(curves) == {"nmse_db", "mse"}
        assert np.all(np.isfinite(curves["nmse_db"])) and curves["nmse_db"][-1] < curves["nmse_db"][0] - 1, solver.name
        if solver.name == "du-ista":
            np.testing.assert_allclose(curves["mse"], ista, rtol=1e-4)


def test_tista_per_instance_matches_the_shared_operator_when_every_instance_has_it(medium, medium_per_instance):
    """Per-instance traces and pseudo-inverse computed in prepare agree with the shared problem's host float64 ones."""
    instance = medium.sample(jax.random.key(4), 16)
    tiled = dict(instance, A=jnp.broadcast_to(medium.A, (16,) + medium.A.shape))
    shared = TISTA(TISTA.Options(), problem=medium, depth=6)
    per_instance = TISTA(TISTA.Options(), problem=medium_per_instance, depth=6)
    context = per_instance.prepare(medium_per_instance, tiled)
    A = np.asarray(medium.A, np.float64)
    np.testing.assert_allclose(np.asarray(context.trace_gram)[:, 0], np.sum(A**2), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(context.trace_wwt)[:, 0], np.sum(np.linalg.pinv(A) ** 2), rtol=1e-3)
    x_shared, _ = unroll(shared, medium, instance)
    x_per_instance, _ = unroll(per_instance, medium_per_instance, tiled)
    np.testing.assert_allclose(np.asarray(x_per_instance), np.asarray(x_shared), rtol=1e-3, atol=1e-4)


def test_lista_refuses_a_per_instance_operator(medium_per_instance):
    assert not LISTA.fits(medium_per_instance) and LISTA.fits(tiny())
    for options in (LISTA.Options(), LISTA.Options(tied=True)):
        with pytest.raises(IncompatibleProblemError) as error:
            LISTA(options, problem=medium_per_instance, depth=4)
        message = str(error.value)
        assert "'lista'" in message and "'sparse-recovery'" in message and "per instance" in message


def test_tista_shrinkage_is_the_posterior_mean_of_the_bernoulli_gaussian_prior(medium):
    tista = TISTA(TISTA.Options(), problem=medium, depth=2)
    p, tau2 = 0.1, 0.05
    r = np.linspace(-3, 3, 13)
    # Independent: E[x | r] by quadrature over the Gaussian part of the prior (the spike at 0 adds 0).
    grid = np.linspace(-8, 8, 20001)
    likelihood = np.exp(-((r[:, None] - grid[None, :]) ** 2) / (2 * tau2)) / np.sqrt(2 * np.pi * tau2)
    slab = p * np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 (the lowest allowed) has only trapz
    numerator = trapezoid(grid * likelihood * slab, grid, axis=1)
    evidence = trapezoid(likelihood * slab, grid, axis=1) + (1 - p) * np.exp(-(r**2) / (2 * tau2)) / np.sqrt(
        2 * np.pi * tau2)
    np.testing.assert_allclose(np.asarray(tista.shrink(r.astype(np.float32), np.float32(tau2))), numerator / evidence,
                               rtol=1e-4, atol=1e-6)


def test_learned_solvers_gain_at_least_10_db_over_ista_at_16_iterations(medium):
    depth = 16

    def nmse_db(solver):
        return evaluate(solver, medium, key=21, batch_size=200, batches=2, metrics=("nmse_db",))["nmse_db"][-1]

    ista = nmse_db(ISTA(ISTA.Options(), problem=medium, depth=depth))
    for cls in (TISTA, DUISTA):
        trained = train(cls(cls.Options(), problem=medium, depth=depth), medium, Incremental(), steps_per_stage=50,
                        batch_size=64, key=0, progress=False, log_loss=False).solver
        assert nmse_db(trained) <= ista - 10, (cls.name, nmse_db(trained), ista)


def test_lista_ties_weights_on_request():
    problem = tiny()
    untied = LISTA(LISTA.Options(), problem=problem, depth=4)
    tied = LISTA(LISTA.Options(tied=True), problem=problem, depth=4)
    assert untied.B[...].shape == (4, 20, 10) and untied.S[...].shape == (4, 20, 20)
    assert tied.B[...].shape == (1, 20, 10) and tied.theta[...].shape == (1,)
    # The big matrices are kept out of the reported parameters.
    assert set(tied.learned_parameters()) == {"theta"} and set(tied.param_names()) == {"B", "S", "theta"}
    # Initialised at ISTA: the first iteration of both equals ISTA's.
    ista = mse_curve(ISTA(ISTA.Options(), problem=problem, depth=4), problem, 2, 10)
    np.testing.assert_allclose(mse_curve(tied, problem, 2, 10), ista, rtol=1e-4)


def test_tied_lista_trains_by_implicit_differentiation_and_untied_lista_is_refused(medium):
    """Tied LISTA applies one map per iteration: ``train.backward = "implicit"`` trains it at its fixed point."""
    from du_framework import Stage

    def nmse_db(solver):
        return evaluate(solver, medium, key=21, batch_size=200, batches=1, metrics=("nmse_db",))["nmse_db"][-1]

    start = LISTA(LISTA.Options(tied=True, lr=1e-4), problem=medium, depth=30)
    trained = train(start, medium, [Stage(30, 60)], batch_size=64, key=0, progress=False, backward="implicit").solver
    assert nmse_db(trained) < nmse_db(start) - 1.0
    untied = LISTA(LISTA.Options(), problem=medium, depth=4)
    with pytest.raises(ConfigError, match="'lista' has none"):
        train(untied, medium, [Stage(4, 1)], batch_size=8, key=0, progress=False, backward="implicit")


SOLVERS = (ISTA, FISTA, DUISTA, TISTA, LISTA)


@parametrize_with_checks(
    [SolverCase(cls, problem=tiny) for cls in SOLVERS]
    + [SolverCase(LISTA, LISTA.Options(tied=True), problem=tiny, id="lista-tied")]
    + [SolverCase(cls, problem=tiny_per_instance, id=f"{cls.name}-per-instance") for cls in SOLVERS if cls is not LISTA]
    + [ProblemCase(SparseRecovery, SparseRecovery.Options(n=20, m=10, p=0.2), id="sparse-recovery-shared"),
       ProblemCase(SparseRecovery, SparseRecovery.Options(n=20, m=10, p=0.2, operator="per-instance"),
                   id="sparse-recovery-per-instance")])
def test_conformance(case, check):
    check(case)
