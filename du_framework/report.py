"""Reports of a comparison: terminal/Markdown tables, results.json, results.csv,
config.json and plots (matplotlib, Agg backend). Every file is written atomically.

Tables and the curve plot show one metric: the problem's primary metric, or the
one named by ``--metric``; results.json and results.csv hold every metric.

results.json is strict JSON: a non-finite number (a diverged curve) is written as
``null``. The data files are written before the plots, and a plot that cannot be
drawn is reported as a warning, never at the cost of the results.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .atomic import atomic_write
from .compare import SUMMARY, Comparison
from .errors import ConfigError, nearest
from .metrics import Metric, metric_table

__all__ = ["table_iterations", "select_metric", "format_table", "seed_notes", "results_dict", "write_report",
           "plot_metric", "plot_params", "strict_json", "plain_text", "RESULTS_SCHEMA_VERSION"]

RESULTS_SCHEMA_VERSION = 3


def table_iterations(depth: int) -> list[int]:
    """Iterations shown in the table: 1, 5, 10, 20, ... up to and including ``depth``."""
    marks = [1, 5, 10, 20, 30, 40, 50, 100, 200, 500, 1000]
    chosen = [t for t in marks if t < depth]
    return chosen + [depth]


def select_metric(problem: Any, name: str | None = None) -> Metric:
    """The metric of ``problem`` (an instance or a class) called ``name``; its primary one when None.

    Raises:
        ConfigError: the problem has no metric called ``name``; the message
            lists its metrics and the nearest.
    """
    metrics = metric_table(problem)
    name = name or problem.primary()
    if name not in metrics:
        hint = nearest(name, metrics)
        raise ConfigError(f"unknown metric {name!r} for problem {problem.name!r}; its metrics: {', '.join(metrics)}"
                          + (f" (did you mean {hint!r}?)" if hint else ""))
    return metrics[name]


def _cell(shown: Metric, result, t: int) -> str:
    """The value after iteration ``t``; with several seeds that did not diverge, ``median [min, max]``."""
    value = shown.show(result.metrics[shown.name][t - 1])
    if result.spread is not None and result.ok_seeds > 1:
        low, high = result.spread[shown.name]
        value += f" [{_brief(shown, low[t - 1])}, {_brief(shown, high[t - 1])}]"
    return value


def _brief(shown: Metric, value: float) -> str:
    """``value`` in the metric's format with one digit less (the spread needs less precision)."""
    import re

    match = re.fullmatch(r"(.*\.)(\d+)([eEfFgG%])", shown.format)
    if match and int(match.group(2)) > 1:
        return format(float(value), f"{match.group(1)}{int(match.group(2)) - 1}{match.group(3)}")
    return shown.show(value)


def seed_notes(comparison: Comparison) -> list[str]:
    """One line per solver trained with several seeds: how the row summarises them, which diverged."""
    notes = []
    for label, result in comparison.results.items():
        if len(result.seeds) < 2:
            continue
        diverged = [f"{seed} (stage {at['stage']}, step {at['step']})" for seed, at in
                    zip(result.seeds, result.diverged_at or []) if at is not None]
        note = (f"{label}: median [min, max] over {result.ok_seeds} of {len(result.seeds)} training seeds "
                f"({', '.join(map(str, result.seeds))})")
        if diverged:
            note += f"; diverged, left out: seed {', seed '.join(diverged)}"
        notes.append(note)
    return notes


def format_table(comparison: Comparison, *, metric: str | None = None, markdown: bool = False,
                 iterations: list[int] | None = None) -> str:
    """One metric (default: the problem's primary one) at selected iterations, one row per
    solver, plus training time. The top-left cell names the metric. A solver trained with
    several seeds shows ``median [min, max]`` over its seeds that did not diverge."""
    shown = select_metric(comparison.problem, metric)
    depth = comparison.config.train.depth
    iterations = iterations or table_iterations(depth)
    header = [shown.title] + [f"t={t}" for t in iterations] + ["train s"]
    rows = []
    for label, result in comparison.results.items():
        seconds = "loaded" if result.loaded_from else (f"{result.train_seconds:.2f}" if result.trainable else "-")
        rows.append([label] + [_cell(shown, result, t) for t in iterations] + [seconds])
    if markdown:
        line = lambda cells: "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
        return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|"] + [line(row) for row in rows])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda row: "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in rows])


def results_dict(comparison: Comparison, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``results.json`` (schema in docs/results.md); ``provenance``: see
    :func:`du_framework.runs.provenance` (the CLI records it)."""
    config = comparison.config
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "framework_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "problem": comparison.problem.describe(),
        "metrics": {name: metric.describe() for name, metric in metric_table(comparison.problem).items()},
        "primary_metric": comparison.problem.primary(),
        "summary": SUMMARY,
        "train_seeds": list(config.train.seed_list()),
        "evaluation": {
            "seed": config.evaluation.seed,
            "batch_size": config.evaluation.batch_size,
            "batches": config.evaluation.batches,
            "iterations": config.train.depth,
        },
        "solvers": {label: result.to_dict() for label, result in comparison.results.items()},
    }
    if provenance is not None:
        results["provenance"] = provenance
    return results


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by ``None``, NumPy values as Python ones."""
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def strict_json(value: Any) -> str:
    """``value`` as strict JSON (RFC 8259): NaN and infinities become ``null``, never ``NaN``/``Infinity``."""
    return json.dumps(_finite(value), indent=2, allow_nan=False)


def _csv_text(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(metric_table(comparison.problem))
    writer.writerow(["solver", "iteration"] + names)
    for label, result in comparison.results.items():
        for t in range(comparison.config.train.depth):
            writer.writerow([label, t + 1] + [repr(float(result.metrics[name][t])) for name in names])
    return buffer.getvalue()


def _history_texts(comparison: Comparison) -> tuple[str, str] | None:
    """training.csv (every step's loss) and stages.csv (each stage's mean), or None when nothing trained."""
    trained = {label: r for label, r in comparison.results.items() if r.losses is not None}
    if not trained:
        return None
    plan = comparison.stages
    stage_of = np.repeat(np.arange(1, len(plan) + 1), [steps for _, steps in plan]) if plan else np.zeros(0, int)
    depth_of = np.repeat([depth for depth, _ in plan], [steps for _, steps in plan]) if plan else np.zeros(0, int)
    steps_csv, stages_csv = io.StringIO(), io.StringIO()
    steps_out = csv.writer(steps_csv, lineterminator="\n")
    stages_out = csv.writer(stages_csv, lineterminator="\n")
    steps_out.writerow(["solver", "seed", "step", "stage", "active_depth", "loss"])
    stages_out.writerow(["solver", "seed", "stage", "active_depth", "steps", "mean_loss"])
    for label, result in trained.items():
        for seed, losses, stage_means in zip(result.seeds, result.losses, result.stage_losses):
            placed = len(losses) == len(stage_of)
            for step, loss in enumerate(losses):
                steps_out.writerow([label, seed, step + 1, int(stage_of[step]) if placed else "",
                                    int(depth_of[step]) if placed else "", repr(float(loss))])
            stages_with_steps = [(number, depth, steps) for number, (depth, steps) in enumerate(plan, 1) if steps]
            for (number, depth, steps), mean in zip(stages_with_steps, stage_means):
                stages_out.writerow([label, seed, number, depth, steps, repr(float(mean))])
    return steps_csv.getvalue(), stages_csv.getvalue()


def write_report(comparison: Comparison, out_dir: str | Path, *, plots: bool = True,
                 metric: str | None = None, warn: Callable[[str], None] | None = None,
                 provenance: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write results.json, results.csv, config.json, the training history (training.csv: every
    step's loss, stages.csv: each stage's mean; when something was trained) and (with
    ``plots``) mse.png, params.png.

    ``mse.png`` plots ``metric`` (default: the problem's primary metric). The data files
    are written first; a plot that fails (anything but an ``OSError`` or ``MemoryError``,
    which propagate) is left out and reported through ``warn`` (default:
    :func:`warnings.warn`), so the results are never lost to a plotting problem.
    """
    shown = select_metric(comparison.problem, metric)  # refuse an unknown name before writing anything
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    files = [("results.json", strict_json(results_dict(comparison, provenance))),
             ("results.csv", _csv_text(comparison)),
             ("config.json", strict_json(comparison.config.to_dict()))]
    history = _history_texts(comparison)
    if history is not None:
        files += [("training.csv", history[0]), ("stages.csv", history[1])]
    for name, text in files:
        with atomic_write(out / name) as handle:
            handle.write(text)
        written[name] = out / name
    if plots:
        warn = warn or (lambda message: warnings.warn(message, RuntimeWarning, stacklevel=3))
        for name, draw in (("mse.png", lambda path: plot_metric(comparison, path, metric=shown.name)),
                           ("params.png", lambda path: plot_params(comparison, path))):
            try:
                written[name] = draw(out / name)
            except (OSError, MemoryError):
                raise
            except Exception as error:  # noqa: BLE001 - matplotlib's many failures; the results are safe
                warn(f"{name} could not be drawn ({type(error).__name__}: {_first_line(error)}); "
                     f"the results files are complete")
    return written


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


def plain_text(text: Any) -> str:
    """``text`` as matplotlib draws it literally: ``$`` escaped (no mathtext), no hidden legend entry."""
    text = str(text).replace("$", r"\$")  # outside mathtext only "\$" is special; other backslashes stay
    return " " + text if text.startswith("_") else text  # a legend leaves out labels starting with "_"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    try:
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot_metric(comparison: Comparison, path: Path, *, metric: str | None = None) -> Path:
    """One metric (default: the primary one) versus iteration, one curve per solver."""
    shown = select_metric(comparison.problem, metric)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    floor = (lambda values: np.maximum(values, np.finfo(float).tiny)) if shown.log_axis else (lambda values: values)
    for label, result in comparison.results.items():
        curve = result.metrics[shown.name]
        iterations = np.arange(1, len(curve) + 1)
        (line,) = ax.plot(iterations, floor(curve), label=plain_text(label))
        if result.spread is not None and result.ok_seeds > 1:
            low, high = result.spread[shown.name]
            ax.fill_between(iterations, floor(low), floor(high), color=line.get_color(), alpha=0.2, linewidth=0)
    if shown.log_axis:
        ax.set_yscale("log")
    ax.set_xlabel("iteration t")
    ax.set_ylabel(plain_text(shown.title))
    ax.set_title(plain_text(f"{comparison.problem.name}: {shown.title} versus iteration "
                            f"({'lower' if shown.lower_is_better else 'higher'} is better)"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_params(comparison: Comparison, path: Path) -> Path:
    """Learned parameters versus slot index t, one panel per reported parameter name.

    A parameter with more than one value per slot is drawn as its mean over the
    slot. Reference values a solver supplies for a parameter
    (``UnfoldedSolver.reference_values``, for example Chebyshev steps beside a
    learned step size) are drawn as horizontal lines in its panel.
    """
    plt = _pyplot()
    learned = {label: r for label, r in comparison.results.items() if r.trainable}
    names = sorted({name for r in learned.values() for name in r.params})
    if not names:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no solver in this comparison learns parameters", ha="center", va="center")
        return _save(fig, path)
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 3.2 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        references: dict[tuple[str, tuple[float, ...]], None] = {}  # distinct (label, values), in order
        for label, result in learned.items():
            if name not in result.params:
                continue
            values = np.asarray(result.params[name], dtype=float)
            values = values.reshape(len(values), -1).mean(axis=1) if values.ndim else values[None]
            ax.plot(np.arange(len(values)), values, "o-", markersize=3, label=plain_text(label))
            for reference, lines in result.references.get(name, {}).items():
                references[reference, tuple(np.ravel(np.asarray(lines, dtype=float)))] = None
        for (reference, lines), style in zip(references, [":", "--", "-."] * len(references)):
            for i, value in enumerate(lines):
                ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=plain_text(reference) if i == 0 else None)
        ax.set_xlabel("t (parameter slot; iteration t uses slot t mod length)")
        ax.set_ylabel(plain_text(name))
        ax.set_title(plain_text(f"learned {name}_t"))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)
