"""The rate grid: a new study of a learned solver begins with its learning rates trained together.

:func:`run_rate_grid` trains ``N`` log-spaced scalings of the searched rates as one
ensemble (one compiled program) and records each member as a trial of the study.
"""

from __future__ import annotations

import datetime
import math
import time

import numpy as np

from ..compare import build_solver, training_key
from ...engine import evaluate, train_ensemble
from ...options import options_to_dict
from ...params import learned_variables
from .trials import SolverTrials, short_params, validation_key

__all__ = ["run_rate_grid"]


def run_rate_grid(search: SolverTrials, points: int) -> int:
    """Train ``points`` settings of the learning rates as one ensemble (one compiled program) and
    record each member as a completed (or pruned, if it diverged) trial of the study.

    The grid scales every searched rate option by one common factor, log-spaced over the widest
    span that keeps each rate inside its range; the other settings are the configuration's.
    Returns the number of trials recorded (0 when the solver searches no learning rate).
    """
    optuna = search.optuna
    entry, settings = search.settings_of({})
    solver = build_solver(entry, search.problem, search.config.train.depth)
    groups: dict[str, list[str]] = {}
    for path, variable in learned_variables(solver).items():
        groups.setdefault(str(getattr(variable, "lr", "lr")), []).append(path)
    dims = [d for d in search.dims if d.key in groups and d.tunable.choices is None and not d.integer]
    base = {d.key: float(getattr(entry.options, d.key)) for d in dims}
    dims = [d for d in dims if base[d.key] > 0]
    if not dims or points < 2:
        return 0
    low = max(d.tunable.low / base[d.key] for d in dims)
    high = min(d.tunable.high / base[d.key] for d in dims)
    if not 0 < low < high:
        return 0
    factors = np.geomspace(low, high, points)
    rate_factors = {path: factors for d in dims for path in groups[d.key]}
    started = time.perf_counter()
    results = train_ensemble(solver, search.problem, search.schedule, settings,
                             keys=[training_key(search.config.train.seed, entry.label)] * points, progress=False,
                             label=entry.label, on_divergence="record", rate_factors=rate_factors)
    seconds = (time.perf_counter() - started) / points  # each member's share of the one ensemble's time
    for member, (factor, result) in enumerate(zip(factors, results)):
        scored = time.perf_counter()
        params = {d.key: float(base[d.key] * factor) for d in dims}
        distributions = {d.key: optuna.distributions.FloatDistribution(d.tunable.low, d.tunable.high,
                                                                        log=d.tunable.log) for d in dims}
        attrs = {"worker": search.worker, "grid": True, "grid_member": member,
                 "train_seconds": float(result.train_seconds),
                 "settings": {"options": {**options_to_dict(entry.options), **params},
                              "train": options_to_dict(settings)}}
        value, state = None, optuna.trial.TrialState.PRUNED
        if result.diverged_at is not None:
            attrs["reason"] = (f"diverged at stage {result.diverged_at['stage']}, step "
                               f"{result.diverged_at['step']} (rate grid)")
        else:
            measured = float(evaluate(result.solver, search.problem, key=validation_key(search.config.evaluation.seed),
                                      batch_size=search.validation["batch_size"],
                                      batches=search.validation["batches"],
                                      metrics=[search.metric.name])[search.metric.name][search.iteration - 1])
            attrs["metric_value"] = measured if math.isfinite(measured) else None
            if math.isfinite(measured):
                value = math.log10(max(measured, np.finfo(np.float64).tiny)) if search.metric.log_axis else measured
                state = optuna.trial.TrialState.COMPLETE
            else:
                attrs["reason"] = f"the validation {search.metric.name} is not finite ({measured})"
        attrs["grid_seconds_per_member"] = seconds
        frozen = optuna.trial.create_trial(params=params, distributions=distributions, value=value, state=state,
                                           user_attrs=attrs)
        # its duration: its share of the ensemble's training, and its own scoring
        frozen.datetime_start = frozen.datetime_complete - datetime.timedelta(
            seconds=seconds + time.perf_counter() - scored)
        search.study.add_trial(frozen)
        if search.log is not None:
            shown = (f"{search.metric.title} {search.metric.show(attrs['metric_value'])}" if value is not None
                     else attrs.get("reason", "pruned"))
            search.log(f"{entry.label} trial {_number_of(search, member)} (rate grid, factor "
                       f"{factor:.3g}): {shown}  {short_params(params)}")
    return points


def _number_of(search: SolverTrials, member: int) -> int:
    """The number the study gave this worker's grid member ``member`` (other workers may add trials meanwhile)."""
    return next(t.number for t in reversed(search.study.get_trials(deepcopy=False))
                if t.user_attrs.get("grid_member") == member and t.user_attrs.get("worker") == search.worker)
