"""Experiment configuration: TOML -> frozen, validated dataclasses.

A configuration has four tables::

    [problem]            name + the problem's own options (ridge: n, m, lam, seed, matrix)
    [train]              schedule, depth, steps_per_stage, batch_size, seed, chunk_size,
                         remat, log_loss, devices + the schedule's own options
    [evaluation]         batch_size, batches, seed
    [[solvers]]          name, optional label, + the solver's own options

Keys left out take their defaults; ``unfold compare`` with no ``--config`` uses the
reference experiment (:data:`REFERENCE_TOML`). ``--set KEY=VALUE`` overrides
any key before validation: ``problem.n=20``, ``train.depth=10``,
``solvers.dugd.period=8`` (a solver by label) or ``solvers.0.period=8`` (by
position). Every unknown key is refused with the nearest valid one.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError, nearest
from .options import options_to_dict, parse_options
from .plugins import Registry, get_registry

__all__ = [
    "REFERENCE_TOML",
    "TrainConfig",
    "EvaluationConfig",
    "ProblemConfig",
    "SolverConfig",
    "ExperimentConfig",
    "load_raw",
    "apply_overrides",
    "build_config",
    "load_config",
    "select_solvers",
]

REFERENCE_TOML = """\
# The reference experiment (Wadayama's DU-GD ridge regression; see docs/concepts.md).
[problem]
name = "ridge"
n = 50
m = 100
lam = 3.0
seed = 0

[train]
schedule = "incremental"
depth = 50
steps_per_stage = 20
batch_size = 100
seed = 1
log_loss = true

[evaluation]
batch_size = 100
batches = 10
seed = 2026

[[solvers]]
name = "dugd"
label = "dugd"
period = 4
learn_lambda = false

[[solvers]]
name = "dugd"
label = "dugd-lambda"
period = 4
learn_lambda = true
lr = 1e-3

[[solvers]]
name = "gd"
label = "gd"

# Theory baselines (plugin du-theory): how close learning gets to theory.
[[solvers]]
name = "gd-chebyshev"
label = "gd-chebyshev"
period = 4

[[solvers]]
name = "heavy-ball"
label = "heavy-ball"

[[solvers]]
name = "cg"
label = "cg"
"""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The ``[train]`` table (plus the schedule's own options in ``schedule_options``)."""

    schedule: str = "incremental"
    depth: int = 50
    steps_per_stage: int = 20
    batch_size: int = 100
    seed: int = 1
    chunk_size: int = 256
    remat: bool | int = False
    log_loss: bool = True
    devices: int = 1

    def validate(self):
        for key in ("depth", "steps_per_stage", "batch_size", "chunk_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        if not isinstance(self.remat, bool) and self.remat < 0:
            raise ConfigError(f"train.remat must be true, false or a number of levels >= 0, got {self.remat}")
        if self.devices < 0:
            raise ConfigError(f"train.devices must be >= 0 (1: one device, 0: every device), got {self.devices}")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The ``[evaluation]`` table: fresh instances shared by every solver."""

    batch_size: int = 100
    batches: int = 10
    seed: int = 2026

    def validate(self):
        if self.batch_size < 1 or self.batches < 1:
            raise ConfigError(
                f"evaluation.batch_size and evaluation.batches must be >= 1, got "
                f"{self.batch_size} and {self.batches}"
            )


@dataclasses.dataclass(frozen=True)
class ProblemConfig:
    name: str
    options: Any


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    name: str
    label: str
    options: Any


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment; :meth:`to_dict` gives the resolved configuration."""

    problem: ProblemConfig
    train: TrainConfig
    schedule_options: Any
    evaluation: EvaluationConfig
    solvers: tuple[SolverConfig, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": {"name": self.problem.name, **options_to_dict(self.problem.options)},
            "train": {**options_to_dict(self.train), **options_to_dict(self.schedule_options)},
            "evaluation": options_to_dict(self.evaluation),
            "solvers": [
                {"name": s.name, "label": s.label, **options_to_dict(s.options)} for s in self.solvers
            ],
        }

    def solver(self, label: str) -> SolverConfig:
        for solver in self.solvers:
            if solver.label == label:
                return solver
        raise ConfigError(f"no solver labelled {label!r}; labels: {', '.join(s.label for s in self.solvers)}")


_TABLES = ("problem", "train", "evaluation", "solvers")


def load_raw(path: str | Path | None) -> dict[str, Any]:
    """Parse a TOML file (or the reference experiment when ``path`` is None)."""
    if path is None:
        return tomllib.loads(REFERENCE_TOML)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {error.strerror or error}") from error
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {error}") from error


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string such as  train.schedule=end-to-end


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides to a raw configuration (returns a copy).

    Values are read as TOML (``3``, ``1e-3``, ``true``, ``"x"``); anything that is
    not valid TOML is taken as a string.
    """
    raw = copy.deepcopy(raw)
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (for example train.depth=10), got {override!r}")
        parts = key.split(".")
        value = _parse_value(text.strip())
        if parts[0] not in _TABLES:
            hint = nearest(parts[0], _TABLES)
            raise ConfigError(
                f"unknown key {key!r}: it must start with one of {', '.join(_TABLES)}"
                + (f" (did you mean {hint!r}?)" if hint else "")
            )
        if parts[0] == "solvers":
            if len(parts) != 3:
                raise ConfigError(f"--set {key}: solver keys are solvers.<label or index>.<option>")
            solvers = raw.setdefault("solvers", [])
            target = _find_solver(solvers, parts[1], key)
            target[parts[2]] = value
            continue
        if len(parts) != 2:
            raise ConfigError(f"--set {key}: expected <table>.<key>, for example {parts[0]}.seed=3")
        raw.setdefault(parts[0], {})[parts[1]] = value
    return raw


def _find_solver(solvers: list[dict], selector: str, key: str) -> dict:
    if selector.isdigit():
        index = int(selector)
        if index >= len(solvers):
            raise ConfigError(f"--set {key}: there are {len(solvers)} solvers (indices 0..{len(solvers) - 1})")
        return solvers[index]
    for solver in solvers:
        if solver.get("label", solver.get("name")) == selector:
            return solver
    labels = [s.get("label", s.get("name")) for s in solvers]
    hint = nearest(selector, labels)
    raise ConfigError(
        f"--set {key}: no solver labelled {selector!r}; labels: {', '.join(map(str, labels))}"
        + (f" (did you mean {hint!r}?)" if hint else "")
    )


def _table(raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table, got {value!r}")
    return value


def build_config(raw: dict[str, Any], registry: Registry | None = None) -> ExperimentConfig:
    """Validate a raw configuration against the registered components."""
    registry = registry or get_registry()
    for key in raw:
        if key not in _TABLES:
            hint = nearest(key, _TABLES)
            raise ConfigError(
                f"unknown table {key!r}" + (f"; did you mean {hint!r}?" if hint else "")
                + f" Valid tables: {', '.join(_TABLES)}"
            )

    problem_raw = dict(_table(raw, "problem"))
    problem_name = problem_raw.pop("name", "ridge")
    problem_cls = registry.problem(problem_name)
    problem = ProblemConfig(problem_name, parse_options(problem_cls.Options, problem_raw, prefix="problem."))

    train_raw = dict(_table(raw, "train"))
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    schedule_name = train_raw.get("schedule", TrainConfig.schedule)
    schedule_cls = registry.schedule(schedule_name)
    schedule_keys = {f.name for f in dataclasses.fields(schedule_cls.Options)}
    unknown = [k for k in train_raw if k not in train_keys | schedule_keys]
    if unknown:
        hint = nearest(unknown[0], train_keys | schedule_keys)
        raise ConfigError(
            f"unknown key 'train.{unknown[0]}'" + (f"; did you mean 'train.{hint}'?" if hint else "")
            + f" Valid keys: {', '.join('train.' + k for k in sorted(train_keys | schedule_keys))}"
        )
    train = parse_options(TrainConfig, {k: v for k, v in train_raw.items() if k in train_keys}, prefix="train.")
    schedule_options = parse_options(
        schedule_cls.Options, {k: v for k, v in train_raw.items() if k in schedule_keys}, prefix="train."
    )
    evaluation = parse_options(EvaluationConfig, _table(raw, "evaluation"), prefix="evaluation.")

    solvers_raw = raw.get("solvers", [])
    if not isinstance(solvers_raw, list) or not solvers_raw:
        raise ConfigError(
            "the configuration lists no solvers: add at least one [[solvers]] table with a name, "
            f"one of: {', '.join(registry.names('solver'))}"
        )
    solvers = []
    labels: set[str] = set()
    for index, entry in enumerate(solvers_raw):
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(f"solvers[{index}] must be a table with a 'name' key, got {entry!r}")
        entry = dict(entry)
        name = entry.pop("name")
        label = entry.pop("label", name)
        if not isinstance(label, str) or not label or "/" in label:
            raise ConfigError(f"solvers[{index}].label must be a non-empty string without '/', got {label!r}")
        if label in labels:
            raise ConfigError(
                f"two solvers are labelled {label!r}; give each [[solvers]] entry a distinct "
                f"label = \"...\" (for example {label!r} and {label + '-2'!r})"
            )
        labels.add(label)
        solver_cls = registry.solver(name)
        options = parse_options(solver_cls.Options, entry, prefix=f"solvers.{label}.")
        solvers.append(SolverConfig(name, label, options))
    return ExperimentConfig(problem, train, schedule_options, evaluation, tuple(solvers))


def select_solvers(config: ExperimentConfig, labels: list[str]) -> ExperimentConfig:
    """``config`` with only the solvers labelled ``labels`` (in the configuration's order)."""
    wanted = [label.strip() for label in labels if label.strip()]
    known = [s.label for s in config.solvers]
    unknown = [label for label in wanted if label not in known]
    if unknown or not wanted:
        guess = nearest(unknown[0], known) if unknown else None
        hint = f" (did you mean {guess!r}?)" if guess else ""
        raise ConfigError(f"--only names no solver of this configuration: {', '.join(unknown) or '(empty)'}{hint}; "
                          f"labels: {', '.join(known)}")
    return dataclasses.replace(config, solvers=tuple(s for s in config.solvers if s.label in wanted))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                registry: Registry | None = None) -> ExperimentConfig:
    """Read, override and validate a configuration in one call."""
    return build_config(apply_overrides(load_raw(path), overrides or []), registry)
