"""Sparse recovery: the problem's statistics, the classical iterations against numpy,
the TISTA shrinkage against numerical integration, and the learned solvers' gain."""

import jax
import numpy as np
import pytest

from du_framework.engine import evaluate, target_energy, train
from du_framework.schedules import Incremental
from du_framework.testing import SolverCase, parametrize_with_checks
from du_sparse import DUISTA, FISTA, ISTA, LISTA, TISTA, SparseRecovery, soft_threshold


def tiny():
    return SparseRecovery.from_options(SparseRecovery.Options(n=20, m=10, p=0.2, snr_db=30.0))


@pytest.fixture(scope="module")
def medium():
    return SparseRecovery.from_options(SparseRecovery.Options(n=100, m=50, p=0.1, snr_db=40.0, seed=0))


def test_instances_have_the_requested_sparsity_and_snr(medium):
    batch = medium.sample(jax.random.key(0), 4000)
    A = np.asarray(medium.A, np.float64)
    x, y = np.asarray(batch["target"], np.float64), np.asarray(batch["y"], np.float64)
    np.testing.assert_allclose(np.linalg.norm(A, axis=0), 1.0, rtol=1e-5)
    assert np.mean(x != 0) == pytest.approx(0.1, abs=0.005)
    signal = x @ A.T
    snr = 10 * np.log10(np.mean(np.sum(signal**2, 1)) / np.mean(np.sum((y - signal) ** 2, 1)))
    assert snr == pytest.approx(40.0, abs=0.2)


def test_soft_threshold_matches_its_definition():
    r = np.linspace(-2, 2, 41)
    expected = np.where(r > 0.5, r - 0.5, np.where(r < -0.5, r + 0.5, 0.0))
    np.testing.assert_allclose(np.asarray(soft_threshold(r, 0.5)), expected, atol=1e-7)


def numpy_curve(problem, key, batch_size, depth, update, init):
    batch = problem.sample(jax.random.split(jax.random.key(key), 1)[0], batch_size)
    A = np.asarray(problem.A, np.float64)
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
    ista = evaluate(ISTA(ISTA.Options(lam=lam), problem=medium, depth=8), medium, key=3, batch_size=20, batches=1)
    expected = numpy_curve(medium, 3, 20, 8, lambda x, A, y: soft(x + (y - x @ A.T) @ A / L, lam / L),
                           lambda x: np.zeros_like(x))
    np.testing.assert_allclose(ista, expected, rtol=2e-3)

    def fista_update(state, A, y):
        x, z, t = state
        x_new = soft(z + (y - z @ A.T) @ A / L, lam / L)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        return x_new, x_new + (t - 1) / t_new * (x_new - x), t_new

    fista = evaluate(FISTA(FISTA.Options(lam=lam), problem=medium, depth=8), medium, key=3, batch_size=20, batches=1)
    expected = numpy_curve(medium, 3, 20, 8, fista_update, lambda x: (np.zeros_like(x), np.zeros_like(x), 1.0))
    np.testing.assert_allclose(fista, expected, rtol=2e-3)


def test_tista_shrinkage_is_the_posterior_mean_of_the_bernoulli_gaussian_prior(medium):
    tista = TISTA(TISTA.Options(), problem=medium, depth=2)
    p, tau2 = 0.1, 0.05
    r = np.linspace(-3, 3, 13)
    # Independent: E[x | r] by quadrature over the Gaussian part of the prior (the spike at 0 adds 0).
    grid = np.linspace(-8, 8, 20001)
    likelihood = np.exp(-((r[:, None] - grid[None, :]) ** 2) / (2 * tau2)) / np.sqrt(2 * np.pi * tau2)
    slab = p * np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi)
    numerator = np.trapezoid(grid * likelihood * slab, grid, axis=1)
    evidence = np.trapezoid(likelihood * slab, grid, axis=1) + (1 - p) * np.exp(-(r**2) / (2 * tau2)) / np.sqrt(
        2 * np.pi * tau2)
    np.testing.assert_allclose(np.asarray(tista.shrink(r.astype(np.float32), np.float32(tau2))), numerator / evidence,
                               rtol=1e-4, atol=1e-6)


def test_learned_solvers_gain_at_least_10_db_over_ista_at_16_iterations(medium):
    depth = 16
    energy = target_energy(medium, key=21, batch_size=200, batches=2)

    def nmse_db(solver):
        return 10 * np.log10(evaluate(solver, medium, key=21, batch_size=200, batches=2)[-1] / energy)

    ista = nmse_db(ISTA(ISTA.Options(), problem=medium, depth=depth))
    for cls in (TISTA, DUISTA):
        trained = train(cls(cls.Options(), problem=medium, depth=depth), medium, Incremental(), steps_per_stage=50,
                        batch_size=64, key=0, progress=False).solver
        assert nmse_db(trained) <= ista - 10, (cls.name, nmse_db(trained), ista)


def test_lista_ties_weights_on_request():
    problem = tiny()
    untied = LISTA(LISTA.Options(), problem=problem, depth=4)
    tied = LISTA(LISTA.Options(tied=True), problem=problem, depth=4)
    assert untied.B[...].shape == (4, 20, 10) and untied.S[...].shape == (4, 20, 20)
    assert tied.B[...].shape == (1, 20, 10) and tied.theta[...].shape == (1,)
    # Initialised at ISTA: the first iteration of both equals ISTA's.
    ista = evaluate(ISTA(ISTA.Options(), problem=problem, depth=4), problem, key=2, batch_size=10, batches=1)
    np.testing.assert_allclose(evaluate(tied, problem, key=2, batch_size=10, batches=1), ista, rtol=1e-4)


@parametrize_with_checks([SolverCase(cls, problem=tiny) for cls in (ISTA, FISTA, DUISTA, TISTA, LISTA)]
                         + [SolverCase(LISTA, LISTA.Options(tied=True), problem=tiny, id="lista-tied")])
def test_conformance(case, check):
    check(case)
