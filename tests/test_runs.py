"""Run folders as transactions (staging, publish, --force, lock), --resume from the CLI, config.toml, provenance."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from core_plugin import SMALL_TOML, core_plugin  # noqa: F401 - the fixture
from plugin_factory import make_distribution

from du_framework.cli import main
from du_framework.errors import ConfigError
from du_framework.workbench.runs import RunFolder, provenance, to_toml

TESTS = Path(__file__).resolve().parent
# The core tests' plugin, installed-looking; with DU_TEST_STAGE_SLEEP every saved training state
# is announced on stderr and followed by a pause, so a test can kill the run between two stages.
SLOW_PLUGIN = """
import os, sys, time
from core_plugin import register_experiments, register_problems, register_solvers
import du_framework.workbench.training as _compare

_save = _compare.save_train_state

def _slow_save(path, state):
    _save(path, state)
    print(f"saved stage {state.stages_done}", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get("DU_TEST_STAGE_SLEEP", "0")))

_compare.save_train_state = _slow_save
"""
DEPTH = 10


@pytest.fixture
def small_config(tmp_path, core_plugin):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_TOML.replace("depth = 6", f"depth = {DEPTH}"))
    return path


def run(*args):
    return main([*map(str, args)])


def arrays(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def assert_same_checkpoint(a, b):
    first, second = arrays(a), arrays(b)
    assert sorted(first) == sorted(second)
    for name in first:
        if first[name].dtype != np.uint8:  # the JSON header holds the training time
            np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def child(tmp_path, *args):
    site = tmp_path / "site"
    if not site.exists():
        make_distribution(site, "du-core-tests", "core-tests", "du_core_tests_slow", SLOW_PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS)]), "DU_PLUGINS": "core-tests",
           "DU_TEST_STAGE_SLEEP": "0.4", "DU_STATE_INTERVAL": "0"}
    return subprocess.Popen([sys.executable, "-m", "du_framework", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_stage(process, stage):
    lines = []
    deadline = time.monotonic() + 120
    for line in process.stderr:
        lines.append(line)
        if line.startswith("saved stage") and int(line.split()[2]) >= stage or time.monotonic() > deadline:
            return lines
    return lines


# --- staging, publishing, manifest ---------------------------------------------------------------

def test_a_completed_run_is_published_whole_with_a_manifest_config_toml_and_provenance(small_config, tmp_path):
    out = tmp_path / "run"
    assert run("compare", "--config", small_config, "--out", out, "--no-progress", "--no-plots") == 0
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["subcommand"] == "compare"
    assert manifest["config_digest"].startswith("sha256:")
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    results = json.loads((out / "results.json").read_text())
    prov = results["provenance"]
    assert prov == manifest["provenance"]
    assert prov["plugins"]["core-tests"] == {"distribution": None, "version": None}  # registered in process
    assert set(prov["libraries"]) == {"jax", "jaxlib", "flax", "optax", "numpy"} and prov["libraries"]["jax"]
    assert prov["backend"] and prov["devices"] and prov["du_framework"]
    assert prov["git"] is None or set(prov["git"]) == {"revision", "dirty", "root"}


def test_config_toml_reproduces_the_runs_numbers(small_config, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert run("compare", "--config", small_config, "--out", first, "--no-progress", "--no-plots") == 0
    assert run("compare", "--config", first / "config.toml", "--out", second, "--no-progress", "--no-plots") == 0
    a, b = (json.loads((d / "results.json").read_text()) for d in (first, second))
    assert a["config"] == b["config"]
    for label in a["solvers"]:
        assert a["solvers"][label]["metrics"] == b["solvers"][label]["metrics"]
        assert a["solvers"][label]["params"] == b["solvers"][label]["params"]


def test_the_toml_writer_reads_back_every_kind_of_value():
    config = {"problem": {"name": 'a "quoted"\\ name\x7f', "lam": 1e-05, "big": 1e300, "neg": -0.5, "n": 3,
                          "flag": True, "unset": None, "inf": float("inf")},
              "train": {"optimizer_options": {"b1": 0.9, "nested key": [1, 2]}, "sizes": [1.5, 2.0]},
              "solvers": [{"name": "x", "label": "é"}, {"name": "y", "label": "z"}]}
    parsed = tomllib.loads(to_toml(config))
    del config["problem"]["unset"]
    assert parsed == config


def test_a_non_empty_out_is_refused_and_force_replaces_it_as_a_whole(small_config, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("the earlier run")
    assert run("train", "--config", small_config, "--out", out, "--no-progress") == 2
    line = capsys.readouterr().err
    assert "is not empty" in line and "--force" in line and "--resume" in line
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert run("train", "--config", small_config, "--out", out, "--no-progress", "--force") == 0
    assert not (out / "old.txt").exists() and (out / "checkpoints" / "learned.npz").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no lock left beside it"


def test_a_second_process_on_the_same_folder_is_refused(small_config, tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys\n"
                               "from du_framework.workbench.runs import RunFolder\n"
                               "with RunFolder(sys.argv[1]):\n"
                               "    print('locked', flush=True); sys.stdin.read()", str(out)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run("compare", "--config", small_config, "--out", out, "--no-progress") == 2
        line = capsys.readouterr().err
        assert f"another unfold process (pid {holder.pid}) is writing" in line and "choose another --out" in line
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not out.exists()


def test_the_lock_beside_the_folder_is_removed_when_the_run_ends(tmp_path):
    out = tmp_path / "run"
    with RunFolder(out) as folder:
        assert folder.lock_path == tmp_path / ".run.lock" and folder.lock_path.is_file(), "held while it runs"
    assert not folder.lock_path.exists()
    with pytest.raises(ConfigError), RunFolder(out, resume=True):  # refused on entering: released, removed
        pass
    assert ".run.lock" not in [p.name for p in tmp_path.iterdir()]


def test_a_lock_file_removed_by_its_last_holder_while_we_opened_it_is_not_taken(tmp_path, monkeypatch):
    """The race of a removed lock file: we open .run.lock, its holder finishes (removes it and unlocks), and a
    third process creates a new one and locks it. Our lock on the old, unlinked file excludes no one: we must
    find that the path names another file now, and lock that one (held by the third process: refused)."""
    import fcntl

    from du_framework.workbench import runs

    out = tmp_path / "run"
    lock_path = tmp_path / ".run.lock"
    lock_path.write_text("1")
    third = {}
    real_flock = fcntl.flock

    def flock(fd, operation):
        if not third and operation & fcntl.LOCK_EX:
            lock_path.unlink()  # the holder finished: removed the file it had locked
            third["fd"] = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)  # a third process starts
            real_flock(third["fd"], fcntl.LOCK_EX | fcntl.LOCK_NB)
        return real_flock(fd, operation)

    monkeypatch.setattr(runs.fcntl, "flock", flock)
    try:
        with pytest.raises(ConfigError, match="another unfold process"), RunFolder(out):
            pass
        assert lock_path.exists(), "the third process's lock file is left alone"
    finally:
        os.close(third["fd"])


def test_stale_staging_folders_of_dead_processes_are_cleaned(tmp_path):
    out = tmp_path / "run"
    stale = tmp_path / ".run.staging-999999999"
    (stale / "checkpoints").mkdir(parents=True)  # died before writing config.toml: nothing to resume
    with RunFolder(out) as folder:
        assert folder.staging.is_dir() and not stale.exists()
        (folder.staging / "a.txt").write_text("x")
        folder.publish({"status": "complete"})
    assert json.loads((out / "manifest.json").read_text())["files"]["a.txt"]["size"] == 1


# --- resume --------------------------------------------------------------------------------------

def test_sigkill_then_resume_gives_the_uninterrupted_parameters(small_config, tmp_path, capsys):
    whole = tmp_path / "whole"
    assert run("train", "--config", small_config, "--out", whole, "--no-progress") == 0
    out = tmp_path / "killed"
    process = child(tmp_path, "train", "--config", small_config, "--out", out, "--no-progress")
    wait_for_stage(process, 3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run must have been killed, not have finished"
    assert not out.exists(), "nothing is published before the run completes"
    staging = next(tmp_path.glob(".killed.staging-*"))
    assert (staging / "checkpoints" / "learned.state.npz").is_file()
    # a plain rerun is refused: the interrupted run is named
    assert run("train", "--config", small_config, "--out", out, "--no-progress") == 2
    assert f"continue it with `unfold train --resume {out}`" in capsys.readouterr().err
    # --resume takes the configuration from the run
    assert run("train", "--resume", out, "--config", small_config) == 2
    assert "leave out --config" in capsys.readouterr().err
    capsys.readouterr()
    assert run("train", "--resume", out, "--no-progress") == 0
    err = capsys.readouterr().err
    assert f"unfold: note: resuming the interrupted run {out}" in err and "warning" not in err, "a resume is no fault"
    assert_same_checkpoint(out / "checkpoints" / "learned.npz", whole / "checkpoints" / "learned.npz")
    assert not list(tmp_path.glob(".killed.staging-*")) and not (out / "checkpoints" / "learned.state.npz").exists()
    assert json.loads((out / "manifest.json").read_text())["resumed"] is True
    assert run("train", "--resume", out) == 2
    assert "the run is complete" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_exits_130_naming_the_resume_command_and_compare_resumes(small_config, tmp_path, sig, capsys):
    out = tmp_path / "stopped"
    process = child(tmp_path, "compare", "--config", small_config, "--out", out, "--no-progress", "--no-plots")
    wait_for_stage(process, 2)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert f"continue with: unfold compare --resume {out}" in err and "Traceback" not in err
    assert ("SIGTERM" if sig == signal.SIGTERM else "Ctrl-C") in err
    assert not out.exists() and next(tmp_path.glob(".stopped.staging-*/checkpoints/learned.state.npz"))
    if sig == signal.SIGTERM:
        return  # one resume is enough
    assert run("compare", "--resume", out, "--no-progress") == 0
    whole = tmp_path / "whole"
    assert run("compare", "--config", small_config, "--out", whole, "--no-progress", "--no-plots") == 0
    a, b = (json.loads((d / "results.json").read_text()) for d in (out, whole))
    assert a["solvers"]["learned"]["params"] == b["solvers"]["learned"]["params"]
    assert a["solvers"]["learned"]["metrics"] == b["solvers"]["learned"]["metrics"]
    assert not (out / "mse.png").exists(), "--no-plots is restored from the run"


def test_provenance_records_plugin_distributions_and_the_command_line(core_plugin):
    record = provenance(argv=["unfold", "list"])
    assert record["command_line"] == ["unfold", "list"]
    assert "core-tests" in record["plugins"]
    json.dumps(record, allow_nan=False)


def test_provenance_hides_a_database_password_in_the_command_line(core_plugin, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["unfold", "tune", "--storage", "postgresql://ana:fake-pw@db:5432/studies",
                                      "--storage=redis://:fake-pw@cache/0", "--out", "sqlite:///a:b@c"])
    assert provenance()["command_line"] == ["unfold", "tune", "--storage", "postgresql://ana:***@db:5432/studies",
                                            "--storage=redis://:***@cache/0", "--out", "sqlite:///a:b@c"]
    assert "fake-pw" not in json.dumps(provenance(argv=["unfold", "mysql://u:fake-pw@h/db"]))


@pytest.mark.parametrize("interval, saved", [("0", DEPTH), ("3600", 1)])
def test_the_resumable_state_is_saved_at_most_once_per_interval(small_config, tmp_path, monkeypatch, interval, saved):
    from du_framework.workbench import compare, training
    from du_framework.workbench.config import load_config

    stages = []
    monkeypatch.setattr(training, "save_train_state", lambda path, state: stages.append(state.stages_done))
    monkeypatch.setenv("DU_STATE_INTERVAL", interval)
    config = load_config(small_config)
    problem, schedule = compare.build_problem(config), compare.build_schedule(config)
    solvers = compare.build_solvers(config, problem)
    compare.train_solver(config, 0, solvers[0], problem, schedule, checkpoint_dir=tmp_path, progress=False)
    # The first stage always (a killed run has a state early), then no more often than the interval.
    assert stages == list(range(1, saved + 1))
