"""Several processes train one run together (``jax.distributed``, gloo on CPU) and match one process.

Two local CPU processes, two host devices each (four global devices, as two
2-GPU hosts would be), connect to a coordinator on a free localhost port and train
the same run; a third process trains it alone on one device. Every subprocess has
a timeout, so a hang (a process that never connects, a collective one side never
enters) fails the test instead of blocking the suite.

Tolerance. The two processes run one program on identical replicated inputs, so
they must agree bitwise. Against one process the batch loss is summed in another
order (four partial sums, then an all-reduce), which changes each float32 loss and
gradient by a few units in the last place (~1e-7 relative); Adam's steps carry that
through the 80 steps without amplifying it while the loss is far above float32's
floor (it stays above 1e-3 here); the measured difference is 4.6e-6 (losses) and 1.7e-6
(learned steps). So the
results must agree to rtol 2e-5, well below any change a real bug (a lost shard, a
double-counted shard, unsynchronised parameters) makes: those change the loss at once
by tens of percent.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from du_framework.engine import distributed
from du_framework.errors import ConfigError

TESTS = Path(__file__).resolve().parent
TIMEOUT = 120  # seconds for a whole group of processes; the group takes about 10 s on 2 loaded cores
RTOL = 2e-5

WORKER = textwrap.dedent("""
    import json
    import sys

    sys.path.insert(0, sys.argv[1])
    import jax

    if getattr(jax.config, "jax_cpu_collectives_implementation", "missing") == "missing":
        print(json.dumps({"skip": f"jax {jax.__version__} has no CPU collectives option (gloo)"}))
        sys.exit(0)
    from du_framework.engine import distributed, train, train_ensemble
    from du_framework.engine.loop import _prepare, _stage_args, resolve_settings
    from du_framework.engine.program import lower_chunk
    from du_framework.schedules import Incremental
    from du_framework.testing import small_problem
    from core_solvers import StepGD

    started = distributed.initialize_from_environment()
    problem = small_problem(n=12, m=24, lam=1.0, seed=2)
    settings = dict(steps_per_stage=10, batch_size=16, log_loss=True, devices=0, progress=False)

    def solver():
        return StepGD(StepGD.Options(period=4, reciprocal=True), problem=problem, depth=8)

    stages = []
    single = train(solver(), problem, Incremental(), key=3, on_stage_end=stages.append, **settings)
    members = train_ensemble(solver(), problem, Incremental(), keys=[3, 4], **settings)
    out = {"started": started, "process": jax.process_index(), "processes": jax.process_count(),
           "devices": jax.device_count(), "local_devices": jax.local_device_count(),
           "eta": single.solver.learned_parameters()["eta"].tolist(), "losses": single.losses.tolist(),
           "stage_losses": single.stage_losses, "compilations": single.compilations,
           "stage_states": [state.losses.tolist() for state in stages],
           "members": [{"eta": m.solver.learned_parameters()["eta"].tolist(), "losses": m.losses.tolist()}
                       for m in members]}
    if jax.device_count() > 1:  # the gradient is summed across devices by a collective in the program
        resolved = resolve_settings(None, {k: v for k, v in settings.items() if k != "progress"})
        stage_list, spec, state, _, factors = _prepare(solver(), problem, Incremental(), resolved, [3], False)
        text = lower_chunk(*state, *_stage_args(stage_list[0], 1, True), factors, spec=spec).compile().as_text()
        out["all_reduce"] = "all-reduce" in text
        try:
            train(solver(), problem, Incremental(), key=3, **{**settings, "devices": 1})
        except Exception as error:
            out["devices_1"] = f"{type(error).__name__}: {error}"
    print(json.dumps(out))
""")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _clean_env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DU_NUM", "DU_PROCESS", "DU_COORD",
                                                                                    "DU_DISTRIBUTED"))}
    env.update(JAX_PLATFORMS="cpu", DU_COMPILE_CACHE="off", PYTHONUNBUFFERED="1")
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _run_group(commands: list[tuple[list[str], dict]]) -> list[subprocess.CompletedProcess]:
    """Start every command at once; wait for all (killing all on a timeout, which fails the test)."""
    started = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for args, env in commands]
    done = []
    try:
        for process in started:
            out, err = process.communicate(timeout=TIMEOUT)
            done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    except subprocess.TimeoutExpired:
        for process in started:
            process.kill()
        logs = "\n".join((process.communicate()[1] or "")[-1500:] for process in started)
        pytest.fail(f"the processes did not finish within {TIMEOUT} s (a hang in the distributed runtime):\n{logs}")
    return done


def _json_line(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def runs():
    """(process 0, process 1, one process alone) of the same training."""
    port = _free_port()
    group = [([sys.executable, "-c", WORKER, str(TESTS)],
              _clean_env(DU_NUM_PROCESSES="2", DU_PROCESS_ID=str(rank), DU_COORDINATOR_ADDRESS=f"localhost:{port}",
                         DU_DISTRIBUTED_TIMEOUT="60", XLA_FLAGS="--xla_force_host_platform_device_count=2"))
             for rank in (0, 1)]
    group.append(([sys.executable, "-c", WORKER, str(TESTS)], _clean_env()))
    results = [_json_line(done) for done in _run_group(group)]
    if any("skip" in result for result in results):
        pytest.skip(next(result["skip"] for result in results if "skip" in result))
    return results


def test_two_processes_form_one_runtime_over_four_devices(runs):
    first, second, alone = runs
    assert (first["started"], first["process"], first["processes"]) == (True, 0, 2)
    assert (second["started"], second["process"], second["processes"]) == (True, 1, 2)
    assert first["devices"] == second["devices"] == 4 and first["local_devices"] == 2
    assert (alone["started"], alone["processes"], alone["devices"]) == (False, 1, 1)
    assert first["all_reduce"] and second["all_reduce"]  # the batch is split: gradients are summed across devices
    assert first["compilations"] == 1


def test_both_processes_hold_the_same_result_bitwise(runs):
    first, second, _ = runs
    for key in ("eta", "losses", "stage_losses", "stage_states", "members"):
        assert first[key] == second[key], key


def test_two_processes_match_one_process(runs):
    first, _, alone = runs
    assert len(first["losses"]) == len(alone["losses"]) == 80
    assert min(alone["losses"]) > 1e-3  # far above float32's rounding floor, where the tolerance holds
    np.testing.assert_allclose(first["losses"], alone["losses"], rtol=RTOL)
    np.testing.assert_allclose(first["eta"], alone["eta"], rtol=RTOL)
    np.testing.assert_allclose(first["stage_losses"], alone["stage_losses"], rtol=RTOL)
    # the loss fell: training happened (and is not the same trivial result everywhere)
    assert np.mean(alone["losses"][-10:]) < 0.2 * np.mean(alone["losses"][:10])
    # per-stage states (what a resumable checkpoint saves) come back to the host in every process
    assert len(first["stage_states"]) == 8
    np.testing.assert_allclose(first["stage_states"][-1], alone["losses"], rtol=RTOL)


def test_an_ensemble_across_processes_matches_one_process(runs):
    first, _, alone = runs
    np.testing.assert_allclose(first["members"][0]["eta"], alone["eta"], rtol=RTOL)  # member 0 is key 3
    for mine, reference in zip(first["members"], alone["members"]):
        np.testing.assert_allclose(mine["losses"], reference["losses"], rtol=RTOL)
        np.testing.assert_allclose(mine["eta"], reference["eta"], rtol=RTOL)
    assert not np.allclose(first["members"][0]["eta"], first["members"][1]["eta"])  # two different seeds


def test_a_mesh_that_leaves_a_process_out_is_refused(runs):
    assert runs[0]["devices_1"] == ("ConfigError: train.devices = 1 but 2 processes train together on 4 devices: "
                                    "every process must take part, so use train.devices = 0 (all of them)")


@pytest.mark.parametrize("environ, message", [
    ({"DU_NUM_PROCESSES": "2"}, "DU_NUM_PROCESSES=2 but DU_PROCESS_ID is not set"),
    ({"DU_NUM_PROCESSES": "two", "DU_PROCESS_ID": "0"}, "DU_NUM_PROCESSES='two' is not an integer"),
    ({"DU_NUM_PROCESSES": "2", "DU_PROCESS_ID": "2"}, "DU_PROCESS_ID=2 is not in 0..1"),
    ({"DU_NUM_PROCESSES": "0"}, "DU_NUM_PROCESSES=0: use the number of processes"),
    ({"DU_DISTRIBUTED": "maybe"}, "DU_DISTRIBUTED='maybe': use auto"),
])
def test_malformed_environment_is_refused_before_anything_starts(environ, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        distributed.initialize_from_environment(environ)
    assert not distributed.is_initialized()


@pytest.mark.parametrize("environ", [{}, {"DU_NUM_PROCESSES": "1"}, {"DU_NUM_PROCESSES": "", "DU_PROCESS_ID": "0"},
                                     {"DU_DISTRIBUTED": "off", "DU_NUM_PROCESSES": "2", "DU_PROCESS_ID": "0"}])
def test_one_process_starts_nothing(environ):
    assert distributed.initialize_from_environment(environ) is False
    assert not distributed.is_initialized()


def test_initialize_names_what_is_missing():
    with pytest.raises(ConfigError, match="needs num_processes, process_id"):
        distributed.initialize("localhost:1234")
    with pytest.raises(ConfigError, match=r"process id 3 is not in 0\.\.1"):
        distributed.initialize("localhost:1234", 2, 3)


def test_the_cli_trains_one_run_in_two_processes_and_only_process_0_writes(tmp_path):
    """``DU_NUM_PROCESSES=2 unfold train`` in two processes equals ``unfold train`` in one."""
    from plugin_factory import make_distribution

    from du_framework.io.checkpoint import read_checkpoint

    site = make_distribution(tmp_path / "site", "du-core-tests", "core-tests", "du_core_tests",
                             "from core_plugin import register_experiments, register_problems, register_solvers\n")
    plugin = {"PYTHONPATH": os.pathsep.join([str(site), str(TESTS)]), "DU_PLUGINS": "core-tests"}
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    port = _free_port()
    command = [sys.executable, "-m", "du_framework", "train", "--experiment", "small", "--set", "train.devices=0",
               "--set", "train.steps_per_stage=10", "--set", "solvers.learned.reciprocal=true", "--no-progress", "--out"]
    group = [([*command, str(tmp_path / "together")],
              _clean_env(**plugin, DU_NUM_PROCESSES="2", DU_PROCESS_ID=str(rank), TMPDIR=str(scratch),
                         DU_COORDINATOR_ADDRESS=f"localhost:{port}", DU_DISTRIBUTED_TIMEOUT="60"))
             for rank in (0, 1)]
    group.append(([*command, str(tmp_path / "alone")], _clean_env(**plugin)))
    first, second, alone = _run_group(group)
    for done in (first, second, alone):
        assert done.returncode == 0, done.stderr[-3000:]
    assert "learned: trained in" in first.stdout and "into " + str(tmp_path / "together") in first.stdout
    notes = [line for line in second.stdout.splitlines() if not line.startswith("[Gloo]")]  # gloo's own line
    assert notes == ["unfold: process 1 of 2 took part in the run; process 0 writes the run folder and prints "
                     "the results"]
    runs = sorted(path.name for path in tmp_path.iterdir() if not path.name.endswith(".lock"))
    assert runs == ["alone", "scratch", "site", "together"]  # process 1 wrote no run folder of its own
    assert list(scratch.iterdir()) == []  # process 1's scratch run folder is removed
    assert (tmp_path / "together" / "manifest.json").is_file()
    _, together = read_checkpoint(tmp_path / "together" / "checkpoints" / "learned.npz")
    _, reference = read_checkpoint(tmp_path / "alone" / "checkpoints" / "learned.npz")
    assert together.keys() == reference.keys() and together
    for name in reference:
        np.testing.assert_allclose(together[name], reference[name], rtol=RTOL)
