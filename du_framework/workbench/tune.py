"""Tuning under an equal budget: an optuna search per solver, scored on validation instances.

For every solver of an experiment, :func:`tune` runs one optuna study with the
same number of trials and the same training budget (the configuration's
``[train]`` table: schedule, ``steps_per_stage``, ``batch_size``, depth):

* a learned solver's trial trains it with sampled hyperparameters: the rate of
  every learning-rate group (the options its parameters name with
  ``learned(..., lr=...)``), the optimiser (:data:`DEFAULT_OPTIMIZERS`),
  ``train.log_loss``, and every option it declares tunable
  (``option(..., tune=Tunable(...))``);
* a classical solver's trial only scores its tunable constants (nothing trains).

Every trial is scored on **validation** instances, drawn from
``fold_in(key(evaluation.seed), 2)``: disjoint from the training stream
(``fold_in(key(train.seed), 0)``, then the label) and from the evaluation
instances of ``unfold compare`` (``fold_in(key(evaluation.seed), 1)``). The
score is the chosen metric at the last iteration (``log10`` of it for a metric
plotted on a log axis), minimised or maximised as the metric says.

TPE (seeded) proposes the settings; a median pruner stops a trial whose training
loss at a stage boundary is worse than the median of earlier trials at that
stage. A trial whose training diverges, or whose validation score is not
finite, is recorded as pruned with its reason.

Trials go through an optuna storage: by default an SQLite file in the run
folder; an RDB URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``)
with a study name lets several processes or machines share the trials of one
search (each worker stops when the study holds ``trials`` trials).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import socket
import time
import typing
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .compare import build_problem, build_schedule, build_solver, build_solvers, training_key
from .config import ExperimentConfig, SolverConfig
from ..engine import evaluate, expand_schedule, train, train_ensemble
from ..engine.keys import host_fold_in, host_key
from ..engine.settings import TrainSettings
from ..engine.transforms import check_optimizer_settings
from ..errors import ConfigError, DUError, TrainingDivergedError, nearest
from ..metrics import Metric
from ..options import Tunable, options_to_dict, parse_options, tunable_options
from ..params import learned_variables
from ..registry import Registry, get_registry

__all__ = ["Dimension", "TrialRecord", "SolverSearch", "TuneResult", "DEFAULT_OPTIMIZERS", "OPTIMIZER_ALIASES",
           "VALIDATION_TAG", "validation_key", "search_space", "parse_space", "open_storage", "check_selection", "tune",
           "trials_csv"]

VALIDATION_TAG = 2
"""The tag folded into ``key(evaluation.seed)`` for validation (training uses 0, evaluation 1)."""

DEFAULT_OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd-momentum")
"""The optimisers a learned solver's search chooses from unless told otherwise."""

OPTIMIZER_ALIASES = {"sgd-momentum": ("sgd", {"momentum": 0.9})}
"""Choice names that stand for an optax optimiser with options."""

# [train] keys that make up the budget: equal for every solver, never searched.
_BUDGET_KEYS = ("schedule", "depth", "steps_per_stage", "batch_size", "seed", "seeds", "chunk_size", "remat",
                "devices")
_SEARCHABLE_TRAIN = ("optimizer", "log_loss", "lr_schedule", "loss")
_STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql")


def validation_key(seed: int):
    """Key of the validation instances of ``unfold tune``: ``fold_in(key(seed), 2)`` for ``evaluation.seed``.

    Training instances come from tag 0 (:func:`~du_framework.workbench.compare.training_key`) and
    the evaluation instances of ``unfold compare`` from tag 1, so validation shares no
    instance with either.
    """
    return host_fold_in(host_key(seed), VALIDATION_TAG)


# --- the search space --------------------------------------------------------------------------

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


def _train_settings(base: TrainSettings, values: dict[str, Any]) -> TrainSettings:
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


# --- storage ----------------------------------------------------------------------------------

def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is the tune extra
        raise ConfigError("unfold tune needs optuna: pip install 'du-framework[tune]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _shown_url(url: str) -> str:
    """``url`` with its password hidden (for files and messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given, less anything after '@'
        return url.split("@")[-1] if "@" in url else url


def open_storage(url: str):
    """An optuna RDB storage for ``url`` (``sqlite:///PATH``, ``postgresql://...``, ``mysql://...``).

    SQLite waits up to 60 s for a lock held by another worker; server databases
    check their connection before use.

    Raises:
        ConfigError: another scheme, a missing database driver, or a database that
            cannot be opened (the message names the URL, password hidden).
    """
    optuna = _optuna()
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme not in _STORAGE_SCHEMES:
        raise ConfigError(f"--storage {_shown_url(url)!r}: unknown storage scheme {scheme or '(none)'!r}; give an "
                          f"optuna RDB URL: sqlite:///PATH.db (a file; three slashes, four for an absolute path), "
                          f"postgresql://USER:PASSWORD@HOST/DATABASE or mysql://USER:PASSWORD@HOST/DATABASE")
    if scheme == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        for attempt in range(6):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
            except Exception as error:  # noqa: BLE001 - SQLAlchemy's OperationalError, checked below
                # workers that start together race to create a new database's tables: the loser
                # sees "already exists" (or a lock) and finds the tables made when it tries again
                text = str(error)
                racing = ("already exists" in text or "database is locked" in text
                          or ("UNIQUE constraint failed" in text and "alembic_version" in text))
                if attempt == 5 or not racing:
                    raise
                time.sleep(0.2 * (attempt + 1))
    except ImportError as error:
        driver = {"postgresql": "psycopg2-binary (or psycopg)", "mysql": "PyMySQL (and use mysql+pymysql://)"}.get(
            scheme, "the database driver")
        raise ConfigError(f"--storage {_shown_url(url)!r}: the database driver is not installed ({error}); "
                          f"pip install {driver}") from None
    except Exception as error:  # noqa: BLE001 - SQLAlchemy's OperationalError and friends
        text = " ".join(str(error).split())[:300]
        raise ConfigError(f"--storage {_shown_url(url)!r}: cannot open the study database: "
                          f"{type(error).__name__}: {text}") from None


# --- records ----------------------------------------------------------------------------------

@dataclasses.dataclass
class TrialRecord:
    """One trial of a solver's study (from any worker).

    Attributes:
        value: the score optuna sees (``log10`` of the metric for a log-axis
            metric); ``None`` unless complete.
        metric_value: the metric itself at the scored iteration.
        state: ``"complete"``, ``"pruned"``, ``"failed"`` or ``"running"``.
        reason: why a trial was pruned or failed.
        options, train: the solver options and ``[train]`` settings it ran with.
    """

    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    metric_value: float | None
    duration: float | None
    worker: str | None
    reason: str | None
    options: dict[str, Any] | None
    train: dict[str, Any] | None
    compile_seconds: float | None = None
    train_seconds: float | None = None
    last_stage: int | None = None
    baseline: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SolverSearch:
    """The search of one solver: its study, search space and trials."""

    label: str
    name: str
    trainable: bool
    study: str
    dimensions: list[Dimension]
    fixed: dict[str, Any]
    trials: list[TrialRecord]
    target_trials: int
    timed_out: bool = False
    direction: str = "minimize"

    @property
    def best(self) -> TrialRecord | None:
        """The best complete trial (``None`` when none completed)."""
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        if not done:
            return None
        sign = 1.0 if self.direction == "minimize" else -1.0
        return min(done, key=lambda t: (sign * t.value, t.number))

    def counts(self) -> dict[str, int]:
        out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        compiles = [t.compile_seconds for t in self.trials if t.compile_seconds]
        return {"name": self.name, "trainable": self.trainable, "study": self.study,
                "search_space": [d.to_dict() for d in self.dimensions], "fixed": self.fixed,
                "target_trials": self.target_trials, "timed_out": self.timed_out, "counts": self.counts(),
                "mean_compile_seconds": float(np.mean(compiles)) if compiles else None,
                "best": best.to_dict() if best else None, "trials": [t.to_dict() for t in self.trials]}


@dataclasses.dataclass
class TuneResult:
    """What :func:`tune` returns: every solver's search, and the tuned configuration."""

    config: ExperimentConfig
    tuned_labels: list[str]
    metric: Metric
    iteration: int
    budget: dict[str, Any]
    validation: dict[str, Any]
    storage: str
    study: str
    searches: dict[str, SolverSearch]
    sampler: dict[str, Any]

    def _learned_train(self) -> dict[str, dict[str, Any]]:
        return {label: s.best.train for label, s in self.searches.items()
                if s.trainable and s.best is not None and s.best.train is not None}

    def train_conflicts(self) -> tuple[dict[str, Any], list[str]]:
        """The ``[train]`` table of ``tuned.toml`` and the learned solvers whose best settings differ from it.

        One configuration holds one ``[train]`` table: it takes the settings shared by
        most learned solvers' best trials (the first such solver's on a tie).
        """
        tables = self._learned_train()
        if not tables:
            return self.config.to_dict()["train"], []
        canonical = {label: json.dumps(table, sort_keys=True) for label, table in tables.items()}
        votes: dict[str, int] = {}
        for text in canonical.values():
            votes[text] = votes.get(text, 0) + 1
        order = list(canonical.values())
        winner = max(order, key=lambda text: (votes[text], -order.index(text)))
        chosen = next(tables[label] for label, text in canonical.items() if text == winner)
        schedule_options = options_to_dict(self.config.schedule_options)
        return {**chosen, **schedule_options}, [label for label, text in canonical.items() if text != winner]

    def tuned_config(self, train_of: str | None = None) -> dict[str, Any]:
        """The experiment configuration with every tuned solver's best options (a raw dict for TOML).

        ``[train]`` is :meth:`train_conflicts`' table, or the best trial's of the
        learned solver labelled ``train_of``.
        """
        raw = self.config.to_dict()
        train_table, _ = self.train_conflicts()
        if train_of is not None:
            train_table = {**self.searches[train_of].best.train, **options_to_dict(self.config.schedule_options)}
        # trials train one seed; the configuration's seeds are what `unfold compare` trains
        raw["train"] = {**train_table, "seeds": options_to_dict(self.config.train)["seeds"]}
        for index, entry in enumerate(raw["solvers"]):
            search = self.searches.get(entry["label"])
            if search is not None and search.best is not None and search.best.options is not None:
                raw["solvers"][index] = {"name": entry["name"], "label": entry["label"], **search.best.options}
        return raw

    def to_dict(self) -> dict[str, Any]:
        """The content of ``tune.json``."""
        from .. import __version__

        train_table, conflicts = self.train_conflicts()
        return {
            "format": "du-framework-tune", "format_version": 1, "framework_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": self.config.to_dict(), "tuned": self.tuned_labels,
            "metric": {"name": self.metric.name, "label": self.metric.title,
                       "direction": "minimize" if self.metric.lower_is_better else "maximize",
                       "score": "log10" if self.metric.log_axis else "value", "iteration": self.iteration},
            "budget": self.budget, "validation": self.validation, "storage": self.storage, "study": self.study,
            "sampler": self.sampler, "tuned_train": train_table, "train_conflicts": conflicts,
            "solvers": {label: search.to_dict() for label, search in self.searches.items()},
        }


# --- the search -------------------------------------------------------------------------------

def _budget(config: ExperimentConfig, schedule, trials: int, timeout: float | None) -> dict[str, Any]:
    stages = expand_schedule(schedule, config.train, config.train.depth)
    steps = int(sum(stage.steps for stage in stages))
    return {"trials": trials, "timeout_seconds": timeout, "schedule": config.train.schedule,
            "schedule_options": options_to_dict(config.schedule_options), "depth": config.train.depth,
            "stages": len(stages), "steps_per_stage": config.train.steps_per_stage, "steps_per_trial": steps,
            "batch_size": config.train.batch_size, "instances_per_trial": steps * config.train.batch_size}


def _study_identity(config: ExperimentConfig, entry: SolverConfig, dims: list[Dimension], fixed: dict,
                    metric: Metric, iteration: int, budget: dict, validation: dict) -> dict[str, Any]:
    from .text import json_safe

    return json_safe({"solver": entry.name, "options": options_to_dict(entry.options),
                    "problem": config.to_dict()["problem"], "budget": {k: v for k, v in budget.items()
                                                                       if k not in ("trials", "timeout_seconds")},
                    "train": options_to_dict(config.train), "metric": metric.name, "iteration": iteration,
                    "validation": validation, "search_space": [d.to_dict() for d in dims], "fixed": fixed})


def _state_name(state) -> str:
    return {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
            "WAITING": "running"}.get(state.name, state.name.lower())


def _record(frozen) -> TrialRecord:
    attrs = frozen.user_attrs
    settings = attrs.get("settings") or {}
    return TrialRecord(
        number=frozen.number, state=_state_name(frozen.state), params=dict(frozen.params),
        value=frozen.value if frozen.state.name == "COMPLETE" else None, metric_value=attrs.get("metric_value"),
        duration=frozen.duration.total_seconds() if frozen.duration is not None else None,
        worker=attrs.get("worker"), reason=attrs.get("reason"), options=settings.get("options"),
        train=settings.get("train"), compile_seconds=attrs.get("compile_seconds"),
        train_seconds=attrs.get("train_seconds"), last_stage=attrs.get("last_stage"),
        baseline=bool(attrs.get("baseline", False)))


def _short(params: dict[str, Any]) -> str:
    shown = []
    for key, value in params.items():
        key = key.replace("train.", "")
        shown.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(shown)


def _done(study) -> int:
    """How many trials of ``study`` have ended (complete, pruned or failed)."""
    import optuna

    ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=ended))


class _Search:
    """The trials of one solver, run by this worker."""

    def __init__(self, *, optuna, study, config, entry, problem, schedule, dims, fixed, metric, iteration,
                 validation, worker, log, pruning, registry):
        self.optuna, self.study, self.config, self.entry = optuna, study, config, entry
        self.problem, self.schedule, self.dims, self.fixed = problem, schedule, dims, fixed
        self.metric, self.iteration, self.validation, self.worker = metric, iteration, validation, worker
        self.log, self.pruning, self.registry = log, pruning, registry
        self.sign = 1.0 if metric.lower_is_better else -1.0

    def settings_of(self, params: dict[str, Any]):
        values = {**self.fixed, **params}
        options = options_to_dict(self.entry.options)
        options.update({k: v for k, v in values.items() if not k.startswith("train.")})
        solver_cls = self.registry.solver(self.entry.name)
        parsed = parse_options(solver_cls.Options, options, prefix=f"solvers.{self.entry.label}.")
        train_settings = _train_settings(self.config.train, {k: v for k, v in values.items() if k.startswith("train.")})
        # A trial trains one seed, train.seed (train.seeds is what `unfold compare` does with the result).
        train_settings = train_settings.replace(seeds=1)
        return dataclasses.replace(self.entry, options=parsed), train_settings

    def run_trial(self, total: int) -> TrialRecord:
        optuna = self.optuna
        trial = self.study.ask()
        trial.set_user_attr("worker", self.worker)
        params = {dim.key: dim.suggest(trial) for dim in self.dims}
        started = time.perf_counter()
        outcome: dict[str, Any] = {}
        try:
            state, value = self._evaluate(trial, params, outcome)
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted")
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        except Exception as error:
            trial.set_user_attr("reason", f"{type(error).__name__}: {error}"[:500])
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        for key, item in outcome.items():
            trial.set_user_attr(key, item)
        if state == "complete":
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED if state == "pruned"
                            else optuna.trial.TrialState.FAIL)
        seconds = time.perf_counter() - started
        if self.log is not None:
            shown = (f"{self.metric.title} {self.metric.show(outcome['metric_value'])}" if state == "complete"
                     else f"{state}: {outcome.get('reason', '')}")
            compile_note = (f", compile {outcome['compile_seconds']:.1f} s" if outcome.get("compile_seconds")
                            else "")
            self.log(f"{self.entry.label} trial {trial.number} ({_done(self.study)} of {total}): {shown} "
                     f"({seconds:.1f} s{compile_note})"
                     + (f"  {_short(params)}" if params else ""))
        return next(_record(t) for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)

    def run_rate_grid(self, points: int) -> int:
        """Train ``points`` settings of the learning rates as one ensemble (one compiled program) and
        record each member as a completed (or pruned, if it diverged) trial of the study.

        The grid scales every searched rate option by one common factor, log-spaced over the widest
        span that keeps each rate inside its range; the other settings are the configuration's.
        Returns the number of trials recorded (0 when the solver searches no learning rate).
        """
        optuna = self.optuna
        entry, settings = self.settings_of({})
        solver = build_solver(entry, self.problem, self.config.train.depth)
        groups: dict[str, list[str]] = {}
        for path, variable in learned_variables(solver).items():
            groups.setdefault(str(getattr(variable, "lr", "lr")), []).append(path)
        dims = [d for d in self.dims if d.key in groups and d.tunable.choices is None and not d.integer]
        base = {d.key: float(getattr(entry.options, d.key)) for d in dims}
        dims = [d for d in dims if base[d.key] > 0]
        if not dims or points < 2:
            return 0
        low = max(d.tunable.low / base[d.key] for d in dims)
        high = min(d.tunable.high / base[d.key] for d in dims)
        if not 0 < low < high:
            return 0
        factors = np.geomspace(low, high, points)
        rate_factors = {path: factors for d in dims for path in groups[d.key]}
        started = time.perf_counter()
        results = train_ensemble(solver, self.problem, self.schedule, settings,
                                 keys=[training_key(self.config.train.seed, entry.label)] * points, progress=False,
                                 label=entry.label, on_divergence="record", rate_factors=rate_factors)
        seconds = (time.perf_counter() - started) / points
        for factor, result in zip(factors, results):
            params = {d.key: float(base[d.key] * factor) for d in dims}
            distributions = {d.key: optuna.distributions.FloatDistribution(d.tunable.low, d.tunable.high,
                                                                            log=d.tunable.log) for d in dims}
            attrs = {"worker": self.worker, "grid": True, "train_seconds": float(result.train_seconds),
                     "settings": {"options": {**options_to_dict(entry.options), **params},
                                  "train": options_to_dict(settings)}}
            value, state = None, optuna.trial.TrialState.PRUNED
            if result.diverged_at is not None:
                attrs["reason"] = (f"diverged at stage {result.diverged_at['stage']}, step "
                                   f"{result.diverged_at['step']} (rate grid)")
            else:
                measured = float(evaluate(result.solver, self.problem, key=validation_key(self.config.evaluation.seed),
                                          batch_size=self.validation["batch_size"],
                                          batches=self.validation["batches"],
                                          metrics=[self.metric.name])[self.metric.name][self.iteration - 1])
                attrs["metric_value"] = measured if math.isfinite(measured) else None
                if math.isfinite(measured):
                    value = math.log10(max(measured, np.finfo(np.float64).tiny)) if self.metric.log_axis else measured
                    state = optuna.trial.TrialState.COMPLETE
                else:
                    attrs["reason"] = f"the validation {self.metric.name} is not finite ({measured})"
            attrs["grid_seconds_per_member"] = seconds
            self.study.add_trial(optuna.trial.create_trial(
                params=params, distributions=distributions, value=value, state=state, user_attrs=attrs))
            if self.log is not None:
                shown = (f"{self.metric.title} {self.metric.show(attrs['metric_value'])}" if value is not None
                         else attrs.get("reason", "pruned"))
                self.log(f"{entry.label} trial {len(self.study.get_trials(deepcopy=False)) - 1} (rate grid, factor "
                         f"{factor:.3g}): {shown}  {_short(params)}")
        return points

    def _evaluate(self, trial, params, outcome) -> tuple[str, float | None]:
        optuna = self.optuna
        try:
            entry, settings = self.settings_of(params)
            outcome["settings"] = {"options": options_to_dict(entry.options), "train": options_to_dict(settings)}
            solver = build_solver(entry, self.problem, self.config.train.depth)
        except DUError as error:  # a combination the solver refuses
            outcome["reason"] = f"refused: {' '.join(str(error).split())}"[:500]
            return "failed", None
        if solver.is_trainable:
            sign = self.sign

            def report(state) -> None:
                # stage_losses hold the loss itself whatever train.log_loss (which only changes what
                # is descended), so every trial reports log(loss): trials with and without the log
                # loss are compared by the pruner on one scale.
                if not state.stage_losses:
                    return
                loss = float(np.mean(state.stage_losses[-1]))
                level = math.log(max(loss, np.finfo(np.float64).tiny)) if math.isfinite(loss) else float("nan")
                trial.report(sign * level if math.isfinite(level) else float("nan"), state.stages_done)
                outcome["last_stage"] = state.stages_done
                if self.pruning and trial.should_prune():
                    raise optuna.TrialPruned(f"training loss at stage {state.stages_done} worse than the median "
                                             f"of earlier trials")

            try:
                result = train(solver, self.problem, self.schedule, settings,
                               key=training_key(self.config.train.seed, entry.label), progress=False,
                               label=entry.label, on_stage_end=report)
            except optuna.TrialPruned as pruned:
                outcome["reason"] = str(pruned)
                return "pruned", None
            except TrainingDivergedError as error:
                outcome["reason"] = f"diverged: {' '.join(str(error).split())}"[:500]
                return "pruned", None
            outcome["compile_seconds"] = float(result.compile_seconds)
            outcome["train_seconds"] = float(result.train_seconds)
            solver = result.solver
        curves = evaluate(solver, self.problem, key=validation_key(self.config.evaluation.seed),
                          batch_size=self.validation["batch_size"], batches=self.validation["batches"],
                          metrics=[self.metric.name])
        measured = float(curves[self.metric.name][self.iteration - 1])
        outcome["metric_value"] = measured if math.isfinite(measured) else None
        if not math.isfinite(measured):
            outcome["reason"] = f"the validation {self.metric.name} is not finite ({measured})"
            return "pruned", None
        score = math.log10(max(measured, np.finfo(np.float64).tiny)) if self.metric.log_axis else measured
        return "complete", score


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


def _baseline_params(entry: SolverConfig, train_settings: TrainSettings, dims: list[Dimension],
                     resolved: dict[str, Any] | None = None) -> dict[str, Any]:
    """The configuration's own value of every dimension whose range holds it.

    An option left "automatic" (0 for GD's step, -1 for a SOR factor) is outside its range;
    ``resolved`` (the built solver's :meth:`~du_framework.UnfoldedSolver.constants`) then gives
    the value the solver computed for it, so trial 0 is the textbook constant itself.
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


def _resolved_constants(entry: SolverConfig, problem, depth: int, registry) -> dict[str, Any]:
    """The constants a classical solver computes from its options (empty when it cannot be built)."""
    try:
        return dict(build_solver(entry, problem, depth, registry).constants())
    except Exception:  # noqa: BLE001 - the trials report a solver that cannot be built
        return {}


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def tune(config: ExperimentConfig, *, trials: int, labels: Sequence[str] | None = None,
         storage: str | None = None, study: str | None = None, metric: str | None = None, seed: int = 0,
         timeout: float | None = None, space: dict[str, Any] | None = None,
         optimizers: Sequence[str] | None = DEFAULT_OPTIMIZERS, search_log_loss: bool = True,
         validation_batches: int | None = None, pruning: bool = True, pruner_startup: int | None = None,
         baseline: bool = True, shared: bool | None = None,
         worker: str | None = None, registry: Registry | None = None, rate_grid: int = 0,
         log: Callable[[str], None] | None = None) -> TuneResult:
    """Search every solver of ``config`` (or those labelled ``labels``) under an equal budget.

    Args:
        trials: trials per solver (in the whole study: workers sharing it stop when
            it holds ``trials``). A solver with nothing to search runs one.
        storage: an optuna RDB URL (:func:`open_storage`); default an in-memory study.
        study: the study name prefix (each solver's study is ``STUDY:LABEL``); with a
            shared ``storage`` every worker giving the same name joins the same studies.
        metric: the metric scored (default: the problem's primary metric), at the last iteration.
        seed: seed of the TPE sampler (mixed with the label; in a shared search also
            with the worker, so workers propose different settings).
        timeout: seconds after which this worker starts no new trial of a solver.
        space: overrides of the search space (:func:`parse_space`).
        optimizers: the optimisers searched (one name: fixed; ``None``: the configuration's).
        search_log_loss: also search ``train.log_loss``.
        validation_batches: validation batches of ``evaluation.batch_size`` instances
            (default ``evaluation.batches``).
        pruning: stop trials whose stage loss is worse than the median (optuna's MedianPruner).
        pruner_startup: complete trials before pruning starts (default ``trials // 4``
            within 2 to 5); the first quarter of the schedule's stages is never pruned.
        rate_grid: with ``N >= 2``, a new study of a learned solver begins with ``N``
            trials trained together as one ensemble (one compiled program): its
            searched learning rates scaled by ``N`` log-spaced common factors, the
            other settings as configured; they count toward ``trials`` and the
            sampler continues from them.
        baseline: make a new study's first trial the configuration as given (every
            searched setting whose range holds the configured value), so the search
            starts from it and reports how much it gained.
        shared: whether other workers may share the study (default: ``storage`` or
            ``study`` given); a shared search mixes the worker's name into the sampler's seed.
        worker: this worker's name in the trials' records (default ``HOST:PID``).
        log: receives one line per trial (``None``: quiet).

    Raises:
        ConfigError: ``trials < 1``, an unknown label or metric, a bad storage, a space
            key that names nothing, or a shared study started with another configuration.
        IncompatibleProblemError: a solver does not fit the problem.
    """
    from .report import select_metric

    optuna = _optuna()
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--trials must be an integer >= 1 (trials per solver), got {trials!r}")
    if timeout is not None and not (timeout > 0):
        raise ConfigError(f"--timeout must be a number of seconds > 0, got {timeout!r}")
    if validation_batches is not None and validation_batches < 1:
        raise ConfigError(f"--validation-batches must be >= 1, got {validation_batches!r}")
    registry = registry or get_registry()
    chosen = check_selection(config, labels, space)
    known = [e.label for e in config.solvers]
    chosen_metric = select_metric(registry.problem(config.problem.name), metric)
    problem = build_problem(config, registry)
    schedule = build_schedule(config, registry)
    solvers = dict(zip(known, build_solvers(config, problem, registry)))
    budget = _budget(config, schedule, trials, timeout)
    iteration = config.train.depth
    validation = {"seed": config.evaluation.seed, "tag": VALIDATION_TAG, "batch_size": config.evaluation.batch_size,
                  "batches": validation_batches or config.evaluation.batches}
    shared = (storage is not None or study is not None) if shared is None else shared
    url = storage if storage is not None else "sqlite:///:memory:"
    rdb = open_storage(url) if storage is not None else optuna.storages.InMemoryStorage()
    prefix = study or "tune"
    worker = worker or _worker_id()
    direction = "minimize" if chosen_metric.lower_is_better else "maximize"
    startup = pruner_startup if pruner_startup is not None else max(2, min(5, trials // 4))
    warmup = budget["stages"] // 4  # the first quarter of the schedule's stages is never pruned
    sampler_info = {"sampler": "TPESampler (multivariate, constant liar)", "seed": seed,
                    "startup_trials": max(1, min(10, trials // 3)),
                    "pruner": (f"MedianPruner (after {startup} complete trials, from stage {warmup + 1})" if pruning
                              else "none")}
    searches: dict[str, SolverSearch] = {}
    try:
        for label in chosen:
            entry = config.solver(label)
            solver = solvers[label]
            dims, fixed = search_space(entry, solver, space=space, optimizers=optimizers,
                                       search_log_loss=search_log_loss)
            target = trials if dims else 1
            mix = f"{seed}/{label}/{worker}" if shared else f"{seed}/{label}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler = optuna.samplers.TPESampler(seed=zlib.crc32(mix.encode()),
                                                     n_startup_trials=sampler_info["startup_trials"],
                                                     multivariate=True, constant_liar=True)
            pruner = optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup + 1)  # steps are stages, from 1
            name = f"{prefix}:{label}"
            identity = _study_identity(config, entry, dims, fixed, chosen_metric, iteration, budget, validation)
            handle = optuna.create_study(storage=rdb, study_name=name, direction=direction, sampler=sampler,
                                         pruner=pruner, load_if_exists=True)
            stored = handle.user_attrs.get("du_framework")
            if stored is None:
                handle.set_user_attr("du_framework", identity)
            elif stored != identity:
                differ = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
                raise ConfigError(f"study {name!r} in {_shown_url(url)!r} was started with another configuration "
                                  f"(its {', '.join(differ)} differ); join it with the same configuration, "
                                  f"--space and --metric, or choose another --study")
            if handle.direction.name.lower() != direction:
                raise ConfigError(f"study {name!r} {handle.direction.name.lower()}s, but metric "
                                  f"{chosen_metric.name!r} asks to {direction}; choose another --study")
            start = _baseline_params(entry, config.train, dims,
                                     _resolved_constants(entry, problem, config.train.depth, registry)) if baseline else {}
            if start and not handle.get_trials(deepcopy=False):
                handle.enqueue_trial(start, user_attrs={"baseline": True}, skip_if_exists=True)
            search = _Search(optuna=optuna, study=handle, config=config, entry=entry, problem=problem,
                             schedule=schedule, dims=dims, fixed=fixed, metric=chosen_metric, iteration=iteration,
                             validation=validation, worker=worker, log=log, pruning=pruning, registry=registry)
            counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                       optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING)
            started, timed_out = time.monotonic(), False
            if log is not None and len(config.train.seed_list()) > 1 and solver.is_trainable:
                log(f"{label}: each trial trains one seed (train.seed = {config.train.seed}); train.seeds = "
                    f"{list(config.train.seed_list())} is kept in tuned.toml for unfold compare")
            if log is not None:
                what = ", ".join(d.describe() for d in dims) or "nothing to search (one scoring trial)"
                log(f"{label} ({entry.name}): {target} trial(s) of {name!r}; searching {what}")
            if rate_grid and solver.is_trainable and not handle.get_trials(
                    deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)):
                search.run_rate_grid(min(rate_grid, target))  # a new study: the grid first, then TPE from it
            while len(handle.get_trials(deepcopy=False, states=counted)) < target:
                if timeout is not None and time.monotonic() - started >= timeout:
                    timed_out = True
                    break
                search.run_trial(target)
            records = [_record(t) for t in handle.get_trials(deepcopy=False)]
            searches[label] = SolverSearch(label, entry.name, solver.is_trainable, name, dims, fixed, records,
                                           target, timed_out, direction)
    finally:
        engine = getattr(rdb, "engine", None)
        if engine is not None:
            engine.dispose()
    return TuneResult(config=config, tuned_labels=chosen, metric=chosen_metric, iteration=iteration, budget=budget,
                      validation=validation, storage=_shown_url(url) if storage is not None else "(in memory)",
                      study=prefix, searches=searches, sampler=sampler_info)


def trials_csv(result: TuneResult) -> str:
    """Every trial of every solver as CSV: label, number, state, value, metric, duration, worker, reason, params."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "number", "state", "value", result.metric.name, "duration_s", "worker", "reason",
                     "params"])
    for label, search in result.searches.items():
        for t in search.trials:
            writer.writerow([label, t.number, t.state, "" if t.value is None else repr(float(t.value)),
                             "" if t.metric_value is None else repr(float(t.metric_value)),
                             "" if t.duration is None else f"{t.duration:.3f}", t.worker or "", t.reason or "",
                             json.dumps(t.params, sort_keys=True)])
    return buffer.getvalue()

