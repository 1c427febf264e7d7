"""Sweeps of a problem option and evaluation until a target error count (``[evaluation] sweep``,
``target_errors``, ``max_batches``): the points, the stopping rule, the files, the figure, bad input."""

import csv
import dataclasses
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from du_framework import MSE, ConfigError, Metric, hookimpl, option
from du_framework.engine import EVALUATION_CHUNK, evaluate, evaluate_counts
from du_framework.registry import plugin_registered
from du_framework.workbench.config import load_config
from du_framework.workbench.compare import run_comparison
from du_framework.workbench.loading import load_run

from cli_helpers import one_error_line, run
from compile_log import compilations
from core_plugin import ConstantGD, DiagonalQuadratic, core_plugin  # noqa: F401 - the fixture

BER = Metric("ber", lambda estimate, instance: jnp.sum(jnp.sign(estimate) != instance["target"], axis=-1),
             label="BER", format=".2e", log_axis=True, counts_errors=True,
             normalizer=lambda estimate, instance: jnp.full(estimate.shape[:1], estimate.shape[-1], jnp.float32))


class NoisySigns(DiagonalQuadratic):
    """``b = H s + sigma w``, ``s`` in {-1, 1}^n, ``sigma = 10^(-snr_db/20)``; the target is ``s``: the BER
    (primary, an error count per instance over ``n`` trials) of ``sign(x)``."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        n: int = option(6, ge=1, help="length of x")
        kappa: float = option(4.0, ge=1, help="condition number")
        snr_db: float | list[float] = option(3.0, help="SNR in dB, or a range [low, high] drawn per instance")

        def validate(self):
            if not isinstance(self.snr_db, float) and len(self.snr_db) != 2:
                raise ValueError(f"snr_db is a number or a range [low, high], got {list(self.snr_db)}")

    name = "noisy-signs"
    description = "sweep test problem: signs in Gaussian noise"
    metrics = (BER, MSE)
    primary_metric = "ber"

    def __init__(self, options):
        super().__init__(options)
        snr = (options.snr_db, options.snr_db) if isinstance(options.snr_db, float) else options.snr_db
        self.snr_range = jnp.asarray(snr, jnp.float32)  # an array: every sweep point shares the compiled evaluation

    def sample(self, key, batch_size):
        signs_key, noise_key, snr_key = jax.random.split(key, 3)
        signs = jax.random.rademacher(signs_key, (batch_size, self.n)).astype(jnp.float32)
        snr = jax.random.uniform(snr_key, (batch_size, 1), minval=self.snr_range[0], maxval=self.snr_range[1])
        noise = 10 ** (-snr / 20) * jax.random.normal(noise_key, (batch_size, self.n))
        return {"b": signs * self.diagonal[None, :] + noise, "target": signs}


@hookimpl
def register_problems(register):
    register(NoisySigns)


SWEEP_TOML = """
[problem]
name = "noisy-signs"
snr_db = [0.0, 8.0]

[train]
depth = 4
steps_per_stage = 5
batch_size = 16

[evaluation]
batch_size = 20
batches = 2
sweep = { snr_db = [0, 3, 6] }

[[solvers]]
name = "learned-gd"
label = "learned"
period = 2

[[solvers]]
name = "constant-gd"
label = "gd"
"""


@pytest.fixture
def sweep_plugin(core_plugin):
    with plugin_registered(sys.modules[__name__], "sweep-tests"):
        yield


@pytest.fixture
def sweep_config(tmp_path, sweep_plugin):
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP_TOML)
    return path


def _key(seed, *folds):
    key = jax.random.key(seed)
    for data in folds:
        key = jax.random.fold_in(key, data)
    return key


def _final_errors_per_batch(problem, step, depth, keys, batch_size):
    """Errors of sign(x^(depth)) per batch, computed here in NumPy: GD ``x <- x - step (H x - b)`` from 0."""
    counts = []
    diagonal = np.asarray(problem.diagonal, np.float32)
    for key in keys:
        instance = jax.device_get(problem.sample(key, batch_size))
        b, signs = np.asarray(instance["b"], np.float32), np.asarray(instance["target"], np.float32)
        x = np.zeros_like(b)
        for _ in range(depth):
            x = x - np.float32(step) * (x * diagonal - b)
        counts.append(int(np.sum(np.sign(x) != signs)))
    return np.array(counts)


def test_target_errors_stops_at_the_first_batch_where_the_count_reaches_it(sweep_plugin):
    problem = NoisySigns(NoisySigns.Options(snr_db=2.0))
    solver = ConstantGD(ConstantGD.Options(), problem=problem, depth=3)
    max_batches, batch_size, key = 40, 10, _key(7)
    per_batch = _final_errors_per_batch(problem, solver.step_size, 3, jax.random.split(key, max_batches), batch_size)
    running = np.cumsum(per_batch)
    target = int(running[12]) if running[12] > running[11] else int(running[11]) + 1  # reached mid-chunk or later
    expected = int(np.argmax(running >= target)) + 1
    assert EVALUATION_CHUNK < expected < max_batches and expected % EVALUATION_CHUNK, "inside a later chunk"
    with compilations() as compiled:
        found = evaluate_counts(solver, problem, key=key, batch_size=batch_size, target_errors=target,
                                max_batches=max_batches)
    assert found.stopped == "target" and found.batches == expected
    assert found.errors("ber")[-1] == running[expected - 1] >= target
    assert found.trials("ber")[-1] == expected * batch_size * problem.n
    assert found.values["ber"][-1] == pytest.approx(running[expected - 1] / (expected * batch_size * problem.n))
    # never reached: every batch up to max_batches, the same sums as a fixed evaluation of max_batches
    with compilations() as again:
        capped = evaluate_counts(solver, problem, key=key, batch_size=batch_size, target_errors=10**9,
                                 max_batches=max_batches)
    assert capped.stopped == "max_batches" and capped.batches == max_batches
    assert capped.errors("ber")[-1] == running[-1]
    fixed = evaluate(solver, problem, key=key, batch_size=batch_size, batches=max_batches)
    np.testing.assert_allclose(capped.values["mse"], fixed["mse"], rtol=1e-5)
    assert len([c for c in compiled if "_batch_sums" in c]) <= 1, "one compilation for all the chunks"
    assert not [c for c in again if "_batch_sums" in c], "one program for every number of batches"
    # a callback stops it too
    called = evaluate_counts(solver, problem, key=key, batch_size=batch_size, max_batches=max_batches,
                             until=lambda so_far: so_far.batches == 3)
    assert called.stopped == "until" and called.batches == 3 and called.errors("ber")[-1] == running[2]


def test_target_errors_needs_a_metric_that_counts_errors(sweep_plugin):
    problem = DiagonalQuadratic(DiagonalQuadratic.Options())
    solver = ConstantGD(ConstantGD.Options(), problem=problem, depth=2)
    with pytest.raises(ConfigError, match="metric 'max_error' of problem 'diag-quadratic' does not count errors"):
        evaluate_counts(solver, problem, key=0, target_errors=5)
    with pytest.raises(ValueError, match="counts errors is an error rate on the linear scale"):
        Metric("x", BER.per_instance, counts_errors=True, scale="db")


def test_each_sweep_point_is_an_evaluation_on_the_problem_built_with_its_value(sweep_config, tmp_path):
    config = load_config(sweep_config)
    comparison = run_comparison(config, progress=False)
    plain = run_comparison(load_config(sweep_config, ["evaluation.sweep={}"]), progress=False)
    seed, settings = config.evaluation.seed, config.evaluation
    for label, result in comparison.results.items():
        assert [point.value for point in result.sweep] == [0, 3, 6]
        for index, point in enumerate(result.sweep):
            problem = NoisySigns(NoisySigns.Options(snr_db=float(point.value)))
            expected = evaluate(result.solver, problem, key=_key(seed, 2, index), batch_size=settings.batch_size,
                                batches=settings.batches)
            for name in ("ber", "mse"):
                np.testing.assert_allclose(point.metrics[name], expected[name], rtol=1e-6)
            errors, trials = point.counts["ber"]
            np.testing.assert_array_equal(trials, settings.batches * settings.batch_size * problem.n)
            np.testing.assert_allclose(errors / trials, expected["ber"], rtol=1e-6)
            assert point.batches == settings.batches and "mse" not in point.counts
        finals = [point.metrics["ber"][-1] for point in result.sweep]
        assert finals[0] > finals[-1], "more noise, more errors"
        # training and the main evaluation are the configured problem's, with or without a sweep
        np.testing.assert_array_equal(result.metrics["ber"], plain.results[label].metrics["ber"])
        assert plain.results[label].sweep == []
    np.testing.assert_array_equal(comparison.results["learned"].params["eta"], plain.results["learned"].params["eta"])


def test_a_sweep_with_a_target_is_printed_saved_plotted_and_read_back(sweep_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert run("compare", "--config", sweep_config, "--out", out, "--no-progress",
               "--set", "evaluation.target_errors=25", "--set", "evaluation.max_batches=30") == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["sweep"] == {"option": "snr_db", "values": [0, 3, 6]}
    assert results["evaluation"]["target_errors"] == 25 and results["evaluation"]["max_batches"] == 30
    assert results["metrics"]["ber"]["counts_errors"] is True and "counts_errors" not in results["metrics"]["mse"]
    loaded = load_run(out)
    assert loaded.sweep.option == "snr_db" and loaded.sweep.values == (0, 3, 6)
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["solver", "snr_db", "iteration", "ber", "mse", "ber_errors", "ber_trials"]
    for label, entry in results["solvers"].items():
        solver = loaded.solvers[label]
        assert entry["counts"]["ber"]["errors"][-1] >= 25 or entry["evaluation_batches"] == 30
        np.testing.assert_array_equal(solver.counts["ber"][0], entry["counts"]["ber"]["errors"])
        assert solver.evaluation_batches == entry["evaluation_batches"]
        cells = []
        for point, saved in zip(solver.sweep, entry["sweep"]):
            errors, trials = saved["counts"]["ber"]["errors"][-1], saved["counts"]["ber"]["trials"][-1]
            assert errors >= 25 or saved["batches"] == 30, "each point stops at the target or at max_batches"
            assert trials == saved["batches"] * 20 * 6 and saved["metrics"]["ber"][-1] == errors / trials
            assert point.value == saved["value"] and point.batches == saved["batches"]
            np.testing.assert_array_equal(point.metrics["ber"], saved["metrics"]["ber"])
            np.testing.assert_array_equal(point.counts["ber"][1], saved["counts"]["ber"]["trials"])
            csv_rows = [r for r in rows if r["solver"] == label and r["snr_db"] == str(saved["value"])]
            assert [float(r["ber"]) for r in csv_rows] == saved["metrics"]["ber"]
            assert [float(r["ber_errors"]) for r in csv_rows] == saved["counts"]["ber"]["errors"]
            cells.append(f"{saved['metrics']['ber'][-1]:.2e} ({int(errors)})")
        main_rows = [r for r in rows if r["solver"] == label and r["snr_db"] == ""]
        assert [float(r["ber"]) for r in main_rows] == entry["metrics"]["ber"]
        table_row = next(line for line in printed.splitlines()[printed.splitlines().index(
            next(line for line in printed.splitlines() if line.startswith("BER at t=4"))):] if line.startswith(label))
        assert table_row.split()[1:] == " ".join(cells).split()
    figure = out / "ber-vs-snr_db.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ber-vs-snr_db.png" in json.loads((out / "manifest.json").read_text())["files"]


@pytest.mark.parametrize("setting, message", [
    ("evaluation.sweep={ snr = [0, 3] }",
     "evaluation.sweep.snr: problem 'noisy-signs' has no option 'snr' (did you mean 'snr_db'?)"),
    ("evaluation.sweep={ snr_db = [] }", "evaluation.sweep.snr_db is an empty list"),
    ("evaluation.sweep={ snr_db = [0, 3], n = [4, 8] }", "evaluation.sweep names 2 options (snr_db, n)"),
    ("evaluation.sweep={ n = [4, 'x'] }", "evaluation.sweep.n[1] must be an integer, got 'x'"),
    ("evaluation.target_errors=0", "evaluation.target_errors must be >= 1, got 0"),
])
def test_bad_sweeps_and_targets_are_refused_before_anything_is_written(sweep_config, tmp_path, capsys, setting,
                                                                       message):
    out = tmp_path / "refused"
    assert run("compare", "--config", sweep_config, "--out", out, "--no-progress", "--set", setting) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_target_on_a_problem_whose_primary_metric_counts_no_errors_is_refused(sweep_plugin, tmp_path, capsys):
    from core_plugin import SMALL_TOML

    (tmp_path / "small.toml").write_text(SMALL_TOML)
    out = tmp_path / "refused"
    assert run("compare", "--config", tmp_path / "small.toml", "--out", out, "--no-progress",
               "--set", "evaluation.target_errors=10") == 2
    assert "'mse' of problem 'conformance-least-squares' is not an error count" in \
        one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_malformed_sweep_entry_is_refused_naming_it():
    from du_framework.workbench.loading import Run, RunFileError

    point = {"value": 0, "metrics": {"ber": [0.1]}, "counts": {"ber": {"errors": [10], "trials": [100]}}}
    results = {"schema_version": 3, "evaluation": {"iterations": 1}, "metrics": {"ber": {"counts_errors": True}},
               "sweep": {"option": "snr_db", "values": [0, 3]},
               "solvers": {"a": {"name": "a", "metrics": {"ber": [0.1]}, "sweep": [point, point]}}}
    run = Run.from_results(results)
    assert run.metrics["ber"].counts_errors and run.solvers["a"].sweep[1].counts["ber"][0].tolist() == [10.0]
    with pytest.raises(RunFileError, match=r'solvers\["a"\]\.sweep has 1 points for the 2 values'):
        Run.from_results({**results, "solvers": {"a": {"name": "a", "metrics": {"ber": [0.1]}, "sweep": [point]}}})
    with pytest.raises(RunFileError, match=r'solvers\["a"\]\.sweep\[0\]\.counts\["ber"\]\.errors has 2 values'):
        bad = {**point, "counts": {"ber": {"errors": [1, 2], "trials": [100]}}}
        Run.from_results({**results, "solvers": {"a": {"name": "a", "metrics": {"ber": [0.1]}, "sweep": [bad, point]}}})
