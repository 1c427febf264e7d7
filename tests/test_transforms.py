"""The engine's optax transformations, each tested alone and across a table of optimisers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from du_framework.engine import TrainSettings, build_optimizer, freeze_slots, skip_nonfinite
from du_framework import ConfigError
from du_framework.engine.transforms import (LatchState, check_optimizer_settings, latch_nonfinite, optimizer_names,
                                             restart_inner, slot_mask)

OPTIMIZERS = {
    "adam": lambda: optax.adam(0.1),
    "sgd-momentum": lambda: optax.sgd(0.1, momentum=0.9),
    "rmsprop": lambda: optax.rmsprop(0.1),
    "lion": lambda: optax.lion(0.1),
    "adamw": lambda: optax.adamw(0.1, weight_decay=0.1),
}


def params():
    return {"eta": jnp.array([1.0, 2.0, 3.0]), "inner": {"w": jnp.ones((3, 2))}}


def grads(scale=1.0):
    return {"eta": jnp.array([0.5, -0.25, 1.0]) * scale, "inner": {"w": jnp.full((3, 2), 0.3) * scale}}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_frozen_slots_get_no_update_and_keep_their_state(name):
    optimizer = freeze_slots(OPTIMIZERS[name]())
    p = params()
    state = optimizer.init(p)
    # Build momentum on every slot, then freeze slot 2.
    for _ in range(3):
        updates, state = optimizer.update(grads(), state, p)
        p = optax.apply_updates(p, updates)
    mask = slot_mask(p, jnp.int32(2), jnp.bool_(False))
    updates, new_state = optimizer.update(grads(), state, p, slot_mask=mask)
    assert float(updates["eta"][2]) == 0.0 and np.all(np.asarray(updates["inner"]["w"][2]) == 0)
    assert np.all(np.asarray(updates["eta"][:2]) != 0)
    # Every parameter-shaped leaf of the state is unchanged at the frozen slot, changed elsewhere.
    for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
        if np.shape(old) == (3,):
            assert float(old[2]) == float(new[2])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_with_every_slot_unmasked_the_wrapper_is_the_optimizer(name):
    plain, wrapped = OPTIMIZERS[name](), freeze_slots(OPTIMIZERS[name]())
    p = params()
    a, b = plain.init(p), wrapped.init(p)
    for step in range(3):
        ua, a = plain.update(grads(step + 1), a, p)
        ub, b = wrapped.update(grads(step + 1), b, p, slot_mask=jax.tree.map(lambda x: jnp.ones(x.shape, bool), p))
        for x, y in zip(jax.tree.leaves(ua), jax.tree.leaves(ub)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_newest_only_masks_all_but_the_last_active_slot():
    mask = slot_mask({"eta": jnp.zeros(4), "lam": jnp.zeros(1)}, jnp.int32(3), jnp.bool_(True))
    assert np.asarray(mask["eta"]).tolist() == [False, False, True, False]
    assert np.asarray(mask["lam"]).tolist() == [True]  # a shared slot is always the newest


def test_the_scale_extra_arg_multiplies_the_update():
    optimizer = freeze_slots(optax.sgd(0.1))
    p = params()
    state = optimizer.init(p)
    full, _ = optimizer.update(grads(), state, p)
    half, _ = optimizer.update(grads(), state, p, scale=0.5)
    np.testing.assert_allclose(np.asarray(half["eta"]), 0.5 * np.asarray(full["eta"]))


@pytest.mark.parametrize("bad", ["grad", "value", "params"])
def test_a_non_finite_step_is_skipped_and_recorded(bad):
    optimizer = skip_nonfinite(optax.adam(0.1))
    p = params()
    state = optimizer.init(p)
    updates, state = optimizer.update(grads(), state, p, value=jnp.float32(1.0))
    assert bool(state.last_ok) and int(state.skipped) == 0
    g = grads()
    value = jnp.float32(1.0)
    if bad == "grad":
        g["eta"] = g["eta"].at[0].set(jnp.nan)
    elif bad == "value":
        value = jnp.float32(jnp.inf)
    else:
        p = {**p, "eta": p["eta"].at[1].set(jnp.inf)}
    skipped_updates, new_state = optimizer.update(g, state, p, value=value)
    assert not bool(new_state.last_ok) and int(new_state.skipped) == 1
    assert all(np.all(np.asarray(u) == 0) for u in jax.tree.leaves(skipped_updates))
    for old, new in zip(jax.tree.leaves(state.inner), jax.tree.leaves(new_state.inner)):
        np.testing.assert_array_equal(np.asarray(old), np.asarray(new))


def test_build_optimizer_scales_each_group_by_its_own_rate():
    p = {"eta": jnp.ones(2), "lam": jnp.ones(2)}
    settings = TrainSettings(optimizer="sgd")
    optimizer = build_optimizer(settings, {"eta": 0.1, "lam": 0.01}, p)
    g = {"eta": jnp.array([1.0, 2.0]), "lam": jnp.array([1.0, 2.0])}
    updates, _ = optimizer.update(g, optimizer.init(p), p)
    np.testing.assert_allclose(np.asarray(updates["eta"]), [-0.1, -0.2], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(updates["lam"]), [-0.01, -0.02], rtol=1e-6)
    with pytest.raises(ValueError, match=r"no learning rate given for parameter\(s\) \['lam'\]"):
        build_optimizer(settings, {"eta": 0.1}, p)


def test_build_optimizer_adam_equals_one_adam_per_group_scaled():
    # The book trains two groups with two Adam instances; one Adam at rate 1 then per-group scales is the same.
    p = {"eta": jnp.array([0.3, 0.4]), "lam": jnp.array([2.0])}
    optimizer = build_optimizer(TrainSettings(), {"eta": 1e-2, "lam": 1e-4}, p)
    eta_adam, lam_adam = optax.adam(1e-2), optax.adam(1e-4)
    state, se, sl = optimizer.init(p), eta_adam.init(p["eta"]), lam_adam.init(p["lam"])
    for step in range(4):
        g = {"eta": jnp.array([0.1, -0.2]) * (step + 1), "lam": jnp.array([0.05]) / (step + 1)}
        updates, state = optimizer.update(g, state, p)
        ue, se = eta_adam.update(g["eta"], se)
        ul, sl = lam_adam.update(g["lam"], sl)
        np.testing.assert_allclose(np.asarray(updates["eta"]), np.asarray(ue), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(updates["lam"]), np.asarray(ul), rtol=1e-6)


@pytest.mark.parametrize("name", optimizer_names())
def test_every_offered_optimizer_runs_under_the_wrappers_and_keeps_frozen_slots(name):
    p = {"eta": jnp.ones(4), "w": jnp.ones((4, 3)), "shared": jnp.ones(())}
    optimizer = build_optimizer(TrainSettings(optimizer=name), {"eta": 1e-2, "w": 1e-2, "shared": 1e-2}, p)
    mask = slot_mask(p, jnp.int32(2), jnp.bool_(False))

    @jax.jit
    def step(state, p):
        g = jax.tree.map(lambda leaf: leaf * 0.5 + 0.1, p)
        updates, state = optimizer.update(g, state, p, slot_mask=mask, scale=1.0, value=jnp.float32(1.0))
        return optax.apply_updates(p, updates), state

    new, state = step(optimizer.init(p), p)
    new, _ = step(state, new)  # two steps: some optimisers (rprop) take their first step from a zero history
    assert np.all(np.asarray(new["eta"][2:]) == 1.0) and np.all(np.asarray(new["w"][2:]) == 1.0)
    assert np.all(np.asarray(new["eta"][:2]) != 1.0)


def test_bad_optimizer_or_schedule_options_are_refused_before_compiling():
    with pytest.raises(ConfigError, match="train.optimizer = 'adam' cannot be used"):
        check_optimizer_settings(TrainSettings(optimizer_options={"b1": "x"}))
    with pytest.raises(ConfigError, match="train.lr_schedule_options for cosine_decay: .*decay_steps"):
        check_optimizer_settings(TrainSettings(lr_schedule="cosine_decay"))


def test_every_optax_schedule_is_offered_by_name_with_its_level_at_one():
    from du_framework.engine.transforms import _relative_schedule, _schedule_names

    names = _schedule_names()
    assert "exponential_decay" in names and "cosine_decay" in names and names.count("constant") == 1
    assert "scale_by" not in names and "join_schedules" not in names
    decay = _relative_schedule(TrainSettings(lr_schedule="exponential_decay",
                                             lr_schedule_options={"transition_steps": 10, "decay_rate": 0.5}))
    assert float(decay(0)) == 1.0 and float(decay(10)) == pytest.approx(0.5)
    warmup = _relative_schedule(TrainSettings(lr_schedule="warmup_cosine_decay",
                                              lr_schedule_options={"init_value": 0.0, "warmup_steps": 10,
                                                                   "decay_steps": 100}))
    assert float(warmup(0)) == 0.0 and float(warmup(10)) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="init_value is 1 unless given"):
        check_optimizer_settings(TrainSettings(lr_schedule="linear"))


# --- the divergence latch ---------------------------------------------------------------------------

INF, NAN = float("inf"), float("nan")


def _latched_run(steps, *, use_params=True):
    """Run latch_nonfinite(sgd(0.1)) over ``steps``: (gradient scale, value) pairs; the updates and states."""
    optimizer = latch_nonfinite(optax.sgd(0.1, momentum=0.9))
    p = params()
    state = optimizer.init(p)
    seen = []
    for scale, value in steps:
        updates, state = optimizer.update(grads(scale), state, p if use_params else None, value=value)
        p = optax.apply_updates(p, updates)
        seen.append((updates, state))
    return seen


@pytest.mark.parametrize("steps, latched_at", [
    ([(1.0, 1.0)] * 4, None),  # finite steps pass through
    ([(1.0, 1.0), (INF, 1.0), (1.0, 1.0), (1.0, 1.0)], 1),  # a non-finite gradient latches
    ([(1.0, 1.0), (1.0, 1.0), (NAN, 1.0), (1.0, 1.0)], 2),
    ([(1.0, NAN), (1.0, 1.0)], 0),  # a non-finite value (the loss) latches
    ([(1.0, 1.0), (1.0, INF), (INF, NAN), (1.0, 1.0)], 1),  # only the first non-finite step is recorded
])
def test_the_latch_passes_finite_steps_and_freezes_from_the_first_non_finite_one(steps, latched_at):
    seen = _latched_run(steps)
    reference = _latched_run(steps[:latched_at] if latched_at is not None else steps)
    for index, (updates, state) in enumerate(seen):
        if latched_at is None or index < latched_at:  # as the optimiser alone (checked against a clean run)
            for x, y in zip(jax.tree.leaves(updates), jax.tree.leaves(reference[index][0])):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
            assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(updates))
            assert not bool(state.diverged) and int(state.count) == index + 1
            continue
        assert all(not np.asarray(leaf).any() for leaf in jax.tree.leaves(updates))  # zero from then on
        assert bool(state.diverged) and int(state.diverged_at) == latched_at and int(state.count) == latched_at
        before = reference[latched_at - 1][1].inner if latched_at else None
        if before is not None:  # the inner state stays where the last good step left it
            for x, y in zip(jax.tree.leaves(state.inner), jax.tree.leaves(before)):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_latched_state_stays_bitwise_the_same():
    seen = _latched_run([(1.0, 1.0), (INF, 1.0), (1.0, 1.0), (2.0, 0.5)])
    first = seen[1][1]
    for _, later in seen[2:]:
        for x, y in zip(jax.tree.leaves(first), jax.tree.leaves(later)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_new_parameters_that_overflow_latch_only_when_params_are_given():
    optimizer = latch_nonfinite(optax.sgd(1.0))
    big = {"w": jnp.array([3e38], jnp.float32)}
    step = {"w": jnp.array([-3e38], jnp.float32)}  # update +3e38: the new parameter overflows
    _, with_params = optimizer.update(step, optimizer.init(big), big)
    _, without = optimizer.update(step, optimizer.init(big))
    assert bool(with_params.diverged) and not bool(without.diverged)


def test_a_restart_renews_the_inner_state_but_not_the_latch():
    optimizer = latch_nonfinite(optax.adam(0.1))
    p = params()
    live = optimizer.init(p)
    _, live = optimizer.update(grads(), live, p)
    _, dead = optimizer.update(grads(INF), live, p)
    fresh = optimizer.init(p)
    renewed = restart_inner(fresh, live, jnp.bool_(True))
    assert int(renewed.count) == 1 and not bool(renewed.diverged)
    for x, y in zip(jax.tree.leaves(renewed.inner), jax.tree.leaves(fresh.inner)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    kept = restart_inner(fresh, dead, jnp.bool_(True))  # a latched state is frozen whole
    for x, y in zip(jax.tree.leaves(kept), jax.tree.leaves(dead)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    unchanged = restart_inner(fresh, live, jnp.bool_(False))
    for x, y in zip(jax.tree.leaves(unchanged), jax.tree.leaves(live)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_the_latch_works_per_member_under_vmap():
    optimizer = latch_nonfinite(optax.sgd(0.1))
    p = {"w": jnp.ones((3, 2))}
    state = jax.vmap(optimizer.init)(p)
    g = {"w": jnp.array([[1.0, 1.0], [INF, 1.0], [1.0, 1.0]])}
    updates, state = jax.vmap(lambda g, s, p: optimizer.update(g, s, p))(g, state, p)
    assert np.asarray(state.diverged).tolist() == [False, True, False]
    assert np.asarray(state.count).tolist() == [1, 0, 1] and not np.asarray(updates["w"][1]).any()


def test_build_optimizer_ends_in_the_latch():
    optimizer = build_optimizer(TrainSettings(), {"eta": 0.1, "inner.w": 0.01}, params())
    state = optimizer.init(params())
    assert isinstance(state, LatchState) and int(state.count) == 0 and not bool(state.diverged)
