"""The example configurations run end to end with the installed plugins (shortened), as a user runs them."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))

SHORTEN = {
    "sparse_recovery": ["problem.n=40", "problem.m=20"],
    "linear_system": ["problem.n=16"],
    "ridge_theory": ["problem.n=10", "problem.m=20"],
}


def test_the_three_families_have_an_example():
    assert {path.stem for path in EXAMPLES} == set(SHORTEN)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_reports_every_metric(path, tmp_path):
    import tomllib

    from du_framework.registry import get_registry

    example = tomllib.loads(path.read_text())
    registry = get_registry()
    missing = [name for kind, name in [("problem", example["problem"]["name"])]
               + [("solver", entry["name"]) for entry in example["solvers"]] if name not in registry.entries[kind]]
    if missing:
        pytest.skip(f"{path.name} needs plugins that are not installed (for {', '.join(missing)})")
    overrides = SHORTEN[path.stem] + ["train.depth=4", "train.steps_per_stage=3", "train.batch_size=8",
                                      "evaluation.batches=1", "evaluation.batch_size=16"]
    args = [sys.executable, "-m", "du_framework", "compare", "--config", str(path), "--out", str(tmp_path),
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
    args = base + ["compare", "--config", str(ROOT / "examples" / "sparse_recovery.toml"), "--out", str(tmp_path / "a"),
                   "--no-progress", "--no-plots"]
    for override in SHORTEN["sparse_recovery"] + ["train.depth=3", "train.steps_per_stage=2", "train.batch_size=8",
                                                  "evaluation.batches=1", "evaluation.batch_size=8"]:
        args += ["--set", override]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    bare = subprocess.run(base + ["compare", "--out", str(tmp_path / "b")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert bare.returncode == 2 and "Traceback" not in bare.stderr
    assert "--config" in bare.stderr and "default experiment" in bare.stderr
