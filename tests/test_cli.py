"""The unfold command line, in process (with the core tests' plugin) and as a separate process."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from du_framework import ConfigError, Experiment, TrainingSchedule, hookimpl
from du_framework.io.checkpoint import read_checkpoint_metadata
from du_framework.cli import DOCS_COMMAND, main, render_option_tables
from du_framework.registry import get_registry, plugin_registered

from cli_helpers import one_error_line
from core_plugin import MAX_ERROR, SMALL_TOML, core_plugin  # noqa: F401 - the fixture
from plugin_factory import make_distribution

TESTS = Path(__file__).resolve().parent
CLI_DOCS = TESTS.parent / "docs" / "cli.md"


@pytest.fixture
def small_config(tmp_path, core_plugin):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TOML)
    return path


def run(*args):
    return main([*map(str, args)])


def row(printed: str, label: str) -> str:
    return next(line for line in printed.splitlines() if line.startswith(label + " "))


def test_compare_prints_the_primary_metric_and_writes_every_result_file(small_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert run("compare", "--config", small_config, "--out", out, "--no-progress") == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert "MSE (lower is better) on 2 x 50 fresh instances" in printed
    assert re.search(r"^MSE +t=1 +t=5 +t=6 +train s$", printed, re.M), "the header names the metric"
    for label in ("learned", "gd"):
        assert f"{results['solvers'][label]['metrics']['mse'][-1]:.3e}" in row(printed, label)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints", "config.json", "config.toml", "losses.png", "manifest.json", "mse.png", "params.png",
        "results.csv", "results.json", "run.json", "stages.csv", "training.csv"]
    for png in ("mse.png", "params.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "checkpoints" / "learned.npz").is_file() and not (out / "checkpoints" / "gd.npz").exists()
    assert results["config"] == json.loads((out / "config.json").read_text())
    assert results["config"]["train"]["depth"] == 6


def test_results_hold_every_metric_with_its_description(small_config, tmp_path):
    out = tmp_path / "run"
    assert run("compare", "--config", small_config, "--out", out, "--no-progress", "--no-plots") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 3 and results["primary_metric"] == "mse"
    assert results["metrics"]["mse"] == {"label": "MSE", "lower_is_better": True, "scale": "linear",
                                         "normalized": False, "log_axis": True, "format": ".3e"}
    assert results["metrics"]["nmse_db"]["scale"] == "db" and results["metrics"]["nmse_db"]["normalized"]
    learned, gd = results["solvers"]["learned"], results["solvers"]["gd"]
    assert set(learned["metrics"]) == {"mse", "nmse_db"} and len(learned["metrics"]["mse"]) == 6
    # NMSE in dB and MSE come from the same instances: their difference is one constant (the target energy).
    offset = np.array(learned["metrics"]["nmse_db"]) - 10 * np.log10(learned["metrics"]["mse"])
    np.testing.assert_allclose(offset, offset[0], atol=1e-4)
    assert len(learned["params"]["eta"]) == 4 and learned["references"]["eta"]["best constant step"]
    assert learned["compilations"] == 1 and learned["train_seconds"] > 0 and learned["final_loss"] > 0
    assert gd["trainable"] is False and gd["final_loss"] is None and gd["params"] == {"step": [pytest.approx(
        gd["params"]["step"][0])]}
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["solver", "iteration", "mse", "nmse_db"] and len(rows) == 2 * 6
    for name in ("mse", "nmse_db"):
        assert [float(r[name]) for r in rows if r["solver"] == "gd"] == gd["metrics"][name]


def test_metric_chooses_what_the_table_shows(small_config, tmp_path, capsys):
    assert run("compare", "--config", small_config, "--out", tmp_path / "db", "--metric", "nmse_db",
               "--no-progress", "--no-plots", "--markdown") == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "db" / "results.json").read_text())["solvers"]
    assert "| NMSE (dB) | t=1 | t=5 | t=6 | train s |" in printed
    assert f"| gd | {results['gd']['metrics']['nmse_db'][0]:.2f} |" in printed


def test_table_iterations_choose_the_columns_and_are_refused_past_the_depth(small_config, tmp_path, capsys):
    assert run("compare", "--config", small_config, "--out", tmp_path / "chosen", "--no-progress", "--no-plots",
               "--markdown", "--set", "evaluation.table_iterations=[2, 3]") == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "chosen" / "results.json").read_text())["solvers"]
    assert "| MSE | t=2 | t=3 | train s |" in printed
    assert f"| gd | {results['gd']['metrics']['mse'][1]:.3e} | {results['gd']['metrics']['mse'][2]:.3e} |" in printed
    out = tmp_path / "beyond"
    assert run("compare", "--config", small_config, "--out", out, "--no-progress",
               "--set", "evaluation.table_iterations=[1, 7]") == 2
    assert "evaluation.table_iterations = [1, 7] goes beyond train.depth = 6 (7); give iterations in 1..6" in \
        one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_an_unknown_metric_is_refused_before_training(small_config, tmp_path, capsys):
    out = tmp_path / "x"
    assert run("compare", "--config", small_config, "--out", out, "--metric", "nmsedb", "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.startswith("unfold: error: unknown metric 'nmsedb' for problem 'conformance-least-squares'; its "
                          "metrics: mse, nmse_db (did you mean 'nmse_db'?)")
    assert not out.exists()


def test_a_problems_own_primary_metric_heads_the_table(small_config, tmp_path, capsys):
    out = tmp_path / "diag"
    assert run("compare", "--config", small_config, "--set", "problem.name=diag-quadratic", "--out", out,
               "--no-progress", "--markdown") == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["primary_metric"] == "max_error" and results["problem"]["name"] == "diag-quadratic"
    assert "\n| max \\|error\\| | t=1 | t=5 | t=6 | train s |\n" in printed, "a '|' in the label is escaped"
    assert f"| {MAX_ERROR.show(results['solvers']['gd']['metrics']['max_error'][-1])} | - |" in row(printed, "| gd")
    assert (out / "results.csv").read_text().splitlines()[0] == "solver,iteration,mse,max_error"


def test_only_runs_the_named_solvers_and_refuses_an_unknown_label(small_config, tmp_path, capsys):
    out = tmp_path / "only"
    assert run("compare", "--config", small_config, "--out", out, "--only", "gd", "--no-progress", "--no-plots") == 0
    assert list(json.loads((out / "results.json").read_text())["solvers"]) == ["gd"]
    assert run("train", "--config", small_config, "--out", out, "--only", "learnd", "--no-progress") == 2
    assert "--only names no solver of this configuration: learnd (did you mean 'learned'?); labels: learned, gd" in \
        capsys.readouterr().err


def test_train_then_compare_from_checkpoints_skips_training(small_config, tmp_path, capsys):
    out = tmp_path / "trained"
    assert run("train", "--config", small_config, "--out", out, "--no-progress") == 0
    printed = capsys.readouterr().out
    assert "learned: trained in" in printed and "1 compilation" in printed and "gd: nothing to learn" in printed
    metadata = read_checkpoint_metadata(out / "checkpoints" / "learned.npz")
    assert metadata["status"] == "trained" and metadata["problem"]["name"] == "conformance-least-squares"

    assert run("compare", "--config", small_config, "--out", tmp_path / "loaded", "--checkpoints",
               out / "checkpoints", "--no-progress", "--no-plots") == 0
    loaded = json.loads((tmp_path / "loaded" / "results.json").read_text())["solvers"]["learned"]
    assert loaded["loaded_from"].endswith("learned.npz") and loaded["train_seconds"] == 0
    assert run("compare", "--config", small_config, "--out", tmp_path / "fresh", "--no-progress", "--no-plots") == 0
    fresh = json.loads((tmp_path / "fresh" / "results.json").read_text())["solvers"]["learned"]
    # Training is deterministic in its seed: the loaded parameters are the ones a retraining finds.
    np.testing.assert_allclose(loaded["params"]["eta"], fresh["params"]["eta"], rtol=1e-6)
    for name in ("mse", "nmse_db"):
        np.testing.assert_allclose(loaded["metrics"][name], fresh["metrics"][name], rtol=1e-5)


def test_mismatched_checkpoint_is_refused(small_config, tmp_path, capsys):
    out = tmp_path / "trained"
    assert run("train", "--config", small_config, "--out", out, "--no-progress") == 0
    assert run("compare", "--config", small_config, "--set", "solvers.learned.period=2", "--out", tmp_path / "x",
               "--checkpoints", out / "checkpoints", "--no-progress") == 2
    assert "option period: file has 4, expected 2" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, message", [
    (["solvers.0.name=learned-dg"], "unknown solver 'learned-dg'; known solvers: constant-gd, learned-gd "
                                    "(did you mean 'learned-gd'?)"),
    (["train.schedul=incremental"], "did you mean 'train.schedule'?"),
    (["problem.nmae=x"], "unknown key 'problem.nmae'; did you mean 'problem.name'?"),
    (["solvers.1.step=-1"], "solvers.gd.step must be >= 0, got -1"),
])
def test_bad_input_exits_2_with_a_clear_message(small_config, tmp_path, capsys, overrides, message):
    args = ["compare", "--config", small_config, "--out", tmp_path / "x", "--no-progress"]
    for override in overrides:
        args += ["--set", override]
    assert run(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("unfold: error: ") and message in err and "Traceback" not in err


def test_compare_without_a_config_or_a_default_experiment_says_what_to_do(core_plugin, capsys):
    assert run("compare", "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.startswith("unfold: error: no configuration given and no installed plugin provides a default "
                          "experiment")
    assert "--config FILE.toml" in err and "installed experiments: small" in err and "make install" in err


def test_experiment_runs_a_plugins_experiment_and_excludes_config(core_plugin, tmp_path, capsys):
    out = tmp_path / "exp"
    assert run("compare", "--experiment", "small", "--set", "train.depth=2", "--out", out, "--no-progress",
               "--no-plots") == 0
    assert json.loads((out / "results.json").read_text())["config"]["train"]["depth"] == 2
    with pytest.raises(SystemExit) as caught:
        run("compare", "--experiment", "small", "--config", "x.toml")
    assert caught.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_diverging_training_exits_1_and_keeps_the_last_good_parameters(small_config, tmp_path, capsys):
    out = tmp_path / "diverged"
    code = run("train", "--config", small_config, "--set", "solvers.learned.init_step=5.0", "--set",
               "train.depth=40", "--out", out, "--no-progress")
    assert code == 1
    err = capsys.readouterr().err
    assert "\nunfold: error: training of 'learned' diverged" in err and "Traceback" not in err
    stage, step = map(int, re.search(r"at stage (\d+) of 40 .*, step (\d+) of 20", err).groups())
    metadata = read_checkpoint_metadata(out / "checkpoints" / "learned.last-good.npz")
    assert metadata["status"] == "diverged" and (metadata["stage"], metadata["step"]) == (stage, step)
    assert not (out / "checkpoints" / "learned.npz").exists()


class Broken:
    @staticmethod
    @hookimpl
    def register_solvers(register):
        raise RuntimeError("boom")


class DefaultExperiment:
    @staticmethod
    @hookimpl
    def register_experiments(register):
        register(Experiment("small-default", SMALL_TOML, "the default one", default=True))


def test_list_shows_components_experiments_and_failed_plugins(core_plugin, capsys):
    with plugin_registered(Broken, "broken-plugin"), plugin_registered(DefaultExperiment, "default-experiment"):
        with pytest.warns(RuntimeWarning, match="'broken-plugin' was skipped"):
            assert run("list") == 0
    printed = capsys.readouterr().out
    assert re.search(r"^  diag-quadratic +\[core-tests\] +core test problem", printed, re.M)
    assert re.search(r"^  constant-gd +\[core-tests\] +core test solver", printed, re.M)
    assert "requires: QuadraticProblem; fits: conformance-least-squares, diag-quadratic" in printed
    assert re.search(r"^  incremental-frozen +\[du-framework \(built-in\)\]", printed, re.M)
    assert re.search(r"^  small +\[core-tests\] +core test experiment", printed, re.M)
    assert re.search(r"^  small-default +\[default-experiment\] +the default one  \(default\)$", printed, re.M)
    assert re.search(r"Plugins that failed to load \(skipped\):\n  broken-plugin: .*RuntimeError: boom", printed)


def test_list_json_holds_experiments_metrics_and_failures(core_plugin, capsys):
    with plugin_registered(Broken, "broken-plugin"), pytest.warns(RuntimeWarning, match="'broken-plugin'"):
        assert run("list", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["problems"]["diag-quadratic"] == {"plugin": "core-tests", "description": "core test problem: a "
                                                     "diagonal quadratic", "metrics": ["mse", "max_error"],
                                                     "primary_metric": "max_error"}
    assert listing["solvers"]["learned-gd"]["fits"] == ["conformance-least-squares", "diag-quadratic"]
    assert listing["experiments"]["small"] == {"plugin": "core-tests", "description": "core test experiment: a "
                                               "small least-squares problem", "default": False}
    assert "boom" in listing["failed_plugins"]["broken-plugin"]


class Twin:
    """A schedule named like a solver, so that --options finds two components."""

    class ConstantGD(TrainingSchedule):
        name = "constant-gd"
        description = "a schedule named like a solver"

        def stages(self, depth, steps_per_stage):
            return []

    @staticmethod
    @hookimpl
    def register_schedules(register):
        register(Twin.ConstantGD)


def test_list_options_prints_each_declaration(core_plugin, capsys):
    assert run("list", "--options", "diag-quadratic") == 0
    printed = capsys.readouterr().out
    assert printed.startswith("problem diag-quadratic [core-tests]: core test problem: a diagonal quadratic\n")
    assert re.search(r"^kappa +float +10\.0 +>= 1, finite +condition number$", printed, re.M)
    assert run("list", "--options", "train") == 0
    printed = capsys.readouterr().out
    assert re.search(r"^steps_per_stage +int +20 +.*optimiser steps per schedule stage$", printed, re.M)
    assert run("list", "--options", "evaluation") == 0
    assert re.search(r"^seed +int +2026", capsys.readouterr().out, re.M)
    assert run("list", "--options", "layer-wise") == 0
    assert "finetune_lr_scale" in capsys.readouterr().out
    assert run("list", "--options", "constant-gd", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [{"kind": "solver", "name": "constant-gd", "options": [
        {"key": "step", "type": "float", "default": "0.0", "constraint": ">= 0, finite",
         "help": "the step (0: the best constant step)"}],
        "learns": {"problem": "conformance-least-squares", "depth": 50, "parts": [], "parameters": 0}}]


def test_list_options_prints_every_kind_of_an_ambiguous_name_and_the_nearest_of_an_unknown_one(core_plugin, capsys):
    with plugin_registered(Twin, "twin"):
        assert run("list", "--options", "constant-gd") == 0
        printed = capsys.readouterr().out
        assert "solver constant-gd [core-tests]" in printed and "schedule constant-gd [twin]" in printed
        assert run("list", "--options", "constant-dg") == 2
    err = capsys.readouterr().err
    assert err.startswith("unfold: error: --options: no problem, solver or schedule is called 'constant-dg' "
                          "(did you mean 'constant-gd'?)")


def test_option_tables_are_generated_between_markers(core_plugin):
    text = ("intro\n<!-- options:evaluation -->\nstale\n<!-- /options -->\nmiddle\n"
            "<!-- options:problems -->\n<!-- /options -->\nend\n")
    rendered = render_option_tables(text)
    assert rendered.startswith("intro\n<!-- options:evaluation -->\n| key | type | default | constraint | help |\n")
    assert "stale" not in rendered and "\n<!-- /options -->\nmiddle\n" in rendered
    assert "#### `diag-quadratic`\n\ncore test problem: a diagonal quadratic.\nPlugin `core-tests`; metrics `mse`, " \
           "`max_error` (primary).\n\n| key |" in rendered
    assert "| `kappa` | float | 10.0 | >= 1, finite | condition number |" in rendered
    assert render_option_tables(rendered) == rendered
    with pytest.raises(ConfigError, match="unknown option table <!-- options:trian -->"):
        render_option_tables("<!-- options:trian -->\n<!-- /options -->\n")
    with plugin_registered(Broken, "broken-plugin"), pytest.warns(RuntimeWarning, match="'broken-plugin'"):
        with pytest.raises(ConfigError, match="cannot generate the option tables while plugins fail to load"):
            render_option_tables(text)


def test_the_option_tables_in_docs_cli_md_are_up_to_date():
    """docs/cli.md's option tables come from the declarations of the installed plugins."""
    text = CLI_DOCS.read_text()
    for table in ("train", "evaluation", "problems", "solvers", "schedules"):
        assert f"<!-- options:{table} -->" in text
    try:
        rendered = render_option_tables(text, get_registry())
    except ConfigError as error:
        pytest.fail(f"cannot regenerate docs/cli.md: {error}")
    assert rendered == text, f"docs/cli.md is out of step with the option declarations; regenerate it with: " \
                             f"{DOCS_COMMAND}"


def test_an_installed_plugin_runs_in_list_and_compare(tmp_path):
    """The core tests' plugin as an installed distribution, through its entry point, in a new process."""
    site = tmp_path / "site"
    make_distribution(site, "du-core-tests", "core-tests", "du_core_tests",
                      "from core_plugin import register_experiments, register_problems, register_solvers\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS)]), "DU_PLUGINS": "core-tests"}
    listing = json.loads(subprocess.run([sys.executable, "-m", "du_framework", "list", "--json"], env=env,
                                        capture_output=True, text=True, check=True).stdout)
    assert listing["problems"]["diag-quadratic"]["plugin"] == "core-tests"
    assert listing["failed_plugins"] == {}
    done = subprocess.run([sys.executable, "-m", "du_framework", "compare", "--experiment", "small", "--set",
                           "train.depth=3", "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert set(json.loads((tmp_path / "out" / "results.json").read_text())["solvers"]) == {"learned", "gd"}
    done = subprocess.run([sys.executable, "-m", "du_framework", "compare", "--experiment", "small", "--set",
                           "problem.name=nowhere", "--out", str(tmp_path / "bad")], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 2 and done.stderr.startswith("unfold: error: problem.name: unknown problem 'nowhere'")
    assert "Traceback" not in done.stderr


def test_the_console_script_is_unfold_and_does_not_shadow_coreutils_du():
    from importlib.metadata import distribution

    scripts = {ep.name: ep.value for ep in distribution("du-framework").entry_points if ep.group == "console_scripts"}
    assert scripts == {"unfold": "du_framework.cli:entry"}


def test_compare_writes_vector_figures_in_a_style_and_refuses_an_unknown_format(small_config, tmp_path, capsys):
    style = tmp_path / "paper.rc"
    style.write_text("font.size: 7\nlines.linewidth: 0.8\n")
    out = tmp_path / "run"
    assert run("compare", "--config", small_config, "--out", out, "--no-progress", "--figures", "png,pdf",
               "--style", style) == 0
    assert (out / "mse.pdf").read_bytes()[:5] == b"%PDF-" and (out / "params.pdf").read_bytes()[:5] == b"%PDF-"
    assert (out / "mse.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert "mse.pdf" in manifest["files"] and set(manifest["timings"]) >= {"setup", "training", "report", "total"}
    capsys.readouterr()
    assert run("compare", "--config", small_config, "--out", tmp_path / "other", "--figures", "png,jpeg") == 2
    assert "--figures 'png,jpeg': give formats among pdf, svg, png" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
