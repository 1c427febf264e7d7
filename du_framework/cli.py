"""The ``unfold`` command line: ``unfold list``, ``unfold compare``, ``unfold train``.

Also available as ``python -m du_framework``. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import DUError, TrainingDivergedError

__all__ = ["main", "build_parser"]


def _default_out() -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("runs") / stamp
    suffix = 1
    while out.exists():
        suffix += 1
        out = Path("runs") / f"{stamp}-{suffix}"
    return out


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml", help="experiment configuration (default: the reference experiment)")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                        help="override a configuration key, e.g. --set train.depth=10 --set solvers.dugd.period=8 (repeatable)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: runs/<timestamp>/)")
    parser.add_argument("--only", metavar="LABEL[,LABEL...]",
                        help="run only the solvers with these labels (default: every solver of the configuration)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unfold", description="Deep unfolding on JAX: train and compare unfolded solvers.")
    parser.add_argument("--version", action="version", version=f"du-framework {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", help="list problems, solvers and schedules with their plugins")
    listing.add_argument("--json", action="store_true", help="print the registry as JSON")

    compare = commands.add_parser("compare", help="train every solver, evaluate all on the same fresh instances, report")
    _add_experiment_options(compare)
    compare.add_argument("--checkpoints", metavar="DIR",
                         help="load <label>.npz from DIR (written by `unfold train`) instead of training those solvers")
    compare.add_argument("--no-plots", action="store_true", help="skip mse.png and params.png")
    compare.add_argument("--markdown", action="store_true", help="print the table as Markdown")

    train = commands.add_parser("train", help="train the learnable solvers and save their checkpoints")
    _add_experiment_options(train)
    return parser


def _cmd_list(args) -> int:
    from .interfaces import capability_name
    from .plugins import get_registry

    registry = get_registry()
    problems = {name: entry.cls for name, entry in registry.entries["problem"].items()}

    def fits(solver_cls) -> list[str]:  # capabilities are classes a problem inherits
        return sorted(name for name, cls in problems.items() if issubclass(cls, solver_cls.requires))

    if args.json:
        payload = {
            "problems": {n: {"plugin": e.plugin, "description": e.cls.description}
                         for n, e in registry.entries["problem"].items()},
            "solvers": {n: {"plugin": e.plugin, "description": e.cls.description,
                            "requires": capability_name(e.cls.requires), "fits": fits(e.cls)}
                        for n, e in registry.entries["solver"].items()},
            "schedules": {n: {"plugin": e.plugin, "description": e.cls.description}
                          for n, e in registry.entries["schedule"].items()},
            "failed_plugins": registry.failures,
        }
        print(json.dumps(payload, indent=2))
        return 0

    def section(title: str, kind: str, extra=lambda cls: "") -> None:
        print(f"{title}:")
        entries = registry.entries[kind]
        if not entries:
            print("  (none)")
        width = max((len(n) for n in entries), default=0)
        plugin_width = max((len(e.plugin) for e in entries.values()), default=0) + 2
        for name in sorted(entries):
            entry = entries[name]
            plugin = f"[{entry.plugin}]".ljust(plugin_width)
            print(f"  {name.ljust(width)}  {plugin}  {entry.cls.description}{extra(entry.cls)}")
        print()

    section("Problems", "problem")
    section("Solvers", "solver",
            lambda cls: f"\n  {' ' * max(len(n) for n in registry.entries['solver'])}  requires: "
                        f"{capability_name(cls.requires)}; fits: {', '.join(fits(cls)) or '(no installed problem)'}")
    section("Schedules", "schedule")
    if registry.failures:
        print("Plugins that failed to load (skipped):")
        for name, error in registry.failures.items():
            print(f"  {name}: {error}")
    return 0


def _load(args):
    from .config import load_config, select_solvers

    config = load_config(args.config, args.overrides)
    return select_solvers(config, args.only.split(",")) if args.only else config


def _cmd_compare(args) -> int:
    from .compare import run_comparison
    from .report import format_table, write_report

    config = _load(args)
    out = Path(args.out) if args.out else _default_out()
    comparison = run_comparison(config, progress=not args.no_progress,
                                checkpoint_dir=out / "checkpoints", load_dir=args.checkpoints)
    problem = comparison.problem.describe()
    facts = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in problem.items() if k != "name")
    print(f"problem {problem['name']} ({facts})")
    metric = "NMSE (dB)" if comparison.problem.report_metric == "nmse_db" else "MSE"
    print(f"{metric} on {config.evaluation.batches} x {config.evaluation.batch_size} fresh instances "
          f"(evaluation seed {config.evaluation.seed}):")
    print(format_table(comparison, markdown=args.markdown))
    written = write_report(comparison, out, plots=not args.no_plots)
    print(f"\nwrote {', '.join(sorted(written))} to {out}/")
    return 0


def _cmd_train(args) -> int:
    from .atomic import atomic_write
    from .compare import build_problem, build_schedule, build_solvers, train_solver

    config = _load(args)
    out = Path(args.out) if args.out else _default_out()
    problem = build_problem(config)
    schedule = build_schedule(config)
    solvers = build_solvers(config, problem)
    with atomic_write(out / "config.json") as handle:
        handle.write(json.dumps(config.to_dict(), indent=2))
    checkpoints = out / "checkpoints"
    trained = 0
    for index, (entry, solver) in enumerate(zip(config.solvers, solvers)):
        if not solver.is_trainable:
            print(f"{entry.label}: nothing to learn (classical method), skipped")
            continue
        try:
            result = train_solver(config, index, solver, problem, schedule, checkpoint_dir=checkpoints,
                                  progress=not args.no_progress)
        except TrainingDivergedError:
            print(f"{entry.label}: last good parameters saved to {checkpoints / (entry.label + '.last-good.npz')}",
                  file=sys.stderr)
            raise
        final = result.stage_losses[-1] if result.stage_losses else float("nan")
        print(f"{entry.label}: trained in {result.train_seconds:.2f} s wall "
              f"(compile {result.compile_seconds:.2f} s, {result.compilations} compilation, "
              f"{len(result.losses)} steps, final training loss {final:.3e}) -> {checkpoints / (entry.label + '.npz')}")
        trained += 1
    print(f"trained {trained} solver(s); evaluate with: unfold compare --checkpoints {checkpoints}"
          + (f" --config {args.config}" if args.config else "")
          + (f" --only {args.only}" if args.only else "")
          + "".join(f" --set {override}" for override in args.overrides))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "list":
        from .engine import enable_compile_cache

        enable_compile_cache()  # a later run skips XLA compilation (DU_COMPILE_CACHE=off to disable)
    handlers = {"list": _cmd_list, "compare": _cmd_compare, "train": _cmd_train}
    try:
        return handlers[args.command](args)
    except TrainingDivergedError as error:
        print(f"unfold: error: {error}", file=sys.stderr)
        return 1
    except DUError as error:
        print(f"unfold: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that closed early (unfold list | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> int:
    """The ``unfold`` console script: :func:`main`, then a quick exit.

    Every object lives until the process ends, so the final garbage collection
    over JAX's large module graph (about 0.3 s) is skipped with ``gc.freeze``;
    atexit handlers and stream flushing still run as usual.
    """
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
