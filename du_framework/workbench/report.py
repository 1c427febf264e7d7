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
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any


from .. import __version__
from .results import history_csv
from ..errors import ConfigError, nearest
from ..io.atomic import atomic_write
from ..metrics import Metric, metric_table
from .compare import SUMMARY, Comparison
from .sweep import describe_evaluation, sweep_csv_rows, sweep_table
from .text import metric_cell, plain_text, render_table, strict_json, table_iterations

__all__ = ["table_iterations", "select_metric", "format_table", "format_sweep_table", "describe_evaluation",
           "seed_notes", "results_dict", "history_texts",
           "write_report", "strict_json", "plain_text", "RESULTS_SCHEMA_VERSION"]

RESULTS_SCHEMA_VERSION = 3


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
    low, high = result.spread[shown.name] if result.spread is not None and len(result.ok_seeds) > 1 else (None, None)
    return metric_cell(result.metrics[shown.name][t - 1], shown.format, None if low is None else low[t - 1],
                       None if high is None else high[t - 1])


def seed_notes(comparison: Comparison) -> list[str]:
    """One line per solver trained with several seeds: how the row summarises them, which diverged."""
    notes = []
    for label, result in comparison.results.items():
        if len(result.seeds) < 2:
            continue
        diverged = [f"{seed} (stage {at['stage']}, step {at['step']})" for seed, at in
                    zip(result.seeds, result.diverged_at or []) if at is not None]
        note = (f"{label}: median [min, max] over {len(result.ok_seeds)} of {len(result.seeds)} training seeds "
                f"({', '.join(map(str, result.seeds))})")
        if diverged:
            note += f"; diverged, left out: seed {', seed '.join(diverged)}"
        notes.append(note)
    return notes


def format_table(comparison: Comparison, *, metric: str | None = None, markdown: bool = False,
                 iterations: list[int] | None = None) -> str:
    """One metric (default: the problem's primary one) at ``iterations`` (default: the configuration's
    ``evaluation.table_iterations``, else chosen from the depth), one row per solver, plus training time. The top-left cell names the metric. A solver trained with
    several seeds shows ``median [min, max]`` over its seeds that did not diverge."""
    shown = select_metric(comparison.problem, metric)
    depth = comparison.config.train.depth
    iterations = iterations or list(comparison.config.evaluation.table_iterations) or table_iterations(depth)
    header = [shown.title] + [f"t={t}" for t in iterations] + ["train s"]
    rows = []
    for label, result in comparison.results.items():
        seconds = "loaded" if result.loaded_from else (f"{result.train_seconds:.2f}" if result.trainable else "-")
        rows.append([label] + [_cell(shown, result, t) for t in iterations] + [seconds])
    if markdown:
        return render_table(header, rows)
    return render_table(header, rows, "text", align="l" + "r" * (len(header) - 1), rule=True)


def format_sweep_table(comparison: Comparison, *, metric: str | None = None, markdown: bool = False) -> str:
    """With a sweep, one metric (default: the primary one) after the final iteration versus the swept value,
    under a line saying what it shows; the empty string without a sweep."""
    if comparison.sweep is None:
        return ""
    shown = select_metric(comparison.problem, metric)
    header, rows = sweep_table(comparison.results, comparison.sweep, shown, comparison.config.train.depth)
    counted = " (errors counted in parentheses)" if shown.counts_errors else ""
    title = (f"{shown.title} after the final iteration versus {comparison.sweep.option}, each point on "
             f"{describe_evaluation(comparison.config.evaluation)}{counted}:")
    table = render_table(header, rows) if markdown else render_table(header, rows, "text",
                                                                      align="l" + "r" * (len(header) - 1), rule=True)
    return f"{title}\n{table}"


def results_dict(comparison: Comparison, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``results.json`` (schema in docs/results.md); ``provenance``: see
    :func:`du_framework.workbench.runs.provenance` (the CLI records it)."""
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
            **({"target_errors": config.evaluation.target_errors, "max_batches": config.evaluation.max_batches}
               if config.evaluation.target_errors is not None else {}),
        },
        **({"sweep": comparison.sweep.to_dict()} if comparison.sweep is not None else {}),
        "solvers": {label: result.to_dict() for label, result in comparison.results.items()},
    }
    if provenance is not None:
        results["provenance"] = provenance
    return results


def _csv_text(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    table = metric_table(comparison.problem)
    names, depth, axis = list(table), comparison.config.train.depth, comparison.sweep
    counted = [name for name, metric in table.items() if metric.counts_errors]
    swept = [axis.option] if axis is not None else []  # the main evaluation's rows leave it empty
    writer.writerow(["solver", *swept, "iteration"] + names + [f"{n}_{k}" for n in counted for k in ("errors", "trials")])
    for label, result in comparison.results.items():
        for t in range(depth):
            writer.writerow([label, *[""] * len(swept), t + 1] + [repr(float(result.metrics[name][t])) for name in names]
                            + [repr(float(result.counts[n][k][t])) if n in result.counts else ""
                               for n in counted for k in (0, 1)])
    writer.writerows(sweep_csv_rows(comparison.results, names, counted, depth))
    return buffer.getvalue()


def history_texts(comparison: Comparison) -> tuple[str, str] | None:
    """training.csv (every step's loss) and stages.csv (each stage's mean), or None when nothing trained."""
    return history_csv(comparison.results)


def write_report(comparison: Comparison, out_dir: str | Path, *, plots: bool = True,
                 metric: str | None = None, warn: Callable[[str], None] | None = None,
                 provenance: dict[str, Any] | None = None, figure_formats: tuple[str, ...] = ("png",),
                 style: str | Path | None = None, title: bool = True) -> dict[str, Path]:
    """Write results.json, results.csv, config.json, the training history (training.csv: every
    step's loss, stages.csv: each stage's mean; when something was trained) and (with
    ``plots``) the figures of :func:`du_framework.workbench.figures.write_figures`: ``mse``,
    ``params`` and ``losses``, in each of ``figure_formats`` (png, pdf, svg), drawn with
    the matplotlib ``style`` (``paper``, a style name or file) when given, without titles when not ``title``.

    ``<metric>.*`` (``mse.png``, ``ber.png``) plots ``metric`` (default: the problem's primary metric), named
    after it. The data files are written first; a plot that fails (anything but an ``OSError`` or ``MemoryError``,
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
    history = history_texts(comparison)
    if history is not None:
        files += [("training.csv", history[0]), ("stages.csv", history[1])]
    written_text = dict(files)
    for name, text in files:
        with atomic_write(out / name) as handle:
            handle.write(text)
        written[name] = out / name
    if plots:
        from .figures import write_figures
        from .loading import Run

        warn = warn or (lambda message: warnings.warn(message, RuntimeWarning, stacklevel=3))
        run = Run.from_results(json.loads(written_text["results.json"]), folder=out)
        written.update(write_figures(run, out, metric=shown.name, formats=figure_formats, style=style, warn=warn,
                                     title=title))
        written.update(_problem_figures(comparison, out, figure_formats, warn))
    return written


def _problem_figures(comparison: Comparison, out: Path, formats: tuple[str, ...],
                     warn: Callable[[str], None]) -> dict[str, Path]:
    """The problem's own figures of the trained solvers (:meth:`~du_framework.Problem.figures`), saved in ``out``."""
    from .figures import pyplot, save_figure

    solvers = {label: result.solver for label, result in comparison.results.items() if result.solver is not None}
    written = {}
    try:
        drawn = comparison.problem.figures(solvers) if solvers else {}
    except (OSError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - a plugin's drawing code; the data files are safe
        warn(f"the figures of problem {comparison.problem.name!r} could not be drawn ({type(error).__name__}: "
             f"{error}); the results files are complete")
        return written
    for stem, fig in drawn.items():
        try:
            for kind in formats:
                written[f"{stem}.{kind}"] = save_figure(fig, out / f"{stem}.{kind}", close=False)
        finally:
            pyplot().close(fig)
    return written

