"""Failures end as one line and a documented exit status; output files are strict, readable, clean.

Everything runs through ``du_framework.cli.main`` in process with the core tests' plugin;
faults (a full disk, Ctrl-C, out of memory) are injected with monkeypatch.
"""

import json
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

import du_framework.workbench.compare as compare_module
import du_framework.workbench.preflight as preflight
import du_framework.workbench.report as report
from du_framework import ConfigError
from du_framework.io.atomic import atomic_write, remove_stale_temporaries
from du_framework.workbench.config import MAX_CONFIG_BYTES, build_config, load_raw
from du_framework.registry import get_registry

from cli_helpers import one_error_line, run
from core_plugin import SMALL_TOML, core_plugin  # noqa: F401 - the fixture


@pytest.fixture
def small_config(tmp_path, core_plugin):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TOML)
    return path


@pytest.fixture
def no_training(monkeypatch):
    """Training raises at once: a test using it proves that a refusal came before any training."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("training started although the input should have been refused first")

    monkeypatch.setattr(compare_module, "train_solver", refuse)
    return calls




# --- --out is checked before any training ---------------------------------------------------------

@pytest.mark.parametrize("command", ["compare", "train"])
def test_an_out_that_is_a_file_is_refused_before_training(small_config, tmp_path, capsys, no_training, command):
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    assert run(command, "--config", small_config, "--out", target, "--no-progress") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--out" in line and str(target) in line and "is a file" in line
    assert target.read_text() == "not a folder" and not no_training


def test_an_out_below_a_file_is_refused_before_training(small_config, tmp_path, capsys, no_training):
    (tmp_path / "file").write_text("x")
    assert run("compare", "--config", small_config, "--out", tmp_path / "file" / "run", "--no-progress") == 2
    assert "cannot be created" in one_error_line(capsys.readouterr().err) and not no_training


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes through any permission")
def test_an_unwritable_out_is_refused_before_training(small_config, tmp_path, capsys, no_training):
    locked = tmp_path / "locked"
    locked.mkdir()
    existing = locked / "run"
    existing.mkdir()
    locked.chmod(0o500)
    existing.chmod(0o500)
    try:
        assert run("compare", "--config", small_config, "--out", locked / "new", "--no-progress") == 2
        assert "cannot be created: Permission denied" in one_error_line(capsys.readouterr().err)
        assert run("train", "--config", small_config, "--out", existing, "--no-progress") == 2
        assert "is not writable: Permission denied" in one_error_line(capsys.readouterr().err)
    finally:
        existing.chmod(0o700)
        locked.chmod(0o700)
    assert not no_training and list(existing.iterdir()) == []  # the probe file was removed


def test_a_read_only_out_is_refused_before_training(small_config, tmp_path, capsys, monkeypatch, no_training):
    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(preflight.tempfile, "mkstemp", read_only)
    assert run("compare", "--config", small_config, "--out", tmp_path / "ro", "--no-progress") == 2
    assert f"--out '{tmp_path / 'ro'}' is not writable: Read-only file system" in one_error_line(
        capsys.readouterr().err)
    assert not no_training


def test_the_probe_file_is_removed_from_a_writable_out(small_config, tmp_path):
    out = preflight.check_out_dir(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []


# --- labels must be file names ---------------------------------------------------------------------

@pytest.mark.parametrize("label, why", [
    ("a\0b", "NUL"), ("a/b", "'/'"), ("a\\b", "backslash"), (".hidden", "starts with '.'"), ("..", "starts with '.'"),
    ("x" * 101, "101 characters"), ("tab\there", "control character"), ("new\nline", "control character"),
    (" ", "blank"), ("\N{GRINNING FACE}" * 70, "255 bytes"),
], ids=["nul", "slash", "backslash", "hidden", "dotdot", "long", "tab", "newline", "blank", "bytes"])
def test_a_label_that_cannot_be_a_file_name_is_refused_naming_the_entry(core_plugin, label, why):
    raw = load_raw(experiment="small")
    raw["solvers"][1]["label"] = label
    with pytest.raises(ConfigError) as caught:
        build_config(raw, get_registry())
    message = str(caught.value)
    assert message.startswith("solvers[1] (solver 'constant-gd'): label ") and why in message


def test_a_plain_label_of_100_characters_is_accepted(core_plugin):
    raw = load_raw(experiment="small")
    raw["solvers"][1]["label"] = "g" * 100
    assert build_config(raw, get_registry()).solvers[1].label == "g" * 100


def test_a_bad_label_from_the_command_line_exits_2_before_training(small_config, tmp_path, capsys, no_training):
    assert run("compare", "--config", small_config, "--set", 'solvers.gd.label=".."', "--out", tmp_path / "o",
               "--no-progress") == 2
    assert "solvers[1] (solver 'constant-gd'): label '..'" in one_error_line(capsys.readouterr().err)
    assert not no_training and not (tmp_path / "o").exists()


# --- configuration files ---------------------------------------------------------------------------

def test_a_config_that_is_not_utf8_is_refused(core_plugin, tmp_path, capsys):
    path = tmp_path / "latin1.toml"
    path.write_bytes(SMALL_TOML.replace('label = "gd"', 'label = "caf\xe9"').encode("latin-1"))
    assert run("compare", "--config", path, "--no-progress") == 2
    line = one_error_line(capsys.readouterr().err)
    line_number = SMALL_TOML[:SMALL_TOML.index('label = "gd"')].count("\n") + 1
    assert "is not UTF-8 text (byte 0xe9 at offset" in line and f"line {line_number})" in line


def test_a_binary_config_is_refused(core_plugin, tmp_path, capsys):
    path = tmp_path / "binary.toml"
    path.write_bytes(bytes(range(256)))
    assert run("train", "--config", path, "--no-progress") == 2
    assert "not UTF-8" in one_error_line(capsys.readouterr().err)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_dev_zero_as_config_is_refused_without_reading_it(core_plugin, capsys):
    assert run("compare", "--config", "/dev/zero", "--no-progress") == 2
    assert "'/dev/zero' is not a regular file" in one_error_line(capsys.readouterr().err)


def test_a_folder_or_a_huge_file_as_config_is_refused(core_plugin, tmp_path, capsys, monkeypatch):
    assert run("compare", "--config", tmp_path, "--no-progress") == 2
    assert "is a folder" in one_error_line(capsys.readouterr().err)
    huge = tmp_path / "huge.toml"
    huge.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    reads = []
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self))
    with pytest.raises(ConfigError, match=r"huge.toml' is \d+ bytes; a configuration is at most 1048576"):
        load_raw(huge)
    assert not reads


@pytest.mark.parametrize("toml, message", [
    ('[problem]\nname = ["conformance-least-squares"]\n[[solvers]]\nname = "constant-gd"\n',
     "problem.name must name a registered problem (a string), got ['conformance-least-squares']"),
    ('[problem]\nname = { a = 1 }\n[[solvers]]\nname = "constant-gd"\n', "problem.name must name"),
    ('problem = ["x"]\n[[solvers]]\nname = "constant-gd"\n', "[problem] must be a table"),
    ('[problem]\nname = "conformance-least-squares"\n[[solvers]]\nname = ["constant-gd"]\n',
     "solvers[0].name must name a registered solver"),
    ('[problem]\nname = "conformance-least-squares"\n[[solvers]]\nname = "constant-gd"\nlabel = ["a"]\n',
     "solvers[0] (solver 'constant-gd'): label must be a string, got ['a']"),
    ('[problem]\nname = "conformance-least-squares"\n[train]\nschedule = { a = 1 }\n[[solvers]]\nname = "constant-gd"\n',
     "train.schedule must be a string"),
    ('solvers = "gd"\n[problem]\nname = "conformance-least-squares"\n',
     "solvers must be a list of [[solvers]] tables, got 'gd'"),
])
def test_a_list_or_table_where_a_name_is_expected_is_refused(core_plugin, tmp_path, capsys, toml, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    assert run("compare", "--config", path, "--no-progress", "--out", tmp_path / "o") == 2
    assert message in one_error_line(capsys.readouterr().err)


# --- faults during a run: one line, a distinct exit status -----------------------------------------

def test_a_full_disk_exits_3_naming_the_file(small_config, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def full(path, mode="w"):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(report, "atomic_write", full)
    assert run("compare", "--config", small_config, "--out", out, "--no-progress") == 3
    line = one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "errno 28" in line
    staging = f".run.staging-{os.getpid()}"  # the run is written there, published only once complete
    assert str(tmp_path / staging / "results.json") in line and not out.exists()
    assert f"continue the run with: unfold compare --resume {out}" in line


def test_a_failing_rename_exits_3(small_config, tmp_path, monkeypatch, capsys):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    assert run("train", "--config", small_config, "--out", tmp_path / "run", "--no-progress") == 3
    line = one_error_line(capsys.readouterr().err)
    assert "Permission denied" in line and "config.toml" in line and "errno 13" in line
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".tmp"], "the temporary file is removed"


def test_ctrl_c_exits_130_with_a_message(small_config, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare_module, "train_solver", interrupted)
    assert run("compare", "--config", small_config, "--out", tmp_path / "run", "--no-progress") == 130
    assert "interrupted (Ctrl-C)" in one_error_line(capsys.readouterr().err)


class XlaRuntimeError(RuntimeError):
    """Stands in for jax's: the CLI recognises it by name and RESOURCE_EXHAUSTED."""


@pytest.mark.parametrize("error, code, message", [
    (MemoryError(), 4, "out of memory (MemoryError): lower train.batch_size or train.depth"),
    (XlaRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 7.00TiB.\nmore"), 4,
     "out of memory on the device (XLA RESOURCE_EXHAUSTED: RESOURCE_EXHAUSTED: Out of memory while trying"),
    (XlaRuntimeError("INTERNAL: something else"), 70, "unexpected XlaRuntimeError: INTERNAL: something else. "
                                                      "This is a bug"),
    (ZeroDivisionError("division by zero"), 70, "unexpected ZeroDivisionError: division by zero. This is a bug"),
])
def test_memory_and_unexpected_errors_have_their_own_exit_status(small_config, tmp_path, monkeypatch, capsys,
                                                                 error, code, message):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(compare_module, "train_solver", fail)
    assert run("compare", "--config", small_config, "--out", tmp_path / "run", "--no-progress") == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("unfold: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert ("Traceback" in err) == (code == 70), "only a bug shows its traceback"


# --- estimates before training ---------------------------------------------------------------------

def test_a_run_that_cannot_fit_in_memory_is_refused_before_training(small_config, tmp_path, monkeypatch, capsys,
                                                                    no_training):
    monkeypatch.setattr(preflight, "available_memory", lambda device=None: (1000, "this test machine"))
    assert run("train", "--config", small_config, "--out", tmp_path / "run", "--no-progress") == 4
    line = one_error_line(capsys.readouterr().err)
    assert "training 'learned' needs about" in line and "this test machine has 1000 bytes" in line
    for setting in ("train.batch_size (now 16)", "train.depth (now 6)", "train.remat = true"):
        assert setting in line
    assert not no_training


def test_the_memory_estimate_grows_with_batch_and_depth_and_shrinks_with_remat(core_plugin):
    from du_framework.workbench.compare import build_problem, build_solvers
    from du_framework.workbench.config import apply_overrides

    def need(*overrides):
        config = build_config(apply_overrides(load_raw(experiment="small"), list(overrides)), get_registry())
        problem = build_problem(config)
        return preflight.training_memory(build_solvers(config, problem)[0], problem, config.train)

    base = need("train.depth=100")
    assert base["states"] == 2 * 100 * 16 * 8 * 4  # 2 x depth x (batch x n float32 states)
    assert need("train.depth=100", "train.batch_size=32")["states"] == 2 * base["states"]
    assert need("train.depth=100", "train.remat=true")["states"] == 2 * 20 * 16 * 8 * 4  # 2 levels of 10
    assert base["problem"] > 16 * 8 * 4 and base["total"] == sum(v for k, v in base.items() if k != "total")


def test_a_very_long_run_is_announced_with_an_estimate(small_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(preflight, "WORK_WARNING", 100)
    assert run("train", "--config", small_config, "--out", tmp_path / "run", "--no-progress") == 0
    err = capsys.readouterr().err
    # the incremental schedule: 20 steps at active depths 1..6
    assert "unfold: warning: training 'learned' runs 420 iteration-steps" in err and "lower train.depth (now 6)" in err
    assert "'gd'" not in err, "nothing to train, nothing to announce"


# --- output files ----------------------------------------------------------------------------------

def test_results_json_is_strict_json_with_null_for_non_finite_values(small_config, tmp_path, monkeypatch):
    import dataclasses

    evaluate_solver = compare_module.evaluate_solver

    def broken_curves(*args, **kwargs):
        evaluation = evaluate_solver(*args, **kwargs)
        curves = {name: np.array(curve, np.float64) for name, curve in evaluation.values.items()}
        curves["mse"][-3:] = [np.nan, np.inf, -np.inf]
        return dataclasses.replace(evaluation, values=curves)

    monkeypatch.setattr(compare_module, "evaluate_solver", broken_curves)
    out = tmp_path / "run"
    assert run("compare", "--config", small_config, "--out", out, "--no-progress") == 0

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    text = (out / "results.json").read_text()
    results = json.loads(text, parse_constant=refuse)
    assert results["solvers"]["gd"]["metrics"]["mse"][-3:] == [None, None, None]
    assert all(isinstance(v, float) for v in results["solvers"]["gd"]["metrics"]["mse"][:-3])
    json.loads((out / "config.json").read_text(), parse_constant=refuse)
    assert (out / "mse.png").is_file()


def test_strict_json_converts_numpy_values():
    assert json.loads(report.strict_json({"a": np.float32(np.nan), "b": np.array([1.5, np.inf]), "c": np.int64(3),
                                          "d": (np.bool_(True), float("-inf"))})) == \
        {"a": None, "b": [1.5, None], "c": 3, "d": [True, None]}


@pytest.fixture
def umask():
    def set_umask(mask):
        os.umask(mask)

    previous = os.umask(0o022)
    yield set_umask
    os.umask(previous)


def test_files_are_created_with_the_users_umask(umask, tmp_path):
    umask(0o022)
    with atomic_write(tmp_path / "a.txt") as handle:
        handle.write("x")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    umask(0o077)
    with atomic_write(tmp_path / "b.bin", "wb") as handle:
        handle.write(b"x")
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o600


def test_a_replaced_file_keeps_its_mode(umask, tmp_path):
    umask(0o022)
    path = tmp_path / "shared.txt"
    path.write_text("old")
    path.chmod(0o664)
    with atomic_write(path) as handle:
        handle.write("new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o664


def test_every_output_file_of_a_run_is_readable_by_others_under_umask_022(umask, small_config, tmp_path):
    umask(0o022)
    out = tmp_path / "run"
    assert run("compare", "--config", small_config, "--out", out, "--no-progress") == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"results.json", "results.csv", "config.json", "mse.png", "params.png",
                                        "learned.npz"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o644" for p in files}


def test_stale_temporary_files_are_removed_and_fresh_ones_kept(tmp_path):
    target = tmp_path / "results.json"
    stale = tmp_path / ".results.json.k2j4abcd.tmp"
    fresh = tmp_path / ".results.json.zz99zz99.tmp"  # perhaps a live writer's
    other = tmp_path / ".results.csv.k2j4abcd.tmp"  # another file's: left to that file's writer
    for path in (stale, fresh, other):
        path.write_text("partial")
    an_hour_and_more = time.time() - 3700
    for path in (stale, other):
        os.utime(path, (an_hour_and_more, an_hour_and_more))
    with atomic_write(target) as handle:
        handle.write("{}")
    assert not stale.exists() and fresh.exists() and other.exists() and target.read_text() == "{}"
    assert remove_stale_temporaries(tmp_path / "results.csv") == [other]


def test_a_failed_write_leaves_no_temporary_file_and_the_old_file_intact(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


# --- plots -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("label", ["$x_{$", "$}$", "a$b$c", "_hidden", "cost $^$ (x)"])
def test_a_mathtext_label_still_writes_results_and_plots(small_config, tmp_path, capsys, label):
    out = tmp_path / "run"
    assert run("compare", "--config", small_config, "--set", f"solvers.learned.label={json.dumps(label)}",
               "--out", out, "--no-progress") == 0
    assert "warning" not in capsys.readouterr().err
    assert label in json.loads((out / "results.json").read_text())["solvers"]
    for png in ("mse.png", "params.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plain_text_escapes_every_dollar():
    assert report.plain_text("a$b$") == r"a\$b\$" and report.plain_text("_x") == " _x"


def test_a_failing_plot_is_a_warning_and_the_results_are_kept(small_config, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ValueError("matplotlib could not parse this\nsecond line")

    from du_framework.workbench import figures

    monkeypatch.setattr(figures, "params_figure", broken)
    out = tmp_path / "run"
    assert run("compare", "--config", small_config, "--out", out, "--no-progress") == 0
    captured = capsys.readouterr()
    assert ("unfold: warning: params figure could not be drawn (ValueError: matplotlib could not parse this); "
            "the results files are complete") in captured.err
    assert "params.png" not in captured.out and "mse.png" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.json", "config.toml", "losses.png",
                                                     "manifest.json", "mse.png", "results.csv", "results.json",
                                                     "run.json", "stages.csv", "training.csv"]
