"""Reading the optional entries of a results dict that evaluation records beside the curves: the counts behind
error rates (``counts``, ``evaluation_batches``) and a sweep (the top-level ``sweep`` and each solver's points)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..results import SolverResult, SweepAxis, SweepPoint
from .fields import Checker
from .files import RunFileError

__all__ = ["parse_axis", "parse_counts", "parse_evaluation_extras"]


def parse_axis(results: dict[str, Any], check: Checker) -> SweepAxis | None:
    """The top-level ``sweep`` (``{"option": name, "values": [...]}``), or ``None`` when absent."""
    entry = results.get("sweep")
    if entry is None:
        return None
    entry = check.obj(entry, "sweep")
    option = check.text(check.key(entry, "option", "sweep"), "sweep.option")
    values = check.lst(check.key(entry, "values", "sweep"), "sweep.values")
    if not values:
        raise RunFileError(f"{check.where}: sweep.values is empty; a sweep has at least one value")
    return SweepAxis(option, tuple(values))


def parse_counts(value: Any, check: Checker, path: str, depth: int | None,
                 metrics: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{metric: {"errors": [...], "trials": [...]}}`` as ``{metric: (errors, trials)}``."""
    counts = {}
    for name, entry in check.obj(value, path).items():
        where = f"{path}[{json.dumps(name)}]"
        if name not in metrics:
            raise RunFileError(f"{check.where}: {where} counts a metric the run does not describe "
                               f"({', '.join(metrics)})")
        entry = check.obj(entry, where)
        counts[name] = (check.curve(check.key(entry, "errors", where), f"{where}.errors", depth),
                        check.curve(check.key(entry, "trials", where), f"{where}.trials", depth))
    return counts


def _point(entry: Any, check: Checker, path: str, depth: int | None, metrics: dict[str, Any],
           seeds: int) -> SweepPoint:
    entry = check.obj(entry, path)
    curves = {}
    for name, values in check.obj(check.key(entry, "metrics", path), f"{path}.metrics").items():
        if name not in metrics:
            raise RunFileError(f"{check.where}: {path}.metrics has {name!r}, which the run's metrics do not "
                               f"describe ({', '.join(metrics)})")
        curves[name] = check.curve(values, f"{path}.metrics[{json.dumps(name)}]", depth)
    point = SweepPoint(check.key(entry, "value", path), curves,
                       counts=parse_counts(entry.get("counts") or {}, check, f"{path}.counts", depth, metrics),
                       batches=check.integer(entry.get("batches"), f"{path}.batches", optional=True))
    if entry.get("spread") is not None:
        point.spread = {}
        for name, bounds in check.obj(entry["spread"], f"{path}.spread").items():
            where = f"{path}.spread[{json.dumps(name)}]"
            bounds = check.obj(bounds, where)
            point.spread[name] = (check.curve(check.key(bounds, "low", where), f"{where}.low", depth),
                                  check.curve(check.key(bounds, "high", where), f"{where}.high", depth))
    per_seed = entry.get("per_seed")
    if per_seed is not None:
        point.per_seed_metrics = {}
        for name, rows in check.obj(check.obj(per_seed, f"{path}.per_seed").get("metrics") or {},
                                    f"{path}.per_seed.metrics").items():
            where = f"{path}.per_seed.metrics[{json.dumps(name)}]"
            rows = check.lst(rows, where)
            if len(rows) != seeds:
                raise RunFileError(f"{check.where}: {where} has {len(rows)} entries for {seeds} seeds")
            point.per_seed_metrics[name] = np.array([check.curve(row, f"{where}[{i}]", depth)
                                                     for i, row in enumerate(rows)], np.float64).reshape(seeds, -1)
    return point


def parse_evaluation_extras(solver: SolverResult, entry: dict[str, Any], check: Checker, path: str,
                            depth: int | None, metrics: dict[str, Any], axis: SweepAxis | None) -> None:
    """Fill ``solver``'s ``counts``, ``evaluation_batches`` and ``sweep`` from its entry (each optional)."""
    solver.counts = parse_counts(entry.get("counts") or {}, check, f"{path}.counts", depth, metrics)
    solver.evaluation_batches = check.integer(entry.get("evaluation_batches"), f"{path}.evaluation_batches",
                                              optional=True)
    points = check.lst(entry.get("sweep") or [], f"{path}.sweep")
    if points and axis is None:
        raise RunFileError(f"{check.where}: {path}.sweep holds points but the run has no top-level sweep entry "
                           f"naming the option and its values")
    if axis is not None and len(points) not in (0, len(axis.values)):
        raise RunFileError(f"{check.where}: {path}.sweep has {len(points)} points for the {len(axis.values)} "
                           f"values of sweep.values")
    solver.sweep = [_point(point, check, f"{path}.sweep[{i}]", depth, metrics, len(solver.seeds))
                    for i, point in enumerate(points)]
