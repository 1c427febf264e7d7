"""The example experiments the plugins ship run end to end (shortened), as a user runs them:
``unfold compare --experiment NAME``. They are package data of their plugins, registered as experiments."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each example experiment, its plugin (which ships it as package data) and the overrides that shorten it.
SHORTEN = {
    "sparse-recovery": ["problem.n=40", "problem.m=20"],
    "linear-system": ["problem.n=16"],
    "ridge-theory": ["problem.n=10", "problem.m=20"],
}
PLUGIN = {"sparse-recovery": "du-sparse", "linear-system": "du-linear-systems", "ridge-theory": "du-gd-ridge"}


def _installed() -> set[str]:
    import importlib.metadata

    return {ep.name for ep in importlib.metadata.entry_points(group="du_framework")}


def test_the_three_families_have_an_example():
    if not set(PLUGIN.values()) <= _installed():
        pytest.skip("the plugins under plugins/ are not all installed")
    from du_framework.registry import get_registry

    registry = get_registry()
    for name, plugin in PLUGIN.items():
        assert registry.plugin_of("experiment", name) == plugin
    assert not (ROOT / "examples").exists(), "the examples ship with their plugins (unfold examples)"


@pytest.mark.parametrize("name", sorted(SHORTEN))
def test_example_runs_and_reports_every_metric(name, tmp_path):
    import tomllib

    from du_framework.registry import get_registry

    if PLUGIN[name] not in _installed():
        pytest.skip(f"the plugin {PLUGIN[name]} (which ships {name}) is not installed")
    registry = get_registry()
    example = tomllib.loads(registry.experiment(name).config)
    missing = [n for kind, n in [("problem", example["problem"]["name"])]
               + [("solver", entry["name"]) for entry in example["solvers"]] if n not in registry.entries[kind]]
    if missing:
        pytest.skip(f"{name} needs plugins that are not installed (for {', '.join(missing)})")
    overrides = SHORTEN[name] + ["train.depth=4", "train.steps_per_stage=3", "train.batch_size=8",
                                      "evaluation.batches=1", "evaluation.batch_size=16"]
    args = [sys.executable, "-m", "du_framework", "compare", "--experiment", name, "--out", str(tmp_path),
            "--no-progress", "--no-plots"]
    for override in overrides:
        args += ["--set", override]
    env = {key: value for key, value in os.environ.items() if key != "DU_PLUGINS"}
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    labels = [solver["label"] for solver in results["config"]["solvers"]]
    assert list(results["solvers"]) == labels and len(labels) >= 3
    metrics = list(results["metrics"])
    assert results["primary_metric"] in metrics
    for result in results["solvers"].values():
        assert list(result["metrics"]) == metrics
        for curve in result["metrics"].values():
            assert len(curve) == 4 and np.all(np.isfinite(curve))
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["solver", "iteration", *metrics] and len(rows) == 4 * len(labels)


def test_with_one_non_reference_plugin_its_example_runs_and_a_bare_compare_says_what_to_do(tmp_path):
    import importlib.metadata

    if "du-sparse" not in {ep.name for ep in importlib.metadata.entry_points(group="du_framework")}:
        pytest.skip("the du-sparse plugin is not installed")
    env = dict(os.environ, DU_PLUGINS="du-sparse")
    base = [sys.executable, "-m", "du_framework"]
    listing = subprocess.run(base + ["list", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert listing.returncode == 0, listing.stderr
    listed = json.loads(listing.stdout)
    assert set(listed["problems"]) == {"sparse-recovery"} and "dugd" not in listed["solvers"]
    assert set(listed["experiments"]) == {"sparse-recovery"}
    args = base + ["compare", "--experiment", "sparse-recovery", "--out", str(tmp_path / "a"), "--no-progress",
                   "--no-plots"]
    for override in SHORTEN["sparse-recovery"] + ["train.depth=3", "train.steps_per_stage=2", "train.batch_size=8",
                                                  "evaluation.batches=1", "evaluation.batch_size=8"]:
        args += ["--set", override]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    bare = subprocess.run(base + ["compare", "--out", str(tmp_path / "b")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert bare.returncode == 2 and "Traceback" not in bare.stderr
    assert "--config" in bare.stderr and "default experiment" in bare.stderr
