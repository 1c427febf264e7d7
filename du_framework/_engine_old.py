"""The training engine: any solver, any problem, any schedule, compiled once.

How a run is compiled:

* The unroll is a fixed-length ``lax.scan`` over the solver's full depth; the
  active depth of a stage is a traced value, and iterations past it are skipped
  with ``lax.cond`` (so early stages cost less, and a stage change never
  retraces).
* A *chunk* of optimiser steps runs inside one jitted call (``lax.scan`` over
  steps); the chunk length is fixed for the whole run and shorter stages mask
  the surplus steps, so every stage of every schedule reuses one executable. It
  is compiled ahead of time and kept for the process (a later call with the same
  solver structure, shapes and options reuses it);
  :attr:`TrainResult.compilations` reports how many times it was traced.
* Parameter slots not used by the stage (inactive iterations, or all but the
  newest under ``train="newest"``) get zero gradient, zero update, and keep their
  optimiser state unchanged (Adam moments included).
* A step whose loss or new parameters are not finite is not applied; the run
  stops after that chunk with :class:`~du_framework.errors.TrainingDivergedError`
  naming the stage and step, holding the last good parameters.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .errors import TrainingDivergedError
from .interfaces import Problem, Stage, TrainingSchedule, UnfoldedSolver

__all__ = ["TrainResult", "train", "train_ensemble", "remat_levels", "clear_program_cache", "enable_compile_cache",
           "evaluate", "unroll", "make_optimizer", "split_solver"]


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        solver: the solver with its learned parameters (a new module).
        losses: training loss of every optimiser step, in order (host array).
        stage_losses: mean loss over the last chunk of each stage.
        train_seconds: wall time of the whole training, compilation included.
        compile_seconds: time spent tracing and compiling the training program.
        compilations: how many times the training program was traced (1 for any
            schedule; 0 for a solver with nothing to learn, or when an earlier
            call already compiled the same program).
        program_bytes: memory the training program needs on its device (XLA's
            estimate: arguments + outputs + temporaries), ``None`` if unknown.
    """

    solver: UnfoldedSolver
    losses: np.ndarray
    stage_losses: list[float]
    train_seconds: float
    compile_seconds: float
    compilations: int
    program_bytes: int | None = None


def split_solver(solver: UnfoldedSolver):
    """``(merge, params, rest)``: a pure rebuild function and the solver's arrays.

    ``params`` is a plain nested dict of the ``nnx.Param`` values; ``merge(params,
    rest)`` returns an equivalent module and is safe to call inside ``jax.jit``.
    """
    graphdef, param_state, rest = nnx.split(solver, nnx.Param, ...)
    params = nnx.to_pure_dict(param_state)

    def merge(params, rest):
        state = jax.tree.map(lambda leaf: leaf, param_state)  # a fresh container
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(graphdef, state, rest)

    return merge, params, rest


def unroll(
    solver: UnfoldedSolver,
    problem: Problem,
    instance: dict,
    active_depth: jax.Array | int | None = None,
    *,
    record: Callable[[jax.Array], jax.Array] | None = None,
    remat: bool | int = False,
):
    """Run the solver's iterations on a batch; return ``(x_final, recorded)``.

    Args:
        active_depth: iterations actually applied (traced or static); ``None``
            applies all ``solver.depth``. Later iterations leave the state alone.
        record: if given, called on the estimate after every iteration; its
            outputs are stacked along a new leading axis of length ``depth``.
        remat: rematerialise in the backward pass with nested
            ``jax.checkpoint``: ``True`` (2 levels) checkpoints blocks of about
            ``sqrt(depth)`` iterations and each iteration, storing about
            ``2 sqrt(depth)`` states instead of ``depth`` for one more forward
            pass; an integer ``k`` uses ``k`` levels of blocks of about
            ``depth^(1/k)`` (about ``k depth^(1/k)`` states, ``k - 1`` more
            forward passes; 1 checkpoints single iterations only).
    """
    context = solver.prepare(problem, instance)
    state0 = solver.init_state(problem, context)
    depth = solver.depth
    # Without remat: one scan over the depth. With `levels` levels of nested
    # checkpointing: blocks of b ~ depth^(1/levels) iterations (two levels: about
    # sqrt(depth)); the backward pass keeps the state at each block boundary of the
    # outer level, recomputes one block at a time keeping only that block's
    # boundaries, and so on down to single iterations: about levels * b stored
    # states instead of depth, for about one more forward pass per level below the top.
    levels = remat_levels(remat)
    block = depth
    if levels:
        block = max(1, math.ceil(depth ** (1.0 / levels)))
        while block ** levels < depth:
            block += 1
        while block > 1 and (block - 1) ** levels >= depth:
            block -= 1
    shape = (block,) * max(levels, 1)
    slots = math.prod(shape)
    limit = depth if active_depth is None else jnp.minimum(active_depth, depth)

    def advance(state, k):
        if active_depth is None and slots == depth:  # every iteration applies: no cond
            return solver.step(problem, context, state, k)
        return jax.lax.cond(k < limit, lambda s: solver.step(problem, context, s, k), lambda s: s, state)

    if levels:
        advance = jax.checkpoint(advance)

    def inner(state, k):
        state = advance(state, k)
        return state, (record(solver.estimate(state)) if record is not None else None)

    def nest(level):
        if level <= 1:
            return lambda state, ks: jax.lax.scan(inner, state, ks)
        return lambda state, ks: jax.lax.scan(jax.checkpoint(nest(level - 1)), state, ks)

    state, recorded = nest(levels)(state0, jnp.arange(slots, dtype=jnp.int32).reshape(shape))
    if record is not None:
        recorded = jax.tree.map(lambda r: r.reshape((slots,) + r.shape[len(shape):])[:depth], recorded)
    return solver.estimate(state), recorded


def remat_levels(remat: bool | int) -> int:
    """Checkpoint levels for a ``remat`` setting: False/0 none, True 2 (sqrt), k >= 1 k levels."""
    if isinstance(remat, bool):
        return 2 if remat else 0
    if not isinstance(remat, (int, np.integer)) or remat < 0:
        raise ValueError(f"remat must be true, false or a number of levels >= 0, got {remat!r}")
    return int(remat)


def make_optimizer(learning_rates: dict[str, float], params: dict) -> optax.GradientTransformation:
    """Adam with one learning rate per named parameter (one Adam per group, as in the book).

    ``learning_rates`` maps dotted parameter paths to rates; ``params`` is the
    nested dict whose leaves they name.
    """
    labels = _map_with_paths(lambda path, _: path, params)
    missing = set(jax.tree.leaves(labels)) - set(learning_rates)
    if missing:
        raise ValueError(f"no learning rate given for parameter(s) {sorted(missing)}")
    groups = {path: optax.scale(-float(lr)) for path, lr in learning_rates.items()}
    return optax.chain(optax.scale_by_adam(), optax.multi_transform(groups, labels))


def _map_with_paths(fn, tree: dict, prefix: str = "") -> dict:
    return {
        key: _map_with_paths(fn, value, f"{prefix}{key}.")
        if isinstance(value, dict)
        else fn(f"{prefix}{key}", value)
        for key, value in tree.items()
    }


def _slot_masks(params: dict, active_depth: jax.Array, newest_only: jax.Array) -> dict:
    """Boolean masks (shape of each leaf): which per-iteration slots train now."""

    def mask(leaf):
        slots = leaf.shape[0] if leaf.ndim else 1
        index = jnp.arange(slots)
        used = index < jnp.minimum(active_depth, slots)
        newest = index == (active_depth - 1) % slots
        chosen = jnp.where(newest_only, newest, used)
        return jnp.broadcast_to(chosen.reshape((slots,) + (1,) * max(leaf.ndim - 1, 0)), leaf.shape)

    return jax.tree.map(mask, params)


def _tree_where(condition, new, old):
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), new, old)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _stages_of(schedule: TrainingSchedule | Sequence[Stage], depth: int, steps_per_stage: int):
    stages = list(schedule.stages(depth, steps_per_stage)) if isinstance(schedule, TrainingSchedule) else list(schedule)
    for number, stage in enumerate(stages, 1):
        if stage.active_depth > depth:
            raise ValueError(
                f"stage {number} asks for active depth {stage.active_depth} but the solver "
                f"is unrolled to depth {depth}"
            )
    return stages


def train(
    solver: UnfoldedSolver,
    problem: Problem,
    schedule: TrainingSchedule | Sequence[Stage],
    *,
    steps_per_stage: int = 20,
    batch_size: int = 100,
    key: jax.Array | int = 0,
    chunk_size: int = 256,
    remat: bool | int = False,
    log_loss: bool = False,
    devices: int = 1,
    progress: bool = True,
    label: str | None = None,
) -> TrainResult:
    """Train ``solver`` on random instances of ``problem`` following ``schedule``.

    Args:
        schedule: a :class:`TrainingSchedule` (expanded with ``solver.depth`` and
            ``steps_per_stage``) or an explicit list of :class:`Stage`.
        batch_size: instances drawn per optimiser step (fresh every step).
        key: PRNG key or integer seed for the training instances.
        chunk_size: most optimiser steps per jitted call.
        remat: rematerialise in the backward pass (see :func:`unroll`): ``True``
            for about ``2 sqrt(D)`` stored states, an integer for that many levels.
        log_loss: let the optimiser descend ``log(loss)`` instead of the loss.
            Every stage keeps its minimiser (log is monotone), but the gradient
            is divided by the current loss, so Adam's second-moment estimate is
            no longer dominated by the large gradients of early, shallow stages
            when the loss falls by orders of magnitude over an incremental
            schedule. :attr:`TrainResult.losses` holds the loss itself either way.
        devices: split each batch of instances over this many devices
            (``jax.sharding``, data parallel; parameters are replicated and XLA
            sums the gradients); 1 runs on the default device, 0 uses every
            device. ``batch_size`` must be a multiple of it.
        progress: show a progress bar (optimiser steps; it advances once per
            chunk and names the current stage and active depth).
        label: name shown on the progress bar.

    The compiled training program is kept (per solver structure, problem
    structure, shapes and training options), so a second call with the same
    shapes does not compile again and reports ``compilations == 0``.

    Raises:
        TrainingDivergedError: a loss or parameter became non-finite.
    """
    results = _train(solver, problem, schedule, [key], ensemble=False, steps_per_stage=steps_per_stage,
                     batch_size=batch_size, chunk_size=chunk_size, remat=remat, log_loss=log_loss,
                     devices=devices, progress=progress, label=label)
    return results[0]


def train_ensemble(
    solver: UnfoldedSolver,
    problem: Problem,
    schedule: TrainingSchedule | Sequence[Stage],
    *,
    keys: Sequence[jax.Array | int],
    steps_per_stage: int = 20,
    batch_size: int = 100,
    chunk_size: int = 256,
    remat: bool | int = False,
    log_loss: bool = False,
    progress: bool = True,
    label: str | None = None,
) -> list[TrainResult]:
    """Train one copy of ``solver`` per key, all at once (``jax.vmap`` over members).

    Member ``i`` sees the instances of ``keys[i]`` and ends with the same
    parameters as ``train(solver, ..., key=keys[i])`` up to float rounding (the
    vectorised program may sum in another order). One program is compiled for
    the whole ensemble; every returned :class:`TrainResult` carries the
    ensemble's wall time, compile time and compilation count.

    Raises:
        TrainingDivergedError: a member diverged (the message names it); the
            error holds that member's last good parameters.
    """
    if len(keys) < 1:
        raise ValueError("train_ensemble needs at least one key")
    return _train(solver, problem, schedule, list(keys), ensemble=True, steps_per_stage=steps_per_stage,
                  batch_size=batch_size, chunk_size=chunk_size, remat=remat, log_loss=log_loss, devices=1,
                  progress=progress, label=label)


# Compiled training programs, most recently used last (see train's docstring).
_PROGRAMS: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
_PROGRAM_CACHE_SIZE = 16


def enable_compile_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled XLA programs on disk, so a new process skips compiling them again.

    This is JAX's persistent compilation cache, switched on for programs of any
    compile time. ``path`` defaults to ``$DU_COMPILE_CACHE`` or else
    ``$XDG_CACHE_HOME/du-framework/xla`` (``~/.cache/du-framework/xla``);
    ``DU_COMPILE_CACHE=off`` disables it. Returns the folder in use, or ``None``
    when disabled. The ``unfold`` command calls this at start-up.
    """
    setting = os.environ.get("DU_COMPILE_CACHE", "")
    if path is None and setting.lower() in ("off", "0", "false", "no"):
        return None
    if path is None:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = setting or base / "du-framework" / "xla"
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile every time, as without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


def clear_program_cache() -> None:
    """Forget every compiled training program (the next :func:`train` compiles again)."""
    _PROGRAMS.clear()


def _signature(tree) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(np.shape(leaf)), str(getattr(leaf, "dtype", type(leaf)))) for leaf in leaves)


def _mesh(devices: int, batch_size: int):
    if devices == 1:
        return None
    available = jax.devices()
    count = len(available) if devices == 0 else devices
    if devices < 0 or count > len(available):
        raise ValueError(
            f"train.devices = {devices} but {len(available)} device(s) are available "
            f"({available[0].platform}); use 1..{len(available)} or 0 for all. On CPU, "
            f"XLA_FLAGS=--xla_force_host_platform_device_count=N makes N devices"
        )
    if batch_size % count:
        raise ValueError(f"batch_size {batch_size} cannot be split over {count} devices: use a multiple of {count}")
    return jax.sharding.Mesh(np.array(available[:count]), ("batch",))


def _train(solver, problem, schedule, keys, *, ensemble, steps_per_stage, batch_size, chunk_size, remat,
           log_loss, devices, progress, label) -> list[TrainResult]:
    solver.check_problem(problem)
    stages = _stages_of(schedule, solver.depth, steps_per_stage)
    if not solver.is_trainable or not any(stage.steps for stage in stages):
        return [TrainResult(solver, np.zeros(0), [], 0.0, 0.0, 0) for _ in keys]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    keys = [jax.random.key(k) if isinstance(k, int) else k for k in keys]
    remat_levels(remat)  # refuse a bad value before compiling
    mesh = _mesh(devices, batch_size)

    start = time.perf_counter()
    merge, params, rest = split_solver(solver)
    from du_framework.params import learning_rates as _rates
    rates = _rates(solver)
    optimizer = make_optimizer(rates, params)
    chunk = max(1, min(chunk_size, max(stage.steps for stage in stages)))
    members = len(keys)
    if ensemble:
        params = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (members,) + leaf.shape), params)
        opt_state = jax.vmap(optimizer.init)(params)
        key = jnp.stack(keys)
    else:
        opt_state = optimizer.init(params)
        key = keys[0]
    example = (
        params, opt_state, rest, problem, key,
        np.int32(1), np.bool_(False), np.float32(1.0), np.int32(chunk),
    )
    if mesh is not None:
        example = jax.device_put(example, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
        params, opt_state, rest, problem, key = example[:5]
    graphdef = nnx.graphdef(solver)
    try:
        cache_key = (graphdef, tuple(sorted(rates.items())), batch_size, chunk, remat_levels(remat), log_loss, ensemble,
                     None if mesh is None else tuple(d.id for d in mesh.devices.flat),
                     jax.config.jax_enable_x64, _signature(example))
        hash(cache_key)
    except TypeError:  # an unhashable static attribute: compile without caching
        cache_key = None
    traces = 0
    if cache_key is not None and cache_key in _PROGRAMS:
        _PROGRAMS.move_to_end(cache_key)
        compiled, memory = _PROGRAMS[cache_key]
    else:
        def counted(*args):
            nonlocal traces
            traces += 1
            return run_chunk(*args)

        run_chunk = _make_run_chunk(merge, batch_size=batch_size, optimizer=optimizer, chunk=chunk, remat=remat,
                                    log_loss=log_loss, mesh=mesh)
        program = jax.vmap(counted, in_axes=(0, 0, None, None, 0, None, None, None, None)) if ensemble else counted
        compiled = jax.jit(program).lower(*example).compile(compiler_options=_compiler_options())
        memory = _program_bytes(compiled)
        if cache_key is not None:
            _PROGRAMS[cache_key] = (compiled, memory)
            while len(_PROGRAMS) > _PROGRAM_CACHE_SIZE:
                _PROGRAMS.popitem(last=False)
    compile_seconds = time.perf_counter() - start

    losses: list[np.ndarray] = []
    stage_losses: list[np.ndarray] = []
    name = label or solver.name
    bar = _progress(sum(stage.steps for stage in stages), name + (f" x{members}" if ensemble else ""), progress)
    try:
        for stage_number, stage in enumerate(stages, 1):
            done = 0
            last = None
            bar.set_postfix_str(f"stage {stage_number}/{len(stages)}, depth {stage.active_depth}", refresh=False)
            while done < stage.steps:
                n_valid = min(chunk, stage.steps - done)
                params, opt_state, key, failed, fail_at, chunk_losses = compiled(
                    params, opt_state, rest, problem, key,
                    np.int32(stage.active_depth), np.bool_(stage.train == "newest"),
                    np.float32(stage.lr_scale), np.int32(n_valid),
                )
                failed = np.atleast_1d(np.asarray(failed))
                if failed.any():
                    member = int(np.argmax(failed))
                    at = int(np.atleast_1d(np.asarray(fail_at))[member])
                    step = done + at + 1
                    mine = (lambda tree: jax.tree.map(lambda leaf: leaf[member], tree)) if ensemble else (lambda t: t)
                    history = np.concatenate([np.atleast_2d(part)[member] for part in losses]
                                             + [np.atleast_2d(np.asarray(chunk_losses))[member][:at]])
                    who = f"{name!r}" + (f" (ensemble member {member}, of {members})" if ensemble else "")
                    raise TrainingDivergedError(
                        f"training of {who} diverged: the loss or a parameter "
                        f"became non-finite at stage {stage_number} of {len(stages)} (active depth "
                        f"{stage.active_depth}), step {step} of {stage.steps}; the last good "
                        f"parameters are kept. Try a smaller learning rate or initial step size.",
                        stage=stage_number, step=step, solver=merge(mine(params), rest), history=history,
                    )
                last = np.asarray(chunk_losses)[..., :n_valid]
                losses.append(last)
                done += n_valid
                bar.update(n_valid)
            if last is not None:
                stage_losses.append(last)
    finally:
        bar.close()
    jax.block_until_ready(params)
    train_seconds = time.perf_counter() - start

    def result(member_params, pick):
        history = np.concatenate([pick(part) for part in losses]) if losses else np.zeros(0)
        return TrainResult(
            solver=merge(member_params, rest),
            losses=history,
            stage_losses=[float(np.mean(pick(last))) for last in stage_losses],
            train_seconds=train_seconds,
            compile_seconds=compile_seconds,
            compilations=traces,
            program_bytes=memory,
        )

    if mesh is not None:  # hand back plain arrays on this process's first device
        params = jax.device_put(params, jax.local_devices()[0])
        rest = jax.device_put(rest, jax.local_devices()[0])
    if not ensemble:
        return [result(params, lambda history: history)]
    return [result(jax.tree.map(lambda leaf: leaf[i], params), lambda history, i=i: history[i]) for i in range(members)]


def _compiler_options() -> dict | None:
    """XLA options for the training program.

    On CPU, LLVM's -O1 (``xla_backend_optimization_level=1``) compiles the
    reference program about 15% faster and runs it no slower (about 10% faster
    at n=50, the same at n=500; benchmarks/results, docs/performance.md). Other
    backends keep XLA's defaults.
    """
    return {"xla_backend_optimization_level": 1} if jax.default_backend() == "cpu" else None


def _program_bytes(compiled) -> int | None:
    """Memory the compiled program needs (XLA's estimate: arguments, outputs and temporaries)."""
    try:
        stats = compiled.memory_analysis()
        return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
                   - stats.alias_size_in_bytes)
    except Exception:  # a backend without the analysis
        return None


def _make_run_chunk(merge, *, batch_size, optimizer, chunk, remat, log_loss, mesh):
    """The jitted unit of work: ``chunk`` optimiser steps as one ``lax.scan``."""
    if mesh is not None:
        split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))

        def shard(instance):
            return jax.tree.map(
                lambda leaf: jax.lax.with_sharding_constraint(leaf, split)
                if jnp.ndim(leaf) and leaf.shape[0] == batch_size else leaf, instance)
    else:
        def shard(instance):
            return instance

    def run_chunk(params, opt_state, rest, problem, key, active_depth, newest_only, lr_scale, n_valid):
        def loss_fn(params, instance):
            module = merge(params, rest)
            x, _ = unroll(module, problem, instance, active_depth, remat=remat)
            loss = problem.loss(x, instance)
            return (jnp.log(jnp.maximum(loss, jnp.finfo(loss.dtype).tiny)) if log_loss else loss), loss

        masks = _slot_masks(params, active_depth, newest_only)

        def one_step(carry, i):
            params, opt_state, key, failed, fail_at = carry
            key, sample_key = jax.random.split(key)
            # The predicate must not depend on `failed`: under vmap (ensembles) a per-member
            # predicate turns every lax.cond below it into a select that runs both branches,
            # and inactive iterations would no longer be skipped.
            live = i < n_valid

            def apply(operand):
                params, opt_state = operand
                instance = shard(problem.sample(sample_key, batch_size))
                (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, instance)
                grads = _masked(masks, grads)
                updates, new_opt_state = optimizer.update(grads, opt_state, params)
                updates = _masked(masks, updates, lr_scale)
                new_params = optax.apply_updates(params, updates)
                state_masks = optax.tree_utils.tree_map_params(
                    optimizer, lambda _, m: m, new_opt_state, masks,
                    transform_non_params=lambda _: jnp.array(True),
                )
                new_opt_state = jax.tree.map(jnp.where, state_masks, new_opt_state, opt_state)
                ok = jnp.isfinite(loss) & _all_finite(new_params)
                kept = (_tree_where(ok, new_params, params), _tree_where(ok, new_opt_state, opt_state))
                return kept, loss, ok

            def skip(operand):
                return operand, jnp.array(jnp.nan, jnp.float32), jnp.array(True)

            (new_params, new_opt_state), loss, ok = jax.lax.cond(live, apply, skip, (params, opt_state))
            params = _tree_where(failed, params, new_params)  # a failed run stays where it failed
            opt_state = _tree_where(failed, opt_state, new_opt_state)
            newly_failed = live & ~failed & ~ok
            fail_at = jnp.where(newly_failed & (fail_at < 0), i, fail_at)
            failed = failed | newly_failed
            return (params, opt_state, key, failed, fail_at), loss.astype(jnp.float32)

        carry = (params, opt_state, key, jnp.array(False), jnp.array(-1, jnp.int32))
        (params, opt_state, key, failed, fail_at), losses = jax.lax.scan(
            one_step, carry, jnp.arange(chunk, dtype=jnp.int32)
        )
        return params, opt_state, key, failed, fail_at, losses

    return run_chunk


def _masked(masks, tree, scale=1.0):
    """``scale * tree`` where the mask is set, exactly zero elsewhere (NaN-safe)."""
    return jax.tree.map(lambda m, value: jnp.where(m, value * scale, 0), masks, tree)


class _NoBar:
    def update(self, n):
        pass

    def set_postfix_str(self, text, refresh=True):
        pass

    def close(self):
        pass


def _progress(total: int, label: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"training {label}", unit="step", leave=False)


def evaluate(solver, problem, *, key, batch_size: int = 100, batches: int = 10, metrics=None) -> dict:
    """Every metric of ``problem`` after each iteration t = 1..depth, on shared fresh instances."""
    from du_framework.metrics import metric_table
    solver.check_problem(problem)
    if isinstance(key, int):
        key = jax.random.key(key)
    merge, params, rest = split_solver(solver)
    table = metric_table(problem)
    metrics = {n: table[n] for n in (metrics or table)}

    @jax.jit
    def curve(params, rest, problem, key):
        module = merge(params, rest)

        def one_batch(total, batch_key):
            instance = problem.sample(batch_key, batch_size)
            record = lambda x: {name: jnp.stack(m.statistics(x, instance)) for name, m in metrics.items()}
            _, recorded = unroll(module, problem, instance, record=record)
            return jax.tree.map(jnp.add, total, recorded), None

        zeros = {name: jnp.zeros((solver.depth, 2), jnp.float32) for name in metrics}
        total, _ = jax.lax.scan(one_batch, zeros, jax.random.split(key, batches))
        return total

    totals = curve(params, rest, problem, key)
    return {name: m.finish(np.asarray(totals[name][:, 0]), np.asarray(totals[name][:, 1])) for name, m in metrics.items()}
