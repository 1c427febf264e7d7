"""The unfold command line, in process and as a separate process."""

import csv
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from du_framework.cli import main
from du_framework.plugins import get_registry
from du_framework.checkpoint import read_checkpoint_metadata

from plugin_factory import PROBLEM_AND_SCHEDULE_SOURCE, SOLVER_SOURCE, make_distribution

SMALL = """
[problem]
name = "ridge"
n = 8
m = 16
lam = 1.0

[train]
depth = 6
steps_per_stage = 20
batch_size = 16

[evaluation]
batch_size = 50
batches = 2

[[solvers]]
name = "dugd"
lr = 0.01

[[solvers]]
name = "gd"
"""


@pytest.fixture
def small_config(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def test_compare_prints_the_table_and_writes_every_result_file(small_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["compare", "--config", str(small_config), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    for label in ("dugd", "gd"):
        row = next(line for line in printed.splitlines() if line.startswith(label + " "))
        assert f"{results['solvers'][label]['mse'][-1]:.3e}" in row, "the table shows the stored final MSE"
    assert "t=6" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints", "config.json", "mse.png", "params.png", "results.csv", "results.json"]
    dugd = results["solvers"]["dugd"]
    assert len(dugd["mse"]) == 6 and len(dugd["params"]["eta"]) == 4
    assert dugd["compilations"] == 1 and dugd["train_seconds"] > 0
    assert results["solvers"]["gd"]["trainable"] is False
    energy = results["evaluation"]["target_energy"]
    np.testing.assert_allclose(dugd["nmse_db"], 10 * np.log10(np.array(dugd["mse"]) / energy), rtol=1e-9)
    assert results["evaluation"]["report_metric"] == "mse"
    assert results["config"] == json.loads((out / "config.json").read_text())
    assert results["config"]["train"]["depth"] == 6
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 6 and rows[0].keys() == {"solver", "iteration", "mse"}
    gd_csv = [float(r["mse"]) for r in rows if r["solver"] == "gd"]
    assert gd_csv == results["solvers"]["gd"]["mse"]
    for png in ("mse.png", "params.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "checkpoints" / "dugd.npz").is_file() and not (out / "checkpoints" / "gd.npz").exists()


def test_only_runs_the_named_solvers_and_refuses_an_unknown_label(small_config, tmp_path, capsys):
    out = tmp_path / "only"
    assert main(["compare", "--config", str(small_config), "--out", str(out), "--only", "gd", "--no-progress",
                 "--no-plots"]) == 0
    assert list(json.loads((out / "results.json").read_text())["solvers"]) == ["gd"]
    assert main(["train", "--config", str(small_config), "--out", str(out), "--only", "dugf", "--no-progress"]) == 2
    assert "--only names no solver of this configuration: dugf (did you mean 'dugd'?); labels: dugd, gd" in \
        capsys.readouterr().err


def test_train_then_compare_from_checkpoints_skips_training(small_config, tmp_path, capsys):
    out = tmp_path / "trained"
    assert main(["train", "--config", str(small_config), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "dugd: trained in" in printed and "1 compilation" in printed and "gd: nothing to learn" in printed
    assert read_checkpoint_metadata(out / "checkpoints" / "dugd.npz")["status"] == "trained"

    assert main(["compare", "--config", str(small_config), "--out", str(tmp_path / "loaded"),
                 "--checkpoints", str(out / "checkpoints"), "--no-progress", "--no-plots"]) == 0
    loaded = json.loads((tmp_path / "loaded" / "results.json").read_text())["solvers"]["dugd"]
    assert loaded["loaded_from"].endswith("dugd.npz") and loaded["train_seconds"] == 0
    assert main(["compare", "--config", str(small_config), "--out", str(tmp_path / "fresh"), "--no-progress",
                 "--no-plots"]) == 0
    fresh = json.loads((tmp_path / "fresh" / "results.json").read_text())["solvers"]["dugd"]
    # Training is deterministic in its seed: the loaded parameters are the ones a retraining finds.
    np.testing.assert_allclose(loaded["params"]["eta"], fresh["params"]["eta"], rtol=1e-6)
    np.testing.assert_allclose(loaded["mse"], fresh["mse"], rtol=1e-5)


def test_mismatched_checkpoint_is_refused(small_config, tmp_path, capsys):
    out = tmp_path / "trained"
    assert main(["train", "--config", str(small_config), "--out", str(out), "--no-progress"]) == 0
    code = main(["compare", "--config", str(small_config), "--set", "solvers.dugd.period=2", "--out",
                 str(tmp_path / "x"), "--checkpoints", str(out / "checkpoints"), "--no-progress"])
    assert code == 2
    assert "option period: file has 4, expected 2" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, message", [
    (["solvers.0.name=dgd"], "unknown solver 'dgd'; known solvers: {solvers} (did you mean 'dugd'?)"),
    (["train.schedul=incremental"], "did you mean 'train.schedule'?"),
    (["problem.matrix=nowhere.npy"], "problem.matrix: no file at 'nowhere.npy'"),
])
def test_bad_input_exits_2_with_a_clear_message(small_config, tmp_path, capsys, overrides, message):
    args = ["compare", "--config", str(small_config), "--out", str(tmp_path / "x"), "--no-progress"]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 2
    err = capsys.readouterr().err
    message = message.format(solvers=", ".join(get_registry().names("solver")))
    assert err.startswith("unfold: error: ") and message in err


def test_diverging_training_exits_1_and_keeps_the_last_good_parameters(small_config, tmp_path, capsys):
    out = tmp_path / "diverged"
    code = main(["train", "--config", str(small_config), "--set", "solvers.dugd.init_step=5.0", "--set",
                 "solvers.dugd.parametrization=step", "--set",
                 "train.depth=40", "--out", str(out), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    stage, step = map(int, re.search(r"diverged: .* at stage (\d+) of 40 .*, step (\d+) of 20", err).groups())
    metadata = read_checkpoint_metadata(out / "checkpoints" / "dugd.last-good.npz")
    assert metadata["status"] == "diverged" and (metadata["stage"], metadata["step"]) == (stage, step)
    assert not (out / "checkpoints" / "dugd.npz").exists()


def test_list_shows_each_component_with_its_plugin(capsys):
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^  ridge +\[du-gd-ridge\]", printed, re.M)
    assert "requires: RegularizedLeastSquares; fits: ridge" in printed
    assert "incremental-frozen  [du-framework (built-in)]" in printed
    assert re.search(r"^  cg +\[du-theory\] +conjugate gradient", printed, re.M)


def test_an_external_plugin_runs_in_list_and_compare(tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "du-extra", "du-extra", "du_extra_problem", PROBLEM_AND_SCHEDULE_SOURCE)
    make_distribution(site / "..", "du-richardson", "richardson", "du_richardson_cli", SOLVER_SOURCE.format(name="richardson"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(tmp_path)])}
    env.pop("DU_PLUGINS", None)
    listing = json.loads(subprocess.run([sys.executable, "-m", "du_framework", "list", "--json"], env=env,
                                        capture_output=True, text=True, check=True).stdout)
    assert listing["problems"]["diag-quadratic"]["plugin"] == "du-extra"
    assert listing["schedules"]["halves"]["plugin"] == "du-extra"
    fits = set(listing["solvers"]["richardson"]["fits"])
    assert {"diag-quadratic", "ridge"} <= fits and "sparse-recovery" not in fits
    assert listing["solvers"]["dugd"]["fits"] == ["ridge"], "dugd needs RegularizedLeastSquares"

    config = tmp_path / "diag.toml"
    config.write_text(textwrap.dedent("""
        [problem]
        name = "diag-quadratic"
        n = 5
        kappa = 10.0
        [train]
        schedule = "halves"
        depth = 8
        steps_per_stage = 30
        batch_size = 32
        [evaluation]
        batch_size = 200
        batches = 4
        [[solvers]]
        name = "richardson"
        [[solvers]]
        name = "gd"
    """))
    done = subprocess.run([sys.executable, "-m", "du_framework", "compare", "--config", str(config), "--out",
                           str(tmp_path / "out"), "--no-progress", "--no-plots"], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())["solvers"]
    # GD on H = diag(d): E||e_t||^2 = sum_i (1 - s d_i)^(2t) / d_i^2 for b ~ N(0, I).
    d = np.linspace(1.0, 10.0, 5)
    s = 2.0 / 11.0
    expected = [np.sum((1 - s * d) ** (2 * t) / d**2) for t in range(1, 9)]
    np.testing.assert_allclose(results["gd"]["mse"], expected, rtol=0.25)
    assert results["richardson"]["compilations"] == 1

    done = subprocess.run([sys.executable, "-m", "du_framework", "compare", "--config", str(config), "--set",
                           "solvers.1.name=dugd", "--out", str(tmp_path / "bad")], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert "solver 'dugd' needs a problem with capability RegularizedLeastSquares" in done.stderr
    assert "'diag-quadratic'" in done.stderr


def test_the_console_script_is_unfold_and_does_not_shadow_coreutils_du():
    from importlib.metadata import distribution

    scripts = {ep.name: ep.value for ep in distribution("du-framework").entry_points if ep.group == "console_scripts"}
    assert scripts == {"unfold": "du_framework.cli:entry"}
