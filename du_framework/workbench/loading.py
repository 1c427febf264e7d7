"""Reading saved runs back: a run folder (or an in-memory results dict) as plain NumPy arrays.

:func:`load_run` reads a folder written by ``unfold compare`` (``results.json`` of
schema version 2 or 3, and ``training.csv`` / ``stages.csv`` when saved) or by
``unfold train`` (checkpoints only: configuration, problem facts, the stored
parameters and the loss history when saved, but no evaluation curves). Every file
is untrusted input: JSON and CSV files are size-checked before they are read
(:data:`MAX_JSON_BYTES`, :data:`MAX_CSV_BYTES`), every value's type and every
curve's length is checked, and a failure names the file and the entry
(``results.json: solvers["dugd"].metrics["mse"][3] is "x", expected a number or
null``). Nothing is unpickled; checkpoints are read with
:func:`du_framework.io.checkpoint.read_checkpoint` (header-checked ``.npz``).

The manifest (``manifest.json``) lists every file of a published run with its
size and sha256. :func:`load_run` checks all of them: a file the loader reads
(``results.json``, ``config.json``, ``training.csv``, ``stages.csv``, the
checkpoints of a training run) that is missing or changed raises
:class:`ManifestMismatchError` (the numbers would not be the ones the run
produced; ``verify=False`` reads it anyway, with a warning); any other listed
file (a plot, ``results.csv``) that is missing or changed is a warning in
:attr:`Run.warnings`. A folder without a manifest (an older or incomplete run) is
read with a warning.

See docs/publishing.md.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .results import STAGES_CSV_COLUMNS, TRAINING_CSV_COLUMNS, LossHistory, SolverResult, StageSummary

__all__ = ["load_run", "Run", "SolverRun", "MetricInfo", "LossHistory", "StageSummary", "RunFileError",
           "ManifestMismatchError", "SUPPORTED_SCHEMAS", "MAX_JSON_BYTES", "MAX_CSV_BYTES", "MAX_CHECKED_BYTES",
           "LONG_FORMAT_COLUMNS"]

SUPPORTED_SCHEMAS = (2, 3)
"""The ``schema_version`` values of ``results.json`` this module reads."""

MAX_JSON_BYTES = 256 * 1024**2
"""Largest JSON file read (results.json, manifest.json, config.json); larger ones are refused unread."""

MAX_CSV_BYTES = 256 * 1024**2
"""Largest CSV file read (training.csv, stages.csv): about 6 million rows of ~42 bytes (50,000 steps
x 10 seeds x 12 solvers); every row becomes Python objects, so a larger file would take gigabytes."""

MAX_CHECKED_BYTES = 256 * 1024**2
"""Largest file listed in manifest.json that :func:`load_run` hashes without reading it (a plot,
``results.csv``, ``tune.db``); a larger one is left unchecked, with a warning."""

_FORMAT_SPEC = re.compile(r"[+\- ]?#?0?\d{0,2},?(?:\.\d{1,2})?[eEfFgG%]?")
"""What a metric's ``format`` in results.json may be: a short float spec (``.3e``, ``.2f``, ``+8.2e``),
width and precision of at most two digits, so a cell is never a huge string."""

LONG_FORMAT_COLUMNS = ("run", "solver", "seed", "status", "iteration", "metric", "value")
"""The keys of each row of :meth:`Run.long_format`, in this order."""


# Files a loaded run's numbers come from: a manifest mismatch in one of them is an error.
_READ_FILES = ("results.json", "config.json", "training.csv", "stages.csv")


class RunFileError(ConfigError):
    """A run folder or one of its files cannot be read (missing, malformed, of an unknown schema)."""


class ManifestMismatchError(RunFileError):
    """A file the loader reads differs from its record in ``manifest.json`` (changed after the run)."""


# --- the data ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """How a run describes one metric (``results.json``'s ``metrics``).

    Attributes:
        name: the key (``mse``, ``nmse_db``).
        label: its title in tables and on axes (``"NMSE (dB)"``).
        lower_is_better: the direction of improvement.
        scale: ``"linear"`` or ``"db"``.
        normalized: whether it is a ratio of means (as the NMSE).
        log_axis: whether to plot it on a log axis: as recorded (schema 3), else
            guessed for a schema-2 run: a linear metric whose values are all
            positive and that is the built-in ``mse`` (plotted on a log axis
            then too) or spans two decades.
        format: a float format spec for tables (recorded, or ``.2f`` for dB and
            ``.3e`` otherwise).
        floor: a value the metric cannot go below in float32 arithmetic, when the
            run records one (a ``floor`` entry), else ``None``.
    """

    name: str
    label: str
    lower_is_better: bool = True
    scale: str = "linear"
    normalized: bool = False
    log_axis: bool | None = None
    format: str = ".3e"
    floor: float | None = None

    @property
    def title(self) -> str:
        """The label, or the name when the label is empty."""
        return self.label or self.name

    def show(self, value: float) -> str:
        """One value formatted for a table (``nan`` for a missing one)."""
        value = float(value)
        return "nan" if math.isnan(value) else format(value, self.format)


SolverRun = SolverResult
"""The record :func:`load_run` returns for each solver: the one result model,
:class:`~du_framework.workbench.results.SolverResult` (this name is kept for code written before)."""


@dataclasses.dataclass
class Run:
    """A saved run, read back: configuration, facts, curves, parameters, losses, provenance.

    Attributes:
        label: how reports and overlays name the run (the folder's name, or ``"run"``).
        folder: the run folder (``None`` for a run built from an in-memory dict).
        kind: ``"compare"`` (evaluation curves) or ``"train"`` (checkpoints only).
        schema_version: ``results.json``'s version (``None`` for a training run).
        config: the resolved configuration (``config.json`` / ``results.json``).
        problem: facts about the problem (``Problem.describe()``).
        metrics: every metric by name, in the declared order (empty for a training run).
        primary_metric: the metric shown by default (``None`` for a training run).
        evaluation: seed, batch size, batches and iterations of the evaluation.
        solvers: every solver by label, in the run's order.
        summary: how the central curve and spread were computed (schema 3), else ``None``.
        train_seeds: the training seeds of the run.
        provenance: versions, backend, command line and git revision, if recorded.
        manifest: ``manifest.json`` as read, or ``None``.
        verified: the files whose sha256 matched the manifest.
        warnings: what a reader should know (an unchecked or changed file, ...).
        missing: what this run cannot provide, in words (curves of a training run, ...).
        framework_version, created: as recorded.
    """

    label: str
    folder: Path | None
    kind: str
    schema_version: int | None
    config: dict[str, Any]
    problem: dict[str, Any]
    metrics: dict[str, MetricInfo]
    primary_metric: str | None
    evaluation: dict[str, Any]
    solvers: dict[str, SolverRun]
    summary: dict[str, Any] | None = None
    train_seeds: list[int] = dataclasses.field(default_factory=list)
    provenance: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    verified: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    framework_version: str | None = None
    created: str | None = None

    @property
    def depth(self) -> int:
        """Iterations per curve (``evaluation.iterations``, else ``train.depth``, else 0)."""
        value = self.evaluation.get("iterations") or (self.config.get("train") or {}).get("depth") or 0
        return int(value)

    @property
    def has_curves(self) -> bool:
        """Whether the run holds evaluation curves (a run of ``unfold compare``)."""
        return any(solver.metrics for solver in self.solvers.values())

    @property
    def has_losses(self) -> bool:
        """Whether the run holds a loss history (``training.csv``)."""
        return any(solver.losses for solver in self.solvers.values())

    def metric(self, name: str | None = None) -> MetricInfo:
        """The metric called ``name`` (default: the primary one).

        Raises:
            RunFileError: the run has no curves, or no metric of that name (the
                message lists its metrics and the nearest).
        """
        from ..errors import nearest

        if not self.metrics:
            raise RunFileError(f"run {self.label!r} holds no evaluation curves ({'; '.join(self.missing)})")
        name = name or self.primary_metric or next(iter(self.metrics))
        if name not in self.metrics:
            hint = nearest(name, self.metrics)
            raise RunFileError(f"run {self.label!r} has no metric {name!r}; its metrics: {', '.join(self.metrics)}"
                               + (f" (did you mean {hint!r}?)" if hint else ""))
        return self.metrics[name]

    @classmethod
    def from_results(cls, results: Mapping[str, Any], folder: str | Path | None = None, *,
                     label: str | None = None) -> Run:
        """A run from a results dict (the content of ``results.json``, as ``report.results_dict`` builds it).

        With ``folder``, ``training.csv`` and ``stages.csv`` are read from it when
        present (no manifest check: the folder may still be being written).

        Raises:
            RunFileError: the dict does not follow schema 2 or 3 (the message
                names the entry).
        """
        folder = Path(folder) if folder is not None else None
        run = _parse_results(results, "results", label or (folder.name if folder else "run"), folder)
        if folder is not None:
            _attach_history(run, folder)
        return run

    def long_format(self) -> list[dict[str, Any]]:
        """Every curve value as one row: ``{"run", "solver", "seed", "status", "iteration", "metric", "value"}``.

        A solver with per-seed curves gives one row per seed (``seed``: the
        training seed; ``status``: ``"ok"`` or ``"diverged"``), every seed
        including diverged ones (NaN where their value was not finite); a solver
        without (classical, loaded from a checkpoint) gives its one curve with
        ``seed`` and ``status`` ``None``. ``iteration`` counts from 1; ``value`` is
        a float (NaN for a missing value). The central curve (median) is not
        repeated: it is computed from these rows.
        """
        rows = []
        for label, solver in self.solvers.items():
            for name, curve in solver.metrics.items():
                per_seed = (solver.per_seed_metrics or {}).get(name)
                if per_seed is not None and len(solver.seeds):
                    series = [(seed, status, values) for seed, status, values in
                              zip(solver.seeds, solver.seed_status, per_seed)]
                else:
                    series = [(None, None, curve)]
                for seed, status, values in series:
                    for t, value in enumerate(values, 1):
                        rows.append({"run": self.label, "solver": label, "seed": seed, "status": status,
                                     "iteration": t, "metric": name, "value": float(value)})
        return rows

    def to_dataframe(self):
        """:meth:`long_format` as a :class:`pandas.DataFrame` (needs pandas, which du-framework does not require).

        Raises:
            ImportError: pandas is not installed (the message says how to get it).
        """
        try:
            import pandas
        except ImportError as error:
            raise ImportError("Run.to_dataframe needs pandas (pip install pandas); Run.long_format() gives the "
                              "same rows as a list of dicts") from error
        return pandas.DataFrame(self.long_format(), columns=list(LONG_FORMAT_COLUMNS))


# --- reading files -------------------------------------------------------------------------------


def _regular_size(path: Path, limit: int, what: str) -> int:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise RunFileError(f"{what} {str(path)!r} does not exist") from None
    except OSError as error:
        raise RunFileError(f"{what} {str(path)!r} cannot be read ({error.strerror or error})") from None
    if not stat.S_ISREG(info.st_mode):
        raise RunFileError(f"{what} {str(path)!r} is not a regular file")
    if info.st_size > limit:
        raise RunFileError(f"{what} {str(path)!r} is {info.st_size} bytes, more than the {limit} bytes this "
                           f"reader accepts; it is not a file unfold wrote")
    return info.st_size


def _read_bytes(path: Path, limit: int, what: str) -> bytes:
    _regular_size(path, limit, what)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise RunFileError(f"{what} {str(path)!r} cannot be read ({error.strerror or error})") from None
    if len(data) > limit:
        raise RunFileError(f"{what} {str(path)!r} grew beyond {limit} bytes while being read")
    return data


def _read_json(path: Path, what: str | None = None) -> Any:
    what = what or path.name
    data = _read_bytes(path, MAX_JSON_BYTES, what)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RunFileError(f"{what} {str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        ended = data.rstrip().endswith((b"}", b"]"))  # a file unfold wrote ends with its top-level object
        state = "not valid JSON" if ended and error.pos < len(data.rstrip()) else "truncated (it ends early)"
        raise RunFileError(f"{what} {str(path)!r} is {state}: {error.msg} at line {error.lineno}, "
                           f"column {error.colno}") from None
    except RecursionError:
        raise RunFileError(f"{what} {str(path)!r} is nested too deeply to be a results file") from None


def _read_csv(path: Path, columns: tuple[str, ...], what: str) -> list[tuple[int, dict[str, str]]]:
    data = _read_bytes(path, MAX_CSV_BYTES, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RunFileError(f"{what} {str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise RunFileError(f"{what} {str(path)!r} is empty; expected the header {','.join(columns)}")
        missing = [name for name in columns if name not in header]
        if missing:
            raise RunFileError(f"{what} {str(path)!r} lacks the column(s) {', '.join(missing)}; its header is "
                               f"{','.join(header)[:200]!r}, expected {','.join(columns)}")
        index = {name: header.index(name) for name in columns}
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise RunFileError(f"{what} {str(path)!r}, line {reader.line_num}: {len(row)} fields, expected "
                                   f"{len(header)} (truncated or malformed)")
            rows.append((reader.line_num, {name: row[i] for name, i in index.items()}))
    except csv.Error as error:
        raise RunFileError(f"{what} {str(path)!r}, line {reader.line_num}: {error}") from None
    return rows


def _csv_number(text: str, kind: type, where: str) -> Any:
    if text == "":  # not recorded (a step the writer could not place in a stage)
        return -1 if kind is int else math.nan
    try:
        value = kind(text)
    except ValueError:
        raise RunFileError(f"{where} is {text[:40]!r}, expected {'an integer' if kind is int else 'a number'}") from None
    return value


def _sha256(path: Path, limit: int) -> str | None:
    """The sha256 of ``path``'s first ``limit`` bytes; ``None`` when it holds more (it grew since its size was read)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            size += len(block)
            if size > limit:
                return None
            digest.update(block)
    return digest.hexdigest()


def _check_limit(relative: str) -> int:
    """The most bytes of ``relative`` (a file a manifest lists) worth hashing: what its reader accepts."""
    from ..io.safe_files import DEFAULT_LIMIT

    name = relative.lower()
    if name.endswith(".json"):
        return MAX_JSON_BYTES
    if name.endswith(".csv"):
        return MAX_CSV_BYTES
    if name.endswith(".npz"):
        return DEFAULT_LIMIT
    return MAX_CHECKED_BYTES


# --- checking a results dict ---------------------------------------------------------------------


class _Checker:
    """Type checks that name the file and the entry (``results.json: solvers["a"].metrics``)."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, path: str, value: Any, expected: str) -> RunFileError:
        shown = json.dumps(value)[:60] if _jsonable(value) else type(value).__name__
        return RunFileError(f"{self.where}: {path or 'the top level'} is {shown}, expected {expected}")

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, value, "an object")
        return value

    def key(self, parent: dict[str, Any], name: str, path: str) -> Any:
        if name not in parent:
            raise RunFileError(f"{self.where}: {path or 'the top level'} has no {name!r} entry")
        return parent[name]

    def lst(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, value, "a list")
        return value

    def text(self, value: Any, path: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(path, value, "a string" + (" or null" if optional else ""))
        return value

    def integer(self, value: Any, path: str, *, optional: bool = False) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, value, "an integer" + (" or null" if optional else ""))
        return value

    def number(self, value: Any, path: str, *, optional: bool = True) -> float:
        if value is None and optional:
            return math.nan
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise self.fail(path, value, "a number" + (" or null" if optional else ""))
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, value, "true or false")
        return value

    def curve(self, value: Any, path: str, length: int | None) -> np.ndarray:
        if isinstance(value, (np.ndarray, tuple)):  # an in-memory results dict
            value = np.asarray(value).tolist()
        items = self.lst(value, path)
        if length is not None and len(items) != length:
            raise RunFileError(f"{self.where}: {path} has {len(items)} values, expected {length} (one per iteration)")
        return np.array([self.number(item, f"{path}[{i}]") for i, item in enumerate(items)], np.float64)

    def array(self, value: Any, path: str) -> np.ndarray:
        """A number or a (nested, rectangular) list of numbers or nulls as float64."""
        def walk(item, where, depth):
            if isinstance(item, np.ndarray) and item.dtype.kind in "biuf":  # an in-memory results dict
                return item.astype(np.float64).tolist()
            if depth > 32:
                raise RunFileError(f"{self.where}: {where} is nested more than 32 levels deep")
            if isinstance(item, list):
                return [walk(inner, f"{where}[{i}]", depth + 1) for i, inner in enumerate(item)]
            return self.number(item, where)

        nested = walk(value, path, 0)
        try:
            return np.array(nested, np.float64)
        except ValueError:
            raise RunFileError(f"{self.where}: {path} is a ragged list (rows of different lengths), expected an "
                               f"array of numbers") from None

    def params(self, value: Any, path: str) -> dict[str, np.ndarray]:
        table = self.obj(value, path)
        return {name: self.array(item, f"{path}[{json.dumps(name)}]") for name, item in table.items()}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _metric_info(name: str, entry: Any, check: _Checker, path: str) -> MetricInfo:
    entry = check.obj(entry, path)
    scale = check.text(entry.get("scale", "linear"), f"{path}.scale")
    if scale not in ("linear", "db"):
        raise check.fail(f"{path}.scale", scale, '"linear" or "db"')
    spec = entry.get("format")
    if spec is not None:
        check.text(spec, f"{path}.format")
        expected = ("a short float format spec such as \".3e\" or \".2f\" (sign, width and precision of at "
                    "most two digits, type e, f, g or %)")
        if not _FORMAT_SPEC.fullmatch(spec):  # checked before formatting: ".900000000e" would take 900 MB
            raise check.fail(f"{path}.format", spec, expected)
        try:
            format(1.0, spec)
        except (ValueError, TypeError):
            raise check.fail(f"{path}.format", spec, expected) from None
    floor = entry.get("floor")
    if isinstance(floor, dict):
        floor = floor.get("value")
    floor = check.number(floor, f"{path}.floor") if floor is not None else None
    log_axis = entry.get("log_axis")
    return MetricInfo(
        name=name, label=check.text(entry.get("label", name), f"{path}.label") or name,
        lower_is_better=check.boolean(entry.get("lower_is_better", True), f"{path}.lower_is_better"),
        scale=scale, normalized=check.boolean(entry.get("normalized", False), f"{path}.normalized"),
        log_axis=None if log_axis is None else check.boolean(log_axis, f"{path}.log_axis"),
        format=spec or (".2f" if scale == "db" else ".3e"),
        floor=floor if floor is not None and math.isfinite(floor) else None)


def _guess_log_axis(info: MetricInfo, curves: Iterable[np.ndarray]) -> MetricInfo:
    if info.log_axis is not None:
        return info
    log = False
    if info.scale == "linear":
        values = np.concatenate([np.ravel(c) for c in curves]) if curves else np.zeros(0)
        values = values[np.isfinite(values)]
        log = bool(values.size and np.all(values > 0) and (info.name == "mse" or values.max() / values.min() > 100))
    return dataclasses.replace(info, log_axis=log)


_SOLVER_KNOWN = {"name", "options", "metrics", "spread", "params", "references", "trainable", "seeds",
                 "seed_status", "per_seed", "representative_seed", "train_seconds", "compile_seconds",
                 "compilations", "final_loss", "loaded_from", "problem_mismatch"}


def _parse_solver(label: str, entry: Any, check: _Checker, metrics: dict[str, MetricInfo], depth: int | None,
                  schema: int, train_seed: int | None) -> SolverRun:
    path = f"solvers[{json.dumps(label)}]"
    entry = check.obj(entry, path)
    curves_in = check.obj(check.key(entry, "metrics", path), f"{path}.metrics")
    curves = {}
    for name, values in curves_in.items():
        if name not in metrics:
            raise RunFileError(f"{check.where}: {path}.metrics has {name!r}, which the run's metrics do not "
                               f"describe ({', '.join(metrics)})")
        curves[name] = check.curve(values, f"{path}.metrics[{json.dumps(name)}]", depth)
    trainable = check.boolean(entry.get("trainable", False), f"{path}.trainable")
    references = {}
    for param, table in check.obj(entry.get("references") or {}, f"{path}.references").items():
        where = f"{path}.references[{json.dumps(param)}]"
        references[param] = {ref: check.array(values, f"{where}[{json.dumps(ref)}]")
                             for ref, values in check.obj(table, where).items()}
    final_loss = entry.get("final_loss")
    solver = SolverRun(
        label=label, name=check.text(check.key(entry, "name", path), f"{path}.name"),
        options=check.obj(entry.get("options") or {}, f"{path}.options"), trainable=trainable, metrics=curves,
        params=check.params(entry.get("params") or {}, f"{path}.params"), references=references,
        final_loss=None if final_loss is None else check.number(final_loss, f"{path}.final_loss"),
        train_seconds=check.number(entry.get("train_seconds", 0.0) or 0.0, f"{path}.train_seconds"),
        compile_seconds=check.number(entry.get("compile_seconds", 0.0) or 0.0, f"{path}.compile_seconds"),
        compilations=check.integer(entry.get("compilations", 0) or 0, f"{path}.compilations"),
        loaded_from=check.text(entry.get("loaded_from"), f"{path}.loaded_from", optional=True),
        problem_mismatch=entry.get("problem_mismatch"),
        extra={key: value for key, value in entry.items() if key not in _SOLVER_KNOWN})
    if schema >= 3:
        _parse_seeds(solver, entry, check, path, depth)
    elif trainable and solver.loaded_from is None and train_seed is not None:
        # schema 2 trained every learned solver once, from train.seed
        solver.seeds, solver.seed_status = [train_seed], ["ok"]
        solver.per_seed_metrics = {name: curve[None, :] for name, curve in curves.items()}
        solver.per_seed_params = [solver.params]
        solver.per_seed_final_loss = [solver.final_loss]
        solver.diverged_at = [None]
        solver.representative_seed = train_seed
    return solver


def _parse_seeds(solver: SolverRun, entry: dict[str, Any], check: _Checker, path: str, depth: int | None) -> None:
    seeds = [check.integer(s, f"{path}.seeds[{i}]") for i, s in enumerate(check.lst(entry.get("seeds", []),
                                                                                      f"{path}.seeds"))]
    status = [check.text(s, f"{path}.seed_status[{i}]") for i, s in
              enumerate(check.lst(entry.get("seed_status", []), f"{path}.seed_status"))]
    if len(status) != len(seeds):
        raise RunFileError(f"{check.where}: {path}.seed_status has {len(status)} entries for {len(seeds)} seeds")
    for i, value in enumerate(status):
        if value not in ("ok", "diverged"):
            raise check.fail(f"{path}.seed_status[{i}]", value, '"ok" or "diverged"')
    solver.seeds, solver.seed_status = seeds, status
    solver.representative_seed = check.integer(entry.get("representative_seed"), f"{path}.representative_seed",
                                               optional=True)
    spread = entry.get("spread")
    if spread is not None:
        solver.spread = {}
        for name, bounds in check.obj(spread, f"{path}.spread").items():
            where = f"{path}.spread[{json.dumps(name)}]"
            bounds = check.obj(bounds, where)
            if name not in solver.metrics:
                raise RunFileError(f"{check.where}: {where} is the spread of a metric the solver has no curve of")
            solver.spread[name] = (check.curve(check.key(bounds, "low", where), f"{where}.low", depth),
                                   check.curve(check.key(bounds, "high", where), f"{where}.high", depth))
    per_seed = entry.get("per_seed")
    if per_seed is None:
        return
    where = f"{path}.per_seed"
    per_seed = check.obj(per_seed, where)
    count = len(seeds)

    def sized(value, name):
        items = check.lst(value, f"{where}.{name}")
        if len(items) != count:
            raise RunFileError(f"{check.where}: {where}.{name} has {len(items)} entries for {count} seeds")
        return items

    solver.per_seed_metrics = {}
    for name, rows in check.obj(per_seed.get("metrics") or {}, f"{where}.metrics").items():
        rows = sized(rows, f"metrics[{json.dumps(name)}]")
        solver.per_seed_metrics[name] = np.array(
            [check.curve(row, f"{where}.metrics[{json.dumps(name)}][{i}]", depth) for i, row in enumerate(rows)],
            np.float64).reshape(count, -1)
    if per_seed.get("params") is not None:
        solver.per_seed_params = [check.params(p, f"{where}.params[{i}]")
                                  for i, p in enumerate(sized(per_seed["params"], "params"))]
    if per_seed.get("final_loss") is not None:
        solver.per_seed_final_loss = [None if v is None else check.number(v, f"{where}.final_loss[{i}]")
                                      for i, v in enumerate(sized(per_seed["final_loss"], "final_loss"))]
    if per_seed.get("diverged_at") is not None:
        solver.diverged_at = []
        for i, value in enumerate(sized(per_seed["diverged_at"], "diverged_at")):
            if value is None:
                solver.diverged_at.append(None)
                continue
            at = check.obj(value, f"{where}.diverged_at[{i}]")
            solver.diverged_at.append({key: check.integer(check.key(at, key, f"{where}.diverged_at[{i}]"),
                                                          f"{where}.diverged_at[{i}].{key}")
                                       for key in ("stage", "step")})


def _parse_results(results: Any, where: str, label: str, folder: Path | None) -> Run:
    check = _Checker(where)
    results = check.obj(results, "")
    version = results.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        shown = json.dumps(version)[:40] if _jsonable(version) else type(version).__name__
        raise RunFileError(f"{where}: schema_version is {shown}, "
                           f"expected an integer (2 or 3); is it a results.json written by unfold compare?")
    if version < min(SUPPORTED_SCHEMAS):
        raise RunFileError(f"{where}: schema_version {version} is too old to read (this du-framework reads "
                           f"{' and '.join(map(str, SUPPORTED_SCHEMAS))}); version 1 predates the per-metric curves. "
                           f"Run the comparison again with this version (its configuration is in config.json)")
    if version > max(SUPPORTED_SCHEMAS):
        raise RunFileError(f"{where}: schema_version {version} was written by a newer du-framework (this one reads "
                           f"{' and '.join(map(str, SUPPORTED_SCHEMAS))}); upgrade du-framework to read it")
    config = check.obj(results.get("config") or {}, "config")
    evaluation = check.obj(results.get("evaluation") or {}, "evaluation")
    depth = evaluation.get("iterations", (config.get("train") or {}).get("depth"))
    depth = check.integer(depth, "evaluation.iterations", optional=True)
    metrics = {name: _metric_info(name, entry, check, f"metrics[{json.dumps(name)}]")
               for name, entry in check.obj(check.key(results, "metrics", ""), "metrics").items()}
    if not metrics:
        raise RunFileError(f"{where}: metrics is empty; a run describes at least one metric")
    primary = check.text(results.get("primary_metric") or next(iter(metrics)), "primary_metric")
    if primary not in metrics:
        raise RunFileError(f"{where}: primary_metric {primary!r} is not one of the metrics ({', '.join(metrics)})")
    train_seed = (config.get("train") or {}).get("seed")
    train_seed = train_seed if isinstance(train_seed, int) and not isinstance(train_seed, bool) else None
    solvers = {label_: _parse_solver(label_, entry, check, metrics, depth, version, train_seed)
               for label_, entry in check.obj(check.key(results, "solvers", ""), "solvers").items()}
    for name, info in list(metrics.items()):
        metrics[name] = _guess_log_axis(info, [s.metrics[name] for s in solvers.values() if name in s.metrics])
    summary = results.get("summary")
    train_seeds = results.get("train_seeds")
    if version >= 3:
        summary = check.obj(summary, "summary") if summary is not None else None
        train_seeds = [check.integer(s, f"train_seeds[{i}]") for i, s in
                       enumerate(check.lst(train_seeds or [], "train_seeds"))]
    else:
        train_seeds = [train_seed] if train_seed is not None and any(s.seeds for s in solvers.values()) else []
    provenance = results.get("provenance")
    return Run(label=label, folder=folder, kind="compare", schema_version=version, config=config,
               problem=check.obj(results.get("problem") or {}, "problem"), metrics=metrics, primary_metric=primary,
               evaluation=evaluation, solvers=solvers, summary=summary, train_seeds=train_seeds,
               provenance=provenance if isinstance(provenance, dict) else None,
               framework_version=results.get("framework_version") if isinstance(
                   results.get("framework_version"), str) else None,
               created=results.get("created") if isinstance(results.get("created"), str) else None)


# --- loss history --------------------------------------------------------------------------------


def _no_history_reason(run: Run) -> str:
    """Why ``run`` holds no loss history (neither training.csv nor stages.csv), by cause."""
    if run.kind == "compare" and run.schema_version is not None and run.schema_version < 3:
        return (f"the run predates results schema 3, the first to save training.csv and stages.csv: it is schema "
                f"{run.schema_version} and holds only each solver's final_loss")
    if run.kind == "compare" and not any(solver.seeds or solver.final_loss is not None
                                         for solver in run.solvers.values()):
        return "nothing was trained in this run: no solver has training seeds, so there is no loss to record"
    if run.folder is None:
        return "the run was read from a results dict without its folder (pass the folder to Run.from_results)"
    return f"its folder {str(run.folder)!r} holds no training.csv or stages.csv"


def _attach_history(run: Run, folder: Path) -> None:
    training, stages = folder / "training.csv", folder / "stages.csv"
    if training.exists():
        grouped: dict[tuple[str, int], list[tuple[int, int, int, float]]] = {}
        for line, row in _read_csv(training, TRAINING_CSV_COLUMNS, "training.csv"):
            where = f"training.csv {str(training)!r}, line {line}"
            seed = _csv_number(row["seed"], int, f"{where}: seed") if row["seed"] not in ("", "None") else -1
            grouped.setdefault((row["solver"], seed), []).append((
                _csv_number(row["step"], int, f"{where}: step"), _csv_number(row["stage"], int, f"{where}: stage"),
                _csv_number(row["active_depth"], int, f"{where}: active_depth"),
                _csv_number(row["loss"], float, f"{where}: loss")))
        for (label, seed), rows in grouped.items():
            solver = _solver_for(run, label, "training.csv")
            step, stage, depth, loss = (np.array(column) for column in zip(*rows))
            solver.losses[seed] = LossHistory(step.astype(np.int64), stage.astype(np.int64), depth.astype(np.int64),
                                              loss.astype(np.float64))
    else:
        run.missing.append(f"no loss history ({_no_history_reason(run)})")
    if stages.exists():
        grouped2: dict[tuple[str, int], list[tuple[int, int, int, float]]] = {}
        for line, row in _read_csv(stages, STAGES_CSV_COLUMNS, "stages.csv"):
            where = f"stages.csv {str(stages)!r}, line {line}"
            seed = _csv_number(row["seed"], int, f"{where}: seed") if row["seed"] not in ("", "None") else -1
            grouped2.setdefault((row["solver"], seed), []).append((
                _csv_number(row["stage"], int, f"{where}: stage"),
                _csv_number(row["active_depth"], int, f"{where}: active_depth"),
                _csv_number(row["steps"], int, f"{where}: steps"),
                _csv_number(row["mean_loss"], float, f"{where}: mean_loss")))
        for (label, seed), rows in grouped2.items():
            solver = _solver_for(run, label, "stages.csv")
            stage, depth, steps, loss = (np.array(column) for column in zip(*rows))
            solver.stages[seed] = StageSummary(stage.astype(np.int64), depth.astype(np.int64),
                                               steps.astype(np.int64), loss.astype(np.float64))


def _solver_for(run: Run, label: str, what: str) -> SolverRun:
    if label not in run.solvers:
        if run.kind == "train":  # a training run lists only what it trained
            run.solvers[label] = SolverRun(label=label, name=label, options={}, trainable=True, metrics={})
        else:
            raise RunFileError(f"{what} in {str(run.folder)!r} names the solver {label!r}, which results.json does "
                               f"not have ({', '.join(run.solvers) or 'none'})")
    return run.solvers[label]


# --- the manifest --------------------------------------------------------------------------------


def _check_manifest(folder: Path, *, verify: bool, read: set[str]) -> tuple[dict | None, list[str], list[str]]:
    """``(manifest, verified files, warnings)`` of ``folder``; raises on a mismatch in a file in ``read``."""
    path = folder / "manifest.json"
    if not path.exists():
        return None, [], [f"{folder}: no manifest.json (a run from before manifests, or an incomplete one); "
                          f"its files could not be checked"]
    check = _Checker(f"manifest.json {str(path)!r}")
    manifest = check.obj(_read_json(path, "manifest.json"), "")
    if manifest.get("format") != "du-framework-run":
        shown = json.dumps(manifest.get("format"))[:40] if _jsonable(manifest.get("format")) else "?"
        raise RunFileError(f"manifest.json {str(path)!r} is not a du-framework run manifest (format {shown}, "
                           f"expected \"du-framework-run\")")
    files = check.obj(check.key(manifest, "files", ""), "files")
    verified, warnings, errors = [], [], []
    root = folder.resolve()
    for relative, record in files.items():
        where = f"files[{json.dumps(relative)}]"
        record = check.obj(record, where)
        expected = check.text(check.key(record, "sha256", where), f"{where}.sha256")
        target = folder / relative
        if Path(relative).is_absolute() or not target.resolve().is_relative_to(root):
            raise RunFileError(f"manifest.json {str(path)!r} lists {relative!r}, which lies outside the run folder")
        limit = _check_limit(relative)
        if not target.is_file():
            problem = f"{relative} is listed in manifest.json but missing"
        elif target.stat().st_size > limit:  # refused before hashing: no minutes spent on a huge planted file
            if relative in read:
                raise RunFileError(f"{relative} {str(target)!r} is {target.stat().st_size} bytes, more than the "
                                   f"{limit} bytes this reader accepts; it is not a file unfold wrote")
            warnings.append(f"{folder}: {relative} is {target.stat().st_size} bytes, more than the {limit} bytes "
                            f"checked; its sha256 was not checked")
            continue
        elif _sha256(target, limit) != expected:
            problem = f"{relative} was changed after the run was written (its sha256 differs from manifest.json's)"
        else:
            verified.append(relative)
            continue
        (errors if relative in read else warnings).append(f"{folder}: {problem}")
    for name in sorted(read - set(files)):
        warnings.append(f"{folder}: {name} is not listed in manifest.json (added after the run?); read unchecked")
    if errors:
        if verify:
            raise ManifestMismatchError("; ".join(errors) + "; the numbers may not be the ones the run produced. "
                                        "Read it anyway with verify=False (unfold plot/report: --no-verify)")
        warnings.extend(f"{message} (read anyway: verify=False)" for message in errors)
    return manifest, verified, warnings


# --- training runs -------------------------------------------------------------------------------


def _read_config(folder: Path) -> dict[str, Any]:
    if (folder / "config.json").exists():
        return _Checker(f"config.json {str(folder / 'config.json')!r}").obj(_read_json(folder / "config.json"), "")
    toml_path = folder / "config.toml"
    if toml_path.exists():
        data = _read_bytes(toml_path, MAX_JSON_BYTES, "config.toml")
        try:
            return tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise RunFileError(f"config.toml {str(toml_path)!r} is not valid TOML ({error})") from None
    return {}


def _load_training_run(folder: Path, label: str) -> Run:
    from ..io.checkpoint import read_checkpoint
    from ..errors import CheckpointError

    config = _read_config(folder)
    run = Run(label=label, folder=folder, kind="train", schema_version=None, config=config, problem={},
              metrics={}, primary_metric=None, evaluation={}, solvers={})
    configured = {entry.get("label") or entry.get("name"): entry for entry in config.get("solvers", [])
                  if isinstance(entry, dict)}
    files = sorted((folder / "checkpoints").glob("*.npz")) if (folder / "checkpoints").is_dir() else []
    order = {name: i for i, name in enumerate(configured)}
    files.sort(key=lambda p: (order.get(p.stem, len(order)), p.name))  # the configuration's order
    for path in files:
        if path.name.endswith(".last-good.npz"):
            continue
        try:
            metadata, arrays = read_checkpoint(path)
        except CheckpointError as error:
            raise RunFileError(f"checkpoint {error}") from None
        solver_label = metadata.get("label") or path.stem
        entry = configured.get(solver_label, {})
        run.solvers[solver_label] = SolverRun(
            label=solver_label, name=metadata["solver"],
            options=metadata.get("options") or {k: v for k, v in entry.items() if k not in ("name", "label")},
            trainable=True, metrics={}, train_seconds=float(metadata.get("train_seconds") or 0.0),
            stored_params={name.removeprefix("param/"): np.asarray(value, np.float64) for name, value in arrays.items()},
            checkpoint=path, extra={"status": metadata.get("status", "trained")})
        if not run.problem and isinstance(metadata.get("problem"), dict):
            run.problem = dict(metadata["problem"].get("describe") or {})
    classical = [name for name in configured if name not in run.solvers]
    run.missing.append("no evaluation curves and no reported parameters: a run of `unfold train` holds checkpoints "
                       "(the parameters in their stored, raw form); evaluate it with `unfold compare --checkpoints "
                       f"{folder / 'checkpoints'} --config {folder / 'config.toml'} --out NEW`")
    if classical:
        run.missing.append(f"classical solvers not trained (nothing to learn): {', '.join(classical)}")
    train = config.get("train") or {}
    seeds = train.get("seeds") if isinstance(train.get("seeds"), list) else None
    run.train_seeds = seeds or ([train["seed"]] if isinstance(train.get("seed"), int) else [])
    return run


# --- the entry point -----------------------------------------------------------------------------


def load_run(path: str | os.PathLike, *, verify: bool = True, label: str | None = None) -> Run:
    """Read the run folder ``path`` (or its ``results.json``) into a :class:`Run`.

    A folder of ``unfold compare`` gives every metric's curves per solver (and
    per seed, schema 3), the parameters, the loss history when saved; a folder
    of ``unfold train`` gives its configuration, problem facts, the
    checkpoints' stored parameters and the loss history when saved, and says in
    :attr:`Run.missing` what it lacks. ``label`` names the run in reports
    (default: the folder's name).

    Raises:
        RunFileError: not a run folder; a missing, truncated, oversized or
            malformed file; a ``schema_version`` other than 2 or 3 (the message
            names the file and the entry, and what would be right).
        ManifestMismatchError: with ``verify`` (the default), a file the loader
            reads differs from its sha256 in ``manifest.json``.
    """
    path = Path(path)
    if path.is_file() and path.name == "results.json":
        path = path.parent
    if not path.exists():
        raise RunFileError(f"run folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise RunFileError(f"{str(path)!r} is not a run folder (give the folder unfold compare or unfold train "
                           f"wrote, or its results.json)")
    label = label or path.resolve().name or "run"
    results_path = path / "results.json"
    training = not results_path.exists()
    if training and not (path / "checkpoints").is_dir() and _subcommand(path) != "train":
        raise RunFileError(f"{str(path)!r} is not a run folder: it has no results.json (written by unfold compare) "
                           f"and no checkpoints/ (written by unfold train)")
    read = {"results.json", "training.csv", "stages.csv"} if not training else {"config.json", "training.csv",
                                                                                "stages.csv"}
    if training and (path / "checkpoints").is_dir():
        read |= {f"checkpoints/{p.name}" for p in (path / "checkpoints").glob("*.npz")}
    manifest, verified, warnings = _check_manifest(path, verify=verify, read={n for n in read if (path / n).exists()})
    if training:
        run = _load_training_run(path, label)
    else:
        results = _read_json(results_path, "results.json")
        run = _parse_results(results, f"results.json {str(results_path)!r}", label, path)
    run.manifest, run.verified, run.warnings = manifest, verified, warnings + run.warnings
    _attach_history(run, path)
    if run.provenance is None and manifest and isinstance(manifest.get("provenance"), dict):
        run.provenance = manifest["provenance"]
    if run.provenance is None:
        run.missing.append("no provenance (versions, backend, command line): unfold compare records it since "
                           "run folders have a manifest")
    return run


def _subcommand(folder: Path) -> str | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = _read_json(path)
    except RunFileError:
        return None
    return manifest.get("subcommand") if isinstance(manifest, dict) else None
