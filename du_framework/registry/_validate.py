"""What a plugin may register: the checks behind the registry's isolation (see :mod:`du_framework.registry`)."""

from __future__ import annotations

import dataclasses
import inspect
import tomllib
import typing
from typing import Any

from ..interfaces import Experiment, Problem, TrainingSchedule, UnfoldedSolver
from ..metrics import metric_table
from ..options import parse_options
from ..settings import TrainSettings
from ._registry import qualified_name

__all__ = ["validate"]

_BASES = {"problem": Problem, "solver": UnfoldedSolver, "schedule": TrainingSchedule}
# The methods the engine calls on a solver, with the arguments it passes (besides self).
_SOLVER_CONTRACT = {"prepare": "problem, instance", "init_state": "problem, context",
                    "step": "problem, context, state, k"}


def _options_problem(options_cls: Any) -> str | None:
    if not (isinstance(options_cls, type) and dataclasses.is_dataclass(options_cls)):
        return f"its Options must be a frozen dataclass, got {options_cls!r}"
    if not options_cls.__dataclass_params__.frozen:
        return f"its Options ({options_cls.__qualname__}) must be frozen: @dataclasses.dataclass(frozen=True)"
    try:
        typing.get_type_hints(options_cls)
    except Exception as error:  # noqa: BLE001 - NameError, TypeError, SyntaxError from a string annotation
        return f"the annotations of its Options do not resolve: {type(error).__name__}: {error}"
    defaults, required = {}, False
    for field in dataclasses.fields(options_cls):
        if field.init and field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.init and field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
        else:
            required = required or field.init
    if required:  # the defaults cannot be checked without values for the required keys
        return None
    try:  # given explicitly, each default is checked against its type and constraints
        parse_options(options_cls, defaults)
    except Exception as error:  # noqa: BLE001 - ConfigError, or anything a validate() raises
        return f"the defaults of its Options are invalid: {error}"
    return None


def _solver_contract_problem(cls: type) -> str | None:
    for method, arguments in _SOLVER_CONTRACT.items():
        try:
            signature = inspect.signature(getattr(cls, method))
        except (TypeError, ValueError):  # no introspectable signature: trust it
            continue
        try:
            signature.bind(None, *arguments.split(", "))
        except TypeError:
            return f"{method}{signature} does not match the contract {method}(self, {arguments})"
    return None


def _observer_problem(obj: Any) -> str | None:
    from ..observing import RunObserver

    if not (inspect.isclass(obj) and issubclass(obj, RunObserver)):
        return f"registered {obj!r} as an observer; it must be a subclass of du_framework.RunObserver"
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.strip():
        return f"observer class {qualified_name(obj)} has no 'name' class attribute (a non-empty string)"
    label = f"observer {name!r} ({qualified_name(obj)})"
    if inspect.isabstract(obj):
        return f"{label} is abstract: it does not implement {', '.join(sorted(obj.__abstractmethods__))}"
    try:  # --observe NAME constructs it without arguments
        inspect.signature(obj).bind()
    except TypeError:
        return f"{label}: it must be constructible without arguments (--observe NAME does so); give its " \
               f"parameters defaults"
    except ValueError:  # no introspectable signature: trust it
        pass
    for method in ("on_run_start", "on_stage_end", "on_solver_end", "on_run_end"):
        try:
            inspect.signature(getattr(obj, method)).bind(None, None)
        except TypeError:
            return f"{label}: {method}{inspect.signature(getattr(obj, method))} does not match the contract " \
                   f"{method}(self, event)"
        except ValueError:
            pass
    return None


def validate(kind: str, obj: Any) -> str | None:
    """Why ``obj`` cannot be registered as a ``kind``, or ``None``."""
    if kind == "observer":
        return _observer_problem(obj)
    if kind == "experiment":
        if not isinstance(obj, Experiment):
            return f"registered {obj!r} as an experiment; it must be a du_framework.Experiment"
        if not isinstance(obj.name, str) or not obj.name.strip():
            return f"registered an experiment without a name (a non-empty string): {obj!r}"
        if not isinstance(obj.config, str):
            return f"experiment {obj.name!r}: its config must be TOML text, got {type(obj.config).__name__}"
        if not isinstance(obj.default, bool):
            return f"experiment {obj.name!r}: default must be true or false, got {obj.default!r}"
        try:
            tomllib.loads(obj.config)
        except tomllib.TOMLDecodeError as error:
            return f"experiment {obj.name!r}: its config is not valid TOML: {error}"
        return None
    base = _BASES[kind]
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        return f"registered {obj!r} as a {kind}; it must be a subclass of du_framework.{base.__name__}"
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.strip():
        return f"{kind} class {qualified_name(obj)} has no 'name' class attribute (a non-empty string)"
    label = f"{kind} {name!r} ({qualified_name(obj)})"
    if inspect.isabstract(obj):
        return f"{label} is abstract: it does not implement {', '.join(sorted(obj.__abstractmethods__))}"
    reason = _options_problem(getattr(obj, "Options", None))
    if reason is None and kind == "solver":
        reason = _solver_contract_problem(obj)
    if reason is None and kind == "problem":
        reason = _metrics_problem(obj)
    if reason is None and kind == "schedule":
        reason = _schedule_options_problem(obj)
    return f"{label}: {reason}" if reason else None


def _metrics_problem(cls: type) -> str | None:
    try:
        table = metric_table(cls)
    except (TypeError, ValueError) as error:
        return str(error)
    primary = cls.primary_metric or next(iter(table))
    if primary not in table:
        return f"its primary_metric {primary!r} is not one of its metrics ({', '.join(table)})"
    return None


def _schedule_options_problem(cls: type) -> str | None:
    # A schedule's options are set under [train] beside the run settings: a shared name would be ambiguous.
    clash = sorted({f.name for f in dataclasses.fields(cls.Options)} & {f.name for f in dataclasses.fields(TrainSettings)})
    if clash:
        return (f"its Options field(s) {', '.join(clash)} clash with [train] settings of the same name; "
                f"rename them (schedule options are set under [train])")
    return None
