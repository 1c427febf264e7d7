"""Training runs: :func:`train` and :func:`train_ensemble`, set up here, run by :mod:`.host`. A single run
is an ensemble of one.

How a run is compiled (see :mod:`.program`): the whole schedule, every stage and
every step, runs through one program; each call runs a chunk of up to
``chunk_size`` optimiser steps, and shorter stages mask the surplus steps.
Parameter slots a stage does not train get zero gradient, zero update and an
unchanged optimiser state. A step whose loss or new parameters are not finite is
not applied and latches the optimiser's divergence latch
(:func:`~du_framework.engine.transforms.latch_nonfinite`); the run stops after
that chunk with :class:`~du_framework.errors.TrainingDivergedError` naming the
stage and step, holding the last good parameters.
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

from ..errors import ConfigError, DUError, PluginError
from ..interfaces import Problem, Stage, TrainingSchedule, UnfoldedSolver, check_fit
from ..networks import check_networks_declared, initialise_networks, networks
from ..params import learning_rates
from ..registry import describe_component
from .distributed import host_local, replicate
from .host import run_stages
from .host import stage_args as _stage_args
from .keys import host_key
from .program import ProgramSpec, check_loss_weights, lower_chunk, make_mesh, traces, training_loss
from .progress import Progress, as_progress
from .resume import TrainState
from .settings import TrainSettings
from .transforms import build_optimizer, check_optimizer_settings
from .unroll import remat_levels, unrolled_iterations

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
    who = f"schedule {describe_component(type(schedule), 'schedule', load=False)}"
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
        key: PRNG key or integer seed for the training instances, and for the initial weights of the
            solver's networks (:class:`~du_framework.networks.Network`: drawn afresh from it, on a stream
            of their own; every other parameter starts from the solver's values).
        progress: show progress as plain lines on standard error (``True``: see
            :class:`~du_framework.engine.progress.PlainLines`), nothing (``False``), or
            a :class:`~du_framework.engine.progress.Progress` to report to (called on
            the host between compiled calls, with every stage's losses), e.g.
            ``du_framework.workbench.display.ProgressDisplay()`` for a bar on a
            terminal, or several parts joined by
            :class:`~du_framework.engine.progress.ProgressParts`.
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

    Member ``i`` sees the instances of ``keys[i]``, starts from networks drawn from it,
    and ends with the same parameters as ``train(solver, ..., key=keys[i])`` up to float rounding.
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


def check_implicit(solver: UnfoldedSolver, settings: TrainSettings) -> None:
    """Refuse ``train.backward = "implicit"`` for a solver without a fixed point or weighted iterations."""
    if not solver.has_fixed_point():
        raise ConfigError(f"train.backward = 'implicit' differentiates a fixed point, and solver "
                          f"{type(solver).name!r} has none (its step changes with the iteration, or it does not "
                          f"declare has_fixed_point()); use backward = 'full' or 'truncated', or a solver with one "
                          f"map per iteration (e.g. lista with tied = true)")
    if settings.loss_weights != "final":
        raise ConfigError(f"train.backward = 'implicit' differentiates the final estimate only; train.loss_weights = "
                          f"{settings.loss_weights!r} weighs earlier iterations: set loss_weights = 'final'")


def _prepare(solver, problem, schedule, settings, keys, ensemble, rate_factors=None):
    """Everything a run needs before its first call: stages, spec, the initial arguments and the
    learning-rate factors."""
    check_fit(solver, problem)
    stages = expand_schedule(schedule, settings, solver.depth)
    check_optimizer_settings(settings)
    training_loss(problem, settings.loss)  # refuse an unknown or higher-is-better metric before compiling
    check_loss_weights(settings, solver.depth, stages)
    remat_levels(settings.remat)  # refuse a bad value before compiling
    try:
        per_body = unrolled_iterations(settings.unroll, solver.depth)
    except ValueError as error:  # a TrainSettings built in Python, not parsed from a configuration
        raise ConfigError(f"train.{error}") from None
    if settings.backward == "truncated" and settings.truncate > solver.depth:
        raise ConfigError(f"train.truncate = {settings.truncate} is more than the solver's {solver.depth} "
                          f"iterations: backpropagate through 1..{solver.depth}")
    if settings.implicit():
        check_implicit(solver, settings)
    mesh = make_mesh(settings.devices, settings.batch_size)
    check_networks_declared(solver)
    rates = learning_rates(solver)
    graphdef, param_state, rest = nnx.split(solver, nnx.Param, ...)
    params = nnx.to_pure_dict(param_state)
    optimizer = build_optimizer(settings, rates, params)
    chunk = max(1, min(settings.chunk_size, max((stage.steps for stage in stages), default=1)))
    keys = [host_key(int(k)) if isinstance(k, (int, np.integer)) else k for k in keys]
    if networks(solver):  # every run (every member) draws its networks' weights from its own key
        drawn = [initialise_networks(params, solver, k) for k in keys]
        pure = jax.tree.map(lambda *leaves: jnp.stack(leaves), *drawn) if ensemble else drawn[0]
        param_state = jax.tree.map(lambda leaf: leaf, param_state)  # a fresh container
        nnx.replace_by_pure_dict(param_state, pure)
    elif ensemble:
        param_state = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (len(keys),) + leaf.shape), param_state)
    if ensemble:
        members = len(keys)
        opt_shapes = jax.eval_shape(jax.vmap(optimizer.init), nnx.to_pure_dict(param_state))
        key = jnp.stack(keys)
    else:
        opt_shapes = jax.eval_shape(optimizer.init, params)
        key = keys[0]
    # A placeholder of the right structure: the program initialises the optimiser on its first
    # chunk (a restart), so no eager operation is compiled for it on the host.
    opt_state = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), opt_shapes)
    # The jit cache compares settings by value, and True == 1: remat and unroll enter as what they mean
    # (levels, iterations per body), or remat=True (2 levels) would reuse remat=1's program, unroll=True unroll=1's.
    shaping = dataclasses.replace(settings, remat=remat_levels(settings.remat), unroll=per_body)
    spec = ProgramSpec.make(graphdef, rates, shaping, chunk=chunk, ensemble=ensemble, mesh=mesh,
                            member_rates=rate_factors is not None)
    factors = _rate_factors(rates, rate_factors, len(keys))
    state = (param_state, opt_state, rest, problem, key)
    if mesh is not None:
        state = replicate(state, mesh)  # on every device of the mesh, of every process
        factors = replicate(factors, mesh)
    return stages, spec, state, graphdef, factors


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


def _train(solver, problem, schedule, settings, keys, *, ensemble, progress, label, resume=None,
           on_stage_end=None, record_divergence=False, rate_factors=None) -> list[TrainResult]:
    check_fit(solver, problem)
    if not solver.is_trainable:
        expand_schedule(schedule, settings, solver.depth)  # still refuse a bad schedule
        return [TrainResult(solver, np.zeros(0), [], 0.0, 0.0, 0) for _ in keys]
    start = time.perf_counter()
    stages, spec, state, graphdef, factors = _prepare(solver, problem, schedule, settings, keys, ensemble,
                                                      rate_factors)
    members = len(keys)
    if not any(stage.steps for stage in stages):
        return [TrainResult(solver, np.zeros(0), [], 0.0, 0.0, 0) for _ in keys]
    traced_before = traces(spec)
    run = run_stages(stages, spec, state, factors, graphdef=graphdef, name=label or solver.name, members=members,
                     progress=as_progress(progress), resume=resume, on_stage_end=on_stage_end,
                     record_divergence=record_divergence)
    param_state, rest = run.param_state, state[2]
    jax.block_until_ready(param_state)
    train_seconds = time.perf_counter() - start
    compilations = traces(spec) - traced_before
    if spec.mesh is not None:  # hand back plain arrays on this process's first device
        param_state, rest = host_local((param_state, rest))
    return [_result(graphdef, param_state, rest, run, member if ensemble else None,
                    train_seconds=train_seconds, compilations=compilations)
            for member in range(members if ensemble else 1)]


def _result(graphdef, param_state, rest, run, member: int | None, **timing) -> TrainResult:
    """The result of the whole run (``member=None``) or of one ensemble member."""
    pick = (lambda history: history) if member is None else (lambda history: history[member])
    state = param_state if member is None else jax.tree.map(lambda leaf: leaf[member], param_state)
    history = np.concatenate([pick(part) for part in run.losses]) if run.losses else np.zeros(0)
    return TrainResult(
        solver=nnx.merge(graphdef, state, rest),
        losses=history,
        stage_losses=[float(pick(np.asarray(value))) for value in run.stage_losses],
        compile_seconds=run.compile_seconds or 0.0,
        diverged_at=None if member is None else run.diverged_at[member],
        **timing,
    )
