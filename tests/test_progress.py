"""What a person sees while a run trains: compile status, bar or plain lines, "solver k of n", summaries.

Each training run here costs a compilation (about 2 s), so the tests share runs where they can.
"""

import io
import json
import re

import pytest

from du_framework.workbench.compare import build_problem, build_schedule, build_solver
from du_framework.workbench.config import load_config
from du_framework.engine import host, train
from du_framework.engine.progress import DEFAULT_INTERVAL, progress_interval
from du_framework.workbench.display import ProgressDisplay
from du_framework.errors import ConfigError

from cli_helpers import run
from core_plugin import core_plugin  # noqa: F401 - the fixture

LINE = re.compile(r"^training learned \(solver 2 of 5\): stage (\d+)/(\d+), depth (\d+), step (\d+)/(\d+), "
                  r"loss (\S+), (\d+\.\d) s$")


@pytest.fixture
def small(core_plugin):
    """The core tests' small experiment at depth 3: (config, problem, learned solver, schedule's stages)."""
    config = load_config(None, ["train.depth=3"], experiment="small")
    problem = build_problem(config)
    solver = build_solver(config.solvers[0], problem, config.train.depth)
    stages = list(build_schedule(config).stages(config.train.depth, config.train.steps_per_stage))
    return config, problem, solver, stages


def train_spied(small, display, monkeypatch):
    """Train the small experiment's learned solver; also what ``display`` showed at the first compiled call."""
    config, problem, solver, _ = small
    stream, seen = display._stream, []
    original = host.run_chunk

    def spying(*args, **kwargs):
        seen.append(stream.getvalue())
        return original(*args, **kwargs)

    monkeypatch.setattr(host, "run_chunk", spying)
    result = train(solver, problem, build_schedule(config), config.train, key=0, progress=display, label="learned")
    return result, seen[0]


def test_on_a_non_terminal_every_line_is_plain_and_names_stage_step_loss_and_time(small, monkeypatch):
    config, _, _, stages = small
    display = ProgressDisplay(stream=io.StringIO(), interactive=False, interval=0, position=(2, 5))
    result, before_first_call = train_spied(small, display, monkeypatch)
    printed = display._stream.getvalue()
    assert "\r" not in printed and printed.endswith("\n")
    total = sum(stage.steps for stage in stages)
    first, *lines = printed.splitlines()
    assert before_first_call == first + "\n" == f"compiling learned (solver 2 of 5) ({total} steps)\n"
    # interval 0: one line after every compiled call, a chunk of at most train.chunk_size steps of one stage
    chunk = min(config.train.chunk_size, max(stage.steps for stage in stages))
    expected, done = [], 0
    for number, stage in enumerate(stages, 1):
        for end in range(chunk, stage.steps + chunk, chunk):
            expected.append((number, stage.active_depth, done + min(end, stage.steps)))
        done += stage.steps
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(int(m[1]), int(m[3]), int(m[4])) for m in parsed] == expected
    assert {(int(m[2]), int(m[5])) for m in parsed} == {(len(stages), total)}
    # the loss shown is the loss of the step the line names
    assert [m[6] for m in parsed] == [f"{result.losses[int(m[4]) - 1]:.3e}" for m in parsed]


def test_on_a_terminal_the_compile_status_comes_first_then_a_bar_that_stays(small, monkeypatch):
    display = ProgressDisplay(stream=io.StringIO(), interactive=True)
    _, before_first_call = train_spied(small, display, monkeypatch)
    assert before_first_call == "\rcompiling learned..."
    printed = display._stream.getvalue()
    last = printed.rstrip("\n").rsplit("\r", 1)[1]
    assert last.startswith("training learned: 100%") and "60/60" in last and "stage 3/3, depth 3, loss" in last
    assert printed.endswith("\n")  # not erased


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("interval, stamps, lines", [
    (10.0, [1, 2, 3, 4], ["compiling x (4 steps)", "training x: stage 2/2, depth 2, step 4/4, loss 4.000e+00, 4.0 s"]),
    (2.5, [1, 3, 3.5, 7], ["compiling x (4 steps)", "training x: stage 1/2, depth 1, step 2/4, loss 2.000e+00, 3.0 s",
                           "training x: stage 2/2, depth 2, step 4/4, loss 4.000e+00, 7.0 s"]),
])
def test_plain_lines_come_every_interval_and_at_the_end(monkeypatch, interval, stamps, lines):
    clock = Clock()
    monkeypatch.setattr("du_framework.engine.progress.time.monotonic", clock)
    stream = io.StringIO()
    display = ProgressDisplay(stream=stream, interactive=False, interval=interval)
    display.start(4, "x")
    for step, stamp in enumerate(stamps, 1):
        if step in (1, 3):
            display.stage((step + 1) // 2, 2, (step + 1) // 2)
        clock.now = 1000.0 + stamp
        display.advance(1, float(step))
        if step in (2, 4):
            display.stage_end(step // 2, 2, step // 2, [])
    display.close()
    assert stream.getvalue().splitlines() == lines


def test_the_cli_shows_progress_and_summaries_on_stderr_unless_no_progress(core_plugin, tmp_path, capsys):
    base = ["compare", "--experiment", "small", "--set", "train.depth=3", "--no-plots"]
    assert run(*base, "--out", tmp_path / "shown") == 0
    shown = capsys.readouterr()
    results = json.loads((tmp_path / "shown" / "results.json").read_text())["solvers"]
    assert "\r" not in shown.err  # captured: not a terminal, so plain lines
    assert re.search(r"^compiling learned \(solver 1 of 2\) \(60 steps\)$", shown.err, re.M)
    assert re.search(r"^training learned \(solver 1 of 2\): stage 3/3, depth 3, step 60/60, ", shown.err, re.M)
    summary = re.search(r"^learned \(solver 1 of 2\): MSE (\S+) at t=3; trained in (\S+) s \(compile (\S+) s\), "
                        r"final training loss (\S+)$", shown.err, re.M)
    assert summary, shown.err
    learned = results["learned"]
    assert summary[1] == f"{learned['metrics']['mse'][-1]:.3e}" != f"{learned['metrics']['mse'][0]:.3e}"
    assert summary[2] == f"{learned['train_seconds']:.2f}" and summary[3] == f"{learned['compile_seconds']:.2f}"
    assert float(summary[4]) == pytest.approx(learned["final_loss"], rel=1e-3)
    gd = f"{results['gd']['metrics']['mse'][-1]:.3e}"
    assert re.search(rf"^gd \(solver 2 of 2\): MSE {gd} at t=3; classical, nothing to train$", shown.err, re.M)
    assert shown.err.index("learned (solver 1 of 2): MSE") < shown.err.index("gd (solver 2 of 2)")

    assert run(*base, "--out", tmp_path / "hidden", "--no-progress") == 0
    hidden = capsys.readouterr()
    assert "compiling" not in hidden.err and "solver 1 of 2" not in hidden.err and "training" not in hidden.err
    assert hidden.out.splitlines()[:2] == shown.out.splitlines()[:2]  # the results are printed either way


def test_the_progress_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("DU_PROGRESS_INTERVAL", raising=False)
    assert progress_interval() == DEFAULT_INTERVAL == 10.0
    monkeypatch.setenv("DU_PROGRESS_INTERVAL", "2.5")
    assert progress_interval() == 2.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("DU_PROGRESS_INTERVAL", bad)
        with pytest.raises(ConfigError, match="DU_PROGRESS_INTERVAL must be a number of seconds >= 0"):
            progress_interval()


def test_progress_parts_give_every_event_to_every_part_and_isolate_a_failing_one():
    from du_framework.engine.progress import Progress, ProgressParts

    class Recorder(Progress):
        def __init__(self, fail=()):
            self.seen, self.fail = [], fail

        def _note(self, event, *args):
            self.seen.append((event, *args))
            if event in self.fail:
                raise RuntimeError(f"{event} failed")

        def start(self, total, label):
            self._note("start", total, label)

        def stage(self, number, stages, depth):
            self._note("stage", number, stages, depth)

        def advance(self, steps, loss):
            self._note("advance", steps, loss)

        def stage_end(self, number, stages, depth, losses):
            self._note("stage_end", number, stages, depth)

        def close(self):
            self._note("close")

    broken, healthy, quiet = Recorder(fail=("advance", "close")), Recorder(), Progress()
    parts = ProgressParts(broken, quiet, healthy)
    parts.start(4, "x")
    parts.stage(1, 1, 2)
    with pytest.raises(RuntimeError, match="advance failed"):  # raised once the others have had it
        parts.advance(4, 0.5)
    parts.stage_end(1, 1, 2, [])
    with pytest.raises(RuntimeError, match="close failed"):
        parts.close()
    expected = [("start", 4, "x"), ("stage", 1, 1, 2), ("advance", 4, 0.5), ("stage_end", 1, 1, 2), ("close",)]
    assert broken.seen == healthy.seen == expected


def test_the_engine_alone_shows_plain_lines_and_never_a_bar(small, monkeypatch):
    import sys

    from du_framework.engine.progress import PlainLines, as_progress

    assert isinstance(as_progress(True), PlainLines) and type(as_progress(False)).__name__ == "Progress"
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    config, problem, solver, _ = small
    train(solver, problem, build_schedule(config), config.train, key=0, label="learned")
    assert stream.getvalue().startswith("compiling learned (60 steps)\n") and "\r" not in stream.getvalue()
