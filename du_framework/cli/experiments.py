"""``unfold compare`` and ``unfold train``: run folders, up-front checks, resume."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from ..errors import ConfigError, TrainingDivergedError

from ._common import default_out, load_registry
from .outputs import figure_formats, folder_contents, prefetch_plotting, shell_word, viewing_hint


def _load(args):
    from ..workbench.config import load_config, select_solvers

    config = load_config(args.config, args.overrides, experiment=args.experiment)
    return select_solvers(config, args.only.split(",")) if args.only else config


def _warn(message: str) -> None:
    print(f"unfold: warning: {message}", file=sys.stderr)


def _note(message: str) -> None:
    """What the user should know that is no fault (a warning says something may be wrong)."""
    print(f"unfold: note: {message}", file=sys.stderr)


def _preflight(config, problem, schedule, solvers) -> None:
    """Refuse a training run that cannot fit in memory, warn about a very long one (before any training)."""
    from ..workbench.preflight import check_training

    for entry, solver in zip(config.solvers, solvers):
        check_training(entry.label, solver, problem, schedule, config.train, warn=_warn)


# Options a resumed run takes from the run itself (run.json, config.toml), so refused beside --resume.
_RESTORED = {"config": "--config", "experiment": "--experiment", "overrides": "--set", "only": "--only",
             "force": "--force", "metric": "--metric", "checkpoints": "--checkpoints",
             "train_missing": "--train-missing", "allow_problem_mismatch": "--allow-problem-mismatch",
             "no_plots": "--no-plots", "figures": "--figures", "style": "--style", "no_title": "--no-title"}
_COMPARE_OPTIONS = ("metric", "checkpoints", "train_missing", "allow_problem_mismatch", "no_plots", "figures",
                    "style", "no_title")


def _run_folder(args, command: str):
    """The (not yet entered) :class:`~du_framework.workbench.runs.RunFolder` of this run, its target checked writable."""
    from ..workbench.preflight import check_out_dir
    from ..workbench.runs import RunFolder, run_target

    if args.resume:
        given = [flag for name, flag in _RESTORED.items() if getattr(args, name, None)]
        target = run_target(args.resume)
        if args.out and Path(args.out).absolute() != target.absolute():
            given.append("--out")
        if given:
            raise ConfigError(f"--resume takes the configuration and options from the run ({target}/config.toml); "
                              f"leave out {', '.join(given)}")
        option = "--resume"
    else:
        target = Path(args.out) if args.out else default_out()
        option = "--out"
    existed = target.exists() or target.is_symlink()
    check_out_dir(target, option)
    if not existed:
        with contextlib.suppress(OSError):
            target.rmdir()  # published with one rename at the end
    return RunFolder(target, command=command, force=args.force, resume=bool(args.resume))


def _begin(run, args, command: str, config) -> None:
    """Record what a resumed run needs in the staging folder: config.toml, run.json."""
    from ..io.atomic import atomic_write
    from ..workbench.report import strict_json
    from ..workbench.runs import CONFIG_TOML, RUN_INFO, config_digest, to_toml

    with atomic_write(run.staging / CONFIG_TOML) as handle:
        handle.write(to_toml(config.to_dict()))
    from ..workbench.redact import hidden_argv

    info = {"command": command, "argv": hidden_argv(sys.argv), "config_digest": config_digest(config.to_dict()),
            "options": {name: getattr(args, name, None) for name in _COMPARE_OPTIONS if hasattr(args, name)}}
    with atomic_write(run.staging / RUN_INFO) as handle:
        handle.write(strict_json(info))


def _resumed_config(run, args, command: str):
    """The configuration and options of the interrupted run ``run`` continues, restored into ``args``."""
    from ..workbench.config import load_config
    from ..workbench.runs import CONFIG_TOML, RUN_INFO, config_digest

    try:
        info = json.loads((run.staging / RUN_INFO).read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise ConfigError(f"--resume {run.target}: {run.staging / RUN_INFO} is unreadable ({error})") from None
    if info.get("command") != command:
        raise ConfigError(f"--resume {run.target}: the run was started by `unfold {info.get('command')}`; "
                          f"continue it with `unfold {info.get('command')} --resume {run.target}`")
    config = load_config(run.staging / CONFIG_TOML)
    if info.get("config_digest") != config_digest(config.to_dict()):
        raise ConfigError(f"--resume {run.target}: {CONFIG_TOML} was changed since the run started "
                          f"(its digest differs from {RUN_INFO}'s); start a new run with --config instead")
    for name, value in (info.get("options") or {}).items():
        if name in _COMPARE_OPTIONS:
            setattr(args, name, value)
    return config


def _identity(run, args, command: str, config, status: str, registry=None) -> dict:
    from ..workbench.runs import config_digest, provenance

    prov = provenance(registry or load_registry())
    return {"status": status, "command": " ".join(["unfold", *map(shell_word, prov["command_line"][1:])])
            if prov["command_line"] else f"unfold {command}", "subcommand": command, "resumed": run.resumed,
            "config_digest": config_digest(config.to_dict()), "created": prov["created"], "provenance": prov}


def _observers(args, command: str):
    """The run observers ``--observe`` names (an empty set without it), constructed before the run starts."""
    from ..workbench.observers import ObserverSet

    names = (getattr(args, "observe", None) or "").split(",")
    return ObserverSet.from_names(names, registry=load_registry(), warn=_warn, command=command)


@contextlib.contextmanager
def _ending(watchers):
    """Tell the observers that the run ended when the block raises (their files are then flushed)."""
    try:
        yield
    except BaseException as error:
        from ..workbench.compare import run_status

        watchers.run_end(status=run_status(error))
        raise


def _publish_diverged(run, args, command: str, config) -> None:
    """A diverged run is a finished run: publish it (its last good parameters) with status ``diverged``."""
    run.publish(_identity(run, args, command, config, "diverged"))


def _follow(args, command) -> int | None:
    """Under several processes (``jax.distributed``, docs/performance.md), process k > 0's part; ``None`` elsewhere.

    Every process runs the very same command, so every process makes the same
    compiled calls in the same order; process k > 0 does it in a private scratch
    folder, removed afterwards, with its standard output silenced, and prints one
    line. Only process 0 writes the run folder and prints the results.
    """
    from ..engine.distributed import is_initialized

    if getattr(args, "following", False) or not is_initialized():
        return None
    import io
    import tempfile

    import jax

    from ..engine.program import make_mesh

    if args.resume:
        raise ConfigError("--resume is not available when several processes train together; resume the run "
                          "with one process (train.devices = 0 uses all its devices), or start a new one")
    config = _load(args)
    make_mesh(config.train.devices, config.train.batch_size)  # every process refuses a mesh that leaves one out
    if jax.process_index() == 0:
        return None
    args.following, args.no_progress, args.observe = True, True, None  # observers are process 0's
    if hasattr(args, "no_plots"):
        args.no_plots = True
    with tempfile.TemporaryDirectory(prefix="unfold-process-") as scratch, contextlib.redirect_stdout(io.StringIO()):
        args.out, args.force = str(Path(scratch) / "run"), False
        code = command(args)
    print(f"unfold: process {jax.process_index()} of {jax.process_count()} took part in the run; process 0 "
          f"writes the run folder and prints the results")
    return code


def cmd_compare(args) -> int:
    from ..workbench.compare import build_problem, build_schedule, build_solvers, run_comparison
    from ..workbench.report import (describe_evaluation, format_sweep_table, format_table, seed_notes, select_metric,
                                    write_report)

    if (followed := _follow(args, cmd_compare)) is not None:
        return followed
    began = time.perf_counter()
    config = None if args.resume else _load(args)
    if config is not None:
        select_metric(load_registry().problem(config.problem.name), args.metric)  # refused before training
    figure_formats(args)  # an unknown format or style is refused before any work
    if not args.no_plots:
        prefetch_plotting()
    watchers = _observers(args, "compare")
    folder = _run_folder(args, "compare")
    with folder as run, _ending(watchers):
        watchers.folder, watchers.target = run.staging, run.target
        if run.resumed:
            config = _resumed_config(run, args, "compare")
        metric = select_metric(load_registry().problem(config.problem.name), args.metric)
        if (args.train_missing or args.allow_problem_mismatch) and not args.checkpoints:
            raise ConfigError("--train-missing and --allow-problem-mismatch apply to --checkpoints DIR, "
                              "which is not given")
        if not run.resumed:
            problem = build_problem(config)
            _preflight(config, problem, build_schedule(config), build_solvers(config, problem))
            del problem
            _begin(run, args, "compare", config)
        else:
            _note(f"resuming the interrupted run {run.target}")
        args.resume_command = f"unfold compare --resume {shell_word(run.target)}"
        timings = {"setup": time.perf_counter() - began}
        try:
            comparison = run_comparison(config, progress=not args.no_progress,
                                        checkpoint_dir=run.staging / "checkpoints", load_dir=args.checkpoints,
                                        allow_problem_mismatch=args.allow_problem_mismatch,
                                        train_missing=args.train_missing,
                                        log=lambda line: print(line, file=sys.stderr), resume=run.resumed,
                                        observers=watchers)
        except TrainingDivergedError:
            args.resume_command = None
            watchers.run_end(status="diverged")
            _publish_diverged(run, args, "compare", config)
            raise
        problem = comparison.problem.describe()
        facts = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in problem.items() if k != "name")
        print(f"problem {config.problem.name} ({facts})")
        print(f"{metric.title} ({'lower' if metric.lower_is_better else 'higher'} is better) on "
              f"{describe_evaluation(config.evaluation)}:")
        print(format_table(comparison, metric=metric.name, markdown=args.markdown))
        if comparison.sweep is not None:
            print(format_sweep_table(comparison, metric=metric.name, markdown=args.markdown))
        for note in seed_notes(comparison):
            print(note)
        timings["training"] = sum(result.train_seconds for result in comparison.results.values())
        timings["evaluation"] = sum(result.evaluation_seconds for result in comparison.results.values())
        reporting = time.perf_counter()
        identity = _identity(run, args, "compare", config, "complete")
        write_report(comparison, run.staging, plots=not args.no_plots, metric=metric.name, warn=_warn,
                               provenance=identity["provenance"], figure_formats=figure_formats(args),
                               style=args.style, title=not getattr(args, "no_title", False))
        timings["report"] = time.perf_counter() - reporting
        timings["total"] = time.perf_counter() - began
        identity["timings"] = timings
        watchers.run_end(status="complete", results={label: result.to_dict()
                                                     for label, result in comparison.results.items()})
        run.publish(identity)
        args.resume_command, args.published_to = None, run.target
    print(f"\nwrote {', '.join(folder_contents(run.target))} to {run.target}/")
    viewing_hint(run.target)
    return 0


def cmd_train(args) -> int:
    from ..io.atomic import atomic_write

    import numpy as np

    from ..workbench.compare import build_problem, build_schedule, build_solvers, train_seeds
    from ..engine.loop import expand_schedule
    from ..workbench.display import progress_for
    from ..workbench.observers import SolverEnd
    from ..options import options_to_dict
    from ..workbench.results import SolverResult, history_csv, loss_history
    from ..workbench.text import strict_json

    if (followed := _follow(args, cmd_train)) is not None:
        return followed
    config = None if args.resume else _load(args)
    watchers = _observers(args, "train")
    folder = _run_folder(args, "train")
    with folder as run, _ending(watchers):
        watchers.folder, watchers.target = run.staging, run.target
        if run.resumed:
            config = _resumed_config(run, args, "train")
            _note(f"resuming the interrupted run {run.target}")
        problem = build_problem(config)
        schedule = build_schedule(config)
        solvers = build_solvers(config, problem)
        if not run.resumed:
            _preflight(config, problem, schedule, solvers)
            _begin(run, args, "train", config)
            with atomic_write(run.staging / "config.json") as handle:
                handle.write(strict_json(config.to_dict()))
        args.resume_command = f"unfold train --resume {shell_word(run.target)}"
        staged, checkpoints = run.staging / "checkpoints", run.target / "checkpoints"
        seeds = list(config.train.seed_list())
        stages = [(stage.active_depth, stage.steps) for stage in
                  expand_schedule(schedule, config.train, config.train.depth)]
        watchers.run_start(config=config, problem=problem.describe(), solvers=[e.label for e in config.solvers],
                           seeds=seeds, stages=stages)
        histories = {}

        def saved_as(label: str) -> list[str]:
            return [f"{label}.npz"] if len(seeds) == 1 else [f"{label}.seed-{seed}.npz" for seed in seeds]
        learned = [entry.label for entry, solver in zip(config.solvers, solvers) if solver.is_trainable]
        trained, results = 0, {}
        for index, (entry, solver) in enumerate(zip(config.solvers, solvers)):
            if not solver.is_trainable:
                print(f"{entry.label}: nothing to learn (classical method), skipped")
                continue
            if run.resumed and all((staged / name).is_file() for name in saved_as(entry.label)):
                print(f"{entry.label}: trained before the interruption -> {checkpoints / saved_as(entry.label)[0]}"
                      + (f" (and {len(seeds) - 1} more seeds)" if len(seeds) > 1 else ""))
                trained += 1
                continue
            position = (learned.index(entry.label) + 1, len(learned))
            meter = progress_for(not args.no_progress, position=position, leave=False)
            try:
                outcomes = train_seeds(config, index, solver, problem, schedule, checkpoint_dir=staged,
                                       progress=watchers.watch(meter, entry.label, seeds), resume=run.resumed)
            except TrainingDivergedError:
                args.resume_command = None
                watchers.run_end(status="diverged")
                _publish_diverged(run, args, "train", config)
                print(f"{entry.label}: last good parameters saved to "
                      f"{checkpoints / (entry.label + '.last-good.npz')}", file=sys.stderr)
                raise
            result = outcomes[0]
            finals = [o.stage_losses[-1] if len(o.stage_losses) and o.diverged_at is None else float("nan")
                      for o in outcomes]
            final = float(np.nanmedian(finals)) if not np.isnan(finals).all() else float("nan")
            diverged = [f"{seed} (stage {o.diverged_at['stage']}, step {o.diverged_at['step']})"
                        for seed, o in zip(seeds, outcomes) if o.diverged_at is not None]
            what = f"{len(seeds)} seeds" if len(seeds) > 1 else "trained"
            print(f"{entry.label}: {what + ' trained' if len(seeds) > 1 else what} in {result.train_seconds:.2f} s "
                  f"wall (compile {result.compile_seconds:.2f} s, {result.compilations} compilation, "
                  f"{len(result.losses)} steps, final training loss {final:.3e}"
                  f"{' (median over seeds)' if len(seeds) > 1 else ''}) -> {checkpoints / saved_as(entry.label)[0]}"
                  + (f" ... {saved_as(entry.label)[-1]}" if len(seeds) > 1 else "")
                  + (f"; diverged (last good parameters kept): seed {', seed '.join(diverged)}" if diverged else ""))
            trained += 1
            final_loss = final if not np.isnan(final) else None
            record = SolverResult(entry.label, entry.name, options_to_dict(entry.options), True, seeds=list(seeds),
                                  seed_status=["ok" if o.diverged_at is None else "diverged" for o in outcomes],
                                  diverged_at=[o.diverged_at for o in outcomes], final_loss=final_loss,
                                  train_seconds=result.train_seconds, compile_seconds=result.compile_seconds,
                                  compilations=result.compilations, solver=result.solver)
            for seed, outcome in zip(seeds, outcomes):
                record.losses[seed], record.stages[seed] = loss_history(outcome.losses, outcome.stage_losses, stages)
            histories[entry.label] = record
            results[entry.label] = {"train_seconds": result.train_seconds, "compile_seconds": result.compile_seconds,
                                    "steps": len(result.losses), "final_loss": final_loss,
                                    "checkpoint": f"checkpoints/{saved_as(entry.label)[0]}",
                                    "seeds": seeds, "diverged_at": [o.diverged_at for o in outcomes]}
            watchers.solver_end(SolverEnd(entry.label, position, True, seeds, {}, None, final_loss,
                                          result.train_seconds, record))
        history = history_csv(histories)
        if history is not None:  # every step's loss and each stage's mean, as unfold compare writes them
            for name, text in (("training.csv", history[0]), ("stages.csv", history[1])):
                with atomic_write(run.staging / name) as handle:
                    handle.write(text)
        watchers.run_end(status="complete", results=results)
        run.publish(_identity(run, args, "train", config, "complete"))
        args.resume_command, args.published_to = None, run.target
    print(f"trained {trained} solver(s) into {run.target}/; evaluate with: unfold compare --checkpoints "
          f"{shell_word(checkpoints)} --config {shell_word(run.target / 'config.toml')}")
    viewing_hint(run.target)
    return 0


# Exit status (documented in docs/cli.md, "Exit status").
