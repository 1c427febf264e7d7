"""Training a comparison's solvers: the instance keys of each solver's training and of the shared
evaluation, one seed or an ensemble of seeds, checkpoints per seed, and the resumable training state."""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import jax

from ..engine import TrainResult, train, train_ensemble
from ..engine.keys import host_fold_in, host_key
from ..engine.loop import expand_schedule
from ..engine.progress import Progress
from ..engine.resume import load_train_state, save_train_state
from ..errors import CheckpointError, TrainingDivergedError
from ..interfaces import Problem, TrainingSchedule, UnfoldedSolver
from ..io.checkpoint import save_checkpoint
from ..options import options_to_dict
from .config import ExperimentConfig, SolverConfig

__all__ = ["training_key", "evaluation_key", "train_solver", "train_seeds"]

_TRAIN_TAG, _EVAL_TAG = 0, 1  # distinct streams: no evaluation instance is ever a training one


def training_key(seed: int, label: str) -> jax.Array:
    """Key of the training instances of the solver labelled ``label``.

    It depends on the label, not on the solver's position, so adding, removing or
    reordering other solvers leaves a solver's training unchanged.
    """
    stream = host_fold_in(host_key(seed), _TRAIN_TAG)  # = jax.random.fold_in(jax.random.key(seed), 0)
    return host_fold_in(stream, zlib.crc32(label.encode()) & 0x7FFFFFFF)


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

    save_state = _StateSaver(state_path, identity, _stage_count(config, schedule))

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
                        problem_options=config.problem.options, extra={"label": entry.label, "status": "trained", **_cost(result)})
        state_path.unlink(missing_ok=True)  # the finished checkpoint supersedes the resumable state
        _SAVED.append(f"{entry.label}: trained")
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

    save_state = _StateSaver(state_path, identity, _stage_count(config, schedule))

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
                                   "diverged_at": result.diverged_at, **_cost(result)})
        state_path.unlink(missing_ok=True)
        _SAVED.append(f"{entry.label}: trained")
    return results


_SAVED: list[str] = []  # what this process saved last, for the message of an interrupted run


def last_saved() -> str | None:
    """What the last state or checkpoint saved in this process holds (``"learned: stage 3 of 10"``,
    ``"learned: trained"``), or ``None``."""
    return _SAVED[-1] if _SAVED else None


def _cost(result: TrainResult) -> dict[str, Any]:
    """What training cost, recorded in the checkpoint (a resumed run reports it from there)."""
    return {"train_seconds": result.train_seconds, "compile_seconds": result.compile_seconds,
            "compilations": result.compilations}


def _stage_count(config: ExperimentConfig, schedule: TrainingSchedule) -> int:
    return len(expand_schedule(schedule, config.train, config.train.depth))


class _StateSaver:
    """Saves the resumable state at a stage boundary: the first one, then at most once every
    ``DU_STATE_INTERVAL`` seconds (default 1; 0 saves every stage).

    Each save is a host copy written and synced atomically (a few ms); the reference schedule
    has 50 stages in about two seconds, so saving every stage would add a tenth to training.
    A run killed between saves resumes from the last saved stage and ends exactly as the
    uninterrupted run would; at most the interval's worth of training is done again.
    """

    def __init__(self, path: Path | None, identity: dict[str, Any], stages: int):
        self.path, self.identity, self.last, self.stages = path, identity, None, stages
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
        _SAVED.append(f"{self.identity['label']}: stage {state.stages_done} of {self.stages}")


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


def evaluation_key(seed: int) -> jax.Array:
    """Key of the evaluation instances (shared by every solver, disjoint from training)."""
    return host_fold_in(host_key(seed), _EVAL_TAG)
