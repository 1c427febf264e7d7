"""What a search leaves: every trial's record, each solver's search, and the result.

:class:`TuneResult` gives the content of ``tune.json`` (:meth:`TuneResult.to_dict`)
and of ``tuned.toml`` (:meth:`TuneResult.tuned_config`); :func:`trials_csv` that of
``trials.csv``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from typing import Any

import numpy as np

from ..config import ExperimentConfig
from ...metrics import Metric
from ...options import options_to_dict
from .space import Dimension

__all__ = ["TrialRecord", "SolverSearch", "TuneResult", "trial_record", "trials_csv"]


@dataclasses.dataclass
class TrialRecord:
    """One trial of a solver's study (from any worker).

    Attributes:
        value: the score optuna sees (``log10`` of the metric for a log-axis
            metric); ``None`` unless complete.
        metric_value: the metric itself at the scored iteration.
        state: ``"complete"``, ``"pruned"``, ``"failed"`` or ``"running"``.
        reason: why a trial was pruned or failed.
        options, train: the solver options and ``[train]`` settings it ran with.
        baseline: the trial of the configuration as given.
        grid: a member of the rate grid (``--rate-grid``).
    """

    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    metric_value: float | None
    duration: float | None
    worker: str | None
    reason: str | None
    options: dict[str, Any] | None
    train: dict[str, Any] | None
    compile_seconds: float | None = None
    train_seconds: float | None = None
    last_stage: int | None = None
    baseline: bool = False
    grid: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SolverSearch:
    """The search of one solver: its study, search space and trials."""

    label: str
    name: str
    trainable: bool
    study: str
    dimensions: list[Dimension]
    fixed: dict[str, Any]
    trials: list[TrialRecord]
    target_trials: int
    timed_out: bool = False
    direction: str = "minimize"

    @property
    def baseline(self) -> TrialRecord | None:
        """The trial of the configuration as given (``None`` when it did not run: ``--no-baseline``, or a rate
        grid that filled the budget)."""
        return next((t for t in self.trials if t.baseline), None)

    @property
    def best(self) -> TrialRecord | None:
        """The best complete trial (``None`` when none completed)."""
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        if not done:
            return None
        sign = 1.0 if self.direction == "minimize" else -1.0
        return min(done, key=lambda t: (sign * t.value, t.number))

    def counts(self) -> dict[str, int]:
        out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        compiles = [t.compile_seconds for t in self.trials if t.compile_seconds]
        return {"name": self.name, "trainable": self.trainable, "study": self.study,
                "search_space": [d.to_dict() for d in self.dimensions], "fixed": self.fixed,
                "target_trials": self.target_trials, "timed_out": self.timed_out, "counts": self.counts(),
                "mean_compile_seconds": float(np.mean(compiles)) if compiles else None,
                "best": best.to_dict() if best else None, "trials": [t.to_dict() for t in self.trials]}


@dataclasses.dataclass
class TuneResult:
    """What :func:`tune` returns: every solver's search, and the tuned configuration."""

    config: ExperimentConfig
    tuned_labels: list[str]
    metric: Metric
    iteration: int
    budget: dict[str, Any]
    validation: dict[str, Any]
    storage: str
    study: str
    searches: dict[str, SolverSearch]
    sampler: dict[str, Any]

    def _learned_train(self) -> dict[str, dict[str, Any]]:
        return {label: s.best.train for label, s in self.searches.items()
                if s.trainable and s.best is not None and s.best.train is not None}

    def train_conflicts(self) -> tuple[dict[str, Any], list[str]]:
        """The ``[train]`` table of ``tuned.toml`` and the learned solvers whose best settings differ from it.

        One configuration holds one ``[train]`` table: it takes the settings shared by
        most learned solvers' best trials (the first such solver's on a tie).
        """
        tables = self._learned_train()
        if not tables:
            return self.config.to_dict()["train"], []
        canonical = {label: json.dumps(table, sort_keys=True) for label, table in tables.items()}
        votes: dict[str, int] = {}
        for text in canonical.values():
            votes[text] = votes.get(text, 0) + 1
        order = list(canonical.values())
        winner = max(order, key=lambda text: (votes[text], -order.index(text)))
        chosen = next(tables[label] for label, text in canonical.items() if text == winner)
        schedule_options = options_to_dict(self.config.schedule_options)
        return {**chosen, **schedule_options}, [label for label, text in canonical.items() if text != winner]

    def tuned_config(self, train_of: str | None = None) -> dict[str, Any]:
        """The experiment configuration with every tuned solver's best options (a raw dict for TOML).

        ``[train]`` is :meth:`train_conflicts`' table, or the best trial's of the
        learned solver labelled ``train_of``.
        """
        raw = self.config.to_dict()
        train_table, _ = self.train_conflicts()
        if train_of is not None:
            train_table = {**self.searches[train_of].best.train, **options_to_dict(self.config.schedule_options)}
        # trials train one seed; the configuration's seeds are what `unfold compare` trains
        raw["train"] = {**train_table, "seeds": options_to_dict(self.config.train)["seeds"]}
        for index, entry in enumerate(raw["solvers"]):
            search = self.searches.get(entry["label"])
            if search is not None and search.best is not None and search.best.options is not None:
                raw["solvers"][index] = {"name": entry["name"], "label": entry["label"], **search.best.options}
        return raw

    def to_dict(self) -> dict[str, Any]:
        """The content of ``tune.json``."""
        from ... import __version__

        train_table, conflicts = self.train_conflicts()
        return {
            "format": "du-framework-tune", "format_version": 1, "framework_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": self.config.to_dict(), "tuned": self.tuned_labels,
            "metric": {"name": self.metric.name, "label": self.metric.title,
                       "direction": "minimize" if self.metric.lower_is_better else "maximize",
                       "score": "log10" if self.metric.log_axis else "value", "iteration": self.iteration,
                       "format": self.metric.format, "scale": self.metric.scale},
            "budget": self.budget, "validation": self.validation, "storage": self.storage, "study": self.study,
            "sampler": self.sampler, "tuned_train": train_table, "train_conflicts": conflicts,
            "solvers": {label: search.to_dict() for label, search in self.searches.items()},
        }


def _state_name(state) -> str:
    return {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
            "WAITING": "running"}.get(state.name, state.name.lower())


def trial_record(frozen) -> TrialRecord:
    attrs = frozen.user_attrs
    settings = attrs.get("settings") or {}
    return TrialRecord(
        number=frozen.number, state=_state_name(frozen.state), params=dict(frozen.params),
        value=frozen.value if frozen.state.name == "COMPLETE" else None, metric_value=attrs.get("metric_value"),
        duration=frozen.duration.total_seconds() if frozen.duration is not None else None,
        worker=attrs.get("worker"), reason=attrs.get("reason"), options=settings.get("options"),
        train=settings.get("train"), compile_seconds=attrs.get("compile_seconds"),
        train_seconds=attrs.get("train_seconds"), last_stage=attrs.get("last_stage"),
        baseline=bool(attrs.get("baseline", False)), grid=bool(attrs.get("grid", False)))


def trials_csv(result: TuneResult) -> str:
    """Every trial of every solver as CSV: label, number, state, value, metric, duration, worker, reason, params."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "number", "state", "value", result.metric.name, "duration_s", "worker", "reason",
                     "params"])
    for label, search in result.searches.items():
        for t in search.trials:
            writer.writerow([label, t.number, t.state, "" if t.value is None else repr(float(t.value)),
                             "" if t.metric_value is None else repr(float(t.metric_value)),
                             "" if t.duration is None else f"{t.duration:.3f}", t.worker or "", t.reason or "",
                             json.dumps(t.params, sort_keys=True)])
    return buffer.getvalue()
