"""du-framework benchmarks: ``make bench`` (or ``python benchmarks/run.py``).

Seven benchmarks, each measured side by side in one run and reported as ratios;
absolute seconds are printed and stored, never asserted:

1. ``reference``: the reference schedule, hand-written straightforward JAX (as a
   process) versus ``unfold train`` (as a process) versus the framework's training
   call in one process after warm-up versus one fused XLA program.
2. ``theory``: learned DU-GD steps against the Chebyshev steps and the best
   constant step on the same fresh instances, over several training seeds and
   problem matrices, with the book's recipe beside the reference recipe.
3. ``scaling``: time and memory against depth (with and without
   rematerialisation), against problem size, and against ensemble size (vmap
   versus one run after another).
4. ``sharding``: the instance batch split over 1, 2 and 4 devices (on CPU
   through ``XLA_FLAGS=--xla_force_host_platform_device_count=4``).
5. ``comparison``: a whole-process ``unfold compare`` of the reference experiment
   (6 solvers, 2 learned), empty and warm compile cache: the share of its wall
   time that is not training (start-up, setup, evaluation, reports and figures),
   with the command's own breakdown (``timings`` in manifest.json). Goal: at most
   25% of the wall time.
6. ``families``: MIMO detection (64 x 64) and LDPC decoding (the 576-bit
   802.16e code) at size, with the ``ldpc`` package's decoder as a throughput
   peer (``benchmarks/families.py``).
7. ``size``: the engine at size (sparse recovery n = 500 and 2000, ridge n = 1000, MIMO 64 x 64,
   LDPC): training time, achieved GFLOP/s and the GEMM roofline of the same shapes measured in the
   same run, compilations, program memory, and memory against depth up to D = 1000 per backward
   mode (``benchmarks/size.py``; ``make bench-size`` runs it alone).

Each writes ``benchmarks/results/<name>.json`` (or under ``--out``). ``--quick``
shrinks every size so that the whole suite runs in about a minute (a smoke test,
not a measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from families import bench_families  # beside this script
from size import bench_size

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHMARKS = ("reference", "theory", "scaling", "sharding", "comparison", "families", "size")


# ----------------------------------------------------------------------------- helpers

def machine() -> dict:
    import jax

    device = jax.devices()[0]
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "device_count": jax.device_count(),
    }


def run_process(command: list[str], env: dict | None = None) -> dict:
    """Run ``command``; return its wall time, peak RSS (from wait4) and stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n{stderr[-3000:]}")
    return {"wall_seconds": wall, "peak_rss_bytes": usage.ru_maxrss * 1024, "stdout": stdout}


def reference_problem(seed: int = 0, n: int = 50, m: int = 100):
    from du_gd_ridge import RidgeProblem

    return RidgeProblem.from_options(RidgeProblem.Options(n=n, m=m, lam=3.0, seed=seed))


def mse_of_steps(problem, eta, depth: int = 50) -> np.ndarray:
    """MSE curve of DU-GD with the given steps on the reference evaluation instances."""
    from du_framework.workbench.compare import evaluation_key
    from du_framework.engine import evaluate
    from du_gd_ridge import DUGD

    solver = DUGD(DUGD.Options(period=len(eta), parametrization="step"), problem=problem, depth=depth)
    solver.eta[...] = np.asarray(eta, np.float32)
    return evaluate(solver, problem, key=evaluation_key(2026), batch_size=100, batches=10)["mse"]


def theory_curves(problem, depth: int = 50) -> dict:
    from du_framework.theory import best_constant_step, chebyshev_steps

    bounds = problem.spectrum_bounds()
    return {
        "chebyshev": mse_of_steps(problem, chebyshev_steps(*bounds, 4), depth),
        "gd": mse_of_steps(problem, [best_constant_step(*bounds)], depth),
    }


def table(rows: list[list], header: list[str]) -> str:
    cells = [[str(c) for c in row] for row in [header] + rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def mib(nbytes) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f} MiB"


def write(out_dir: Path, name: str, data: dict) -> Path:
    from du_framework.io.atomic import atomic_write

    path = out_dir / f"{name}.json"
    with atomic_write(path) as handle:
        handle.write(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------- 1. reference

def bench_reference(quick: bool) -> dict:
    from du_framework.workbench.config import load_config
    from du_framework.workbench.compare import build_schedule, build_solvers, training_key
    from du_framework.engine import clear_program_cache, program_memory, train

    depth = 6 if quick else 50
    python = sys.executable
    unfold = str(Path(python).with_name("unfold"))
    problem = reference_problem()

    # (a) the straightforward hand-written program, as a process
    straight = run_process([python, str(HERE / "baselines.py"), "straightforward", "--depth", str(depth)])
    straight.update(json.loads(straight.pop("stdout").strip().splitlines()[-1]))

    # (b) `unfold train` on the reference experiment's DU-GD, as a process
    from du_framework.io.checkpoint import load_checkpoint

    overrides = [f"train.depth={depth}"]
    config = load_config(None, overrides)
    index = [s.label for s in config.solvers].index("dugd")
    processes = {}
    with tempfile.TemporaryDirectory() as tmp:
        # An empty compilation cache first (what a first run on a machine sees), then the
        # same command again: `unfold` keeps compiled programs on disk (DU_COMPILE_CACHE).
        env = dict(os.environ, DU_COMPILE_CACHE=str(Path(tmp) / "xla"))
        for cache in ("empty", "warm"):
            command = [unfold, "train", "--no-progress", "--out", str(Path(tmp) / cache), "--only", "dugd"]
            for item in overrides:
                command += ["--set", item]
            process = run_process(command, env=env)
            line = next(text for text in process.pop("stdout").splitlines() if text.startswith("dugd:"))
            found = re.search(r"compile ([\d.]+) s, (\d+) compilation", line)
            process["compile_seconds"], process["compilations"] = float(found.group(1)), int(found.group(2))
            template = build_solvers(config, problem)[index]
            trained = load_checkpoint(Path(tmp) / cache / "checkpoints" / "dugd.npz", template)
            process["eta"] = trained.learned_parameters()["eta"].tolist()
            processes[cache] = process

    # (c) the framework's training call inside this process: cold, then warm
    schedule = build_schedule(config)
    calls = []
    clear_program_cache()
    for _ in range(4):
        solver = build_solvers(config, problem)[index]
        result = train(solver, problem, schedule, steps_per_stage=20, batch_size=100,
                       key=training_key(config.train.seed, "dugd"), log_loss=True, progress=False)
        calls.append(result)
    cold, warm = calls[0], min(calls[1:], key=lambda r: r.train_seconds)
    program_bytes = program_memory(build_solvers(config, problem)[index], problem, schedule, steps_per_stage=20,
                                   batch_size=100, log_loss=True)

    # (d) one fused XLA program for the whole schedule, written here by hand
    sys.path.insert(0, str(HERE))
    from baselines import fused

    program = fused(depth=depth, repeats=3)

    rows = {
        "straightforward (process)": {"seconds": straight["wall_seconds"], "train_seconds": straight["train_seconds"],
                                      "compilations": depth, "peak_rss_bytes": straight["peak_rss_bytes"],
                                      "eta": straight["eta"]},
        **{f"unfold train (process, {cache} compile cache)": {
            "seconds": p["wall_seconds"], "compile_seconds": p["compile_seconds"], "compilations": p["compilations"],
            "peak_rss_bytes": p["peak_rss_bytes"], "eta": p["eta"]} for cache, p in processes.items()},
        "framework train(), cold": {"seconds": cold.train_seconds, "compile_seconds": cold.compile_seconds,
                                    "compilations": cold.compilations, "program_bytes": program_bytes,
                                    "eta": cold.solver.learned_parameters()["eta"].tolist()},
        "framework train(), warm": {"seconds": warm.train_seconds, "compile_seconds": warm.compile_seconds,
                                    "compilations": warm.compilations, "program_bytes": program_bytes,
                                    "eta": warm.solver.learned_parameters()["eta"].tolist()},
        "fused program (run only)": {"seconds": program["run_seconds"], "compile_seconds": program["compile_seconds"],
                                     "compilations": 1, "program_bytes": program["program_bytes"],
                                     "eta": program["eta"]},
    }
    for row in rows.values():
        row["mse_final"] = float(mse_of_steps(problem, row["eta"], depth)[-1])
    ratios = {
        "straightforward_over_du_train_process_empty_cache": straight["wall_seconds"]
        / processes["empty"]["wall_seconds"],
        "straightforward_over_du_train_process_warm_cache": straight["wall_seconds"]
        / processes["warm"]["wall_seconds"],
        "framework_warm_over_fused_run": warm.train_seconds / program["run_seconds"],
        "framework_cold_over_fused_compile_and_run": cold.train_seconds
        / (program["run_seconds"] + program["compile_seconds"]),
    }
    print(f"\n== 1. reference schedule (depth {depth}, 20 Adam steps per stage, K=100)")
    print(table([[name, f"{r['seconds']:.2f}", f"{r.get('compile_seconds', float('nan')):.2f}", r["compilations"],
                  mib(r.get("peak_rss_bytes")), mib(r.get("program_bytes")), f"{r['mse_final']:.3e}"]
                 for name, r in rows.items()],
                ["implementation", "seconds", "compile s", "compilations", "process peak RSS", "program memory",
                 f"MSE t={depth}"]))
    for name, value in ratios.items():
        print(f"  {name}: {value:.2f}x")
    return {"depth": depth, "rows": rows, "ratios": ratios}


# ----------------------------------------------------------------------------- 2. theory

def bench_theory(quick: bool) -> dict:
    from du_framework.engine import train_ensemble
    from du_framework.workbench.compare import training_key
    from du_framework.schedules import Incremental
    from du_framework.theory import chebyshev_steps
    from du_gd_ridge import DUGD

    depth = 12 if quick else 50
    seeds = range(2 if quick else 8)
    matrices = (0,) if quick else (0, 1, 2)
    recipes = {
        "reference (reciprocal, log loss, lr 1e-2)": (DUGD.Options(period=4), True),
        "book (eta from 0, MSE, lr 1e-3)": (DUGD.Options(period=4, parametrization="step", lr=1e-3), False),
    }
    out = {"depth": depth, "training_seeds": list(seeds), "matrices": {}}
    print(f"\n== 2. learned versus theory (DU-GD T=4, MSE at t={depth}, fresh instances)")
    rows = []
    for matrix_seed in matrices:
        problem = reference_problem(matrix_seed)
        theory = theory_curves(problem, depth)
        cheb, gd = theory["chebyshev"][-1], theory["gd"][-1]
        entry = {"chebyshev_mse": cheb, "gd_mse": gd, "kappa": problem.mu_max / problem.mu_min,
                 "chebyshev_eta": np.sort(chebyshev_steps(problem.mu_min, problem.mu_max, 4)).tolist(), "recipes": {}}
        for recipe, (options, log_loss) in recipes.items():
            solver = DUGD(options, problem=problem, depth=depth)
            keys = [training_key(seed, "dugd") for seed in seeds]
            members = train_ensemble(solver, problem, Incremental(), keys=keys, steps_per_stage=20, batch_size=100,
                                     log_loss=log_loss, progress=False)
            etas = [m.solver.learned_parameters()["eta"] for m in members]
            # In the learned order: the order of the steps within a period changes the float32 rounding.
            mses = [float(mse_of_steps(problem, eta, depth)[-1]) for eta in etas]
            ratio = np.array(mses) / cheb
            entry["recipes"][recipe] = {"mse": mses, "over_chebyshev": ratio.tolist(),
                                        "below_gd": (gd / np.array(mses)).tolist(),
                                        "sorted_eta": [np.sort(e).tolist() for e in etas],
                                        "train_seconds_all_seeds": members[0].train_seconds}
            rows.append([matrix_seed, f"{entry['kappa']:.1f}", recipe, f"{cheb:.2e}", f"{gd:.2e}",
                         f"{np.median(mses):.2e}", f"{ratio.min():.2f}-{ratio.max():.2f}",
                         f"{(gd / np.array(mses)).min():.2g}"])
        out["matrices"][str(matrix_seed)] = entry
    print(table(rows, ["A seed", "kappa", "recipe", "Chebyshev", "best const GD", "DU-GD median",
                       "DU-GD / Chebyshev", f"GD / DU-GD (worst of {len(seeds)})"]))
    first = out["matrices"][str(matrices[0])]
    print("  sorted learned eta (A seed 0, training seed 0):",
          np.round(first["recipes"][next(iter(recipes))]["sorted_eta"][0], 5).tolist())
    print("  Chebyshev eta (T=4):                           ", np.round(first["chebyshev_eta"], 5).tolist())
    return out


# ----------------------------------------------------------------------------- 3. scaling

def _step_time(problem, depth, steps, remat, batch_size=100):
    """Seconds per optimiser step at full depth (warm program), and program bytes."""
    from du_framework import Stage
    from du_framework.engine import program_memory, train
    from du_gd_ridge import DUGD

    settings = dict(batch_size=batch_size, remat=remat, log_loss=True, chunk_size=steps)

    def run():
        return train(DUGD(DUGD.Options(period=4), problem=problem, depth=depth), problem, [Stage(depth, steps)],
                     key=0, progress=False, **settings)

    cold = run()
    warm = min((run() for _ in range(2)), key=lambda r: r.train_seconds)
    nbytes = program_memory(DUGD(DUGD.Options(period=4), problem=problem, depth=depth), problem,
                            [Stage(depth, steps)], **settings)
    return warm.train_seconds / steps, nbytes, cold.compile_seconds


def backward_memory(problem, depths) -> list[dict]:
    """Program memory of one optimiser step at full depth under each backward mode (compiled, not run)."""
    from du_framework import Stage
    from du_framework.engine import program_memory
    from du_gd_ridge import DUGD

    modes = {"full": {}, "remat (2 levels)": {"remat": True},
             "truncated, K = 10": {"backward": "truncated", "truncate": 10}}
    rows, out = [], []
    for depth in depths:
        memory = {name: program_memory(DUGD(DUGD.Options(period=4), problem=problem, depth=depth), problem,
                                       [Stage(depth, 1)], batch_size=100, **settings)
                  for name, settings in modes.items()}
        out.append({"depth": depth, "program_bytes": memory})
        rows.append([depth] + [mib(memory[name]) for name in modes]
                    + [f"{memory['full'] / memory[name]:.1f}" for name in list(modes)[1:]])
    print("\n== 3a'. backward modes: program memory of one optimiser step at full depth (ridge n=50, batch 100)")
    print(table(rows, ["D"] + list(modes) + [f"full / {name}" for name in list(modes)[1:]]))
    return out


def bench_scaling(quick: bool) -> dict:
    from du_framework.workbench.compare import training_key
    from du_framework.engine import clear_program_cache, train, train_ensemble
    from du_framework.schedules import Incremental
    from du_gd_ridge import DUGD

    out: dict = {}
    problem = reference_problem()
    depths = (10, 40) if quick else (50, 200, 1000)
    steps = 5 if quick else 40
    print("\n== 3a. depth: one optimiser step at full depth (ridge n=50, K=100)")
    rows, out["depth"] = [], []
    for depth in depths:
        for remat in (0, 2, 3):  # checkpoint levels: none, sqrt(D) blocks (remat=True), cube-root blocks
            per_step, nbytes, compile_s = _step_time(problem, depth, steps, remat)
            out["depth"].append({"depth": depth, "remat": remat, "seconds_per_step": per_step,
                                 "program_bytes": nbytes, "compile_seconds": compile_s})
    base = {r["remat"]: r for r in out["depth"] if r["depth"] == depths[0]}
    for r in out["depth"]:
        b = base[r["remat"]]
        r["time_ratio_per_depth"] = (r["seconds_per_step"] / b["seconds_per_step"]) / (r["depth"] / depths[0])
        r["time_over_no_remat"] = r["seconds_per_step"] / next(
            x["seconds_per_step"] for x in out["depth"] if x["depth"] == r["depth"] and x["remat"] == 0)
        r["memory_over_first_depth_same_remat"] = r["program_bytes"] / b["program_bytes"]
        r["memory_over_first_depth_no_remat"] = r["program_bytes"] / base[0]["program_bytes"]
        rows.append([r["depth"], r["remat"] or "no", f"{1e3 * r['seconds_per_step']:.2f}",
                     f"{r['time_over_no_remat']:.2f}",
                     f"{r['time_ratio_per_depth']:.2f}", mib(r["program_bytes"]),
                     f"{r['memory_over_first_depth_same_remat']:.2f}", f"{r['memory_over_first_depth_no_remat']:.2f}"])
    print(table(rows, ["D", "remat levels", "ms/step", "time / no remat", f"(time/D) / (time/D at {depths[0]})",
                       "program memory",
                       f"memory / D={depths[0]} same remat", f"memory / D={depths[0]} no remat"]))

    sizes = (20, 60) if quick else (50, 500, 2000)
    out["backward"] = backward_memory(problem, depths)
    print("\n== 3b. problem size: one optimiser step at depth 50 (m = 2n, K=100)")
    rows, out["size"] = [], []
    for n in sizes:
        sized = reference_problem(0, n, 2 * n)
        per_step, nbytes, compile_s = _step_time(sized, 10 if quick else 50, 2 if n >= 2000 else steps // 2, False)
        schedule_estimate = per_step * 1000 * 0.51  # incremental: stage t costs about t/D of a full step
        out["size"].append({"n": n, "m": 2 * n, "seconds_per_step": per_step, "program_bytes": nbytes,
                            "compile_seconds": compile_s, "reference_schedule_estimate_seconds": schedule_estimate})
        rows.append([n, 2 * n, f"{1e3 * per_step:.1f}", mib(nbytes), f"{schedule_estimate:.1f}"])
    print(table(rows, ["n", "m", "ms/step", "program memory", "50x20-step incremental schedule, est. s"]))

    members = (1, 2) if quick else (1, 2, 4, 8)
    depth = 6 if quick else 50
    print(f"\n== 3c. ensembles: the reference schedule (depth {depth}) for several training seeds")
    rows, out["ensemble"] = [], []
    for count in members:
        keys = [training_key(seed, "dugd") for seed in range(count)]
        clear_program_cache()
        vm = train_ensemble(DUGD(DUGD.Options(), problem=problem, depth=depth), problem, Incremental(), keys=keys,
                            log_loss=True, progress=False)
        clear_program_cache()
        start = time.perf_counter()
        for key in keys:  # one after another; runs 2.. reuse the compiled program
            train(DUGD(DUGD.Options(), problem=problem, depth=depth), problem, Incremental(), key=key,
                  log_loss=True, progress=False)
        sequential = time.perf_counter() - start
        out["ensemble"].append({"members": count, "vmap_seconds": vm[0].train_seconds,
                                "vmap_compile_seconds": vm[0].compile_seconds, "sequential_seconds": sequential})
    for r in out["ensemble"]:
        r["vmap_over_sequential"] = r["vmap_seconds"] / r["sequential_seconds"]
        r["vmap_per_member_over_one"] = r["vmap_seconds"] / r["members"] / out["ensemble"][0]["vmap_seconds"]
        rows.append([r["members"], f"{r['vmap_seconds']:.2f}", f"{r['sequential_seconds']:.2f}",
                     f"{r['vmap_over_sequential']:.2f}", f"{r['vmap_per_member_over_one']:.2f}"])
    print(table(rows, ["seeds", "vmap s (compile incl.)", "sequential s", "vmap / sequential",
                       "vmap per seed / one seed"]))
    return out


# ----------------------------------------------------------------------------- 4. sharding

SHARDING_SCRIPT = """
import json, sys, time
import jax, numpy as np
from du_framework.workbench.compare import evaluation_key, training_key
from du_framework.engine import evaluate, train
from du_framework.schedules import Incremental
from du_gd_ridge import DUGD, RidgeProblem
depth = int(sys.argv[1])
problem = RidgeProblem.from_options(RidgeProblem.Options())
out = {"device_count": jax.device_count(), "runs": {}}
for devices in (1, 2, 4):
    runs = [train(DUGD(DUGD.Options(), problem=problem, depth=depth), problem, Incremental(),
                  key=training_key(1, "dugd"), log_loss=True, devices=devices, progress=False) for _ in range(2)]
    result = runs[1]
    mse = evaluate(result.solver, problem, key=evaluation_key(2026))["mse"]
    out["runs"][devices] = {"eta": result.solver.learned_parameters()["eta"].tolist(), "mse_final": float(mse[-1]),
                            "warm_seconds": result.train_seconds, "cold_seconds": runs[0].train_seconds,
                            "compilations": runs[0].compilations, "losses": result.losses.tolist()}
print(json.dumps(out))
"""


def bench_sharding(quick: bool) -> dict:
    depth = 6 if quick else 50
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = run_process([sys.executable, "-c", SHARDING_SCRIPT, str(depth)], env=env)
    data = json.loads(done["stdout"].strip().splitlines()[-1])
    one = data["runs"]["1"]
    one_losses = np.array(one["losses"])
    rows = []
    for devices, r in data["runs"].items():
        r["max_relative_eta_difference"] = float(np.max(np.abs(np.array(r["eta"]) / np.array(one["eta"]) - 1)))
        relative = np.abs(np.array(r.pop("losses")) / one_losses - 1)
        r["max_relative_loss_difference"] = float(np.max(relative))
        r["max_relative_loss_difference_first_10_stages"] = float(np.max(relative[:200]))
        r["warm_over_one_device"] = r["warm_seconds"] / one["warm_seconds"]
        rows.append([devices, f"{r['warm_seconds']:.2f}", f"{r['warm_over_one_device']:.2f}", r["compilations"],
                     f"{r['max_relative_eta_difference']:.1e}", f"{r['max_relative_loss_difference_first_10_stages']:.1e}",
                     f"{r['max_relative_loss_difference']:.1e}",
                     f"{r['mse_final']:.3e}"])
    print(f"\n== 4. batch sharded over CPU devices (reference schedule, depth {depth}, "
          f"{data['device_count']} forced host devices)")
    print(table(rows, ["devices", "warm s", "vs 1 device", "compilations", "max rel. eta diff",
                       "rel. loss diff, stages 1-10", "rel. loss diff, all", f"MSE t={depth}"]))
    return {"depth": depth, **data}


# ----------------------------------------------------------------------------- 5. comparison

STARTUP_IMPORTS = ("du_framework.cli, du_framework.workbench.compare, du_framework.workbench.report, "
                   "du_framework.engine")
WATCHED_PACKAGES = ("numpy", "ml_dtypes", "jax", "flax", "flax.nnx", "optax", "pluggy")


def import_breakdown(env: dict) -> dict[str, float]:
    """Seconds of each of ``WATCHED_PACKAGES`` in an import-only process (``python -X importtime``: the
    first import of each, with what it imported that was not loaded yet; ml_dtypes is part of jax's).
    A dependency whose import slowed shows here: ml_dtypes 0.7.0 took 1.6 s of jax's 3.2 s on machine C."""
    child = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {STARTUP_IMPORTS}"], env=env,
                           cwd=ROOT, capture_output=True, text=True, check=True)
    seconds = {}
    for line in child.stderr.splitlines():  # "import time: self [us] | cumulative | name", one per module
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and parts[2].strip() in WATCHED_PACKAGES:
            seconds.setdefault(parts[2].strip(), int(parts[1]) / 1e6)
    return seconds

def bench_comparison(quick: bool) -> dict:
    unfold = str(Path(sys.executable).with_name("unfold"))
    overrides = ["--set", "train.depth=6"] if quick else []
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, DU_COMPILE_CACHE=str(Path(tmp) / "xla"))
        # Start-up alone: the interpreter and the imports every `unfold compare` pays before its work.
        imports = None if quick else run_process([sys.executable, "-c", f"import {STARTUP_IMPORTS}"], env=env)
        breakdown = {} if quick else import_breakdown(env)
        # `unfold --help` against `import jax` (the goal: under a third), each the best of three runs
        quick_commands = {"unfold_help": [unfold, "--help"], "import_jax": [sys.executable, "-c", "import jax"]}
        best = {name: min(run_process(command, env=env)["wall_seconds"] for _ in range(1 if quick else 3))
                for name, command in quick_commands.items()}
        for cache in ("empty",) if quick else ("empty", "warm"):  # --quick: one process, a smoke test
            out = Path(tmp) / cache
            process = run_process([unfold, "compare", "--experiment", "reference", "--no-progress",
                                   "--out", str(out), *overrides], env=env)
            results = json.loads((out / "results.json").read_text())
            manifest = json.loads((out / "manifest.json").read_text())
            training = sum(solver["train_seconds"] for solver in results["solvers"].values())
            evaluation = sum(solver.get("evaluation_seconds") or 0.0 for solver in results["solvers"].values())
            timings = manifest.get("timings") or {}
            wall = process["wall_seconds"]
            runs[cache] = {"wall_seconds": wall, "training_seconds": training, "evaluation_seconds": evaluation,
                           "non_training_seconds": wall - training, "non_training_share": (wall - training) / wall,
                           "startup_seconds": wall - timings["total"] if "total" in timings else None,
                           "timings": timings, "peak_rss_bytes": process["peak_rss_bytes"],
                           "mse_final": {label: solver["metrics"]["mse"][-1]
                                         for label, solver in results["solvers"].items()}}
    rows = [[cache, f"{r['wall_seconds']:.2f}", f"{r['training_seconds']:.2f}", f"{r['evaluation_seconds']:.2f}",
             f"{r['timings'].get('report', float('nan')):.2f}",
             f"{r['startup_seconds']:.2f}" if r["startup_seconds"] is not None else "-",
             f"{100 * r['non_training_share']:.0f}%"] for cache, r in runs.items()]
    print(f"\n== 5. whole-process `unfold compare` of the reference ({'depth 6' if quick else 'depth 50'})")
    print(table(rows, ["compile cache", "wall s", "training s", "evaluation s", "report s", "start-up s",
                       "not training"]))
    if imports is not None:
        print(f"  import-only process: {imports['wall_seconds']:.2f} s; of it, by -X importtime: "
              + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in breakdown.items()))
    print(f"  `unfold --help` {best['unfold_help']:.2f} s, `python -c \"import jax\"` {best['import_jax']:.2f} s")
    ratios = {f"non_training_share_{cache}_cache": r["non_training_share"] for cache, r in runs.items()}
    goals = {name: ("<=", 0.25) for name in ratios}
    ratios["help_over_import_jax"], goals["help_over_import_jax"] = best["unfold_help"] / best["import_jax"], ("<", 1 / 3)
    for name, value in ratios.items():
        print(f"  {name}: {value:.2f} (goal {goals[name][0]} {goals[name][1]:.2f})")
    return {"runs": runs, "import_seconds": imports["wall_seconds"] if imports else None,
            "import_breakdown_seconds": breakdown, "quick_commands_seconds": best, "ratios": ratios,
            "goals": {name: goal[1] for name, goal in goals.items()}, "goal": 0.25}


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="du-framework benchmarks")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON results")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    runners = {"reference": bench_reference, "theory": bench_theory, "scaling": bench_scaling,
               "sharding": bench_sharding, "comparison": bench_comparison, "families": bench_families, "size": bench_size}
    print("machine:", json.dumps(machine()))
    for name in chosen:
        start = time.perf_counter()
        data = runners[name](args.quick)
        data["quick"] = args.quick
        data["benchmark_seconds"] = time.perf_counter() - start
        print(f"  -> {write(args.out, name, data)} ({data['benchmark_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
