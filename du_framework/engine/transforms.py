"""Optimiser pieces, as optax transformations around whatever optimiser is chosen.

* :func:`freeze_slots` wraps an optimiser so that parameter slots outside a
  boolean mask get zero gradient, zero update and an unchanged optimiser state
  (Adam moments included): a frozen slot never drifts on stale momentum.
* :func:`skip_nonfinite` wraps an optimiser so that a step whose gradient,
  update, new parameters or loss value is not finite is not applied (zero
  update, unchanged state) and is recorded in its state.
* :func:`latch_nonfinite` is the divergence latch: like :func:`skip_nonfinite`
  for the first such step, after which every update is zero and the state no
  longer changes; its state says whether, and at which update, that happened
  (the engine's host loop reads it to report the stage and step).
* :func:`build_optimizer` makes the run's optimiser from the settings: any optax
  optimiser by name with its options, an optional learning-rate schedule, one
  learning rate per parameter group, wrapped in :func:`freeze_slots` and
  :func:`latch_nonfinite`.

Both wrappers take their per-step inputs as optax "extra args"
(``slot_mask=...``, ``value=...``), so they compose with any optax optimiser.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..errors import ConfigError, nearest

__all__ = ["freeze_slots", "skip_nonfinite", "SkipNonFiniteState", "latch_nonfinite", "LatchState", "restart_inner",
           "slot_mask", "build_optimizer", "parameter_labels",
           "check_optimizer_settings", "optimizer_names", "all_finite"]


def all_finite(tree: Any) -> jax.Array:
    """Whether every leaf of ``tree`` is finite (a scalar bool array)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def slot_mask(params: Any, active_depth: jax.Array, newest_only: jax.Array) -> Any:
    """Boolean masks shaped like each leaf: the slots used by ``active_depth`` iterations.

    Slot ``s`` of a parameter with ``P`` slots is used when ``s < min(active_depth, P)``;
    with ``newest_only``, only the slot of the last active iteration, ``(active_depth - 1) mod P``.
    """

    def mask(leaf):
        if leaf.ndim == 0:  # one value shared by every iteration: always in use
            return jnp.array(True)
        slots = leaf.shape[0]
        index = jnp.arange(slots)
        used = index < jnp.minimum(active_depth, slots)
        newest = index == (active_depth - 1) % slots
        chosen = jnp.where(newest_only, newest, used)
        return jnp.broadcast_to(chosen.reshape((slots,) + (1,) * (leaf.ndim - 1)), leaf.shape)

    return jax.tree.map(mask, params)


def _where(mask, new, old):
    return jax.tree.map(lambda m, a, b: jnp.where(m, a, b), mask, new, old)


def freeze_slots(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """``inner`` restricted to the slots where ``slot_mask`` (an extra arg, a tree of bools) is set.

    Masked-out entries get a zero gradient into ``inner``, a zero update out of
    it, and keep their optimiser state exactly; the other entries behave as
    under ``inner`` alone. Without ``slot_mask`` every slot trains. ``scale``
    (an extra arg, e.g. a stage's learning-rate factor; or a tree shaped like the
    updates, one factor per leaf) multiplies the updates.
    """
    inner = optax.with_extra_args_support(inner)

    def update(updates, state, params=None, *, slot_mask=None, scale=None, **extra):
        if slot_mask is None:
            slot_mask = jax.tree.map(lambda u: jnp.ones(jnp.shape(u), bool), updates)
        zero = jax.tree.map(jnp.zeros_like, updates)
        new_updates, new_state = inner.update(_where(slot_mask, updates, zero), state, params, **extra)
        if scale is not None and jax.tree.structure(scale) == jax.tree.structure(new_updates):
            new_updates = jax.tree.map(lambda u, factor: u * factor, new_updates, scale)  # one factor per leaf
        elif scale is not None:
            new_updates = jax.tree.map(lambda u: u * scale, new_updates)
        new_updates = _where(slot_mask, new_updates, zero)
        # A state leaf shaped like its parameter keeps its frozen slots; one of another shape (a factored
        # or per-leaf statistic) cannot be split by slot and moves only while some slot of it trains.
        state_mask = optax.tree_utils.tree_map_params(
            inner, lambda leaf, m: m if jnp.shape(leaf) == m.shape else jnp.any(m), new_state, slot_mask,
            transform_non_params=lambda _: jnp.array(True))
        new_state = jax.tree.map(jnp.where, state_mask, new_state, state)
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(inner.init, update)


def _finite_step(updates, new_updates, params, value) -> jax.Array:
    ok = all_finite(updates) & all_finite(new_updates)
    if params is not None:
        ok = ok & all_finite(optax.apply_updates(params, new_updates))
    if value is not None:
        ok = ok & jnp.all(jnp.isfinite(value))
    return ok


class SkipNonFiniteState(NamedTuple):
    """State of :func:`skip_nonfinite`: the inner state, whether the last step applied, skips so far."""

    inner: Any
    last_ok: jax.Array
    skipped: jax.Array


def skip_nonfinite(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """Skip (zero update, unchanged state) a step whose gradient, update, new parameters or ``value`` is not finite.

    ``value`` (an extra arg, e.g. the loss) is checked when given; ``params``
    must be given to check the new parameters. The state records whether the
    last step was applied (``last_ok``) and how many were skipped.
    """
    inner = optax.with_extra_args_support(inner)

    def init(params):
        return SkipNonFiniteState(inner.init(params), jnp.array(True), jnp.array(0, jnp.int32))

    def update(updates, state, params=None, *, value=None, **extra):
        new_updates, new_inner = inner.update(updates, state.inner, params, **extra)
        ok = _finite_step(updates, new_updates, params, value)
        new_updates = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), new_updates)
        new_inner = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_inner, state.inner)
        return new_updates, SkipNonFiniteState(new_inner, ok, state.skipped + (~ok).astype(jnp.int32))

    return optax.GradientTransformationExtraArgs(init, update)


class LatchState(NamedTuple):
    """State of :func:`latch_nonfinite`.

    Attributes:
        inner: the wrapped optimiser's state (as it was before the latching update, once latched).
        count: updates applied so far (int32).
        diverged: whether an update was not finite (bool): the latch is set.
        diverged_at: when set, the 0-based index of that update, i.e. ``count`` then (int32; 0 until set).
    """

    inner: Any
    count: jax.Array
    diverged: jax.Array
    diverged_at: jax.Array


def latch_nonfinite(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """A divergence latch around ``inner`` (compare ``optax.apply_if_finite``, which never gives up).

    Each update of ``inner`` is applied while the gradient, the update, the new
    parameters (when ``params`` is given) and ``value`` (an extra arg, e.g. the
    loss, when given) are finite. The first time one is not, the update is zero,
    the inner state is left as it was, and the latch is set: every later update is
    zero and the whole state stays as it is, so a diverged run (or ensemble
    member, under ``jax.vmap``) is frozen at its last good parameters. The state
    (:class:`LatchState`) records whether and at which update this happened.
    """
    inner = optax.with_extra_args_support(inner)

    def init(params):
        return LatchState(inner.init(params), jnp.array(0, jnp.int32), jnp.array(False), jnp.array(0, jnp.int32))

    def update(updates, state, params=None, *, value=None, **extra):
        new_updates, new_inner = inner.update(updates, state.inner, params, **extra)
        ok = _finite_step(updates, new_updates, params, value) & ~state.diverged
        new_updates = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), new_updates)
        new_inner = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_inner, state.inner)
        latches = ~ok & ~state.diverged
        return new_updates, LatchState(new_inner, state.count + ok.astype(jnp.int32), state.diverged | latches,
                                       jnp.where(latches, state.count, state.diverged_at))

    return optax.GradientTransformationExtraArgs(init, update)


def restart_inner(fresh: LatchState, state: LatchState, restart: jax.Array) -> LatchState:
    """``state`` with its inner optimiser state replaced by ``fresh``'s where ``restart`` is set and the
    latch is not (a stage that restarts the optimiser; the count and the latch go on)."""
    renew = restart & ~state.diverged
    return state._replace(inner=jax.tree.map(lambda a, b: jnp.where(renew, a, b), fresh.inner, state.inner))


# Take a learning rate but do not fit the engine: building blocks, optimisers that need a value function
# (lbfgs, polyak_sgd) or a PRNG key per step (noisy_sgd), sm3, whose state optax cannot map to parameters,
# and optimistic_adam, deprecated by optax for optimistic_adam_v2.
_NOT_OPTIMIZERS = ("inject_hyperparams", "scale_by_learning_rate", "scale_by_rprop", "lbfgs", "polyak_sgd",
                   "noisy_sgd", "sm3", "optimistic_adam")


@functools.cache
def optimizer_names() -> tuple[str, ...]:
    """Names of the optax optimisers that take a ``learning_rate`` (``adam``, ``sgd``, ...)."""
    names = []
    for name in dir(optax):
        factory = getattr(optax, name)
        if name.startswith("_") or not inspect.isfunction(factory) or name.endswith("_schedule"):
            continue
        try:
            parameters = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            continue
        if "learning_rate" in parameters and name not in _NOT_OPTIMIZERS:
            names.append(name)
    return tuple(sorted(names))


def _keyword_check(factory, options: dict, what: str, given: str, skip: tuple[str, ...] = ()) -> None:
    parameters = inspect.signature(factory).parameters
    accepted = [p for p in parameters if p not in skip]
    for key in options:
        if key not in accepted:
            hint = nearest(key, accepted)
            raise ConfigError(f"{given}: {what} takes no option {key!r}"
                              + (f" (did you mean {hint!r}?)" if hint else "")
                              + f"; its options: {', '.join(accepted) or '(none)'}")


# optax.schedules' functions that are not a schedule of their own, and the one the "constant" setting covers.
_NOT_SCHEDULES = ("inject_hyperparams", "inject_stateful_hyperparams", "join_schedules", "constant_schedule")


def _schedules() -> dict[str, Any]:
    """The learning-rate schedules by name (optax's, without the ``_schedule`` suffix)."""
    found = {}
    for name in dir(optax.schedules):
        factory = getattr(optax.schedules, name)
        if not name.startswith("_") and inspect.isfunction(factory) and name not in _NOT_SCHEDULES:
            found[name.removesuffix("_schedule")] = factory
    return found


def _schedule_factory(name: str):
    return _schedules().get(name.removesuffix("_schedule"))


def _schedule_names() -> list[str]:
    return ["constant"] + sorted(_schedules())


def check_optimizer_settings(settings) -> None:
    """Refuse an unknown optimiser or schedule, or options they do not take or cannot use (:class:`ConfigError`).

    The optimiser is built and takes one step on a small example, so that a bad
    option value is refused here, with the key named, not inside the compiled program.
    """
    _check_names(settings)
    example = {"p": jax.ShapeDtypeStruct((2, 1), jnp.float32)}  # abstract: nothing is compiled
    try:
        optimizer = _base_optimizer(settings)
        jax.eval_shape(lambda p: optimizer.update(p, optimizer.init(p), p), example)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - optax raises what the option's misuse raises
        raise ConfigError(f"train.optimizer = {settings.optimizer!r} cannot be used with optimizer_options "
                          f"{settings.optimizer_options} and lr_schedule {settings.lr_schedule!r} "
                          f"{settings.lr_schedule_options}: {type(error).__name__}: {error}") from None


def _check_names(settings) -> None:
    if settings.optimizer not in optimizer_names():
        hint = nearest(settings.optimizer, optimizer_names())
        raise ConfigError(f"train.optimizer: unknown optax optimiser {settings.optimizer!r}"
                          + (f" (did you mean {hint!r}?)" if hint else "")
                          + f"; known: {', '.join(optimizer_names())}")
    _keyword_check(getattr(optax, settings.optimizer), settings.optimizer_options, f"optax.{settings.optimizer}",
                   "train.optimizer_options", skip=("learning_rate",))
    if settings.lr_schedule != "constant":
        factory = _schedule_factory(settings.lr_schedule)
        if factory is None:
            hint = nearest(settings.lr_schedule, _schedule_names())
            raise ConfigError(f"train.lr_schedule: unknown schedule {settings.lr_schedule!r}"
                              + (f" (did you mean {hint!r}?)" if hint else "")
                              + f"; known: {', '.join(_schedule_names())}")
        _keyword_check(factory, settings.lr_schedule_options, f"optax.{factory.__name__}", "train.lr_schedule_options")
    elif settings.lr_schedule_options:
        raise ConfigError("train.lr_schedule_options is set but train.lr_schedule is 'constant'; "
                          "name a schedule (for example cosine_decay) or drop the options")


def _relative_schedule(settings):
    """The learning-rate multiplier over steps (1.0 for a constant rate)."""
    if settings.lr_schedule == "constant":
        return 1.0
    factory = _schedule_factory(settings.lr_schedule)
    options = dict(settings.lr_schedule_options)
    parameters = inspect.signature(factory).parameters
    # The schedule multiplies each group's rate, so its level is 1: the peak of a schedule that has
    # one (a warmup starts from the init_value the user gives), else its initial value.
    level = "peak_value" if "peak_value" in parameters else "init_value"
    if level in parameters and level not in options:
        options[level] = 1.0
    try:
        return factory(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"train.lr_schedule_options for {settings.lr_schedule}: {error} (the schedule multiplies "
                          f"each group's rate: {level} is 1 unless given; the other arguments are optax's)") from None


def _base_optimizer(settings) -> optax.GradientTransformation:
    """The named optax optimiser at learning rate 1 (times the schedule)."""
    schedule = _relative_schedule(settings)
    try:
        return getattr(optax, settings.optimizer)(learning_rate=schedule, **settings.optimizer_options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"train.optimizer_options for {settings.optimizer}: {error}") from None


def parameter_labels(params: dict, prefix: str = "") -> dict:
    """``params`` (a nested dict) with every leaf replaced by its dotted path, the key of its rate."""
    return {key: parameter_labels(value, f"{prefix}{key}.") if isinstance(value, dict) else f"{prefix}{key}"
            for key, value in params.items()}


_labels = parameter_labels


def build_optimizer(settings, rates: dict[str, float], params: dict) -> optax.GradientTransformationExtraArgs:
    """The run's optimiser: ``latch_nonfinite(freeze_slots(chain(<optimiser>, <per-group rates>)))``.

    The optax optimiser runs at learning rate 1 (times the schedule), and each
    parameter is then scaled by its own rate (``rates``, by dotted path), which
    is the book's one-optimiser-per-group recipe (for Adam, exactly equal).

    Raises:
        ConfigError: unknown optimiser or schedule, or bad options.
        ValueError: a parameter without a rate.
    """
    _check_names(settings)
    labels = _labels(params)
    missing = set(jax.tree.leaves(labels)) - set(rates)
    if missing:
        raise ValueError(f"no learning rate given for parameter(s) {sorted(missing)}")
    base = _base_optimizer(settings)
    groups = {path: optax.scale(float(rate)) for path, rate in rates.items()}
    return latch_nonfinite(freeze_slots(optax.chain(base, optax.multi_transform(groups, labels))))
