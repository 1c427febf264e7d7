"""Declarative options for problems, solvers, schedules and the run settings.

Every registered component declares its options as a frozen dataclass (its
``Options`` attribute). Each field is declared once with :func:`option`: its
default, its constraints and a help line::

    @dataclasses.dataclass(frozen=True)
    class Options:
        period: int = option(4, ge=0, help="number of learned steps (0: one per iteration)")
        lr: float = option(1e-2, gt=0, help="Adam learning rate of the steps")

The same declaration validates a configuration (:func:`parse_options`) and
describes each option (:func:`option_rows`), from which the workbench prints
``unfold list --options NAME`` and the option tables of docs/cli.md
(:func:`du_framework.workbench.text.format_options`). Messages are uniform: they
name the key as the user wrote it, what was wrong and what would be right.

Rules applied to every field, declared with :func:`option` or not:

* the value must have the annotated type (an ``int`` is accepted for a
  ``float``; ``bool`` is never an ``int``; ``Literal[...]`` lists the choices);
* numbers must be finite unless the field says ``finite=False`` (NaN and
  infinity are refused where they cannot mean anything);
* ``ge`` / ``gt`` / ``le`` / ``lt`` bound numbers, ``choices`` restricts any value.

An option a user would tune (a classical constant, a learning rate, a
structural choice its author deems safe to search) declares its search range
with ``tune=``::

        lam: float = option(0.05, ge=0, tune=Tunable(1e-3, 1.0, log=True), help="l1 weight")
        parametrization: str = option("reciprocal", tune=Tunable(choices=("reciprocal", "step")))

``unfold tune`` (:mod:`du_framework.workbench.tuning`) searches it; ``unfold list --options``
and the docs tables show it in a ``tune`` column. The range must satisfy the
option's own constraints (checked when the option is declared).

A ``validate()`` method on the dataclass may still check relations between
fields; it raises ``ValueError`` (or :class:`ConfigError`) with its message.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError, nearest

__all__ = ["NoOptions", "Tunable", "option", "tunable_options", "parse_options", "replace_option", "options_to_dict",
           "option_rows"]

_MISSING = dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a component that takes none."""


_SCALARS = (bool, int, float, str, type(None))


@dataclasses.dataclass(frozen=True, init=False)
class Tunable:
    """The search range of a tunable option: a numeric interval or a list of choices.

    ``Tunable(low, high)`` is the interval ``[low, high]`` (integers for an
    ``int`` option), ``log=True`` searches it on a logarithmic scale (``low > 0``);
    ``Tunable(choices=(a, b, ...))`` searches a finite set (strings, numbers,
    booleans). Used as ``option(..., tune=Tunable(...))``.

    Raises:
        ValueError: neither or both forms given, ``low >= high``, non-finite
            bounds, ``log`` with ``low <= 0``, or fewer than two choices.
    """

    low: float | None
    high: float | None
    log: bool
    choices: tuple | None

    def __init__(self, low: float | None = None, high: float | None = None, *, log: bool = False,
                 choices: Sequence | None = None) -> None:
        if choices is not None:
            if low is not None or high is not None or log:
                raise ValueError("Tunable takes either a range (low, high, log) or choices, not both")
            choices = tuple(choices)
            if len(choices) < 2 or len(set(map(repr, choices))) != len(choices):
                raise ValueError(f"Tunable choices must be at least two distinct values, got {choices!r}")
            if not all(isinstance(c, _SCALARS) for c in choices):
                raise ValueError(f"Tunable choices must be strings, numbers or booleans, got {choices!r}")
        else:
            for bound in (low, high):
                if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
                    raise ValueError(f"Tunable needs finite numbers low < high (or choices=...), got ({low!r}, {high!r})")
            if not low < high:
                raise ValueError(f"Tunable needs low < high, got ({low!r}, {high!r})")
            if log and low <= 0:
                raise ValueError(f"a log-scale Tunable needs low > 0, got {low!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", bool(log))
        object.__setattr__(self, "choices", choices)

    def values(self) -> tuple:
        """The values the range is checked with: its ends, or every choice."""
        return self.choices if self.choices is not None else (self.low, self.high)

    def describe(self) -> str:
        """A short form for tables: ``log 0.001..1``, ``0.5..1.99`` or ``'a' | 'b'``."""
        if self.choices is not None:
            return " | ".join(_show(c) for c in self.choices)
        return ("log " if self.log else "") + f"{self.low:g}..{self.high:g}"


@dataclasses.dataclass(frozen=True)
class _Spec:
    help: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = True
    choices: tuple | None = None
    tune: Tunable | None = None

    def describe(self) -> str:
        parts = []
        for symbol, bound in (("> ", self.gt), (">= ", self.ge), ("< ", self.lt), ("<= ", self.le)):
            if bound is not None:
                parts.append(symbol + (str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e16
                                       else f"{bound:g}"))
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(repr, self.choices)))
        return ", ".join(parts)


def option(default: Any = _MISSING, *, help: str = "", ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None, finite: bool = True,
           choices: Sequence | None = None, tune: Tunable | None = None) -> Any:
    """A dataclass field with its constraints and help line (see the module docstring).

    Args:
        default: the value when the configuration leaves the key out (required
            keys have none; tuples and other immutable values are fine).
        help: one line for ``unfold list --options`` and the docs.
        ge: lower bound on a number (inclusive).
        gt: lower bound on a number (exclusive).
        le: upper bound on a number (inclusive).
        lt: upper bound on a number (exclusive).
        finite: refuse NaN and infinity (the default for every number).
        choices: the allowed values.
        tune: the search range of ``unfold tune`` (a :class:`Tunable`), for an
            option a user would tune.

    Raises:
        TypeError: ``tune`` is not a :class:`Tunable`.
        ValueError: the range leaves the option's own constraints.
    """
    spec = _Spec(help, ge, gt, le, lt, finite, tuple(choices) if choices is not None else None, tune)
    if tune is not None:
        if not isinstance(tune, Tunable):
            raise TypeError(f"option(tune=...) takes a du_framework.options.Tunable, got {tune!r}")
        for value in tune.values():
            try:
                _check(value, spec, "the tunable range")
            except ConfigError:
                raise ValueError(f"option(tune={tune.describe()}): {_show(value)} is outside the option's own "
                                 f"constraints ({spec.describe() or 'finite'}); keep the range inside them") from None
    return dataclasses.field(default=default, metadata={"du_option": spec})


def _spec(field: dataclasses.Field) -> _Spec:
    return field.metadata.get("du_option", _Spec())


def tunable_options(options_cls: type) -> dict[str, Tunable]:
    """The options of ``options_cls`` declared with ``tune=``, by name, in declaration order."""
    return {name: _spec(f).tune for name, f in _fields(options_cls).items() if _spec(f).tune is not None}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(map(repr, typing.get_args(tp)))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "table"
    return {bool: "bool", int: "int", float: "float", str: "string", type(None): "none"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _show(value: Any) -> str:
    """A value as the user wrote it in TOML (``true``, ``nan``, ``inf``), else its repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int) and abs(value) >= 10**16:
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp``; widen int to float where asked."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {_show(value)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where} must be none, got {_show(value)}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, typing.Hashable) and value in allowed and type(value) in {type(a) for a in allowed}:
            return value
        hint = nearest(value, [a for a in allowed if isinstance(a, str)]) if isinstance(value, str) else None
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
                          + (f" (did you mean {hint!r}?)" if hint else ""))
    if origin is dict or tp is dict:
        key_tp, item_tp = typing.get_args(tp) or (str, Any)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table (for example {{ key = 1.0 }}), got {_show(value)}")
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where} keys must be strings, got {key!r}")
            out[key] = _coerce(item, item_tp, f"{where}.{key}")
        return out
    if origin in (tuple, list):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {_show(value)}")
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {_show(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(f"{where} must be a finite number, got {_show(value)}") from None
        raise ConfigError(f"{where} must be a number, got {_show(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {_show(value)}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where} must be {_type_name(tp)}, got {_show(value)}")


def _check(value: Any, spec: _Spec, where: str) -> None:
    """Apply the declared constraints (and finiteness) to a coerced value."""
    values = value if isinstance(value, tuple) else tuple(value.values()) if isinstance(value, dict) else (value,)
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if spec.finite and isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{where} must be a finite number, got {_show(item)}")
        bounds = spec.describe()
        if (spec.ge is not None and not item >= spec.ge) or (spec.gt is not None and not item > spec.gt) or \
                (spec.le is not None and not item <= spec.le) or (spec.lt is not None and not item < spec.lt):
            raise ConfigError(f"{where} must be {bounds}, got {_show(item)}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, spec.choices))}, got {_show(value)}")


def _fields(options_cls: type) -> dict[str, dataclasses.Field]:
    if not (isinstance(options_cls, type) and dataclasses.is_dataclass(options_cls)):
        raise TypeError(f"Options must be a dataclass, got {options_cls!r}")
    return {f.name: f for f in dataclasses.fields(options_cls) if f.init}


def parse_options(options_cls: type, values: Mapping[str, Any], *, prefix: str = "",
                  extra_keys: Sequence[str] = ()) -> Any:
    """Build ``options_cls`` from ``values``; raise :class:`ConfigError` on bad input.

    ``prefix`` (for example ``"problem."``) is put before key names in messages, so
    the user sees the key as they wrote it in the configuration file.
    ``extra_keys`` are other valid keys of the same table (``name`` in
    ``[problem]``), offered as suggestions for a misspelt key.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{prefix.rstrip('.') or 'options'}] must be a table, got {values!r}")
    fields = _fields(options_cls)
    hints = typing.get_type_hints(options_cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            valid = list(extra_keys) + list(fields)
            hint = nearest(str(key), valid)
            message = f"unknown key '{prefix}{key}'"
            if hint:
                message += f"; did you mean '{prefix}{hint}'?"
            message += f" Valid keys: {', '.join(prefix + k for k in valid) or '(none)'}"
            raise ConfigError(message)
        where = f"{prefix}{key}"
        coerced = _coerce(value, hints[key], where)
        _check(coerced, _spec(fields[key]), where)
        kwargs[key] = coerced
    missing = [name for name, f in fields.items() if name not in kwargs
               and f.default is _MISSING and f.default_factory is _MISSING]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(prefix + k for k in missing)}")
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


def replace_option(options: Any, key: str, value: Any, *, where: str | None = None, owner: str = "") -> Any:
    """A copy of the validated ``options`` with ``key`` set to ``value``, checked as :func:`parse_options` checks
    it (type, constraints, ``validate()``); ``where`` names the value in messages, ``owner`` the component.

    Raises:
        ConfigError: no field ``key`` (naming the nearest), or a wrong type, range or relation.
    """
    fields, where = _fields(type(options)), where or key
    if key not in fields:
        hint = nearest(str(key), fields)
        raise ConfigError(f"{where}: {owner or 'the component'} has no option {key!r}" + (
            f" (did you mean {hint!r}?)" if hint else "") + f"; its options: {', '.join(fields) or '(none)'}")
    coerced = _coerce(value, typing.get_type_hints(type(options))[key], where)
    _check(coerced, _spec(fields[key]), where)
    try:
        changed = dataclasses.replace(options, **{key: coerced})
        getattr(changed, "validate", lambda: None)()
    except (TypeError, ValueError) as error:  # a ConfigError is a ValueError: its message is kept, prefixed
        raise ConfigError(f"{where} = {_show(value)}: {error}") from error
    return changed


def options_to_dict(options: Any) -> dict[str, Any]:
    """A JSON-friendly dict of an options dataclass (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, dict) else value
    return out


def option_rows(options_cls: type) -> list[dict[str, str]]:
    """One row per option: ``key``, ``type``, ``default``, ``constraint``, ``help`` (strings),
    and ``tune`` (the search range, :meth:`Tunable.describe`) for a tunable option.

    The source of ``unfold list --options`` and of the option tables in the docs.
    """
    hints = typing.get_type_hints(options_cls)
    rows = []
    for name, f in _fields(options_cls).items():
        spec = _spec(f)
        if f.default is not _MISSING:
            default = f.default
            shown = (("true" if default else "false") if isinstance(default, bool)
                     else "{}" if default is None and typing.get_origin(hints[name]) is dict else repr(default))
        else:
            shown = "(required)"
        constraint = spec.describe()
        if hints[name] is float or (typing.get_origin(hints[name]) in (typing.Union, types.UnionType)
                                    and float in typing.get_args(hints[name])):
            constraint = ", ".join(part for part in (constraint, "finite" if spec.finite else "") if part)
        row = {"key": name, "type": _type_name(hints[name]), "default": shown, "constraint": constraint,
               "help": spec.help}
        if spec.tune is not None:
            row["tune"] = spec.tune.describe()
        rows.append(row)
    return rows
