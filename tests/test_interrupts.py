"""Ctrl-C at every moment of ``unfold compare``: exit 130, one line naming what to do, no traceback.

The run is a child process (``python -m du_framework``) with the core tests' plugin. With
``DU_TEST_PAUSE_AT=<moment>`` the child announces the moment on stderr (``pausing at <moment>``) and
pauses there, so the test sends SIGINT at that moment and not at a guessed time:

* ``import``: inside ``import jax`` (a meta-path finder of ``sitecustomize`` pauses on ``jax._src.lib``),
  before the command line exists;
* ``compile``: while the learned solver is traced for compilation;
* ``gc``: inside a garbage-collection callback, where Python swallows an exception ("Exception ignored
  in: ...") as it does in JAX's own callback;
* ``training``: after stage 2's resumable state is saved (and recorded for the message);
* ``results``: while the report's files are written (results.json is, results.csv is being written).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import one_error_line
from core_plugin import SMALL_TOML, core_plugin  # noqa: F401 - the fixture
from plugin_factory import make_distribution

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

PAUSING_PLUGIN = """
import gc, os, sys, time
from core_plugin import LearnedGD, register_experiments, register_problems, register_solvers
import du_framework.workbench.report as _report
import du_framework.workbench.training as _training

_paused = set()

def _pause(moment):
    if os.environ.get("DU_TEST_PAUSE_AT") == moment and moment not in _paused:
        _paused.add(moment)
        print(f"pausing at {moment}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("DU_TEST_PAUSE_SECONDS", "20")))

_step = LearnedGD.step

def _traced_step(self, *args, **kwargs):
    _pause("compile")
    return _step(self, *args, **kwargs)

LearnedGD.step = _traced_step

_save = _training._StateSaver.__call__

def _saved(self, state):
    _save(self, state)
    if state.stages_done >= 2:
        _pause("training")

_training._StateSaver.__call__ = _saved

_atomic_write = _report.atomic_write

def _writing(path, *args, **kwargs):
    if str(path).endswith("results.csv"):
        _pause("results")
    return _atomic_write(path, *args, **kwargs)

_report.atomic_write = _writing

def _collecting(phase, info):
    if phase == "start":
        _pause("gc")

gc.callbacks.append(_collecting)
"""

# Imported at the child's start-up (before du_framework): pauses inside `import jax`.
SITECUSTOMIZE = """
import os, sys, time

class _PauseInJax:
    def find_spec(self, name, path=None, target=None):
        if name == "jax._src.lib" and os.environ.get("DU_TEST_PAUSE_AT") == "import":
            sys.meta_path.remove(self)
            print("pausing at import", file=sys.stderr, flush=True)
            time.sleep(float(os.environ.get("DU_TEST_PAUSE_SECONDS", "20")))
        return None

sys.meta_path.insert(0, _PauseInJax())
"""

RESUME = "continue with: unfold compare --resume"
NOTHING = "nothing was published"
# What the one line must say at each moment: interrupted before the run folder holds a state, nothing was
# published; after, the command that continues the run. In a gc callback it depends where the collection was.
EXPECTED = {"import": (NOTHING,), "compile": (NOTHING, RESUME), "gc": (NOTHING, RESUME), "training": (RESUME,),
            "results": (RESUME,)}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    make_distribution(root, "du-core-tests", "core-tests", "du_core_tests_pausing", PAUSING_PLUGIN)
    (root / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return root


def start(site, moment, out, config, pause="20"):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [ROOT, site, TESTS])), "DU_PLUGINS": "core-tests",
           "DU_TEST_PAUSE_AT": moment, "DU_TEST_PAUSE_SECONDS": pause, "DU_STATE_INTERVAL": "0",
           "DU_COMPILE_CACHE": "off"}
    return subprocess.Popen([sys.executable, "-m", "du_framework", "compare", "--config", str(config),
                             "--out", str(out), "--no-progress", "--no-plots"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(process, marker, timeout=180):
    """The stderr lines up to ``marker`` (the child is then paused there)."""
    lines, deadline = [], time.monotonic() + timeout
    for line in process.stderr:
        lines.append(line)
        if line.strip() == marker:
            return lines
        if time.monotonic() > deadline:
            break
    process.kill()
    pytest.fail(f"the child never printed {marker!r}: {''.join(lines)}")


@pytest.mark.parametrize("moment", list(EXPECTED))
def test_an_interrupt_at_any_moment_exits_130_with_one_line_and_no_traceback(site, tmp_path, moment):
    config = tmp_path / "small.toml"
    config.write_text(SMALL_TOML)
    out = tmp_path / "run"
    process = start(site, moment, out, config)
    before = wait_for(process, f"pausing at {moment}")
    began = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    err = "".join(before) + rest
    assert process.returncode == 130, err
    assert "Exception ignored" not in err and "KeyboardInterrupt" not in err
    line = one_error_line(err)  # exactly one error line, no traceback
    assert line.startswith("unfold: error: interrupted (Ctrl-C)") and err.rstrip().endswith(line), err
    assert any(advice in line for advice in EXPECTED[moment]), line
    assert not out.exists(), "nothing is published by an interrupted run"
    if RESUME in line:
        assert f"{RESUME} {out}" in line and list(tmp_path.glob(".run.staging-*/config.toml"))
    if moment != "import":  # an interrupt is acted on at once, not after the 20 s pause
        assert time.monotonic() - began < 15, err


def test_an_interrupt_while_training_names_the_saved_stage(site, tmp_path):
    config = tmp_path / "small.toml"
    config.write_text(SMALL_TOML)
    process = start(site, "training", tmp_path / "run", config)
    wait_for(process, "pausing at training")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "(learned: stage 2 of 6)" in one_error_line(err)


def test_a_swallowed_interrupt_is_raised_again_by_the_cli_in_process(tmp_path, monkeypatch):
    """The mechanism alone: a KeyboardInterrupt lost in a gc callback comes back as the command's 130."""
    import gc

    from du_framework.cli import main
    from du_framework.cli import parser as cli_parser

    def collect_during_parse(*args, **kwargs):
        fired = []

        def callback(phase, info):
            if phase == "start" and not fired:
                fired.append(True)
                signal.raise_signal(signal.SIGINT)  # delivered in the callback: raised there, swallowed
                time.sleep(0.01)
        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        deadline = time.monotonic() + 30  # the interrupt, sent again 10 ms later, ends this (slowly on a loaded machine)
        while time.monotonic() < deadline:
            time.sleep(0.05)
        raise AssertionError("the interrupt was lost")

    monkeypatch.setattr(cli_parser.argparse.ArgumentParser, "parse_args", collect_during_parse)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    assert main(["list"]) == 130
    assert unraisable == []


def test_a_run_resumed_after_training_reports_the_training_its_checkpoints_record(site, tmp_path, core_plugin):
    from du_framework.cli import main
    from du_framework.io.checkpoint import read_checkpoint_metadata
    from du_framework.workbench.loading import load_run

    config = tmp_path / "small.toml"
    config.write_text(SMALL_TOML)
    out = tmp_path / "run"
    process = start(site, "results", out, config)  # every solver trained, the report being written
    wait_for(process, "pausing at results")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert main(["compare", "--resume", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    recorded = read_checkpoint_metadata(out / "checkpoints" / "learned.npz")
    learned, gd = results["solvers"]["learned"], results["solvers"]["gd"]
    assert learned["train_seconds"] == recorded["train_seconds"] > 0
    assert learned["compile_seconds"] == recorded["compile_seconds"] > 0
    assert learned["compilations"] == recorded["compilations"] == 1
    assert learned["resumed"] is True and gd["resumed"] is False and learned["loaded_from"] is None
    assert json.loads((out / "manifest.json").read_text())["resumed"] is True
    run = load_run(out)  # schema 3 with the optional field reads back
    assert run.solvers["learned"].resumed is True and run.solvers["learned"].train_seconds == recorded["train_seconds"]
