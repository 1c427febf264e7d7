"""``unfold tune``: tunable declarations, the search under an equal budget, its files, shared studies."""

import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from du_framework import QuadraticSolver, hookimpl, option
from du_framework.workbench.compare import evaluation_key, training_key
from du_framework.workbench.config import build_config, load_config
from du_framework.options import Tunable, option_rows, tunable_options
from du_framework.workbench.text import format_options
from du_framework.registry import plugin_registered
from du_framework.testing.problems import SmallLeastSquares
from du_framework.workbench.tuning import search_space, tune, validation_key

import core_plugin as core_plugin_module
from cli_helpers import one_error_line, run

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DOCS = ROOT / "docs" / "tuning.md"


class TunableStepGD(QuadraticSolver):
    """``x <- x - s (H x - b)`` with one constant step ``s``, declared tunable."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        step: float = option(0.0, ge=0, tune=Tunable(1e-3, 0.2, log=True), help="the step (0: 2/(mu_min+mu_max))")

    name = "tunable-gd"
    description = "test solver: GD with a tunable constant step"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        low, high = problem.spectrum_bounds()
        self.step_size = options.step or 2.0 / (low + high)

    def step(self, problem, context, x, k):
        return x - self.step_size * self.gradient(problem, context, x)

    def constants(self):
        return {"step": np.array([self.step_size])}


class _ExtraSolvers:
    @hookimpl
    def register_solvers(self, register):
        register(TunableStepGD)


@pytest.fixture
def plugins():
    """The core tests' plugin and the tunable GD, as the only plugins."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DU_PLUGINS", "")
        with plugin_registered(core_plugin_module, "core-tests"), plugin_registered(_ExtraSolvers(), "tune-tests"):
            yield


def small(*overrides):
    return load_config(experiment="small", overrides=list(overrides))


# --- declarations -----------------------------------------------------------------------------

def test_a_tunable_range_is_checked_against_the_options_own_constraints():
    with pytest.raises(ValueError, match=r"low < high"):
        Tunable(1.0, 0.5)
    with pytest.raises(ValueError, match=r"low > 0"):
        Tunable(0.0, 1.0, log=True)
    with pytest.raises(ValueError, match=r"at least two distinct"):
        Tunable(choices=("a",))
    with pytest.raises(ValueError, match=r"either a range .* or choices"):
        Tunable(0.1, 1.0, choices=(1, 2))
    with pytest.raises(ValueError, match=r"2\.5 is outside the option's own constraints \(>= 0, < 2\)"):
        option(0.0, ge=0, lt=2, tune=Tunable(0.5, 2.5))
    with pytest.raises(TypeError, match="Tunable"):
        option(0.0, tune=(0.1, 1.0))


def test_tunable_options_are_listed_with_their_range():
    rows = option_rows(TunableStepGD.Options)
    assert rows == [{"key": "step", "type": "float", "default": "0.0", "constraint": ">= 0, finite",
                     "tune": "log 0.001..0.2", "help": "the step (0: 2/(mu_min+mu_max))"}]
    assert re.search(r"^key +type +default +constraint +tune +help$", format_options(TunableStepGD.Options), re.M)
    assert "| `step` | float | 0.0 | >= 0, finite | log 0.001..0.2 |" in format_options(TunableStepGD.Options,
                                                                                     markdown=True)
    assert tunable_options(TunableStepGD.Options) == {"step": Tunable(1e-3, 0.2, log=True)}


def test_unfold_list_shows_the_tune_column(plugins, capsys):
    assert run("list", "--options", "tunable-gd") == 0
    assert re.search(r"^step +float +0\.0 +>= 0, finite +log 0\.001\.\.0\.2 +the step", capsys.readouterr().out,
                     re.M)


# --- keys ---------------------------------------------------------------------------------------

def test_validation_instances_are_disjoint_from_training_and_evaluation(plugins):
    seed = 2026
    key = validation_key(seed)
    expected = jax.random.fold_in(jax.random.key(seed), 2)  # independent: JAX's own derivation
    np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(expected))
    problem = SmallLeastSquares(SmallLeastSquares.Options())
    drawn = {name: np.asarray(problem.sample(k, 64)["y"]) for name, k in
             {"validation": key, "evaluation": evaluation_key(seed), "training": training_key(seed, "learned"),
              "training, same seed as validation's": training_key(1, "learned")}.items()}
    rows = {name: {row.tobytes() for row in values} for name, values in drawn.items()}
    for name in ("evaluation", "training", "training, same seed as validation's"):
        assert not rows["validation"] & rows[name], f"validation shares an instance with {name}"


# --- the search ---------------------------------------------------------------------------------

def _gd_mse(steps: np.ndarray, depth: int, y: np.ndarray, options=SmallLeastSquares.Options()) -> np.ndarray:
    """Mean ||x_t - x*||^2 over the instances ``y`` of GD from 0 with each step, in float64 numpy.

    ``x_t - x* = -(I - sH)^t x*`` with ``x* = (A^T A + lam I)^-1 A^T y``; in H's eigenbasis every
    coordinate of the error decays as ``(1 - s mu_i)^t``.
    """
    matrix = np.random.default_rng(options.seed).standard_normal((options.m, options.n))
    hessian = matrix.T @ matrix + options.lam * np.eye(options.n)
    values, vectors = np.linalg.eigh(hessian)
    weights = np.mean((np.linalg.solve(hessian, matrix.T @ y.T).T @ vectors) ** 2, axis=0)  # E (v_i^T x*)^2
    return (1 - np.outer(steps, values)) ** (2 * depth) @ weights


def test_the_search_finds_the_best_constant_step_of_gd(plugins):
    depth, trials = 5, 16
    config = build_config({
        "problem": {"name": "conformance-least-squares"},
        "train": {"depth": depth},
        "evaluation": {"batch_size": 1000, "batches": 1},
        "solvers": [{"name": "tunable-gd", "label": "gd"}]})
    result = tune(config, trials=trials, seed=0)
    search = result.searches["gd"]
    assert len(search.trials) == trials and not search.trainable
    # the validation instances the search scored on, drawn again; the MSE of every step computed in numpy
    problem = SmallLeastSquares(SmallLeastSquares.Options())
    y = np.asarray(problem.sample(jax.random.split(validation_key(config.evaluation.seed), 1)[0], 1000)["y"],
                   np.float64)
    steps = np.geomspace(1e-3, 0.2, 100_001)
    curve = _gd_mse(steps, depth, y)
    tuned = search.best.options["step"]
    assert search.best.metric_value == pytest.approx(_gd_mse(np.array([tuned]), depth, y)[0], rel=1e-4)
    # within 25% of the least MSE: steps 0.040 to 0.055, 6% of the searched log range (16 uniformly random
    # steps land there 63% of the time; a 16-trial TPE search did for 39 of 40 sampler seeds on this curve)
    assert _gd_mse(np.array([tuned]), depth, y)[0] <= 1.25 * curve.min(), (tuned, steps[np.argmin(curve)])
    assert _gd_mse(np.array([np.sqrt(1e-3 * 0.2)]), depth, y)[0] > 2 * curve.min()  # the range's middle is far


@pytest.fixture(scope="module")
def learned_search():
    """One search of the core plugin's learned GD, shared by the tests that read it (plain data)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DU_PLUGINS", "")
        with plugin_registered(core_plugin_module, "core-tests"):
            config = small("train.depth=3", "train.steps_per_stage=6", "evaluation.batches=1")
            return config, tune(config, trials=6, labels=["learned"], seed=1, pruner_startup=2,
                                space={"solvers.learned.lr": Tunable(1e-4, 1.0, log=True)})


def test_learned_trials_differ_in_rates_and_the_best_has_the_best_validation_score(learned_search, plugins):
    config, result = learned_search
    search = result.searches["learned"]
    assert [d.key for d in search.dimensions] == ["lr", "train.optimizer", "train.log_loss"]
    rates = [t.params["lr"] for t in search.trials]
    assert len(set(rates)) == len(rates) == 6
    complete = [t for t in search.trials if t.state == "complete"]
    assert len(complete) >= 2
    for t in complete:  # the score is log10 of the validation MSE (a log-axis metric)
        assert t.value == pytest.approx(np.log10(t.metric_value), rel=1e-12)
        assert t.options["lr"] == t.params["lr"] and t.train["optimizer"] in ("adam", "adamw", "rmsprop", "sgd")
    best = search.best
    assert best.metric_value == min(t.metric_value for t in complete)
    # recomputed outside the search: train with the best trial's settings, score on the validation key
    from du_framework.workbench.compare import build_problem, build_schedule, build_solver
    from du_framework.engine import TrainSettings, evaluate, train

    entry = dataclasses.replace(config.solver("learned"),
                                options=type(config.solver("learned").options)(**best.options))
    problem = build_problem(config)
    trained = train(build_solver(entry, problem, config.train.depth), problem, build_schedule(config),
                    TrainSettings(**best.train), key=training_key(config.train.seed, "learned"), progress=False)
    again = evaluate(trained.solver, problem, key=validation_key(config.evaluation.seed),
                     batch_size=config.evaluation.batch_size, batches=config.evaluation.batches)["mse"][-1]
    assert again == pytest.approx(best.metric_value, rel=1e-5)


def test_hopeless_trials_are_pruned_at_a_stage_boundary(learned_search):
    _, result = learned_search
    pruned = [t for t in result.searches["learned"].trials if t.state == "pruned"]
    assert pruned, [(t.state, t.params) for t in result.searches["learned"].trials]
    assert all(re.search(r"stage \d|diverged|not finite", t.reason) for t in pruned)
    assert any(t.reason.startswith("training loss at stage") and t.last_stage >= 1 for t in pruned)


def test_a_diverging_trial_is_recorded_as_pruned_with_its_reason(plugins):
    config = small("train.depth=3", "train.steps_per_stage=4", "evaluation.batches=1")
    result = tune(config, trials=2, labels=["learned"], optimizers=["sgd"], search_log_loss=False,
                  space={"solvers.learned.lr": Tunable(1e4, 1e6, log=True)})
    trials = result.searches["learned"].trials
    assert [t.state for t in trials] == ["pruned", "pruned"]
    assert all(t.reason.startswith("diverged: training of 'learned' diverged") for t in trials)
    assert result.searches["learned"].best is None
    assert result.tuned_config()["solvers"][0] == config.to_dict()["solvers"][0]  # nothing better was found


def test_the_pruner_sees_log_losses_whatever_train_log_loss(plugins, tmp_path):
    """Every trial reports log(stage loss): the log-loss trials are on the same scale as the others."""
    import optuna

    from du_framework.workbench.compare import build_problem, build_schedule, build_solver
    from du_framework.engine import TrainSettings, train

    url = f"sqlite:///{tmp_path / 's.db'}"
    config = small("train.depth=2", "train.steps_per_stage=2", "evaluation.batches=1", "train.log_loss=true")
    result = tune(config, trials=1, labels=["learned"], storage=url, study="p", optimizers=["adam"],
                  search_log_loss=False, space={"solvers.learned.lr": Tunable(1e-3, 1e-2, log=True)})
    record = result.searches["learned"].trials[0]
    assert record.train["log_loss"] is True
    reported = optuna.load_study(study_name="p:learned", storage=url).trials[0].intermediate_values
    entry = dataclasses.replace(config.solver("learned"),
                                options=type(config.solver("learned").options)(**record.options))
    problem = build_problem(config)
    trained = train(build_solver(entry, problem, config.train.depth), problem, build_schedule(config),
                    TrainSettings(**record.train), key=training_key(config.train.seed, "learned"), progress=False)
    assert len(reported) == len(trained.stage_losses) >= 2
    expected = np.log(np.asarray(trained.stage_losses, np.float64))  # the loss is positive: its log is < its value
    assert [reported[stage] for stage in sorted(reported)] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_the_budget_is_the_same_for_every_solver_and_stated(learned_search):
    config, result = learned_search
    assert result.budget == {"trials": 6, "timeout_seconds": None, "schedule": "incremental", "schedule_options": {},
                             "depth": 3, "stages": 3, "steps_per_stage": 6, "steps_per_trial": 18,
                             "batch_size": 16, "instances_per_trial": 288}


def test_a_space_key_for_a_budget_setting_or_an_unknown_option_is_refused(plugins):
    config = small()
    from du_framework.workbench.compare import build_problem, build_solver
    from du_framework.errors import ConfigError

    solver = build_solver(config.solver("learned"), build_problem(config), 3)
    with pytest.raises(ConfigError, match=r"train.batch_size is part of the equal budget"):
        search_space(config.solver("learned"), solver, space={"train.batch_size": Tunable(8, 32)})
    with pytest.raises(ConfigError, match=r"train.unroll is part of the equal budget"):
        search_space(config.solver("learned"), solver, space={"train.unroll": Tunable(choices=[1, True])})
    with pytest.raises(ConfigError, match=r"has no option 'lrr' \(did you mean 'solvers.learned.lr'\?\)"):
        search_space(config.solver("learned"), solver, space={"solvers.learned.lrr": Tunable(0.1, 1.0)})
    with pytest.raises(ConfigError, match=r"solvers.learned.period must be >= 0, got -1"):
        search_space(config.solver("learned"), solver, space={"solvers.learned.period": Tunable(-1, 4)})


# --- the command --------------------------------------------------------------------------------

def test_unfold_tune_writes_a_run_whose_tuned_config_compare_takes(plugins, tmp_path, capsys):
    out = tmp_path / "tuned"
    assert run("tune", "--experiment", "small", "--set", "train.depth=3", "--set", "train.steps_per_stage=4",
               "--set", "evaluation.batches=1", "--trials", "3", "--out", out, "--no-progress") == 0
    printed = capsys.readouterr().out
    assert re.search(r"^learned \(learned-gd\): best MSE at t=3 \d\.\d+e[-+]\d+ \(trial \d(, from \d\.\d+e[-+]\d+ "
                     r"as configured \(trial 0\))?\); trials \d complete", printed, re.M)
    assert "budget per solver: 3 trials x 12 optimiser steps" in printed
    assert {p.name for p in out.iterdir()} >= {"tuned.toml", "tune.json", "trials.csv", "tune.db", "config.toml",
                                               "manifest.json"}
    body = json.loads((out / "tune.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert body["storage"] == f"sqlite:///{out.absolute() / 'tune.db'}"
    assert body["metric"] == {"name": "mse", "label": "MSE", "direction": "minimize", "score": "log10",
                              "iteration": 3, "format": ".3e", "scale": "linear"}
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["label"] for r in rows] == ["learned"] * 3 + ["gd"]  # gd has nothing tunable: one scoring trial
    assert {r["worker"] for r in rows} == {body["solvers"]["learned"]["trials"][0]["worker"]}
    tuned = load_config(out / "tuned.toml")
    best = body["solvers"]["learned"]["best"]
    assert tuned.solver("learned").options.lr == best["options"]["lr"]
    assert tuned.train.optimizer == best["train"]["optimizer"]
    assert run("compare", "--config", out / "tuned.toml", "--out", tmp_path / "compared", "--no-progress",
               "--no-plots") == 0
    assert set(json.loads((tmp_path / "compared" / "results.json").read_text())["solvers"]) == {"learned", "gd"}


def test_a_database_password_on_the_command_line_is_not_recorded(plugins, tmp_path, monkeypatch):
    out = tmp_path / "tuned"
    # the recorded command is sys.argv (run() calls main() in this process): give it a storage URL with a password
    monkeypatch.setattr(sys, "argv", ["unfold", "tune", "--only", "gd", "--storage",
                                      "postgresql://ana:fakepw-123@db.example.org:5432/studies",
                                      "--note=mysql+pymysql://:fakepw-456@h/db"])
    assert run("tune", "--experiment", "small", "--only", "gd", "--trials", "1", "--out", out, "--no-progress") == 0
    for name in ("tune.json", "manifest.json"):
        assert "fakepw" not in (out / name).read_text(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == ("unfold tune --only gd --storage postgresql://ana:***@db.example.org:5432/studies "
                                   "--note=mysql+pymysql://:***@h/db")
    body = json.loads((out / "tune.json").read_text())
    for prov in (body["provenance"], manifest["provenance"]):
        assert prov["command_line"][5:] == ["postgresql://ana:***@db.example.org:5432/studies",
                                            "--note=mysql+pymysql://:***@h/db"]


@pytest.mark.parametrize("args, message", [
    (["--trials", "0"], "--trials must be >= 1 (trials per solver), got 0"),
    (["--storage", "redis://localhost/0"], "--storage 'redis://localhost/0': unknown storage scheme 'redis'; "
                                           "give an optuna RDB URL: sqlite:///PATH.db"),
    (["--only", "learnd"], "--only names no solver of this configuration: learnd (did you mean 'learned'?); "
                           "labels: learned, gd"),
    (["--space", "solvers.learned.lr"], "--space expects KEY=SPEC"),
    (["--space", "solvers.nobody.lr=0.1:1"], "--space solvers.nobody.lr: no solver of this configuration has "
                                             "that label; labels: learned, gd"),
    (["--metric", "psnr"], "unknown metric 'psnr' for problem 'conformance-least-squares'"),
])
def test_bad_input_is_refused_with_one_line_before_any_trial(plugins, tmp_path, capsys, args, message):
    assert run("tune", "--experiment", "small", "--out", tmp_path / "out", *args) == 2
    assert one_error_line(capsys.readouterr().err).startswith("unfold: error: " + message)
    assert not (tmp_path / "out").exists()


WORKER = """
import sys
sys.path.insert(0, sys.argv[1])
import core_plugin
from du_framework.registry import register_plugin
register_plugin(core_plugin, "core-tests")
from du_framework.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_two_workers_on_one_sqlite_storage_share_one_study(tmp_path):
    import optuna

    database = tmp_path / "shared.db"
    url = f"sqlite:///{database}"
    env = {**os.environ, "DU_PLUGINS": ""}
    workers = [subprocess.Popen(
        [sys.executable, "-c", WORKER, str(TESTS), "tune", "--experiment", "small", "--only", "learned",
         "--set", "train.depth=3", "--set", "train.steps_per_stage=4", "--set", "evaluation.batches=1",
         "--trials", "6", "--storage", url, "--study", "s", "--worker", name, "--out", str(tmp_path / name)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("w1", "w2")]
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    study = optuna.load_study(study_name="s:learned", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert 6 <= len(trials) <= 7  # each worker stops once the study holds 6 (one may be running then)
    assert {t.user_attrs["worker"] for t in trials} == {"w1", "w2"}
    assert len({t.number for t in trials}) == len(trials)
    for name in ("w1", "w2"):  # each worker's record holds the whole study, its own trials and the other's
        body = json.loads((tmp_path / name / "tune.json").read_text())
        assert body["storage"] == url and body["study"] == "s"
        assert {t["worker"] for t in body["solvers"]["learned"]["trials"]} == {"w1", "w2"}


def test_a_worker_with_another_configuration_cannot_join_a_study(plugins, tmp_path):
    from du_framework.errors import ConfigError

    url = f"sqlite:///{tmp_path / 's.db'}"
    config = small("train.depth=3", "train.steps_per_stage=2", "evaluation.batches=1")
    tune(config, trials=1, labels=["gd"], storage=url, study="s")
    other = small("train.depth=3", "train.steps_per_stage=2", "evaluation.batches=1", "problem.lam=2.0")
    with pytest.raises(ConfigError, match=r"study 's:gd' in .* was started with another configuration \(its "
                                          r"problem differ\)"):
        tune(other, trials=1, labels=["gd"], storage=url, study="s")


# --- the docs page ------------------------------------------------------------------------------

def test_the_docs_page_examples_run(tmp_path, monkeypatch):
    text = DOCS.read_text()
    blocks = [code for language, info, code in re.findall(r"```(\w+)([^\n]*)\n(.*?)```", text, re.S)
              if language == "python" and "run" in info.split()]
    assert blocks, "docs/tuning.md has no runnable example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DU_PLUGINS", "")
    namespace = {}
    for code in blocks:
        exec(compile(code, str(DOCS), "exec"), namespace)


def test_trial_0_of_a_classical_search_is_the_constant_the_solver_computes(plugins):
    # step = 0 means "automatic" (outside the searched range): trial 0 is the computed 2/(mu_min+mu_max)
    config = build_config({"problem": {"name": "conformance-least-squares"}, "train": {"depth": 3},
                           "evaluation": {"batch_size": 10, "batches": 1},
                           "solvers": [{"name": "tunable-gd", "label": "gd"}]})
    problem = SmallLeastSquares(SmallLeastSquares.Options())
    first = tune(config, trials=1, seed=0).searches["gd"].trials[0]
    assert first.options["step"] == pytest.approx(2.0 / (problem.mu_min + problem.mu_max), rel=1e-12)


def test_a_rate_grid_trains_its_trials_as_one_ensemble_and_scores_each_member(plugins):
    from du_framework.workbench.compare import build_problem, build_schedule, build_solvers
    from du_framework.engine import evaluate, train

    overrides = ["train.depth=3", "train.steps_per_stage=6", "evaluation.batches=1"]
    config = small(*overrides)
    result = tune(config, trials=4, labels=["learned"], seed=1, rate_grid=3, baseline=False, pruning=False,
                  space={"solvers.learned.lr": Tunable(1e-3, 1.0, log=True)}, optimizers=None,
                  search_log_loss=False)
    trials = result.searches["learned"].trials
    assert len(trials) == 4 and all(t.state == "complete" for t in trials)
    grid = sorted(trials[:3], key=lambda t: t.params["lr"])  # the grid's members come first
    np.testing.assert_allclose([t.params["lr"] for t in grid], np.geomspace(1e-3, 1.0, 3), rtol=1e-9)
    # a member's score is what training that rate alone and scoring it on the validation instances gives
    member = grid[1]
    single = small(*overrides, f"solvers.learned.lr={member.params['lr']!r}")
    problem = build_problem(single)
    trained = train(build_solvers(single, problem)[0], problem, build_schedule(single), single.train,
                    key=training_key(single.train.seed, "learned"), progress=False).solver
    curve = evaluate(trained, problem, key=validation_key(single.evaluation.seed),
                     batch_size=result.validation["batch_size"], batches=result.validation["batches"])["mse"]
    assert member.metric_value == pytest.approx(float(curve[-1]), rel=1e-4)


def test_trials_train_one_seed_and_the_tuned_config_keeps_the_seeds(plugins):
    config = small("train.depth=3", "train.steps_per_stage=4", "evaluation.batches=1", "train.seeds=[5, 6, 7]")
    lines = []
    result = tune(config, trials=2, labels=["learned"], seed=1, pruning=False, optimizers=None,
                  search_log_loss=False, log=lines.append)
    assert all(t.train["seeds"] == 1 for t in result.searches["learned"].trials)
    assert result.tuned_config()["train"]["seeds"] == [5, 6, 7]
    assert any("each trial trains one seed (train.seed = 1)" in line for line in lines)
    # the numbering of the printed lines is the records' (from 0)
    assert any(line.startswith("learned trial 0 (1 of 2)") for line in lines), lines


def test_a_best_value_at_the_end_of_its_range_is_pointed_out():
    from types import SimpleNamespace

    from du_framework.cli.tuning import _edge_note
    from du_framework.workbench.tuning import Dimension

    search = SimpleNamespace(dimensions=[Dimension("lr", Tunable(1e-4, 0.3, log=True)), Dimension("w", Tunable(1.0, 2.0))])
    assert "at the top of its range 0.0001..0.3" in _edge_note(search, "lr", 0.3)
    assert "at the bottom" in _edge_note(search, "lr", 1.05e-4)
    assert _edge_note(search, "lr", 5e-3) == "" and _edge_note(search, "w", 1.5) == ""
    assert "at the top" in _edge_note(search, "w", 1.99) and _edge_note(search, "other", 1.0) == ""
