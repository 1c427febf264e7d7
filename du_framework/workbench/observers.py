"""Calling run observers (experiment trackers: TensorBoard, Weights & Biases, MLflow, ...) during a run.

The contract, :class:`RunObserver` and the events it is told of (run start, stage ends, solver ends,
run end), is the kernel's :mod:`du_framework.observing`, re-exported here. This module calls the
observers of a run (:class:`ObserverSet`, which isolates each: one that raises is reported once, a
warning naming it and its plugin, and is not called again in that run) and ships ``tensorboard``
(:class:`TensorBoardObserver`), which needs the optional extra
``pip install 'du-framework[tensorboard]'`` (tensorboardX). See docs/observers.md.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.progress import Progress, ProgressParts
from ..errors import ConfigError, DUError, PluginError
from ..hookspecs import hookimpl
from ..observing import RunEnd, RunObserver, RunStart, SolverEnd, StageEnd

__all__ = ["RunObserver", "RunStart", "StageEnd", "SolverEnd", "RunEnd", "ObserverSet", "TensorBoardObserver",
           "TENSORBOARD_HINT"]

TENSORBOARD_HINT = "pip install 'du-framework[tensorboard]'"


_WHEN = {"on_run_start": "at run start", "on_stage_end": "at a stage end", "on_solver_end": "at a solver end",
         "on_run_end": "at run end"}


class ObserverSet:
    """The observers of one run, each isolated: one that raises is named once and disabled.

    Args:
        observers: observer instances.
        plugins: ``{id(observer): plugin name}`` to name an observer's plugin in warnings.
        folder: where observers may write (published with the run), or ``None``.
        target: where the run will be published, or ``None``.
        warn: receives the one-line warning of a failing observer (default:
            ``warnings.warn(..., RuntimeWarning)``).
        command: :attr:`RunStart.command` (``"compare"``, ``"train"``; default ``"python"``).
    """

    def __init__(self, observers: Iterable[RunObserver] = (), *, plugins: dict[int, str] | None = None,
                 folder: str | Path | None = None, target: str | Path | None = None,
                 warn: Callable[[str], None] | None = None, command: str = "python"):
        self.command = command
        self.observers = list(observers)
        for observer in self.observers:
            if not isinstance(observer, RunObserver):
                raise TypeError(f"an observer must be a du_framework.RunObserver instance, got "
                                f"{observer!r}")
        self._plugins = dict(plugins or {})
        self.folder = Path(folder) if folder is not None else None
        self.target = Path(target) if target is not None else None
        self._warn = warn
        self._disabled: set[int] = set()
        self._stages: list[tuple[int, int]] = []
        self.started = self.ended = False

    @classmethod
    def from_names(cls, names: Iterable[str], *, registry: Any = None, **kwargs: Any) -> ObserverSet:
        """The observers registered under ``names`` (duplicates ignored), each constructed without arguments.

        Raises:
            UnknownNameError: no plugin registers a name (the message lists those that do).
            ConfigError: an observer's optional dependency is missing (the message says what to install).
            PluginError: an observer's constructor failed (naming it and its plugin).
        """
        if registry is None:
            from ..registry import get_registry

            registry = get_registry()
        observers, plugins = [], {}
        for name in dict.fromkeys(n.strip() for n in names if n.strip()):
            entry = registry.get("observer", name)
            try:
                observer = entry.cls()
            except DUError:
                raise
            except Exception as error:  # noqa: BLE001 - a plugin's bug, named
                raise PluginError(f"observer {name!r} (plugin {entry.plugin!r}) could not be constructed: "
                                  f"{type(error).__name__}: {error}") from None
            observers.append(observer)
            plugins[id(observer)] = entry.plugin
        return cls(observers, plugins=plugins, **kwargs)

    def __len__(self) -> int:
        return len(self.observers)

    def _describe(self, observer: RunObserver) -> str:
        name = type(observer).name or type(observer).__qualname__
        plugin = self._plugins.get(id(observer))
        return f"observer {name!r} ({f'plugin {plugin!r}' if plugin else f'module {type(observer).__module__!r}'})"

    def _call(self, method: str, event: Any) -> None:
        for observer in self.observers:
            if id(observer) in self._disabled:
                continue
            try:
                getattr(observer, method)(event)
            except (Exception, SystemExit) as error:  # an observer must not lose the run
                self._disabled.add(id(observer))
                what = f"SystemExit({error.code!r})" if isinstance(error, SystemExit) else \
                    f"{type(error).__name__}: {error}"
                message = (f"{self._describe(observer)} failed {_WHEN[method]} ({what}); it is disabled for the "
                           f"rest of this run, which goes on")
                if self._warn is not None:
                    self._warn(message)
                else:
                    warnings.warn(message, RuntimeWarning, stacklevel=3)

    def run_start(self, *, config: Any, problem: dict[str, Any], solvers: Sequence[str],
                  seeds: Sequence[int], stages: Sequence[tuple[int, int]]) -> None:
        """Tell every observer that the run starts (once; a second call does nothing)."""
        if self.started:
            return
        self.started = True
        self._stages = [(int(depth), int(steps)) for depth, steps in stages]
        self._call("on_run_start", RunStart(self.command, config, dict(problem), list(solvers), [int(s) for s in seeds],
                                            list(self._stages), self.folder, self.target))

    def watch(self, progress: Progress, label: str, seeds: Sequence[int]) -> Progress:
        """``progress`` and a part that reports each stage's losses to the observers as :class:`StageEnd`."""
        return ProgressParts(progress, _Watched(self, label, [int(s) for s in seeds])) if self.observers else progress

    def stage_end(self, event: StageEnd) -> None:
        """Report a stage's end."""
        self._call("on_stage_end", event)

    def solver_end(self, event: SolverEnd) -> None:
        """Report a solver's end."""
        self._call("on_solver_end", event)

    def run_end(self, *, status: str, results: dict[str, Any] | None = None) -> None:
        """Tell every observer that the run ends (once), with the files now in :attr:`folder`."""
        if self.ended or not self.started:
            return
        self.ended = True
        files = sorted(path.relative_to(self.folder).as_posix() for path in self.folder.rglob("*")
                       if path.is_file()) if self.folder is not None and self.folder.is_dir() else []
        self._call("on_run_end", RunEnd(status, dict(results or {}), files, self.folder, self.target))

    def first_step(self, stage: int) -> int:
        """Optimiser steps before stage ``stage`` (1-based) of the schedule given at run start."""
        return sum(steps for _, steps in self._stages[:stage - 1])


class _Watched(Progress):
    """A part of a run's progress that reports stage ends to observers."""

    def __init__(self, observers: ObserverSet, label: str, seeds: list[int]):
        self._observers, self._label, self._seeds = observers, label, seeds
        self._steps = 0

    def stage_end(self, number, stages, depth, losses):
        losses = np.atleast_2d(np.asarray(losses, np.float64))
        first = self._observers.first_step(number) if self._observers._stages else self._steps
        self._steps = first + losses.shape[-1]
        self._observers.stage_end(StageEnd(self._label, list(self._seeds), number, stages, depth, first, losses))


class TensorBoardObserver(RunObserver):
    """TensorBoard event files, written with tensorboardX (the optional extra ``tensorboard``).

    Under ``logdir`` (default: ``tensorboard/`` inside the run folder, published
    with it), one TensorBoard run per solver label, so solvers overlay on one chart:

    * ``<label>/``: ``eval/<metric>`` at step ``t`` = the metric after iteration
      ``t`` (every metric of the problem; the median over seeds), and with one
      seed ``train/loss`` (the loss at optimiser steps) and ``train/stage_loss``
      (each stage's mean loss, at its last step);
    * ``<label>/seed-<seed>/``: ``train/loss`` and ``train/stage_loss`` of each
      seed when there are several.

    ``train/loss`` holds every ``k``-th step, ``k`` the smallest stride that
    keeps each series within ``max_points`` points (TensorBoard itself shows
    1000 per series), plus the last step of every stage: each scalar costs
    tens of microseconds to write. Every step's loss is in the run's
    ``training.csv`` anyway. View with ``tensorboard --logdir runs/`` (every run
    folder at once).

    Args:
        logdir: where to write (default: ``tensorboard/`` in the run folder).
        max_points: the most ``train/loss`` points per series (about).

    Raises:
        ConfigError: tensorboardX is not installed (names the pip command).
    """

    name = "tensorboard"
    description = "TensorBoard event files in <run>/tensorboard/: training loss per step and seed, metric curves"

    def __init__(self, logdir: str | Path | None = None, *, max_points: int = 1000):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError(f"observer 'tensorboard' needs tensorboardX, which is not installed: "
                              f"{TENSORBOARD_HINT}") from None
        self._summary_writer = SummaryWriter
        self._logdir = Path(logdir) if logdir is not None else None
        self._max_points = max(1, int(max_points))
        self._stride = 1
        self._root: Path | None = None
        self._writers: dict[str, Any] = {}

    def on_run_start(self, run):
        if self._logdir is not None:
            self._root = self._logdir
        elif run.folder is not None:
            self._root = run.folder / "tensorboard"
        else:
            raise ConfigError("the tensorboard observer has no run folder to write into; construct it with "
                              "TensorBoardObserver(logdir=...)")
        self._stride = max(1, math.ceil(sum(steps for _, steps in run.stages) / self._max_points))
        from .runs import to_toml

        self._writer("").add_text("config", "```toml\n" + to_toml(run.config.to_dict()) + "```", 0)

    def _writer(self, path: str):
        if path not in self._writers:
            self._writers[path] = self._summary_writer(logdir=str(self._root / path) if path else str(self._root),
                                                       flush_secs=30)
        return self._writers[path]

    def on_stage_end(self, stage):
        several = len(stage.seeds) > 1
        now = time.time()
        for seed, losses in zip(stage.seeds, stage.losses):
            writer = self._writer(f"{stage.label}/seed-{seed}" if several else stage.label)
            for offset, loss in enumerate(losses):
                step = stage.first_step + offset + 1
                if math.isfinite(loss) and (step % self._stride == 0 or offset == len(losses) - 1):
                    writer.add_scalar("train/loss", float(loss), step, walltime=now)
            if len(losses) and np.isfinite(losses).any():
                writer.add_scalar("train/stage_loss", float(np.nanmean(losses)), stage.first_step + len(losses),
                                  walltime=now)

    def on_solver_end(self, solver):
        writer = self._writer(solver.label)
        for metric, curve in solver.metrics.items():
            for t, value in enumerate(np.asarray(curve, np.float64), 1):
                if math.isfinite(value):
                    writer.add_scalar(f"eval/{metric}", float(value), t)
        writer.flush()

    def on_run_end(self, run):
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


@hookimpl
def register_observers(register):
    """The core's observers, registered through the hook like any plugin's."""
    register(TensorBoardObserver)
