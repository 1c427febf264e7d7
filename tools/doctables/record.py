"""A table's record (``<name>.json``): its rows and curves, the environment that produced it, the
tolerance a check applies; written and read strictly."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from du_framework.errors import ConfigError
from du_framework.io.atomic import atomic_write
from du_framework.io.safe_files import read_limited

__all__ = ["TableError", "MarkerError", "Tolerance", "SolverRow", "TableData", "TABLE_SCHEMA_VERSION",
           "MAX_TABLE_BYTES", "save_table", "load_table", "table_names"]

TABLE_SCHEMA_VERSION = 1
"""The ``schema_version`` of a table record (``<name>.json``)."""

MAX_TABLE_BYTES = 16 * 1024**2
"""Largest table record read; larger ones are refused unread."""


class TableError(ConfigError):
    """A table cannot be produced, read, rendered or checked (the message says which file and why)."""


class MarkerError(TableError):
    """A page's table markers are missing, unclosed, nested or malformed."""


# --- tolerance -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far a fresh value may lie from a committed one.

    Attributes:
        db: for a metric in dB (``scale == "db"``): ``|fresh - committed| <= db``.
        log_axis_db: for a positive metric drawn on a log axis (MSE): the same
            allowance as a ratio, ``|10 log10(fresh / committed)| <= log_axis_db``
            (1 dB is a factor ``10**0.1``, about 1.26).
        relative: any other metric: ``|fresh - committed| <= relative * max(|fresh|, |committed|)``.

    A missing value (NaN: a diverged curve) matches only a missing value.
    """

    db: float = 1.0
    log_axis_db: float = 1.0
    relative: float = 0.05

    def describe(self) -> str:
        """The rule in one line (printed by the check and recorded in every table)."""
        return (f"dB cells within {self.db:g} dB; log-axis cells (MSE) within a factor "
                f"{10 ** (self.log_axis_db / 10):.3g} ({self.log_axis_db:g} dB); other cells within "
                f"{self.relative:.0%}; training times not checked")

    def deviation(self, metric: dict[str, Any], committed: float, fresh: float) -> tuple[float, bool, str]:
        """``(size, within, unit)``: how far ``fresh`` lies from ``committed`` in the rule's unit.

        ``size`` is in dB for dB and log-axis metrics and relative otherwise (``inf`` when only
        one of them is missing or the signs differ on a log axis); ``within`` says whether it
        is within the tolerance.
        """
        committed, fresh = float(committed), float(fresh)
        if math.isnan(committed) or math.isnan(fresh):
            same = math.isnan(committed) and math.isnan(fresh)
            return (0.0 if same else math.inf), same, "dB" if metric.get("scale") == "db" else ""
        if metric.get("scale") == "db":
            size = abs(fresh - committed)
            return size, size <= self.db, "dB"
        if metric.get("log_axis") and committed > 0 and fresh > 0:
            size = abs(10 * math.log10(fresh / committed))
            return size, size <= self.log_axis_db, "dB"
        if metric.get("log_axis") and committed == fresh:
            return 0.0, True, "dB"
        if metric.get("log_axis"):
            return math.inf, False, "dB"
        scale = max(abs(fresh), abs(committed))
        size = 0.0 if scale == 0 else abs(fresh - committed) / scale
        return size, size <= self.relative, "relative"

    def allowance(self, metric: dict[str, Any]) -> str:
        """The allowance for this metric, in words (``1 dB``, ``a factor 1.26 (1 dB)``, ``5%``)."""
        if metric.get("scale") == "db":
            return f"{self.db:g} dB"
        if metric.get("log_axis"):
            return f"a factor {10 ** (self.log_axis_db / 10):.3g} ({self.log_axis_db:g} dB)"
        return f"{self.relative:.0%}"


# --- the record ----------------------------------------------------------------------------------


@dataclasses.dataclass
class SolverRow:
    """One solver of a table record.

    Attributes:
        label, name, options: as configured.
        trainable: whether it has learned parameters.
        seeds, seed_status: the training seeds and ``"ok"``/``"diverged"`` per seed (empty for a classical solver).
        curves: ``{metric: {"central": [...], "low": [...] | None, "high": [...] | None}}``, one
            value per iteration (element ``t-1`` after iteration ``t``; NaN for a missing value);
            ``low``/``high`` are the minimum and maximum over the seeds that did not diverge.
        train_seconds: training time (not checked).
    """

    label: str
    name: str
    options: dict[str, Any]
    trainable: bool
    seeds: list[int]
    seed_status: list[str]
    curves: dict[str, dict[str, list[float] | None]]
    train_seconds: float = 0.0

    @property
    def ok_seeds(self) -> int:
        """How many seeds did not diverge."""
        return sum(status == "ok" for status in self.seed_status)


@dataclasses.dataclass
class TableData:
    """A table record: what a table's numbers are and what produced them (``<name>.json``).

    Attributes:
        name: the table's name (its configuration is ``<name>.toml``).
        config: the configuration's path as given to the command (relative to the repository).
        command: the command that produced the run.
        environment: date, versions, backend, devices, CPU, cores, load, git revision.
        metrics: ``{name: {"label", "scale", "log_axis", "format"}}``, in the run's order.
        primary_metric: the metric a page shows by default.
        iterations: the iterations the table shows.
        depth: iterations per curve.
        evaluation: the evaluation's settings as recorded by the run.
        solvers: one :class:`SolverRow` per solver, in the configuration's order.
        tolerance: the rule the check applies, in words.
    """

    name: str
    config: str
    command: str
    environment: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    primary_metric: str
    iterations: list[int]
    depth: int
    evaluation: dict[str, Any]
    solvers: list[SolverRow]
    tolerance: str = ""

    def solver(self, label: str) -> SolverRow:
        """The row labelled ``label``.

        Raises:
            TableError: no such row (the message lists the rows).
        """
        for row in self.solvers:
            if row.label == label:
                return row
        raise TableError(f"table {self.name!r} has no solver {label!r}; its solvers: "
                         f"{', '.join(row.label for row in self.solvers)}")

    def metric(self, name: str | None) -> tuple[str, dict[str, Any]]:
        """``(name, description)`` of the metric ``name`` (default: the primary one).

        Raises:
            TableError: the record holds no such metric.
        """
        name = name or self.primary_metric
        if name not in self.metrics:
            raise TableError(f"table {self.name!r} holds no metric {name!r}; its metrics: {', '.join(self.metrics)}")
        return name, self.metrics[name]

    def to_json(self) -> dict[str, Any]:
        """The record as strict-JSON-ready data (NaN written as ``null``)."""
        def clean(values):
            return None if values is None else [None if not math.isfinite(v) else float(v) for v in values]

        return {
            "schema_version": TABLE_SCHEMA_VERSION,
            "table": self.name,
            "config": self.config,
            "command": self.command,
            "environment": self.environment,
            "tolerance": self.tolerance,
            "metrics": self.metrics,
            "primary_metric": self.primary_metric,
            "iterations": list(self.iterations),
            "depth": self.depth,
            "evaluation": self.evaluation,
            "solvers": [{"label": row.label, "name": row.name, "options": row.options, "trainable": row.trainable,
                         "seeds": row.seeds, "seed_status": row.seed_status, "train_seconds": row.train_seconds,
                         "curves": {metric: {part: clean(values) for part, values in parts.items()}
                                    for metric, parts in row.curves.items()}}
                        for row in self.solvers],
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> TableData:
        """A record from parsed JSON, every entry checked.

        Raises:
            TableError: a missing entry, a wrong type, a curve of the wrong length (named).
        """
        def fail(path, expected):
            raise TableError(f"{where}: {path} is not {expected}")

        def need(obj, key, kind, path, expected):
            if not isinstance(obj, dict) or key not in obj:
                fail(f"{path}[{key!r}]", f"present ({expected})")
            value = obj[key]
            if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                fail(f"{path}[{key!r}]", expected)
            return value

        if not isinstance(data, dict):
            fail("the file", "a JSON object")
        version = data.get("schema_version")
        if version != TABLE_SCHEMA_VERSION:
            fail("schema_version", f"{TABLE_SCHEMA_VERSION} (it is {version!r})")
        depth = need(data, "depth", int, "", "an integer")
        iterations = need(data, "iterations", list, "", "a list of iterations")
        if not all(isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= depth for t in iterations):
            fail("iterations", f"a list of integers in 1..{depth}")
        metrics = need(data, "metrics", dict, "", "an object of metrics")
        for key, info in metrics.items():
            need(info, "format", str, f"metrics[{key!r}]", "a format")
        primary = need(data, "primary_metric", str, "", "a metric name")
        if primary not in metrics:
            fail("primary_metric", f"one of {', '.join(metrics)}")

        def curve(values, path):
            if values is None:
                return None
            if not isinstance(values, list) or len(values) != depth:
                fail(path, f"a list of {depth} numbers")
            out = []
            for i, value in enumerate(values):
                if value is None:
                    out.append(math.nan)
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    out.append(float(value))
                else:
                    fail(f"{path}[{i}]", "a number or null")
            return out

        rows = []
        for i, entry in enumerate(need(data, "solvers", list, "", "a list of solvers")):
            path = f"solvers[{i}]"
            curves = {}
            for metric, parts in need(entry, "curves", dict, path, "an object of curves").items():
                if metric not in metrics:
                    fail(f"{path}.curves[{metric!r}]", f"a curve of a declared metric ({', '.join(metrics)})")
                central = curve(need(parts, "central", list, f"{path}.curves[{metric!r}]", "a curve"),
                                f"{path}.curves[{metric!r}].central")
                curves[metric] = {"central": central,
                                  "low": curve(parts.get("low"), f"{path}.curves[{metric!r}].low"),
                                  "high": curve(parts.get("high"), f"{path}.curves[{metric!r}].high")}
            seconds = entry.get("train_seconds", 0.0)
            rows.append(SolverRow(label=need(entry, "label", str, path, "a label"),
                                  name=need(entry, "name", str, path, "a solver name"),
                                  options=need(entry, "options", dict, path, "an object of options"),
                                  trainable=need(entry, "trainable", bool, path, "true or false"),
                                  seeds=need(entry, "seeds", list, path, "a list of seeds"),
                                  seed_status=need(entry, "seed_status", list, path, "a list of statuses"),
                                  curves=curves,
                                  train_seconds=float(seconds) if isinstance(seconds, (int, float)) else 0.0))
        return cls(name=need(data, "table", str, "", "the table's name"), config=need(data, "config", str, "", "a path"),
                   command=need(data, "command", str, "", "a command"),
                   environment=need(data, "environment", dict, "", "an object"), metrics=metrics,
                   primary_metric=primary, iterations=iterations, depth=depth,
                   evaluation=data.get("evaluation") if isinstance(data.get("evaluation"), dict) else {},
                   solvers=rows, tolerance=data.get("tolerance") if isinstance(data.get("tolerance"), str) else "")


def save_table(table: TableData, path: str | Path) -> Path:
    """Write ``table`` as strict JSON to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(json.dumps(table.to_json(), indent=1, allow_nan=False) + "\n")
    return path


def load_table(path: str | Path) -> TableData:
    """Read a table record written by :func:`save_table` (size-checked, every entry checked).

    Raises:
        TableError: the file is missing, too large, not JSON or not a table record.
    """
    path = Path(path)
    raw = read_limited(path, limit=MAX_TABLE_BYTES, what="table record", error=TableError,
                       too_large=f", more than a table record may hold ({MAX_TABLE_BYTES}); make tables writes it")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=lambda name: math.nan)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TableError(f"{path}: not a JSON table record ({error})") from None
    return TableData.from_json(data, str(path))


def table_names(tables_dir: str | Path) -> list[str]:
    """The tables of a folder: the stems of its ``*.toml`` configurations, sorted."""
    return sorted(path.stem for path in Path(tables_dir).glob("*.toml"))
