"""The host loop: stages and chunks of compiled calls, progress events, and the divergence latch read back.

:func:`run_stages` calls the compiled program (:mod:`.program`) once per chunk
of optimiser steps, reports to one :class:`~.progress.Progress` (which may be
made of parts), and after every chunk reads the divergence latch out of the
optimiser state (:func:`~.transforms.latch_nonfinite`): a run, or an ensemble
member, whose latch is set has been frozen at its last good parameters by the
program itself; the host only turns the latch's update index into a stage and a
step, and either stops the run (:class:`~du_framework.errors.TrainingDivergedError`)
or, for an ensemble under ``on_divergence="record"``, records it and marks that
member's later losses NaN. Nothing is carried by hand between chunks, so a run
resumed from a :class:`~.resume.TrainState` goes on exactly as the
uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np
from flax import nnx

from ..errors import CheckpointError, TrainingDivergedError
from ..interfaces import Stage
from .program import ProgramSpec, run_chunk
from .progress import Progress
from .resume import TrainState, key_from_data

__all__ = ["HostRun", "run_stages", "stage_args", "restore", "snapshot", "stage_and_step"]


@dataclasses.dataclass
class HostRun:
    """What :func:`run_stages` leaves: the arrays after the last stage, the losses and the divergences."""

    param_state: object
    opt_state: object
    key: jax.Array
    losses: list[np.ndarray]
    stage_losses: list
    diverged_at: list[dict | None]
    compile_seconds: float | None


def stage_args(stage: Stage, n_valid: int, restart: bool) -> tuple:
    """The program's traced arguments for a chunk of ``n_valid`` steps of ``stage``."""
    return (np.int32(stage.active_depth), np.bool_(stage.train == "newest"), np.float32(stage.lr_scale),
            np.int32(n_valid), np.bool_(restart))


def stage_and_step(stages: list[Stage], index: int) -> dict[str, int]:
    """``{"stage": s, "step": n}`` (1-based) of the optimiser step with 0-based run-wide ``index``."""
    first = 0
    for number, stage in enumerate(stages, 1):
        if index < first + stage.steps:
            return {"stage": number, "step": index - first + 1}
        first += stage.steps
    return {"stage": len(stages), "step": stages[-1].steps}


def _latch(opt_state) -> tuple[np.ndarray, np.ndarray]:
    """Per member, whether the divergence latch is set and at which update (host arrays, 1-d)."""
    diverged, at = jax.device_get((opt_state.diverged, opt_state.diverged_at))
    return np.atleast_1d(np.asarray(diverged, bool)), np.atleast_1d(np.asarray(at, np.int64))


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for name, value in tree.items():
        out.update(_flat(value, f"{prefix}{name}.") if isinstance(value, dict) else {f"{prefix}{name}": value})
    return out


def restore(resume: TrainState, param_state, opt_state, key, stages: list[Stage]):
    """The run's arrays restored from ``resume``, checked against the fresh run's shapes."""
    if not 1 <= resume.stages_done <= len(stages):
        raise CheckpointError(f"the training state has {resume.stages_done} stages done, but the schedule has "
                              f"{len(stages)}: it belongs to another schedule")
    fresh = nnx.to_pure_dict(param_state)
    wanted = {name: np.shape(value) for name, value in _flat(fresh).items()}
    stored = {name: np.shape(value) for name, value in _flat(resume.params).items()}
    if wanted != stored:
        raise CheckpointError(f"the training state holds parameters {stored}, this solver has {wanted}")
    leaves, treedef = jax.tree.flatten(opt_state)
    if [np.shape(leaf) for leaf in leaves] != [np.shape(leaf) for leaf in resume.opt_state]:
        raise CheckpointError("the training state's optimiser state does not fit this run's optimiser "
                              "(another train.optimizer, its options, or another solver)")
    restored = jax.tree.map(lambda leaf: leaf, param_state)
    nnx.replace_by_pure_dict(restored, jax.tree.map(np.asarray, resume.params))
    opt_state = jax.tree.unflatten(treedef, [np.asarray(v, np.asarray(old).dtype) for v, old in
                                             zip(resume.opt_state, leaves)])
    key = key_from_data(resume.key_data)
    return restored, opt_state, key


def snapshot(stages_done, param_state, opt_state, key, losses, stage_losses, diverged_at=None) -> TrainState:
    """A host copy of the run after ``stages_done`` stages."""
    host = jax.device_get((nnx.to_pure_dict(param_state), jax.tree.leaves(opt_state), jax.random.key_data(key)))
    history = np.concatenate(losses, axis=-1) if losses else np.zeros(0, np.float32)
    return TrainState(stages_done, host[0], [np.asarray(leaf) for leaf in host[1]], np.asarray(host[2]), history,
                      [np.asarray(value).tolist() for value in stage_losses],
                      diverged_at=list(diverged_at) if diverged_at is not None and any(diverged_at) else None)


def run_stages(stages: list[Stage], spec: ProgramSpec, state: tuple, factors, *, graphdef, name: str,
               members: int, progress: Progress, resume: TrainState | None = None,
               on_stage_end: Callable[[TrainState], None] | None = None,
               record_divergence: bool = False) -> HostRun:
    """Run the stages of ``stages`` not done in ``resume`` (all without it); see the module docstring."""
    param_state, opt_state, rest, problem, key = state
    ensemble = spec.ensemble
    losses: list[np.ndarray] = []
    stage_losses: list = []
    first_stage = 0
    if resume is not None:
        if resume.diverged_at is not None and len(resume.diverged_at) != members:
            raise CheckpointError(f"the training state records {len(resume.diverged_at)} ensemble members, "
                                  f"this run has {members}")
        param_state, opt_state, key = restore(resume, param_state, opt_state, key, stages)
        losses = [np.asarray(resume.losses, np.float32)]
        stage_losses = [np.asarray(value) for value in resume.stage_losses]
        first_stage = resume.stages_done
    initialised = resume is not None
    compile_seconds = None
    steps_before = sum(stage.steps for stage in stages[:first_stage])  # run-wide index of the next step
    dead = np.zeros(members, bool)  # members whose latch is set (record_divergence)
    diverged_at: list[dict | None] = [None] * members
    if resume is not None and ensemble and record_divergence:
        dead, at = _latch(opt_state)
        diverged_at = [stage_and_step(stages, int(at[m])) if dead[m] else None for m in range(members)]

    progress.start(sum(stage.steps for stage in stages[first_stage:]), name + (f" x{members}" if ensemble else ""))
    try:
        for stage_number, stage in enumerate(stages, 1):
            if stage_number <= first_stage:
                continue
            done, last, stage_first = 0, None, len(losses)
            progress.stage(stage_number, len(stages), stage.active_depth)
            while done < stage.steps:
                n_valid = min(spec.chunk, stage.steps - done)
                restart = (stage.restart_optimizer and done == 0) or not initialised  # the first chunk initialises
                initialised = True
                call_start = time.perf_counter()
                param_state, opt_state, key, chunk_losses = run_chunk(
                    param_state, opt_state, rest, problem, key, *stage_args(stage, n_valid, restart), factors,
                    spec=spec)
                if compile_seconds is None:
                    compile_seconds = time.perf_counter() - call_start
                diverged, at = _latch(opt_state)
                newly = diverged & ~dead
                if newly.any() or dead.any():
                    chunk_losses = np.array(chunk_losses, np.float32)  # a writable host copy
                    chunk_losses.reshape(members, -1)[dead] = np.nan  # frozen before this chunk
                if newly.any() and not (record_divergence and ensemble and not diverged.all()):
                    member = int(np.argmax(newly))
                    good = nnx.merge(graphdef, _member_of(param_state, member, ensemble), rest)
                    raise _diverged(stages, stage_number, done, int(at[member]) - steps_before, member, name,
                                    members if ensemble else None, losses, chunk_losses, good)
                for member in np.flatnonzero(newly):
                    diverged_at[member] = stage_and_step(stages, int(at[member]))
                    chunk_losses[member, int(at[member]) - steps_before:] = np.nan
                dead = dead | newly
                last = np.asarray(chunk_losses)[..., :n_valid]
                losses.append(last)
                done += n_valid
                steps_before += n_valid
                progress.advance(n_valid, float(np.nanmean(last[..., -1])) if not dead.all() else float("nan"))
            if last is not None:
                stage_losses.append(np.mean(last, axis=-1))  # NaN for a member frozen after diverging
            if on_stage_end is not None:
                on_stage_end(snapshot(stage_number, param_state, opt_state, key, losses, stage_losses, diverged_at))
            progress.stage_end(stage_number, len(stages), stage.active_depth,
                               np.concatenate(losses[stage_first:], axis=-1) if len(losses) > stage_first
                               else np.zeros((members, 0) if ensemble else 0, np.float32))
    finally:
        progress.close()
    return HostRun(param_state, opt_state, key, losses, stage_losses, diverged_at, compile_seconds)


def _member_of(tree, member: int, ensemble: bool):
    return jax.tree.map(lambda leaf: leaf[member], tree) if ensemble else tree


def _diverged(stages, stage_number, done, at, member, name, members, losses, chunk_losses,
              good) -> TrainingDivergedError:
    """The error that stops the run: ``member`` latched at step ``at`` (0-based) of the chunk that began after
    ``done`` steps of stage ``stage_number`` (``members`` is ``None`` for a single run); ``good`` holds its
    last good parameters."""
    stage = stages[stage_number - 1]
    history = np.concatenate([np.atleast_2d(part)[member] for part in losses]
                             + [np.atleast_2d(np.asarray(chunk_losses))[member][:at]])
    who = f"{name!r}" + (f" (ensemble member {member}, of {members})" if members is not None else "")
    step = done + at + 1
    return TrainingDivergedError(
        f"training of {who} diverged: the loss or a parameter became non-finite at stage "
        f"{stage_number} of {len(stages)} (active depth {stage.active_depth}), step {step} of "
        f"{stage.steps}; the last good parameters are kept. Try a smaller learning rate or "
        f"initial step size.", stage=stage_number, step=step, solver=good, history=history)
