"""Reading a tuning study back: the folder ``unfold tune`` wrote, as :class:`TuningStudy`.

:func:`load_study` reads ``tune.json`` (checked field by field, size-checked before it
is read, never unpickled) and checks the folder's ``manifest.json`` as
:func:`~du_framework.workbench.loading.load_run` does. It needs neither optuna nor the
plugins that ran the search: the study is plain data, each solver's search a
:class:`~du_framework.workbench.tuning.SolverSearch` of
:class:`~du_framework.workbench.tuning.TrialRecord` as :func:`tune` returns them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from ...options import Tunable
from ..loading.fields import Checker
from ..loading.files import FORMAT_SPEC, RunFileError, read_json
from ..loading.load import check_manifest, subcommand
from .results import SolverSearch, TrialRecord
from .space import Dimension

__all__ = ["TuningStudy", "StudyMetric", "load_study", "is_study_folder", "TUNE_FORMAT_VERSIONS"]

TUNE_FORMAT_VERSIONS = (1,)
"""The ``format_version`` values of ``tune.json`` this module reads."""

_STATES = ("complete", "pruned", "failed", "running")


@dataclasses.dataclass(frozen=True)
class StudyMetric:
    """The metric a study scored (``tune.json``'s ``metric``).

    Attributes:
        score: ``"log10"`` (optuna saw ``log10`` of the metric) or ``"value"``.
        iteration: the iteration scored (the last one).
        format: a float format for one value (``.3e`` when the study did not record one).
        scale: ``"linear"`` or ``"db"``.
    """

    name: str
    label: str
    direction: str
    score: str
    iteration: int
    format: str = ".3e"
    scale: str = "linear"

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "minimize"

    def show(self, value: float | None) -> str:
        return "-" if value is None or not math.isfinite(value) else format(value, self.format)


@dataclasses.dataclass
class TuningStudy:
    """A tuning study read back from its folder: every solver's search, as ``unfold tune`` recorded it.

    Attributes:
        label: the study's name in reports (default: the folder's name).
        searches: per solver label, its :class:`SolverSearch` (search space, trials, best, baseline).
        config: the configuration tuned (the raw dict of ``tune.json``'s ``config``).
        budget, validation, sampler: as ``tune.json`` records them (docs/tuning.md).
        storage, study: the optuna storage (password hidden) and the study name prefix.
        tuned_train, train_conflicts: the ``[train]`` table of ``tuned.toml`` and the learned
            solvers whose best trials chose other training settings.
        manifest, verified, warnings: the folder's manifest, the files it verified, what
            could not be checked.
    """

    label: str
    folder: Path | None
    metric: StudyMetric
    config: dict[str, Any]
    tuned: list[str]
    budget: dict[str, Any]
    validation: dict[str, Any]
    storage: str
    study: str
    sampler: dict[str, Any]
    searches: dict[str, SolverSearch]
    tuned_train: dict[str, Any]
    train_conflicts: list[str]
    created: str | None = None
    framework_version: str | None = None
    provenance: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    verified: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


def is_study_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the folder of ``unfold tune`` (it holds ``tune.json`` or its manifest says so),
    or its ``tune.json``."""
    path = Path(path)
    if path.is_file():
        return path.name == "tune.json"
    return path.is_dir() and ((path / "tune.json").exists() or subcommand(path) == "tune")


def _dimension(entry: Any, check: Checker, where: str) -> Dimension:
    entry = check.obj(entry, where)
    key = check.text(check.key(entry, "key", where), f"{where}.key")
    source = check.text(entry.get("source", "declared"), f"{where}.source")
    try:
        if "choices" in entry:
            tunable = Tunable(choices=tuple(check.lst(entry["choices"], f"{where}.choices")))
            return Dimension(key, tunable, source=source)
        low = check.number(check.key(entry, "low", where), f"{where}.low", optional=False)
        high = check.number(check.key(entry, "high", where), f"{where}.high", optional=False)
        log = check.boolean(entry.get("log", False), f"{where}.log")
        integer = check.boolean(entry.get("integer", False), f"{where}.integer")
        return Dimension(key, Tunable(int(low) if integer else low, int(high) if integer else high, log=log),
                         integer=integer, source=source)
    except (ValueError, TypeError) as error:
        raise RunFileError(f"{check.where}: {where} is not a search range ({error})") from None


def _optional_number(check: Checker, entry: dict, name: str, where: str) -> float | None:
    value = entry.get(name)
    return None if value is None else check.number(value, f"{where}.{name}", optional=False)


def _optional_object(check: Checker, value: Any, where: str) -> dict[str, Any] | None:
    return None if value is None else check.obj(value, where)


def _trial(entry: Any, check: Checker, where: str) -> TrialRecord:
    entry = check.obj(entry, where)
    state = check.text(check.key(entry, "state", where), f"{where}.state")
    if state not in _STATES:
        raise check.fail(f"{where}.state", state, " or ".join(f'"{s}"' for s in _STATES))
    last_stage = entry.get("last_stage")
    return TrialRecord(
        number=check.integer(check.key(entry, "number", where), f"{where}.number"), state=state,
        params=check.obj(entry.get("params", {}), f"{where}.params"),
        value=_optional_number(check, entry, "value", where),
        metric_value=_optional_number(check, entry, "metric_value", where),
        duration=_optional_number(check, entry, "duration", where),
        worker=check.text(entry.get("worker"), f"{where}.worker", optional=True),
        reason=check.text(entry.get("reason"), f"{where}.reason", optional=True),
        options=_optional_object(check, entry.get("options"), f"{where}.options"),
        train=_optional_object(check, entry.get("train"), f"{where}.train"),
        compile_seconds=_optional_number(check, entry, "compile_seconds", where),
        train_seconds=_optional_number(check, entry, "train_seconds", where),
        last_stage=None if last_stage is None else check.integer(last_stage, f"{where}.last_stage"),
        baseline=check.boolean(entry.get("baseline", False), f"{where}.baseline"),
        grid=check.boolean(entry.get("grid", False), f"{where}.grid"))


def _search(label: str, entry: Any, check: Checker, direction: str) -> SolverSearch:
    where = f"solvers[{label!r}]"
    entry = check.obj(entry, where)
    dims = [_dimension(d, check, f"{where}.search_space[{i}]")
            for i, d in enumerate(check.lst(entry.get("search_space", []), f"{where}.search_space"))]
    trials = [_trial(t, check, f"{where}.trials[{i}]")
              for i, t in enumerate(check.lst(check.key(entry, "trials", where), f"{where}.trials"))]
    numbers = [t.number for t in trials]
    if len(set(numbers)) != len(numbers):
        raise RunFileError(f"{check.where}: {where}.trials numbers a trial twice ({sorted(numbers)}); each trial "
                           f"has its own number")
    return SolverSearch(
        label=label, name=check.text(check.key(entry, "name", where), f"{where}.name"),
        trainable=check.boolean(entry.get("trainable", False), f"{where}.trainable"),
        study=check.text(entry.get("study", ""), f"{where}.study"), dimensions=dims,
        fixed=check.obj(entry.get("fixed", {}), f"{where}.fixed"), trials=sorted(trials, key=lambda t: t.number),
        target_trials=check.integer(entry.get("target_trials", len(trials)), f"{where}.target_trials"),
        timed_out=check.boolean(entry.get("timed_out", False), f"{where}.timed_out"), direction=direction)


def _metric(entry: Any, check: Checker) -> StudyMetric:
    entry = check.obj(entry, "metric")
    direction = check.text(check.key(entry, "direction", "metric"), "metric.direction")
    if direction not in ("minimize", "maximize"):
        raise check.fail("metric.direction", direction, '"minimize" or "maximize"')
    score = check.text(entry.get("score", "value"), "metric.score")
    if score not in ("log10", "value"):
        raise check.fail("metric.score", score, '"log10" or "value"')
    spec = check.text(entry.get("format", ".3e"), "metric.format")
    try:
        if not FORMAT_SPEC.fullmatch(spec):  # checked before formatting: ".900000000e" would take 900 MB
            raise ValueError(spec)
        format(1.0, spec)
    except (ValueError, TypeError):
        raise check.fail("metric.format", spec, 'a short float format such as ".3e"') from None
    name = check.text(check.key(entry, "name", "metric"), "metric.name")
    return StudyMetric(name=name, label=check.text(entry.get("label", name), "metric.label") or name,
                       direction=direction, score=score,
                       iteration=check.integer(entry.get("iteration", 0), "metric.iteration"), format=spec,
                       scale=check.text(entry.get("scale", "linear"), "metric.scale"))


def parse_study(body: Any, where: str, label: str, folder: Path | None = None) -> TuningStudy:
    """A :class:`TuningStudy` from the content of ``tune.json`` (``where`` names it in messages)."""
    check = Checker(where)
    body = check.obj(body, "")
    if body.get("format") != "du-framework-tune":
        raise RunFileError(f"{where} is not the record of a tuning study (its format is "
                           f"{str(body.get('format'))[:40]!r}, expected 'du-framework-tune')")
    version = body.get("format_version")
    if version not in TUNE_FORMAT_VERSIONS:
        raise RunFileError(f"{where}: format_version {str(version)[:20]} is not one this version reads "
                           f"({', '.join(map(str, TUNE_FORMAT_VERSIONS))}); read it with the du-framework that "
                           f"wrote it ({str(body.get('framework_version'))[:40]})")
    metric = _metric(check.key(body, "metric", ""), check)
    solvers = check.obj(check.key(body, "solvers", ""), "solvers")
    searches = {label_: _search(label_, entry, check, metric.direction) for label_, entry in solvers.items()}
    return TuningStudy(
        label=label, folder=folder, metric=metric, config=check.obj(body.get("config", {}), "config"),
        tuned=[check.text(item, "tuned[]") for item in check.lst(body.get("tuned", list(searches)), "tuned")],
        budget=check.obj(body.get("budget", {}), "budget"), validation=check.obj(body.get("validation", {}),
                                                                                 "validation"),
        storage=check.text(body.get("storage", ""), "storage"), study=check.text(body.get("study", ""), "study"),
        sampler=check.obj(body.get("sampler", {}), "sampler"), searches=searches,
        tuned_train=check.obj(body.get("tuned_train", {}), "tuned_train"),
        train_conflicts=[check.text(item, "train_conflicts[]")
                         for item in check.lst(body.get("train_conflicts", []), "train_conflicts")],
        created=check.text(body.get("created"), "created", optional=True),
        framework_version=check.text(body.get("framework_version"), "framework_version", optional=True),
        provenance=_optional_object(check, body.get("provenance"), "provenance"))


def load_study(path: str | os.PathLike, *, verify: bool = True, label: str | None = None) -> TuningStudy:
    """Read the folder of ``unfold tune`` (or its ``tune.json``) into a :class:`TuningStudy`.

    ``label`` names the study in reports (default: the folder's name).

    Raises:
        RunFileError: not a tuning study's folder; ``tune.json`` missing, oversized,
            truncated or malformed (the message names the entry and what would be
            right), or of a format version this version does not read.
        ManifestMismatchError: with ``verify`` (the default), ``tune.json`` differs
            from its sha256 in ``manifest.json``.
    """
    path = Path(path)
    if path.is_file() and path.name == "tune.json":
        path = path.parent
    if not path.exists():
        raise RunFileError(f"study folder {str(path)!r} does not exist")
    if not is_study_folder(path):
        raise RunFileError(f"{str(path)!r} is not a tuning study: it has no tune.json (written by unfold tune)"
                           + ("; it is a run: read it with load_run" if (path / "results.json").exists() else ""))
    tune_json = path / "tune.json"
    if not tune_json.is_file():
        raise RunFileError(f"{str(path)!r} has no tune.json: its manifest.json says unfold tune wrote it, but the "
                           f"study's record is missing")
    manifest, verified, warnings = check_manifest(path, verify=verify, read={"tune.json"})
    body = read_json(tune_json, "tune.json")
    study = parse_study(body, f"tune.json {str(tune_json)!r}", label or path.resolve().name or "study", path)
    study.manifest, study.verified, study.warnings = manifest, verified, warnings
    if study.provenance is None and manifest and isinstance(manifest.get("provenance"), dict):
        study.provenance = manifest["provenance"]
    return study
