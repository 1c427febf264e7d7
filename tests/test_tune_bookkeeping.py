"""``unfold tune --rate-grid N``: what the grid's trials, the baseline and the sampler's trials leave in the
printed lines, ``tune.json`` and ``trials.csv`` (numbered as they ran, no trial that never ran, real durations),
and the docs' example printing what the docs show."""

import csv
import importlib.metadata
import re
import shlex
import time
from pathlib import Path

import pytest

from du_framework.options import Tunable
from du_framework.registry import plugin_registered
from du_framework.workbench.config import load_config
from du_framework.workbench.tuning import tune

import core_plugin as core_plugin_module
from cli_helpers import run

DOCS = Path(__file__).resolve().parent.parent / "docs" / "tuning.md"
OVERRIDES = ("train.depth=3", "train.steps_per_stage=4", "evaluation.batches=1")


@pytest.fixture
def plugins():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DU_PLUGINS", "")
        with plugin_registered(core_plugin_module, "core-tests"):
            yield


def small():
    return load_config(experiment="small", overrides=list(OVERRIDES))


def test_grid_trials_come_first_then_the_configuration_as_given_then_the_sampler(plugins):
    lines = []
    result = tune(small(), trials=4, labels=["learned"], seed=1, rate_grid=2, pruning=False, log=lines.append)
    trials = result.searches["learned"].trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.baseline for t in trials] == [False, False, True, False]
    assert trials[2].params["lr"] == small().solver("learned").options.lr  # the configured rate
    printed = [int(m.group(1)) for line in lines if (m := re.match(r"learned trial (\d+) ", line))]
    assert printed == [0, 1, 2, 3], lines  # the printed numbers are the records', in the order they ran
    assert any(line.startswith("learned trial 2 (3 of 4)") for line in lines), lines


def test_a_grid_that_fills_the_budget_leaves_no_trial_that_never_ran(plugins, tmp_path, capsys):
    out = tmp_path / "tuned"
    assert run("tune", "--experiment", "small", *[a for o in OVERRIDES for a in ("--set", o)], "--only", "learned",
               "--trials", "2", "--rate-grid", "2", "--out", out) == 0
    err = capsys.readouterr().err
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [(r["number"], r["state"] in ("complete", "pruned")) for r in rows] == [("0", True), ("1", True)], rows
    assert "the rate grid fills the 2 trials" in err, err  # said, since the configuration as given never runs


def test_grid_trials_record_their_share_of_the_ensemble_time(plugins):
    started = time.perf_counter()
    result = tune(small(), trials=3, labels=["learned"], seed=1, rate_grid=3, baseline=False, pruning=False,
                  space={"solvers.learned.lr": Tunable(1e-3, 1.0, log=True)})
    elapsed = time.perf_counter() - started
    durations = [t.duration for t in result.searches["learned"].trials]
    assert all(d is not None and d > 0 for d in durations), durations
    assert sum(durations) <= elapsed  # shares of one ensemble's time, not the ensemble's time three times


def _shown_grid(text: str) -> tuple[str, list[str]]:
    """The docs' rate-grid console example: (the command, the trial lines it shows)."""
    block = next(b for b in re.findall(r"```console\n(.*?)```", text, re.S) if "--rate-grid" in b)
    command, shown = [], []
    for line in block.splitlines():
        if line.startswith("$ ") or (command and command[-1].endswith("\\")):
            command.append(line.removeprefix("$ "))
        elif line.strip() and line.strip() != "...":
            shown.append(line)
    return " ".join(part.rstrip("\\").strip() for part in command), shown


LINE = re.compile(r"^(?P<head>\S+ trial \d+ \(rate grid, factor [^)]+\)): (?P<outcome>.*?)  (?P<params>\S+=.*)$")


def test_the_docs_rate_grid_example_prints_what_the_docs_show(capsys, monkeypatch, tmp_path):
    """The command of docs/tuning.md's rate-grid example, run as written: every line the docs show is printed,
    in order, with the same trial numbers, factors, settings and outcomes (a metric value within 2%, for other
    CPUs' rounding; a divergence at the same stage and step)."""
    if "du-gd-ridge" not in {ep.name for ep in importlib.metadata.entry_points(group="du_framework")}:
        pytest.skip("the example tunes the reference experiment: plugin du-gd-ridge is not installed")
    command, shown = _shown_grid(DOCS.read_text())
    argv = shlex.split(command)
    assert argv[:2] == ["unfold", "tune"] and shown, command
    monkeypatch.chdir(tmp_path)
    assert run(*argv[1:], "--out", tmp_path / "grid") == 0
    printed = [line for line in capsys.readouterr().err.splitlines() if LINE.match(line)]
    assert len(printed) >= len(shown)
    for want, got in zip(shown, printed):
        w, g = LINE.match(want), LINE.match(got)
        assert w is not None, f"the docs show a line the test cannot read: {want!r}"
        assert (g["head"], g["params"]) == (w["head"], w["params"]), (want, got)
        if w["outcome"].startswith("diverged"):
            assert g["outcome"] == w["outcome"], (want, got)
        else:
            name, value = w["outcome"].rsplit(" ", 1)
            assert g["outcome"].startswith(name + " "), (want, got)
            assert float(g["outcome"].rsplit(" ", 1)[1]) == pytest.approx(float(value), rel=0.02), (want, got)
