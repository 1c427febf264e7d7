"""The report of a tuning study (``unfold report TUNE_FOLDER``): Markdown, LaTeX or self-contained HTML.

:func:`study_document` builds it from a :class:`~du_framework.workbench.tuning.stored.TuningStudy`:
what was searched and how trials were scored, the best trial of every solver against
its configured baseline (values, settings, improvement), the optimisation history
(:func:`~du_framework.workbench.figures.tuning.history_figure`), the importance of the
searched settings (:func:`~du_framework.workbench.tuning.importance.param_importances`,
drawn as horizontal bars), every trial, the configuration and what produced it.
:func:`write_study_report` writes it through
:func:`~du_framework.workbench.publish.write_document`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..figures.tuning import history_figure, importance_figure
from ..publish import write_document
from ..publish.document import Code, Figure, Heading, Items, Para, Table, provenance_items
from .importance import Importance, param_importances
from .results import SolverSearch, TrialRecord
from .stored import StudyMetric, TuningStudy

__all__ = ["study_document", "write_study_report", "improvement"]


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def improvement(metric: StudyMetric, baseline: float | None, best: float | None) -> str:
    """How much better ``best`` is than ``baseline`` (metric values): a factor for a metric scored as
    ``log10``, a difference otherwise (in dB for a dB metric); ``-`` when either is missing."""
    if baseline is None or best is None or not (math.isfinite(baseline) and math.isfinite(best)):
        return "-"
    better = "lower" if metric.lower_is_better else "higher"
    worse = "higher" if metric.lower_is_better else "lower"
    if metric.score == "log10" and baseline > 0 and best > 0:
        factor = baseline / best if metric.lower_is_better else best / baseline
        return "none (the same)" if factor == 1 else (f"{factor:.3g}x {better}" if factor > 1
                                                      else f"{1 / factor:.3g}x {worse}")
    gain = (baseline - best) if metric.lower_is_better else (best - baseline)
    unit = " dB" if metric.scale == "db" else ""
    return "none (the same)" if gain == 0 else (f"{abs(gain):.3g}{unit} {better if gain > 0 else worse}")


def _counts(search: SolverSearch) -> str:
    counts = search.counts()
    text = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    return text + (" (timed out)" if search.timed_out else "")


def _shown(metric: StudyMetric, trial: TrialRecord | None) -> str:
    return "-" if trial is None else f"{metric.show(trial.metric_value)} (trial {trial.number})"


def _given(search: SolverSearch) -> TrialRecord | None:
    """The trial of the configuration as given: the baseline, or the one trial of a search with nothing to search."""
    if search.baseline is not None or search.dimensions:
        return search.baseline
    return search.trials[0] if search.trials else None


def _best_rows(study: TuningStudy) -> list[list[str]]:
    rows = []
    for label, search in study.searches.items():
        best, base = search.best, _given(search)
        if not search.dimensions:
            gain = "nothing searched (one scoring trial)"
        elif best is not None and best is base:
            gain = "none: the configuration as given is the best trial"
        else:
            gain = improvement(study.metric, base.metric_value if base else None, best.metric_value if best else None)
        rows.append([label, search.name, "learned" if search.trainable else "classical", _counts(search),
                     _shown(study.metric, base), _shown(study.metric, best), gain])
    return rows


def _settings_table(search: SolverSearch) -> Table | None:
    best, base = search.best, search.baseline
    if best is None or not search.dimensions:
        return None
    rows = []
    for dim in search.dimensions:
        configured = "-" if base is None else _value(base.params.get(dim.key, "(outside the range)"))
        rows.append([dim.key, configured, _value(best.params.get(dim.key, "-")), dim.tunable.describe(), dim.source])
    caption = (f"{search.label}: the settings of the best trial ({best.number})"
               + (f" and of the configuration as given ({base.number})" if base is not None else ""))
    return Table(["setting", "as configured", "best", "searched", "range from"], rows, caption)


def _trial_rows(metric: StudyMetric, search: SolverSearch) -> list[list[str]]:
    rows = []
    for t in search.trials:
        note = ("the configuration as given" if t.baseline else "rate grid" if t.grid else "")
        if t.reason:
            note = (note + "; " if note else "") + (t.reason if len(t.reason) <= 90 else t.reason[:87] + "...")
        params = " ".join(f"{k.removeprefix('train.')}={_value(v)}" for k, v in t.params.items())
        rows.append([str(t.number), t.state, metric.show(t.metric_value),
                     "-" if t.duration is None else f"{t.duration:.2f}", params or "-", note or "-"])
    return rows


def _scoring(study: TuningStudy) -> str:
    m, v, b = study.metric, study.validation, study.budget
    scored = f"log10 of the {m.title}" if m.score == "log10" else f"the {m.title}"
    direction = "lower" if m.lower_is_better else "higher"
    text = (f"Each trial is scored by {scored} at iteration t = {m.iteration} ({direction} is better), on "
            f"{v.get('batches', '?')} x {v.get('batch_size', '?')} validation instances (seed {v.get('seed', '?')}, "
            f"tag {v.get('tag', '?')}), disjoint from training and from unfold compare's evaluation.")
    if b:
        text += (f" Budget per solver: {b.get('trials', '?')} trials, each of {b.get('steps_per_trial', '?')} "
                 f"optimiser steps ({b.get('stages', '?')} stages of schedule {b.get('schedule', '?')!r}, batch "
                 f"{b.get('batch_size', '?')}) for a learned solver.")
    return text


def _facts(study: TuningStudy) -> list[str]:
    items = []
    if study.folder is not None:
        items.append(f"folder: {study.folder}")
    problem = (study.config.get("problem") or {}).get("name", "?")
    items.append(f"problem: {problem}; solvers tuned: {', '.join(study.tuned) or '-'}")
    items.append(f"storage: {study.storage or '?'}; study: {study.study or '?'}")
    if study.sampler:
        items.append(f"sampler: {study.sampler.get('sampler', '?')} (seed {study.sampler.get('seed', '?')}, "
                     f"{study.sampler.get('startup_trials', '?')} random trials first); pruner: "
                     f"{study.sampler.get('pruner', '?')}")
    if study.manifest:
        items.append(f"command: {study.manifest.get('command', '?')}; manifest: {len(study.verified)} file(s) "
                     f"verified by sha256")
    if study.created:
        items.append(f"created: {study.created}")
    if study.train_conflicts:
        items.append(f"tuned to other [train] settings than tuned.toml holds: {', '.join(study.train_conflicts)} "
                     f"(tuned-LABEL.toml holds each)")
    return items


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "study"


def _importance_blocks(study: TuningStudy, style: Any) -> list[Any]:
    found: dict[str, Importance] = {label: param_importances(search) for label, search in study.searches.items()}
    blocks: list[Any] = [Heading(2, "Importance of the searched settings")]
    computed = {label: imp for label, imp in found.items() if imp.values}
    evaluators = sorted({imp.evaluator for imp in found.values() if imp.evaluator})
    if evaluators:
        blocks.append(Para(f"Computed by optuna.importance.get_param_importances with {'; '.join(evaluators)}, "
                           f"on each solver's complete trials (a trial that did not sample a setting, the rate "
                           f"grid's or the configuration as given, counts with the value it ran with). The "
                           f"shares sum to 1; with few trials they are a rough ranking."))
    for label, imp in found.items():
        if not imp.values:
            blocks.append(Para(f"{label}: no importance: {imp.note}."))
    if computed:
        rows = [[label, key, f"{share:.3f}"] for label, imp in computed.items() for key, share in imp.values.items()]
        on = ", ".join(f"{imp.trials} trials ({label})" for label, imp in computed.items())
        blocks.append(Table(["solver", "setting", "importance"], rows, f"importance of each searched setting, on {on}"))
        values = {label: imp.values for label, imp in computed.items()}
        blocks.append(Figure(f"{_safe_stem(study.label)}-importance",
                             lambda: importance_figure(values, style=style),
                             "importance of the searched settings, per solver"))
    return blocks


def study_document(study: TuningStudy, *, style: Any = None) -> list[Any]:
    """The report of ``study`` as document blocks (:mod:`du_framework.workbench.publish.document`)."""
    from ..runs import to_toml  # its TOML writer needs tomli-w only when called

    metric = study.metric
    blocks: list[Any] = [Heading(1, f"Tuning study: {study.label}"), Items(_facts(study)), Para(_scoring(study))]
    if study.warnings:
        blocks += [Para("Warnings:"), Items(list(study.warnings))]
    blocks += [Heading(2, "Best trial per solver against the configuration as given"),
               Table(["solver", "name", "kind", "trials", f"{metric.title} as configured", f"{metric.title} best",
                      "improvement"], _best_rows(study),
                     f"{metric.title} at t = {metric.iteration} on the validation instances")]
    missing = [label for label, search in study.searches.items() if search.baseline is None and search.dimensions]
    if missing:
        blocks.append(Para(f"No trial of the configuration as given for {', '.join(missing)} (--no-baseline, a "
                           f"rate grid that filled --trials, or a study joined after it ran): no improvement "
                           f"to state."))
    for search in study.searches.values():
        table = _settings_table(search)
        if table is not None:
            blocks.append(table)
    blocks += [Heading(2, "Optimisation history"),
               Figure(f"{_safe_stem(study.label)}-history",
                      lambda: history_figure(study.searches, metric, style=style),
                      f"{metric.title} of every scored trial versus its number, and the best so far, per solver")]
    blocks += _importance_blocks(study, style)
    blocks.append(Heading(2, "Trials"))
    for label, search in study.searches.items():
        blocks.append(Table(["trial", "state", metric.title, "seconds", "settings sampled", "note"],
                            _trial_rows(metric, search), f"{label} ({search.name}): every trial, in number order"))
    try:
        text, language = to_toml(study.config), "toml"
    except (ConfigError, TypeError, ValueError, AttributeError):  # a value TOML cannot hold: shown as JSON
        text, language = json.dumps(study.config, indent=2), "json"
    blocks += [Heading(2, "Configuration tuned"), Code(text, language),
               Heading(2, "Provenance"), Items(provenance_items(study.provenance or {}))]
    return blocks


def write_study_report(study: TuningStudy, path: str | Path, *, format: str | None = None,
                       style: Any = None) -> list[Path]:
    """Write the report of ``study`` to ``path`` (``format``: ``markdown``, ``latex``, ``html``; default from
    the suffix); returns every path written, the report first (figures: ``<stem>_files/``, or inline SVG
    in HTML).

    Raises:
        ConfigError: an unknown format or style (before anything is written).
    """
    return write_document(study_document(study, style=style), path, format=format, style=style)
