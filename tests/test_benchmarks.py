"""The benchmark suite runs end to end (tiny sizes: a smoke test, no timing asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmarks_write_every_result_file(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comparison.json", "families.json", "reference.json",
                                                         "scaling.json", "sharding.json", "size.json", "theory.json"]
    families = json.loads((tmp_path / "families.json").read_text())
    assert set(families["mimo"]["solvers"]) == {"zf", "lmmse", "pg", "tpg", "oamp", "oamp-net"}
    assert all(0 <= row["ser"] <= 1 for row in families["mimo"]["solvers"].values())
    for point in families["ldpc"]["throughput"].values():  # both decoders timed against the ldpc package
        assert {"bp", "min-sum"} <= set(point) and all(row["ratio_codewords"] > 0 for row in point.values())
    size = json.loads((tmp_path / "size.json").read_text())
    (case,) = size["cases"].values()
    for row in case["solvers"].values():  # the arithmetic counted, and the roofline measured in the same run
        assert row["gflop"] > 0 and row["roofline_seconds"] > 0 and row["over_roofline"] > 0
    assert min(case["gemm_gflops"].values()) > 0
    assert [row["depth"] for row in size["memory_against_depth"]] == [4, 16]
    reference = json.loads((tmp_path / "reference.json").read_text())
    rows = reference["rows"]
    assert rows["unfold train (process, empty compile cache)"]["compilations"] == 1
    assert rows["framework train(), cold"]["compilations"] == 1
    assert rows["framework train(), warm"]["compilations"] == 0
    # The same schedule and the same recipe reach the same steps in and out of a process.
    assert rows["unfold train (process, empty compile cache)"]["eta"] == rows["framework train(), cold"]["eta"]
    assert rows["unfold train (process, warm compile cache)"]["eta"] == rows["framework train(), cold"]["eta"]
    sharding = json.loads((tmp_path / "sharding.json").read_text())
    assert sharding["device_count"] == 4
    assert all(run["max_relative_eta_difference"] < 1e-4 for run in sharding["runs"].values())
    assert "straightforward_over_du_train_process_warm_cache" in reference["ratios"]
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    for run in comparison["runs"].values():  # the parts add up: training is inside the process's wall time
        assert 0 < run["training_seconds"] < run["wall_seconds"]
        assert run["non_training_share"] == pytest.approx(1 - run["training_seconds"] / run["wall_seconds"])
    seconds = comparison["quick_commands_seconds"]  # timed, not compared here (the benchmark prints the ratio)
    assert seconds["unfold_help"] > 0 and seconds["import_jax"] > 0
    assert comparison["ratios"]["help_over_import_jax"] == pytest.approx(seconds["unfold_help"] / seconds["import_jax"])


def test_an_unknown_benchmark_is_refused():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "referense"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and "unknown benchmark(s) ['referense']" in done.stderr


@pytest.mark.parametrize("plugins", [""], ids=["registered-in-process"])
def test_the_at_size_benchmark_runs_with_installed_or_in_process_plugins(tmp_path, plugins):
    """benchmarks/at_size.py (what gpu.sh runs) on tiny sizes; with DU_PLUGINS empty no entry point loads, so the
    checkout's plugins are registered in process, as on a GPU host where the project is not installed."""
    import os

    env = {**os.environ} if plugins is None else {**os.environ, "DU_PLUGINS": plugins}
    sizes = ["--set", "problem.n=20", "--set", "problem.m=10", "--set", "train.depth=2",
             "--set", "train.steps_per_stage=2", "--set", "evaluation.batches=1", "--only", "du-ista,ista"]
    out = tmp_path / "at_size.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "at_size.py"), *sizes, "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(out.read_text())
    assert sorted(facts["solvers"]) == ["du-ista", "ista"] and facts["sizes"] == "n=20, m=10, depth 2"
    assert facts["solvers"]["du-ista"]["compilations"] == 1 and facts["solvers"]["ista"]["train_seconds"] == 0


@pytest.mark.parametrize("script", ["peers.py", "peers_deblur.py"])
def test_the_peers_benchmark_says_how_to_create_the_peers_environment(tmp_path, script):
    missing = tmp_path / "no-venv" / "bin" / "python"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--peers-python", str(missing),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and "make bench-peers" in done.stderr and not list(tmp_path.glob("*.json"))


def test_the_peers_evaluator_is_the_du_ista_recursion():
    """benchmarks/peers.py's float64 evaluator against du-framework's ISTA on the same operator: ISTA is DU-ISTA
    with beta = 1/L and theta = lam/L, so both NMSE curves end within the sampling error of 2000 instances."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import peers
    finally:
        sys.path.pop(0)
    from du_framework.engine import evaluate
    from du_framework.workbench.build import build_problem, build_solver
    from du_framework.workbench.config import load_config, select_solvers

    overrides = ["problem.n=60", "problem.m=30", "train.depth=8"]
    config, task = peers.task_of(overrides)
    ours = peers.evaluate(task, np.full(8, 1 / task["lipschitz"]), np.full(8, task["lam"] / task["lipschitz"]))
    config = select_solvers(load_config(overrides=overrides, experiment="sparse-recovery"), ["ista"])
    problem = build_problem(config)
    ista = build_solver(config.solvers[0], problem, 8)
    theirs = evaluate(ista, problem, key=3, batch_size=500, batches=4, metrics=("nmse_db",))["nmse_db"][-1]
    assert abs(ours - theirs) < 0.3 and ours < -1.0


def test_the_start_up_split_names_the_slow_imports():
    """The comparison benchmark splits an import-only process by package (``python -X importtime``)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run as benchmarks
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    seconds = benchmarks.import_breakdown(dict(os.environ))
    assert set(seconds) == set(benchmarks.WATCHED_PACKAGES), "each watched package is imported, and found"
    assert all(value > 0 for value in seconds.values())
