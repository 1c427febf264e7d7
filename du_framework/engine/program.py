"""The compiled training program: a chunk of optimiser steps as one ``lax.scan``.

One module-level function is jitted with its structure static (:class:`ProgramSpec`:
the solver's graph, the learning rates, the training settings that shape the
program, the device mesh), so JAX's own jit cache serves every later call with
the same structure and shapes: across stages (the active depth, the trained
slots, the learning-rate scale, the number of valid steps and an optimiser
restart are traced arguments) and across ``train`` calls. On CPU it is compiled
at LLVM -O1, which compiles faster and runs no slower on these programs.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ..errors import ConfigError
from ..metrics import metric_table
from .settings import TrainSettings
from .transforms import build_optimizer, parameter_labels, restart_inner, slot_mask
from .unroll import unroll

__all__ = ["ProgramSpec", "run_chunk", "traces", "make_mesh", "clear_program_cache", "training_loss",
           "check_loss_weights", "iteration_weights"]

# How often each program structure was traced (a trace precedes every compilation).
_TRACES: collections.Counter = collections.Counter()

_DICT_SETTINGS = ("optimizer_options", "lr_schedule_options")


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((key, _freeze(item)) for key, item in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """Everything static about a training program (hashable; the jit cache key with the shapes)."""

    graphdef: Any
    rates: tuple[tuple[str, float], ...]
    settings_items: tuple[tuple[str, Any], ...]
    batch_size: int
    chunk: int
    ensemble: bool
    mesh: Any = None
    member_rates: bool = False  # an ensemble whose members scale the learning rates by their own factors

    @classmethod
    def make(cls, graphdef, rates: dict[str, float], settings: TrainSettings, *, chunk: int, ensemble: bool,
             mesh=None, member_rates: bool = False) -> "ProgramSpec":
        shaping = {f.name: _freeze(getattr(settings, f.name)) for f in dataclasses.fields(settings)
                   if f.name not in ("schedule", "depth", "steps_per_stage", "seed", "seeds", "chunk_size", "devices")}
        return cls(graphdef, tuple(sorted(rates.items())), tuple(sorted(shaping.items())), settings.batch_size,
                   chunk, ensemble, mesh, member_rates)

    def settings(self) -> TrainSettings:
        values = dict(self.settings_items)
        for key in _DICT_SETTINGS:
            values[key] = {k: v for k, v in values[key]}
        return TrainSettings(**values)


def traces(spec: ProgramSpec) -> int:
    """How many times the program of ``spec`` has been traced in this process."""
    return _TRACES[spec]


def make_mesh(devices: int, batch_size: int):
    """A one-axis ``Mesh`` ("batch") over ``devices`` devices, or ``None`` for one device.

    ``devices = 0`` means every device, of every process when several train together
    (:mod:`.distributed`); there a mesh must span every process, so only 0 or the
    global device count is accepted.

    Raises:
        ConfigError: more devices than exist, a mesh that leaves out a process, or a
            batch that does not split evenly.
    """
    processes = jax.process_count()
    if devices == 1 and processes == 1:
        return None
    available = jax.devices()
    count = len(available) if devices == 0 else devices
    if devices < 0 or count > len(available):
        raise ConfigError(
            f"train.devices = {devices} but {len(available)} device(s) are available "
            f"({available[0].platform}); use 1..{len(available)} or 0 for all. On CPU, "
            f"XLA_FLAGS=--xla_force_host_platform_device_count=N makes N devices")
    if processes > 1 and count != len(available):
        raise ConfigError(
            f"train.devices = {devices} but {processes} processes train together on {len(available)} devices: "
            f"every process must take part, so use train.devices = 0 (all of them)")
    if batch_size % count:
        raise ConfigError(f"train.batch_size {batch_size} cannot be split over {count} devices: "
                          f"use a multiple of {count}")
    return jax.sharding.Mesh(np.array(available[:count]), ("batch",))


def training_loss(problem, loss_name: str):
    """The training loss ``(estimate, instance) -> scalar``: the problem's own, or one of its metrics.

    A metric is trained on as ``mean(per_instance) / mean(normalizer)`` (its dB
    scale, a monotone map, is left out).

    Raises:
        ConfigError: ``loss_name`` is not a metric of the problem.
    """
    if not loss_name:
        return problem.loss
    table = metric_table(problem)
    if loss_name not in table:
        raise ConfigError(f"train.loss = {loss_name!r} is not a metric of problem {problem.name!r}; "
                          f"use one of: {', '.join(table)} (or leave it empty for the problem's own loss)")
    metric = table[loss_name]
    if not metric.lower_is_better:
        raise ConfigError(f"train.loss = {loss_name!r}: higher is better for this metric, and training minimises "
                          f"its loss; name a metric where lower is better, or leave it empty")

    def loss(estimate, instance):
        total, normal = metric.statistics(estimate, instance)
        return total / normal

    return loss


def check_loss_weights(settings: TrainSettings, depth: int, stages) -> None:
    """Refuse ``settings.loss_weights`` that cannot weight this run's iterations.

    Raises:
        ConfigError: an unknown word, a negative or non-finite weight, all zeros,
            a list whose length is not the solver's depth ``depth`` (one weight per
            iteration), or a stage whose active iterations all have weight zero.
    """
    try:
        settings.validate()
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None
    weights = settings.loss_weights
    if isinstance(weights, str):
        return
    if len(weights) != depth:
        raise ConfigError(f"train.loss_weights has {len(weights)} weights but the solver is unrolled to D = {depth} "
                          f"iterations: give {depth} (one per iteration), or 'final', 'all' or 'linear'")
    for number, stage in enumerate(stages, 1):
        active = stage.active_depth
        if not any(weights[:active]):
            span = f"iterations 1..{active}, the active ones" if active > 1 else "iteration 1, the active one"
            raise ConfigError(f"train.loss_weights gives {span} of stage {number}, no weight (the stage would train "
                              f"on nothing): give one of the first {active} weights a value > 0, or use a schedule "
                              f"whose stages reach a weighted iteration")


def iteration_weights(loss_weights: str | tuple[float, ...], depth: int, active_depth) -> jax.Array | None:
    """The weight of the loss after each iteration ``t = 1..depth``, or ``None`` for ``"final"``.

    Shape ``(depth,)``, float32: zero beyond ``active_depth`` (which may be traced) and
    summing to 1 over ``1..active_depth``: ``"all"`` is ``1 / active``, ``"linear"``
    ``t / (active (active + 1) / 2)``, a list its first ``active`` entries over their sum.
    """
    if loss_weights == "final":
        return None
    t = jnp.arange(1, depth + 1, dtype=jnp.float32)
    if loss_weights == "all":
        raw = jnp.ones_like(t)
    elif loss_weights == "linear":
        raw = t
    else:
        raw = jnp.asarray(loss_weights, jnp.float32)
    raw = jnp.where(t <= active_depth, raw, 0.0)
    return raw / jnp.sum(raw)


def _tree_where(condition, new, old):
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), new, old)


def _chunk_body(param_state, opt_state, rest, problem, key, active_depth, newest_only, lr_scale, n_valid, restart,
                rate_factors,
                *, spec: ProgramSpec):
    settings = spec.settings()
    params = nnx.to_pure_dict(param_state)
    optimizer = build_optimizer(settings, dict(spec.rates), params)
    loss_of = training_loss(problem, settings.loss)
    def merge(params):
        state = jax.tree.map(lambda leaf: leaf, param_state)  # a fresh container
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(spec.graphdef, state, rest)

    weights = iteration_weights(settings.loss_weights, merge(params).depth, active_depth)

    def scored(loss):
        loss = jnp.asarray(loss, jnp.float32)  # the loss history is float32 whatever the problem
        return (jnp.log(jnp.maximum(loss, jnp.finfo(loss.dtype).tiny)) if settings.log_loss else loss), loss

    def weighted(per_iteration):  # the weighted sum of the losses after iterations 1..depth, inactive ones masked
        terms = weights.astype(per_iteration.dtype) * per_iteration
        return jnp.sum(jnp.where(weights > 0, terms, jnp.zeros_like(terms)))

    def score(x, instance):  # x: the final estimate, or (weighted) the estimates stacked by iteration
        if weights is None:
            return scored(loss_of(x, instance))
        return scored(weighted(jax.vmap(lambda xt: jnp.asarray(loss_of(xt, instance)))(x)))

    def loss_fn(params, instance):
        if weights is None:  # "final": the loss of the final estimate
            x, _ = unroll(merge(params), problem, instance, active_depth, remat=settings.remat,
                          truncate=settings.truncation(), implicit=settings.implicit(), unroll=settings.unroll)
            return score(x, instance)
        # The loss of every iterate, computed inside the unroll's scan (masked beyond the active depth by its weight).
        _, per_iteration = unroll(merge(params), problem, instance, active_depth, remat=settings.remat,
                                  truncate=settings.truncation(), record=lambda x: jnp.asarray(loss_of(x, instance)),
                                  unroll=settings.unroll)
        return scored(weighted(per_iteration))

    def loss_and_grad(params, instance):
        if spec.mesh is None:
            (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, instance)
            return loss, grads
        return _split_loss_and_grad(params, instance, problem, active_depth, merge, score, spec, settings,
                                    stacked=weights is not None)

    masks = slot_mask(params, active_depth, newest_only)
    # The stage's rate factor times each parameter group's own factor (1 unless the members of an
    # ensemble scale their learning rates: the update of every offered optimiser is linear in its rate).
    scale = jax.tree.map(lambda label: lr_scale * rate_factors[label], parameter_labels(params))
    # A restart renews the optimiser's own state; the divergence latch (and its count) goes on.
    opt_state = restart_inner(optimizer.init(params), opt_state, restart)

    def one_step(carry, i):
        params, opt_state, key = carry
        key, sample_key = jax.random.split(key)
        # The predicate must not depend on the latch: under vmap (ensembles) a per-member
        # predicate turns every lax.cond below it into a select that runs both branches,
        # and inactive iterations would no longer be skipped.
        live = i < n_valid

        def apply(operand):
            params, opt_state = operand
            instance = problem.sample(sample_key, spec.batch_size)
            loss, grads = loss_and_grad(params, instance)
            updates, new_opt_state = optimizer.update(grads, opt_state, params, slot_mask=masks, scale=scale,
                                                      value=loss)
            # A latched run stays exactly where it was (its update is zero; this keeps every bit).
            new_params = _tree_where(new_opt_state.diverged, params, optax.apply_updates(params, updates))
            return (new_params, new_opt_state), loss

        def skip(operand):
            return operand, jnp.array(jnp.nan, jnp.float32)

        (params, opt_state), loss = jax.lax.cond(live, apply, skip, (params, opt_state))
        return (params, opt_state, key), loss.astype(jnp.float32)

    (params, opt_state, key), losses = jax.lax.scan(one_step, (params, opt_state, key),
                                                    jnp.arange(spec.chunk, dtype=jnp.int32))
    out_state = jax.tree.map(lambda leaf: leaf, param_state)
    nnx.replace_by_pure_dict(out_state, params)
    outputs = out_state, opt_state, key, losses
    if spec.mesh is not None:  # every result whole on every device (and process), never split
        replicated = jax.sharding.NamedSharding(spec.mesh, jax.sharding.PartitionSpec())
        outputs = jax.lax.with_sharding_constraint(outputs, replicated)
    return outputs


def _is_batched(leaf, batch_size: int) -> bool:
    return bool(jnp.ndim(leaf)) and leaf.shape[0] == batch_size


def _split_loss_and_grad(params, instance, problem, active_depth, merge, score, spec: ProgramSpec,
                         settings: TrainSettings, stacked: bool = False):
    """The loss and its gradient with the batch split over ``spec.mesh``: two collectives per step.

    Every device draws the whole batch from the replicated key and unrolls its
    share of the instances (leaves whose leading axis is the batch); the estimates are gathered (one ``all_gather``), every device
    scores the whole batch (any loss, a ratio of means or a log included) and
    hands its share of the loss's gradient back through its own unroll; the
    parameter gradients are summed (one ``psum``). Left to the SPMD partitioner,
    the sum over the batch would be reduced across devices inside the backward
    loop, once per iteration of the unroll: tens of collectives per step, each a
    network round trip between processes. With ``stacked`` (weighted per-iteration
    losses) the estimates after every iteration are gathered, stacked along a
    leading axis, and scored together.
    """
    whole = jax.sharding.PartitionSpec()
    share = spec.batch_size // spec.mesh.size

    def per_device(params, problem, instance):
        offset = jax.lax.axis_index("batch") * share
        local = jax.tree.map(lambda leaf: jax.lax.dynamic_slice_in_dim(leaf, offset, share, axis=0)
                             if _is_batched(leaf, spec.batch_size) else leaf, instance)

        def forward(params):
            final, recorded = unroll(merge(params), problem, local, active_depth, remat=settings.remat,
                                     truncate=settings.truncation(), implicit=settings.implicit(),
                                     record=(lambda x: x) if stacked else None, unroll=settings.unroll)
            return recorded if stacked else final

        axis = 1 if stacked else 0  # the batch axis of the estimates
        x_local, pullback = jax.vjp(forward, params)
        x = jax.tree.map(lambda leaf: jax.lax.all_gather(leaf, "batch", axis=axis, tiled=True), x_local)
        (_, loss), dx = jax.value_and_grad(score, has_aux=True)(x, instance)
        (grads,) = pullback(jax.tree.map(lambda leaf: jax.lax.dynamic_slice_in_dim(leaf, offset, share, axis=axis),
                                         dx))
        return loss, jax.lax.psum(grads, "batch")

    run = jax.shard_map(per_device, mesh=spec.mesh, in_specs=(whole, whole, whole), out_specs=(whole, whole),
                        check_vma=False)
    return run(params, problem, instance)


def _entry(param_state, opt_state, rest, problem, key, active_depth, newest_only, lr_scale, n_valid, restart,
           rate_factors, *, spec: ProgramSpec):
    _TRACES[spec] += 1
    body = functools.partial(_chunk_body, spec=spec)
    if spec.ensemble:
        body = jax.vmap(body, in_axes=(0, 0, None, None, 0, None, None, None, None, None,
                                       0 if spec.member_rates else None))
    return body(param_state, opt_state, rest, problem, key, active_depth, newest_only, lr_scale, n_valid, restart,
                rate_factors)


@functools.cache
def _jitted(backend: str):
    # LLVM -O1 on CPU: about 15% faster to compile, no slower to run (docs/performance.md).
    options = {"xla_backend_optimization_level": 1} if backend == "cpu" else None
    return jax.jit(_entry, static_argnames=("spec",), compiler_options=options)


def run_chunk(*args, spec: ProgramSpec):
    """Run (compiling on first use) the program of ``spec`` on ``args``; see :func:`_chunk_body`."""
    return _jitted(jax.default_backend())(*args, spec=spec)


def lower_chunk(*args, spec: ProgramSpec):
    """The lowered program (for memory analysis); compiling it does not run it."""
    return _jitted(jax.default_backend()).lower(*args, spec=spec)


def clear_program_cache() -> None:
    """Forget every compiled training program (the next call compiles again)."""
    if _jitted.cache_info().currsize:
        _jitted(jax.default_backend()).clear_cache()
    _TRACES.clear()
