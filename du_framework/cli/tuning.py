"""``unfold tune``: search each solver's training hyperparameters (and classical constants)
under an equal budget with optuna; write the best settings as a configuration ``unfold compare`` takes."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..errors import ConfigError

from ._common import add_source_options, default_out, load_registry

EPILOG = """\
Examples:
  unfold tune --experiment reference --trials 20 --out runs/tuned
  unfold compare --config runs/tuned/tuned.toml          the tuned solvers, side by side
  unfold tune --config my.toml --only dugd,gd --trials 30 --space solvers.dugd.lr=1e-4:1e-1:log
  unfold tune --config my.toml --space train.optimizer=adam,rmsprop --space train.log_loss=off
  one study shared by workers on several machines (run the same command on each):
  unfold tune --config my.toml --trials 40 --storage postgresql://user:pw@db/tune --study ridge --out runs/w1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``unfold tune``."""
    add_source_options(parser, verb="tune", set_example="--set train.steps_per_stage=50",
                       only_help="tune only the solvers with these labels (tuned.toml still holds every solver)")
    parser.add_argument("--trials", type=int, default=20, metavar="N",
                        help="trials per solver, the same for every solver (default 20); with a shared --storage, "
                             "the study's total over all workers")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="start no new trial of a solver after S seconds of its search (default: no limit)")
    parser.add_argument("--storage", metavar="URL",
                        help="optuna RDB storage shared by workers: sqlite:///FILE.db, postgresql://..., mysql://... "
                             "(default: tune.db in the run folder)")
    parser.add_argument("--study", metavar="NAME",
                        help="study name; workers with the same --storage and --study share trials (default: tune)")
    parser.add_argument("--metric", metavar="NAME",
                        help="metric scored at the last iteration (default: the problem's primary metric)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    parser.add_argument("--space", metavar="KEY=SPEC", action="append", default=[],
                        help="change the search space: solvers.LABEL.OPTION=LOW:HIGH[:log], =A,B,C (choices), "
                             "=VALUE (fixed) or =off; also train.optimizer, train.log_loss, train.lr_schedule, "
                             "train.optimizer_options.NAME (repeatable)")
    parser.add_argument("--validation-batches", type=int, metavar="N",
                        help="validation batches of evaluation.batch_size instances (default: evaluation.batches)")
    parser.add_argument("--no-prune", action="store_true", help="never stop a trial early")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not make the first trial the configuration as given")
    parser.add_argument("--rate-grid", type=int, default=0, metavar="N",
                        help="begin each learned solver's new study with N trials of its learning rates (scaled "
                             "by N log-spaced factors) trained together as one ensemble, one compiled program; "
                             "they count toward --trials (default 0: none)")
    parser.add_argument("--worker", metavar="NAME", help="this worker's name in the trial records (default HOST:PID)")
    parser.add_argument("--no-progress", action="store_true", help="no line per trial")


def _print_summary(result) -> None:
    metric = result.metric
    budget = result.budget
    print(f"budget per solver: {budget['trials']} trials x {budget['steps_per_trial']} optimiser steps "
          f"({budget['stages']} stages of schedule {budget['schedule']!r}, batch {budget['batch_size']}); "
          f"scored on {result.validation['batches']} x {result.validation['batch_size']} validation instances")
    for label, search in result.searches.items():
        counts = search.counts()
        best = search.best
        shown = metric.show(best.metric_value) if best is not None and best.metric_value is not None else "-"
        start = next((t for t in search.trials if t.baseline), None)
        begun = (f", from {metric.show(start.metric_value)} as configured (trial {start.number})"
                 if start is not None and start.metric_value is not None and start is not best else "")
        print(f"\n{label} ({search.name}): best {metric.title} at t={result.iteration} {shown}"
              + (f" (trial {best.number}{begun})" if best is not None else " (no trial completed)")
              + f"; trials {counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed"
              + (" (timed out)" if search.timed_out else ""))
        if best is not None and best.params:
            width = max(len(key) for key in best.params)
            for key, value in best.params.items():
                text = f"{value:.4g}" if isinstance(value, float) else str(value)
                print(f"  {key.ljust(width)}  {text}{_edge_note(search, key, value)}")
    _, conflicts = result.train_conflicts()
    if conflicts:
        print(f"\nnote: {', '.join(conflicts)} tuned to other [train] settings than tuned.toml holds (one [train] "
              f"table per configuration); tuned-<label>.toml holds each with its own")


def _edge_note(search, key: str, value) -> str:
    """A note when a best numeric value sits at an end of its searched range (the optimum may lie beyond)."""
    import math

    dim = next((d for d in search.dimensions if d.key == key), None)
    if dim is None or dim.tunable.choices is not None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    low, high = float(dim.tunable.low), float(dim.tunable.high)
    if dim.tunable.log and low > 0 and value > 0:
        span, below, above = math.log(high / low), math.log(value / low), math.log(high / value)
    else:
        span, below, above = high - low, value - low, high - value
    if span <= 0:
        return ""
    if above <= 0.02 * span:
        return f"   (at the top of its range {low:g}..{high:g}: the best may lie above; widen it with --space)"
    if below <= 0.02 * span:
        return f"   (at the bottom of its range {low:g}..{high:g}: the best may lie below; widen it with --space)"
    return ""


def cmd_tune(args) -> int:
    from ..io.atomic import atomic_write
    from ..workbench.config import load_config
    from ..workbench.preflight import check_out_dir
    from ..workbench.report import select_metric, strict_json
    from ..workbench.runs import CONFIG_TOML, RunFolder, provenance, to_toml
    from ..workbench.tuning import check_selection, open_storage, parse_space, trials_csv, tune

    if args.trials < 1:
        raise ConfigError(f"--trials must be >= 1 (trials per solver), got {args.trials}")
    if args.rate_grid < 0 or args.rate_grid == 1 or args.rate_grid > 4096:
        raise ConfigError(f"--rate-grid must be 0 (no grid) or 2..4096 members, got {args.rate_grid}")
    if args.timeout is not None and not args.timeout > 0:
        raise ConfigError(f"--timeout must be a number of seconds > 0, got {args.timeout}")
    space = parse_space(args.space)
    config = load_config(args.config, args.overrides, experiment=args.experiment)
    labels = [label.strip() for label in args.only.split(",") if label.strip()] if args.only else None
    if args.only is not None and not labels:
        raise ConfigError(f"--only names no solver; labels: {', '.join(s.label for s in config.solvers)}")
    check_selection(config, labels, space)
    select_metric(load_registry().problem(config.problem.name), args.metric)  # refused before anything runs
    if args.storage is not None:
        open_storage(args.storage).engine.dispose()  # a bad URL is refused before the run folder is made
    target = Path(args.out) if args.out else default_out()
    existed = target.exists() or target.is_symlink()
    check_out_dir(target, "--out")
    if not existed:
        with contextlib.suppress(OSError):
            target.rmdir()  # published with one rename at the end
    log = None if args.no_progress else (lambda line: print(line, file=sys.stderr, flush=True))
    with RunFolder(target, command="tune", force=args.force) as run:
        storage = args.storage or f"sqlite:///{(run.staging / 'tune.db').absolute()}"
        result = tune(config, trials=args.trials, labels=labels, storage=storage, study=args.study,
                      metric=args.metric, seed=args.seed, timeout=args.timeout, space=space,
                      validation_batches=args.validation_batches, pruning=not args.no_prune,
                      baseline=not args.no_baseline, worker=args.worker, rate_grid=args.rate_grid,
                      shared=args.storage is not None or args.study is not None,
                      log=log)
        if args.storage is None:
            result.storage = f"sqlite:///{(run.target / 'tune.db').absolute()}"  # where it lies once published
        _print_summary(result)
        written = ["tuned.toml", "tune.json", "trials.csv", CONFIG_TOML]
        with atomic_write(run.staging / "tuned.toml") as handle:
            handle.write(to_toml(result.tuned_config()))
        _, conflicts = result.train_conflicts()
        for label in conflicts:
            with atomic_write(run.staging / f"tuned-{label}.toml") as handle:
                handle.write(to_toml(result.tuned_config(train_of=label)))
            written.append(f"tuned-{label}.toml")
        with atomic_write(run.staging / CONFIG_TOML) as handle:
            handle.write(to_toml(config.to_dict()))
        prov = provenance(load_registry())
        body = {**result.to_dict(), "provenance": prov}
        with atomic_write(run.staging / "tune.json") as handle:
            handle.write(strict_json(body))
        with atomic_write(run.staging / "trials.csv") as handle:
            handle.write(trials_csv(result))
        if args.storage is None:
            written.append("tune.db")
        from ..workbench.redact import hidden_argv
        from ..workbench.runs import config_digest

        command = " ".join(["unfold", *hidden_argv(sys.argv[1:])])  # no database password in published files
        run.publish({"status": "complete", "subcommand": "tune", "command": command,
                     "config_digest": config_digest(config.to_dict()), "created": prov["created"],
                     "provenance": prov})
    print(f"\nwrote {', '.join(sorted([*written, 'manifest.json']))} to {run.target}/; compare the tuned solvers "
          f"with: unfold compare --config {run.target / 'tuned.toml'}")
    return 0
