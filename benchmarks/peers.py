"""``make bench-peers``: DU-ISTA at n = 500 trained by du-framework, by hand in PyTorch and by DeepInverse.

    python benchmarks/peers.py --peers-python .venv-peers/bin/python [--set problem.n=200] [--quick]

The task is the shipped ``sparse-recovery`` example's DU-ISTA (n = 500, m = 250, p = 0.1, 40 dB,
depth 16, incremental with 50 Adam steps per stage, batch 64, step rate 1e-2, threshold rate 3e-3).
This script writes the task (the example's operator ``A``, the noise variance, the initial steps
and thresholds ``1/L`` and ``lam/L``, the rates and the schedule) to ``task.npz``; trains du-ista
with du-framework in this process; runs ``benchmarks/peers/torch_peers.py`` in the peers' own
environment (a PyTorch eager loop, the same under ``torch.compile``, DeepInverse's unfolded PGD),
each from the same initialisation on fresh instances of the same distribution; and scores every
learned ``(beta_t, theta_t)`` with one evaluator: the DU-ISTA recursion in float64 NumPy on the same
2000 fresh instances, NMSE in dB after 16 iterations, beside ISTA at the example's ``lam``.

Times: ``train`` is each implementation's own training loop, compilation included (one XLA program
for du-framework; 16 graphs for ``torch.compile``); ``process`` is the wall time of a fresh process
that imports its library and trains (``unfold train`` for du-framework). Ratios are of numbers
measured in this run. Writes ``benchmarks/results/peers.json`` and prints the table that
docs/performance.md shows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXPERIMENT = "sparse-recovery"
PEERS = ("eager", "compile", "deepinv")
PEER_NAMES = {"du-framework": "du-framework (one XLA program)", "eager": "PyTorch, hand-written eager loop",
              "compile": "PyTorch, torch.compile", "deepinv": "DeepInverse unfolded PGD"}


def task_of(overrides: list[str]):
    """The example's configuration (DU-ISTA only), its problem and solver, and the task's arrays."""
    from du_framework.workbench.build import build_problem, build_solver
    from du_framework.workbench.config import load_config, select_solvers

    config = select_solvers(load_config(overrides=overrides, experiment=EXPERIMENT), ["du-ista"])
    problem = build_problem(config)
    entry = config.solvers[0]
    solver = build_solver(entry, problem, config.train.depth)
    options = entry.options
    task = {"A": np.asarray(problem.operator(), np.float32), "sigma2": problem.sigma2, "p": problem.p,
            "beta0": np.asarray(solver.beta[...], np.float64), "theta0": np.asarray(solver.theta[...], np.float64),
            "lam": options.lam, "lipschitz": float(problem.lipschitz_bound()), "lr": options.lr,
            "threshold_lr": options.threshold_lr, "depth": config.train.depth,
            "steps_per_stage": config.train.steps_per_stage, "batch_size": config.train.batch_size,
            "seed": config.train.seed}
    return config, task


def evaluate(task: dict, beta: np.ndarray, theta: np.ndarray, instances: int = 2000, seed: int = 2026) -> float:
    """NMSE (dB) of the DU-ISTA recursion with ``beta``, ``theta`` after all iterations, float64 NumPy."""
    rng = np.random.default_rng(seed)
    A = task["A"].astype(np.float64)
    m, n = A.shape
    x = np.where(rng.random((instances, n)) < task["p"], rng.standard_normal((instances, n)), 0.0)
    y = x @ A.T + np.sqrt(task["sigma2"]) * rng.standard_normal((instances, m))
    estimate = np.zeros_like(x)
    for b, t in zip(np.asarray(beta, np.float64), np.asarray(theta, np.float64)):
        r = estimate + b * ((y - estimate @ A.T) @ A)
        estimate = np.sign(r) * np.maximum(np.abs(r) - t, 0.0)
    return float(10 * np.log10(np.sum((estimate - x) ** 2) / np.sum(x**2)))


def train_here(config) -> tuple[dict, dict]:
    from du_framework.workbench.compare import run_comparison

    comparison = run_comparison(config, progress=False)
    result = comparison.results["du-ista"]
    params = {"beta": np.asarray(result.params["beta"]), "theta": np.asarray(result.params["theta"])}
    return params, {"train_seconds": result.train_seconds, "compile_seconds": result.compile_seconds,
                    "compilations": result.compilations}


def process_seconds(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers-python", type=Path, default=ROOT / ".venv-peers" / "bin" / "python",
                        help="the Python of the peers' environment (default .venv-peers/bin/python)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the experiment (repeatable), e.g. problem.n=200")
    parser.add_argument("--only", default=",".join(PEERS), help=f"peers to run, of {', '.join(PEERS)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for peers.json")
    args = parser.parse_args(argv)
    if not args.peers_python.exists():
        parser.error(f"{args.peers_python} does not exist: `make bench-peers` creates .venv-peers first")
    peers = [name for name in args.only.split(",") if name]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; choose from {list(PEERS)}")
    overrides = args.set + (["problem.n=40", "problem.m=20", "train.depth=3", "train.steps_per_stage=3"]
                            if args.quick else [])
    config, task = task_of(overrides)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        np.savez(folder / "task.npz", **{key: np.asarray(value) for key, value in task.items()})
        params, rows["du-framework"] = train_here(config)
        rows["du-framework"]["nmse_db"] = evaluate(task, **params)
        peer_started = time.perf_counter()
        done = subprocess.run([str(args.peers_python), str(HERE / "peers" / "torch_peers.py"), str(folder / "task.npz"),
                               str(folder / "peers"), "--only", ",".join(peers)], capture_output=True, text=True)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        rows["peers_process_seconds"] = time.perf_counter() - peer_started
        for name in peers:
            facts = json.loads((folder / "peers" / f"{name}.json").read_text())
            if "error" not in facts:
                with np.load(folder / "peers" / f"{name}.npz", allow_pickle=False) as learned:
                    facts["nmse_db"] = evaluate(task, learned["beta"], learned["theta"])
            rows[name] = facts
        # Whole processes: a fresh interpreter that imports its library and trains the recipe, nothing else.
        unfold = Path(sys.executable).with_name("unfold")
        rows["du-framework"]["process_seconds"] = process_seconds(
            [str(unfold), "train", "--experiment", EXPERIMENT, "--only", "du-ista", "--out", str(folder / "run"),
             *[f"--set={item}" for item in overrides], "--no-progress"], ROOT)
        for name in [peer for peer in peers if "error" not in rows[peer]]:
            rows[name]["process_seconds"] = process_seconds(
                [str(args.peers_python), str(HERE / "peers" / "torch_peers.py"), str(folder / "task.npz"),
                 str(folder / f"again-{name}"), "--only", name], ROOT)
    ista = evaluate(task, np.full(task["depth"], 1 / task["lipschitz"]),
                    np.full(task["depth"], task["lam"] / task["lipschitz"]))
    ours = rows["du-framework"]["train_seconds"]
    print(f"\nDU-ISTA, {EXPERIMENT} (n={config.problem.options.n}, m={config.problem.options.m}, depth "
          f"{task['depth']}, incremental {task['steps_per_stage']} Adam steps per stage, batch {task['batch_size']})")
    print(f"{'implementation':38s} {'train (s)':>10s} {'process (s)':>12s} {'train / ours':>13s} {'NMSE t=D (dB)':>14s}")
    for name in ["du-framework", *peers]:
        row = rows[name]
        if "error" in row:
            print(f"{PEER_NAMES[name]:38s} did not run here: {row['error'][:200]}")
            continue
        row["over_du_framework"] = row["train_seconds"] / ours
        print(f"{PEER_NAMES[name]:38s} {row['train_seconds']:10.2f} {row.get('process_seconds', float('nan')):12.2f} "
              f"{row['over_du_framework']:13.2f} {row['nmse_db']:14.2f}")
    print(f"{'ISTA at lam = ' + str(task['lam']) + ' (not trained)':38s} {'':10s} {'':12s} {'':13s} {ista:14.2f}")
    data = {"benchmark": "peers", "sizes": f"n={config.problem.options.n}, m={config.problem.options.m}, "
            f"depth {task['depth']}", "quick": args.quick, "rows": rows, "ista_nmse_db": ista}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers.json").write_text(json.dumps(data, indent=1, default=float) + "\n")
    print(f"  -> {args.out / 'peers.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
