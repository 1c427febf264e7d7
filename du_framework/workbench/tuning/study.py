"""The search of every solver under an equal budget: :func:`tune`.

One optuna study per solver (``STUDY:LABEL``), in a storage workers may share: TPE
proposes, a median pruner stops a trial whose stage loss is worse than the median,
and each worker stops when the study holds ``trials`` trials.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from ..compare import build_problem, build_schedule, build_solver, build_solvers
from ..config import ExperimentConfig, SolverConfig
from ...engine import expand_schedule
from ...errors import ConfigError
from ...options import options_to_dict
from ...registry import Registry, get_registry
from .grid import run_rate_grid
from .results import SolverSearch, TuneResult, trial_record
from .space import DEFAULT_OPTIMIZERS, baseline_params, check_selection, search_space
from .storage import load_optuna, open_storage, shown_url, study_identity
from .trials import VALIDATION_TAG, SolverTrials

__all__ = ["tune"]


def _budget(config: ExperimentConfig, schedule, trials: int, timeout: float | None) -> dict[str, Any]:
    stages = expand_schedule(schedule, config.train, config.train.depth)
    steps = int(sum(stage.steps for stage in stages))
    return {"trials": trials, "timeout_seconds": timeout, "schedule": config.train.schedule,
            "schedule_options": options_to_dict(config.schedule_options), "depth": config.train.depth,
            "stages": len(stages), "steps_per_stage": config.train.steps_per_stage, "steps_per_trial": steps,
            "batch_size": config.train.batch_size, "instances_per_trial": steps * config.train.batch_size}


def _resolved_constants(entry: SolverConfig, problem, depth: int, registry) -> dict[str, Any]:
    """The constants a classical solver computes from its options (empty when it cannot be built)."""
    try:
        return dict(build_solver(entry, problem, depth, registry).constants())
    except Exception:  # noqa: BLE001 - the trials report a solver that cannot be built
        return {}


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def tune(config: ExperimentConfig, *, trials: int, labels: Sequence[str] | None = None,
         storage: str | None = None, study: str | None = None, metric: str | None = None, seed: int = 0,
         timeout: float | None = None, space: dict[str, Any] | None = None,
         optimizers: Sequence[str] | None = DEFAULT_OPTIMIZERS, search_log_loss: bool = True,
         validation_batches: int | None = None, pruning: bool = True, pruner_startup: int | None = None,
         baseline: bool = True, shared: bool | None = None,
         worker: str | None = None, registry: Registry | None = None, rate_grid: int = 0,
         log: Callable[[str], None] | None = None) -> TuneResult:
    """Search every solver of ``config`` (or those labelled ``labels``) under an equal budget.

    Args:
        trials: trials per solver (in the whole study: workers sharing it stop when
            it holds ``trials``). A solver with nothing to search runs one.
        storage: an optuna RDB URL (:func:`open_storage`); default an in-memory study.
        study: the study name prefix (each solver's study is ``STUDY:LABEL``); with a
            shared ``storage`` every worker giving the same name joins the same studies.
        metric: the metric scored (default: the problem's primary metric), at the last iteration.
        seed: seed of the TPE sampler (mixed with the label; in a shared search also
            with the worker, so workers propose different settings).
        timeout: seconds after which this worker starts no new trial of a solver.
        space: overrides of the search space (:func:`parse_space`).
        optimizers: the optimisers searched (one name: fixed; ``None``: the configuration's).
        search_log_loss: also search ``train.log_loss``.
        validation_batches: validation batches of ``evaluation.batch_size`` instances
            (default ``evaluation.batches``).
        pruning: stop trials whose stage loss is worse than the median (optuna's MedianPruner).
        pruner_startup: complete trials before pruning starts (default ``trials // 4``
            within 2 to 5); the first quarter of the schedule's stages is never pruned.
        rate_grid: with ``N >= 2``, a new study of a learned solver begins with ``N``
            trials trained together as one ensemble (one compiled program): its
            searched learning rates scaled by ``N`` log-spaced common factors, the
            other settings as configured; they count toward ``trials`` and the
            sampler continues from them.
        baseline: make a new study's first trial (after the rate grid's, when the budget
            leaves room) the configuration as given (every searched setting whose range
            holds the configured value), so the search reports how much it gained over it.
        shared: whether other workers may share the study (default: ``storage`` or
            ``study`` given); a shared search mixes the worker's name into the sampler's seed.
        worker: this worker's name in the trials' records (default ``HOST:PID``).
        log: receives one line per trial (``None``: quiet).

    Raises:
        ConfigError: ``trials < 1``, an unknown label or metric, a bad storage, a space
            key that names nothing, or a shared study started with another configuration.
        IncompatibleProblemError: a solver does not fit the problem.
    """
    from ..report import select_metric

    optuna = load_optuna()
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--trials must be an integer >= 1 (trials per solver), got {trials!r}")
    if timeout is not None and not (timeout > 0):
        raise ConfigError(f"--timeout must be a number of seconds > 0, got {timeout!r}")
    if validation_batches is not None and validation_batches < 1:
        raise ConfigError(f"--validation-batches must be >= 1, got {validation_batches!r}")
    registry = registry or get_registry()
    chosen = check_selection(config, labels, space)
    known = [e.label for e in config.solvers]
    chosen_metric = select_metric(registry.problem(config.problem.name), metric)
    problem = build_problem(config, registry)
    schedule = build_schedule(config, registry)
    solvers = dict(zip(known, build_solvers(config, problem, registry)))
    budget = _budget(config, schedule, trials, timeout)
    iteration = config.train.depth
    validation = {"seed": config.evaluation.seed, "tag": VALIDATION_TAG, "batch_size": config.evaluation.batch_size,
                  "batches": validation_batches or config.evaluation.batches}
    shared = (storage is not None or study is not None) if shared is None else shared
    url = storage if storage is not None else "sqlite:///:memory:"
    rdb = open_storage(url) if storage is not None else optuna.storages.InMemoryStorage()
    prefix = study or "tune"
    worker = worker or _worker_id()
    direction = "minimize" if chosen_metric.lower_is_better else "maximize"
    startup = pruner_startup if pruner_startup is not None else max(2, min(5, trials // 4))
    warmup = budget["stages"] // 4  # the first quarter of the schedule's stages is never pruned
    sampler_info = {"sampler": "TPESampler (multivariate, constant liar)", "seed": seed,
                    "startup_trials": max(1, min(10, trials // 3)),
                    "pruner": (f"MedianPruner (after {startup} complete trials, from stage {warmup + 1})" if pruning
                              else "none")}
    searches: dict[str, SolverSearch] = {}
    try:
        for label in chosen:
            entry = config.solver(label)
            solver = solvers[label]
            dims, fixed = search_space(entry, solver, space=space, optimizers=optimizers,
                                       search_log_loss=search_log_loss)
            target = trials if dims else 1
            mix = f"{seed}/{label}/{worker}" if shared else f"{seed}/{label}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler = optuna.samplers.TPESampler(seed=zlib.crc32(mix.encode()),
                                                     n_startup_trials=sampler_info["startup_trials"],
                                                     multivariate=True, constant_liar=True)
            pruner = optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup + 1)  # steps are stages, from 1
            name = f"{prefix}:{label}"
            identity = study_identity(config, entry, dims, fixed, chosen_metric, iteration, budget, validation)
            handle = optuna.create_study(storage=rdb, study_name=name, direction=direction, sampler=sampler,
                                         pruner=pruner, load_if_exists=True)
            stored = handle.user_attrs.get("du_framework")
            if stored is None:
                handle.set_user_attr("du_framework", identity)
            elif stored != identity:
                differ = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
                raise ConfigError(f"study {name!r} in {shown_url(url)!r} was started with another configuration "
                                  f"(its {', '.join(differ)} differ); join it with the same configuration, "
                                  f"--space and --metric, or choose another --study")
            if handle.direction.name.lower() != direction:
                raise ConfigError(f"study {name!r} {handle.direction.name.lower()}s, but metric "
                                  f"{chosen_metric.name!r} asks to {direction}; choose another --study")
            start = baseline_params(entry, config.train, dims,
                                     _resolved_constants(entry, problem, config.train.depth, registry)) if baseline else {}
            fresh = not handle.get_trials(deepcopy=False)
            search = SolverTrials(optuna=optuna, study=handle, config=config, entry=entry, problem=problem,
                             schedule=schedule, dims=dims, fixed=fixed, metric=chosen_metric, iteration=iteration,
                             validation=validation, worker=worker, log=log, pruning=pruning, registry=registry)
            counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                       optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING)
            started, timed_out = time.monotonic(), False
            if log is not None and len(config.train.seed_list()) > 1 and solver.is_trainable:
                log(f"{label}: each trial trains one seed (train.seed = {config.train.seed}); train.seeds = "
                    f"{list(config.train.seed_list())} is kept in tuned.toml for unfold compare")
            if log is not None:
                what = ", ".join(d.describe() for d in dims) or "nothing to search (one scoring trial)"
                log(f"{label} ({entry.name}): {target} trial(s) of {name!r}; searching {what}")
            if rate_grid and solver.is_trainable and not handle.get_trials(
                    deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)):
                run_rate_grid(search, min(rate_grid, target))  # a new study: the grid first, then TPE from it
            # a new study's next trial is the configuration as given (after the grid), if the budget leaves room
            if start and fresh:
                if len(handle.get_trials(deepcopy=False, states=counted)) < target:
                    handle.enqueue_trial(start, user_attrs={"baseline": True}, skip_if_exists=True)
                elif log is not None:
                    log(f"{label}: the rate grid fills the {target} trials; the configuration as given is not run "
                        f"(--trials above {target} runs it after the grid)")
            while len(handle.get_trials(deepcopy=False, states=counted)) < target:
                if timeout is not None and time.monotonic() - started >= timeout:
                    timed_out = True
                    break
                search.run_trial(target)
            # a trial still waiting in the queue never ran (a timeout came first): it is no record
            records = [trial_record(t) for t in handle.get_trials(deepcopy=False)
                       if t.state != optuna.trial.TrialState.WAITING]
            searches[label] = SolverSearch(label, entry.name, solver.is_trainable, name, dims, fixed, records,
                                           target, timed_out, direction)
    finally:
        engine = getattr(rdb, "engine", None)
        if engine is not None:
            engine.dispose()
    return TuneResult(config=config, tuned_labels=chosen, metric=chosen_metric, iteration=iteration, budget=budget,
                      validation=validation, storage=shown_url(url) if storage is not None else "(in memory)",
                      study=prefix, searches=searches, sampler=sampler_info)
