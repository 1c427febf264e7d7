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
import time
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..io.checkpoint import LoadedCheckpoint, load_checkpoint
from .config import ExperimentConfig
from ..engine import TrainResult
from ..engine.loop import expand_schedule
from .display import progress_for
from ..errors import CheckpointError, TrainingDivergedError
from ..interfaces import Problem, UnfoldedSolver
from ..metrics import metric_table
from ..networks import network_summaries, parameter_count
from ..options import options_to_dict
from ..registry import Registry, get_registry
from .build import build_problem, build_schedule, build_solver, build_solvers, build_sweep_problems
from .results import SUMMARY, SolverResult, SweepAxis, loss_history, summarize_seeds
from .sweep import counts_of, evaluate_solver, sweep_axis, sweep_points
from .training import evaluation_key, train_seeds, train_solver, training_key

__all__ = ["SolverResult", "Comparison", "build_problem", "build_solver", "build_schedule",
           "build_solvers", "train_solver", "train_seeds", "run_comparison", "training_key", "evaluation_key",
           "summarize_seeds", "solver_summary", "SUMMARY"]


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
    sweep: SweepAxis | None = None


def load_checkpoints(config: ExperimentConfig, problem: Problem, solvers: list[UnfoldedSolver],
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
    swept = build_sweep_problems(config, registry)  # every point's problem, before any training
    loaded = load_checkpoints(config, problem, solvers, load_dir, allow_problem_mismatch=allow_problem_mismatch,
                               train_missing=train_missing, log=log)
    finished: set[str] = set()
    if resume and checkpoint_dir is not None and Path(checkpoint_dir).is_dir():
        done = load_checkpoints(config, problem, solvers, checkpoint_dir, allow_problem_mismatch=False,
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
            # trained, or begun, by the interrupted session of a resumed run
            resumed = entry.label in finished or (resume and checkpoint_dir is not None and solver.is_trainable
                                                  and (Path(checkpoint_dir) / f"{entry.label}.state.npz").is_file())
            if entry.label in loaded:
                checkpoint, founds = loaded[entry.label]
                solver, loaded_from = founds[0].solver, (None if entry.label in finished else str(checkpoint))
                problem_mismatch = founds[0].problem_mismatch or None
                # a finished solver of a resumed run reports the training its checkpoint records
                outcomes = [TrainResult(found.solver, np.zeros(0), [],
                                        *(_recorded_cost(found.metadata) if entry.label in finished else (0.0, 0.0, 0)),
                                        diverged_at=diverged_at_of(found.metadata)) for found in founds]
            elif len(seeds) == 1 or not solver.is_trainable:
                outcomes = [train_solver(config, index, solver, problem, schedule,
                                         checkpoint_dir=checkpoint_dir, progress=meter, resume=resume)]
            else:
                outcomes = train_seeds(config, index, solver, problem, schedule, checkpoint_dir=checkpoint_dir,
                                       progress=meter, resume=resume)
            evaluation_start = time.perf_counter()
            evaluations = [evaluate_solver(outcome.solver, problem, eval_key, config.evaluation)
                           for outcome in outcomes]
            curves = [evaluation.values for evaluation in evaluations]
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
                resumed=resumed,
                parameter_count=parameter_count(solver) if solver.is_trainable else None,
                networks=network_summaries(solver),
            )
            if trained:
                _add_seeds(result, outcomes, curves, seeds[:len(outcomes)] if len(outcomes) > 1 else seeds[:1],
                           metrics, primary, stages)
            chosen = result.seeds.index(result.representative_seed) if result.representative_seed in result.seeds \
                else 0
            result.counts = counts_of(evaluations[chosen], metrics)
            result.evaluation_batches = evaluations[chosen].batches
            result.sweep = sweep_points([outcome.solver for outcome in outcomes], swept, config.evaluation,
                                        [outcome.diverged_at is None for outcome in outcomes], chosen,
                                        trained and len(outcomes) > 1)
            result.evaluation_seconds = time.perf_counter() - evaluation_start
            results[entry.label] = result
            _solver_done(watchers, result, position, trained, problem, log if progress else False)
    except BaseException as error:
        if owned:
            watchers.run_end(status=run_status(error))
        raise
    if owned:
        watchers.run_end(status="complete", results={label: r.to_dict() for label, r in results.items()})
    return Comparison(config, problem, results, stages, sweep_axis(config.evaluation))


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


def diverged_at_of(metadata: dict[str, Any]) -> dict[str, int] | None:
    """Where a seed's checkpoint says it diverged (``None`` for a trained one)."""
    at = metadata.get("diverged_at") if metadata.get("status") == "diverged" else None
    return {"stage": int(at["stage"]), "step": int(at["step"])} if isinstance(at, dict) and {
        "stage", "step"} <= set(at) else None


def _recorded_cost(metadata: dict[str, Any]) -> tuple[float, float, int]:
    """``(train_seconds, compile_seconds, compilations)`` a checkpoint records of the training that made it."""
    def number(key: str) -> float:
        value = metadata.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 0.0
    return number("train_seconds"), number("compile_seconds"), int(number("compilations"))


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
