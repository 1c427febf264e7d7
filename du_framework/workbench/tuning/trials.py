"""The objective: one trial of one solver, trained (a learned solver) and scored on validation instances.

Validation instances come from ``fold_in(key(evaluation.seed), 2)``
(:func:`validation_key`); a trial's training loss at every stage boundary goes to
the pruner.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from ..compare import build_solver, training_key
from ...engine import evaluate, train
from ...engine.keys import host_fold_in, host_key
from ...errors import DUError, TrainingDivergedError
from ...options import options_to_dict, parse_options
from .results import TrialRecord, trial_record
from .space import train_settings_with

__all__ = ["VALIDATION_TAG", "validation_key", "SolverTrials", "short_params"]

VALIDATION_TAG = 2
"""The tag folded into ``key(evaluation.seed)`` for validation (training uses 0, evaluation 1)."""


def validation_key(seed: int):
    """Key of the validation instances of ``unfold tune``: ``fold_in(key(seed), 2)`` for ``evaluation.seed``.

    Training instances come from tag 0 (:func:`~du_framework.workbench.compare.training_key`) and
    the evaluation instances of ``unfold compare`` from tag 1, so validation shares no
    instance with either.
    """
    return host_fold_in(host_key(seed), VALIDATION_TAG)


def short_params(params: dict[str, Any]) -> str:
    shown = []
    for key, value in params.items():
        key = key.replace("train.", "")
        shown.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(shown)


def _done(study) -> int:
    """How many trials of ``study`` have ended (complete, pruned or failed)."""
    import optuna

    ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=ended))



class SolverTrials:
    """The trials of one solver, run by this worker."""

    def __init__(self, *, optuna, study, config, entry, problem, schedule, dims, fixed, metric, iteration,
                 validation, worker, log, pruning, registry):
        self.optuna, self.study, self.config, self.entry = optuna, study, config, entry
        self.problem, self.schedule, self.dims, self.fixed = problem, schedule, dims, fixed
        self.metric, self.iteration, self.validation, self.worker = metric, iteration, validation, worker
        self.log, self.pruning, self.registry = log, pruning, registry
        self.sign = 1.0 if metric.lower_is_better else -1.0

    def settings_of(self, params: dict[str, Any]):
        values = {**self.fixed, **params}
        options = options_to_dict(self.entry.options)
        options.update({k: v for k, v in values.items() if not k.startswith("train.")})
        solver_cls = self.registry.solver(self.entry.name)
        parsed = parse_options(solver_cls.Options, options, prefix=f"solvers.{self.entry.label}.")
        train_settings = train_settings_with(self.config.train, {k: v for k, v in values.items() if k.startswith("train.")})
        # A trial trains one seed, train.seed (train.seeds is what `unfold compare` does with the result).
        train_settings = train_settings.replace(seeds=1)
        return dataclasses.replace(self.entry, options=parsed), train_settings

    def run_trial(self, total: int) -> TrialRecord:
        optuna = self.optuna
        trial = self.study.ask()
        trial.set_user_attr("worker", self.worker)
        params = {dim.key: dim.suggest(trial) for dim in self.dims}
        started = time.perf_counter()
        outcome: dict[str, Any] = {}
        try:
            state, value = self._evaluate(trial, params, outcome)
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted")
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        except Exception as error:
            trial.set_user_attr("reason", f"{type(error).__name__}: {error}"[:500])
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        for key, item in outcome.items():
            trial.set_user_attr(key, item)
        if state == "complete":
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED if state == "pruned"
                            else optuna.trial.TrialState.FAIL)
        seconds = time.perf_counter() - started
        if self.log is not None:
            shown = (f"{self.metric.title} {self.metric.show(outcome['metric_value'])}" if state == "complete"
                     else f"{state}: {outcome.get('reason', '')}")
            compile_note = (f", compile {outcome['compile_seconds']:.1f} s" if outcome.get("compile_seconds")
                            else "")
            self.log(f"{self.entry.label} trial {trial.number} ({_done(self.study)} of {total}): {shown} "
                     f"({seconds:.1f} s{compile_note})"
                     + (f"  {short_params(params)}" if params else ""))
        return next(trial_record(t) for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)

    def _evaluate(self, trial, params, outcome) -> tuple[str, float | None]:
        optuna = self.optuna
        try:
            entry, settings = self.settings_of(params)
            outcome["settings"] = {"options": options_to_dict(entry.options), "train": options_to_dict(settings)}
            solver = build_solver(entry, self.problem, self.config.train.depth)
        except DUError as error:  # a combination the solver refuses
            outcome["reason"] = f"refused: {' '.join(str(error).split())}"[:500]
            return "failed", None
        if solver.is_trainable:
            sign = self.sign

            def report(state) -> None:
                # stage_losses hold the loss itself whatever train.log_loss (which only changes what
                # is descended), so every trial reports log(loss): trials with and without the log
                # loss are compared by the pruner on one scale.
                if not state.stage_losses:
                    return
                loss = float(np.mean(state.stage_losses[-1]))
                level = math.log(max(loss, np.finfo(np.float64).tiny)) if math.isfinite(loss) else float("nan")
                trial.report(sign * level if math.isfinite(level) else float("nan"), state.stages_done)
                outcome["last_stage"] = state.stages_done
                if self.pruning and trial.should_prune():
                    raise optuna.TrialPruned(f"training loss at stage {state.stages_done} worse than the median "
                                             f"of earlier trials")

            try:
                result = train(solver, self.problem, self.schedule, settings,
                               key=training_key(self.config.train.seed, entry.label), progress=False,
                               label=entry.label, on_stage_end=report)
            except optuna.TrialPruned as pruned:
                outcome["reason"] = str(pruned)
                return "pruned", None
            except TrainingDivergedError as error:
                outcome["reason"] = f"diverged: {' '.join(str(error).split())}"[:500]
                return "pruned", None
            outcome["compile_seconds"] = float(result.compile_seconds)
            outcome["train_seconds"] = float(result.train_seconds)
            solver = result.solver
        curves = evaluate(solver, self.problem, key=validation_key(self.config.evaluation.seed),
                          batch_size=self.validation["batch_size"], batches=self.validation["batches"],
                          metrics=[self.metric.name])
        measured = float(curves[self.metric.name][self.iteration - 1])
        outcome["metric_value"] = measured if math.isfinite(measured) else None
        if not math.isfinite(measured):
            outcome["reason"] = f"the validation {self.metric.name} is not finite ({measured})"
            return "pruned", None
        score = math.log10(max(measured, np.finfo(np.float64).tiny)) if self.metric.log_axis else measured
        return "complete", score
