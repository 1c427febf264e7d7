"""``make bench-peers``, imaging: pgd-net against DeepInverse's unrolled PGD with a DnCNN prior, on ``deblur``.

    python benchmarks/peers_deblur.py --peers-python .venv-peers/bin/python [--set train.steps_per_stage=10]

The task is the shipped ``deblur`` experiment (64 x 64 patches, 9 x 9 Gaussian blur of sigma 1.6 with a
periodic boundary, noise 0.01, depth 5, 300 Adam steps of 8 patches): ``pgd-net`` (a residual CNN of 4 layers
of 32 maps, 19,105 weights, tied across iterations, learned steps) trained by ``unfold compare --only pgd-net``
in its own process, and ``deepinv.optim.PGD`` unfolded with a ``DnCNN`` of the same size in the peers' environment
(``benchmarks/peers/deepinv_deblur.py``), trained with the same recipe (rates, start ``A^T y``, initial step
``1/L``) on as many batches drawn from the same training distribution (the same images, crops, flips, blur
and noise). Both restore the same 64 held-out patches (crops of the images kept out of training), scored by
one evaluator, du-imaging's PSNR and SSIM (dm-pix), beside the degraded input and the example's tuned
``tv-pgd``. Times are each training loop's own (compilation included); memory is each training process's
peak resident set. Writes ``benchmarks/results/peers-deblur.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXPERIMENT = "deblur"
TEST_PATCHES = 64

# unfold compare (training, then its own evaluation) in a process of its own, reporting its peak resident set.
_TRAIN = ("import json, resource, sys; from du_framework.cli import main; code = main(sys.argv[1:]); "
          "print(json.dumps({'peak_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})); "
          "sys.exit(code)")


def build(overrides: list[str]):
    from du_framework.workbench.build import build_problem, build_solvers
    from du_framework.workbench.config import load_config, select_solvers

    config = select_solvers(load_config(overrides=overrides, experiment=EXPERIMENT), ["pgd-net", "tv-pgd"])
    problem = build_problem(config)
    return config, problem, dict(zip((entry.label for entry in config.solvers), build_solvers(config, problem)))


def task_of(config, problem, solver) -> dict:
    """What the peer needs: the transfer function, the recipe, training batches and the held-out inputs."""
    import jax

    from du_framework.engine.loop import expand_schedule
    from du_framework.workbench.build import build_schedule

    options = solver.options
    steps = sum(stage.steps for stage in expand_schedule(build_schedule(config), config.train, config.train.depth))
    batch = config.train.batch_size
    draw = jax.jit(lambda key: problem.sample(key, batch))
    batches = [draw(key) for key in jax.random.split(jax.random.key(12345), steps)]
    test = problem.held_out().sample(jax.random.key(2026), TEST_PATCHES)
    spectrum = np.asarray(problem._spectrum())  # noqa: SLF001 - the operator's transfer function, for the peer
    return {"spectrum_re": spectrum.real, "spectrum_im": spectrum.imag, "size": problem.side,
            "noise": problem.options.noise, "depth": config.train.depth, "eta0": 1.0 / problem.lipschitz_bound(),
            "layers": options.layers, "channels": options.channels, "lr": options.lr, "step_lr": options.step_lr,
            "seed": config.train.seed, "train_y": np.stack([np.asarray(b["y"]) for b in batches]),
            "train_x": np.stack([np.asarray(b["target"]) for b in batches]),
            "test_y": np.asarray(test["y"]), "test_x": np.asarray(test["target"])}


def scores(estimate, task) -> dict:
    """PSNR and SSIM (du-imaging's metrics) of restored held-out patches: mean over the patches."""
    import jax.numpy as jnp

    from du_imaging import psnr, ssim

    instance = {"target": jnp.asarray(task["test_x"])}
    estimate = jnp.asarray(estimate, jnp.float32)
    return {"psnr": float(jnp.mean(psnr(estimate, instance))), "ssim": float(jnp.mean(ssim(estimate, instance)))}


def restored(solver, problem, task):
    """The solver's estimates of the held-out patches (one compiled call; a loaded checkpoint holds NumPy arrays)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from du_framework.engine import unroll

    graph, state = nnx.split(solver)
    run = jax.jit(lambda state, instance: unroll(nnx.merge(graph, state), problem, instance)[0])
    return run(state, {"y": jnp.asarray(task["test_y"]), "target": jnp.asarray(task["test_x"])})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers-python", type=Path, default=ROOT / ".venv-peers" / "bin" / "python")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the deblur experiment (repeatable)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for peers-deblur.json")
    args = parser.parse_args(argv)
    if not args.peers_python.exists():
        parser.error(f"{args.peers_python} does not exist: `make bench-peers` creates .venv-peers first")
    from du_framework.io.checkpoint import load_checkpoint

    config, problem, solvers = build(args.set)
    task = task_of(config, problem, solvers["pgd-net"])
    rows = {"degraded (A^T y)": scores(problem.adjoint(None, task["test_y"]), task),
            "tv-pgd (tuned, the example's)": scores(restored(solvers["tv-pgd"], problem, task), task)}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        done = subprocess.run([sys.executable, "-c", _TRAIN, "compare", "--experiment", EXPERIMENT, "--only", "pgd-net",
                               "--out", str(folder / "run"), "--no-progress", "--no-plots", *[f"--set={s}" for s in args.set]],
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        memory = json.loads(done.stdout.strip().splitlines()[-1])
        result = json.loads((folder / "run" / "results.json").read_text())
        entry = result["solvers"]["pgd-net"]
        trained = load_checkpoint(folder / "run" / "checkpoints" / "pgd-net.npz", solvers["pgd-net"], problem=problem)
        rows["pgd-net (du-framework)"] = {**scores(restored(trained, problem, task), task),
                                          "train_seconds": entry["train_seconds"],
                                          "peak_rss_bytes": memory["peak_rss_bytes"],
                                          "parameters": entry.get("parameter_count")}
        np.savez(folder / "task.npz", **{key: np.asarray(value) for key, value in task.items()})
        done = subprocess.run([str(args.peers_python), str(HERE / "peers" / "deepinv_deblur.py"),
                               str(folder / "task.npz"), str(folder / "deepinv.npz")], capture_output=True, text=True)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        with np.load(folder / "deepinv.npz", allow_pickle=False) as peer:
            rows["DeepInverse PGD + DnCNN"] = {**scores(peer["restored"], task),
                                               "train_seconds": float(peer["train_seconds"]),
                                               "peak_rss_bytes": int(peer["peak_rss_bytes"]),
                                               "parameters": int(peer["parameters"]),
                                               "versions": [str(v) for v in peer["versions"]]}
    print(f"\ndeblur ({problem.side} x {problem.side}, depth {config.train.depth}, {len(task['train_y'])} Adam steps "
          f"of {config.train.batch_size} patches), {TEST_PATCHES} held-out patches")
    print(f"{'':32s} {'PSNR (dB)':>10s} {'SSIM':>7s} {'train (s)':>10s} {'peak RSS':>10s}")
    for name, row in rows.items():
        extra = (f" {row['train_seconds']:10.1f} {row['peak_rss_bytes'] / 2**20:8.0f} MiB"
                 if "train_seconds" in row else "")
        print(f"{name:32s} {row['psnr']:10.2f} {row['ssim']:7.4f}{extra}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers-deblur.json").write_text(json.dumps(
        {"benchmark": "peers-deblur", "overrides": args.set, "rows": rows}, indent=1) + "\n")
    print(f"  -> {args.out / 'peers-deblur.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
