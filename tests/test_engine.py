"""The training engine: one compilation, masking of inactive slots, divergence handling, settings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compile_log import compilations
from core_solvers import StepGD

from du_framework import ConfigError, SolverContractError, Stage, TrainingDivergedError
from du_framework.engine import TrainSettings, clear_program_cache, evaluate, program_memory, train, train_ensemble, unroll
from du_framework.schedules import EndToEnd, Incremental, IncrementalFrozen, IncrementalRestart, LayerWise
from du_framework.testing import small_problem


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=6, m=12, lam=1.0, seed=3)


def solver(problem, depth=6, **options):
    return StepGD(StepGD.Options(**options), problem=problem, depth=depth)


def eta(module):
    return np.asarray(module.eta[...])


def test_incremental_schedule_compiles_the_training_program_once(problem):
    clear_program_cache()
    with compilations("_entry") as compiled:
        result = train(solver(problem), problem, Incremental(), steps_per_stage=7, batch_size=8, key=0,
                       chunk_size=4, progress=False)
    # 6 stages x 7 steps, in chunks of 4 with a masked remainder: all one executable.
    assert len(compiled) == 1 and result.compilations == 1
    assert len(result.losses) == 6 * 7
    assert len(result.stage_losses) == 6


def test_stages_of_unequal_length_share_one_compilation(problem):
    stages = [Stage(1, 3), Stage(2, 10, train="newest"), Stage(4, 1, lr_scale=0.5),
              Stage(5, 2, restart_optimizer=True), Stage(6, 5)]
    clear_program_cache()
    with compilations("_entry") as compiled:
        result = train(solver(problem), problem, stages, batch_size=8, key=0, chunk_size=4, progress=False)
    assert len(compiled) == 1
    assert len(result.losses) == 21


def test_a_settings_object_and_keyword_overrides_are_the_same_run(problem):
    settings = TrainSettings(steps_per_stage=4, batch_size=8, log_loss=False)
    by_object = train(solver(problem), problem, Incremental(), settings, key=1, progress=False)
    by_keywords = train(solver(problem), problem, Incremental(), steps_per_stage=4, batch_size=8, log_loss=False,
                        key=1, progress=False)
    np.testing.assert_array_equal(eta(by_object.solver), eta(by_keywords.solver))
    with pytest.raises(TypeError, match="unknown training setting"):
        train(solver(problem), problem, Incremental(), step_per_stage=4, progress=False)
    with pytest.raises(ConfigError, match="train.batch_size must be >= 1"):
        train(solver(problem), problem, Incremental(), batch_size=0, progress=False)


def test_slots_of_inactive_iterations_stay_at_their_initial_value(problem):
    result = train(solver(problem, init_step=0.01), problem, [Stage(3, 25)], batch_size=8, key=1, progress=False)
    learned = eta(result.solver)
    assert np.all(learned[:3] != np.float32(0.01)), "active slots must train"
    np.testing.assert_array_equal(learned[3:], np.float32(0.01))


def test_frozen_schedule_trains_only_the_newest_slot(problem):
    first = train(solver(problem, depth=4, init_step=0.02), problem, [Stage(1, 10), Stage(2, 10)], batch_size=8,
                  key=1, progress=False).solver
    then = train(first, problem, [Stage(3, 10, train="newest")], batch_size=8, key=2, progress=False).solver
    before, after = eta(first), eta(then)
    np.testing.assert_array_equal(after[:2], before[:2])
    np.testing.assert_array_equal(after[3], before[3])
    assert after[2] != before[2]


def test_adam_momentum_does_not_move_frozen_slots(problem):
    # Slot 0 trains with momentum built up in stage 1, then is frozen: momentum
    # alone would keep moving it if updates were not masked.
    start = solver(problem, depth=2, init_step=0.05)
    both = train(start, problem, [Stage(1, 20), Stage(2, 20, train="newest")], batch_size=8, key=0, chunk_size=20,
                 progress=False)
    first = train(start, problem, [Stage(1, 20)], batch_size=8, key=0, chunk_size=20, progress=False)
    assert eta(both.solver)[0] == eta(first.solver)[0]


def test_an_optimizer_restart_forgets_the_moments_but_keeps_the_parameters(problem):
    # Plain SGD with momentum: after a restart the first update is lr * gradient, not lr * (gradient + momentum).
    start = solver(problem, depth=1, init_step=0.05, lr=1e-3)
    settings = dict(batch_size=8, key=0, chunk_size=5, progress=False, optimizer="sgd", log_loss=False,
                    optimizer_options={"momentum": 0.9})
    kept = train(start, problem, [Stage(1, 5), Stage(1, 5)], **settings)
    restarted = train(start, problem, [Stage(1, 5), Stage(1, 5, restart_optimizer=True)], **settings)
    half = train(start, problem, [Stage(1, 5)], **settings)
    carried = jax.random.key(0)  # the instance stream after five steps: one split per step
    for _ in range(5):
        carried = jax.random.split(carried)[0]
    fresh = train(half.solver, problem, [Stage(1, 5)], **{**settings, "key": carried})
    assert not np.array_equal(eta(kept.solver), eta(restarted.solver))
    # The restarted run equals a fresh optimiser started from the parameters after stage 1
    # on the same continuing instance stream.
    np.testing.assert_allclose(eta(restarted.solver), eta(fresh.solver), rtol=1e-6)
    np.testing.assert_array_equal(restarted.losses[:5], kept.losses[:5])


def test_incremental_restart_schedule_restarts_every_stage():
    stages = IncrementalRestart().stages(3, 4)
    assert [(s.active_depth, s.steps, s.restart_optimizer) for s in stages] == [(1, 4, True), (2, 4, True),
                                                                                (3, 4, True)]


def test_layer_wise_schedule_alternates_newest_and_all():
    stages = LayerWise(LayerWise.Options(finetune_lr_scale=0.25)).stages(3, 5)
    assert [(s.active_depth, s.train, s.lr_scale) for s in stages] == [
        (1, "newest", 1.0), (1, "all", 0.25), (2, "newest", 1.0), (2, "all", 0.25), (3, "newest", 1.0), (3, "all", 0.25)]
    assert EndToEnd().stages(4, 5) == [Stage(4, 20)]
    assert [s.train for s in IncrementalFrozen().stages(3, 1)] == ["newest"] * 3


def test_any_optax_optimizer_and_schedule_by_name(problem):
    base = dict(batch_size=8, key=0, steps_per_stage=5, progress=False, log_loss=False)
    adam = train(solver(problem, depth=3), problem, Incremental(), **base)
    sgd = train(solver(problem, depth=3), problem, Incremental(), optimizer="sgd", **base)
    cosine = train(solver(problem, depth=3), problem, Incremental(), lr_schedule="cosine_decay",
                   lr_schedule_options={"decay_steps": 15}, **base)
    assert len({eta(r.solver).tobytes() for r in (adam, sgd, cosine)}) == 3
    with pytest.raises(ConfigError, match=r"unknown optax optimiser 'adamm' \(did you mean 'adam'"):
        train(solver(problem), problem, Incremental(), optimizer="adamm", progress=False)
    with pytest.raises(ConfigError, match="optax.adam takes no option 'beta1'"):
        train(solver(problem), problem, Incremental(), optimizer_options={"beta1": 0.9}, progress=False)
    with pytest.raises(ConfigError, match="unknown schedule 'cosine'"):
        train(solver(problem), problem, Incremental(), lr_schedule="cosine", progress=False)


def test_plain_sgd_takes_exactly_the_learning_rate_times_the_gradient(problem):
    start = solver(problem, depth=1, init_step=0.05, lr=1e-3)
    result = train(start, problem, [Stage(1, 1)], batch_size=8, key=0, optimizer="sgd", log_loss=False,
                   progress=False)
    instance = problem.sample(jax.random.split(jax.random.key(0))[1], 8)

    def loss(step):  # one GD iteration from x = 0: x1 = step * b
        b = np.asarray(problem.linear_term(instance), np.float64)
        return np.mean(np.sum((step * b - np.asarray(instance["target"], np.float64)) ** 2, axis=1))

    gradient = (loss(0.05 + 1e-6) - loss(0.05 - 1e-6)) / 2e-6
    assert eta(result.solver)[0] == pytest.approx(0.05 - 1e-3 * gradient, rel=1e-5)


def test_a_metric_can_be_the_training_loss(problem):
    nmse = train(solver(problem, depth=3), problem, Incremental(), steps_per_stage=3, batch_size=8, key=0,
                 loss="nmse_db", log_loss=False, progress=False)
    mse = train(solver(problem, depth=3), problem, Incremental(), steps_per_stage=3, batch_size=8, key=0,
                log_loss=False, progress=False)
    instance = problem.sample(jax.random.split(jax.random.key(0))[1], 8)
    energy = np.mean(np.sum(np.asarray(instance["target"], np.float64) ** 2, axis=1))
    assert nmse.losses[0] == pytest.approx(mse.losses[0] / energy, rel=1e-5)
    with pytest.raises(ConfigError, match="train.loss = 'ser' is not a metric"):
        train(solver(problem), problem, Incremental(), loss="ser", progress=False)


def test_divergence_names_stage_and_step_and_keeps_last_good_parameters(problem):
    # A step size far beyond 2/mu_max makes the iterates overflow to inf.
    with pytest.raises(TrainingDivergedError) as caught:
        train(solver(problem, depth=40, init_step=5.0, lr=1e-3), problem, Incremental(), steps_per_stage=3,
              batch_size=4, key=0, progress=False)
    error = caught.value
    assert error.stage >= 1 and error.step >= 1
    assert f"stage {error.stage} of 40" in str(error) and f"step {error.step} of 3" in str(error)
    assert np.all(np.isfinite(eta(error.solver)))
    assert np.all(np.isfinite(error.history))


def test_a_step_that_changes_the_state_shape_names_the_solver(problem):
    class Broken(StepGD):
        name = "broken-gd"

        def step(self, problem, context, x, k):
            return jnp.concatenate([x, x], axis=-1)

    broken = Broken(Broken.Options(), problem=problem, depth=3)
    with pytest.raises(SolverContractError, match="'broken-gd'.*step\\(\\) must return a state of the same"):
        train(broken, problem, Incremental(), steps_per_stage=1, batch_size=4, progress=False)
    with pytest.raises(SolverContractError, match="broken-gd"):
        evaluate(broken, problem, key=0, batch_size=4, batches=1)


def test_remat_gives_the_same_training(problem):
    plain = train(solver(problem), problem, Incremental(), steps_per_stage=4, batch_size=8, key=5, progress=False)
    remat = train(solver(problem), problem, Incremental(), steps_per_stage=4, batch_size=8, key=5, remat=True,
                  progress=False)
    np.testing.assert_allclose(eta(plain.solver), eta(remat.solver), rtol=1e-5, atol=1e-7)


def test_unroll_with_active_depth_stops_the_iteration(problem):
    module = solver(problem, depth=5, init_step=0.05)
    instance = problem.sample(jax.random.key(0), 3)
    x2, _ = jax.jit(lambda d: unroll(module, problem, instance, d))(jnp.int32(2))
    A, y = np.asarray(problem.A, np.float64), np.asarray(instance["y"], np.float64)
    x = np.zeros((3, problem.n))
    for _ in range(2):
        x = x - 0.05 * ((x @ A.T - y) @ A + problem.lam * x)
    np.testing.assert_allclose(np.asarray(x2), x, rtol=1e-4, atol=1e-6)


def test_evaluation_gives_every_metric_against_numpy(problem):
    module = solver(problem, depth=3, init_step=0.03)
    curves = evaluate(module, problem, key=9, batch_size=5, batches=2)
    assert set(curves) == {"mse", "nmse_db"}
    A = np.asarray(problem.A, np.float64)
    errors, energies = [], []
    for batch_key in jax.random.split(jax.random.key(9), 2):
        instance = problem.sample(batch_key, 5)
        y, target = np.asarray(instance["y"], np.float64), np.asarray(instance["target"], np.float64)
        x, per_iteration = np.zeros((5, problem.n)), []
        for _ in range(3):
            x = x - 0.03 * ((x @ A.T - y) @ A + problem.lam * x)
            per_iteration.append(np.sum((x - target) ** 2, axis=1))
        errors.append(np.stack(per_iteration))
        energies.append(np.sum(target**2, axis=1))
    mse = np.concatenate(errors, axis=1).mean(axis=1)
    np.testing.assert_allclose(curves["mse"], mse, rtol=1e-4)
    np.testing.assert_allclose(curves["nmse_db"], 10 * np.log10(mse / np.concatenate(energies).mean()), atol=1e-3)
    assert set(evaluate(module, problem, key=9, batch_size=5, batches=2, metrics=["mse"])) == {"mse"}
    with pytest.raises(ConfigError, match="has no metric 'mes' \\(did you mean 'mse'"):
        evaluate(module, problem, key=9, metrics=["mes"])


def test_a_second_evaluation_of_the_same_structure_compiles_nothing(problem):
    first = solver(problem, init_step=0.03)
    second = solver(problem, init_step=0.03)  # the same structure, other learned values (as after training)
    second.eta[...] = second.eta[...] * 0.5
    evaluate(first, problem, key=9, batch_size=5, batches=3)
    with compilations("_curves") as compiled:
        a = evaluate(first, problem, key=9, batch_size=5, batches=3)["mse"]
        b = evaluate(second, problem, key=9, batch_size=5, batches=3)["mse"]
        c = evaluate(first, problem, key=10, batch_size=5, batches=3)["mse"]
    assert compiled == []
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_classical_solver_trains_for_free(problem):
    class Fixed(StepGD):
        name = "fixed-gd"

        def __init__(self, options, *, problem, depth):
            super(StepGD, self).__init__(options, problem=problem, depth=depth)

        def step(self, problem, context, x, k):
            return x - 0.01 * self.gradient(problem, context, x)

    gd = Fixed(Fixed.Options(), problem=problem, depth=4)
    result = train(gd, problem, Incremental(), progress=False)
    assert result.compilations == 0 and result.train_seconds == 0.0 and result.solver is gd


def test_progress_bar_counts_steps_and_names_the_stage(problem, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_MININTERVAL", "0")  # draw every update, however fast
    train(solver(problem, depth=3), problem, Incremental(), steps_per_stage=4, batch_size=4, key=0, chunk_size=2,
          progress=True, label="my-solver")
    err = capsys.readouterr().err
    assert "training my-solver" in err and "12/12" in err and "stage 3/3, depth 3" in err and "loss" in err


def test_log_loss_reports_the_loss_itself_and_changes_only_the_descent(problem):
    plain, logged = [train(solver(problem, depth=3, init_step=0.01), problem, Incremental(), steps_per_stage=5,
                           batch_size=8, key=3, log_loss=log_loss, progress=False) for log_loss in (False, True)]
    assert plain.losses[0] == logged.losses[0] > 0
    # Independent: the first batch's loss after one iteration from x = 0 with step 0.01.
    instance = problem.sample(jax.random.split(jax.random.key(3))[1], 8)
    b = np.asarray(problem.linear_term(instance), np.float64)
    target = np.asarray(instance["target"], np.float64)
    assert logged.losses[0] == pytest.approx(np.mean(np.sum((0.01 * b - target) ** 2, axis=1)), rel=1e-5)
    assert not np.array_equal(eta(plain.solver), eta(logged.solver))


def test_a_second_identical_run_reuses_the_compiled_program(problem):
    clear_program_cache()
    first = train(solver(problem), problem, Incremental(), steps_per_stage=3, batch_size=8, key=2, progress=False)
    with compilations("_entry") as compiled:
        again = train(solver(problem), problem, Incremental(), steps_per_stage=3, batch_size=8, key=2,
                      progress=False)
    assert (first.compilations, again.compilations, len(compiled)) == (1, 0, 0)
    np.testing.assert_array_equal(eta(first.solver), eta(again.solver))
    other = train(solver(problem), problem, Incremental(), steps_per_stage=3, batch_size=4, key=2, progress=False)
    assert other.compilations == 1, "another batch size is another program"


def test_an_ensemble_trains_each_member_as_its_own_run_would(problem):
    keys = [0, 1, 2]
    clear_program_cache()
    members = train_ensemble(solver(problem, period=3), problem, Incremental(), keys=keys, steps_per_stage=6,
                             batch_size=8, progress=False)
    assert len(members) == 3 and members[0].compilations == 1
    for key, member in zip(keys, members):
        alone = train(solver(problem, period=3), problem, Incremental(), steps_per_stage=6, batch_size=8, key=key,
                      progress=False)
        np.testing.assert_allclose(eta(member.solver), eta(alone.solver), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(member.losses, alone.losses, rtol=1e-4)
    assert not np.allclose(eta(members[0].solver), eta(members[1].solver))


def test_an_ensemble_combines_with_remat_and_restarts(problem):
    stages = [Stage(2, 3), Stage(4, 3, restart_optimizer=True)]
    members = train_ensemble(solver(problem, depth=4), problem, stages, keys=[0, 1], batch_size=8, remat=True,
                             progress=False)
    alone = train(solver(problem, depth=4), problem, stages, key=1, batch_size=8, progress=False)
    np.testing.assert_allclose(eta(members[1].solver), eta(alone.solver), rtol=1e-4, atol=1e-6)


def test_remat_keeps_the_iteration_and_bounds_the_stored_states():
    problem = small_problem(n=20, m=40, lam=1.0, seed=1)
    module = solver(problem, depth=7, init_step=0.02)  # 7 = 3 blocks of 3, two padded iterations
    instance = problem.sample(jax.random.key(0), 4)
    record = lambda x: jnp.sum(x**2, axis=-1)
    for active in (None, jnp.int32(5)):
        plain = unroll(module, problem, instance, active, record=record)
        for levels in (True, 1, 3):  # 3 levels of blocks of 2: 8 slots, one padded iteration
            remat = unroll(module, problem, instance, active, record=record, remat=levels)
            np.testing.assert_allclose(remat[0], plain[0], rtol=1e-6)
            np.testing.assert_allclose(remat[1], plain[1], rtol=1e-6)
        grads = [jax.grad(lambda p, r=r: jnp.sum(unroll(p, problem, instance, active, remat=r)[0] ** 2))(module)
                 for r in (False, 3)]
        np.testing.assert_allclose(grads[1].eta[...], grads[0].eta[...], rtol=1e-5)
    deep = [program_memory(solver(problem, depth=400), problem, [Stage(400, 1)], batch_size=64, remat=remat)
            for remat in (False, True)]
    # 400 stored states of 64 x 20 floats without remat; about 2 sqrt(400) = 40 with it.
    assert deep[1] < deep[0] / 4, deep
    with pytest.raises(ConfigError, match="train.remat must be >= 0, <= 16, got -1"):
        train(solver(problem), problem, [Stage(2, 1)], remat=-1, progress=False)


def test_a_diverging_ensemble_names_the_member(problem):
    with pytest.raises(TrainingDivergedError, match=r"'test-step-gd' \(ensemble member 0, of 2\) diverged") as caught:
        train_ensemble(solver(problem, depth=40, init_step=5.0, lr=1e-3), problem, Incremental(), keys=[0, 1],
                       steps_per_stage=3, batch_size=4, progress=False)
    assert np.all(np.isfinite(eta(caught.value.solver)))


def test_a_higher_is_better_metric_is_refused_as_the_training_loss(problem):
    import dataclasses

    from du_framework import Metric
    from du_framework.testing import SmallLeastSquares

    class Scored(SmallLeastSquares):
        metrics = SmallLeastSquares.metrics + (
            Metric("hits", lambda estimate, instance: jnp.mean(jnp.abs(estimate - instance["target"]) < 0.1, -1),
                   lower_is_better=False),)

    scored = Scored(dataclasses.replace(SmallLeastSquares.Options(), n=6, m=12))
    with pytest.raises(ConfigError, match="train.loss = 'hits': higher is better"):
        train(solver(scored), scored, Incremental(), loss="hits", progress=False)


def test_a_failing_plugin_schedule_is_named(problem):
    from du_framework import PluginError, TrainingSchedule

    class Broken(TrainingSchedule):
        name = "broken-schedule"

        def stages(self, depth, steps_per_stage):
            raise RuntimeError("boom")

    class TooDeep(TrainingSchedule):
        name = "too-deep"

        def stages(self, depth, steps_per_stage):
            return [Stage(depth + 1, steps_per_stage)]

    with pytest.raises(PluginError, match=r"schedule 'broken-schedule' .* failed to make its stages .*boom"):
        train(solver(problem), problem, Broken(), progress=False)
    with pytest.raises(PluginError, match=r"stage 1 of schedule 'too-deep' .* asks for active depth 7"):
        train(solver(problem), problem, TooDeep(), progress=False)


def test_a_scalar_parameter_trains(problem):
    from flax import nnx

    class Shared(StepGD):
        name = "shared-gd"

        def __init__(self, options, *, problem, depth):
            super().__init__(options, problem=problem, depth=depth)
            self.eta = nnx.Param(jnp.float32(0.02))  # one plain scalar for every iteration

        def step(self, problem, context, x, k):
            return x - self.eta[...] * self.gradient(problem, context, x)

    result = train(Shared(Shared.Options(), problem=problem, depth=3), problem, Incremental(), steps_per_stage=3,
                   batch_size=8, progress=False)
    assert np.shape(result.solver.eta[...]) == () and float(result.solver.eta[...]) != np.float32(0.02)


def test_host_keys_are_bit_for_bit_those_of_jax_random():
    from du_framework.engine.keys import host_fold_in, host_key

    rng = np.random.default_rng(0)
    for seed in [0, 1, 2026, 2**31 - 1, 2**31, 2**32 - 1, *rng.integers(0, 2**32, 5).tolist()]:
        np.testing.assert_array_equal(jax.random.key_data(host_key(seed)), jax.random.key_data(jax.random.key(seed)))
        for data in [0, 1, 2**31 + 3, 2**32 - 1, *rng.integers(0, 2**32, 3).tolist()]:
            np.testing.assert_array_equal(
                jax.random.key_data(host_fold_in(host_key(seed), data)),
                jax.random.key_data(jax.random.fold_in(jax.random.key(seed), data)))
    with pytest.raises(ValueError, match=r"a seed must be an integer in \[0, 2\*\*32\), got -1"):
        host_key(-1)


def test_training_compiles_nothing_but_its_program(problem):
    module = solver(problem, depth=3)
    clear_program_cache()
    with compilations() as compiled:
        train(module, problem, Incremental(), steps_per_stage=2, batch_size=4, key=7, progress=False)
    assert len(compiled) == 1 and "_entry" in compiled[0], compiled


@pytest.mark.parametrize("spec", [".123f", ".900000000e", "x", "100.2f"])
def test_a_metric_format_must_be_a_short_float_spec(spec):
    from du_framework.metrics import Metric, squared_error

    with pytest.raises(ValueError, match="format"):
        Metric("m", squared_error, format=spec)
    assert Metric("m", squared_error, format=".4g").show(0.5) == "0.5"


def test_the_compatibility_check_runs_once_for_a_train_and_an_evaluation(monkeypatch):
    from du_framework import UnfoldedSolver

    calls = []
    original = UnfoldedSolver.check_problem.__func__

    def counting(cls, problem):
        calls.append((cls, problem))
        return original(cls, problem)

    monkeypatch.setattr(UnfoldedSolver, "check_problem", classmethod(counting))
    fresh = small_problem(n=6, m=12, lam=1.0, seed=4)  # a problem no earlier test has checked
    result = train(solver(fresh, depth=2), fresh, [Stage(1, 2), Stage(2, 2)], batch_size=4, progress=False)
    evaluate(result.solver, fresh, key=0, batch_size=4, batches=1)
    train_ensemble(result.solver, fresh, [Stage(2, 1)], keys=[0, 1], batch_size=4, progress=False)
    assert len(calls) == 1 and calls[0][1] is fresh


def test_training_a_solver_through_the_python_api_loads_no_plugin_and_no_workbench(tmp_path):
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent("""
        import sys
        import du_framework
        from du_framework import registry
        from du_framework.engine import evaluate, train
        from du_framework.schedules import Incremental
        from du_framework.testing import small_problem
        from core_solvers import StepGD

        problem = small_problem(n=6, m=12, lam=1.0, seed=3)
        solver = StepGD(StepGD.Options(), problem=problem, depth=2)
        result = train(solver, problem, Incremental(), steps_per_stage=2, batch_size=4, key=0)
        evaluate(result.solver, problem, key=0, batch_size=4, batches=1)
        assert len(result.losses) == 4
        heavy = [name for name in ("tqdm", "matplotlib", "optuna", "du_framework.cli", "du_framework.workbench")
                 if name in sys.modules]
        assert not heavy, heavy
        assert registry.loaded_registry() is None, "a schedule object must not load the plugins"
        print("ok")
    """)
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)]),
           "DU_PROGRESS_INTERVAL": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "compiling test-step-gd (4 steps)" in done.stderr  # progress=True: plain lines, no bar
