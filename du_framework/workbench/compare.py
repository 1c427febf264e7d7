"""Side-by-side comparison: train every solver of a configuration, evaluate all on
the same fresh instances.

Training instances come from ``train.seed``; evaluation instances from
``evaluation.seed``, a separate key stream, so no evaluation instance is ever
used in training (the keys are derived with ``jax.random.fold_in`` on distinct
tags). Every solver is evaluated on exactly the same instances, and every metric
the problem declares is computed after every iteration in one evaluation.

With several training seeds (``train.seeds``), every learned solver trains as
an ensemble (one vmapped program, one member per seed), each member is
evaluated on the same instances, and the row of the solver is summarised per
iteration by the **median** over the seeds that did not diverge, with their
**minimum and maximum** as its spread. Order statistics suit quantities that
span decades (an MSE from 1e-13 to 1e-9 across seeds): they commute with any
monotone map, so the median MSE is the median in dB and on a log axis, where a
mean would be dominated by the worst seed and a normal confidence interval
would cross zero; with a handful of seeds, min-max shows every seed's outcome
rather than an interval resting on a normality that does not hold. A seed that
diverges keeps its last good parameters, is reported as diverged, and is left
out of the summary.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..io.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from .config import ExperimentConfig, SolverConfig
from ..engine import TrainResult, evaluate, train, train_ensemble
from ..engine.loop import expand_schedule
from ..engine.progress import Progress
from .display import progress_for
from ..engine.keys import host_fold_in, host_key
from ..engine.resume import load_train_state, save_train_state
from ..errors import CheckpointError, DUError, IncompatibleProblemError, PluginError, TrainingDivergedError
from ..interfaces import Problem, TrainingSchedule, UnfoldedSolver, check_fit
from ..metrics import metric_table
from ..options import options_to_dict
from ..registry import Registry, describe_component, get_registry
from .results import SUMMARY, SolverResult, loss_history, summarize_seeds

__all__ = ["SolverResult", "Comparison", "build_problem", "build_solver", "build_schedule",
           "build_solvers", "train_solver", "train_seeds", "run_comparison", "training_key", "evaluation_key",
           "summarize_seeds", "solver_summary", "SUMMARY"]

_TRAIN_TAG, _EVAL_TAG = 0, 1


def training_key(seed: int, label: str) -> jax.Array:
    """Key of the training instances of the solver labelled ``label``.

    It depends on the label, not on the solver's position, so adding, removing or
    reordering other solvers leaves a solver's training unchanged.
    """
    stream = host_fold_in(host_key(seed), _TRAIN_TAG)  # = jax.random.fold_in(jax.random.key(seed), 0)
    return host_fold_in(stream, zlib.crc32(label.encode()) & 0x7FFFFFFF)


def evaluation_key(seed: int) -> jax.Array:
    """Key of the evaluation instances (shared by every solver, disjoint from training)."""
    return host_fold_in(host_key(seed), _EVAL_TAG)


@dataclasses.dataclass
class Comparison:
    """Everything a report needs.

    ``stages``: ``(active_depth, steps)`` of each stage of the training
    schedule, to place each step of a loss history in its stage.
    """

    config: ExperimentConfig
    problem: Problem
    results: dict[str, SolverResult]
    stages: list[tuple[int, int]] = dataclasses.field(default_factory=list)


def _constructed(build, what: str):
    """``build()``, with a plugin's unexpected exception turned into a message naming ``what``."""
    try:
        return build()
    except DUError:
        raise
    except MemoryError:
        raise PluginError(f"{what}: not enough memory to build it with these options; use smaller sizes") from None
    except Exception as error:  # noqa: BLE001 - a plugin's bug or an option it did not bound
        raise PluginError(f"{what} could not be built: {type(error).__name__}: {error}") from None


def build_problem(config: ExperimentConfig, registry: Registry | None = None) -> Problem:
    registry = registry or get_registry()
    cls = registry.problem(config.problem.name)
    return _constructed(lambda: cls.from_options(config.problem.options),
                        f"problem {describe_component(cls, 'problem')} with options "
                        f"{options_to_dict(config.problem.options)}")


def build_schedule(config: ExperimentConfig, registry: Registry | None = None) -> TrainingSchedule:
    registry = registry or get_registry()
    return registry.schedule(config.train.schedule)(config.schedule_options)


def build_solver(entry: SolverConfig, problem: Problem, depth: int, registry: Registry | None = None) -> UnfoldedSolver:
    """Construct a solver, refusing a problem that lacks its capability."""
    registry = registry or get_registry()
    cls = registry.solver(entry.name)
    check_fit(cls, problem)
    return _constructed(lambda: cls(entry.options, problem=problem, depth=depth),
                        f"solver {describe_component(cls, 'solver')} labelled {entry.label!r} with options "
                        f"{options_to_dict(entry.options)} and depth {depth}")


def build_solvers(config: ExperimentConfig, problem: Problem,
                  registry: Registry | None = None) -> list[UnfoldedSolver]:
    """Every solver of ``config``, built before any training so a mismatch is refused at once.

    Raises:
        IncompatibleProblemError: a solver does not fit the problem; the message
            names the solvers of the configuration that do (for ``--only``).
    """
    registry = registry or get_registry()
    try:
        return [build_solver(entry, problem, config.train.depth, registry) for entry in config.solvers]
    except IncompatibleProblemError as error:
        fitting = [e.label for e in config.solvers if registry.solver(e.name).fits(problem)]
        hint = (f" The solvers of this configuration that fit it: --only {','.join(fitting)}" if fitting
                else " No solver of this configuration fits it.")
        raise IncompatibleProblemError(f"{error}.{hint}") from None


def _run_identity(config: ExperimentConfig, entry: SolverConfig) -> dict[str, Any]:
    """What a resumable training state belongs to (compared when a run is resumed)."""
    return json.loads(json.dumps({
        "label": entry.label, "solver": entry.name, "options": options_to_dict(entry.options),
        "problem": {"name": config.problem.name, **options_to_dict(config.problem.options)},
        "train": options_to_dict(config.train), "schedule_options": options_to_dict(config.schedule_options)}))


def train_solver(config: ExperimentConfig, index: int, solver: UnfoldedSolver, problem: Problem,
                 schedule: TrainingSchedule, *, checkpoint_dir: str | Path | None = None,
                 progress: bool | Progress = True, resume: bool = False) -> TrainResult:
    """Train the ``index``-th solver of ``config`` and, with ``checkpoint_dir``, save it.

    A trained solver is saved as ``<label>.npz``; when training diverges, the last
    good parameters are saved as ``<label>.last-good.npz`` before the error propagates.
    While it trains, ``<label>.state.npz`` holds a resumable state after every stage
    (removed once ``<label>.npz`` is written); with ``resume``, a run that stopped
    continues from it and ends as the uninterrupted run would.

    Raises:
        CheckpointError: ``resume`` and the stored state belongs to another configuration.
    """
    entry = config.solvers[index]
    identity = _run_identity(config, entry)
    state_path = Path(checkpoint_dir) / f"{entry.label}.state.npz" if checkpoint_dir is not None else None
    start = _stored_state(state_path, identity) if resume else None

    save_state = _StateSaver(state_path, identity)

    try:
        result = train(solver, problem, schedule, config.train, key=training_key(config.train.seed_list()[0], entry.label),
                       progress=progress, label=entry.label, resume=start,
                       on_stage_end=save_state if state_path is not None and solver.is_trainable else None)
    except TrainingDivergedError as error:
        if checkpoint_dir is not None and error.solver is not None:
            save_checkpoint(Path(checkpoint_dir) / f"{entry.label}.last-good.npz", error.solver, problem=problem,
                            problem_options=config.problem.options, extra={"label": entry.label, "status": "diverged", "stage": error.stage,
                                   "step": error.step})
        raise
    if checkpoint_dir is not None and solver.is_trainable:
        save_checkpoint(Path(checkpoint_dir) / f"{entry.label}.npz", result.solver, problem=problem,
                        problem_options=config.problem.options, extra={"label": entry.label, "status": "trained", "train_seconds": result.train_seconds})
        state_path.unlink(missing_ok=True)  # the finished checkpoint supersedes the resumable state
    return result


def train_seeds(config: ExperimentConfig, index: int, solver: UnfoldedSolver, problem: Problem,
                schedule: TrainingSchedule, *, checkpoint_dir: str | Path | None = None,
                progress: bool | Progress = True, resume: bool = False) -> list[TrainResult]:
    """Train the ``index``-th solver of ``config`` once per training seed (``train.seeds``).

    One seed is :func:`train_solver`. Several train as one ensemble (one
    vmapped program); member ``i`` sees the instances of
    ``training_key(seeds[i], label)``, exactly what a one-seed run with
    ``train.seed = seeds[i]`` sees. A member that diverges is frozen at its last
    good parameters and reported (:attr:`TrainResult.diverged_at`); the run
    fails only when every member diverges. With ``checkpoint_dir``, each
    member is saved as ``<label>.seed-<seed>.npz`` and the resumable state of
    the ensemble is ``<label>.state.npz``.
    """
    seeds = config.train.seed_list()
    if len(seeds) == 1:
        return [train_solver(config, index, solver, problem, schedule, checkpoint_dir=checkpoint_dir,
                             progress=progress, resume=resume)]
    entry = config.solvers[index]
    identity = _run_identity(config, entry)
    state_path = Path(checkpoint_dir) / f"{entry.label}.state.npz" if checkpoint_dir is not None else None
    start = _stored_state(state_path, identity) if resume else None

    save_state = _StateSaver(state_path, identity)

    keys = [training_key(seed, entry.label) for seed in seeds]
    try:
        results = train_ensemble(solver, problem, schedule, config.train, keys=keys, progress=progress,
                                 label=entry.label, resume=start, on_divergence="record",
                                 on_stage_end=save_state if state_path is not None and solver.is_trainable else None)
    except TrainingDivergedError as error:
        if checkpoint_dir is not None and error.solver is not None:
            save_checkpoint(Path(checkpoint_dir) / f"{entry.label}.last-good.npz", error.solver, problem=problem,
                            problem_options=config.problem.options,
                            extra={"label": entry.label, "status": "diverged", "stage": error.stage,
                                   "step": error.step, "seeds": list(seeds)})
        raise
    if checkpoint_dir is not None and solver.is_trainable:
        for seed, result in zip(seeds, results):
            save_checkpoint(Path(checkpoint_dir) / f"{entry.label}.seed-{seed}.npz", result.solver, problem=problem,
                            problem_options=config.problem.options,
                            extra={"label": entry.label, "seed": seed,
                                   "status": "diverged" if result.diverged_at else "trained",
                                   "diverged_at": result.diverged_at, "train_seconds": result.train_seconds})
        state_path.unlink(missing_ok=True)
    return results


class _StateSaver:
    """Saves the resumable state at a stage boundary: the first one, then at most once every
    ``DU_STATE_INTERVAL`` seconds (default 1; 0 saves every stage).

    Each save is a host copy written and synced atomically (a few ms); the reference schedule
    has 50 stages in about two seconds, so saving every stage would add a tenth to training.
    A run killed between saves resumes from the last saved stage and ends exactly as the
    uninterrupted run would; at most the interval's worth of training is done again.
    """

    def __init__(self, path: Path | None, identity: dict[str, Any]):
        self.path, self.identity, self.last = path, identity, None
        try:
            self.interval = max(0.0, float(os.environ.get("DU_STATE_INTERVAL", "1")))
        except ValueError:
            self.interval = 1.0

    def __call__(self, state) -> None:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.interval:
            return
        state.identity = self.identity
        save_train_state(self.path, state)
        self.last = time.monotonic()


def _stored_state(state_path: Path | None, identity: dict[str, Any]):
    """The resumable state at ``state_path`` (``None`` if there is none), refused if another run wrote it."""
    if state_path is None or not state_path.is_file():
        return None
    start = load_train_state(state_path)
    differences = [key for key in sorted(set(identity) | set(start.identity))
                   if identity.get(key) != start.identity.get(key)]
    if differences:
        raise CheckpointError(f"{str(state_path)!r} belongs to another run: its {', '.join(differences)} "
                              f"differ from this configuration's; resume with the configuration that wrote it")
    return start


def _load_checkpoints(config: ExperimentConfig, problem: Problem, solvers: list[UnfoldedSolver],
                      load_dir: str | Path | None, *, allow_problem_mismatch: bool, train_missing: bool,
                      log: Callable[[str], None] | None) -> dict[str, tuple[Path, list[LoadedCheckpoint]]]:
    """Every trainable solver's checkpoint in ``load_dir``, loaded and checked before any training:
    ``<label>.npz``, or with several training seeds one ``<label>.seed-<seed>.npz`` per seed."""
    if load_dir is None:
        return {}
    folder = Path(load_dir)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise CheckpointError(f"checkpoint folder {str(folder)!r} {what}; give the checkpoints folder an earlier "
                              f"run wrote (e.g. runs/<timestamp>/checkpoints)")
    trainable = [(entry, solver) for entry, solver in zip(config.solvers, solvers) if solver.is_trainable]
    seeds = config.train.seed_list()

    def files_of(label: str) -> list[Path] | None:
        """``<label>.npz``, or one ``<label>.seed-<s>.npz`` per training seed (a run with several seeds)."""
        if (folder / f"{label}.npz").is_file():
            return [folder / f"{label}.npz"]
        per_seed = [folder / f"{label}.seed-{seed}.npz" for seed in seeds]
        return per_seed if len(seeds) > 1 and all(path.is_file() for path in per_seed) else None

    found_files = {entry.label: files_of(entry.label) for entry, _ in trainable}
    missing = [label for label, files in found_files.items() if files is None]
    if missing and not train_missing:
        several = (f" or one {missing[0]}.seed-<seed>.npz for each of the training seeds "
                   f"{', '.join(map(str, seeds))}" if len(seeds) > 1 else "")
        raise CheckpointError(
            f"no checkpoint in {str(folder)!r} for {', '.join(missing)} (expected "
            f"{', '.join(label + '.npz' for label in missing)}{several}); train them with `unfold train`, or pass "
            f"--train-missing (train_missing=True) to train them in this run")
    loaded = {}
    for entry, solver in trainable:
        if entry.label in missing:
            continue
        checkpoints = found_files[entry.label]
        loaded[entry.label] = (checkpoints[0] if len(checkpoints) == 1 else folder, [load_checkpoint(
            checkpoint, solver, problem=problem, problem_options=config.problem.options,
            allow_problem_mismatch=allow_problem_mismatch, details=True) for checkpoint in checkpoints])
        mismatch = loaded[entry.label][1][0].problem_mismatch
        if mismatch:
            note = (f"warning: {entry.label}: checkpoint {str(checkpoints[0])!r} was trained on another problem, "
                    f"evaluated on this one as asked (--allow-problem-mismatch): {'; '.join(mismatch)}")
            log(note) if log is not None else warnings.warn(note, stacklevel=3)
    if missing and log is not None:
        log(f"no checkpoint for {', '.join(missing)} in {str(folder)!r}: training "
            f"{'it' if len(missing) == 1 else 'them'} (--train-missing)")
    return loaded


def run_comparison(
    config: ExperimentConfig,
    *,
    registry: Registry | None = None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    load_dir: str | Path | None = None,
    allow_problem_mismatch: bool = False,
    train_missing: bool = False,
    log: Callable[[str], None] | None = None,
    resume: bool = False,
    observers: Any = None,
) -> Comparison:
    """Train (or load) every solver, then evaluate them all on shared instances.

    Args:
        checkpoint_dir: if given, each trained solver is saved there as
            ``<label>.npz``.
        load_dir: if given, an existing folder holding ``<label>.npz`` for every
            trainable solver; they are loaded instead of trained, all checked
            before anything is trained (a file written for another solver
            configuration or problem is refused, naming each difference).
        allow_problem_mismatch: load checkpoints trained on another problem
            anyway; the differences are logged and recorded in
            :attr:`SolverResult.problem_mismatch`.
        train_missing: train the trainable solvers without a checkpoint in
            ``load_dir`` (logged) instead of refusing.
        log: receives one-line notes (a problem mismatch allowed, solvers
            trained for want of a checkpoint); default: a mismatch is a warning.
        resume: continue an interrupted run writing ``checkpoint_dir``: the
            solvers with a ``<label>.npz`` there are loaded (and checked), those
            with a ``<label>.state.npz`` continue from it (see :func:`train_solver`),
            the others train; the result is the uninterrupted run's.
        progress: show each solver's training ("solver k of n", see
            :mod:`du_framework.engine.progress`) and, when it is done, one summary
            line (final value of the primary metric, training time) through ``log``
            (default: standard error).
        observers: run observers (:mod:`du_framework.workbench.observers`): a list of
            :class:`~du_framework.RunObserver` instances, told the run's
            start, every stage's end, every solver's end and the run's end (with
            ``results.json``'s solver entries); or an
            :class:`~du_framework.workbench.observers.ObserverSet`, which this function starts
            but leaves for its owner to end (after writing the run's files, as
            ``unfold compare`` does).

    Raises:
        CheckpointError: ``load_dir`` is not a folder; a trainable solver has no
            checkpoint there (without ``train_missing``; the message lists them);
            a checkpoint is corrupt or does not match.
        TrainingDivergedError: a solver's training diverged; when
            ``checkpoint_dir`` is given its last good parameters are saved as
            ``<label>.last-good.npz`` first.
    """
    registry = registry or get_registry()
    problem = build_problem(config, registry)
    schedule = build_schedule(config, registry)
    solvers = build_solvers(config, problem, registry)
    loaded = _load_checkpoints(config, problem, solvers, load_dir, allow_problem_mismatch=allow_problem_mismatch,
                               train_missing=train_missing, log=log)
    finished: set[str] = set()
    if resume and checkpoint_dir is not None and Path(checkpoint_dir).is_dir():
        done = _load_checkpoints(config, problem, solvers, checkpoint_dir, allow_problem_mismatch=False,
                                 train_missing=True, log=None)
        finished = set(done) - set(loaded)
        loaded = {**done, **loaded}
    eval_key = evaluation_key(config.evaluation.seed)
    metrics = metric_table(problem)
    primary = problem.primary()
    seeds = list(config.train.seed_list())
    results: dict[str, SolverResult] = {}
    stages = [(stage.active_depth, stage.steps) for stage in expand_schedule(schedule, config.train, config.train.depth)]
    watchers, owned = _observer_set(observers)
    watchers.run_start(config=config, problem=problem.describe(), solvers=[entry.label for entry in config.solvers],
                       seeds=seeds, stages=stages)
    try:
        for index, (entry, solver) in enumerate(zip(config.solvers, solvers)):
            position = (index + 1, len(config.solvers))
            meter = watchers.watch(progress_for(progress, position=position, leave=False), entry.label,
                                   seeds if len(seeds) > 1 else seeds[:1])
            loaded_from, problem_mismatch = None, None
            if entry.label in loaded:
                checkpoint, founds = loaded[entry.label]
                solver, loaded_from = founds[0].solver, (None if entry.label in finished else str(checkpoint))
                problem_mismatch = founds[0].problem_mismatch or None
                outcomes = [TrainResult(found.solver, np.zeros(0), [], 0.0, 0.0, 0,
                                        diverged_at=_diverged_at(found.metadata)) for found in founds]
            elif len(seeds) == 1 or not solver.is_trainable:
                outcomes = [train_solver(config, index, solver, problem, schedule,
                                         checkpoint_dir=checkpoint_dir, progress=meter, resume=resume)]
            else:
                outcomes = train_seeds(config, index, solver, problem, schedule, checkpoint_dir=checkpoint_dir,
                                       progress=meter, resume=resume)
            evaluation_start = time.perf_counter()
            curves = [evaluate(outcome.solver, problem, key=eval_key, batch_size=config.evaluation.batch_size,
                               batches=config.evaluation.batches) for outcome in outcomes]
            evaluation_seconds = time.perf_counter() - evaluation_start
            # Seeds are reported for what this run trained, and for what a resumed run (or
            # checkpoints of a run with several seeds) trained before.
            trained = solver.is_trainable and (entry.label not in loaded or entry.label in finished
                                               or len(outcomes) > 1)
            result = SolverResult(
                label=entry.label,
                name=entry.name,
                options=options_to_dict(entry.options),
                metrics={name: np.asarray(curve, np.float64) for name, curve in curves[0].items()},
                params=_arrays(outcomes[0].solver.learned_parameters()),
                references={param: _arrays(lines) for param, lines in outcomes[0].solver.reference_values(problem).items()},
                trainable=solver.is_trainable,
                train_seconds=outcomes[0].train_seconds,
                compile_seconds=outcomes[0].compile_seconds,
                compilations=outcomes[0].compilations,
                final_loss=_final_loss(outcomes[0]),
                loaded_from=loaded_from,
                problem_mismatch=problem_mismatch,
                solver=outcomes[0].solver,
                evaluation_seconds=evaluation_seconds,
            )
            if trained:
                _add_seeds(result, outcomes, curves, seeds[:len(outcomes)] if len(outcomes) > 1 else seeds[:1],
                           metrics, primary, stages)
            results[entry.label] = result
            _solver_done(watchers, result, position, trained, problem, log if progress else False)
    except BaseException as error:
        if owned:
            watchers.run_end(status=run_status(error))
        raise
    if owned:
        watchers.run_end(status="complete", results={label: r.to_dict() for label, r in results.items()})
    return Comparison(config, problem, results, stages)


def _observer_set(observers: Any) -> tuple[Any, bool]:
    """``(ObserverSet, owned)``: ``observers`` itself (not owned), or a new set of the given instances."""
    from .observers import ObserverSet

    if isinstance(observers, ObserverSet):
        return observers, False
    return ObserverSet(observers or ()), True


def run_status(error: BaseException) -> str:
    """The :class:`~du_framework.workbench.observers.RunEnd` status of a run that ``error`` ended."""
    if isinstance(error, TrainingDivergedError):
        return "diverged"
    return "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"


def solver_summary(result: SolverResult, position: tuple[int, int], problem: Problem, *, trained: bool = True) -> str:
    """One line on a finished solver: the primary metric after the last iteration, its training.

    For example ``dugd (solver 2 of 6): NMSE -41.3 dB at t=50 (median of 8 seeds); trained in 2.31 s
    (compile 0.90 s), final training loss 1.234e-03``.
    """
    metric = metric_table(problem)[problem.primary()]
    curve = np.asarray(result.metrics[metric.name], np.float64)
    value = format(float(curve[-1]), metric.format) + (" dB" if metric.scale == "db" else "")
    seeds = f" (median of {len(result.seeds)} seeds)" if len(result.seeds) > 1 else ""
    line = f"{result.label} (solver {position[0]} of {position[1]}): {metric.title} {value} at t={len(curve)}{seeds}"
    if result.loaded_from:
        return f"{line}; loaded from {result.loaded_from}"
    if not result.trainable:
        return f"{line}; classical, nothing to train"
    if not trained:
        return f"{line}; trained before the interruption"
    loss = f", final training loss {result.final_loss:.3e}" if result.final_loss is not None else ""
    return f"{line}; trained in {result.train_seconds:.2f} s (compile {result.compile_seconds:.2f} s){loss}"


def _solver_done(watchers: Any, result: SolverResult, position: tuple[int, int], trained: bool, problem: Problem,
                 log: Callable[[str], None] | None | bool) -> None:
    """Tell the observers that a solver is done, and print its summary line unless ``log`` is ``False``."""
    from .observers import SolverEnd

    if log is not False:
        line = solver_summary(result, position, problem, trained=trained)
        if log is None:
            print(line, file=sys.stderr, flush=True)
        else:
            log(line)
    watchers.solver_end(SolverEnd(result.label, position, trained, list(result.seeds), dict(result.metrics),
                                  problem.primary(), result.final_loss, result.train_seconds, result))


def _diverged_at(metadata: dict[str, Any]) -> dict[str, int] | None:
    """Where a seed's checkpoint says it diverged (``None`` for a trained one)."""
    at = metadata.get("diverged_at") if metadata.get("status") == "diverged" else None
    return {"stage": int(at["stage"]), "step": int(at["step"])} if isinstance(at, dict) and {
        "stage", "step"} <= set(at) else None


def _final_loss(outcome: TrainResult) -> float | None:
    return float(outcome.stage_losses[-1]) if len(outcome.stage_losses) else None


def _arrays(values: dict[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value, np.float64) for name, value in values.items()}


def _add_seeds(result: SolverResult, outcomes: list[TrainResult], curves: list[dict[str, np.ndarray]],
               seeds: list[int], metrics: dict, primary: str, plan: list[tuple[int, int]]) -> None:
    """Fill the per-seed fields of ``result`` and summarise the seeds that did not diverge."""
    ok = np.array([outcome.diverged_at is None for outcome in outcomes])
    result.seeds = [int(seed) for seed in seeds]
    result.seed_status = ["ok" if good else "diverged" for good in ok]
    result.per_seed_metrics = {name: np.stack([np.asarray(c[name], np.float64) for c in curves]) for name in curves[0]}
    result.per_seed_params = [_arrays(outcome.solver.learned_parameters()) for outcome in outcomes]
    result.per_seed_final_loss = [_final_loss(outcome) for outcome in outcomes]
    result.diverged_at = [outcome.diverged_at for outcome in outcomes]
    for seed, outcome in zip(result.seeds, outcomes):
        result.losses[seed], result.stages[seed] = loss_history(outcome.losses, outcome.stage_losses, plan)
    result.spread = {}
    for name, stacked in result.per_seed_metrics.items():
        center, low, high = summarize_seeds(stacked, ok, log=metrics[name].log_axis)
        result.metrics[name] = center
        result.spread[name] = (low, high)
    # The representative seed: the (lower) median of the seeds that did not diverge by the final
    # value of the primary metric; its parameters are the row's.
    final = result.per_seed_metrics[primary][:, -1]
    candidates = [i for i in np.argsort(final, kind="stable") if ok[i]] or [0]
    chosen = int(candidates[(len(candidates) - 1) // 2])
    result.representative_seed = result.seeds[chosen]
    result.params = result.per_seed_params[chosen]
    result.final_loss = result.per_seed_final_loss[chosen]
    result.solver = outcomes[chosen].solver
