"""Generalisation of a run's trained solvers: at depths beyond the trained one, and on other problem settings.

:func:`generalise` reads a run folder (``unfold compare`` or ``unfold train``), loads every learned solver's
checkpoints (checked against the run's ``manifest.json`` and its own problem) and evaluates every solver of
the run on fresh instances:

* at each depth of ``depths`` (and the trained depth): a learned parameter extends to another depth when its
  number of slots does not depend on the depth (a period ``T``, or one slot tied across iterations): the new
  solver, built with the run's options at that depth, has the same slots, and iteration ``k`` reads slot
  ``k mod T`` as in training. A parameter with one slot per iteration has no value for the iterations past the
  trained depth: such a solver is refused at a deeper depth (:class:`DepthError`, naming the solver, the
  parameter and why); at a shallower depth its first slots are exactly the iterations it runs. Classical
  solvers run at any depth;
* on each setting: the trained problem (for reference) and the problem rebuilt from the run's configuration
  with ``problem.KEY=VALUE`` overrides (another SNR, another operator seed). A learned solver is the trained
  one, unchanged (its parameters and whatever it derived from the trained problem when it was built), run on
  the other problem; a classical solver is built on that problem as its options say (a step taken from the
  problem's spectrum is that problem's).

Every solver and setting is evaluated on the same instances: ``evaluation.batches`` batches of
``evaluation.batch_size`` from the run's evaluation seed (the stream ``unfold compare`` evaluates on, never
used in training; ``evaluation.KEY=VALUE`` overrides change it for every setting), so the trained setting
at the trained depth repeats the run's own numbers. A run trained with several seeds is summarised by the
median over the seeds that did not diverge, as ``unfold compare`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from ..errors import ConfigError
from ..interfaces import Problem, UnfoldedSolver
from ..metrics import Metric, metric_table
from ..options import options_to_dict
from ..params import learned_variables
from .build import build_problem, build_solver
from .config import ExperimentConfig, load_config
from .results import summarize_seeds
from .sweep import evaluate_solver
from .training import evaluation_key

__all__ = ["DepthError", "Generalisation", "Setting", "extend_solver", "generalise", "parse_depths",
           "parse_settings", "TRAINED"]

TRAINED = "trained"
"""The label of the setting the run was trained on."""


class DepthError(ConfigError):
    """A learned solver cannot run at the depth asked: a parameter has one slot per iteration."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """A problem to evaluate on: ``label`` (``trained``, or its overrides joined) and its ``--set`` overrides."""

    label: str
    overrides: tuple[str, ...] = ()


@dataclasses.dataclass
class Generalisation:
    """What :func:`generalise` measured.

    Attributes:
        curves: ``{(setting, solver, depth): {metric: (depth,) array}}``, each metric after every iteration
            of the solver run at that depth (the median over the seeds that did not diverge).
        seeds: per solver, the training seeds of its checkpoints (``[]`` for a classical solver).
    """

    run: Path
    problem: str
    trained_depth: int
    depths: list[int]
    settings: list[Setting]
    solvers: list[tuple[str, bool]]
    metrics: dict[str, Metric]
    primary: str
    evaluation: dict[str, Any]
    described: str
    curves: dict[tuple[str, str, int], dict[str, np.ndarray]]
    seeds: dict[str, list[int]]

    def final(self, setting: str, solver: str, depth: int, metric: str) -> float:
        """``metric`` after the final iteration of ``solver`` run at ``depth`` on ``setting``."""
        return float(self.curves[(setting, solver, depth)][metric][-1])


def parse_depths(text: str | Sequence[int] | None) -> list[int]:
    """``"32"`` or ``"16,32,64"`` as a list of depths (integers >= 1, each once, in order)."""
    if text is None:
        return []
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    depths = []
    for part in parts:
        try:
            depth = int(part)
        except (TypeError, ValueError):
            depth = 0
        if depth < 1 or str(part).strip() in ("",) or (isinstance(part, float) and not part.is_integer()):
            raise ConfigError(f"--depth {text!r}: give depths as integers >= 1, comma-separated (e.g. --depth 32 or "
                              f"--depth 16,32,64); {part!r} is not one")
        if depth not in depths:
            depths.append(depth)
    return depths


def parse_settings(overrides: Sequence[str]) -> tuple[list[Setting], list[str]]:
    """``--set`` options as ``(settings, evaluation overrides)``: each ``problem.KEY=VALUE`` is a setting of its
    own (the trained problem with that key changed), each ``evaluation.KEY=VALUE`` applies to every setting."""
    settings, evaluation = [Setting(TRAINED)], []
    for override in overrides:
        key = override.partition("=")[0].strip()
        if "=" not in override or not key:
            raise ConfigError(f"--set expects KEY=VALUE (for example problem.snr_db=5), got {override!r}")
        table = key.split(".")[0]
        if table == "problem":
            if key == "problem.name":
                raise ConfigError(f"--set {override}: generalisation keeps the run's problem "
                                  f"({key} cannot change); set its options, e.g. problem.seed=7")
            settings.append(Setting(override.strip(), (override.strip(),)))
        elif table == "evaluation":
            evaluation.append(override.strip())
        else:
            raise ConfigError(f"--set {override}: unfold generalise changes the problem (problem.KEY=VALUE, one "
                              f"setting each) or the evaluation (evaluation.KEY=VALUE, for every setting); the "
                              f"solvers and their training are the run's")
    labels = [s.label for s in settings]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"--set {repeated[0]} is given twice; give each setting once")
    return settings, evaluation


def extend_solver(trained: UnfoldedSolver, fresh: UnfoldedSolver, *, label: str) -> UnfoldedSolver:
    """``fresh`` (built at another depth) holding ``trained``'s parameters.

    A parameter whose slots do not depend on the depth (a period, or tied) is copied as it is; one with a slot
    per iteration is cut to the first ``fresh.depth`` slots at a shallower depth.

    Raises:
        DepthError: a parameter has one slot per iteration and ``fresh`` is deeper (or its shape changes
            otherwise); the message names the solver, the parameter and the shapes.
    """
    stored = {name: np.asarray(variable[...]) for name, variable in learned_variables(trained).items()}
    wanted = {name: np.asarray(variable[...]) for name, variable in learned_variables(fresh).items()}
    values = {}
    for name, target in wanted.items():
        source = stored.get(name)
        if source is None:
            raise DepthError(f"{label}: at depth {fresh.depth} the solver has a parameter {name!r} that the trained "
                             f"one (depth {trained.depth}) lacks; it cannot be evaluated at that depth")
        if source.shape == target.shape:
            values[name] = source
        elif (source.ndim >= 1 and source.shape[0] == trained.depth and target.shape[0] == fresh.depth
              and fresh.depth < trained.depth and source.shape[1:] == target.shape[1:]):
            values[name] = source[:fresh.depth]
        else:
            per_iteration = source.ndim >= 1 and source.shape[0] == trained.depth and target.shape[0] == fresh.depth
            why = (f"it holds one value per iteration ({source.shape[0]} slots, trained at depth {trained.depth}), so "
                   f"iterations {trained.depth + 1} to {fresh.depth} have no trained value; a periodic (period T) or "
                   f"tied parameter extends to any depth: train with one (e.g. a period option) or at depth "
                   f"{fresh.depth}, or leave the solver out (--only)" if per_iteration else
                   f"its shape changes from {source.shape} (trained, depth {trained.depth}) to {target.shape} at "
                   f"depth {fresh.depth}")
            named = label if trained.name == label else f"{label} ({trained.name})"
            raise DepthError(f"{named} cannot run at depth {fresh.depth}: parameter {name!r}: {why}")
    graphdef, params, rest = nnx.split(fresh, nnx.Param, ...)
    pure = nnx.to_pure_dict(params)

    def fill(tree: dict, prefix: str = "") -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                fill(value, f"{prefix}{key}.")
            else:
                tree[key] = values[f"{prefix}{key}"]

    fill(pure)
    nnx.replace_by_pure_dict(params, pure)
    return nnx.merge(graphdef, params, rest)


def _checkpoints(folder: Path, config: ExperimentConfig, problem: Problem, solvers: list[UnfoldedSolver]
                 ) -> dict[str, list[tuple[int, UnfoldedSolver, bool]]]:
    """Every learned solver's trained copies: ``[(seed, solver, ok)]``, one per training seed."""
    from .compare import diverged_at_of, load_checkpoints

    checkpoints = folder / "checkpoints"
    seeds = config.train.seed_list()
    for entry, solver in zip(config.solvers, solvers):
        if solver.is_trainable and not (checkpoints / f"{entry.label}.npz").is_file() and not (
                len(seeds) > 1 and all((checkpoints / f"{entry.label}.seed-{s}.npz").is_file() for s in seeds)):
            raise ConfigError(f"run {str(folder)!r} has no checkpoint of the learned solver {entry.label!r} "
                              f"(checkpoints/{entry.label}.npz): generalise a run that trained it (unfold compare "
                              f"or unfold train), or leave the solver out with --only")
    loaded = load_checkpoints(config, problem, solvers, checkpoints, allow_problem_mismatch=False,
                               train_missing=False, log=None)
    copies = {}
    for label, (_, founds) in loaded.items():
        found_seeds = list(seeds) if len(founds) == len(seeds) else list(seeds[:1])
        copies[label] = [(seed, found.solver, diverged_at_of(found.metadata) is None)
                         for seed, found in zip(found_seeds, founds)]
    return copies


def _evaluate(solver: UnfoldedSolver, problem: Problem, config: ExperimentConfig, label: str, setting: Setting
              ) -> dict[str, np.ndarray]:
    try:
        evaluation = evaluate_solver(solver, problem, evaluation_key(config.evaluation.seed), config.evaluation)
    except (TypeError, ValueError) as error:  # shapes that do not fit: a solver built for other sizes
        if setting.label == TRAINED:
            raise
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{label} cannot run on the setting {setting.label}: the trained solver does not fit "
                          f"that problem ({first}); leave the solver out (--only) or change another option") from None
    return {name: np.asarray(values, np.float64) for name, values in evaluation.values.items()}


def generalise(run: str | Path, *, depths: Sequence[int] = (), settings: Sequence[Setting] = (Setting(TRAINED),),
               evaluation: Sequence[str] = (), only: Sequence[str] | None = None, verify: bool = True,
               metric: str | None = None, registry: Any = None, warn: Callable[[str], None] | None = None) -> Generalisation:
    """Evaluate the solvers of the run folder ``run`` at ``depths`` (with the trained one) on ``settings``.

    Everything is loaded and checked (checkpoints, the depth of every learned solver, every setting's
    configuration) before anything is evaluated.

    Raises:
        ConfigError: not a run folder with ``config.toml``; a bad override; ``metric`` is not one of the
            problem's; a learned solver without its
            checkpoint; :class:`DepthError` for a depth a learned solver cannot run at.
        ManifestMismatchError: with ``verify``, ``config.toml`` or a checkpoint changed after the run.
    """
    from ..registry import get_registry
    from .config import select_solvers
    from .loading.load import check_manifest
    from .report import select_metric
    from .sweep import describe_evaluation

    folder = Path(run)
    registry = registry or get_registry()
    settings = list(settings)
    if TRAINED not in [setting.label for setting in settings]:
        settings.insert(0, Setting(TRAINED))
    if not (folder / "config.toml").is_file():
        what = "does not exist" if not folder.exists() else "holds no config.toml"
        raise ConfigError(f"run folder {str(folder)!r} {what}: give a folder written by unfold compare or unfold "
                          f"train (it holds config.toml and checkpoints/)")
    names = {"config.toml"} | {f"checkpoints/{p.name}" for p in (folder / "checkpoints").glob("*.npz")}
    _, _, notes = check_manifest(folder, verify=verify, read={n for n in names if (folder / n).is_file()})
    for note in notes:
        (warn or (lambda _: None))(note)

    def configured(setting: Setting) -> ExperimentConfig:
        config = load_config(folder / "config.toml", [*evaluation, *setting.overrides], registry)
        config = select_solvers(config, list(only)) if only else config
        return dataclasses.replace(config, evaluation=dataclasses.replace(config.evaluation, sweep={}))

    configs = {setting.label: configured(setting) for setting in settings}
    base = configs[TRAINED]
    trained_depth = base.train.depth
    wanted = sorted({trained_depth, *depths})
    problem = build_problem(base, registry)
    select_metric(problem, metric)  # an unknown --metric is refused before any work
    solvers = [build_solver(entry, problem, trained_depth, registry) for entry in base.solvers]
    copies = _checkpoints(folder, base, problem, solvers)
    problems = {label: problem if label == TRAINED else build_problem(config, registry)
                for label, config in configs.items()}
    # Every learned solver at every depth, before any evaluation: a refusal comes at once.
    deeper = {(entry.label, depth): [(seed, extend_solver(trained, build_solver(entry, problem, depth, registry),
                                                          label=entry.label), ok)
                                     for seed, trained, ok in copies[entry.label]]
              for entry, solver in zip(base.solvers, solvers) if solver.is_trainable for depth in wanted}
    metrics = metric_table(problem)
    curves = {}
    for setting in settings:
        config, target = configs[setting.label], problems[setting.label]
        for entry, solver in zip(base.solvers, solvers):
            for depth in wanted:
                if not solver.is_trainable:
                    classical = build_solver(config.solver(entry.label), target, depth, registry)
                    curves[(setting.label, entry.label, depth)] = _evaluate(classical, target, config, entry.label,
                                                                            setting)
                    continue
                members = deeper[(entry.label, depth)]
                runs = [_evaluate(copy, target, config, entry.label, setting) for _, copy, _ in members]
                ok = np.array([good for _, _, good in members]) if any(g for _, _, g in members) else \
                    np.ones(len(members), bool)
                curves[(setting.label, entry.label, depth)] = {
                    name: runs[0][name] if len(runs) == 1 else
                    summarize_seeds(np.stack([r[name] for r in runs]), ok, log=metrics[name].log_axis)[0]
                    for name in runs[0]}
    return Generalisation(
        run=folder, problem=base.problem.name, trained_depth=trained_depth, depths=wanted, settings=settings,
        solvers=[(entry.label, solver.is_trainable) for entry, solver in zip(base.solvers, solvers)],
        metrics=metrics, primary=problem.primary(), evaluation=options_to_dict(base.evaluation),
        described=describe_evaluation(base.evaluation), curves=curves,
        seeds={entry.label: [seed for seed, _, _ in copies.get(entry.label, [])] for entry in base.solvers})
