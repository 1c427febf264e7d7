"""The training engine: one compilation, masking of inactive slots, divergence handling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from du_framework import Stage, TrainingDivergedError
from du_framework.engine import evaluate, train, train_ensemble, unroll
from du_framework.schedules import EndToEnd, Incremental, IncrementalFrozen, LayerWise
from du_gd_ridge import DUGD, RidgeProblem


@pytest.fixture(scope="module")
def problem():
    return RidgeProblem.from_options(RidgeProblem.Options(n=6, m=12, lam=1.0, seed=3))


def dugd(problem, depth=6, **options):
    # The step parametrisation, so that tests can read and set eta directly.
    options.setdefault("parametrization", "step")
    return DUGD(DUGD.Options(**options), problem=problem, depth=depth)


def test_incremental_schedule_compiles_the_training_step_once(problem):
    result = train(dugd(problem), problem, Incremental(), steps_per_stage=7, batch_size=8, key=0,
                   chunk_size=4, progress=False)
    # 6 stages x 7 steps, in chunks of 4 with a masked remainder: all one executable.
    assert result.compilations == 1
    assert len(result.losses) == 6 * 7
    assert len(result.stage_losses) == 6


def test_stages_of_unequal_length_share_one_compilation(problem):
    stages = [Stage(1, 3), Stage(2, 10, train="newest"), Stage(4, 1, lr_scale=0.5), Stage(6, 5)]
    result = train(dugd(problem, period=0), problem, stages, batch_size=8, key=0, chunk_size=4, progress=False)
    assert result.compilations == 1
    assert len(result.losses) == 19


def test_slots_of_inactive_iterations_stay_at_their_initial_value(problem):
    solver = dugd(problem, depth=6, period=0, init_step=0.01)
    result = train(solver, problem, [Stage(3, 25)], batch_size=8, key=1, progress=False)
    eta = np.asarray(result.solver.eta[...])
    assert np.all(eta[:3] != np.float32(0.01)), "active slots must train"
    np.testing.assert_array_equal(eta[3:], np.float32(0.01))


def test_frozen_schedule_trains_only_the_newest_slot(problem):
    solver = dugd(problem, depth=4, period=0, init_step=0.02)
    first = train(solver, problem, [Stage(1, 10), Stage(2, 10)], batch_size=8, key=1, progress=False).solver
    eta_before = np.asarray(first.eta[...])
    then = train(first, problem, [Stage(3, 10, train="newest")], batch_size=8, key=2, progress=False).solver
    eta_after = np.asarray(then.eta[...])
    np.testing.assert_array_equal(eta_after[:2], eta_before[:2])
    np.testing.assert_array_equal(eta_after[3], eta_before[3])
    assert eta_after[2] != eta_before[2]


def test_adam_momentum_does_not_move_frozen_slots(problem):
    # Slot 0 trains with momentum built up in stage 1, then is frozen: momentum
    # alone would keep moving it if updates were not masked.
    solver = dugd(problem, depth=2, period=0, init_step=0.0)
    result = train(solver, problem, [Stage(1, 20), Stage(2, 20, train="newest")], batch_size=8, key=0,
                   chunk_size=20, progress=False)
    after_stage_1 = train(solver, problem, [Stage(1, 20)], batch_size=8, key=0, chunk_size=20,
                          progress=False).solver.eta[...]
    assert float(result.solver.eta[0]) == pytest.approx(float(after_stage_1[0]), abs=0)


def test_layer_wise_schedule_alternates_newest_and_all():
    stages = LayerWise(LayerWise.Options(finetune_lr_scale=0.25)).stages(3, 5)
    assert [(s.active_depth, s.train, s.lr_scale) for s in stages] == [
        (1, "newest", 1.0), (1, "all", 0.25), (2, "newest", 1.0), (2, "all", 0.25), (3, "newest", 1.0), (3, "all", 0.25)]
    assert EndToEnd().stages(4, 5) == [Stage(4, 20)]
    assert [s.train for s in IncrementalFrozen().stages(3, 1)] == ["newest"] * 3


def test_divergence_names_stage_and_step_and_keeps_last_good_parameters(problem):
    # A step size far beyond 2/mu_max makes the iterates overflow to inf.
    solver = dugd(problem, depth=40, init_step=5.0, lr=1e-3)
    with pytest.raises(TrainingDivergedError) as caught:
        train(solver, problem, Incremental(), steps_per_stage=3, batch_size=4, key=0, progress=False)
    error = caught.value
    assert error.stage >= 1 and error.step >= 1
    assert f"stage {error.stage} of 40" in str(error) and f"step {error.step} of 3" in str(error)
    kept = np.asarray(error.solver.eta[...])
    assert np.all(np.isfinite(kept))
    assert np.all(np.isfinite(error.history))


def test_remat_gives_the_same_training(problem):
    plain = train(dugd(problem), problem, Incremental(), steps_per_stage=4, batch_size=8, key=5, progress=False)
    remat = train(dugd(problem), problem, Incremental(), steps_per_stage=4, batch_size=8, key=5, remat=True,
                  progress=False)
    np.testing.assert_allclose(plain.solver.eta[...], remat.solver.eta[...], rtol=1e-5, atol=1e-7)


def test_unroll_with_active_depth_stops_the_iteration(problem):
    solver = dugd(problem, depth=5, period=0, init_step=0.05)
    instance = problem.sample(jax.random.key(0), 3)
    x2, _ = jax.jit(lambda d: unroll(solver, problem, instance, d))(jnp.int32(2))
    A, y = np.asarray(problem.A, np.float64), np.asarray(instance["y"], np.float64)
    x = np.zeros((3, problem.n))
    for _ in range(2):
        x = x - 0.05 * ((x @ A.T - y) @ A + problem.lam * x)
    np.testing.assert_allclose(np.asarray(x2), x, rtol=1e-4, atol=1e-6)


def test_evaluation_is_the_same_for_the_same_key(problem):
    solver = dugd(problem, init_step=0.03)
    first = evaluate(solver, problem, key=9, batch_size=5, batches=3)
    second = evaluate(solver, problem, key=9, batch_size=5, batches=3)
    other = evaluate(solver, problem, key=10, batch_size=5, batches=3)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_classical_solver_trains_for_free(problem):
    from du_gd_ridge import ConstantStepGD

    gd = ConstantStepGD(ConstantStepGD.Options(), problem=problem, depth=4)
    result = train(gd, problem, Incremental(), progress=False)
    assert result.compilations == 0 and result.train_seconds == 0.0 and result.solver is gd


def test_target_energy_is_the_mean_squared_norm_of_the_evaluation_targets(problem):
    from du_framework.engine import target_energy

    keys = jax.random.split(jax.random.key(4), 3)
    targets = np.concatenate([np.asarray(problem.sample(k, 7)["target"], np.float64) for k in keys])
    expected = np.mean(np.sum(targets**2, axis=1))
    assert target_energy(problem, key=4, batch_size=7, batches=3) == pytest.approx(expected, rel=1e-5)


def test_progress_bar_counts_steps_and_names_the_stage(problem, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_MININTERVAL", "0")  # draw every update, however fast
    train(dugd(problem, depth=3), problem, Incremental(), steps_per_stage=4, batch_size=4, key=0, chunk_size=2,
          progress=True, label="my-solver")
    err = capsys.readouterr().err
    assert "training my-solver" in err and "12/12" in err and "stage 3/3, depth 3" in err


def test_log_loss_reports_the_loss_itself_and_changes_only_the_descent(problem):
    runs = [train(dugd(problem, depth=3), problem, Incremental(), steps_per_stage=5, batch_size=8, key=3,
                  log_loss=log_loss, progress=False) for log_loss in (False, True)]
    plain, logged = runs
    # The first step sees the same instances and parameters: the same (positive, not log) loss.
    assert plain.losses[0] == logged.losses[0] > 0
    # Independent: the loss of that first batch after one iteration from x = 0 with eta = 0 is ||x_opt||^2.
    first_key = jax.random.split(jax.random.key(3))[1]
    target = np.asarray(problem.sample(first_key, 8)["target"], np.float64)
    assert logged.losses[0] == pytest.approx(np.mean(np.sum(target**2, axis=1)), rel=1e-5)
    assert not np.array_equal(plain.solver.eta[...], logged.solver.eta[...])


def test_a_second_identical_run_reuses_the_compiled_program(problem):
    first = train(dugd(problem), problem, Incremental(), steps_per_stage=3, batch_size=8, key=2, progress=False)
    again = train(dugd(problem), problem, Incremental(), steps_per_stage=3, batch_size=8, key=2, progress=False)
    assert (first.compilations, again.compilations) == (1, 0)
    np.testing.assert_array_equal(first.solver.eta[...], again.solver.eta[...])
    other = train(dugd(problem), problem, Incremental(), steps_per_stage=3, batch_size=4, key=2, progress=False)
    assert other.compilations == 1, "another batch size is another program"


def test_an_ensemble_trains_each_member_as_its_own_run_would(problem):
    keys = [0, 1, 2]
    members = train_ensemble(dugd(problem, period=3), problem, Incremental(), keys=keys, steps_per_stage=6,
                             batch_size=8, progress=False)
    assert len(members) == 3 and members[0].compilations == 1
    for key, member in zip(keys, members):
        alone = train(dugd(problem, period=3), problem, Incremental(), steps_per_stage=6, batch_size=8, key=key,
                      progress=False)
        np.testing.assert_allclose(member.solver.eta[...], alone.solver.eta[...], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(member.losses, alone.losses, rtol=1e-4)
    assert not np.allclose(members[0].solver.eta[...], members[1].solver.eta[...])


def test_remat_keeps_the_iteration_and_bounds_the_stored_states():
    problem = RidgeProblem.from_options(RidgeProblem.Options(n=20, m=40, lam=1.0, seed=1))
    solver = dugd(problem, depth=7, period=0, init_step=0.02)  # 7 = 3 blocks of 3, two padded iterations
    instance = problem.sample(jax.random.key(0), 4)
    record = lambda x: jnp.sum(x**2, axis=-1)
    for active in (None, jnp.int32(5)):
        plain = unroll(solver, problem, instance, active, record=record)
        for levels in (True, 1, 3):  # 3 levels of blocks of 2: 8 slots, one padded iteration
            remat = unroll(solver, problem, instance, active, record=record, remat=levels)
            np.testing.assert_allclose(remat[0], plain[0], rtol=1e-6)
            np.testing.assert_allclose(remat[1], plain[1], rtol=1e-6)
        grads = [jax.grad(lambda p, r=r: jnp.sum(unroll(p, problem, instance, active, remat=r)[0] ** 2))(solver)
                 for r in (False, 3)]
        np.testing.assert_allclose(grads[1].eta[...], grads[0].eta[...], rtol=1e-5)
    deep = [train(dugd(problem, depth=400), problem, [Stage(400, 1)], batch_size=64, key=0, remat=remat,
                  progress=False).program_bytes for remat in (False, True)]
    # 400 stored states of 64 x 20 floats without remat; about 2 sqrt(400) = 40 with it.
    assert deep[1] < deep[0] / 4, deep
    with pytest.raises(ValueError, match="remat must be true, false or a number of levels >= 0, got -1"):
        train(dugd(problem), problem, [Stage(2, 1)], remat=-1, progress=False)


def test_a_diverging_ensemble_names_the_member(problem):
    with pytest.raises(TrainingDivergedError, match=r"'dugd' \(ensemble member 0, of 2\) diverged") as caught:
        train_ensemble(dugd(problem, depth=40, init_step=5.0, lr=1e-3), problem, Incremental(), keys=[0, 1],
                       steps_per_stage=3, batch_size=4, progress=False)
    assert np.all(np.isfinite(np.asarray(caught.value.solver.eta[...])))
