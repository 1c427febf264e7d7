"""A saved run read back (:class:`Run`): parsed from a results dict of schema 2 or 3, with its loss history."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..results import STAGES_CSV_COLUMNS, TRAINING_CSV_COLUMNS, LossHistory, SolverResult, StageSummary, SweepAxis
from .fields import Checker, MetricInfo, guess_log_axis, jsonable, metric_info
from .files import LONG_FORMAT_COLUMNS, SUPPORTED_SCHEMAS, RunFileError, csv_number, read_csv
from .sweep import parse_axis, parse_evaluation_extras


SolverRun = SolverResult
"""The record :func:`load_run` returns for each solver: the one result model,
:class:`~du_framework.workbench.results.SolverResult` (this name is kept for code written before)."""


@dataclasses.dataclass
class Run:
    """A saved run, read back: configuration, facts, curves, parameters, losses, provenance.

    Attributes:
        label: how reports and overlays name the run (the folder's name, or ``"run"``).
        folder: the run folder (``None`` for a run built from an in-memory dict).
        kind: ``"compare"`` (evaluation curves) or ``"train"`` (checkpoints only).
        schema_version: ``results.json``'s version (``None`` for a training run).
        config: the resolved configuration (``config.json`` / ``results.json``).
        problem: facts about the problem (``Problem.describe()``).
        metrics: every metric by name, in the declared order (empty for a training run).
        primary_metric: the metric shown by default (``None`` for a training run).
        evaluation: seed, batch size, batches and iterations of the evaluation.
        solvers: every solver by label, in the run's order.
        summary: how the central curve and spread were computed (schema 3), else ``None``.
        train_seeds: the training seeds of the run.
        provenance: versions, backend, command line and git revision, if recorded.
        manifest: ``manifest.json`` as read, or ``None``.
        verified: the files whose sha256 matched the manifest.
        warnings: what a reader should know (an unchecked or changed file, ...).
        missing: what this run cannot provide, in words (curves of a training run, ...).
        framework_version, created: as recorded.
        sweep: the swept problem option and its values (``[evaluation] sweep``), or ``None``; each solver's
            points are its :attr:`SolverResult.sweep`.
    """

    label: str
    folder: Path | None
    kind: str
    schema_version: int | None
    config: dict[str, Any]
    problem: dict[str, Any]
    metrics: dict[str, MetricInfo]
    primary_metric: str | None
    evaluation: dict[str, Any]
    solvers: dict[str, SolverRun]
    summary: dict[str, Any] | None = None
    train_seeds: list[int] = dataclasses.field(default_factory=list)
    provenance: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    verified: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    framework_version: str | None = None
    created: str | None = None
    sweep: SweepAxis | None = None

    @property
    def depth(self) -> int:
        """Iterations per curve (``evaluation.iterations``, else ``train.depth``, else 0)."""
        value = self.evaluation.get("iterations") or (self.config.get("train") or {}).get("depth") or 0
        return int(value)

    @property
    def has_curves(self) -> bool:
        """Whether the run holds evaluation curves (a run of ``unfold compare``)."""
        return any(solver.metrics for solver in self.solvers.values())

    @property
    def has_losses(self) -> bool:
        """Whether the run holds a loss history (``training.csv``)."""
        return any(solver.losses for solver in self.solvers.values())

    def metric(self, name: str | None = None) -> MetricInfo:
        """The metric called ``name`` (default: the primary one).

        Raises:
            RunFileError: the run has no curves, or no metric of that name (the
                message lists its metrics and the nearest).
        """
        from ...errors import nearest

        if not self.metrics:
            raise RunFileError(f"run {self.label!r} holds no evaluation curves ({'; '.join(self.missing)})")
        name = name or self.primary_metric or next(iter(self.metrics))
        if name not in self.metrics:
            hint = nearest(name, self.metrics)
            raise RunFileError(f"run {self.label!r} has no metric {name!r}; its metrics: {', '.join(self.metrics)}"
                               + (f" (did you mean {hint!r}?)" if hint else ""))
        return self.metrics[name]

    @classmethod
    def from_results(cls, results: Mapping[str, Any], folder: str | Path | None = None, *,
                     label: str | None = None) -> Run:
        """A run from a results dict (the content of ``results.json``, as ``report.results_dict`` builds it).

        With ``folder``, ``training.csv`` and ``stages.csv`` are read from it when
        present (no manifest check: the folder may still be being written).

        Raises:
            RunFileError: the dict does not follow schema 2 or 3 (the message
                names the entry).
        """
        folder = Path(folder) if folder is not None else None
        run = parse_results(results, "results", label or (folder.name if folder else "run"), folder)
        if folder is not None:
            attach_history(run, folder)
        return run

    def long_format(self) -> list[dict[str, Any]]:
        """Every curve value as one row: ``{"run", "solver", "seed", "status", "iteration", "metric", "value"}``.

        A solver with per-seed curves gives one row per seed (``seed``: the
        training seed; ``status``: ``"ok"`` or ``"diverged"``), every seed
        including diverged ones (NaN where their value was not finite); a solver
        without (classical, loaded from a checkpoint) gives its one curve with
        ``seed`` and ``status`` ``None``. ``iteration`` counts from 1; ``value`` is
        a float (NaN for a missing value). The central curve (median) is not
        repeated: it is computed from these rows.
        """
        rows = []
        for label, solver in self.solvers.items():
            for name, curve in solver.metrics.items():
                per_seed = (solver.per_seed_metrics or {}).get(name)
                if per_seed is not None and len(solver.seeds):
                    series = [(seed, status, values) for seed, status, values in
                              zip(solver.seeds, solver.seed_status, per_seed)]
                else:
                    series = [(None, None, curve)]
                for seed, status, values in series:
                    for t, value in enumerate(values, 1):
                        rows.append({"run": self.label, "solver": label, "seed": seed, "status": status,
                                     "iteration": t, "metric": name, "value": float(value)})
        return rows

    def to_dataframe(self):
        """:meth:`long_format` as a :class:`pandas.DataFrame` (needs pandas, which du-framework does not require).

        Raises:
            ImportError: pandas is not installed (the message says how to get it).
        """
        try:
            import pandas
        except ImportError as error:
            raise ImportError("Run.to_dataframe needs pandas (pip install pandas); Run.long_format() gives the "
                              "same rows as a list of dicts") from error
        return pandas.DataFrame(self.long_format(), columns=list(LONG_FORMAT_COLUMNS))


SOLVER_KNOWN = {"name", "options", "metrics", "spread", "params", "references", "trainable", "seeds",
                 "seed_status", "per_seed", "representative_seed", "train_seconds", "compile_seconds",
                 "compilations", "final_loss", "loaded_from", "resumed", "problem_mismatch", "counts",
                 "evaluation_batches", "sweep", "parameter_count", "networks"}


def parse_solver(label: str, entry: Any, check: Checker, metrics: dict[str, MetricInfo], depth: int | None,
                  schema: int, train_seed: int | None, axis: SweepAxis | None = None) -> SolverRun:
    path = f"solvers[{json.dumps(label)}]"
    entry = check.obj(entry, path)
    curves_in = check.obj(check.key(entry, "metrics", path), f"{path}.metrics")
    curves = {}
    for name, values in curves_in.items():
        if name not in metrics:
            raise RunFileError(f"{check.where}: {path}.metrics has {name!r}, which the run's metrics do not "
                               f"describe ({', '.join(metrics)})")
        curves[name] = check.curve(values, f"{path}.metrics[{json.dumps(name)}]", depth)
    trainable = check.boolean(entry.get("trainable", False), f"{path}.trainable")
    references = {}
    for param, table in check.obj(entry.get("references") or {}, f"{path}.references").items():
        where = f"{path}.references[{json.dumps(param)}]"
        references[param] = {ref: check.array(values, f"{where}[{json.dumps(ref)}]")
                             for ref, values in check.obj(table, where).items()}
    final_loss = entry.get("final_loss")
    solver = SolverRun(
        label=label, name=check.text(check.key(entry, "name", path), f"{path}.name"),
        options=check.obj(entry.get("options") or {}, f"{path}.options"), trainable=trainable, metrics=curves,
        params=check.params(entry.get("params") or {}, f"{path}.params"), references=references,
        final_loss=None if final_loss is None else check.number(final_loss, f"{path}.final_loss"),
        train_seconds=check.number(entry.get("train_seconds", 0.0) or 0.0, f"{path}.train_seconds"),
        compile_seconds=check.number(entry.get("compile_seconds", 0.0) or 0.0, f"{path}.compile_seconds"),
        compilations=check.integer(entry.get("compilations", 0) or 0, f"{path}.compilations"),
        loaded_from=check.text(entry.get("loaded_from"), f"{path}.loaded_from", optional=True),
        resumed=check.boolean(entry.get("resumed", False), f"{path}.resumed"),
        problem_mismatch=entry.get("problem_mismatch"),
        parameter_count=check.integer(entry.get("parameter_count"), f"{path}.parameter_count", optional=True),
        networks={name: check.text(summary, f"{path}.networks[{json.dumps(name)}]")
                  for name, summary in check.obj(entry.get("networks") or {}, f"{path}.networks").items()},
        extra={key: value for key, value in entry.items() if key not in SOLVER_KNOWN})
    if schema >= 3:
        parse_seeds(solver, entry, check, path, depth)
    elif trainable and solver.loaded_from is None and train_seed is not None:
        # schema 2 trained every learned solver once, from train.seed
        solver.seeds, solver.seed_status = [train_seed], ["ok"]
        solver.per_seed_metrics = {name: curve[None, :] for name, curve in curves.items()}
        solver.per_seed_params = [solver.params]
        solver.per_seed_final_loss = [solver.final_loss]
        solver.diverged_at = [None]
        solver.representative_seed = train_seed
    parse_evaluation_extras(solver, entry, check, path, depth, metrics, axis)
    return solver


def parse_seeds(solver: SolverRun, entry: dict[str, Any], check: Checker, path: str, depth: int | None) -> None:
    seeds = [check.integer(s, f"{path}.seeds[{i}]") for i, s in enumerate(check.lst(entry.get("seeds", []),
                                                                                      f"{path}.seeds"))]
    status = [check.text(s, f"{path}.seed_status[{i}]") for i, s in
              enumerate(check.lst(entry.get("seed_status", []), f"{path}.seed_status"))]
    if len(status) != len(seeds):
        raise RunFileError(f"{check.where}: {path}.seed_status has {len(status)} entries for {len(seeds)} seeds")
    for i, value in enumerate(status):
        if value not in ("ok", "diverged"):
            raise check.fail(f"{path}.seed_status[{i}]", value, '"ok" or "diverged"')
    solver.seeds, solver.seed_status = seeds, status
    solver.representative_seed = check.integer(entry.get("representative_seed"), f"{path}.representative_seed",
                                               optional=True)
    spread = entry.get("spread")
    if spread is not None:
        solver.spread = {}
        for name, bounds in check.obj(spread, f"{path}.spread").items():
            where = f"{path}.spread[{json.dumps(name)}]"
            bounds = check.obj(bounds, where)
            if name not in solver.metrics:
                raise RunFileError(f"{check.where}: {where} is the spread of a metric the solver has no curve of")
            solver.spread[name] = (check.curve(check.key(bounds, "low", where), f"{where}.low", depth),
                                   check.curve(check.key(bounds, "high", where), f"{where}.high", depth))
    per_seed = entry.get("per_seed")
    if per_seed is None:
        return
    where = f"{path}.per_seed"
    per_seed = check.obj(per_seed, where)
    count = len(seeds)

    def sized(value, name):
        items = check.lst(value, f"{where}.{name}")
        if len(items) != count:
            raise RunFileError(f"{check.where}: {where}.{name} has {len(items)} entries for {count} seeds")
        return items

    solver.per_seed_metrics = {}
    for name, rows in check.obj(per_seed.get("metrics") or {}, f"{where}.metrics").items():
        rows = sized(rows, f"metrics[{json.dumps(name)}]")
        solver.per_seed_metrics[name] = np.array(
            [check.curve(row, f"{where}.metrics[{json.dumps(name)}][{i}]", depth) for i, row in enumerate(rows)],
            np.float64).reshape(count, -1)
    if per_seed.get("params") is not None:
        solver.per_seed_params = [check.params(p, f"{where}.params[{i}]")
                                  for i, p in enumerate(sized(per_seed["params"], "params"))]
    if per_seed.get("final_loss") is not None:
        solver.per_seed_final_loss = [None if v is None else check.number(v, f"{where}.final_loss[{i}]")
                                      for i, v in enumerate(sized(per_seed["final_loss"], "final_loss"))]
    if per_seed.get("diverged_at") is not None:
        solver.diverged_at = []
        for i, value in enumerate(sized(per_seed["diverged_at"], "diverged_at")):
            if value is None:
                solver.diverged_at.append(None)
                continue
            at = check.obj(value, f"{where}.diverged_at[{i}]")
            solver.diverged_at.append({key: check.integer(check.key(at, key, f"{where}.diverged_at[{i}]"),
                                                          f"{where}.diverged_at[{i}].{key}")
                                       for key in ("stage", "step")})


def parse_results(results: Any, where: str, label: str, folder: Path | None) -> Run:
    check = Checker(where)
    results = check.obj(results, "")
    version = results.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        shown = json.dumps(version)[:40] if jsonable(version) else type(version).__name__
        raise RunFileError(f"{where}: schema_version is {shown}, "
                           f"expected an integer (2 or 3); is it a results.json written by unfold compare?")
    if version < min(SUPPORTED_SCHEMAS):
        raise RunFileError(f"{where}: schema_version {version} is too old to read (this du-framework reads "
                           f"{' and '.join(map(str, SUPPORTED_SCHEMAS))}); version 1 predates the per-metric curves. "
                           f"Run the comparison again with this version (its configuration is in config.json)")
    if version > max(SUPPORTED_SCHEMAS):
        raise RunFileError(f"{where}: schema_version {version} was written by a newer du-framework (this one reads "
                           f"{' and '.join(map(str, SUPPORTED_SCHEMAS))}); upgrade du-framework to read it")
    config = check.obj(results.get("config") or {}, "config")
    evaluation = check.obj(results.get("evaluation") or {}, "evaluation")
    depth = evaluation.get("iterations", (config.get("train") or {}).get("depth"))
    depth = check.integer(depth, "evaluation.iterations", optional=True)
    metrics = {name: metric_info(name, entry, check, f"metrics[{json.dumps(name)}]")
               for name, entry in check.obj(check.key(results, "metrics", ""), "metrics").items()}
    if not metrics:
        raise RunFileError(f"{where}: metrics is empty; a run describes at least one metric")
    primary = check.text(results.get("primary_metric") or next(iter(metrics)), "primary_metric")
    if primary not in metrics:
        raise RunFileError(f"{where}: primary_metric {primary!r} is not one of the metrics ({', '.join(metrics)})")
    train_seed = (config.get("train") or {}).get("seed")
    train_seed = train_seed if isinstance(train_seed, int) and not isinstance(train_seed, bool) else None
    axis = parse_axis(results, check)
    solvers = {label_: parse_solver(label_, entry, check, metrics, depth, version, train_seed, axis)
               for label_, entry in check.obj(check.key(results, "solvers", ""), "solvers").items()}
    for name, info in list(metrics.items()):
        metrics[name] = guess_log_axis(info, [s.metrics[name] for s in solvers.values() if name in s.metrics])
    summary = results.get("summary")
    train_seeds = results.get("train_seeds")
    if version >= 3:
        summary = check.obj(summary, "summary") if summary is not None else None
        train_seeds = [check.integer(s, f"train_seeds[{i}]") for i, s in
                       enumerate(check.lst(train_seeds or [], "train_seeds"))]
    else:
        train_seeds = [train_seed] if train_seed is not None and any(s.seeds for s in solvers.values()) else []
    provenance = results.get("provenance")
    return Run(label=label, folder=folder, kind="compare", schema_version=version, config=config,
               problem=check.obj(results.get("problem") or {}, "problem"), metrics=metrics, primary_metric=primary,
               evaluation=evaluation, solvers=solvers, summary=summary, train_seeds=train_seeds,
               provenance=provenance if isinstance(provenance, dict) else None,
               framework_version=results.get("framework_version") if isinstance(
                   results.get("framework_version"), str) else None,
               created=results.get("created") if isinstance(results.get("created"), str) else None, sweep=axis)


# --- loss history --------------------------------------------------------------------------------


def no_history_reason(run: Run) -> str:
    """Why ``run`` holds no loss history (neither training.csv nor stages.csv), by cause."""
    if run.kind == "compare" and run.schema_version is not None and run.schema_version < 3:
        return (f"the run predates results schema 3, the first to save training.csv and stages.csv: it is schema "
                f"{run.schema_version} and holds only each solver's final_loss")
    if run.kind == "compare" and not any(solver.seeds or solver.final_loss is not None
                                         for solver in run.solvers.values()):
        return "nothing was trained in this run: no solver has training seeds, so there is no loss to record"
    if run.folder is None:
        return "the run was read from a results dict without its folder (pass the folder to Run.from_results)"
    return f"its folder {str(run.folder)!r} holds no training.csv or stages.csv"


def attach_history(run: Run, folder: Path) -> None:
    training, stages = folder / "training.csv", folder / "stages.csv"
    if training.exists():
        grouped: dict[tuple[str, int], list[tuple[int, int, int, float]]] = {}
        for line, row in read_csv(training, TRAINING_CSV_COLUMNS, "training.csv"):
            where = f"training.csv {str(training)!r}, line {line}"
            seed = csv_number(row["seed"], int, f"{where}: seed") if row["seed"] not in ("", "None") else -1
            grouped.setdefault((row["solver"], seed), []).append((
                csv_number(row["step"], int, f"{where}: step"), csv_number(row["stage"], int, f"{where}: stage"),
                csv_number(row["active_depth"], int, f"{where}: active_depth"),
                csv_number(row["loss"], float, f"{where}: loss")))
        for (label, seed), rows in grouped.items():
            solver = solver_for(run, label, "training.csv")
            step, stage, depth, loss = (np.array(column) for column in zip(*rows))
            solver.losses[seed] = LossHistory(step.astype(np.int64), stage.astype(np.int64), depth.astype(np.int64),
                                              loss.astype(np.float64))
    else:
        run.missing.append(f"no loss history ({no_history_reason(run)})")
    if stages.exists():
        grouped2: dict[tuple[str, int], list[tuple[int, int, int, float]]] = {}
        for line, row in read_csv(stages, STAGES_CSV_COLUMNS, "stages.csv"):
            where = f"stages.csv {str(stages)!r}, line {line}"
            seed = csv_number(row["seed"], int, f"{where}: seed") if row["seed"] not in ("", "None") else -1
            grouped2.setdefault((row["solver"], seed), []).append((
                csv_number(row["stage"], int, f"{where}: stage"),
                csv_number(row["active_depth"], int, f"{where}: active_depth"),
                csv_number(row["steps"], int, f"{where}: steps"),
                csv_number(row["mean_loss"], float, f"{where}: mean_loss")))
        for (label, seed), rows in grouped2.items():
            solver = solver_for(run, label, "stages.csv")
            stage, depth, steps, loss = (np.array(column) for column in zip(*rows))
            solver.stages[seed] = StageSummary(stage.astype(np.int64), depth.astype(np.int64),
                                               steps.astype(np.int64), loss.astype(np.float64))


def solver_for(run: Run, label: str, what: str) -> SolverRun:
    if label not in run.solvers:
        if run.kind == "train":  # a training run lists only what it trained
            run.solvers[label] = SolverRun(label=label, name=label, options={}, trainable=True, metrics={})
        else:
            raise RunFileError(f"{what} in {str(run.folder)!r} names the solver {label!r}, which results.json does "
                               f"not have ({', '.join(run.solvers) or 'none'})")
    return run.solvers[label]
