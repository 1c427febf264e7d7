"""The ``unfold`` command line: ``unfold list``, ``unfold compare``, ``unfold train``.

Also available as ``python -m du_framework``. See docs/cli.md. ``unfold docs``
(left out of ``--help``; for maintainers) regenerates the option tables of
docs/cli.md from the declarations (:func:`render_option_tables`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import errno
import gc
import json
import os
import re
import sys
import traceback
from pathlib import Path

from . import __version__
from .errors import ConfigError, DUError, TrainingDivergedError, nearest

__all__ = ["main", "build_parser", "render_option_tables"]

_KINDS = ("problem", "solver", "schedule")
_SETTINGS = ("train", "evaluation")
DOCS_COMMAND = "python -m du_framework docs docs/cli.md"


def _registry():
    from .registry import get_registry

    return get_registry()


def _default_out() -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("runs") / stamp
    suffix = 1
    while out.exists():
        suffix += 1
        out = Path("runs") / f"{stamp}-{suffix}"
    return out


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="FILE.toml",
                        help="experiment configuration (default: the default experiment of the installed plugins)")
    source.add_argument("--experiment", metavar="NAME", help="run an experiment a plugin ships (see unfold list)")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                        help="override a configuration key, e.g. --set train.depth=10 --set solvers.0.lr=0.01 "
                             "(repeatable)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: runs/<timestamp>/)")
    parser.add_argument("--only", metavar="LABEL[,LABEL...]",
                        help="run only the solvers with these labels (default: every solver of the configuration)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unfold", description="Deep unfolding on JAX: train and compare unfolded solvers.")
    parser.add_argument("--version", action="version", version=f"du-framework {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", help="list problems, solvers, schedules and experiments with their plugins")
    listing.add_argument("--json", action="store_true", help="print the registry as JSON")
    listing.add_argument("--options", metavar="NAME",
                         help="print the options of the problem, solver or schedule NAME (or of train, evaluation)")

    compare = commands.add_parser("compare", help="train every solver, evaluate all on the same fresh instances, report")
    _add_experiment_options(compare)
    compare.add_argument("--metric", metavar="NAME",
                         help="metric of the table and mse.png (default: the problem's primary metric)")
    compare.add_argument("--checkpoints", metavar="DIR",
                         help="load <label>.npz from DIR (written by `unfold train`) instead of training those solvers; "
                              "DIR must exist and hold one for every trainable solver")
    compare.add_argument("--train-missing", action="store_true",
                         help="with --checkpoints: train the solvers without a checkpoint in DIR instead of refusing")
    compare.add_argument("--allow-problem-mismatch", action="store_true",
                         help="with --checkpoints: evaluate checkpoints trained on another problem (other options or "
                              "data) on this one; warns and records the differences in results.json")
    compare.add_argument("--no-plots", action="store_true", help="skip mse.png and params.png")
    compare.add_argument("--markdown", action="store_true", help="print the table as Markdown")

    train = commands.add_parser("train", help="train the learnable solvers and save their checkpoints")
    _add_experiment_options(train)

    docs = commands.add_parser("docs")  # no help: left out of `unfold --help` (a maintainer's command)
    docs.add_argument("file", nargs="?", default="docs/cli.md", help="the Markdown file to update in place")
    docs.add_argument("--check", action="store_true", help="change nothing; exit 1 when the file is out of date")
    return parser


def _fits(registry, solver_cls) -> list[str]:  # capabilities are classes a problem inherits
    return sorted(name for name in registry.entries["problem"]
                  if all(issubclass(registry.problem(name), c) for c in solver_cls.capabilities()))


def _component(registry, kind: str, name: str):
    return registry.get(kind, name).cls


def _cmd_list(args) -> int:
    from .capabilities import capability_name

    registry = _registry()
    if args.options:
        return _print_options(registry, args.options, as_json=args.json)
    experiments = {name: registry.experiment(name) for name in sorted(registry.entries["experiment"])}
    if args.json:
        def described(kind, extra=lambda cls: {}):
            return {name: {"plugin": registry.plugin_of(kind, name),
                           "description": _component(registry, kind, name).description,
                           **extra(_component(registry, kind, name))} for name in sorted(registry.entries[kind])}

        payload = {
            "problems": described("problem", lambda cls: {"metrics": [m.name for m in cls.metrics],
                                                          "primary_metric": cls.primary()}),
            "solvers": described("solver", lambda cls: {"requires": capability_name(cls.capabilities()),
                                                        "fits": _fits(registry, cls)}),
            "schedules": described("schedule"),
            "experiments": {name: {"plugin": registry.plugin_of("experiment", name),
                                   "description": e.description, "default": e.default}
                            for name, e in experiments.items()},
            "failed_plugins": dict(registry.failures),
        }
        print(json.dumps(payload, indent=2))
        return 0

    def section(title: str, kind: str, describe, extra=lambda name: "") -> None:
        print(f"{title}:")
        names = sorted(registry.entries[kind])
        if not names:
            print("  (none)")
        width = max((len(n) for n in names), default=0)
        plugin_width = max((len(registry.plugin_of(kind, n)) for n in names), default=0) + 2
        for name in names:
            plugin = f"[{registry.plugin_of(kind, name)}]".ljust(plugin_width)
            print(f"  {name.ljust(width)}  {plugin}  {describe(name)}{extra(name)}")
        print()

    def description(kind):
        return lambda name: _component(registry, kind, name).description

    solver_width = max((len(n) for n in registry.entries["solver"]), default=0)
    section("Problems", "problem", description("problem"))
    section("Solvers", "solver", description("solver"),
            lambda name: f"\n  {' ' * solver_width}  requires: "
                         f"{capability_name(registry.solver(name).capabilities())}; fits: "
                         f"{', '.join(_fits(registry, registry.solver(name))) or '(no installed problem)'}")
    section("Schedules", "schedule", description("schedule"))
    section("Experiments (unfold compare --experiment NAME)", "experiment",
            lambda name: experiments[name].description + ("  (default)" if experiments[name].default else ""))
    if registry.failures:
        print("Plugins that failed to load (skipped):")
        for name, error in registry.failures.items():
            print(f"  {name}: {error}")
    return 0


def _settings_class(name: str):
    from .engine.settings import EvaluationSettings, TrainSettings

    return {"train": TrainSettings, "evaluation": EvaluationSettings}[name]


def _where(kind: str, name: str) -> str:
    """Where a component's options are set in a configuration."""
    return {
        "problem": f"set in [problem] beside name = \"{name}\", or with --set problem.KEY=VALUE",
        "solver": f"set in a [[solvers]] table beside name = \"{name}\", or with --set solvers.LABEL.KEY=VALUE",
        "schedule": f"set in [train] beside schedule = \"{name}\", or with --set train.KEY=VALUE",
        "train": "the [train] table (the schedule's own options are set there too), or --set train.KEY=VALUE",
        "evaluation": "the [evaluation] table (fresh instances shared by every solver), "
                      "or --set evaluation.KEY=VALUE",
    }[kind]


def _print_options(registry, name: str, *, as_json: bool = False) -> int:
    from .options import format_options, option_rows

    found = [(kind, _settings_class(kind)) for kind in _SETTINGS if name == kind]
    found += [(kind, _component(registry, kind, name)) for kind in _KINDS if name in registry.entries[kind]]
    if not found:
        known = list(_SETTINGS) + sorted({n for kind in _KINDS for n in registry.entries[kind]})
        hint = nearest(name, known)
        raise ConfigError(f"--options: no problem, solver or schedule is called {name!r}"
                          + (f" (did you mean {hint!r}?)" if hint else "") + f"; known: {', '.join(known)}")
    if as_json:
        print(json.dumps([{"kind": kind, "name": name, "options": option_rows(getattr(cls, "Options", cls))}
                          for kind, cls in found], indent=2))
        return 0
    for index, (kind, cls) in enumerate(found):
        if kind in _SETTINGS:
            print(f"{kind} settings: {_where(kind, name)}")
        else:
            print(f"{kind} {name} [{registry.plugin_of(kind, name)}]: {cls.description}")
            print(_where(kind, name))
        print()
        print(format_options(getattr(cls, "Options", cls)))
        if index < len(found) - 1:
            print()
    return 0


def _facts(registry, kind: str, name: str) -> str:
    """One Markdown line about a component: its plugin and what it declares besides options."""
    from .capabilities import capability_name

    cls = _component(registry, kind, name)
    facts = [f"Plugin `{registry.plugin_of(kind, name)}`"]
    if kind == "problem":
        facts.append("metrics " + ", ".join(f"`{m.name}`" + (" (primary)" if m.name == cls.primary() else "")
                                            for m in cls.metrics))
    elif kind == "solver":
        facts.append(f"requires `{capability_name(cls.capabilities())}`")
    description = cls.description.rstrip(".")
    return (f"{description}.\n" if description else "") + "; ".join(facts) + "."


def _component_tables(registry, kind: str) -> str:
    from .options import format_options

    parts = [f"#### `{name}`\n\n{_facts(registry, kind, name)}\n\n"
             + format_options(_component(registry, kind, name).Options, markdown=True)
             for name in sorted(registry.entries[kind])]
    return "\n\n".join(parts) or "(none installed)"


def render_option_tables(text: str, registry=None) -> str:
    """``text`` with every block between ``<!-- options:WHAT -->`` and ``<!-- /options -->`` regenerated.

    ``WHAT`` is ``train`` or ``evaluation`` (one table of settings) or
    ``problems``, ``solvers`` or ``schedules`` (a heading and a table for every
    installed component of that kind).

    Raises:
        ConfigError: an unknown ``WHAT``, or a plugin failed to load (its
            components would be missing from the tables).
    """
    from .options import format_options

    registry = registry or _registry()
    if registry.failures:
        raise ConfigError("cannot generate the option tables while plugins fail to load: "
                          + "; ".join(f"{name}: {error}" for name, error in registry.failures.items()))

    def generate(match: re.Match) -> str:
        what = match.group(2)
        if what in _SETTINGS:
            body = format_options(_settings_class(what), markdown=True)
        elif what.endswith("s") and what[:-1] in _KINDS:
            body = _component_tables(registry, what[:-1])
        else:
            raise ConfigError(f"unknown option table <!-- options:{what} -->; known: train, evaluation, "
                              f"problems, solvers, schedules")
        return f"{match.group(1)}{body}\n{match.group(3)}"

    return re.sub(r"(<!-- options:(\S+) -->\n)(?:.*?\n)??(<!-- /options -->)", generate, text, flags=re.S)


def _cmd_docs(args) -> int:
    path = Path(args.file)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read {str(path)!r}: {error.strerror or error}") from error
    updated = render_option_tables(text)
    if updated == text:
        print(f"{path}: the option tables are up to date")
        return 0
    if args.check:
        print(f"{path}: the option tables are out of date; regenerate them with: {DOCS_COMMAND}", file=sys.stderr)
        return 1
    from .atomic import atomic_write

    with atomic_write(path) as handle:
        handle.write(updated)
    print(f"{path}: option tables regenerated")
    return 0


def _load(args):
    from .config import load_config, select_solvers

    config = load_config(args.config, args.overrides, experiment=args.experiment)
    return select_solvers(config, args.only.split(",")) if args.only else config


def _warn(message: str) -> None:
    print(f"unfold: warning: {message}", file=sys.stderr)


def _preflight(config, problem, schedule, solvers) -> None:
    """Refuse a training run that cannot fit in memory, warn about a very long one (before any training)."""
    from .preflight import check_training

    for entry, solver in zip(config.solvers, solvers):
        check_training(entry.label, solver, problem, schedule, config.train, warn=_warn)


def _cmd_compare(args) -> int:
    from .compare import build_problem, build_schedule, build_solvers, run_comparison
    from .preflight import check_out_dir
    from .report import format_table, select_metric, write_report

    config = _load(args)
    metric = select_metric(_registry().problem(config.problem.name), args.metric)  # refused before training
    out = check_out_dir(Path(args.out) if args.out else _default_out())
    problem = build_problem(config)
    _preflight(config, problem, build_schedule(config), build_solvers(config, problem))
    del problem
    if (args.train_missing or args.allow_problem_mismatch) and not args.checkpoints:
        raise ConfigError("--train-missing and --allow-problem-mismatch apply to --checkpoints DIR, which is not given")
    comparison = run_comparison(config, progress=not args.no_progress,
                                checkpoint_dir=out / "checkpoints", load_dir=args.checkpoints,
                                allow_problem_mismatch=args.allow_problem_mismatch, train_missing=args.train_missing,
                                log=lambda line: print(line, file=sys.stderr))
    problem = comparison.problem.describe()
    facts = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in problem.items() if k != "name")
    print(f"problem {config.problem.name} ({facts})")
    print(f"{metric.title} ({'lower' if metric.lower_is_better else 'higher'} is better) on "
          f"{config.evaluation.batches} x {config.evaluation.batch_size} fresh instances "
          f"(evaluation seed {config.evaluation.seed}):")
    print(format_table(comparison, metric=metric.name, markdown=args.markdown))
    written = write_report(comparison, out, plots=not args.no_plots, metric=metric.name, warn=_warn)
    print(f"\nwrote {', '.join(sorted(written))} to {out}/")
    return 0


def _cmd_train(args) -> int:
    from .atomic import atomic_write
    from .compare import build_problem, build_schedule, build_solvers, train_solver

    from .preflight import check_out_dir

    config = _load(args)
    out = check_out_dir(Path(args.out) if args.out else _default_out())
    problem = build_problem(config)
    schedule = build_schedule(config)
    solvers = build_solvers(config, problem)
    _preflight(config, problem, schedule, solvers)
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
        final = result.stage_losses[-1] if len(result.stage_losses) else float("nan")
        print(f"{entry.label}: trained in {result.train_seconds:.2f} s wall "
              f"(compile {result.compile_seconds:.2f} s, {result.compilations} compilation, "
              f"{len(result.losses)} steps, final training loss {final:.3e}) -> {checkpoints / (entry.label + '.npz')}")
        trained += 1
    print(f"trained {trained} solver(s); evaluate with: unfold compare --checkpoints {checkpoints}"
          + (f" --config {args.config}" if args.config else "")
          + (f" --experiment {args.experiment}" if args.experiment else "")
          + (f" --only {args.only}" if args.only else "")
          + "".join(f" --set {override}" for override in args.overrides))
    return 0


# Exit status (documented in docs/cli.md, "Exit status").
EXIT_OK = 0
EXIT_DIVERGED = 1  # training diverged; the last good parameters are saved
EXIT_INVALID = 2  # invalid input, refused with a message (argparse uses 2 too)
EXIT_FILESYSTEM = 3  # a file could not be read or written: full disk, permissions, read-only, ...
EXIT_MEMORY = 4  # out of memory (host or accelerator), or refused up front as too large
EXIT_BUG = 70  # an unexpected exception: a bug in du-framework or a plugin (EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

_MEMORY_HINT = ("lower train.batch_size or train.depth, set train.remat = true (or more levels), "
                "or lower evaluation.batch_size")


def _error(message: str) -> None:
    print(f"unfold: error: {' '.join(str(message).split())}", file=sys.stderr)


def _os_error_message(error: OSError) -> str:
    what = error.strerror or str(error) or type(error).__name__
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    where = f" ({' -> '.join(repr(p) for p in paths)})" if paths else ""
    hint = {errno.ENOSPC: "free disk space or write elsewhere (--out)",
            errno.EDQUOT: "free space within the disk quota or write elsewhere (--out)",
            errno.EACCES: "check the permissions or write elsewhere (--out)",
            errno.EPERM: "check the permissions or write elsewhere (--out)",
            errno.EROFS: "the file system is read-only; write elsewhere (--out)"}.get(error.errno)
    code = f" [errno {error.errno}]" if error.errno else ""
    return f"file system: {what}{where}{code}" + (f"; {hint}" if hint else "")


def _is_resource_exhausted(error: BaseException) -> bool:
    """XLA ran out of accelerator (or host) memory: ``XlaRuntimeError``/``JaxRuntimeError`` RESOURCE_EXHAUSTED."""
    return (type(error).__name__ in ("XlaRuntimeError", "JaxRuntimeError")
            and ("RESOURCE_EXHAUSTED" in str(error) or "Out of memory" in str(error)))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see docs/cli.md, "Exit status").

    Every failure ends as one line ``unfold: error: ...`` on stderr, without a traceback,
    except an unexpected exception (a bug), whose traceback is printed before that line.
    """
    args = build_parser().parse_args(argv)
    handlers = {"list": _cmd_list, "compare": _cmd_compare, "train": _cmd_train, "docs": _cmd_docs}
    try:
        if args.command in ("compare", "train"):
            from .engine import enable_compile_cache

            enable_compile_cache()  # a later run skips XLA compilation (DU_COMPILE_CACHE=off to disable)
        return handlers[args.command](args)
    except TrainingDivergedError as error:
        _error(error)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("\nunfold: error: interrupted (Ctrl-C); the run is incomplete, but every file written so far "
              "is whole (each is written atomically)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into a reader that closed early (unfold list | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except DUError as error:
        from .preflight import InsufficientMemoryError

        _error(error)
        return EXIT_MEMORY if isinstance(error, InsufficientMemoryError) else EXIT_INVALID
    except OSError as error:
        _error(_os_error_message(error))
        return EXIT_FILESYSTEM
    except MemoryError:
        _error(f"out of memory (MemoryError): {_MEMORY_HINT}, or use smaller problem sizes")
        return EXIT_MEMORY
    except RecursionError as error:
        _error(f"recursion too deep ({error}); a setting is far too large (train.remat, train.depth?)")
        return EXIT_INVALID
    except Exception as error:  # noqa: BLE001 - XLA's errors and the unexpected
        if _is_resource_exhausted(error):
            _error(f"out of memory on the device (XLA RESOURCE_EXHAUSTED: {_first_line(error)[:300]}): "
                   f"{_MEMORY_HINT}")
            return EXIT_MEMORY
        traceback.print_exc()
        _error(f"unexpected {type(error).__name__}: {_first_line(error)[:500]}. This is a bug in du-framework or "
               f"a plugin; please report it with the traceback above")
        return EXIT_BUG


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
