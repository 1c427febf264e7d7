"""``--set KEY=VALUE`` overrides of a raw configuration, applied before validation.

``problem.n=20``, ``train.depth=10``, ``solvers.LABEL.period=8`` (a solver by label) or
``solvers.0.period=8`` (by position), and ``solvers.NEW.name=heavy-ball`` adds a solver labelled ``NEW``
(its other options as ``solvers.NEW.KEY=VALUE``); a value is TOML (``1e-3``, ``true``, ``"text"``, ``[1, 2]``) or else a
string. Switching a component by name (``problem.name=OTHER``, ``train.schedule=OTHER``,
``solvers.0.name=OTHER``) drops the options the file gave the old one; only the overrides apply to the new one.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from typing import Any

from ..engine.settings import TrainSettings
from ..errors import ConfigError, nearest

__all__ = ["apply_overrides", "TABLES", "TRAIN_KEYS"]

TABLES = ("problem", "train", "evaluation", "solvers")
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainSettings))
"""The keys of ``[train]`` that are run settings; the others are the schedule's own options."""


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string such as  train.schedule=end-to-end


@dataclasses.dataclass
class _Override:
    key: str  # as the user wrote it
    table: str  # "problem", "train", "evaluation" or "solvers"
    index: int | None  # the solver's position in the file's list
    field: str
    value: Any


def _parse_override(override: str, solvers: list) -> _Override:
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE (for example train.depth=10), got {override!r}")
    parts = key.split(".")
    if parts[0] not in TABLES:
        hint = nearest(parts[0], TABLES)
        raise ConfigError(f"unknown key {key!r}: it must start with one of {', '.join(TABLES)}"
                          + (f" (did you mean {hint!r}?)" if hint else ""))
    value = _parse_value(text.strip())
    if parts[0] == "solvers":
        if len(parts) != 3:
            raise ConfigError(f"--set {key}: solver keys are solvers.<label or index>.<option>")
        return _Override(key, "solvers", _find_solver(solvers, parts[1], key), parts[2], value)
    if len(parts) != 2:
        raise ConfigError(f"--set {key}: expected <table>.<key>, for example {parts[0]}.seed=3")
    return _Override(key, parts[0], None, parts[1], value)


def _find_solver(solvers: list, selector: str, key: str) -> int:
    if selector.isdigit():
        index = int(selector)
        if index >= len(solvers):
            raise ConfigError(f"--set {key}: there are {len(solvers)} solvers (indices 0..{len(solvers) - 1})")
        return index
    labels = [s.get("label", s.get("name")) if isinstance(s, dict) else None for s in solvers]
    if selector in labels:
        return labels.index(selector)
    hint = nearest(selector, [str(label) for label in labels])
    raise ConfigError(f"--set {key}: no solver labelled {selector!r}; labels: {', '.join(map(str, labels))}"
                      + (f" (did you mean {hint!r}?)" if hint else "")
                      + f"; to add one, name it: --set solvers.{selector}.name=NAME")


def _added_solvers(overrides: list[str], solvers: list) -> list[dict[str, Any]]:
    """The solvers ``solvers.LABEL.name=NAME`` adds: a label no solver has (not a position), in order."""
    labels = {str(s.get("label", s.get("name"))) for s in solvers if isinstance(s, dict)}
    added: dict[str, dict[str, Any]] = {}
    for override in overrides:
        key, sep, _ = override.partition("=")
        parts = key.strip().split(".")
        if sep and len(parts) == 3 and parts[0] == "solvers" and parts[2] == "name" and not parts[1].isdigit() \
                and parts[1] not in labels:
            added.setdefault(parts[1], {"label": parts[1]})
    return list(added.values())


# Settings whose `<name>_options` belong to the named optimiser or learning-rate schedule.
_OPTIONED = ("optimizer", "lr_schedule")


def _switch(table: dict, name_key: str, new_name: Any, kept: tuple[str, ...]) -> dict:
    """``table`` switched to ``new_name``: the keys the file gave the component it named are dropped."""
    if name_key not in table or table[name_key] == new_name:
        return table
    return {key: value for key, value in table.items() if key in kept}


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides to a raw configuration (returns a copy).

    Values are read as TOML (``3``, ``1e-3``, ``true``, ``"x"``); anything that is
    not valid TOML is taken as a string. A solver is addressed by its label or
    position in the file; ``solvers.LABEL.name=NAME`` with a label no solver has adds one
    (after the file's). An override that names another component
    (``problem.name``, ``train.schedule``, ``solvers.X.name``) first drops the
    keys the file gave the old component, so they cannot leak into the new one;
    another ``train.optimizer`` or ``train.lr_schedule`` drops the file's
    ``optimizer_options`` or ``lr_schedule_options``.
    """
    raw = copy.deepcopy(raw)
    solvers = raw.get("solvers", [])
    added = _added_solvers(overrides, solvers if isinstance(solvers, list) else [])
    if added:
        solvers = raw["solvers"] = [*(solvers if isinstance(solvers, list) else []), *added]
    parsed = [_parse_override(override, solvers if isinstance(solvers, list) else []) for override in overrides]
    for item in parsed:  # the switches first, so the order of --set options does not matter
        if item.table == "problem" and item.field == "name" and isinstance(raw.get("problem"), dict):
            raw["problem"] = _switch(raw["problem"], "name", item.value, ())
        elif item.table == "train" and item.field == "schedule" and isinstance(raw.get("train"), dict):
            raw["train"] = _switch(raw["train"], "schedule", item.value, TRAIN_KEYS)
        elif item.table == "solvers" and item.field == "name" and isinstance(solvers[item.index], dict):
            solvers[item.index] = _switch(solvers[item.index], "name", item.value, ("label",))
        elif item.table == "train" and item.field in _OPTIONED and isinstance(raw.get("train"), dict):
            train = raw["train"]  # another optimiser or schedule does not take the old one's options
            if train.get(item.field, getattr(TrainSettings, item.field)) != item.value:
                train.pop(f"{item.field}_options", None)
    for item in parsed:
        if item.table == "solvers":
            if not isinstance(solvers[item.index], dict):
                raise ConfigError(f"--set {item.key}: solvers[{item.index}] is not a table")
            solvers[item.index][item.field] = item.value
        else:
            table = raw.setdefault(item.table, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {item.key}: [{item.table}] is not a table in the configuration")
            table[item.field] = item.value
    return raw
