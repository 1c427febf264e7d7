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
    import jax
    from du_framework.engine import evaluate, train
    from du_framework.schedules import Incremental
    from du_gd_ridge import DUGD, RidgeProblem

    assert len(jax.devices()) == 4, jax.devices()
    problem = RidgeProblem.from_options(RidgeProblem.Options(n=12, m=24, lam=1.0, seed=2))
    out = {}
    for devices in (1, 2, 4):
        solver = DUGD(DUGD.Options(period=4), problem=problem, depth=8)
        result = train(solver, problem, Incremental(), steps_per_stage=10, batch_size=16, key=3,
                       log_loss=True, devices=devices, progress=False)
        out[devices] = {"eta": result.solver.learned_parameters()["eta"].tolist(),
                        "losses": result.losses.tolist(), "compilations": result.compilations,
                        "mse": evaluate(result.solver, problem, key=5, batch_size=16, batches=2).tolist()}
    try:
        train(DUGD(DUGD.Options(), problem=problem, depth=8), problem, Incremental(), batch_size=10,
              devices=4, progress=False)
    except ValueError as error:
        out["error"] = str(error)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def runs():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("devices", ["2", "4"])
def test_sharded_training_matches_one_device(runs, devices):
    one, many = runs["1"], runs[devices]
    assert many["compilations"] == 1
    np.testing.assert_allclose(many["losses"], one["losses"], rtol=1e-4)
    np.testing.assert_allclose(many["eta"], one["eta"], rtol=1e-4)
    np.testing.assert_allclose(many["mse"], one["mse"], rtol=1e-3)


def test_a_batch_that_does_not_split_evenly_is_refused(runs):
    assert runs["error"] == "batch_size 10 cannot be split over 4 devices: use a multiple of 4"
