"""Networks as learned parts of a step: the parameter policy of du_framework.Network, point by point."""

import numpy as np
import pytest
from network_solvers import GDNet, kernel

from du_framework import Stage
from du_framework.engine import train, train_ensemble
from du_framework.engine.resume import load_train_state, save_train_state
from du_framework.testing import SolverCase, parametrize_with_checks, small_problem

SETTINGS = dict(batch_size=8, chunk_size=4, progress=False)


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=6, m=12, lam=1.0, seed=3)


def build(problem, networks="shared", depth=4, **options):
    return GDNet(GDNet.Options(networks=networks, **options), problem=problem, depth=depth)


@pytest.mark.parametrize("networks", ["shared", "per-iteration"])
def test_resuming_a_network_run_from_its_file_ends_bitwise_as_the_uninterrupted_run(problem, tmp_path, networks):
    states = []
    whole = train(build(problem, networks), problem, "incremental", key=5, on_stage_end=states.append,
                  steps_per_stage=4, **SETTINGS)
    path = save_train_state(tmp_path / "after-2.npz", states[1])
    resumed = train(build(problem, networks), problem, "incremental", key=5, resume=load_train_state(path),
                    steps_per_stage=4, **SETTINGS)
    for layer in (0, 1):
        np.testing.assert_array_equal(kernel(resumed.solver, layer), kernel(whole.solver, layer))
    np.testing.assert_array_equal(resumed.losses, whole.losses)


@parametrize_with_checks([SolverCase(GDNet, GDNet.Options(width=8), depth=3, steps_per_stage=20, id="gd-net-shared"),
                          SolverCase(GDNet, GDNet.Options(width=8, networks="per-iteration"), depth=3,
                                     steps_per_stage=20, id="gd-net-per-iteration")])
def test_a_network_holding_solver_passes_the_conformance_kit(case, check):
    check(case)
