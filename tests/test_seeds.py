"""Several training seeds: ensembles, divergence of one member, the summary and its files."""

import csv
import dataclasses
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from du_framework import ConfigError, TrainingDivergedError, hookimpl, option
from du_framework.workbench.compare import run_comparison, summarize_seeds
from du_framework.workbench.config import load_config
from du_framework.engine import TrainSettings, train, train_ensemble
from du_framework.engine.keys import host_key
from du_framework.options import parse_options
from du_framework.registry import plugin_registered
from du_framework.testing.problems import SmallLeastSquares

from cli_helpers import run
from core_plugin import SMALL_TOML, core_plugin  # noqa: F401 - the fixture
from core_solvers import StepGD

STEPS, STAGES, BATCH = 6, 3, 8


# --- settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [(1, (5,)), (3, (5, 6, 7)), ([9, 2], (9, 2))])
def test_seeds_are_a_count_from_seed_or_a_list(value, expected):
    settings = parse_options(TrainSettings, {"seed": 5, "seeds": value}, prefix="train.")
    assert settings.seed_list() == expected


@pytest.mark.parametrize("value, words", [(0, "1..4096"), ([], "0 entries"), ([3, 3], "repeats 3"),
                                          ("two", "int | list of int"), ([-1], ">= 0"), (5000, "1..4096")])
def test_bad_seeds_are_refused_naming_the_key(value, words):
    with pytest.raises(ConfigError, match="train.seeds") as error:
        parse_options(TrainSettings, {"seeds": value}, prefix="train.")
    assert words in str(error.value)


# --- summary -------------------------------------------------------------------------------------

def test_summary_is_median_min_max_over_the_seeds_that_did_not_diverge():
    curves = np.array([[1.0, 5.0], [3.0, 1.0], [2.0, 9.0], [1e9, 1e9]])
    ok = np.array([True, True, True, False])
    center, low, high = summarize_seeds(curves, ok)
    np.testing.assert_array_equal(center, [2.0, 5.0])
    np.testing.assert_array_equal(low, [1.0, 1.0])
    np.testing.assert_array_equal(high, [3.0, 9.0])
    assert np.isnan(summarize_seeds(curves, np.zeros(4, bool))[0]).all()


def test_an_even_count_takes_the_geometric_middle_on_a_log_scale_so_mse_and_db_agree():
    rng = np.random.default_rng(0)
    mse = 10 ** rng.uniform(-13, -9, size=(4, 7))
    energy = 2.5
    db = 10 * np.log10(mse / energy)
    center_mse, low_mse, high_mse = summarize_seeds(mse, np.ones(4, bool), log=True)
    center_db, low_db, high_db = summarize_seeds(db, np.ones(4, bool))
    np.testing.assert_allclose(10 * np.log10(center_mse / energy), center_db, atol=1e-9)
    np.testing.assert_allclose(10 * np.log10(low_mse / energy), low_db, atol=1e-9)
    middle = np.sort(mse, axis=0)[1:3]
    np.testing.assert_allclose(center_mse, np.sqrt(middle[0] * middle[1]), rtol=1e-12)


# --- an ensemble with a member that diverges -----------------------------------------------------

class PoisonedLeastSquares(SmallLeastSquares):
    """SmallLeastSquares where about one instance in 200 is infinite: a batch holding one diverges."""

    @dataclasses.dataclass(frozen=True)
    class Options(SmallLeastSquares.Options):
        rate: float = option(0.005, ge=0, le=1, help="probability of an infinite instance")

    name = "poisoned-least-squares"

    def __init__(self, options):
        super().__init__(options)
        self.rate = options.rate

    def sample(self, key, batch_size):
        clean_key, poison_key = jax.random.split(key)
        instance = super().sample(clean_key, batch_size)
        poisoned = jax.random.uniform(poison_key, (batch_size, 1)) < self.rate
        y = jnp.where(poisoned, jnp.inf, instance["y"])
        return {"y": y, "target": jnp.where(poisoned, jnp.inf, instance["target"])}


def _first_poisoned_step(problem, seed: int, steps: int) -> int | None:
    """The first optimiser step (0-based) whose batch holds an infinite instance, replaying the
    engine's key stream (one split per step) with jax.random directly."""
    key = host_key(seed)
    for step in range(steps):
        key, sample_key = jax.random.split(key)
        if not np.isfinite(np.asarray(problem.sample(sample_key, BATCH)["y"])).all():
            return step
    return None


@pytest.fixture(scope="module")
def poisoned():
    problem = PoisonedLeastSquares(PoisonedLeastSquares.Options())
    total = STEPS * STAGES
    first = {seed: _first_poisoned_step(problem, seed, total) for seed in range(40)}
    clean = [seed for seed, step in first.items() if step is None][:2]
    bad = next(seed for seed, step in first.items() if step is not None and 2 <= step < STEPS * (STAGES - 1))
    assert len(clean) == 2, first
    return problem, clean, bad, first[bad]


def _settings():
    return TrainSettings(steps_per_stage=STEPS, batch_size=BATCH, depth=STAGES, log_loss=False)


def test_a_diverging_member_is_frozen_reported_and_the_others_train_on(poisoned):
    problem, (first_ok, second_ok), bad, bad_step = poisoned
    solver = StepGD(StepGD.Options(period=0, lr=1e-3), problem=problem, depth=STAGES)
    keys = [first_ok, bad, second_ok]
    with pytest.raises(TrainingDivergedError):  # the default stops the whole ensemble
        train_ensemble(solver, problem, "incremental", _settings(), keys=keys, progress=False)
    results = train_ensemble(solver, problem, "incremental", _settings(), keys=keys, progress=False,
                             on_divergence="record")
    assert results[1].diverged_at == {"stage": bad_step // STEPS + 1, "step": bad_step % STEPS + 1}
    assert results[0].diverged_at is None and results[2].diverged_at is None
    # The healthy members train exactly as they would alone.
    for member, seed in ((0, first_ok), (2, second_ok)):
        alone = train(solver, problem, "incremental", _settings(), key=seed, progress=False)
        np.testing.assert_allclose(np.asarray(results[member].solver.eta[...]), np.asarray(alone.solver.eta[...]),
                                   rtol=1e-5)
        np.testing.assert_allclose(results[member].losses, alone.losses, rtol=1e-5)
    # The diverged member keeps the parameters it had before the poisoned step, as a lone run reports them.
    with pytest.raises(TrainingDivergedError) as error:
        train(solver, problem, "incremental", _settings(), key=bad, progress=False)
    np.testing.assert_allclose(np.asarray(results[1].solver.eta[...]), np.asarray(error.value.solver.eta[...]),
                               rtol=1e-5)
    assert np.isfinite(results[1].losses[:bad_step]).all() and np.isnan(results[1].losses[bad_step:]).all()
    assert len(results[1].losses) == STEPS * STAGES


def test_every_member_diverging_stops_the_run(poisoned):
    problem, _, bad, _ = poisoned
    solver = StepGD(StepGD.Options(period=0, lr=1e-3), problem=problem, depth=STAGES)
    with pytest.raises(TrainingDivergedError, match="ensemble member"):
        train_ensemble(solver, problem, "incremental", _settings(), keys=[bad, bad],
                       progress=False, on_divergence="record")


# --- comparisons ---------------------------------------------------------------------------------

def _config(tmp_path, *overrides):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TOML)
    return load_config(path, list(overrides))


def test_compare_with_seeds_matches_one_run_per_seed_and_summarises_them(tmp_path, core_plugin):
    seeds = [3, 11, 7]
    comparison = run_comparison(_config(tmp_path, f"train.seeds={seeds}"), progress=False)
    learned, gd = comparison.results["learned"], comparison.results["gd"]
    assert learned.seeds == seeds and learned.seed_status == ["ok"] * 3
    assert gd.seeds == [] and gd.spread is None and gd.per_seed_metrics is None
    for index, seed in enumerate(seeds):
        alone = run_comparison(_config(tmp_path, f"train.seed={seed}"), progress=False).results["learned"]
        np.testing.assert_allclose(learned.per_seed_metrics["mse"][index], alone.metrics["mse"], rtol=2e-4)
        np.testing.assert_allclose(learned.per_seed_params[index]["eta"], alone.params["eta"], rtol=1e-4)
    per_seed = learned.per_seed_metrics["mse"]
    np.testing.assert_array_equal(learned.metrics["mse"], np.median(per_seed, axis=0))
    np.testing.assert_array_equal(learned.spread["mse"][0], per_seed.min(axis=0))
    np.testing.assert_array_equal(learned.spread["mse"][1], per_seed.max(axis=0))
    # The representative seed is the median one at the last iteration; the row reports its parameters.
    middle = int(np.argsort(per_seed[:, -1])[1])
    assert learned.representative_seed == seeds[middle] and learned.params == learned.per_seed_params[middle]


def test_compare_with_seeds_on_the_command_line_writes_every_seed(tmp_path, core_plugin, capsys):
    config = tmp_path / "small.toml"
    config.write_text(SMALL_TOML)
    out = tmp_path / "run"
    assert run("compare", "--config", config, "--set", "train.seeds=4", "--out", out, "--no-progress",
               "--no-plots") == 0
    printed = capsys.readouterr().out
    learned_row = next(line for line in printed.splitlines() if line.startswith("learned "))
    assert learned_row.count("[") == 3  # median [min, max] at each shown iteration (depth 6: t=1, 5, 6)
    assert "learned: median [min, max] over 4 of 4 training seeds (1, 2, 3, 4)" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 3 and results["train_seeds"] == [1, 2, 3, 4]
    assert results["summary"] == {"center": "median", "spread": "min-max", "over": "seeds that did not diverge"}
    learned = results["solvers"]["learned"]
    per_seed = np.array(learned["per_seed"]["metrics"]["nmse_db"])
    assert per_seed.shape == (4, 6) and len(learned["per_seed"]["params"]) == 4
    middle = np.sort(per_seed, axis=0)[1:3]
    np.testing.assert_allclose(learned["metrics"]["nmse_db"], middle.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(learned["spread"]["nmse_db"]["low"], per_seed.min(axis=0))
    # training.csv: every step of every seed; stages.csv: each stage's mean, the same numbers.
    with open(out / "training.csv") as handle:
        steps = [row for row in csv.DictReader(handle) if row["solver"] == "learned"]
    with open(out / "stages.csv") as handle:
        stages = [row for row in csv.DictReader(handle) if row["solver"] == "learned"]
    assert len(steps) == 4 * 6 * 20 and len(stages) == 4 * 6
    for stage in stages:
        losses = [float(r["loss"]) for r in steps if r["seed"] == stage["seed"] and r["stage"] == stage["stage"]]
        assert len(losses) == int(stage["steps"]) == 20
        assert float(stage["mean_loss"]) == pytest.approx(np.mean(losses), rel=1e-6)
        assert all(r["active_depth"] == stage["active_depth"] for r in steps
                   if r["seed"] == stage["seed"] and r["stage"] == stage["stage"])


def test_a_seed_that_diverges_is_named_and_left_out_of_the_summary(tmp_path, core_plugin, poisoned, capsys):
    _, (first_ok, second_ok), bad, _ = poisoned
    plugin = types.SimpleNamespace(register_problems=hookimpl(lambda register: register(PoisonedLeastSquares)))
    toml = SMALL_TOML.replace('name = "conformance-least-squares"', 'name = "poisoned-least-squares"')
    config = tmp_path / "poisoned.toml"
    config.write_text(toml.replace("batch_size = 16", f"batch_size = {BATCH}")
                      .replace("steps_per_stage = 20", f"steps_per_stage = {STEPS}")
                      .replace("depth = 6", f"depth = {STAGES}").replace("lam = 1.0", "lam = 1.0\nrate = 0.005"))
    with plugin_registered(plugin, "poisoned"):
        out = tmp_path / "run"
        # The training keys of a comparison depend on the label; find the diverging seeds by running.
        assert run("compare", "--config", config, "--set", "train.seeds=12", "--set", "train.log_loss=false",
                   "--out", out, "--no-progress", "--no-plots") == 0
    printed = capsys.readouterr().out
    learned = json.loads((out / "results.json").read_text())["solvers"]["learned"]
    status = learned["seed_status"]
    assert "diverged" in status and "ok" in status, status
    diverged = [seed for seed, state in zip(learned["seeds"], status) if state == "diverged"]
    assert f"over {status.count('ok')} of 12 training seeds" in printed
    assert "diverged, left out: seed " + str(diverged[0]) in printed
    per_seed = np.array(learned["per_seed"]["metrics"]["mse"])
    ok = np.array([state == "ok" for state in status])
    np.testing.assert_array_equal(learned["spread"]["mse"]["high"], per_seed[ok].max(axis=0))
    assert all(at is None for at, state in zip(learned["per_seed"]["diverged_at"], status) if state == "ok")
    assert all(at["stage"] >= 1 and at["step"] >= 1 for at, state in zip(learned["per_seed"]["diverged_at"], status)
               if state == "diverged")


def test_a_resumed_ensemble_keeps_its_diverged_member_frozen(poisoned, tmp_path):
    from du_framework.engine.resume import load_train_state, save_train_state

    problem, (first_ok, second_ok), bad, bad_step = poisoned
    solver = StepGD(StepGD.Options(period=0, lr=1e-3), problem=problem, depth=STAGES)
    keys = [first_ok, bad, second_ok]
    states = []
    whole = train_ensemble(solver, problem, "incremental", _settings(), keys=keys, progress=False,
                           on_divergence="record", on_stage_end=states.append)
    after = bad_step // STEPS + 1  # the stage in which the member diverged
    assert after < STAGES, "the poisoned step must leave a later stage to resume"
    stored = load_train_state(save_train_state(tmp_path / "state.npz", states[after - 1]))
    assert stored.diverged_at[1] == whole[1].diverged_at and stored.diverged_at[0] is None
    resumed = train_ensemble(solver, problem, "incremental", _settings(), keys=keys, progress=False,
                             on_divergence="record", resume=stored)
    for member in range(3):
        assert resumed[member].diverged_at == whole[member].diverged_at
        np.testing.assert_array_equal(np.asarray(resumed[member].solver.eta[...]),
                                      np.asarray(whole[member].solver.eta[...]))
        np.testing.assert_array_equal(resumed[member].losses, whole[member].losses)


def test_unfold_train_trains_every_seed_and_compare_reloads_them(tmp_path, core_plugin, capsys):
    config = tmp_path / "small.toml"
    config.write_text(SMALL_TOML)
    out = tmp_path / "trained"
    assert run("train", "--config", config, "--set", "train.seeds=[4, 9]", "--out", out, "--no-progress") == 0
    assert "learned: 2 seeds trained in" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["learned.seed-4.npz", "learned.seed-9.npz"]
    with open(out / "training.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["seed"] for row in rows} == {"4", "9"} and len(rows) == 2 * 6 * 20
    evaluated = tmp_path / "evaluated"
    assert run("compare", "--checkpoints", out / "checkpoints", "--config", out / "config.toml", "--out", evaluated,
               "--no-progress", "--no-plots") == 0
    learned = json.loads((evaluated / "results.json").read_text())["solvers"]["learned"]
    assert learned["seeds"] == [4, 9] and learned["seed_status"] == ["ok", "ok"]
    assert learned["loaded_from"] == str(out / "checkpoints")
    # The same seeds trained by compare itself give the same curves.
    fresh = run_comparison(_config(tmp_path, "train.seeds=[4, 9]"), progress=False).results["learned"]
    np.testing.assert_allclose(np.array(learned["per_seed"]["metrics"]["mse"]), fresh.per_seed_metrics["mse"],
                               rtol=1e-5)
    assert not (evaluated / "training.csv").exists()  # nothing trained in that run


def test_a_resumed_comparison_loads_the_seeds_trained_before_the_interruption(tmp_path, core_plugin):
    config = _config(tmp_path, "train.seeds=2")
    first = run_comparison(config, progress=False, checkpoint_dir=tmp_path / "checkpoints")
    resumed = run_comparison(config, progress=False, checkpoint_dir=tmp_path / "checkpoints", resume=True)
    learned, again = first.results["learned"], resumed.results["learned"]
    # finished before: loaded, not trained again; it reports the training its checkpoints record (issue 19)
    assert again.resumed and again.loaded_from is None
    assert again.compilations == learned.compilations == 1 and again.train_seconds > 0
    assert again.seeds == learned.seeds == [1, 2] and again.seed_status == ["ok", "ok"]
    np.testing.assert_allclose(again.per_seed_metrics["mse"], learned.per_seed_metrics["mse"], rtol=1e-6)
    np.testing.assert_allclose(again.metrics["mse"], learned.metrics["mse"], rtol=1e-6)


def test_an_ensemble_of_learning_rates_trains_each_member_as_its_own_rate_would():
    problem = SmallLeastSquares(SmallLeastSquares.Options())
    settings = TrainSettings(steps_per_stage=5, batch_size=8, depth=3)
    factors = [1.0, 0.25, 3.0]
    for optimizer in ("adam", "sgd"):
        chosen = settings.replace(optimizer=optimizer, optimizer_options={"momentum": 0.9} if optimizer == "sgd" else {})
        solver = StepGD(StepGD.Options(period=0, lr=1e-2), problem=problem, depth=3)
        grid = train_ensemble(solver, problem, "incremental", chosen, keys=[7, 7, 7], progress=False,
                              rate_factors={"eta": factors})
        assert grid[0].compilations == 1
        for member, factor in enumerate(factors):
            alone = train(StepGD(StepGD.Options(period=0, lr=1e-2 * factor), problem=problem, depth=3), problem,
                          "incremental", chosen, key=7, progress=False)
            np.testing.assert_allclose(np.asarray(grid[member].solver.eta[...]), np.asarray(alone.solver.eta[...]),
                                       rtol=2e-5, err_msg=f"{optimizer}, factor {factor}")
    with pytest.raises(ValueError, match="parameter groups are 'eta'"):
        train_ensemble(solver, problem, "incremental", settings, keys=[1, 2], progress=False,
                       rate_factors={"theta": [1.0, 2.0]})
    with pytest.raises(ValueError, match="2 positive finite numbers"):
        train_ensemble(solver, problem, "incremental", settings, keys=[1, 2], progress=False,
                       rate_factors={"eta": [1.0, -2.0]})
