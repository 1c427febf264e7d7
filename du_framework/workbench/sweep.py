"""Evaluating a comparison's solvers: the counts behind error rates, evaluation until a target error count,
and sweeps of one problem option (``[evaluation] sweep``), with the sweep's tables and CSV rows.

Each point of a sweep is the problem rebuilt from the configured options with the swept option set to the
point's value, evaluated on its own fresh instances: point ``i`` draws them from :func:`sweep_key` (the
evaluation seed and ``i``), a stream distinct from training's and from the main evaluation's. Training is
unchanged: it uses the configured problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from ..engine import Evaluation, EvaluationSettings, evaluate_counts
from ..engine.keys import host_fold_in, host_key
from ..interfaces import Problem, UnfoldedSolver
from ..metrics import Metric, metric_table
from .results import SolverResult, SweepAxis, SweepPoint, summarize_seeds

__all__ = ["sweep_key", "evaluate_solver", "counts_of", "sweep_points", "sweep_axis", "sweep_table",
           "sweep_csv_rows", "describe_evaluation", "SWEEP_TAG"]

SWEEP_TAG = 2  # the training stream folds in 0, the main evaluation 1 (workbench.training)


def sweep_key(seed: int, index: int) -> jax.Array:
    """Key of the instances of sweep point ``index``: ``fold_in(fold_in(key(seed), 2), index)``."""
    return host_fold_in(host_fold_in(host_key(seed), SWEEP_TAG), index)


def evaluate_solver(solver: UnfoldedSolver, problem: Problem, key: jax.Array, settings: EvaluationSettings
                    ) -> Evaluation:
    """One evaluation as ``[evaluation]`` says: ``batches`` batches, or until ``target_errors`` errors of the
    primary metric after the final iteration (at most ``max_batches``)."""
    return evaluate_counts(solver, problem, key=key, batch_size=settings.batch_size, batches=settings.batches,
                           target_errors=settings.target_errors, max_batches=settings.max_batches)


def counts_of(evaluation: Evaluation, metrics: dict[str, Metric]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{metric: (errors, trials)}`` of the metrics that count errors."""
    return {name: (evaluation.errors(name), evaluation.trials(name))
            for name, metric in metrics.items() if metric.counts_errors}


def sweep_axis(settings: EvaluationSettings) -> SweepAxis | None:
    """The swept option and its values, or ``None`` without a sweep."""
    return SweepAxis(settings.sweep_option, tuple(settings.sweep_values)) if settings.sweep else None


def sweep_points(solvers: Sequence[UnfoldedSolver], problems: Sequence[Problem], settings: EvaluationSettings,
                 ok: Sequence[bool], representative: int, summarized: bool) -> list[SweepPoint]:
    """Every solver copy (one per training seed) evaluated at every point of the sweep.

    ``problems``: the problem at each point; ``ok``: per copy, whether its training did not diverge;
    ``representative``: the copy whose counts are reported; ``summarized``: several seeds, summarised by
    the median and the min-max spread over those ``ok`` (as the main curves).
    """
    axis = sweep_axis(settings)
    if axis is None:
        return []
    points = []
    for index, (value, problem) in enumerate(zip(axis.values, problems)):
        metrics = metric_table(problem)
        evaluations = [evaluate_solver(solver, problem, sweep_key(settings.seed, index), settings)
                       for solver in solvers]
        chosen = evaluations[representative]
        point = SweepPoint(value, dict(chosen.values), counts=counts_of(chosen, metrics), batches=chosen.batches)
        if summarized:
            point.per_seed_metrics = {name: np.stack([e.values[name] for e in evaluations]) for name in metrics}
            point.spread = {}
            for name, stacked in point.per_seed_metrics.items():
                center, low, high = summarize_seeds(stacked, np.asarray(ok, bool), log=metrics[name].log_axis)
                point.metrics[name], point.spread[name] = center, (low, high)
        points.append(point)
    return points


def describe_evaluation(settings: EvaluationSettings) -> str:
    """How many instances the evaluation used, in words (the line above the printed table)."""
    if settings.target_errors is None:
        return f"{settings.batches} x {settings.batch_size} fresh instances (evaluation seed {settings.seed})"
    return (f"batches of {settings.batch_size} fresh instances until {settings.target_errors} errors after the "
            f"final iteration, at most {settings.max_batches} batches (evaluation seed {settings.seed})")


def _count_note(result_counts: dict[str, tuple[np.ndarray, np.ndarray]], name: str, t: int) -> str:
    if name not in result_counts:
        return ""
    return f" ({int(round(float(result_counts[name][0][t - 1])))})"


def sweep_table(results: dict[str, SolverResult], axis: SweepAxis, metric: Metric, depth: int
                ) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of ``metric`` after the final iteration versus the swept value, one row per solver;
    a metric that counts errors shows its error count behind each value, e.g. ``2.30e-03 (115)`` (the
    representative seed's; with several seeds the median and ``[min, max]`` instead)."""
    header = [f"{metric.title} at t={depth}"] + [f"{axis.option}={value}" for value in axis.values]
    rows = []
    for label, result in results.items():
        cells = [label]
        for point in result.sweep:
            value = metric.show(point.metrics[metric.name][depth - 1])
            bounds = (point.spread or {}).get(metric.name)
            if bounds is not None and len(result.ok_seeds) > 1:
                value += f" [{metric.show(bounds[0][depth - 1])}, {metric.show(bounds[1][depth - 1])}]"
            else:
                value += _count_note(point.counts, metric.name, depth)
            cells.append(value)
        rows.append(cells)
    return header, rows


def sweep_csv_rows(results: dict[str, SolverResult], names: Sequence[str], counted: Sequence[str],
                   depth: int) -> list[list[Any]]:
    """The rows of ``results.csv`` of every sweep point: ``solver, value, iteration``, each metric, then each
    counting metric's ``errors`` and ``trials``."""
    rows = []
    for label, result in results.items():
        for point in result.sweep:
            for t in range(depth):
                rows.append([label, point.value, t + 1] + [repr(float(point.metrics[n][t])) for n in names]
                            + [repr(float(point.counts[n][k][t])) if n in point.counts else ""
                               for n in counted for k in (0, 1)])
    return rows
