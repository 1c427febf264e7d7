"""The shipped sparse-recovery example at its own size (n = 500, m = 250, depth 16), on whatever device JAX has.

    python benchmarks/at_size.py [--only du-ista,tista] [--set problem.n=2000 --set problem.m=1000] [--out FILE.json]

Trains the chosen solvers of ``unfold compare --experiment sparse-recovery`` in one process and prints,
per solver, the training time (compilation included and apart), the compilations and the final NMSE,
with the device and versions it ran on; ``benchmarks/gpu.sh`` runs it where an NVIDIA GPU is present.
Plugins are taken from the installed entry points, or else registered in process from ``plugins/`` of
this checkout (a machine where the project is not installed, such as a GPU host with its own JAX).
Nothing is asserted: it measures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = "sparse-recovery"


def registry_with_the_catalogue():
    """The plugin registry, with the checkout's plugins registered in process when none is installed."""
    from du_framework import registry

    if EXPERIMENT not in registry.get_registry().names("experiment"):
        for project in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
            sys.path.insert(0, str(project.parent))
            entry_points = tomllib.loads(project.read_text())["project"]["entry-points"]["du_framework"]
            for name, module in entry_points.items():  # as the installed distribution would declare it
                registry.register_plugin(importlib.import_module(module), name)
    return registry.get_registry()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="du-ista,tista,lista", help="solver labels to train (comma separated)")
    parser.add_argument("--out", help="also write the measurements to this JSON file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the experiment, e.g. problem.n=2000 (repeatable)")
    args = parser.parse_args(argv)

    import jax

    from du_framework.workbench.compare import run_comparison
    from du_framework.workbench.config import load_config, select_solvers

    registry = registry_with_the_catalogue()
    config = select_solvers(load_config(overrides=args.set, experiment=EXPERIMENT, registry=registry),
                            args.only.split(","))
    started = time.perf_counter()
    comparison = run_comparison(config, registry=registry, progress=False)
    wall = time.perf_counter() - started
    device = jax.devices()[0]
    facts = {"device": f"{device.platform}: {device.device_kind}", "jax": jax.__version__,
             "python": platform.python_version(), "wall_seconds": round(wall, 2), "solvers": {}}
    sizes = f"n={config.problem.options.n}, m={config.problem.options.m}, depth {config.train.depth}"
    facts["sizes"] = sizes
    print(f"{EXPERIMENT} ({sizes}) on {facts['device']} (jax {jax.__version__}); whole comparison {wall:.1f} s")
    for label, result in comparison.results.items():
        row = {"train_seconds": round(result.train_seconds, 3), "compile_seconds": round(result.compile_seconds, 3),
               "compilations": result.compilations, "final_nmse_db": round(float(result.metrics["nmse_db"][-1]), 2)}
        facts["solvers"][label] = row
        print(f"  {label:10s} train {row['train_seconds']:7.2f} s (compile {row['compile_seconds']:.2f} s, "
              f"{row['compilations']} compilation(s)), NMSE at t={len(result.metrics['nmse_db'])}: "
              f"{row['final_nmse_db']:.2f} dB")
    if args.out:
        Path(args.out).write_text(json.dumps(facts, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
