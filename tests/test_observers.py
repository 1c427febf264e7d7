"""Run observers: the register_observers hook, the order of their calls, isolation, TensorBoard files, docs.

Each training run here costs a compilation (about 2 s): three runs cover the command line
(compare and train) and the Python API with two seeds.
"""

import csv
import json
import re
import struct
import sys
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from du_framework import ConfigError, hookimpl
from du_framework.workbench.compare import build_schedule, run_comparison
from du_framework.workbench.config import load_config
from du_framework.workbench.observers import (ObserverSet, RunEnd, RunObserver, RunStart, SolverEnd, StageEnd,
                                    TensorBoardObserver)
from du_framework.registry import BUILTIN_PLUGIN, get_registry, plugin_registered

from cli_helpers import one_error_line, run
from core_plugin import core_plugin  # noqa: F401 - the fixture

DOCS = Path(__file__).resolve().parent.parent / "docs"


class Recorder(RunObserver):
    """Keeps every call, in order, in a class attribute (``--observe`` constructs its own instance)."""

    name = "recorder"
    description = "records every call"
    events: list = []

    def on_run_start(self, run):
        Recorder.events.append(("start", run))

    def on_stage_end(self, stage):
        assert not isinstance(stage.losses, jax.core.Tracer)  # on the host, never while tracing
        Recorder.events.append(("stage", stage))

    def on_solver_end(self, solver):
        Recorder.events.append(("solver", solver))

    def on_run_end(self, run):
        Recorder.events.append(("end", run))


class Boom(RunObserver):
    """Raises at the first stage end; counts every call that reaches it."""

    name = "boom"
    calls: list = []

    def on_stage_end(self, stage):
        Boom.calls.append("stage")
        raise RuntimeError("boom")

    def on_solver_end(self, solver):
        Boom.calls.append("solver")

    def on_run_end(self, run):
        Boom.calls.append("end")


class ObserverPlugin:
    @staticmethod
    @hookimpl
    def register_observers(register):
        register(Recorder)
        register(Boom)


@pytest.fixture
def observers(core_plugin):
    Recorder.events, Boom.calls = [], []
    with plugin_registered(ObserverPlugin, "observer-tests"):
        yield


def schedule_stages(*overrides):
    """``(active_depth, steps)`` of each stage, from the schedule itself (not from the training loop)."""
    config = load_config(None, list(overrides), experiment="small")
    return [(stage.active_depth, stage.steps)
            for stage in build_schedule(config).stages(config.train.depth, config.train.steps_per_stage)]


# --- TensorBoard event files, read without TensorBoard: TFRecord framing with masked CRC-32C ---------

def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """``{tag: {step: value}}`` of the event files directly in ``folder`` (every record's CRCs checked)."""
    from tensorboardX.proto import event_pb2

    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    scalars: dict[str, dict[int, float]] = {}
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    for path in files:
        data, at = path.read_bytes(), 0
        while at < len(data):
            header = data[at:at + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc(header)
            body = data[at + 12:at + 12 + length]
            assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked_crc(body)
            at += 16 + length
            event = event_pb2.Event.FromString(body)
            for value in event.summary.value:
                is_text = value.metadata.plugin_data.plugin_name == "text"
                scalars.setdefault(value.tag, {})[event.step] = "text" if is_text else value.simple_value
    return scalars


# --- the command line --------------------------------------------------------------------------

def test_compare_tells_observers_in_order_and_disables_a_failing_one_once(observers, tmp_path, capsys):
    out = tmp_path / "run"
    assert run("compare", "--experiment", "small", "--set", "train.depth=3", "--out", out, "--no-plots",
               "--no-progress", "--observe", "recorder,boom,tensorboard") == 0
    printed = capsys.readouterr()
    err = printed.err
    wrote = next(line for line in printed.out.splitlines() if line.startswith("wrote "))
    assert "tensorboard/" in wrote and "checkpoints/" in wrote, "the wrote line lists every folder written"
    assert f"tensorboard --logdir {out / 'tensorboard'}" in printed.out, "how to view them"
    warnings = [line for line in err.splitlines() if "observer" in line]
    assert warnings == ["unfold: warning: observer 'boom' (plugin 'observer-tests') failed at a stage end "
                        "(RuntimeError: boom); it is disabled for the rest of this run, which goes on"]
    assert Boom.calls == ["stage"]  # never called again

    events = Recorder.events
    stages = schedule_stages("train.depth=3")
    assert [kind for kind, _ in events] == ["start"] + ["stage"] * len(stages) + ["solver", "solver", "end"]
    start = events[0][1]
    assert (start.command, start.solvers, start.stages) == ("compare", ["learned", "gd"], stages)
    assert start.target == out and start.folder.parent == out.parent and start.folder.name.startswith(".run.")
    assert start.problem["name"] == "conformance-least-squares" and start.config.train.depth == 3

    with open(out / "training.csv") as handle:
        history = [float(row["loss"]) for row in csv.DictReader(handle) if row["solver"] == "learned"]
    first_step = 0
    for number, ((_, stage), (depth, steps)) in enumerate(zip(events[1:], stages), 1):
        assert (stage.label, stage.stage, stage.stages, stage.active_depth) == ("learned", number, len(stages), depth)
        assert isinstance(stage.losses, np.ndarray) and stage.losses.shape == (1, steps)
        assert stage.first_step == first_step
        np.testing.assert_allclose(stage.losses[0], history[first_step:first_step + steps], rtol=1e-6)
        first_step += steps

    results = json.loads((out / "results.json").read_text())["solvers"]
    learned, gd = events[-3][1], events[-2][1]
    assert (learned.label, learned.position, learned.trained, learned.primary) == ("learned", (1, 2), True, "mse")
    assert (gd.label, gd.position, gd.trained, gd.seeds) == ("gd", (2, 2), False, [])
    np.testing.assert_allclose(learned.metrics["mse"], results["learned"]["metrics"]["mse"], rtol=1e-12)

    end = events[-1][1]
    assert end.status == "complete" and end.results == results
    assert {"results.json", "config.toml", "checkpoints/learned.npz"} <= set(end.files)
    assert all((out / name).is_file() for name in end.files)  # published with the run
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    board = sorted(name for name in manifest if name.startswith("tensorboard/"))
    assert board and set(board) <= set(end.files)

    # The TensorBoard files: the training loss of every step, each stage's mean, every metric per iteration.
    scalars = read_scalars(out / "tensorboard" / "learned")
    assert scalars["train/loss"] == pytest.approx(dict(enumerate(history, 1)), rel=1e-6)
    ends = np.cumsum([steps for _, steps in stages])
    means = [np.mean(history[end - steps:end]) for end, (_, steps) in zip(ends, stages)]
    assert scalars["train/stage_loss"] == pytest.approx(dict(zip(ends.tolist(), means)), rel=1e-5)
    for metric in ("mse", "nmse_db"):
        assert scalars[f"eval/{metric}"] == pytest.approx(dict(enumerate(results["learned"]["metrics"][metric], 1)),
                                                        rel=1e-6)
    classical = read_scalars(out / "tensorboard" / "gd")
    assert set(classical) == {"eval/mse", "eval/nmse_db"}
    assert read_scalars(out / "tensorboard") == {"config/text_summary": {0: "text"}}


def test_train_tells_observers_with_the_checkpoints_written(observers, tmp_path):
    out = tmp_path / "trained"
    assert run("train", "--experiment", "small", "--set", "train.depth=3", "--out", out, "--no-progress",
               "--observe", "recorder") == 0
    events = Recorder.events
    stages = schedule_stages("train.depth=3")
    assert [kind for kind, _ in events] == ["start"] + ["stage"] * len(stages) + ["solver", "end"]
    assert events[0][1].command == "train"
    solver, end = events[-2][1], events[-1][1]
    assert (solver.label, solver.position, solver.metrics, solver.primary) == ("learned", (1, 1), {}, None)
    stage_means = np.mean(events[-3][1].losses)  # the last stage has one chunk: its mean is the final loss
    assert solver.final_loss == pytest.approx(stage_means, rel=1e-6)
    assert end.status == "complete" and end.results["learned"]["checkpoint"] == "checkpoints/learned.npz"
    assert "checkpoints/learned.npz" in end.files and (out / "checkpoints" / "learned.npz").is_file()


def test_an_unknown_observer_is_refused_before_the_run(observers, tmp_path, capsys):
    out = tmp_path / "never"
    assert run("compare", "--experiment", "small", "--out", out, "--observe", "tensorbord") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "unknown observer 'tensorbord'" in line and "did you mean 'tensorboard'" in line and "recorder" in line
    assert not out.exists() and Recorder.events == []


def test_the_tensorboard_observer_names_the_extra_when_tensorboardx_is_missing(observers, monkeypatch, tmp_path,
                                                                                 capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX raises ImportError
    with pytest.raises(ConfigError, match=re.escape("pip install 'du-framework[tensorboard]'")):
        TensorBoardObserver()
    assert run("compare", "--experiment", "small", "--out", tmp_path / "never", "--observe", "tensorboard") == 2
    assert "needs tensorboardX" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "never").exists()


def test_unfold_list_shows_the_observers(observers, capsys):
    assert run("list") == 0
    printed = capsys.readouterr().out
    assert re.search(r"^Observers \(unfold compare --observe NAME\):\n(  .*\n)*  tensorboard +"
                     r"\[du-framework \(built-in\)\] +TensorBoard event files", printed, re.M)
    assert re.search(r"^  recorder +\[observer-tests\] +records every call$", printed, re.M)
    assert run("list", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["observers"]["recorder"] == {"plugin": "observer-tests", "description": "records every call"}
    assert listing["observers"]["tensorboard"]["plugin"] == BUILTIN_PLUGIN


# --- Python ------------------------------------------------------------------------------------

def test_observers_in_python_see_every_seed_and_the_run_end(observers, tmp_path):
    config = load_config(None, ["train.depth=3", "train.seeds=2"], experiment="small")
    board = TensorBoardObserver(logdir=tmp_path / "tb", max_points=7)
    comparison = run_comparison(config, observers=[Recorder(), board], progress=False)
    seeds = list(config.train.seed_list())
    stages = schedule_stages("train.depth=3", "train.seeds=2")
    learned = comparison.results["learned"]
    history = np.stack([h.loss for h in learned.losses.values()])
    events = Recorder.events
    assert [kind for kind, _ in events] == ["start"] + ["stage"] * len(stages) + ["solver", "solver", "end"]
    for (_, stage), (_, steps) in zip(events[1:], stages):
        assert stage.seeds == seeds and stage.losses.shape == (2, steps)
        np.testing.assert_array_equal(stage.losses, history[:, stage.first_step:stage.first_step + steps])
    end = events[-1][1]
    assert end.status == "complete" and end.folder is None and end.files == []
    assert end.results["learned"]["seeds"] == seeds and set(end.results) == {"learned", "gd"}

    # With max_points 7 over 60 steps, every 9th step and the last of each stage, per seed.
    total = sum(steps for _, steps in stages)
    kept = sorted(set(range(9, total + 1, 9)) | set(np.cumsum([steps for _, steps in stages]).tolist()))
    for row, seed in enumerate(seeds):
        losses = read_scalars(tmp_path / "tb" / "learned" / f"seed-{seed}")["train/loss"]
        assert losses == pytest.approx({step: history[row, step - 1] for step in kept}, rel=1e-6)
    summary = read_scalars(tmp_path / "tb" / "learned")
    assert summary["eval/mse"] == pytest.approx(dict(enumerate(learned.metrics["mse"], 1)), rel=1e-6)


def synthetic_run(observer_set: ObserverSet, stages: int = 3) -> None:
    """Drive ``observer_set`` through a run without training."""
    observer_set.run_start(config=None, problem={"name": "p"}, solvers=["a"], seeds=[0], stages=[(1, 2)] * stages)
    for number in range(1, stages + 1):
        observer_set.stage_end(StageEnd("a", [0], number, stages, 1, 2 * (number - 1), np.ones((1, 2))))
    observer_set.solver_end(SolverEnd("a", (1, 1), True, [0], {}, None, 1.0, 0.1))
    observer_set.run_end(status="complete")


def test_a_raising_observer_warns_once_naming_it_and_the_others_go_on():
    Recorder.events, Boom.calls = [], []

    class Quits(RunObserver):
        name = "quits"

        def on_run_start(self, run):
            sys.exit(3)

    with pytest.warns(RuntimeWarning) as caught:
        synthetic_run(ObserverSet([Boom(), Quits(), Recorder()]))
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 2
    assert messages[0].startswith(f"observer 'quits' (module '{__name__}') failed at run start (SystemExit(3))")
    assert messages[1].startswith(f"observer 'boom' (module '{__name__}') failed at a stage end "
                                  f"(RuntimeError: boom)")
    assert Boom.calls == ["stage"]
    assert [kind for kind, _ in Recorder.events] == ["start", "stage", "stage", "stage", "solver", "end"]


def test_an_observer_set_refuses_what_is_not_an_observer():
    with pytest.raises(TypeError, match="must be a du_framework.RunObserver instance"):
        ObserverSet([object()])


# --- the hook's validation -----------------------------------------------------------------------

class NotAnObserver:
    name = "not-an-observer"


class NeedsArgument(RunObserver):
    name = "needs-argument"

    def __init__(self, project):
        self.project = project


class NoEventArgument(RunObserver):
    name = "no-event"

    def on_stage_end(self):
        pass


class Nameless(RunObserver):
    pass


@pytest.mark.parametrize("registered, reason", [
    (NotAnObserver, r"as an observer; it must be a subclass of du_framework.RunObserver"),
    (NeedsArgument, r"observer 'needs-argument' .*: it must be constructible without arguments"),
    (NoEventArgument, r"observer 'no-event' .*: on_stage_end\(self\) does not match the contract "
                      r"on_stage_end\(self, event\)"),
    (Nameless, r"observer class .*Nameless has no 'name' class attribute"),
])
def test_a_plugin_registering_a_bad_observer_is_named_and_skipped(core_plugin, registered, reason):
    class Broken:
        @staticmethod
        @hookimpl
        def register_observers(register):
            register(registered)

    with plugin_registered(Broken, "broken-observers"), pytest.warns(RuntimeWarning, match="'broken-observers' "
                                                                                          "was skipped"):
        registry = get_registry()
    assert re.search(reason, registry.failures["broken-observers"])
    assert registry.names("observer") == ["tensorboard"]


# --- docs/observers.md -------------------------------------------------------------------------

def blocks(info_word: str) -> list[tuple[str, str]]:
    text = (DOCS / "observers.md").read_text()
    return [(info, code) for info, code in re.findall(r"```python([^\n]*)\n(.*?)```", text, re.S)
            if info_word in info]


def test_the_docs_custom_observer_example_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("DU_PLUGINS", "")
    monkeypatch.chdir(tmp_path)
    (code,) = [code for info, code in blocks("run") if "run" in info.split()]
    namespace = {}
    exec(compile(code, "docs/observers.md", "exec"), namespace)
    lines = namespace["log"].lines
    assert [line.split(" (depth")[0] for line in lines[:4]] == [f"learned stage {n}/4" for n in range(1, 5)]
    assert lines[4] == f"learned: mse {namespace['comparison'].results['learned'].metrics['mse'][-1]:.3e}"


class Recording:
    """A stand-in module that records every call made through it (``wandb``, ``mlflow``)."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self
        return call


class WandbRun(Recording):
    def __init__(self):
        super().__init__()
        self.summary = {}


def test_the_docs_tracker_examples_run_against_stub_modules(monkeypatch, tmp_path, observers):
    config = load_config(None, ["train.depth=3"], experiment="small")
    wandb_run, mlflow = WandbRun(), Recording()
    wandb = types.SimpleNamespace(init=lambda **kwargs: (wandb_run.calls.append(("init", (), kwargs)), wandb_run)[1])
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    found = {}
    for info, code in blocks("stub="):
        namespace = {}
        exec(compile(code, "docs/observers.md", "exec"), namespace)
        found[re.search(r"stub=(\w+)", info)[1]] = next(value for value in namespace.values()
                                                         if isinstance(value, type) and issubclass(value, RunObserver)
                                                         and value is not RunObserver)
    assert set(found) == {"wandb", "mlflow"}
    losses = np.array([[1.0, 3.0]])
    events = (RunStart("compare", config, {"name": "p"}, ["learned"], [0], [(1, 2)], tmp_path, tmp_path / "run"),
              StageEnd("learned", [0], 1, 1, 1, 0, losses),
              SolverEnd("learned", (1, 1), True, [0], {"mse": np.array([0.5, 0.25])}, "mse", 2.0, 0.1),
              RunEnd("complete", {}, [], tmp_path, tmp_path / "run"))
    for cls in found.values():
        observer = cls()
        for method, event in zip(("on_run_start", "on_stage_end", "on_solver_end", "on_run_end"), events):
            getattr(observer, method)(event)
    assert wandb_run.calls[0] == ("init", (), {"project": "du-framework", "config": config.to_dict(),
                                               "dir": str(tmp_path)})
    assert wandb_run.calls[1] == ("log", ({"learned/stage_loss": 2.0, "learned/active_depth": 1},), {})
    assert wandb_run.summary == {"learned/mse": 0.25} and wandb_run.calls[-1] == ("finish", (), {"exit_code": 0})
    names = [name for name, _, _ in mlflow.calls]
    assert names == ["start_run", "log_params", "log_metric", "log_metric", "log_artifacts", "end_run"]
    assert mlflow.calls[1][1][0]["train.depth"] == 3
    assert mlflow.calls[2] == ("log_metric", ("learned.stage_loss", 2.0), {"step": 2})
    assert mlflow.calls[3] == ("log_metric", ("learned.mse", 0.25), {})
    assert mlflow.calls[4] == ("log_artifacts", (str(tmp_path),), {})
    assert mlflow.calls[5] == ("end_run", (), {"status": "FINISHED"})
