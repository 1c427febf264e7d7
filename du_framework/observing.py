"""The observer contract: what a run observer (an experiment tracker) is told, and when.

An observer is a :class:`RunObserver` subclass, registered by a plugin's
``register_observers(register)`` hook (see :mod:`du_framework.hookspecs`) and
chosen by name: ``unfold compare --observe tensorboard`` (or ``unfold train``),
or ``run_comparison(config, observers=[...])`` in Python. It is told, on the
host and never inside a compiled step:

1. :meth:`RunObserver.on_run_start`: the configuration, the problem's facts,
   the solvers, the schedule's stages and the run folder (:class:`RunStart`);
2. :meth:`RunObserver.on_stage_end`: after every stage of every trained solver,
   the loss of each of its optimiser steps per seed (:class:`StageEnd`);
3. :meth:`RunObserver.on_solver_end`: after each solver, its result
   (:class:`SolverEnd`);
4. :meth:`RunObserver.on_run_end`: the results and the files written (:class:`RunEnd`).

This module is the kernel's half (a plugin author imports it); the workbench
calls observers (:class:`du_framework.workbench.observers.ObserverSet`, which
isolates each one) and ships ``tensorboard``. See docs/observers.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["RunObserver", "RunStart", "StageEnd", "SolverEnd", "RunEnd"]


@dataclasses.dataclass(frozen=True)
class RunStart:
    """What :meth:`RunObserver.on_run_start` receives.

    Attributes:
        command: ``"compare"``, ``"train"``, or ``"python"`` (a library call).
        config: the :class:`~du_framework.workbench.config.ExperimentConfig` of the run
            (``config.to_dict()`` is its resolved TOML).
        problem: the problem's facts (``Problem.describe()``: name, dimension, ...).
        solvers: the labels of the run's solvers, in order.
        seeds: the training seeds.
        stages: ``(active_depth, steps)`` of each stage of the training schedule.
        folder: where an observer may write files so that they are published
            with the run (the run's staging folder; ``None`` without a run folder).
        target: where the run folder will be once published (``None`` without one).
    """

    command: str
    config: Any
    problem: dict[str, Any]
    solvers: list[str]
    seeds: list[int]
    stages: list[tuple[int, int]]
    folder: Path | None = None
    target: Path | None = None


@dataclasses.dataclass(frozen=True)
class StageEnd:
    """What :meth:`RunObserver.on_stage_end` receives after each stage of a trained solver.

    Attributes:
        label: the solver's label.
        seeds: its training seeds (one per row of ``losses``).
        stage: the stage's number, from 1.
        stages: how many stages the schedule has.
        active_depth: the stage's active depth.
        first_step: how many optimiser steps came before this stage (so step
            ``j`` of ``losses`` is the run's step ``first_step + j + 1``).
        losses: ``(seeds, steps)`` host array: the training loss of each step of
            the stage, per seed (NaN for a seed frozen after diverging).
    """

    label: str
    seeds: list[int]
    stage: int
    stages: int
    active_depth: int
    first_step: int
    losses: np.ndarray


@dataclasses.dataclass(frozen=True)
class SolverEnd:
    """What :meth:`RunObserver.on_solver_end` receives when a solver is done.

    Attributes:
        label: the solver's label.
        position: ``(k, n)``: solver ``k`` of the run's ``n``.
        trained: whether it was trained in this run (not classical, not loaded).
        seeds: its training seeds (empty when not trained).
        metrics: every metric of the problem by name, a ``(depth,)`` array
            (element ``t-1`` after iteration ``t``; the median over seeds);
            empty when the run does not evaluate (``unfold train``).
        primary: the problem's primary metric (``None`` without evaluation).
        final_loss: the mean training loss of the last chunk (``None`` untrained).
        train_seconds: wall time of its training, compilation included.
        result: the solver's result, the one record a run produces (``SolverResult`` of
            ``du_framework.workbench.results``: parameters, per-seed curves, loss history; for
            ``unfold train`` without curves), or ``None`` when an observer is called by other code.
    """

    label: str
    position: tuple[int, int]
    trained: bool
    seeds: list[int]
    metrics: dict[str, np.ndarray]
    primary: str | None
    final_loss: float | None
    train_seconds: float
    result: Any = None


@dataclasses.dataclass(frozen=True)
class RunEnd:
    """What :meth:`RunObserver.on_run_end` receives.

    Attributes:
        status: ``"complete"``, ``"diverged"`` (published with the last good
            parameters), ``"interrupted"`` (resumable) or ``"failed"``.
        results: per solver label, its results (for ``unfold compare`` the
            entries of ``results.json``'s ``solvers``); empty unless complete.
        files: the files of the run, relative to ``folder``, as they stand
            before the run folder is published (an observer's own files included).
        folder: where those files are now (the staging folder), or ``None``.
        target: where they will be once the run is published, or ``None``.
    """

    status: str
    results: dict[str, Any]
    files: list[str]
    folder: Path | None = None
    target: Path | None = None


class RunObserver:
    """An observer of runs; override the methods you need (each does nothing here).

    Attributes:
        name: the name ``--observe`` takes (required, unique among observers).
        description: one line for ``unfold list``.

    The class is constructed without arguments for each run (``--observe``);
    in Python, pass configured instances to ``run_comparison(observers=...)``.
    Every method is called on the host between compiled calls, in the order
    run start, (stage end ... , solver end) per solver, run end. A method that
    raises disables the observer for the rest of the run, with one warning.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def on_run_start(self, run: RunStart) -> None:
        """The run starts (before any training)."""

    def on_stage_end(self, stage: StageEnd) -> None:
        """A stage of a trained solver is done."""

    def on_solver_end(self, solver: SolverEnd) -> None:
        """A solver is done (trained and, in a comparison, evaluated)."""

    def on_run_end(self, run: RunEnd) -> None:
        """The run ends; flush and close here (files written now are published with the run)."""
