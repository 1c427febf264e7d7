"""Checking a results dict field by field, and how a run describes a metric (:class:`MetricInfo`)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .files import FORMAT_SPEC, RunFileError


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
        counts_errors: an error rate whose error and trial counts the run records
            (``Metric.counts_errors``; ``false`` when absent).
    """

    name: str
    label: str
    lower_is_better: bool = True
    scale: str = "linear"
    normalized: bool = False
    log_axis: bool | None = None
    format: str = ".3e"
    floor: float | None = None
    counts_errors: bool = False

    @property
    def title(self) -> str:
        """The label, or the name when the label is empty."""
        return self.label or self.name

    def show(self, value: float) -> str:
        """One value formatted for a table (``nan`` for a missing one)."""
        value = float(value)
        return "nan" if math.isnan(value) else format(value, self.format)


# --- checking a results dict ---------------------------------------------------------------------


class Checker:
    """Type checks that name the file and the entry (``results.json: solvers["a"].metrics``)."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, path: str, value: Any, expected: str) -> RunFileError:
        shown = json.dumps(value)[:60] if jsonable(value) else type(value).__name__
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


def jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def metric_info(name: str, entry: Any, check: Checker, path: str) -> MetricInfo:
    entry = check.obj(entry, path)
    scale = check.text(entry.get("scale", "linear"), f"{path}.scale")
    if scale not in ("linear", "db"):
        raise check.fail(f"{path}.scale", scale, '"linear" or "db"')
    spec = entry.get("format")
    if spec is not None:
        check.text(spec, f"{path}.format")
        expected = ("a short float format spec such as \".3e\" or \".2f\" (sign, width and precision of at "
                    "most two digits, type e, f, g or %)")
        if not FORMAT_SPEC.fullmatch(spec):  # checked before formatting: ".900000000e" would take 900 MB
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
        floor=floor if floor is not None and math.isfinite(floor) else None,
        counts_errors=check.boolean(entry.get("counts_errors", False), f"{path}.counts_errors"))


def guess_log_axis(info: MetricInfo, curves: Iterable[np.ndarray]) -> MetricInfo:
    if info.log_axis is not None:
        return info
    log = False
    if info.scale == "linear":
        values = np.concatenate([np.ravel(c) for c in curves]) if curves else np.zeros(0)
        values = values[np.isfinite(values)]
        log = bool(values.size and np.all(values > 0) and (info.name == "mse" or values.max() / values.min() > 100))
    return dataclasses.replace(info, log_axis=log)
