"""One result model for a solver's run: what a comparison produces, ``results.json`` holds, :func:`load_run`
returns, tables and reports read and observers receive (:class:`SolverResult`), with its loss history
(:class:`LossHistory`, :class:`StageSummary`) and the seed summary (:func:`summarize_seeds`).

A comparison fills a :class:`SolverResult` from training and evaluation; :meth:`SolverResult.to_dict` is its
``results.json`` entry; :func:`du_framework.workbench.loading.load_run` reads the entry back into the same
class, adding what only a saved run has (the checkpoint file, the raw stored arrays, unknown fields).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SolverResult", "SweepPoint", "SweepAxis", "counts_dict", "LossHistory", "StageSummary", "summarize_seeds", "loss_history", "history_csv",
           "SUMMARY", "TRAINING_CSV_COLUMNS", "STAGES_CSV_COLUMNS"]

SUMMARY = {"center": "median", "spread": "min-max", "over": "seeds that did not diverge"}

TRAINING_CSV_COLUMNS = ("solver", "seed", "step", "stage", "active_depth", "loss")
STAGES_CSV_COLUMNS = ("solver", "seed", "stage", "active_depth", "steps", "mean_loss")


@dataclasses.dataclass
class LossHistory:
    """The training loss of one solver and seed, one entry per optimiser step (``training.csv``).

    All arrays have one entry per step, in order: ``step``, ``stage``, ``active_depth`` (int64; ``-1`` where a
    step could not be placed in the schedule's stages) and ``loss`` (float64, NaN after a divergence).
    """

    step: np.ndarray
    stage: np.ndarray
    active_depth: np.ndarray
    loss: np.ndarray


@dataclasses.dataclass
class StageSummary:
    """Per-stage training summary of one solver and seed (``stages.csv``): one entry per stage."""

    stage: np.ndarray
    active_depth: np.ndarray
    steps: np.ndarray
    mean_loss: np.ndarray


@dataclasses.dataclass(frozen=True)
class SweepAxis:
    """What a comparison swept (``[evaluation] sweep``): a problem option and its values, in order."""

    option: str
    values: tuple

    def to_dict(self) -> dict[str, Any]:
        return {"option": self.option, "values": list(self.values)}


@dataclasses.dataclass
class SweepPoint:
    """One solver at one point of a sweep: the problem rebuilt with the swept option set to ``value``, evaluated
    on the point's own fresh instances.

    Attributes:
        value: the swept option's value.
        metrics, spread, per_seed_metrics: as :class:`SolverResult`'s, at this point.
        counts: ``{metric: (errors, trials)}``, each ``(depth,)``, for the metrics that count errors (the
            evaluation of the representative seed).
        batches: evaluation batches behind the point (with ``target_errors``, where the count stopped).
    """

    value: Any
    metrics: dict[str, np.ndarray]
    spread: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    per_seed_metrics: dict[str, np.ndarray] | None = None
    counts: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    batches: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The point's entry in a solver's ``sweep`` list of ``results.json``."""
        return {"value": self.value, "metrics": {name: [float(v) for v in c] for name, c in self.metrics.items()},
                "spread": _spread_dict(self.spread),
                "per_seed": None if self.per_seed_metrics is None else {"metrics": {
                    name: np.asarray(curves, np.float64).tolist() for name, curves in self.per_seed_metrics.items()}},
                "counts": counts_dict(self.counts), "batches": self.batches}


def counts_dict(counts: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """``{metric: {"errors": [...], "trials": [...]}}`` (per iteration) for ``results.json``."""
    return {name: {"errors": [float(v) for v in errors], "trials": [float(v) for v in trials]}
            for name, (errors, trials) in counts.items()}


def _spread_dict(spread: Mapping[str, tuple[np.ndarray, np.ndarray]] | None) -> dict[str, Any] | None:
    return {name: {"low": [float(v) for v in low], "high": [float(v) for v in high]}
            for name, (low, high) in spread.items()} if spread is not None else None


@dataclasses.dataclass
class SolverResult:
    """One solver of a run.

    Attributes:
        label, name, options: as configured.
        trainable: whether it has learned parameters.
        metrics: ``{metric: (depth,) float64}``, the central curve (with several seeds the median over the
            seeds that did not diverge); element ``t-1`` is the value after iteration ``t``; NaN for a
            missing value. Empty for a run of ``unfold train``.
        spread: ``{metric: (low, high)}``, each ``(depth,)``: minimum and maximum over the seeds that did not
            diverge; ``None`` without a spread (a classical solver, one seed of a schema-2 run).
        seeds: the training seeds (``[]`` for a classical or loaded solver).
        seed_status: ``"ok"`` or ``"diverged"`` per seed.
        per_seed_metrics: ``{metric: (seeds, depth) float64}``, or ``None``.
        params: reported parameters by name as arrays (those of ``representative_seed``).
        per_seed_params: reported parameters per seed, or ``None``.
        references: ``{parameter: {label: values}}`` reference values.
        final_loss: the training loss at the end (``None`` when not trained); per_seed_final_loss per seed.
        diverged_at: per seed ``None`` or ``{"stage": s, "step": n}``, or ``None``.
        representative_seed: the seed whose parameters :attr:`params` holds.
        train_seconds, compile_seconds, compilations, evaluation_seconds: what training and evaluation cost.
        loaded_from: the checkpoint the parameters came from, when loaded rather than trained.
        resumed: the solver's training was done (or begun) by an earlier, interrupted session of a resumed
            run; its ``train_seconds`` etc. are then those its checkpoint records.
        problem_mismatch: how the checkpoint's problem differs from the run's, when it does.
        losses: ``{seed: LossHistory}`` (seed ``-1`` when a saved file names none).
        stages: ``{seed: StageSummary}``.
        stored_params: a saved run of ``unfold train``: the checkpoint's arrays as stored (``param/<name>``,
            before the parameter's constraint) of the parameters reports show (not those declared
            ``report=False``: large matrices, networks' weights), else empty.
        checkpoint: the checkpoint file in a saved run folder, if there is one.
        counts: ``{metric: (errors, trials)}``, each ``(depth,)``: for each metric that counts errors, the error
            count and the number of trials behind its curve (the representative seed's evaluation); empty when
            the problem has no such metric (or for a run written before they were recorded).
        evaluation_batches: batches the evaluation ran (with ``target_errors``, where the count stopped);
            ``None`` when not recorded.
        sweep: one :class:`SweepPoint` per value of ``[evaluation] sweep``, in order; empty without a sweep.
        parameter_count: learned numbers of a trainable solver (every ``nnx.Param``'s size, networks' weights
            included); ``None`` for a classical solver (or a run written before it was recorded).
        networks: ``{path: summary}`` of the solver's :class:`~du_framework.networks.Network` parts
            (``"MLP 1x64, shared by every iteration, 609 parameters"``); empty without one.
        extra: every other field of a saved entry, as read.
        solver: the trained solver object (in memory only; never saved).
    """

    label: str
    name: str
    options: dict[str, Any]
    trainable: bool
    metrics: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    spread: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    seeds: list[int] = dataclasses.field(default_factory=list)
    seed_status: list[str] = dataclasses.field(default_factory=list)
    per_seed_metrics: dict[str, np.ndarray] | None = None
    params: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    per_seed_params: list[dict[str, np.ndarray]] | None = None
    references: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    final_loss: float | None = None
    per_seed_final_loss: list[float | None] | None = None
    diverged_at: list[dict[str, int] | None] | None = None
    representative_seed: int | None = None
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    compilations: int = 0
    evaluation_seconds: float = 0.0
    loaded_from: str | None = None
    resumed: bool = False
    problem_mismatch: list[str] | None = None
    losses: dict[int, LossHistory] = dataclasses.field(default_factory=dict, repr=False)
    stages: dict[int, StageSummary] = dataclasses.field(default_factory=dict, repr=False)
    stored_params: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
    checkpoint: Path | None = None
    counts: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    evaluation_batches: int | None = None
    sweep: list[SweepPoint] = dataclasses.field(default_factory=list)
    parameter_count: int | None = None
    networks: dict[str, str] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    solver: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def ok_seeds(self) -> list[int]:
        """The seeds that did not diverge."""
        return [seed for seed, status in zip(self.seeds, self.seed_status) if status == "ok"]

    @property
    def diverged_seeds(self) -> list[int]:
        """The seeds that diverged."""
        return [seed for seed, status in zip(self.seeds, self.seed_status) if status != "ok"]

    def to_dict(self) -> dict[str, Any]:
        """The solver's entry of ``results.json`` (schema 3)."""
        trained = self.per_seed_metrics is not None
        return {
            "name": self.name,
            "options": self.options,
            "metrics": {name: [float(v) for v in curve] for name, curve in self.metrics.items()},
            "spread": _spread_dict(self.spread),
            "params": _lists(self.params),
            "representative_seed": self.representative_seed,
            "references": {param: _lists(lines) for param, lines in self.references.items()},
            "trainable": self.trainable,
            "seeds": list(self.seeds),
            "seed_status": list(self.seed_status),
            "per_seed": {
                "metrics": {name: np.asarray(curves, np.float64).tolist()
                            for name, curves in self.per_seed_metrics.items()},
                "params": [_lists(params) for params in self.per_seed_params or []] or self.per_seed_params,
                "final_loss": self.per_seed_final_loss,
                "diverged_at": self.diverged_at,
            } if trained else None,
            "train_seconds": self.train_seconds,
            "compile_seconds": self.compile_seconds,
            "compilations": self.compilations,
            "evaluation_seconds": self.evaluation_seconds,
            "final_loss": self.final_loss,
            "loaded_from": self.loaded_from,
            "resumed": self.resumed,
            "problem_mismatch": self.problem_mismatch,
            # optional (docs/results.md): the counts behind error rates, the sweep
            **({"counts": counts_dict(self.counts), "evaluation_batches": self.evaluation_batches}
               if self.counts else {}),
            **({"sweep": [point.to_dict() for point in self.sweep]} if self.sweep else {}),
            # optional: the size of what a trainable solver learns, and its networks
            **({"parameter_count": self.parameter_count} if self.parameter_count is not None else {}),
            **({"networks": dict(self.networks)} if self.networks else {}),
        }


def _lists(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: np.asarray(value, np.float64).tolist() for name, value in values.items()}


def summarize_seeds(curves: np.ndarray, ok: np.ndarray, *, log: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(median, minimum, maximum)`` over the rows of ``curves`` (seeds x iterations) where ``ok``.

    With an even number of rows the median is the mean of the two middle
    values, taken on a log scale when ``log`` (a geometric mean, for metrics
    plotted on a log axis such as an MSE; a dB metric is already logarithmic),
    so the summary of an MSE and of its dB value agree at every seed count.
    With no row ``ok`` every statistic is NaN.
    """
    curves = np.asarray(curves, np.float64)
    chosen = np.sort(curves[np.asarray(ok, bool)], axis=0)
    count = len(chosen)
    if not count:
        nan = np.full(curves.shape[1:], np.nan)
        return nan, nan, nan
    lower, upper = chosen[(count - 1) // 2], chosen[count // 2]
    center = (lower + upper) / 2
    if log:  # per iteration: the geometric middle where both middle values are positive
        positive = (lower > 0) & (upper > 0)
        with np.errstate(invalid="ignore"):
            geometric = np.sqrt(np.where(positive, lower, 1.0)) * np.sqrt(np.where(positive, upper, 1.0))
        center = np.where(positive, geometric, center)
    center = np.where(lower == upper, lower, center)
    return center, chosen[0], chosen[-1]


def loss_history(losses: Sequence[float], stage_means: Sequence[float], plan: Sequence[tuple[int, int]]
                 ) -> tuple[LossHistory, StageSummary]:
    """One seed's history from its per-step losses and per-stage means, placed in the schedule ``plan``
    (``(active_depth, steps)`` per stage): a history that does not span the plan's steps is not placed
    (stage and depth ``-1``)."""
    losses = np.asarray(losses, np.float64)
    stage_of = np.repeat(np.arange(1, len(plan) + 1), [steps for _, steps in plan]).astype(np.int64)
    depth_of = np.repeat([depth for depth, _ in plan], [steps for _, steps in plan]).astype(np.int64)
    if len(losses) != len(stage_of):
        stage_of = depth_of = np.full(len(losses), -1, np.int64)
    with_steps = [(number, depth, steps) for number, (depth, steps) in enumerate(plan, 1) if steps]
    with_steps = with_steps[:len(stage_means)]
    summary = StageSummary(np.array([s[0] for s in with_steps], np.int64), np.array([s[1] for s in with_steps], np.int64),
                           np.array([s[2] for s in with_steps], np.int64),
                           np.asarray(stage_means[:len(with_steps)], np.float64))
    return LossHistory(np.arange(1, len(losses) + 1, dtype=np.int64), stage_of, depth_of, losses), summary


def history_csv(results: Mapping[str, SolverResult]) -> tuple[str, str] | None:
    """``(training.csv, stages.csv)`` texts (every step's loss; each stage's mean) of the solvers that hold a
    loss history, or ``None`` when none does."""
    trained = {label: r for label, r in results.items() if any(len(h.loss) for h in r.losses.values())}
    if not trained:
        return None
    steps_csv, stages_csv = io.StringIO(), io.StringIO()
    steps_out = csv.writer(steps_csv, lineterminator="\n")
    stages_out = csv.writer(stages_csv, lineterminator="\n")
    steps_out.writerow(TRAINING_CSV_COLUMNS)
    stages_out.writerow(STAGES_CSV_COLUMNS)
    for label, result in trained.items():
        for seed, history in result.losses.items():
            for step, stage, depth, loss in zip(history.step, history.stage, history.active_depth, history.loss):
                steps_out.writerow([label, seed, int(step), int(stage) if stage >= 0 else "",
                                    int(depth) if depth >= 0 else "", repr(float(loss))])
            summary = result.stages.get(seed)
            if summary is not None:
                for number, depth, steps, mean in zip(summary.stage, summary.active_depth, summary.steps,
                                                      summary.mean_loss):
                    stages_out.writerow([label, seed, int(number), int(depth), int(steps), repr(float(mean))])
    return steps_csv.getvalue(), stages_csv.getvalue()
