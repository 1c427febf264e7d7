"""Reports of a comparison: terminal/Markdown tables, results.json, results.csv,
config.json and plots (matplotlib, Agg backend). Every file is written atomically.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .atomic import atomic_write
from .compare import Comparison
from .interfaces import QuadraticProblem
from .theory import chebyshev_steps

__all__ = ["table_iterations", "format_table", "results_dict", "write_report", "RESULTS_SCHEMA_VERSION"]

RESULTS_SCHEMA_VERSION = 1


def table_iterations(depth: int) -> list[int]:
    """Iterations shown in the table: 1, 5, 10, 20, ... up to and including ``depth``."""
    marks = [1, 5, 10, 20, 30, 40, 50, 100, 200, 500, 1000]
    chosen = [t for t in marks if t < depth]
    return chosen + [depth]


def format_table(comparison: Comparison, *, markdown: bool = False, iterations: list[int] | None = None) -> str:
    """The problem's report metric (MSE, or NMSE in dB) at selected iterations, one row
    per solver, plus training time."""
    depth = comparison.config.train.depth
    iterations = iterations or table_iterations(depth)
    header = ["solver"] + [f"t={t}" for t in iterations] + ["train s"]
    in_db = comparison.problem.report_metric == "nmse_db"
    rows = []
    for label, result in comparison.results.items():
        seconds = "loaded" if result.loaded_from else (f"{result.train_seconds:.2f}" if result.trainable else "-")
        values = [f"{result.nmse_db[t - 1]:.2f}" if in_db else f"{result.mse[t - 1]:.3e}" for t in iterations]
        rows.append([label] + values + [seconds])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda row: "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in rows])


def results_dict(comparison: Comparison) -> dict[str, Any]:
    """The content of ``results.json`` (schema in docs/results.md)."""
    config = comparison.config
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "framework_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "problem": comparison.problem.describe(),
        "evaluation": {
            "seed": config.evaluation.seed,
            "batch_size": config.evaluation.batch_size,
            "batches": config.evaluation.batches,
            "iterations": config.train.depth,
            "metric": "mean over instances of ||x_target - x^(t)||^2, for t = 1..depth",
            "target_energy": comparison.target_energy,
            "report_metric": comparison.problem.report_metric,
        },
        "solvers": {label: result.to_dict() for label, result in comparison.results.items()},
    }


def _csv_text(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["solver", "iteration", "mse"])
    for label, result in comparison.results.items():
        for t, value in enumerate(result.mse, 1):
            writer.writerow([label, t, repr(float(value))])
    return buffer.getvalue()


def write_report(comparison: Comparison, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write results.json, results.csv, config.json and (with ``plots``) mse.png, params.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, text in (
        ("results.json", json.dumps(results_dict(comparison), indent=2, allow_nan=True)),
        ("results.csv", _csv_text(comparison)),
        ("config.json", json.dumps(comparison.config.to_dict(), indent=2)),
    ):
        with atomic_write(out / name) as handle:
            handle.write(text)
        written[name] = out / name
    if plots:
        written["mse.png"] = plot_mse(comparison, out / "mse.png")
        written["params.png"] = plot_params(comparison, out / "params.png")
    return written


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")
    return path


def plot_mse(comparison: Comparison, path: Path) -> Path:
    """MSE (log scale) or NMSE in dB versus iteration, one curve per solver."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    in_db = comparison.problem.report_metric == "nmse_db"
    for label, result in comparison.results.items():
        t = np.arange(1, len(result.mse) + 1)
        if in_db:
            ax.plot(t, result.nmse_db, label=label)
        else:
            ax.semilogy(t, np.maximum(result.mse, np.finfo(float).tiny), label=label)
    problem = comparison.problem.describe()
    metric = "NMSE (dB)" if in_db else "MSE"
    ax.set_xlabel("iteration t")
    ax.set_ylabel("NMSE  10 log10(MSE / mean ||x||^2)  [dB]" if in_db else "MSE  (mean ||x_opt - x^(t)||^2)")
    ax.set_title(f"{problem.get('name', '')}: {metric} versus iteration")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_params(comparison: Comparison, path: Path) -> Path:
    """Learned parameters versus slot index t, one panel per parameter name.

    Step-size panels (``eta``) draw the Chebyshev steps of the same period as
    horizontal lines when the problem knows its spectrum.
    """
    plt = _pyplot()
    learned = {label: r for label, r in comparison.results.items() if r.trainable}
    names = sorted({name for r in learned.values() for name in r.params})
    if not names:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no solver in this comparison learns parameters", ha="center", va="center")
        try:
            return _save(fig, path)
        finally:
            plt.close(fig)
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 3.2 * len(names)), squeeze=False)
    problem = comparison.problem
    for ax, name in zip(axes[:, 0], names):
        periods = set()
        for label, result in learned.items():
            if name not in result.params:
                continue
            values = np.asarray(result.params[name], dtype=float).reshape(len(result.params[name]), -1)
            ax.plot(np.arange(len(values)), values[:, 0] if values.shape[1] == 1 else values.mean(axis=1),
                    "o-", markersize=3, label=label)
            periods.add(len(values))
        if name == "eta" and isinstance(problem, QuadraticProblem):
            mu_min, mu_max = problem.spectrum_bounds()
            for period in sorted(p for p in periods if p <= 64):
                for i, step in enumerate(chebyshev_steps(mu_min, mu_max, period)):
                    ax.axhline(step, color="grey", linestyle=":", linewidth=1,
                               label=f"Chebyshev steps (T={period})" if i == 0 else None)
        ax.set_xlabel("t (parameter slot; iteration t uses slot t mod length)")
        ax.set_ylabel(name)
        ax.set_title(f"learned {name}_t")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
