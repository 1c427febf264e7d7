"""train.loss_weights: the training loss over the iterations (Nachmani et al.'s multi-loss), against float64 NumPy."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from compile_log import compilations
from core_solvers import StepGD

from du_framework import ConfigError, Stage
from du_framework.engine import TrainSettings, clear_program_cache, train, train_ensemble
from du_framework.engine.program import iteration_weights
from du_framework.options import parse_options
from du_framework.schedules import EndToEnd, Incremental
from du_framework.testing import small_problem

LR = 1e-3


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=6, m=12, lam=1.0, seed=3)


def solver(problem, depth=6, **options):
    return StepGD(StepGD.Options(**options), problem=problem, depth=depth)


def eta(module):
    return np.asarray(module.eta[...], np.float64)


def first_instance(problem, batch_size=8):
    """The instances of the first optimiser step of a run with ``key=0``."""
    instance = problem.sample(jax.random.split(jax.random.key(0))[1], batch_size)
    return {name: np.asarray(value, np.float64) for name, value in instance.items()}


def numpy_losses(problem, steps, instance):
    """The squared-error loss after each GD iteration ``x <- x - eta_t (H x - b)`` from 0, in float64."""
    A = np.asarray(problem.A, np.float64)
    H, b = A.T @ A + problem.lam * np.eye(A.shape[1]), instance["y"] @ A
    x, losses = np.zeros_like(instance["target"]), []
    for step in steps:
        x = x - step * (x @ H - b)
        losses.append(np.mean(np.sum((x - instance["target"]) ** 2, axis=1)))
    return np.array(losses)


def numpy_weights(loss_weights, depth, active):
    t = np.arange(1, depth + 1, dtype=np.float64)
    raw = {"all": np.ones(depth), "linear": t}.get(loss_weights) if isinstance(loss_weights, str) else \
        np.asarray(loss_weights, np.float64)
    raw = np.where(t <= active, raw, 0.0)
    return raw / raw.sum()


def first_step_gradient(problem, loss_weights, depth=6, active=6):
    """``(loss, gradient of eta)`` of a run's first step: plain SGD moves eta by exactly LR times the gradient."""
    start = solver(problem, depth=depth, lr=LR)
    result = train(start, problem, [Stage(active, 1)], batch_size=8, key=0, optimizer="sgd", log_loss=False,
                   loss_weights=loss_weights, progress=False)
    return result.losses[0], (eta(start) - eta(result.solver)) / LR


def test_final_is_the_default_and_the_loss_of_the_last_active_iterate(problem):
    base = dict(batch_size=8, key=0, steps_per_stage=4, progress=False)
    default = train(solver(problem), problem, Incremental(), **base)
    final = train(solver(problem), problem, Incremental(), loss_weights="final", **base)
    assert TrainSettings().loss_weights == "final"
    np.testing.assert_array_equal(final.losses, default.losses)
    np.testing.assert_array_equal(eta(final.solver), eta(default.solver))
    loss, _ = first_step_gradient(problem, "final", active=4)
    start = solver(problem)
    assert loss == pytest.approx(numpy_losses(problem, eta(start)[:4], first_instance(problem))[-1], rel=1e-5)


@pytest.mark.parametrize("loss_weights", ["all", "linear", (0.5, 0.0, 2.0, 7.0, 1.0, 3.0)])
def test_weighted_loss_is_the_weighted_mean_over_the_active_iterations(problem, loss_weights):
    # Active depth 3 of 6: only iterations 1..3 count, their weights renormalised.
    loss, _ = first_step_gradient(problem, loss_weights, active=3)
    per_iteration = numpy_losses(problem, eta(solver(problem))[:3], first_instance(problem))
    expected = numpy_weights(loss_weights, 6, 3)[:3] @ per_iteration
    assert loss == pytest.approx(expected, rel=1e-5)
    if loss_weights == "all":
        assert loss == pytest.approx(np.mean(per_iteration), rel=1e-5)
    assert not loss == pytest.approx(per_iteration[-1], rel=1e-3)  # not the final loss


def test_iteration_weights_are_masked_and_renormalised():
    for loss_weights in ("all", "linear", (1.0, 0.0, 3.0, 4.0)):
        for active in (1, 2, 4):
            np.testing.assert_allclose(np.asarray(iteration_weights(loss_weights, 4, active)),
                                       numpy_weights(loss_weights, 4, active), rtol=1e-6)
    assert iteration_weights("final", 4, 2) is None


def test_all_sends_more_gradient_to_the_early_iterations_than_final(problem):
    instance = first_instance(problem)
    start = eta(solver(problem))

    def numpy_gradient(weights):  # central differences of the float64 weighted loss
        def loss(steps):
            return weights @ numpy_losses(problem, steps, instance)
        return np.array([(loss(start + 1e-6 * e) - loss(start - 1e-6 * e)) / 2e-6 for e in np.eye(6)])

    _, final = first_step_gradient(problem, "final")
    _, every = first_step_gradient(problem, "all")
    np.testing.assert_allclose(final, numpy_gradient(numpy_weights((0, 0, 0, 0, 0, 1), 6, 6)), rtol=2e-3)
    np.testing.assert_allclose(every, numpy_gradient(numpy_weights("all", 6, 6)), rtol=2e-3)
    # GD steps commute on a quadratic, so the final loss pulls equally on every step (all equal here);
    # the mean over the iterations pulls hardest on the first, which every later loss depends on.
    np.testing.assert_allclose(final, final[0], rtol=1e-4)
    assert every[0] > 1.4 * final[0] > 0
    assert every[0] / np.abs(every).sum() > 1.5 * final[0] / np.abs(final).sum()
    assert np.all(np.diff(every[1:]) < 0)


@pytest.mark.parametrize("loss_weights", ["all", (1.0, 1.0, 0.0, 2.0, 0.5, 1.0)])
def test_a_stage_change_does_not_recompile_and_remat_trains_the_same(problem, loss_weights):
    base = dict(batch_size=8, key=5, steps_per_stage=4, chunk_size=3, progress=False, loss_weights=loss_weights)
    clear_program_cache()
    with compilations("_entry") as compiled:
        plain = train(solver(problem), problem, Incremental(), **base)
    assert len(compiled) == 1 and plain.compilations == 1 and len(plain.losses) == 6 * 4
    with compilations("_entry") as compiled:
        remat = train(solver(problem), problem, Incremental(), remat=True, **base)
    assert len(compiled) == 1 and remat.compilations == 1
    np.testing.assert_allclose(eta(remat.solver), eta(plain.solver), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(remat.losses, plain.losses, rtol=1e-5)
    final = train(solver(problem), problem, Incremental(), **{**base, "loss_weights": "final"})
    assert not np.allclose(final.losses[4:], plain.losses[4:])


def test_an_ensemble_member_trains_as_its_own_run(problem):
    base = dict(batch_size=8, steps_per_stage=3, progress=False, loss_weights="linear")
    members = train_ensemble(solver(problem, depth=4), problem, Incremental(), keys=[1, 2], **base)
    alone = train(solver(problem, depth=4), problem, Incremental(), key=2, **base)
    np.testing.assert_allclose(eta(members[1].solver), eta(alone.solver), rtol=1e-5)
    np.testing.assert_allclose(members[1].losses, alone.losses, rtol=1e-5)


@pytest.mark.parametrize("value, message", [
    ("al", r"train.loss_weights = 'al' is not one of final, all, linear \(did you mean 'all'\?\)"),
    ("mean", r"'mean' is not one of final, all, linear; or give one weight >= 0 per iteration"),
    ([1.0, -0.5], r"train.loss_weights must be >= 0, got -0.5"),
    ([0, 0.0, 0], r"train.loss_weights are all zero \(3 weights\)"),
    ([], r"train.loss_weights is an empty list"),
    ([1.0, float("nan")], r"train.loss_weights must be a finite number, got nan"),
    (True, r"train.loss_weights must be string \| list of float, got true"),
])
def test_bad_loss_weights_are_refused_in_the_configuration(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_options(TrainSettings, {"loss_weights": value}, prefix="train.")


def test_loss_weights_that_do_not_fit_the_run_are_refused_before_compiling(problem):
    with pytest.raises(ConfigError, match=r"has 3 weights but the solver is unrolled to D = 6 iterations: give 6"):
        train(solver(problem), problem, Incremental(), loss_weights=[1, 1, 1], progress=False)
    with pytest.raises(ConfigError, match=r"gives iteration 1, the active one of stage 1, no weight"):
        train(solver(problem, depth=3), problem, Incremental(), loss_weights=[0, 0, 1], progress=False)
    stages = [Stage(3, 1), Stage(2, 1)]
    with pytest.raises(ConfigError, match=r"gives iterations 1..2, the active ones of stage 2, no weight"):
        train(solver(problem, depth=3), problem, stages, loss_weights=[0, 0, 1], progress=False)
    # The same weights are fine when every stage reaches the weighted iteration.
    train(solver(problem, depth=3), problem, EndToEnd(), loss_weights=[0, 0, 1], steps_per_stage=1, batch_size=4,
          progress=False)
    with pytest.raises(ConfigError, match=r"iteration 2\) = -1.0: every weight must be a finite number >= 0"):
        train(solver(problem, depth=3), problem, EndToEnd(), TrainSettings(loss_weights=(1.0, -1.0, 1.0)),
              progress=False)


SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import jax
    from core_solvers import StepGD
    from du_framework.engine import train
    from du_framework.schedules import Incremental
    from du_framework.testing import small_problem

    assert len(jax.devices()) == 2, jax.devices()
    problem = small_problem(n=6, m=12, lam=1.0, seed=3)
    out = {}
    for devices in (1, 2):
        result = train(StepGD(StepGD.Options(), problem=problem, depth=4), problem, Incremental(),
                       steps_per_stage=3, batch_size=8, key=3, loss_weights="linear", devices=devices, progress=False)
        out[devices] = {"eta": result.solver.learned_parameters()["eta"].tolist(), "losses": result.losses.tolist(),
                        "compilations": result.compilations}
    print(json.dumps(out))
""")


def test_weighted_losses_with_the_batch_split_over_devices_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    tests = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", SCRIPT, tests], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    assert runs["2"]["compilations"] == 1
    np.testing.assert_allclose(runs["2"]["losses"], runs["1"]["losses"], rtol=1e-4)
    np.testing.assert_allclose(runs["2"]["eta"], runs["1"]["eta"], rtol=1e-4)
