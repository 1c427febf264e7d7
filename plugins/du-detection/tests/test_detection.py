"""MIMO detection: the conformance kit on the problem and every detector, the closed forms against a
float64 NumPy re-derivation, ML against brute force, the SNR convention measured, the Gray mappings, the
refusals, and a short training of TPG beating the untrained projected gradient on an overloaded channel."""

import itertools

import jax
import numpy as np
import pytest

from du_framework import ConfigError, parse_options
from du_framework.engine import evaluate, train
from du_framework.testing import ProblemCase, SolverCase, parametrize_with_checks
from du_detection import (LMMSE, MODULATIONS, OAMP, TPG, Constellation, MaximumLikelihood, MIMODetection, OAMPNet,
                          ProjectedGradient, ZeroForcing, rayleigh_lipschitz_bound)

SOLVERS = (ZeroForcing, LMMSE, MaximumLikelihood, ProjectedGradient, TPG, OAMP, OAMPNet)


def mimo(**options):
    return MIMODetection.from_options(parse_options(MIMODetection.Options, options))


def build(solver, problem, depth=1, **options):
    return solver(parse_options(solver.Options, options), problem=problem, depth=depth)


def tiny():
    return mimo(n_tx=2, n_rx=2, modulation="qpsk", snr_db=[10.0, 20.0])


@parametrize_with_checks([ProblemCase(MIMODetection, MIMODetection.Options(n_tx=3, n_rx=2, modulation="16qam")),
                          *[SolverCase(solver, problem=tiny, depth=2, steps_per_stage=10, batch_size=16)
                            for solver in SOLVERS if solver is not OAMPNet],
                          SolverCase(OAMPNet, OAMPNet.Options(lr=0.05), problem=tiny, depth=2, steps_per_stage=20, batch_size=32)])
def test_conformance(case, check):
    check(case)


# -- the problem -----------------------------------------------------------------------------------


def complex_model(instance, n_tx, n_rx, modulation):
    """The complex ``H``, ``x``, ``y`` back from the real-valued equivalent (float64/complex128)."""
    h_r, y_r, x_r = (np.asarray(instance[key], np.float64) for key in ("H", "y", "target"))
    if modulation == "bpsk":
        return h_r[:, :n_rx] + 1j * h_r[:, n_rx:], x_r.astype(np.complex128), y_r[:, :n_rx] + 1j * y_r[:, n_rx:]
    h = h_r[:, :n_rx, :n_tx] + 1j * h_r[:, n_rx:, :n_tx]
    np.testing.assert_allclose(h_r[:, :n_rx, n_tx:], -h.imag)
    np.testing.assert_allclose(h_r[:, n_rx:, n_tx:], h.real)
    return h, x_r[:, :n_tx] + 1j * x_r[:, n_tx:], y_r[:, :n_rx] + 1j * y_r[:, n_rx:]


@pytest.mark.parametrize("modulation", MODULATIONS)
def test_snr_is_n_tx_es_over_n0_per_receive_antenna(modulation):
    n_tx, n_rx, snr_db = 4, 3, 7.0
    problem = mimo(n_tx=n_tx, n_rx=n_rx, modulation=modulation, snr_db=snr_db)
    instance = problem.sample(jax.random.key(0), 6000)
    h, x, y = complex_model(instance, n_tx, n_rx, modulation)
    signal = np.einsum("brt,bt->br", h, x)
    noise = y - signal
    assert np.mean(np.abs(x) ** 2) == pytest.approx(1.0, rel=0.02)                  # Es = 1
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, rel=0.02)                  # CN(0, 1) entries
    assert np.mean(np.abs(signal) ** 2) / np.mean(np.abs(noise) ** 2) == pytest.approx(10 ** 0.7, rel=0.03)
    n0 = n_tx / 10 ** 0.7
    assert np.mean(np.abs(noise) ** 2) == pytest.approx(n0, rel=0.03)               # N0 per antenna
    np.testing.assert_allclose(np.asarray(problem.noise_variance(instance)), n0 / 2, rtol=1e-5)


def test_snr_range_is_drawn_per_instance_uniformly_in_db():
    problem = mimo(n_tx=2, n_rx=2, snr_db=[0.0, 20.0])
    variance = np.asarray(problem.sample(jax.random.key(1), 4000)["noise_variance"], np.float64)
    snr_db = 10 * np.log10(2 / (2 * variance))
    assert snr_db.min() >= -1e-3 and snr_db.max() <= 20 + 1e-3
    assert np.mean(snr_db) == pytest.approx(10.0, abs=0.3) and np.std(snr_db) == pytest.approx(20 / 12**0.5, rel=0.05)


@pytest.mark.parametrize("modulation", MODULATIONS)
def test_constellations_have_unit_energy_and_a_gray_mapping(modulation):
    c = Constellation.of(modulation)
    points, labels = c.points(), c.labels()
    assert len(points) == c.size == {"bpsk": 2, "qpsk": 4, "16qam": 16}[modulation]
    assert np.mean(np.abs(points) ** 2) == pytest.approx(1.0)
    assert len({tuple(label) for label in labels}) == c.size  # every label once
    spacing = 2 * c.spacing
    for a, b in itertools.combinations(range(c.size), 2):
        if abs(abs(points[a] - points[b]) - spacing) < 1e-9:  # neighbours in a row or a column
            assert np.sum(labels[a] != labels[b]) == 1, (points[a], points[b])


def test_error_counts_are_per_instance_with_symbol_and_bit_normalisers():
    problem = mimo(n_tx=2, n_rx=2, modulation="16qam")
    d = problem.constellation.spacing
    target = np.array([[-3 * d, d, 3 * d, -d]], np.float32)      # symbols (-3 + 3i) d, (1 - 1i) d
    estimate = np.array([[-1.9 * d, 0.2, 2.5 * d, -d]], np.float32)  # first symbol's real part off by one level
    instance = {"target": target}
    ser, ber, _ = problem.metrics
    assert float(ser.per_instance(estimate, instance)[0]) == 1.0 and float(ser.normalizer(estimate, instance)[0]) == 2
    assert float(ber.per_instance(estimate, instance)[0]) == 1.0 and float(ber.normalizer(estimate, instance)[0]) == 8


def test_the_step_bound_holds_for_almost_every_channel():
    rng = np.random.default_rng(0)
    for n_tx, n_rx, modulation in ((16, 16, "qpsk"), (12, 8, "qpsk"), (8, 4, "bpsk")):
        h = (rng.standard_normal((2000, n_rx, n_tx)) + 1j * rng.standard_normal((2000, n_rx, n_tx))) / np.sqrt(2)
        if modulation == "bpsk":
            h = np.concatenate([h.real, h.imag], axis=1)
        norms = np.linalg.norm(h, 2, axis=(1, 2)) ** 2
        assert np.mean(norms > rayleigh_lipschitz_bound(n_tx, n_rx, modulation)) < 0.02


# -- the closed forms ------------------------------------------------------------------------------


def numpy_decisions(h, y, ridge, levels):
    """``(H^T H + ridge I)^{-1} H^T y`` in float64 per instance, then the nearest level per entry."""
    n = h.shape[2]
    gram = np.einsum("bmi,bmj->bij", h, h) + ridge[:, None, None] * np.eye(n)
    x = np.linalg.solve(gram, np.einsum("bmi,bm->bi", h, y)[..., None])[..., 0]
    return levels[np.argmin(np.abs(x[..., None] - levels), axis=-1)]


@pytest.mark.parametrize("solver", [ZeroForcing, LMMSE])
def test_zf_and_lmmse_match_a_float64_rederivation(solver):
    problem = mimo(n_tx=4, n_rx=4, modulation="16qam", snr_db=[15.0, 25.0])
    instance = problem.sample(jax.random.key(3), 2000)
    h, y, target = (np.asarray(instance[key], np.float64) for key in ("H", "y", "target"))
    ridge = (np.asarray(instance["noise_variance"], np.float64) / problem.constellation.energy_per_dim
             if solver is LMMSE else np.zeros(len(y)))
    decided = numpy_decisions(h, y, ridge, problem.constellation.levels())
    n, wrong = problem.n_tx, np.abs(decided - target) > problem.constellation.spacing / 2
    reference_ser = np.mean(wrong[:, :n] | wrong[:, n:])
    estimate = build(solver, problem).closed_form(problem, instance)
    ser_metric = problem.metrics[0]
    ser = float(np.sum(ser_metric.per_instance(estimate, instance)) / np.sum(ser_metric.normalizer(estimate, instance)))
    assert ser == pytest.approx(reference_ser, abs=2e-3)  # float32 may flip a borderline decision or two
    assert 0.01 < reference_ser < 0.5


def test_ml_equals_brute_force_on_2x2_qpsk():
    problem = mimo(n_tx=2, n_rx=2, modulation="qpsk", snr_db=5.0)
    instance = problem.sample(jax.random.key(4), 500)
    h, y = np.asarray(instance["H"], np.float64), np.asarray(instance["y"], np.float64)
    d = problem.constellation.spacing
    candidates = np.array(list(itertools.product([-d, d], repeat=4)))  # (16, 4): every [Re x; Im x]
    distances = np.sum((y[:, None, :] - np.einsum("bmn,kn->bkm", h, candidates)) ** 2, axis=-1)
    brute = candidates[np.argmin(distances, axis=1)]
    estimate = np.asarray(build(MaximumLikelihood, problem, chunk=5).closed_form(problem, instance))  # 4 chunks
    np.testing.assert_allclose(estimate, brute, atol=1e-6)
    assert np.mean(np.any(brute != np.asarray(instance["target"]), axis=1)) > 0.05  # not only easy instances


# -- refusals --------------------------------------------------------------------------------------


def test_unknown_modulation_is_refused_with_the_nearest_name():
    with pytest.raises(ConfigError, match=r"'bpsk', 'qpsk', '16qam'.*did you mean 'qpsk'"):
        parse_options(MIMODetection.Options, {"modulation": "qpks"})


@pytest.mark.parametrize("key", ["n_tx", "n_rx"])
def test_antenna_counts_below_one_are_refused(key):
    with pytest.raises(ConfigError, match=f"{key} must be >= 1, <= 1024, got 0"):
        parse_options(MIMODetection.Options, {key: 0})


def test_snr_range_must_be_two_increasing_numbers():
    for bad in ([20.0, 10.0], [1.0, 2.0, 3.0]):
        with pytest.raises(ConfigError, match=r"snr_db must be a number or a list \[low, high\]"):
            parse_options(MIMODetection.Options, {"snr_db": bad})


def test_ml_refuses_more_candidates_than_its_limit():
    problem = mimo(n_tx=5, n_rx=5, modulation="16qam")
    with pytest.raises(ConfigError, match=r"16\^5 = 1048576 candidates .* max_candidates = 65536"):
        build(MaximumLikelihood, problem)
    assert build(MaximumLikelihood, problem, max_candidates=2**20).count == 2**20


# -- learning --------------------------------------------------------------------------------------


def test_trained_tpg_beats_untrained_pg_on_an_overloaded_channel():
    problem = mimo(n_tx=6, n_rx=4, modulation="qpsk", snr_db=20.0)
    untrained = evaluate(build(ProjectedGradient, problem, depth=6), problem, key=7, batch_size=1000,
                         batches=2, metrics=("ser",))["ser"][-1]
    trained = train(build(TPG, problem, depth=6), problem, "incremental", key=1, steps_per_stage=25, batch_size=128,
                    progress=False)
    ser = evaluate(trained.solver, problem, key=7, batch_size=1000, batches=2, metrics=("ser",))["ser"][-1]
    assert ser < 0.9 * untrained
