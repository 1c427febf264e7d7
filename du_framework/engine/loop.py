"""The host loop: stages, chunks, progress, divergence. A single run is an ensemble of one.

How a run is compiled (see :mod:`.program`): the whole schedule, every stage and
every step, runs through one program; each call runs a chunk of up to
``chunk_size`` optimiser steps, and shorter stages mask the surplus steps.
Parameter slots a stage does not train get zero gradient, zero update and an
unchanged optimiser state. A step whose loss or new parameters are not finite is
not applied; the run stops after that chunk with
:class:`~du_framework.errors.TrainingDivergedError` naming the stage and step,
holding the last good parameters.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..errors import CheckpointError, DUError, PluginError, TrainingDivergedError
from ..interfaces import Problem, Stage, TrainingSchedule, UnfoldedSolver
from ..params import learning_rates
from .distributed import host_local, replicate
from .program import ProgramSpec, lower_chunk, make_mesh, run_chunk, traces, training_loss
from .progress import Progress, progress_for
from .keys import host_key
from .resume import TrainState, key_from_data
from .settings import TrainSettings
from .transforms import build_optimizer, check_optimizer_settings
from ..registry import describe_component
from .unroll import remat_levels

__all__ = ["TrainResult", "train", "train_ensemble", "program_memory", "resolve_settings", "expand_schedule"]


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns (one per member for :func:`train_ensemble`).

    Attributes:
        solver: the solver with its learned parameters (a new module).
        losses: training loss of every optimiser step, in order (host array).
        stage_losses: mean loss over the last chunk of each stage.
        train_seconds: wall time of the whole training, compilation included.
        compile_seconds: time spent in the first call (tracing and compiling, or
            fetching the program from JAX's caches).
        compilations: how many times the training program was traced (1 for any
            schedule; 0 for a solver with nothing to learn, or when an earlier
            call already compiled the same program).
        diverged_at: ``None``, or for an ensemble member that diverged under
            ``on_divergence="record"``, ``{"stage": s, "step": n}`` (1-based);
            its ``solver`` then holds its last good parameters and its losses
            after that step are NaN.
    """

    solver: UnfoldedSolver
    losses: np.ndarray
    stage_losses: list[float]
    train_seconds: float
    compile_seconds: float
    compilations: int
    diverged_at: dict[str, int] | None = None


def resolve_settings(settings: TrainSettings | None, overrides: dict[str, Any]) -> TrainSettings:
    """``settings`` (default :class:`TrainSettings`) with keyword ``overrides`` applied and validated."""
    from ..options import options_to_dict, parse_options

    base = settings if settings is not None else TrainSettings()
    if not overrides:
        return base
    merged = base.replace(**overrides)
    return parse_options(TrainSettings, options_to_dict(merged), prefix="train.")


def expand_schedule(schedule: TrainingSchedule | Sequence[Stage] | str | None, settings: TrainSettings,
                    depth: int) -> list[Stage]:
    """The stages of ``schedule`` for ``depth``: a schedule, a list of stages, a registered name, or
    ``None`` for the one named by ``settings.schedule`` (default options)."""
    if schedule is None or isinstance(schedule, str):
        from ..registry import get_registry

        schedule = get_registry().schedule(settings.schedule if schedule is None else schedule)()
    if not isinstance(schedule, TrainingSchedule):  # the caller's own list of stages
        return _checked_stages(list(schedule), depth, TypeError, ValueError, "the schedule")
    who = f"schedule {describe_component(type(schedule), 'schedule')}"
    try:
        stages = list(schedule.stages(depth, settings.steps_per_stage))
    except DUError:
        raise
    except Exception as error:  # noqa: BLE001 - a plugin's bug, named
        raise PluginError(f"{who} failed to make its stages for depth {depth}: {type(error).__name__}: {error}") from None
    return _checked_stages(stages, depth, PluginError, PluginError, who)


def _checked_stages(stages: list, depth: int, type_error: type, value_error: type, who: str) -> list[Stage]:
    if not stages:
        raise value_error(f"{who} gave no stage for depth {depth}")
    for number, stage in enumerate(stages, 1):
        if not isinstance(stage, Stage):
            raise type_error(f"stage {number} of {who} is {stage!r}, not a du_framework.Stage")
        if stage.active_depth > depth:
            raise value_error(f"stage {number} of {who} asks for active depth {stage.active_depth} but the solver "
                              f"is unrolled to depth {depth}")
    return stages


def train(solver: UnfoldedSolver, problem: Problem, schedule: TrainingSchedule | Sequence[Stage] | str | None = None,
          settings: TrainSettings | None = None, *, key: jax.Array | int = 0, progress: bool | Progress = True,
          label: str | None = None, resume: TrainState | None = None,
          on_stage_end: Callable[[TrainState], None] | None = None, **overrides: Any) -> TrainResult:
    """Train ``solver`` on random instances of ``problem`` following ``schedule``.

    Args:
        schedule: a :class:`TrainingSchedule` (expanded with ``solver.depth`` and
            ``settings.steps_per_stage``), an explicit list of :class:`Stage`, a
            registered schedule's name, or ``None`` for the one named by
            ``settings.schedule`` (registered names take their default options).
        settings: the ``[train]`` table (:class:`TrainSettings`); ``settings.depth``
            is not used here (the solver's depth is).
        key: PRNG key or integer seed for the training instances.
        progress: show progress (``compiling <label>...``, then a bar of optimiser
            steps with stage and loss on a terminal, plain lines elsewhere: see
            :mod:`du_framework.engine.progress`), or a
            :class:`~du_framework.engine.progress.Progress` to report to (called on the
            host between compiled calls, with every stage's losses).
        label: name shown on the progress bar and in messages.
        resume: a :class:`~du_framework.engine.resume.TrainState` of this run;
            its completed stages are skipped and the rest continue from its
            parameters, optimiser state, PRNG state and loss history, so the
            result equals the uninterrupted run's (bitwise on CPU).
        on_stage_end: called with a :class:`~du_framework.engine.resume.TrainState`
            (host arrays) after every stage, e.g. to save a resumable checkpoint.
        **overrides: :class:`TrainSettings` fields replacing those of ``settings``
            (``steps_per_stage=10, batch_size=16, log_loss=False``, ...).

    The compiled program is kept by JAX's jit cache (keyed by solver structure,
    problem structure, shapes and the settings that shape the program), so a
    second call with the same structure compiles nothing (``compilations == 0``).

    Raises:
        TrainingDivergedError: a loss or parameter became non-finite.
        ConfigError: bad settings (unknown optimiser, too many devices, a
            learning rate the solver does not declare, ...).
    """
    return _train(solver, problem, schedule, resolve_settings(settings, overrides), [key], ensemble=False,
                  progress=progress, label=label, resume=resume, on_stage_end=on_stage_end)[0]


def train_ensemble(solver: UnfoldedSolver, problem: Problem,
                   schedule: TrainingSchedule | Sequence[Stage] | str | None = None, settings: TrainSettings | None = None,
                   *, keys: Sequence[jax.Array | int], progress: bool | Progress = True, label: str | None = None,
                   resume: TrainState | None = None, on_stage_end: Callable[[TrainState], None] | None = None,
                   on_divergence: str = "raise", rate_factors: dict[str, Sequence[float]] | None = None,
                   **overrides: Any) -> list[TrainResult]:
    """Train one copy of ``solver`` per key, all at once (``jax.vmap`` over members).

    Member ``i`` sees the instances of ``keys[i]`` and ends with the same
    parameters as ``train(solver, ..., key=keys[i])`` up to float rounding.
    Everything :func:`train` takes applies (devices and remat included); one
    program is compiled for the whole ensemble.

    Args:
        on_divergence: ``"raise"`` (default): a member that diverges stops the
            run; ``"record"``: it is frozen at its last good parameters, the
            others train on, and its result says so (:attr:`TrainResult.diverged_at`);
            the run stops only when every member has diverged.
        rate_factors: ``{group: [factor per member]}``: member ``i`` trains with each
            named parameter group's learning rate times its factor (a group left out
            keeps factor 1), as ``train`` would with those rates; a grid of learning
            rates in one program. The groups are the keys of
            :func:`~du_framework.params.learning_rates` (dotted parameter paths).

    Raises:
        TrainingDivergedError: a member diverged (the message names it; with
            ``"record"``, the last member); the error holds that member's last
            good parameters.
    """
    if len(keys) < 1:
        raise ValueError("train_ensemble needs at least one key")
    if on_divergence not in ("raise", "record"):
        raise ValueError(f"on_divergence must be 'raise' or 'record', got {on_divergence!r}")
    return _train(solver, problem, schedule, resolve_settings(settings, overrides), list(keys), ensemble=True,
                  progress=progress, label=label, resume=resume, on_stage_end=on_stage_end,
                  record_divergence=on_divergence == "record", rate_factors=rate_factors)


def _rate_factors(rates: dict[str, float], rate_factors: dict[str, Sequence[float]] | None, members: int):
    """Each parameter group's learning-rate factor: ``1.0``, or one per ensemble member."""
    if rate_factors is None:
        return {path: np.float32(1.0) for path in rates}
    unknown = sorted(set(rate_factors) - set(rates))
    if unknown:
        raise ValueError(f"rate_factors names {', '.join(map(repr, unknown))}; the solver's parameter groups "
                         f"are {', '.join(map(repr, sorted(rates)))}")
    factors = {}
    for path in rates:
        values = np.asarray(rate_factors.get(path, np.ones(members)), np.float64)
        if values.shape != (members,) or not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError(f"rate_factors[{path!r}] must hold {members} positive finite numbers (one per "
                             f"member), got {values.tolist()}")
        factors[path] = values.astype(np.float32)
    return factors


def _prepare(solver, problem, schedule, settings, keys, ensemble, rate_factors=None):
    """Everything a run needs before its first call: stages, spec, the initial arguments and the
    learning-rate factors."""
    solver.check_problem(problem)
    stages = expand_schedule(schedule, settings, solver.depth)
    check_optimizer_settings(settings)
    training_loss(problem, settings.loss)  # refuse an unknown or higher-is-better metric before compiling
    remat_levels(settings.remat)  # refuse a bad value before compiling
    mesh = make_mesh(settings.devices, settings.batch_size)
    rates = learning_rates(solver)
    graphdef, param_state, rest = nnx.split(solver, nnx.Param, ...)
    params = nnx.to_pure_dict(param_state)
    optimizer = build_optimizer(settings, rates, params)
    chunk = max(1, min(settings.chunk_size, max((stage.steps for stage in stages), default=1)))
    keys = [host_key(int(k)) if isinstance(k, (int, np.integer)) else k for k in keys]
    if ensemble:
        members = len(keys)
        param_state = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (members,) + leaf.shape), param_state)
        opt_shapes = jax.eval_shape(jax.vmap(optimizer.init), nnx.to_pure_dict(param_state))
        key = jnp.stack(keys)
    else:
        opt_shapes = jax.eval_shape(optimizer.init, params)
        key = keys[0]
    # A placeholder of the right structure: the program initialises the optimiser on its first
    # chunk (a restart), so no eager operation is compiled for it on the host.
    opt_state = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), opt_shapes)
    spec = ProgramSpec.make(graphdef, rates, settings, chunk=chunk, ensemble=ensemble, mesh=mesh,
                            member_rates=rate_factors is not None)
    factors = _rate_factors(rates, rate_factors, len(keys))
    state = (param_state, opt_state, rest, problem, key)
    if mesh is not None:
        state = replicate(state, mesh)  # on every device of the mesh, of every process
        factors = replicate(factors, mesh)
    return stages, spec, state, graphdef, factors


def _stage_args(stage: Stage, n_valid: int, restart: bool) -> tuple:
    return (np.int32(stage.active_depth), np.bool_(stage.train == "newest"), np.float32(stage.lr_scale),
            np.int32(n_valid), np.bool_(restart))


def program_memory(solver: UnfoldedSolver, problem: Problem,
                   schedule: TrainingSchedule | Sequence[Stage] | str | None = None,
                   settings: TrainSettings | None = None, **overrides: Any) -> int | None:
    """Memory the training program needs on its device (XLA's estimate), in bytes; ``None`` if unknown."""
    settings = resolve_settings(settings, overrides)
    stages, spec, state, _, factors = _prepare(solver, problem, schedule, settings, [0], ensemble=False)
    compiled = lower_chunk(*state, *_stage_args(stages[0], 1, False), factors, spec=spec).compile()
    try:
        stats = compiled.memory_analysis()
        return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
                   - stats.alias_size_in_bytes)
    except Exception:  # noqa: BLE001 - a backend without the analysis
        return None


def _resumed(resume: TrainState, param_state, opt_state, key, stages: list[Stage]):
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


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for name, value in tree.items():
        out.update(_flat(value, f"{prefix}{name}.") if isinstance(value, dict) else {f"{prefix}{name}": value})
    return out


def _snapshot(stages_done, param_state, opt_state, key, losses, stage_losses, dead_at=None) -> TrainState:
    """A host copy of the run after ``stages_done`` stages."""
    host = jax.device_get((nnx.to_pure_dict(param_state), jax.tree.leaves(opt_state), jax.random.key_data(key)))
    history = np.concatenate(losses, axis=-1) if losses else np.zeros(0, np.float32)
    return TrainState(stages_done, host[0], [np.asarray(leaf) for leaf in host[1]], np.asarray(host[2]), history,
                      [np.asarray(value).tolist() for value in stage_losses],
                      diverged_at=list(dead_at) if dead_at is not None and any(dead_at) else None)


def _freeze_members(tree, frozen, dead: np.ndarray):
    """``tree`` with the members where ``dead`` is set replaced by their values in ``frozen`` (host arrays)."""
    host = jax.device_get(tree)
    return jax.tree.map(lambda now, then: np.where(dead.reshape((-1,) + (1,) * (np.ndim(now) - 1)), then, now),
                        host, frozen)


def _train(solver, problem, schedule, settings, keys, *, ensemble, progress, label, resume=None,
           on_stage_end=None, record_divergence=False, rate_factors=None) -> list[TrainResult]:
    solver.check_problem(problem)
    if not solver.is_trainable:
        expand_schedule(schedule, settings, solver.depth)  # still refuse a bad schedule
        return [TrainResult(solver, np.zeros(0), [], 0.0, 0.0, 0) for _ in keys]
    start = time.perf_counter()
    stages, spec, (param_state, opt_state, rest, problem, key), graphdef, factors = _prepare(
        solver, problem, schedule, settings, keys, ensemble, rate_factors)
    members = len(keys)
    if not any(stage.steps for stage in stages):
        return [TrainResult(solver, np.zeros(0), [], 0.0, 0.0, 0) for _ in keys]
    traced_before = traces(spec)
    compile_seconds = None
    losses: list[np.ndarray] = []
    stage_losses: list = []
    first_stage = 0
    if resume is not None:
        param_state, opt_state, key = _resumed(resume, param_state, opt_state, key, stages)
        losses = [np.asarray(resume.losses, np.float32)]
        stage_losses = [np.asarray(value) for value in resume.stage_losses]
        first_stage = resume.stages_done
    initialised = resume is not None
    name = label or solver.name

    def member_of(tree, member):
        return jax.tree.map(lambda leaf: leaf[member], tree) if ensemble else tree

    bar = progress_for(progress)
    bar.start(sum(stage.steps for stage in stages[first_stage:]), name + (f" x{members}" if ensemble else ""))
    dead = np.zeros(members, bool)  # members frozen after diverging (record_divergence)
    dead_at: list[dict | None] = [None] * members
    frozen = None
    if resume is not None and resume.diverged_at is not None and ensemble and record_divergence:
        if len(resume.diverged_at) != members:
            raise CheckpointError(f"the training state records {len(resume.diverged_at)} ensemble members, "
                                  f"this run has {members}")
        dead_at = [dict(at) if at is not None else None for at in resume.diverged_at]
        dead = np.array([at is not None for at in dead_at])
        frozen = jax.device_get((param_state, opt_state))  # the resumed values are the frozen members' own
    try:
        for stage_number, stage in enumerate(stages, 1):
            if stage_number <= first_stage:
                continue
            done, last, stage_first = 0, None, len(losses)
            bar.stage(stage_number, len(stages), stage.active_depth)
            while done < stage.steps:
                n_valid = min(spec.chunk, stage.steps - done)
                restart = (stage.restart_optimizer and done == 0) or not initialised  # the first chunk initialises
                initialised = True
                call_start = time.perf_counter()
                param_state, opt_state, key, failed, fail_at, chunk_losses = run_chunk(
                    param_state, opt_state, rest, problem, key, *_stage_args(stage, n_valid, restart), factors,
                    spec=spec)
                failed = np.atleast_1d(np.asarray(failed))
                if compile_seconds is None:
                    compile_seconds = time.perf_counter() - call_start
                newly = failed & ~dead
                if record_divergence and newly.any() and not (dead | newly).all():
                    at_steps = np.atleast_1d(np.asarray(fail_at))
                    chunk_losses = np.array(chunk_losses, np.float32)
                    for member in np.flatnonzero(newly):
                        dead_at[member] = {"stage": stage_number, "step": done + int(at_steps[member]) + 1}
                        chunk_losses[member, int(at_steps[member]):] = np.nan
                    host = jax.device_get((param_state, opt_state))
                    frozen = host if frozen is None else jax.tree.map(
                        lambda now, then: np.where(newly.reshape((-1,) + (1,) * (np.ndim(now) - 1)), now, then),
                        host, frozen)
                    dead |= newly
                    failed = newly & False
                elif dead.any():
                    failed = newly
                    chunk_losses = np.array(chunk_losses, np.float32)
                    chunk_losses[dead] = np.nan
                if dead.any():  # a diverged member stays at its last good parameters
                    param_state, opt_state = _freeze_members((param_state, opt_state), frozen, dead)
                if failed.any():
                    member = int(np.argmax(failed))
                    at = int(np.atleast_1d(np.asarray(fail_at))[member])
                    step = done + at + 1
                    history = np.concatenate([np.atleast_2d(part)[member] for part in losses]
                                             + [np.atleast_2d(np.asarray(chunk_losses))[member][:at]])
                    who = f"{name!r}" + (f" (ensemble member {member}, of {members})" if ensemble else "")
                    good = nnx.merge(graphdef, member_of(param_state, member), rest)
                    raise TrainingDivergedError(
                        f"training of {who} diverged: the loss or a parameter became non-finite at stage "
                        f"{stage_number} of {len(stages)} (active depth {stage.active_depth}), step {step} of "
                        f"{stage.steps}; the last good parameters are kept. Try a smaller learning rate or "
                        f"initial step size.", stage=stage_number, step=step, solver=good, history=history)
                last = np.asarray(chunk_losses)[..., :n_valid]
                losses.append(last)
                done += n_valid
                bar.advance(n_valid, float(np.nanmean(last[..., -1])) if not dead.all() else float("nan"))
            if last is not None:
                stage_losses.append(np.mean(last, axis=-1))  # NaN for a member frozen after diverging
            if on_stage_end is not None:
                on_stage_end(_snapshot(stage_number, param_state, opt_state, key, losses, stage_losses, dead_at))
            bar.stage_end(stage_number, len(stages), stage.active_depth,
                          np.concatenate(losses[stage_first:], axis=-1) if len(losses) > stage_first
                          else np.zeros((members, 0) if ensemble else 0, np.float32))
    finally:
        bar.close()
    jax.block_until_ready(param_state)
    train_seconds = time.perf_counter() - start
    compilations = traces(spec) - traced_before
    if spec.mesh is not None:  # hand back plain arrays on this process's first device
        param_state, rest = host_local((param_state, rest))

    def result(member: int | None) -> TrainResult:
        pick = (lambda history: history) if member is None else (lambda history: history[member])
        state = param_state if member is None else member_of(param_state, member)
        history = np.concatenate([pick(part) for part in losses]) if losses else np.zeros(0)
        return TrainResult(
            solver=nnx.merge(graphdef, state, rest),
            losses=history,
            stage_losses=[float(pick(np.asarray(value))) for value in stage_losses],
            train_seconds=train_seconds,
            compile_seconds=compile_seconds or 0.0,
            compilations=compilations,
            diverged_at=None if member is None else dead_at[member],
        )

    return [result(None)] if not ensemble else [result(i) for i in range(members)]
