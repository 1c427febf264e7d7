"""The search space of a solver's study: its dimensions, ``--space`` overrides, and the selection checks.

:func:`search_space` lists what one solver searches (its learning-rate groups, its
declared tunable options, ``train.optimizer`` and ``train.log_loss``), with the
``--space`` items :func:`parse_space` reads; :func:`train_settings_with` applies a
trial's ``train.*`` values; :func:`baseline_params` is the configuration's own point
of a space (the first trial of a new study).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import ExperimentConfig, SolverConfig
from ...engine.settings import TrainSettings
from ...engine.transforms import check_optimizer_settings
from ...errors import ConfigError, nearest
from ...options import Tunable, options_to_dict, parse_options, tunable_options
from ...params import learned_variables

__all__ = ["Dimension", "DEFAULT_OPTIMIZERS", "OPTIMIZER_ALIASES", "parse_space", "search_space", "check_selection",
           "train_settings_with", "baseline_params"]

DEFAULT_OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd-momentum")
"""The optimisers a learned solver's search chooses from unless told otherwise."""

OPTIMIZER_ALIASES = {"sgd-momentum": ("sgd", {"momentum": 0.9})}
"""Choice names that stand for an optax optimiser with options."""

# [train] keys that make up the budget: equal for every solver, never searched.
_BUDGET_KEYS = ("schedule", "depth", "steps_per_stage", "batch_size", "seed", "seeds", "chunk_size", "remat",
                "devices", "unroll")
_SEARCHABLE_TRAIN = ("optimizer", "log_loss", "lr_schedule", "loss")


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched setting of a solver's study.

    Attributes:
        key: the option's name (``"lr"``), or ``"train.KEY"`` for a training setting
            (``"train.optimizer"``, ``"train.optimizer_options.b1"``).
        tunable: its range or choices.
        integer: an integer range (an ``int`` option).
        source: where the range comes from: ``"declared"`` (``option(tune=...)``),
            ``"learning rate"`` (a rate group without a declared range: 1/100 to 100
            times the configured rate), ``"default"`` (the training settings searched
            by default) or ``"--space"`` (given by the user).
    """

    key: str
    tunable: Tunable
    integer: bool = False
    source: str = "declared"

    def suggest(self, trial) -> Any:
        """The value ``trial`` samples for this dimension."""
        t = self.tunable
        if t.choices is not None:
            return trial.suggest_categorical(self.key, list(t.choices))
        if self.integer:
            return trial.suggest_int(self.key, int(t.low), int(t.high), log=t.log)
        return trial.suggest_float(self.key, float(t.low), float(t.high), log=t.log)

    def to_dict(self) -> dict[str, Any]:
        t = self.tunable
        body: dict[str, Any] = {"key": self.key, "source": self.source}
        if t.choices is not None:
            body["choices"] = list(t.choices)
        else:
            body.update(low=t.low, high=t.high, log=t.log, integer=self.integer)
        return body

    def describe(self) -> str:
        return f"{self.key} in {self.tunable.describe()}"


def _parse_scalar(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_space(items: Sequence[str]) -> dict[str, Any]:
    """``--space KEY=SPEC`` items as ``{key: Tunable | "off" | ("fixed", value)}``.

    ``SPEC`` is ``LOW:HIGH`` (uniform), ``LOW:HIGH:log``, ``A,B,...`` (choices, each
    read as TOML, else as a string), a single value (fixed, not searched) or ``off``
    (not searched: the configuration's value). ``KEY`` is ``solvers.LABEL.OPTION`` or
    ``train.KEY`` (``optimizer``, ``log_loss``, ``lr_schedule``, ``loss``,
    ``optimizer_options.NAME``, ``lr_schedule_options.NAME``).

    Raises:
        ConfigError: a malformed item, with an example of a good one.
    """
    space: dict[str, Any] = {}
    for item in items:
        key, sep, spec = item.partition("=")
        key, spec = key.strip(), spec.strip()
        if not sep or not key or not spec:
            raise ConfigError(f"--space expects KEY=SPEC (for example solvers.dugd.lr=1e-4:1e-1:log, "
                              f"train.optimizer=adam,rmsprop or train.log_loss=off), got {item!r}")
        if not (key.startswith("solvers.") and key.count(".") >= 2) and not key.startswith("train."):
            raise ConfigError(f"--space {key}: the key must be solvers.LABEL.OPTION or train.KEY "
                              f"(for example solvers.gd.step or train.optimizer)")
        if spec == "off":
            space[key] = "off"
            continue
        parts = spec.split(":")
        try:
            if len(parts) in (2, 3):
                if len(parts) == 3 and parts[2] != "log":
                    raise ValueError(f"the third part of LOW:HIGH:log must be 'log', got {parts[2]!r}")
                low, high = (_parse_scalar(p) for p in parts[:2])
                space[key] = Tunable(low, high, log=len(parts) == 3)
            elif "," in spec:
                space[key] = Tunable(choices=[_parse_scalar(p.strip()) for p in spec.split(",")])
            else:
                space[key] = ("fixed", _parse_scalar(spec))
        except ValueError as error:
            raise ConfigError(f"--space {item}: {error}; write LOW:HIGH, LOW:HIGH:log, A,B,C, a single value or "
                              f"off") from None
    return space


def _is_int_option(options_cls: type, name: str) -> bool:
    return typing.get_type_hints(options_cls).get(name) is int


def _learning_rate_groups(solver) -> list[str]:
    """The solver options its learned parameters take their rates from (in first-use order)."""
    groups: list[str] = []
    for variable in learned_variables(solver).values():
        group = getattr(variable, "lr", "lr") or "lr"
        if group not in groups:
            groups.append(group)
    return groups


def _is_rate_name(name: str) -> bool:
    """An option named as a learning rate (``lr``, ``*_lr``)."""
    return name == "lr" or name.endswith("_lr")


def _check_solver_value(entry: SolverConfig, cls: type, key: str, value: Any) -> None:
    values = options_to_dict(entry.options)
    values[key] = value
    parse_options(cls.Options, values, prefix=f"solvers.{entry.label}.")


def search_space(entry: SolverConfig, solver, *, space: dict[str, Any] | None = None,
                 optimizers: Sequence[str] | None = DEFAULT_OPTIMIZERS,
                 search_log_loss: bool = True) -> tuple[list[Dimension], dict[str, Any]]:
    """The dimensions searched for one solver, and the settings fixed by ``space``.

    A trainable solver searches its learning-rate groups (declared range, else
    1/100 to 100 times the configured rate, log scale), its declared tunable
    options (less a rate option, ``lr`` or ``*_lr``, that none of its learned
    parameters uses in this configuration), ``train.optimizer`` among ``optimizers`` (``None`` or one name: not
    searched) and ``train.log_loss`` (unless ``search_log_loss`` is false). A
    classical solver searches its declared tunable options. ``space`` (from
    :func:`parse_space`) overrides any of them for keys ``solvers.LABEL.OPTION``
    and ``train.KEY``.

    Returns:
        ``(dimensions, fixed)``: ``fixed`` maps option names (and ``train.KEY``)
        to values set for every trial.

    Raises:
        ConfigError: a ``space`` key names no option of the solver, a budget
            setting, or a range outside the option's constraints.
    """
    space = space or {}
    cls = type(solver)
    prefix = f"solvers.{entry.label}."
    dims: dict[str, Dimension] = {}
    groups = _learning_rate_groups(solver) if solver.is_trainable else []
    for name, tunable in tunable_options(cls.Options).items():
        if _is_rate_name(name) and name not in groups:
            continue  # the rate of a parameter this configuration does not learn (lambda_lr without learn_lambda)
        dims[name] = Dimension(name, tunable, _is_int_option(cls.Options, name), "declared")
    if solver.is_trainable:
        declared = tunable_options(cls.Options)
        for group in groups:
            if group not in declared:
                rate = float(getattr(entry.options, group))
                dims[group] = Dimension(group, Tunable(rate / 100, rate * 100, log=True), False, "learning rate")
        chosen = tuple(dict.fromkeys(optimizers or ()))
        if len(chosen) >= 2:
            dims["train.optimizer"] = Dimension("train.optimizer", Tunable(choices=chosen), False, "default")
        if search_log_loss:
            dims["train.log_loss"] = Dimension("train.log_loss", Tunable(choices=(True, False)), False, "default")
    fixed: dict[str, Any] = {}
    if len(tuple(dict.fromkeys(optimizers or ()))) == 1 and solver.is_trainable:
        fixed["train.optimizer"] = tuple(optimizers)[0]
    known_options = [f.name for f in dataclasses.fields(cls.Options)]
    for key, spec in space.items():
        if key.startswith("solvers."):
            rest = key[len("solvers."):]
            if not rest.startswith(entry.label + "."):
                continue
            name = rest[len(entry.label) + 1:]
            if name not in known_options:
                hint = nearest(name, known_options)
                raise ConfigError(f"--space {key}: solver {entry.name!r} has no option {name!r}"
                                  + (f" (did you mean {prefix + hint!r}?)" if hint else "")
                                  + f"; its options: {', '.join(known_options) or '(none)'}")
        else:
            if not solver.is_trainable:
                continue  # training settings do not apply to a classical solver
            name = key
            setting = key[len("train."):].split(".")[0]
            if setting in _BUDGET_KEYS:
                raise ConfigError(f"--space {key}: train.{setting} is part of the equal budget of every solver and "
                                  f"is not searched; set it for all with --set train.{setting}=VALUE")
            if setting not in _SEARCHABLE_TRAIN + ("optimizer_options", "lr_schedule_options"):
                raise ConfigError(f"--space {key}: the training settings a search can vary are "
                                  f"{', '.join('train.' + k for k in _SEARCHABLE_TRAIN)}, "
                                  f"train.optimizer_options.NAME and train.lr_schedule_options.NAME")
        if spec == "off":
            dims.pop(name, None)
        elif isinstance(spec, tuple):
            dims.pop(name, None)
            fixed[name] = spec[1]
        else:
            integer = not key.startswith("train.") and _is_int_option(cls.Options, name)
            if integer and spec.choices is None and not all(float(v).is_integer() for v in spec.values()):
                raise ConfigError(f"--space {key}: option {name!r} is an integer; give integer bounds")
            dims[name] = Dimension(name, spec, integer, "--space")
    for dim in dims.values():  # every end of every range must be a valid setting on its own
        if not dim.key.startswith("train."):
            for value in dim.tunable.values():
                _check_solver_value(entry, cls, dim.key, int(value) if dim.integer else value)
    for name, value in fixed.items():
        if not name.startswith("train."):
            _check_solver_value(entry, cls, name, value)
    return list(dims.values()), fixed


def train_settings_with(base: TrainSettings, values: dict[str, Any]) -> TrainSettings:
    """``base`` with the ``train.*`` entries of ``values`` applied (an optimiser alias expanded), validated."""
    table = options_to_dict(base)
    for key in ("optimizer", "lr_schedule"):
        if f"train.{key}" in values:
            choice = values[f"train.{key}"]
            name, extra = OPTIMIZER_ALIASES.get(choice, (choice, {})) if key == "optimizer" else (choice, {})
            if name != table[key] or extra:
                table[key], table[f"{key}_options"] = name, dict(extra)
    for key, value in values.items():
        if not key.startswith("train.") or key in ("train.optimizer", "train.lr_schedule"):
            continue
        parts = key[len("train."):].split(".", 1)
        if len(parts) == 2:
            table[parts[0]] = {**(table.get(parts[0]) or {}), parts[1]: value}
        else:
            table[parts[0]] = value
    settings = parse_options(type(base), table, prefix="train.")
    check_optimizer_settings(settings)
    return settings


def check_selection(config: ExperimentConfig, labels: Sequence[str] | None,
                    space: dict[str, Any] | None = None) -> list[str]:
    """The labels to tune (``labels``, or every solver's), checked with the ``space`` keys' labels.

    Raises:
        ConfigError: a label names no solver of ``config`` (with the nearest), or a
            ``solvers.LABEL.OPTION`` key of ``space`` names no solver.
    """
    known = [e.label for e in config.solvers]
    chosen = list(dict.fromkeys(labels)) if labels else known
    unknown = [label for label in chosen if label not in known]
    if unknown:
        hint = nearest(unknown[0], known)
        raise ConfigError(f"--only names no solver of this configuration: {', '.join(unknown)}"
                          + (f" (did you mean {hint!r}?)" if hint else "") + f"; labels: {', '.join(known)}")
    for key in (space or {}):
        if key.startswith("solvers.") and not any(key.startswith(f"solvers.{label}.") for label in known):
            raise ConfigError(f"--space {key}: no solver of this configuration has that label; labels: "
                              f"{', '.join(known)}")
    return chosen


def baseline_params(entry: SolverConfig, train_settings: TrainSettings, dims: list[Dimension],
                     resolved: dict[str, Any] | None = None) -> dict[str, Any]:
    """The configuration's own value of every dimension whose range holds it.

    An option left "automatic" (0 for GD's step, -1 for a SOR factor) is outside its range;
    ``resolved`` (the built solver's :meth:`~du_framework.UnfoldedSolver.constants`) then gives
    the value the solver computed for it, so the baseline trial is the textbook constant itself.
    """
    params = {}
    resolved = resolved or {}
    for dim in dims:
        if dim.key.startswith("train."):
            name, _, inner = dim.key[len("train."):].partition(".")
            value = getattr(train_settings, name, None)
            value = value.get(inner) if inner and isinstance(value, dict) else value
        else:
            value = getattr(entry.options, dim.key, None)
        t = dim.tunable
        if t.choices is not None:
            if value in t.choices and type(value) in {type(c) for c in t.choices}:
                params[dim.key] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and t.low <= value <= t.high:
            params[dim.key] = int(value) if dim.integer else float(value)
        elif not dim.key.startswith("train.") and np.size(resolved.get(dim.key, ())) == 1:
            computed = float(np.ravel(np.asarray(resolved[dim.key], np.float64))[0])
            if math.isfinite(computed) and t.low <= computed <= t.high and not dim.integer:
                params[dim.key] = computed
    return params
