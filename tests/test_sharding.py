"""The instance batch split over several devices gives the single-device result."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json
    import sys
    import jax
    sys.path.insert(0, sys.argv[1])
    from core_solvers import StepGD
    from du_framework.engine import evaluate, train, train_ensemble
    from du_framework.schedules import Incremental
    from du_framework.testing import small_problem

    assert len(jax.devices()) == 4, jax.devices()
    problem = small_problem(n=12, m=24, lam=1.0, seed=2)
    out = {}
    for devices in (1, 2, 4):
        solver = StepGD(StepGD.Options(period=4, reciprocal=True), problem=problem, depth=8)
        result = train(solver, problem, Incremental(), steps_per_stage=10, batch_size=16, key=3,
                       log_loss=True, devices=devices, progress=False)
        out[devices] = {"eta": result.solver.learned_parameters()["eta"].tolist(),
                        "losses": result.losses.tolist(), "compilations": result.compilations,
                        "mse": evaluate(result.solver, problem, key=5, batch_size=16, batches=2)["mse"].tolist()}
    members = train_ensemble(StepGD(StepGD.Options(period=4, reciprocal=True), problem=problem, depth=8), problem,
                             Incremental(), keys=[3, 4], steps_per_stage=10, batch_size=16, log_loss=True, devices=2,
                             progress=False)
    out["ensemble"] = {"eta": members[0].solver.learned_parameters()["eta"].tolist(),
                       "losses": members[0].losses.tolist()}
    try:
        train(StepGD(StepGD.Options(), problem=problem, depth=8), problem, Incremental(), batch_size=10,
              devices=4, progress=False)
    except ValueError as error:
        out["error"] = str(error)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def runs():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    tests = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", SCRIPT, tests], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("devices", ["2", "4"])
def test_sharded_training_matches_one_device(runs, devices):
    one, many = runs["1"], runs[devices]
    assert many["compilations"] == 1
    np.testing.assert_allclose(many["losses"], one["losses"], rtol=1e-4)
    np.testing.assert_allclose(many["eta"], one["eta"], rtol=1e-4)
    np.testing.assert_allclose(many["mse"], one["mse"], rtol=1e-3)


def test_a_sharded_ensemble_member_matches_one_device(runs):
    np.testing.assert_allclose(runs["ensemble"]["losses"], runs["1"]["losses"], rtol=1e-4)
    np.testing.assert_allclose(runs["ensemble"]["eta"], runs["1"]["eta"], rtol=1e-4)


def test_a_batch_that_does_not_split_evenly_is_refused(runs):
    assert runs["error"] == "train.batch_size 10 cannot be split over 4 devices: use a multiple of 4"
