"""Experiment configuration: TOML -> frozen, validated dataclasses.

A configuration has four tables::

    [problem]            name (required) + the problem's own options
    [train]              the run settings (:class:`~du_framework.engine.TrainSettings`)
                         + the schedule's own options
    [evaluation]         batch_size, batches, seed (:class:`~du_framework.engine.EvaluationSettings`)
    [[solvers]]          name, optional label, + the solver's own options

Every table is validated by :func:`du_framework.options.parse_options` against
the options its component declares; keys left out take their defaults and an
unknown key is refused with the nearest valid one.

Where a configuration comes from (:func:`load_raw`): a TOML file, or an
experiment a plugin ships (``--experiment NAME``), or else the default
experiment of the installed plugins. ``--set KEY=VALUE`` overrides any key
before validation: ``problem.n=20``, ``train.depth=10``,
``solvers.LABEL.period=8`` (a solver by label) or ``solvers.0.period=8`` (by
position). Switching a component by name (``problem.name=OTHER``,
``train.schedule=OTHER``, ``solvers.0.name=OTHER``) drops the options the file
gave the old one; only the overrides apply to the new one.
"""

from __future__ import annotations

import dataclasses
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

from ..engine.settings import EvaluationSettings, TrainSettings
from ..engine.transforms import check_optimizer_settings
from ..errors import ConfigError, UnknownNameError, nearest
from ..io.safe_files import read_limited
from ..metrics import metric_table
from ..options import options_to_dict, parse_options, replace_option
from ..registry import Registry, get_registry
from .overrides import TABLES, TRAIN_KEYS, apply_overrides

__all__ = [
    "ProblemConfig",
    "SolverConfig",
    "ExperimentConfig",
    "load_raw",
    "apply_overrides",
    "build_config",
    "load_config",
    "select_solvers",
    "sweep_point_options",
]



@dataclasses.dataclass(frozen=True)
class ProblemConfig:
    """The ``[problem]`` table: the problem's registry name and its validated ``Options``."""

    name: str
    options: Any


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """One ``[[solvers]]`` entry: registry name, unique label and validated ``Options``."""

    name: str
    label: str
    options: Any


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment; :meth:`to_dict` gives the resolved configuration.

    Attributes:
        train: the ``[train]`` table less the schedule's own options, handed
            whole to :func:`du_framework.engine.train`.
        schedule_options: the schedule's own options (also set under ``[train]``).
    """

    problem: ProblemConfig
    train: TrainSettings
    schedule_options: Any
    evaluation: EvaluationSettings
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


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where} is not valid TOML: {error}") from error


MAX_CONFIG_BYTES = 1 << 20  # a configuration is a few KiB; anything past 1 MiB is the wrong file


def _read_config_file(path: Path) -> str:
    """The text of a configuration file: a regular file or a pipe (``--config <(...)``) of at most 1 MiB of UTF-8,
    checked before reading."""
    where = repr(str(path))
    data = read_limited(path, limit=MAX_CONFIG_BYTES, what="configuration file", error=ConfigError, pipes=True,
                        too_large="; a configuration is at most {limit} bytes (1 MiB): is it the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(f"configuration file {where} is not UTF-8 text (byte {data[error.start]:#04x} at "
                          f"offset {error.start}, line {line}); TOML files are UTF-8") from None


# A label names files (checkpoints/<label>.npz) and appears in tables and plots.
MAX_LABEL_LENGTH = 100


def _label_problem(label: str) -> str | None:
    """Why ``label`` cannot be a file name, or ``None`` when it can."""
    if not label.strip():
        return "it is empty or blank"
    if len(label) > MAX_LABEL_LENGTH:
        return f"it is {len(label)} characters long (at most {MAX_LABEL_LENGTH})"
    for forbidden, what in (("\0", "a NUL character"), ("/", "'/'"), ("\\", "a backslash '\\'")):
        if forbidden in label:
            return f"it contains {what}"
    if label.startswith("."):
        return "it starts with '.' (a hidden file name, or '..')"
    control = next((c for c in label if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if control is not None:
        return f"it contains the control character {control!r}"
    if len(label.encode("utf-8")) + len(".last-good.npz") > 255:
        return "it is too long for a file name once encoded (at most 255 bytes with its '.last-good.npz')"
    return None


def _experiment_names(registry: Registry) -> str:
    names = sorted(registry.entries["experiment"])
    return ", ".join(names) if names else "(none installed)"


def load_raw(path: str | Path | None = None, *, experiment: str | None = None,
             registry: Registry | None = None) -> dict[str, Any]:
    """The raw configuration: a TOML file, a named experiment, or the default experiment.

    Args:
        path: a TOML file; wins over everything else.
        experiment: the name of an experiment a plugin registered.

    Raises:
        ConfigError: the file is unreadable or not TOML; both ``path`` and
            ``experiment`` were given; neither was given and no installed plugin
            provides a default experiment (the message says what to do).
        UnknownNameError: no experiment is registered as ``experiment``.
    """
    if path is not None and experiment is not None:
        raise ConfigError("give either a configuration file or an experiment, not both")
    if path is not None:
        return _parse_toml(_read_config_file(Path(path)), repr(str(path)))
    registry = registry or get_registry()
    chosen = registry.experiment(experiment) if experiment is not None else registry.default_experiment()
    if chosen is None:
        raise ConfigError(
            "no configuration given and no installed plugin provides a default experiment. Pass "
            "--config FILE.toml (`unfold examples copy NAME` writes one), or --experiment NAME with one of the installed "
            f"experiments: {_experiment_names(registry)}; or install a plugin that ships a default "
            "experiment (in a du-framework checkout, `make install` installs the bundled plugins, the "
            "reference experiment's among them; `pip install -e plugins/NAME` installs one).")
    plugin = registry.plugin_of("experiment", chosen.name)
    return _parse_toml(chosen.config, f"experiment {chosen.name!r} of plugin {plugin!r}")


def _table(raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table, got {value!r}")
    return value


def _name(value: Any, where: str, kind: str, registry: Registry) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must name a registered {kind} (a string), got {value!r}; "
                          f"installed {kind}s: {', '.join(sorted(registry.entries[kind])) or '(none)'}")
    try:
        registry.get(kind, value)
    except UnknownNameError as error:  # the registry's message (known names, the nearest), with the key in front
        error.args = (f"{where}: {error}",)
        raise
    return value


def _problem(raw: dict, registry: Registry) -> ProblemConfig:
    table = dict(_table(raw, "problem"))
    if "name" not in table:
        raise ConfigError(
            "[problem] needs a name: add name = \"...\" to [problem] (or --set problem.name=NAME); installed "
            f"problems: {', '.join(sorted(registry.entries['problem'])) or '(none)'}")
    name = _name(table.pop("name"), "problem.name", "problem", registry)
    cls = registry.problem(name)
    return ProblemConfig(name, parse_options(cls.Options, table, prefix="problem.", extra_keys=("name",)))


def _train(raw: dict, problem: ProblemConfig, registry: Registry) -> tuple[TrainSettings, Any]:
    table = _table(raw, "train")
    settings = parse_options(TrainSettings, {k: v for k, v in table.items() if k in TRAIN_KEYS}, prefix="train.")
    check_optimizer_settings(settings)  # an unknown optimiser is refused before any training
    schedule = registry.schedule(_name(settings.schedule, "train.schedule", "schedule", registry))
    schedule_options = parse_options(schedule.Options, {k: v for k, v in table.items() if k not in TRAIN_KEYS},
                                     prefix="train.", extra_keys=TRAIN_KEYS)
    if settings.loss:
        metrics = metric_table(registry.problem(problem.name))
        if settings.loss not in metrics:
            hint = nearest(settings.loss, metrics)
            raise ConfigError(
                f"train.loss must be empty (the problem's own loss) or one of the metrics of problem "
                f"{problem.name!r}: {', '.join(metrics)}; got {settings.loss!r}"
                + (f" (did you mean {hint!r}?)" if hint else ""))
        if not metrics[settings.loss].lower_is_better:
            raise ConfigError(f"train.loss = {settings.loss!r}: higher is better for this metric, and training "
                              f"minimises its loss; name a metric where lower is better, or leave it empty")
    return settings, schedule_options


def _solvers(raw: dict, registry: Registry) -> tuple[SolverConfig, ...]:
    entries = raw.get("solvers", [])
    if not isinstance(entries, list):
        raise ConfigError(f"solvers must be a list of [[solvers]] tables, got {entries!r}")
    if not entries:
        raise ConfigError(
            "the configuration lists no solvers: add at least one [[solvers]] table with a name, "
            f"one of: {', '.join(sorted(registry.entries['solver'])) or '(none installed)'}")
    solvers = []
    labels: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(f"solvers[{index}] must be a table with a 'name' key, got {entry!r}")
        entry = dict(entry)
        name = _name(entry.pop("name"), f"solvers[{index}].name", "solver", registry)
        label = entry.pop("label", name)
        if not isinstance(label, str):
            raise ConfigError(f"solvers[{index}] (solver {name!r}): label must be a string, got {label!r}")
        why = _label_problem(label)
        if why is not None:
            given = "label" if "label" in entries[index] else "label (its name, as no label is given)"
            raise ConfigError(f"solvers[{index}] (solver {name!r}): {given} {label!r} cannot name a file: {why}; "
                              f"choose a label of letters, digits, '-', '_' and '.' (not first)")
        if label in labels:
            raise ConfigError(
                f"two solvers are labelled {label!r}; give each [[solvers]] entry a distinct "
                f"label = \"...\" (for example {label!r} and {label + '-2'!r})")
        labels.add(label)
        cls = registry.solver(name)
        options = parse_options(cls.Options, entry, prefix=f"solvers.{label}.", extra_keys=("name", "label"))
        solvers.append(SolverConfig(name, label, options))
    return tuple(solvers)


def build_config(raw: dict[str, Any], registry: Registry | None = None) -> ExperimentConfig:
    """Validate a raw configuration against the registered components.

    Raises:
        ConfigError: an unknown table or key (with the nearest valid one), a
            value of the wrong type or out of range, a missing problem name.
        UnknownNameError: a problem, schedule or solver name is not registered.
    """
    registry = registry or get_registry()
    for key in raw:
        if key not in TABLES:
            hint = nearest(key, TABLES)
            raise ConfigError(f"unknown table {key!r}" + (f"; did you mean {hint!r}?" if hint else "")
                              + f" Valid tables: {', '.join(TABLES)}")
    problem = _problem(raw, registry)
    train, schedule_options = _train(raw, problem, registry)
    evaluation = parse_options(EvaluationSettings, _table(raw, "evaluation"), prefix="evaluation.")
    beyond = [t for t in evaluation.table_iterations if t > train.depth]
    if beyond:
        raise ConfigError(f"evaluation.table_iterations = {list(evaluation.table_iterations)} goes beyond "
                          f"train.depth = {train.depth} ({', '.join(map(str, beyond))}); give iterations in "
                          f"1..{train.depth}")
    _check_error_target(evaluation, problem, registry)
    sweep_point_options(problem, evaluation, registry)  # an option the problem lacks, a value of the wrong type
    return ExperimentConfig(problem, train, schedule_options, evaluation, _solvers(raw, registry))


def _check_error_target(evaluation: EvaluationSettings, problem: ProblemConfig, registry: Registry) -> None:
    """``target_errors`` needs a primary metric that counts errors."""
    if evaluation.target_errors is None:
        return
    cls = registry.problem(problem.name)
    metrics, primary = metric_table(cls), cls.primary()
    if not metrics[primary].counts_errors:
        counting = [name for name, metric in metrics.items() if metric.counts_errors]
        raise ConfigError(f"evaluation.target_errors = {evaluation.target_errors} counts the errors of the primary "
                          f"metric, but {primary!r} of problem {problem.name!r} is not an error count "
                          f"(Metric.counts_errors)" + (f"; its metrics that count errors: {', '.join(counting)}"
                                                         if counting else "; none of its metrics counts errors")
                          + "; leave target_errors out to evaluate the fixed evaluation.batches")


def sweep_point_options(problem: ProblemConfig, evaluation: EvaluationSettings,
                        registry: Registry | None = None) -> list[Any]:
    """The problem's validated ``Options`` at each point of ``evaluation.sweep`` (the configured options with
    the swept one replaced), in order; empty without a sweep.

    Raises:
        ConfigError: the problem has no such option (naming the nearest), or a value is of the wrong type or
            out of its range.
    """
    name = evaluation.sweep_option
    if name is None:
        return []
    owner = f"problem {problem.name!r}"
    if name not in {f.name for f in dataclasses.fields(problem.options)}:
        replace_option(problem.options, name, None, where=f"evaluation.sweep.{name}", owner=owner)  # names the nearest
    return [replace_option(problem.options, name, value, where=f"evaluation.sweep.{name}[{i}]", owner=owner)
            for i, value in enumerate(evaluation.sweep_values)]


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
                registry: Registry | None = None, *, experiment: str | None = None) -> ExperimentConfig:
    """Read (see :func:`load_raw`), override and validate a configuration in one call."""
    registry = registry or get_registry()
    raw = load_raw(path, experiment=experiment, registry=registry)
    return build_config(apply_overrides(raw, overrides or []), registry)
