"""Resumable training: a run continued from a stage boundary ends exactly as the uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from core_solvers import StepGD

from du_framework import CheckpointError, Stage
from du_framework.engine import train, train_ensemble
from du_framework.engine.resume import load_train_state, save_train_state
from du_framework.schedules import Incremental
from du_framework.testing import small_problem

SETTINGS = dict(steps_per_stage=6, batch_size=8, chunk_size=4, progress=False)


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=6, m=12, lam=1.0, seed=3)


def solver(problem, depth=5):
    return StepGD(StepGD.Options(reciprocal=True), problem=problem, depth=depth)


def test_resuming_after_any_stage_ends_bitwise_as_the_uninterrupted_run(problem, tmp_path):
    states = []
    whole = train(solver(problem), problem, Incremental(), key=3, on_stage_end=states.append, **SETTINGS)
    assert [state.stages_done for state in states] == [1, 2, 3, 4, 5]
    for state in states[:-1]:
        path = save_train_state(tmp_path / f"after-{state.stages_done}.npz", state)
        resumed = train(solver(problem), problem, Incremental(), key=3, resume=load_train_state(path), **SETTINGS)
        np.testing.assert_array_equal(resumed.solver.eta[...], whole.solver.eta[...])
        np.testing.assert_array_equal(resumed.losses, whole.losses)
        assert resumed.stage_losses == whole.stage_losses


def test_resuming_keeps_the_optimizer_state_across_restart_stages_and_ensembles(problem):
    stages = [Stage(2, 5), Stage(3, 5, restart_optimizer=True), Stage(5, 5)]
    states = []
    whole = train_ensemble(solver(problem), problem, stages, keys=[0, 1], on_stage_end=states.append, **SETTINGS)
    resumed = train_ensemble(solver(problem), problem, stages, keys=[0, 1], resume=states[0], **SETTINGS)
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a.solver.eta[...], b.solver.eta[...])
        np.testing.assert_array_equal(a.losses, b.losses)


def test_a_state_of_another_run_is_refused(problem, tmp_path):
    states = []
    train(solver(problem), problem, Incremental(), key=3, on_stage_end=states.append, **SETTINGS)
    with pytest.raises(CheckpointError, match="holds parameters"):
        train(StepGD(StepGD.Options(period=2), problem=problem, depth=5), problem, Incremental(), key=3,
              resume=states[1], **SETTINGS)
    with pytest.raises(CheckpointError, match="does not fit this run's optimiser"):
        train(solver(problem), problem, Incremental(), key=3, resume=states[1], optimizer="sgd", **SETTINGS)
    with pytest.raises(CheckpointError, match="stages done, but the schedule has 2"):
        train(solver(problem), problem, [Stage(2, 3), Stage(5, 3)], key=3, resume=states[3], **SETTINGS)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(CheckpointError, match="is not a readable du-framework training state"):
        load_train_state(tmp_path / "junk.npz")


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from core_solvers import StepGD
    from du_framework.engine import train
    from du_framework.engine.resume import save_train_state
    from du_framework.schedules import Incremental
    from du_framework.testing import small_problem

    problem = small_problem(n=6, m=12, lam=1.0, seed=3)
    solver = StepGD(StepGD.Options(reciprocal=True), problem=problem, depth=30)

    def checkpoint(state):
        save_train_state(sys.argv[2], state)
        print("stage", state.stages_done, flush=True)
        time.sleep(0.05)  # a slow stage, so the parent's kill lands in the middle of the run

    train(solver, problem, Incremental(), key=3, steps_per_stage=6, batch_size=8, chunk_size=4, progress=False,
          on_stage_end=checkpoint)
    print("finished", flush=True)
""")


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(problem, tmp_path):
    state_file = tmp_path / "state.npz"
    tests = os.path.dirname(os.path.abspath(__file__))
    child = subprocess.Popen([sys.executable, "-c", CHILD, tests, str(state_file)], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    for line in child.stdout:
        if line.startswith("stage") and int(line.split()[1]) >= 5 or time.monotonic() > deadline:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the child must have been killed, not have finished"
    state = load_train_state(state_file)
    assert 5 <= state.stages_done < 30
    resumed = train(StepGD(StepGD.Options(reciprocal=True), problem=problem, depth=30), problem, Incremental(),
                    key=3, resume=state, **SETTINGS)
    whole = train(StepGD(StepGD.Options(reciprocal=True), problem=problem, depth=30), problem, Incremental(),
                  key=3, **SETTINGS)
    np.testing.assert_array_equal(resumed.solver.eta[...], whole.solver.eta[...])
    np.testing.assert_array_equal(resumed.losses, whole.losses)
