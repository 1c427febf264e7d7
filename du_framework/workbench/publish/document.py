"""The content of a report: a small document model (headings, paragraphs, lists, tables, figures,
code) built from saved runs, which :mod:`du_framework.workbench.publish.render` writes three ways."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ConfigError
from .. import figures
from ..loading import Run, SolverRun
from ..text import metric_cell, table_iterations

__all__ = ["Heading", "Para", "Items", "Table", "Figure", "Code", "document", "metric_rows", "config_differences",
           "provenance_items"]


@dataclasses.dataclass
class Heading:
    level: int
    text: str


@dataclasses.dataclass
class Para:
    text: str


@dataclasses.dataclass
class Items:
    items: list[str]


@dataclasses.dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclasses.dataclass
class Figure:
    name: str  # file stem
    draw: Any  # () -> matplotlib Figure
    caption: str


@dataclasses.dataclass
class Code:
    text: str
    language: str = ""


def _kind(solver: SolverRun) -> str:
    return "learned" if solver.trainable else "classical"


def _seeds_cell(solver: SolverRun) -> str:
    if not solver.seeds:
        return "-"
    diverged = len(solver.diverged_seeds)
    return f"{len(solver.seeds)}" + (f" ({diverged} diverged)" if diverged else "")


def _cell(run: Run, solver: SolverRun, metric: str, t: int) -> str:
    info = run.metrics[metric]
    curve = solver.metrics.get(metric)
    if curve is None or t > len(curve):
        return "-"
    bounds = (solver.spread or {}).get(metric)
    if bounds is None or len(solver.ok_seeds) < 2:
        return metric_cell(curve[t - 1], info.format)
    return metric_cell(curve[t - 1], info.format, bounds[0][t - 1], bounds[1][t - 1])


def _iterations(run: Run) -> list[int]:
    """The run's ``evaluation.table_iterations`` when it chose them, else iterations chosen from its depth."""
    chosen = [int(t) for t in ((run.config.get("evaluation") or {}).get("table_iterations") or ())
              if isinstance(t, int) and 1 <= t <= run.depth]
    return chosen or (table_iterations(run.depth) if run.depth >= 1 else [])


def metric_rows(run: Run, metric: str, iterations: list[int] | None = None) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of a run's table: solver, kind, seeds, the metric at ``iterations``, final loss, train s.

    Cells of a solver with spread read ``median [min, max]``; ``-`` where a value does not exist.
    """
    info = run.metric(metric)
    iterations = iterations or _iterations(run)
    header = ["solver", "kind", "seeds"] + [f"t={t}" for t in iterations] + ["final loss", "train s"]
    rows = []
    for label, solver in run.solvers.items():
        if metric not in solver.metrics:
            continue
        loss = "-" if solver.final_loss is None or not np.isfinite(solver.final_loss) else f"{solver.final_loss:.3e}"
        seconds = ("loaded" if solver.loaded_from else f"{solver.train_seconds:.2f}") if solver.trainable else "-"
        rows.append([label, _kind(solver), _seeds_cell(solver)]
                    + [_cell(run, solver, info.name, t) for t in iterations] + [loss, seconds])
    return header, rows


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    if isinstance(config, dict):
        for key, value in config.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
    elif isinstance(config, list) and config and all(isinstance(item, dict) for item in config):
        for i, item in enumerate(config):
            name = item.get("label") or item.get("name") or str(i)
            flat.update(_flatten(item, f"{prefix}{name}."))
    else:
        flat[prefix.rstrip(".")] = config
    return flat


EXECUTION_KEYS = ("train.chunk_size", "train.devices", "train.unroll")
"""Configuration keys that say how a run executes, not what it computes: left out of the differences."""


def _solver_entries(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = config.get("solvers") if isinstance(config.get("solvers"), list) else []
    return {str(entry.get("label") or entry.get("name") or i): entry for i, entry in enumerate(entries)
            if isinstance(entry, dict)}


def config_differences(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: the configuration keys that differ between runs and change what they compute.

    Problem, training and evaluation keys (dotted) whose values differ, less
    :data:`EXECUTION_KEYS`; one ``solvers`` row with each run's solver labels when
    they differ (a solver of some runs only is named there, not option by option);
    for a solver several runs have, each option whose value differs among them
    (``-`` in a run without the solver), one row for the solvers an option differs
    in the same way: ``solvers.{a, b}.lr``, ``solvers.*.lr`` when it is every such solver.
    """
    flats = [_flatten({key: value for key, value in run.config.items() if key != "solvers"}) for run in runs]
    rows = []
    tables = {"problem": 0, "train": 1, "evaluation": 2}
    keys = sorted(dict.fromkeys(key for flat in flats for key in flat), key=lambda k: tables.get(k.split(".")[0], 3))
    for key in keys:
        values = [json.dumps(flat[key]) if key in flat else "(absent)" for flat in flats]
        if key not in EXECUTION_KEYS and len(set(values)) > 1:
            rows.append([key] + values)
    solvers = [_solver_entries(run.config) for run in runs]
    if len({tuple(entries) for entries in solvers}) > 1:
        rows.append(["solvers"] + [", ".join(entries) or "(none)" for entries in solvers])
    shared = [label for label in dict.fromkeys(label for entries in solvers for label in entries)
              if sum(label in entries for entries in solvers) > 1]
    differing: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for label in shared:
        options = [_flatten(entries[label]) if label in entries else None for entries in solvers]
        for key in dict.fromkeys(key for flat in options if flat is not None for key in flat):
            if key == "label":
                continue
            cells = tuple("-" if flat is None else json.dumps(flat[key]) if key in flat else "(absent)"
                          for flat in options)
            if len({cell for cell in cells if cell != "-"}) > 1:
                differing.setdefault((key, cells), []).append(label)
    for (key, cells), labels in differing.items():
        which = labels[0] if len(labels) == 1 else "*" if labels == shared else "{" + ", ".join(labels) + "}"
        rows.append([f"solvers.{which}.{key}", *cells])
    return ["key"] + figures.run_labels(runs), rows


def _facts(run: Run) -> list[str]:
    items = []
    if run.folder is not None:
        items.append(f"folder: {run.folder}")
    kind = "unfold compare" if run.kind == "compare" else "unfold train (checkpoints, no evaluation curves)"
    items.append(f"written by {kind}" + (f", results schema {run.schema_version}" if run.schema_version else ""))
    if run.manifest:
        items.append(f"status: {run.manifest.get('status', '?')}; command: {run.manifest.get('command', '?')}")
        items.append(f"manifest: {len(run.verified)} file(s) verified by sha256")
    if run.created:
        items.append(f"created: {run.created}")
    if run.summary:
        items.append("seeds summarised by: " + ", ".join(f"{k} {v}" for k, v in run.summary.items()))
    if run.train_seeds:
        items.append(f"training seeds: {', '.join(map(str, run.train_seeds))}")
    if run.evaluation:
        ev = run.evaluation
        items.append(f"evaluation: {ev.get('batches', '?')} x {ev.get('batch_size', '?')} instances from seed "
                     f"{ev.get('seed', '?')}, {ev.get('iterations', '?')} iterations")
    return items


def _provenance(run: Run) -> list[str]:
    return provenance_items(run.provenance or {})


def provenance_items(prov: dict[str, Any]) -> list[str]:
    """What produced a run or a study (its ``provenance`` record), one line per fact."""
    if not prov:
        return ["not recorded"]
    items = [f"du-framework {prov.get('du_framework', '?')}, Python {prov.get('python', '?')}"]
    libraries = prov.get("libraries") or {}
    if isinstance(libraries, dict) and libraries:
        items.append("libraries: " + ", ".join(f"{k} {v}" for k, v in libraries.items()))
    plugins = prov.get("plugins") or {}
    if isinstance(plugins, dict) and plugins:
        items.append("plugins: " + ", ".join(
            f"{name} {(info or {}).get('version') or '(in process)'}" if isinstance(info, dict) else name
            for name, info in plugins.items()))
    items.append(f"backend: {prov.get('backend', '?')}; devices: {', '.join(map(str, prov.get('devices') or [])) or '?'}")
    git = prov.get("git")
    if isinstance(git, dict):
        items.append(f"git: {git.get('revision', '?')}" + (" (with uncommitted changes)" if git.get("dirty") else ""))
    if prov.get("command_line"):
        items.append("command line: " + " ".join(map(str, prov["command_line"])))
    return items


def _config_text(run: Run) -> tuple[str, str]:
    from ..runs import to_toml  # its TOML writer needs tomli-w only when called

    try:
        return to_toml(run.config), "toml"
    except (ConfigError, TypeError, ValueError, AttributeError):
        return json.dumps(run.config, indent=2), "json"


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "run"


def _choose_metric(run: Run, metric: str | None) -> str | None:
    if not run.has_curves:
        return None
    if metric and metric in run.metrics:
        return metric
    return run.metric(None).name if not metric else None


def _groups(runs: list[Run], labels: list[str], metric: str | None) -> dict[tuple[str, str], list[tuple[str, Run]]]:
    """The runs with curves of the metric shown (``metric``, else each run's primary one), grouped by problem
    and that metric, in order: only the runs of one group are compared side by side."""
    groups: dict[tuple[str, str], list[tuple[str, Run]]] = {}
    for label, run in zip(labels, runs):
        shown = _choose_metric(run, metric)
        if shown is not None:
            groups.setdefault((figures.problem_names([run])[0], shown), []).append((label, run))
    return groups


def _side_by_side(problem: str, shown: str, members: list[tuple[str, Run]], style: Any, stem: str) -> list[Any]:
    sharing = [run for _, run in members]
    info = sharing[0].metrics[shown]
    iterations = sorted({t for run in sharing for t in _iterations(run)})
    header = ["run", "solver", "kind", "seeds"] + [f"t={t}" for t in iterations]
    rows = [[label, solver_label, _kind(solver), _seeds_cell(solver)]
            + [_cell(run, solver, shown, t) for t in iterations]
            for label, run in members for solver_label, solver in run.solvers.items() if shown in solver.metrics]
    spread = any(s.spread for r in sharing for s in r.solvers.values())
    return [Table(header, rows, f"{info.title} after iteration t" + (f" ({problem})" if problem else "")
                  + (" (median [min, max] over the seeds that did not diverge)" if spread else "")),
            Figure(stem, lambda: figures.curves_figure(sharing, metric=shown, style=style,
                                                       title=figures.titled(style)),
                   f"{info.title} versus iteration, every run" + (f" of {problem}" if problem else ""))]


def document(runs: list[Run], metric: str | None, style: Any) -> list[Any]:
    labels = figures.run_labels(runs)
    curve_runs = [run for run in runs if run.has_curves]
    if metric is not None and curve_runs and not any(metric in run.metrics for run in curve_runs):
        curve_runs[0].metric(metric)  # raises, listing the metrics
    title = "Report: " + ", ".join(labels)
    blocks: list[Any] = [Heading(1, title)]
    if len(runs) > 1:
        blocks.append(Heading(2, "Side by side"))
        groups = _groups(runs, labels, metric)
        compared = {key: members for key, members in groups.items() if len(members) > 1}
        for (problem, shown), members in compared.items():
            if len(compared) > 1:
                blocks.append(Heading(3, f"{problem or 'runs'}: {members[0][1].metrics[shown].title}"))
            stem = "overlay-" + (f"{_safe_stem(problem)}-" if len(compared) > 1 else "") + _safe_stem(shown)
            blocks += _side_by_side(problem, shown, members, style, stem)
        alone = [f"{members[0][0]} ({problem or 'unnamed problem'}, {members[0][1].metrics[shown].title})"
                 for (problem, shown), members in groups.items() if len(members) == 1]
        if alone:
            blocks.append(Para(f"Not side by side, as the only run of its problem and metric: {', '.join(alone)}; "
                               f"each run is reported in its own section below."))
        left_out = [label for label, run in zip(labels, runs) if run.has_curves and _choose_metric(run, metric) is None]
        if left_out:
            blocks.append(Para(f"Not in this comparison (no {metric!r} curves): {', '.join(left_out)}."))
        header, rows = config_differences(runs)
        if rows:
            blocks.append(Table(header, rows, "configuration keys that differ between the runs (execution "
                                              "settings left out: " + ", ".join(EXECUTION_KEYS) + ")"))
        else:
            blocks.append(Para("The runs have the same configuration."))
    for label, run in zip(labels, runs):
        blocks += _run_section(label, run, metric, style, level=2)
    return blocks


def _run_section(label: str, run: Run, metric: str | None, style: Any, level: int) -> list[Any]:
    stem = _safe_stem(label)
    blocks: list[Any] = [Heading(level, f"Run {label}"), Items(_facts(run))]
    if run.missing:
        blocks += [Para("What this run does not hold:"), Items(list(run.missing))]
    if run.warnings:
        blocks += [Para("Warnings:"), Items(list(run.warnings))]
    if run.problem:
        blocks += [Heading(level + 1, "Problem"),
                   Table(["fact", "value"], [[str(k), _value(v)] for k, v in run.problem.items()])]
    shown = _choose_metric(run, metric)
    if shown is not None:
        info = run.metrics[shown]
        header, rows = metric_rows(run, shown)
        spread = any(s.spread and len(s.ok_seeds) > 1 for s in run.solvers.values())
        blocks += [Heading(level + 1, f"{info.title} ({'lower' if info.lower_is_better else 'higher'} is better)"),
                   Table(header, rows, f"{info.title} after iteration t"
                          + ("; cells with seeds: median [min, max] over the seeds that did not diverge"
                             if spread else ""))]
        blocks.append(Figure(f"{stem}-{_safe_stem(shown)}", lambda: figures.curves_figure(
            run, metric=shown, style=style, title=figures.titled(style)), f"{info.title} versus iteration ({label})"))
    elif metric is not None and run.has_curves:
        blocks.append(Para(f"This run has no metric {metric!r}; its metrics: {', '.join(run.metrics)}."))
    if run.kind == "train":
        rows = [[s.label, s.name, str(s.extra.get("status", "")), f"{s.train_seconds:.2f}",
                 ", ".join(f"{n} {list(v.shape)}" for n, v in s.stored_params.items())]
                for s in run.solvers.values() if s.checkpoint]
        if rows:
            blocks += [Heading(level + 1, "Checkpoints"),
                       Table(["solver", "name", "status", "train s", "stored parameters (shape)"], rows)]
    learned = [s for s in run.solvers.values() if s.trainable and (s.params or s.stored_params)]
    if learned:
        blocks.append(Figure(f"{stem}-params", lambda: figures.params_figure(run, style=style,
                                                                             title=figures.titled(style)),
                              f"learned parameters per slot ({label})"))
    if run.has_losses or any(s.stages for s in run.solvers.values()):
        blocks.append(Figure(f"{stem}-losses", lambda: figures.losses_figure(run, style=style,
                                                                             title=figures.titled(style)),
                              f"training loss ({label})"))
    text, language = _config_text(run)
    blocks += [Heading(level + 1, "Configuration"), Code(text, language),
               Heading(level + 1, "Provenance"), Items(_provenance(run))]
    return blocks


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value) if not isinstance(value, (dict, list)) else json.dumps(value)
