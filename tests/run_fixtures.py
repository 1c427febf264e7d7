"""Run folders for the loading, figures and views tests.

* :data:`SCHEMA2_RUN`: a real run folder of schema 2, written by ``unfold compare`` at commit
  d04165c (before seeds) with the core tests' plugin: ``--experiment small --set
  train.depth=5 --set train.steps_per_stage=2 --no-plots``. Kept as data so that the
  loader is checked against the format as it was written, whatever the current version writes.
* :func:`schema3_results` / :func:`write_schema3_run`: a schema-3 run built here with NumPy
  (three seeds, one diverged; a classical solver), with ``training.csv``, ``stages.csv`` and a
  manifest, so the expected numbers are known independently of the code under test.
* :func:`live_run` / :func:`train_run`: what the current ``unfold compare`` / ``unfold train``
  write (in process, with the core tests' plugin), made once per test process.
"""

from __future__ import annotations

import atexit
import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
SCHEMA2_RUN = TESTS / "data" / "schema2-run"
DEPTH = 6
SEEDS = [11, 12, 13]
STATUS = ["ok", "diverged", "ok"]


def per_seed_mse() -> np.ndarray:
    """(3 seeds, DEPTH) MSE curves: geometric decay at three rates; the second seed diverges (NaN from t=4)."""
    t = np.arange(1, DEPTH + 1)
    curves = np.stack([0.5 * 0.30**t, 0.5 * 0.9**t, 0.5 * 0.25**t])
    curves[1, 3:] = np.nan
    return curves


def schema3_results(*, depth: int = DEPTH) -> dict:
    """A schema-3 results dict: ``learned`` (3 seeds, seed 12 diverged) and ``gd`` (classical)."""
    mse = per_seed_mse()[:, :depth]
    energy = 2.0  # NMSE = MSE / energy, in dB
    nmse = 10 * np.log10(mse / energy)
    ok = np.array([s == "ok" for s in STATUS])
    gd_mse = 0.5 * 0.6 ** np.arange(1, depth + 1)
    # a curve that approaches the float32 resolution (about -138.5 dB)
    gd_nmse = np.linspace(-10.0, -130.0, depth)

    def finite(array):
        return [[None if not np.isfinite(v) else float(v) for v in row] for row in array]

    return {
        "schema_version": 3,
        "framework_version": "0.1.0",
        "created": "2026-11-29T12:00:00+00:00",
        "config": {"problem": {"name": "toy", "n": 4}, "train": {"depth": depth, "seed": 1, "seeds": SEEDS,
                                                                 "steps_per_stage": 2},
                   "evaluation": {"batch_size": 10, "batches": 1, "seed": 5},
                   "solvers": [{"name": "learned-gd", "label": "learned", "period": 2},
                               {"name": "constant-gd", "label": "gd", "step": 0.1}]},
        "problem": {"name": "toy", "dim": 4},
        "metrics": {"mse": {"label": "MSE", "lower_is_better": True, "scale": "linear", "normalized": False,
                            "log_axis": True, "format": ".3e"},
                    "nmse_db": {"label": "NMSE", "lower_is_better": True, "scale": "db", "normalized": True,
                                "log_axis": False, "format": ".2f"}},
        "primary_metric": "mse",
        "summary": {"center": "median", "spread": "min-max", "over": "seeds that did not diverge"},
        "train_seeds": SEEDS,
        "evaluation": {"seed": 5, "batch_size": 10, "batches": 1, "iterations": depth},
        "solvers": {
            "learned": {
                "name": "learned-gd", "options": {"period": 2},
                "metrics": {"mse": np.median(mse[ok], axis=0).tolist(), "nmse_db": np.median(nmse[ok], axis=0).tolist()},
                "spread": {"mse": {"low": mse[ok].min(axis=0).tolist(), "high": mse[ok].max(axis=0).tolist()},
                           "nmse_db": {"low": nmse[ok].min(axis=0).tolist(), "high": nmse[ok].max(axis=0).tolist()}},
                "params": {"eta": [0.11, 0.31]},
                "representative_seed": 11,
                "references": {"eta": {"best constant step": [0.5]}},
                "trainable": True, "seeds": SEEDS, "seed_status": STATUS,
                "per_seed": {"metrics": {"mse": finite(mse), "nmse_db": finite(nmse)},
                             "params": [{"eta": [0.11, 0.31]}, {"eta": [9.0, 9.0]}, {"eta": [0.13, 0.27]}],
                             "final_loss": [0.01, None, 0.02],
                             "diverged_at": [None, {"stage": 3, "step": 2}, None]},
                "train_seconds": 1.5, "compile_seconds": 0.5, "compilations": 1, "final_loss": 0.01,
                "loaded_from": None, "problem_mismatch": None},
            "gd": {
                "name": "constant-gd", "options": {"step": 0.1},
                "metrics": {"mse": gd_mse.tolist(), "nmse_db": gd_nmse.tolist()},
                "spread": None, "params": {"step": [0.1]}, "representative_seed": None, "references": {},
                "trainable": False, "seeds": [], "seed_status": [], "per_seed": None,
                "train_seconds": 0.0, "compile_seconds": 0.0, "compilations": 0, "final_loss": None,
                "loaded_from": None, "problem_mismatch": None},
        },
    }


def training_rows() -> list[list]:
    """training.csv rows of the schema-3 run: 3 stages x 2 steps per seed, loss 1/(step * seed)."""
    rows = []
    for seed in SEEDS:
        for step in range(1, 7):
            stage = (step + 1) // 2
            loss = float("nan") if seed == 12 and step > 4 else 1.0 / (step * seed)
            rows.append(["learned", seed, step, stage, stage, repr(loss)])
    return rows


def write_schema3_run(folder: Path, results: dict | None = None, *, history: bool = True,
                      manifest: bool = True) -> Path:
    """Write the schema-3 run into ``folder`` (created): results.json, config.json, CSVs, manifest.json."""
    from du_framework.workbench.report import strict_json
    from du_framework.workbench.runs import write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    results = results if results is not None else schema3_results()
    (folder / "results.json").write_text(strict_json(results))
    (folder / "config.json").write_text(strict_json(results["config"]))
    if history:
        with open(folder / "training.csv", "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["solver", "seed", "step", "stage", "active_depth", "loss"])
            writer.writerows(training_rows())
        with open(folder / "stages.csv", "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["solver", "seed", "stage", "active_depth", "steps", "mean_loss"])
            for seed in SEEDS:
                for stage in (1, 2, 3):
                    writer.writerow(["learned", seed, stage, stage, 2, repr(1.0 / (stage * seed))])
    if manifest:
        write_manifest(folder, {"status": "complete", "command": "test", "subcommand": "compare"})
    return folder


_CACHE: dict[str, Path] = {}


def _in_process(args: list[str]) -> int:
    """``unfold ARGS`` in this process with the core tests' plugin as the only plugin."""
    import sys

    import pytest

    import core_plugin
    from du_framework.cli import main
    from du_framework.registry import plugin_registered

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DU_PLUGINS", "")
        from du_framework import registry

        registry.reset()
        try:
            with plugin_registered(sys.modules[core_plugin.__name__], "core-tests"):
                return main(args)
        finally:
            registry.reset()


def _made(kind: str, args: list[str]) -> Path:
    if kind not in _CACHE:
        root = Path(tempfile.mkdtemp(prefix=f"du-{kind}-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        out = root / f"{kind}-run"
        code = _in_process([*args, "--out", str(out), "--no-progress"])
        assert code == 0, f"unfold {' '.join(args)} failed with {code}"
        _CACHE[kind] = out
    return _CACHE[kind]


def live_run() -> Path:
    """A run folder the current ``unfold compare`` writes (two seeds), made once per process."""
    return _made("compare", ["compare", "--experiment", "small", "--set", "train.depth=5",
                             "--set", "train.steps_per_stage=2", "--set", "train.seeds=2", "--no-plots"])


def train_run() -> Path:
    """A run folder the current ``unfold train`` writes, made once per process."""
    return _made("train", ["train", "--experiment", "small", "--set", "train.depth=5",
                           "--set", "train.steps_per_stage=2"])


def copy_run(source: Path, target: Path) -> Path:
    """A private copy of a run folder (to damage)."""
    shutil.copytree(source, target)
    os.chmod(target, 0o755)
    return target


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
