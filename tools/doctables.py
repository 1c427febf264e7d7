"""Result tables in the docs that stay true: produced from runs, recorded with their environment, checked.

A *table* is named by a configuration ``<tables dir>/<name>.toml`` (an experiment that
``unfold compare --config`` takes, the classical baselines at their textbook constants and,
as extra solver entries such as ``ista-tuned``, at constants found by ``unfold tune``). It is
produced by running that comparison (:func:`produce`), recorded as ``<name>.json`` beside the
configuration (every metric's curve of every solver, with the spread over training seeds,
and the environment that produced them: date, versions, backend, CPU, command), and shown in
Markdown pages between two markers, each on a line of its own::

    <!-- table: sparse-recovery -->
    (generated: the table, a note on tuned constants and seeds, the environment line)
    <!-- /table -->

The opening marker may choose what the page shows: ``metric=NAME`` (default: the run's
primary metric) and ``rows=a,b,c`` (a subset of the solvers, in this order). :func:`render`
writes the block's content from the record alone, so re-rendering needs no plugin.

:func:`check` compares committed tables with a fresh run within a :class:`Tolerance`: every
number of every page's cells (a central value and, with several seeds, ``[min, max]``) and
every value the record holds at the table's iterations. Training times are not checked (they
measure the machine and its load, not the algorithm). See docs/results.md, "Tables in the
documentation".
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from du_framework.io.atomic import atomic_write
from du_framework.errors import ConfigError

__all__ = ["TableError", "MarkerError", "Tolerance", "TableData", "SolverRow", "Block", "Deviation", "CheckReport",
           "TABLE_SCHEMA_VERSION", "produce", "table_from_run", "environment", "render", "find_blocks",
           "write_into", "pages_with_markers", "page_cells", "compare_records", "compare_page", "check",
           "load_table", "save_table", "table_names", "require_pages", "unknown_markers", "MAX_TABLE_BYTES"]

TABLE_SCHEMA_VERSION = 1
"""The ``schema_version`` of a table record (``<name>.json``)."""

MAX_TABLE_BYTES = 16 * 1024**2
"""Largest table record read; larger ones are refused unread."""

_OPEN = re.compile(r"<!--\s*table:\s*(?P<name>[A-Za-z0-9_.-]+)(?P<attrs>(?:\s+[a-z]+=\S+)*)\s*-->")
_CLOSE = re.compile(r"<!--\s*/table\s*-->")
_ATTRS = ("metric", "rows")


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
    try:
        size = path.stat().st_size
    except OSError as error:
        raise TableError(f"{path}: cannot read the table record ({error.strerror or error}); "
                         f"make tables writes it") from None
    if size > MAX_TABLE_BYTES:
        raise TableError(f"{path}: {size} bytes, more than a table record may hold ({MAX_TABLE_BYTES})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda name: math.nan)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TableError(f"{path}: not a JSON table record ({error})") from None
    return TableData.from_json(data, str(path))


def table_names(tables_dir: str | Path) -> list[str]:
    """The tables of a folder: the stems of its ``*.toml`` configurations, sorted."""
    return sorted(path.stem for path in Path(tables_dir).glob("*.toml"))


# --- producing -----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """What produced a table: date, du-framework/jax/jaxlib/flax/optax/numpy versions, Python, backend,
    devices, CPU model and cores, load average, platform and git revision.

    ``provenance`` is a run's record (``results.json``'s ``provenance``); what it lacks is filled in
    from this process.
    """
    provenance = dict(provenance or {})
    if "libraries" not in provenance or "backend" not in provenance:
        from du_framework.workbench.runs import provenance as current

        provenance = {**current(argv=[]), **provenance}
    libraries = provenance.get("libraries") or {}
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": provenance.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "du_framework": provenance.get("du_framework"),
        "jax": libraries.get("jax"), "jaxlib": libraries.get("jaxlib"), "flax": libraries.get("flax"),
        "optax": libraries.get("optax"), "numpy": libraries.get("numpy"),
        "python": provenance.get("python") or platform.python_version(),
        "plugins": provenance.get("plugins"),
        "backend": provenance.get("backend"), "devices": provenance.get("devices"),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "load_average": load,
        "platform": platform.platform(), "git": provenance.get("git"),
    }


def table_from_run(run: Any, name: str, *, config: str, command: str, env: dict[str, Any] | None = None,
                   tolerance: Tolerance | None = None) -> TableData:
    """A table record from a loaded run (:class:`du_framework.workbench.loading.Run` of ``unfold compare``).

    Raises:
        TableError: the run holds no evaluation curves.
    """
    from du_framework.workbench.report import table_iterations

    if not run.has_curves:
        raise TableError(f"run {run.label!r} holds no evaluation curves: a table needs a run of unfold compare")
    metrics = {key: {"label": info.title, "scale": info.scale, "log_axis": bool(info.log_axis), "format": info.format}
               for key, info in run.metrics.items()}

    def listed(values):
        return None if values is None else [float(v) for v in np.asarray(values, dtype=np.float64)]

    rows = []
    for label, solver in run.solvers.items():
        curves = {}
        for key, central in solver.metrics.items():
            low, high = (solver.spread or {}).get(key) or (None, None)
            curves[key] = {"central": listed(central), "low": listed(low), "high": listed(high)}
        rows.append(SolverRow(label=label, name=solver.name, options=dict(solver.options), trainable=solver.trainable,
                              seeds=[int(s) for s in solver.seeds], seed_status=list(solver.seed_status),
                              curves=curves, train_seconds=float(solver.train_seconds)))
    return TableData(name=name, config=config, command=command, environment=env or environment(run.provenance),
                     metrics=metrics, primary_metric=run.primary_metric or next(iter(metrics)),
                     iterations=table_iterations(run.depth), depth=run.depth, evaluation=dict(run.evaluation),
                     solvers=rows, tolerance=(tolerance or Tolerance()).describe())


def produce(name: str, tables_dir: str | Path, runs_dir: str | Path, *, config_label: str | None = None,
            tolerance: Tolerance | None = None) -> TableData:
    """Run ``unfold compare --config <tables_dir>/<name>.toml`` in this process and record its table.

    The run folder is ``<runs_dir>/<name>`` (replaced if present). ``config_label`` is how the
    record names the configuration (default: the path as given).

    Raises:
        TableError: no such configuration, or the comparison failed (its exit code).
    """
    from du_framework.cli import main
    from du_framework.workbench.loading import load_run

    config = Path(tables_dir) / f"{name}.toml"
    if not config.is_file():
        known = table_names(tables_dir)
        raise TableError(f"no table configuration {config}; the tables of {tables_dir}: {', '.join(known) or '(none)'}")
    out = Path(runs_dir) / name
    shown = config_label or str(config)
    args = ["compare", "--config", str(config), "--out", str(out), "--force", "--no-plots", "--no-progress"]
    code = main(args)
    if code != 0:
        raise TableError(f"table {name!r}: `unfold {' '.join(args)}` failed with exit code {code} (its message above)")
    run = load_run(out)
    command = f"unfold compare --config {shown} --no-plots"
    return table_from_run(run, name, config=shown, command=command, tolerance=tolerance)


# --- rendering -----------------------------------------------------------------------------------


def _brief(fmt: str, value: float) -> str:
    match = re.fullmatch(r"(.*\.)(\d+)([eEfFgG%])", fmt)
    if math.isnan(value):
        return "nan"
    if match and int(match.group(2)) > 1:
        return format(value, f"{match.group(1)}{int(match.group(2)) - 1}{match.group(3)}")
    return format(value, fmt)


def _cell(row: SolverRow, metric: str, info: dict[str, Any], t: int) -> str:
    parts = row.curves.get(metric)
    if parts is None:
        return "-"
    value = parts["central"][t - 1]
    text = "nan" if math.isnan(value) else format(value, info["format"])
    if parts.get("low") is not None and parts.get("high") is not None and row.ok_seeds > 1:
        text += f" [{_brief(info['format'], parts['low'][t - 1])}, {_brief(info['format'], parts['high'][t - 1])}]"
    return text


def _differing_options(row: SolverRow, table: TableData) -> str:
    base_label = row.label.removesuffix("-tuned")
    base = next((other for other in table.solvers if other.label == base_label and other is not row), None)
    if base is None:
        base = next((other for other in table.solvers if other.name == row.name and other is not row), None)
    if base is None:
        return ""
    changed = [f"{key} = {_value(value)}" for key, value in row.options.items() if base.options.get(key) != value]
    return ", ".join(changed)


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render(table: TableData, *, metric: str | None = None, rows: Sequence[str] | None = None) -> str:
    """The Markdown a page shows between a table's markers: the table, notes, the environment line.

    Rows: every solver, or those labelled ``rows`` in that order. Columns: the metric at the
    record's iterations, then the training time. Below: the tuned constants of solvers labelled
    ``*-tuned`` (the options that differ from the untuned entry), how seeds are summarised,
    and the environment and command that produced the numbers.

    Raises:
        TableError: an unknown metric or row label.
    """
    metric, info = table.metric(metric)
    chosen = [table.solver(label) for label in rows] if rows else list(table.solvers)
    header = [info.get("label") or metric] + [f"t={t}" for t in table.iterations] + ["train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in chosen:
        seconds = f"{row.train_seconds:.1f}" if row.trainable else "-"
        cells = [row.label] + [_cell(row, metric, info, t) for t in table.iterations] + [seconds]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    notes = []
    tuned = [(row.label, _differing_options(row, table)) for row in chosen if row.label.endswith("-tuned")]
    tuned = [f"`{label}`: {options}" for label, options in tuned if options]
    if tuned:
        notes.append("Tuned constants (`unfold tune` on validation instances, disjoint from these): "
                     + "; ".join(tuned) + ".")
    seeded = [row for row in chosen if len(row.seeds) > 1]
    if seeded:
        seeds = sorted({seed for row in seeded for seed in row.seeds})
        diverged = [f"{row.label} ({len(row.seeds) - row.ok_seeds})" for row in seeded if row.ok_seeds < len(row.seeds)]
        notes.append(f"Learned solvers: median [min, max] over training seeds {_ranges(seeds)}"
                     + (f"; diverged and left out: {', '.join(diverged)}" if diverged else "") + ".")
    env = table.environment
    instances = ""
    if table.evaluation.get("batch_size") and table.evaluation.get("batches"):
        instances = f" on {int(table.evaluation['batch_size']) * int(table.evaluation['batches'])} fresh instances"
    cores = f", {env.get('cpu_count')} cores" if env.get("cpu_count") else ""
    load = env.get("load_average")
    load_text = f", load {load[0]:g}" if load else ""
    date = str(env.get("date", ""))[:10]
    notes.append(f"<small>{info.get('label') or metric}{instances}; generated {date} by `{table.command}` "
                 f"(du-framework {env.get('du_framework')}, jax {env.get('jax')}, jaxlib {env.get('jaxlib')}, "
                 f"{env.get('backend')} backend, {env.get('cpu')}{cores}{load_text}). Regenerate with "
                 f"`make tables`; `make check-tables` reruns it and compares ({table.tolerance}).</small>")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes)


def _ranges(values: list[int]) -> str:
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


# --- pages ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    """A table block of a page: the marker lines ``start`` and ``end`` (0-based) and the content between."""

    name: str
    metric: str | None
    rows: tuple[str, ...] | None
    start: int
    end: int


def find_blocks(text: str, where: str) -> list[Block]:
    """Every table block of a page's text, in order.

    A marker is a line holding only ``<!-- table: NAME ... -->`` or ``<!-- /table -->``; lines
    inside fenced code blocks are not read, nor are markers quoted within a line of prose.

    Raises:
        MarkerError: a malformed marker line (a comment starting with ``table``), an unknown attribute, an opening
            marker without its closing one, a closing marker without an opening one, a
            marker inside a block (each named with its line).
    """
    blocks, lines, opened, fence = [], text.splitlines(), None, None
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):  # markers shown inside code blocks are examples, not markers
            if fence is None:
                fence = stripped[:3]
            elif stripped.startswith(fence):
                fence = None
            continue
        if fence is not None or not (stripped.startswith("<!--") and "table" in stripped):
            continue
        opening, closing = _OPEN.fullmatch(stripped), _CLOSE.fullmatch(stripped)
        if not opening and not closing:
            raise MarkerError(f"{where}:{number + 1}: malformed table marker {stripped!r}; write "
                              f"'<!-- table: NAME -->' (optionally metric=NAME rows=a,b) or '<!-- /table -->', "
                              f"alone on its line")
        if opening:
            if opened is not None:
                raise MarkerError(f"{where}:{number + 1}: table marker {opening.group('name')!r} inside the block of "
                                  f"{opened[0].group('name')!r} opened on line {opened[1] + 1}: close it first "
                                  f"with '<!-- /table -->'")
            opened = (opening, number)
            continue
        if opened is None:
            raise MarkerError(f"{where}:{number + 1}: '<!-- /table -->' closes no table: put "
                              f"'<!-- table: NAME -->' before it")
        attrs = {}
        for item in opened[0].group("attrs").split():
            key, _, value = item.partition("=")
            if key not in _ATTRS:
                raise MarkerError(f"{where}:{opened[1] + 1}: unknown table attribute {key!r}; "
                                  f"known: {', '.join(_ATTRS)}")
            attrs[key] = value
        rows = tuple(label for label in attrs["rows"].split(",") if label) if "rows" in attrs else None
        blocks.append(Block(opened[0].group("name"), attrs.get("metric"), rows, opened[1], number))
        opened = None
    if opened is not None:
        raise MarkerError(f"{where}:{opened[1] + 1}: table {opened[0].group('name')!r} is never closed: add "
                          f"'<!-- /table -->' on its own line after the table")
    return blocks


def pages_with_markers(pages: Iterable[str | Path]) -> dict[Path, list[Block]]:
    """``{page: blocks}`` for the Markdown files given (folders: every ``*.md`` under them) that hold a marker.

    Raises:
        MarkerError: a page's markers are malformed.
    """
    found = {}
    for entry in pages:
        entry = Path(entry)
        files = sorted(entry.rglob("*.md")) if entry.is_dir() else [entry]
        for page in files:
            if "_ext" in page.parts:
                continue
            text = page.read_text(encoding="utf-8")
            blocks = find_blocks(text, str(page))
            if blocks:
                found[page] = blocks
    return found


def write_into(page: str | Path, table: TableData) -> int:
    """Render ``table`` into every block of ``page`` named for it; returns how many blocks.

    The file is rewritten atomically, and only when its content changes.

    Raises:
        MarkerError: the page has no block for this table (the message says which markers to add),
            or its markers are malformed.
        TableError: a block asks for an unknown metric or row.
    """
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    blocks = [block for block in find_blocks(text, str(page)) if block.name == table.name]
    if not blocks:
        raise MarkerError(f"{page} has no marker for table {table.name!r}: put '<!-- table: {table.name} -->' and "
                          f"'<!-- /table -->', each on its own line, where the table goes")
    lines = text.splitlines()
    for block in reversed(blocks):
        content = render(table, metric=block.metric, rows=block.rows)
        lines[block.start + 1:block.end] = ["", content, ""]
    new = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    if new != text:
        with atomic_write(page) as handle:
            handle.write(new)
    return len(blocks)


_NUMBER = r"[-+]?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_CELL = re.compile(rf"^\s*(?P<central>{_NUMBER})(?:\s*\[\s*(?P<low>{_NUMBER})\s*,\s*(?P<high>{_NUMBER})\s*\])?\s*$")


def page_cells(text: str, block: Block, where: str) -> dict[tuple[str, int], dict[str, float]]:
    """The numbers a page shows in one block: ``{(row label, t): {"central", "low", "high"}}``.

    Only the columns headed ``t=N`` are read (training times are not); ``-`` cells are skipped.

    Raises:
        MarkerError: the block holds no Markdown table.
        TableError: a cell that is not a number, nor ``median [min, max]``.
    """
    lines = text.splitlines()[block.start + 1:block.end]
    table = [line.strip() for line in lines if line.strip().startswith("|")]
    if len(table) < 2:
        raise MarkerError(f"{where}:{block.start + 1}: the block of table {block.name!r} holds no Markdown table; "
                          f"run make tables to write it")

    def split(line):
        return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]

    header = split(table[0])
    columns = {i: int(cell[2:]) for i, cell in enumerate(header) if re.fullmatch(r"t=\d+", cell)}
    cells = {}
    for line in table[2:]:
        row = split(line)
        for i, t in columns.items():
            if i >= len(row) or row[i] == "-":
                continue
            match = _CELL.match(row[i])
            if not match:
                raise TableError(f"{where}: table {block.name!r}, row {row[0]!r}, column t={t}: {row[i]!r} is not a "
                                 f"number or 'median [min, max]'")
            cells[(row[0], t)] = {key: float(value) for key, value in match.groupdict().items() if value is not None}
    return cells


# --- checking ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Deviation:
    """One checked number: where it is, the committed and fresh values, and how far apart in the rule's unit."""

    where: str  # the record's or page's path
    table: str
    row: str
    t: int
    part: str  # "central", "low" or "high"
    metric: str
    committed: float
    fresh: float
    size: float
    unit: str
    within: bool
    allowance: str

    def describe(self) -> str:
        """One line: ``docs/x.md: table T, row R, t=16 (median): committed -19.44, fresh -21.12: 1.68 dB, more than 1 dB``."""
        part = {"central": "", "low": " (min over seeds)", "high": " (max over seeds)"}[self.part]
        size = f"{self.size:.3g} {self.unit}".strip() if self.unit != "relative" else f"{self.size:.1%}"
        verdict = "within" if self.within else "more than"
        return (f"{self.where}: table {self.table!r}, row {self.row!r}, t={self.t}{part}, {self.metric}: committed "
                f"{self.committed:.4g}, fresh {self.fresh:.4g}: off by {size}, {verdict} the tolerance {self.allowance}")


@dataclasses.dataclass
class CheckReport:
    """The outcome of checking committed tables against fresh runs.

    Attributes:
        deviations: every number compared (records' and pages' cells).
        problems: structural differences (a row or column a side lacks), each one line.
    """

    deviations: list[Deviation] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def failures(self) -> list[Deviation]:
        """The numbers out of tolerance."""
        return [d for d in self.deviations if not d.within]

    @property
    def ok(self) -> bool:
        """Whether everything is within tolerance and nothing is missing."""
        return not self.failures and not self.problems

    def largest(self, unit: str = "dB") -> Deviation | None:
        """The largest deviation measured in ``unit`` (``None`` when there is none)."""
        sized = [d for d in self.deviations if d.unit == unit and math.isfinite(d.size)]
        return max(sized, key=lambda d: d.size) if sized else None

    def extend(self, other: CheckReport) -> None:
        """Add another report's findings to this one."""
        self.deviations += other.deviations
        self.problems += other.problems


def compare_records(committed: TableData, fresh: TableData, where: str, tolerance: Tolerance | None = None) -> CheckReport:
    """Every value a committed record holds at its iterations against a fresh one, for every metric."""
    tolerance = tolerance or Tolerance()
    report = CheckReport()
    fresh_rows = {row.label: row for row in fresh.solvers}
    committed_labels = {row.label for row in committed.solvers}
    for label in fresh_rows:
        if label not in committed_labels:
            report.problems.append(f"{where}: table {committed.name!r} has no row {label!r}, which the fresh run has")
    for row in committed.solvers:
        other = fresh_rows.get(row.label)
        if other is None:
            report.problems.append(f"{where}: table {committed.name!r} row {row.label!r} is not in the fresh run")
            continue
        cell = f"{where}: table {committed.name!r} row {row.label!r}"
        if list(row.seeds) != list(other.seeds):
            report.problems.append(f"{cell}: trained over seeds {row.seeds}, the fresh run over {other.seeds}")
        else:
            for seed, was, now in zip(row.seeds, row.seed_status, other.seed_status):
                if was != now:  # a seed that newly diverges (or no longer does) changes the median and spread
                    report.problems.append(f"{cell}: training seed {seed} is {now!r} in the fresh run, {was!r} in "
                                           f"the committed one")
        for metric, parts in row.curves.items():
            info = committed.metrics[metric]
            theirs = other.curves.get(metric)
            if theirs is None:
                report.problems.append(f"{cell}: the fresh run has no {metric}")
                continue
            for part, values in parts.items():
                if values is None or (part != "central" and row.ok_seeds < 2):
                    continue  # nothing committed to compare (no spread over fewer than two seeds)
                shown = {"central": "", "low": " (min over seeds)", "high": " (max over seeds)"}[part]
                if theirs.get(part) is None or (part != "central" and other.ok_seeds < 2):
                    report.problems.append(f"{cell}{shown}, {metric}: the committed table has this value over "
                                           f"{row.ok_seeds} seeds that did not diverge; the fresh run has none "
                                           f"({other.ok_seeds} seeds did not diverge)")
                    continue
                beyond = [t for t in committed.iterations if t > len(theirs[part])]
                if beyond:
                    report.problems.append(f"{cell}{shown}, {metric}: t={', '.join(map(str, beyond))} is beyond "
                                           f"the fresh run's depth {len(theirs[part])}")
                for t in committed.iterations:
                    if t > len(theirs[part]):
                        continue
                    size, within, unit = tolerance.deviation(info, values[t - 1], theirs[part][t - 1])
                    report.deviations.append(Deviation(where, committed.name, row.label, t, part, metric,
                                                       values[t - 1], theirs[part][t - 1], size, unit, within,
                                                       tolerance.allowance(info)))
    return report


def compare_page(page: str | Path, fresh: TableData, tolerance: Tolerance | None = None) -> CheckReport:
    """The numbers every block of ``page`` for ``fresh``'s table shows, against the fresh record.

    Raises:
        MarkerError: the page has no block for this table, or malformed markers.
    """
    tolerance = tolerance or Tolerance()
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    blocks = [block for block in find_blocks(text, str(page)) if block.name == fresh.name]
    if not blocks:
        raise MarkerError(f"{page} has no marker for table {fresh.name!r}")
    report = CheckReport()
    for block in blocks:
        metric, info = fresh.metric(block.metric)
        cells = page_cells(text, block, str(page))
        shown_rows = list(block.rows) if block.rows else [row.label for row in fresh.solvers]
        for label in shown_rows:
            for t in fresh.iterations:
                if (label, t) not in cells:
                    report.problems.append(f"{page}: table {fresh.name!r} shows no cell for row {label!r} at t={t}, "
                                           f"which the fresh run has (run make tables)")
        for (label, t), values in cells.items():
            try:
                row = fresh.solver(label)
            except TableError:
                report.problems.append(f"{page}: table {fresh.name!r} shows row {label!r}, which the fresh run lacks")
                continue
            parts = row.curves.get(metric)
            if parts is None or t > fresh.depth:
                report.problems.append(f"{page}: table {fresh.name!r} row {label!r} t={t}: no such value in the "
                                       f"fresh run")
                continue
            for part, value in values.items():
                if parts.get(part) is None:
                    if part != "central":
                        report.problems.append(f"{page}: table {fresh.name!r} row {label!r} t={t} shows a spread; "
                                               f"the fresh run has none")
                    continue
                size, within, unit = tolerance.deviation(info, value, parts[part][t - 1])
                report.deviations.append(Deviation(str(page), fresh.name, label, t, part, metric, value,
                                                   parts[part][t - 1], size, unit, within, tolerance.allowance(info)))
    return report


def check(committed: TableData, fresh: TableData, pages: Iterable[str | Path], *, record: str = "",
          tolerance: Tolerance | None = None) -> CheckReport:
    """A committed table (its record and every page in ``pages`` showing it) against a fresh record.

    Raises:
        MarkerError: a page given holds no block for this table.
    """
    report = compare_records(committed, fresh, record or f"{committed.name}.json", tolerance)
    for page in pages:
        report.extend(compare_page(page, fresh, tolerance))
    return report


def require_pages(name: str, found: dict[Path, list[Block]], tables_dir: str | Path) -> list[Path]:
    """The pages showing table ``name``.

    Raises:
        MarkerError: no page shows it.
    """
    pages = [page for page, blocks in found.items() if any(block.name == name for block in blocks)]
    if not pages:
        raise MarkerError(f"no page shows table {name!r} ({Path(tables_dir) / (name + '.toml')}): put "
                          f"'<!-- table: {name} -->' and '<!-- /table -->', each on its own line, where it goes")
    return pages


def unknown_markers(found: dict[Path, list[Block]], tables_dir: str | Path) -> list[str]:
    """One line per block naming a table that has no configuration in ``tables_dir``."""
    known = set(table_names(tables_dir))
    return [f"{page}:{block.start + 1}: marker for table {block.name!r}, but there is no "
            f"{Path(tables_dir) / (block.name + '.toml')} (tables: {', '.join(sorted(known)) or 'none'})"
            for page, blocks in found.items() for block in blocks if block.name not in known]

