"""Typed, validated option dataclasses for problems, solvers and schedules.

Each registered component declares its options as a frozen dataclass (its
``Options`` attribute). :func:`parse_options` turns a plain mapping (a TOML table)
into that dataclass, refusing unknown keys with the nearest valid one and values
of the wrong type with the type that was expected.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError, nearest

__all__ = ["NoOptions", "parse_options", "options_to_dict"]


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a component that takes none."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp``; widen int to float where asked."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        errors = []
        for arg in args:
            try:
                return _coerce(value, arg, where)
            except ConfigError as error:
                errors.append(error)
        names = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"{where} must be {names}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where} must be None, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value in allowed:
            return value
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    if origin in (tuple, list):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}")
    if isinstance(value, tp):
        return value
    raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")


def parse_options(options_cls: type, values: Mapping[str, Any], *, prefix: str = "") -> Any:
    """Build ``options_cls`` from ``values``; raise :class:`ConfigError` on bad input.

    ``prefix`` (for example ``"problem."``) is put before key names in messages, so
    the user sees the key as they wrote it in the configuration file.
    """
    hints = typing.get_type_hints(options_cls)
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            hint = nearest(key, fields)
            message = f"unknown key '{prefix}{key}'"
            if hint:
                message += f"; did you mean '{prefix}{hint}'?"
            message += f" Valid keys: {', '.join(prefix + f for f in fields) or '(none)'}"
            raise ConfigError(message)
        kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}")
    try:
        options = options_cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid {prefix.rstrip('.') or 'options'}: {error}") from error
    validate = getattr(options, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as error:
            raise ConfigError(f"invalid {prefix.rstrip('.') or 'options'}: {error}") from error
    return options


def options_to_dict(options: Any) -> dict[str, Any]:
    """A JSON-friendly dict of an options dataclass (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
