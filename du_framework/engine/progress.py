"""What a training run reports while it runs: a small protocol, parts, and plain lines.

The host loop (:mod:`.run`) reports events to one :class:`Progress`, on the host,
between compiled calls, with what it already holds there (the chunk's losses
come back to the host anyway), so reporting costs no device round trip:

* ``start(total, label)``: the run (one solver, or an ensemble) starts; its first
  compiled call, and compilation, come next;
* ``stage(number, stages, depth)``: a stage starts;
* ``advance(steps, loss)``: a compiled call (a chunk of optimiser steps) returned;
* ``stage_end(number, stages, depth, losses)``: a stage is done, with its losses;
* ``close()``: the run ended, normally or not.

:class:`ProgressParts` forwards every event to several parts (a display, the
observers' stage taps, ...), each isolated from the others: a part that raises
does not keep the event from the parts after it (the first error is raised once
every part has had the event), and every part is closed.

:class:`PlainLines` is the display that needs nothing but a stream: complete
lines, never a carriage return: one when compilation starts, one whenever
``interval`` seconds have passed since the last (checked after each compiled
call), and one at the end of the last stage. ``DU_PROGRESS_INTERVAL`` sets the
interval in seconds (default 10; 0: a line after every compiled call). It is
what ``train(..., progress=True)`` shows. The terminal's compile status and bar
(tqdm) are the workbench's (:mod:`du_framework.workbench.display`), which falls
back to these lines where standard error is not a terminal.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import IO

import numpy as np

__all__ = ["Progress", "ProgressParts", "PlainLines", "as_progress", "progress_interval", "format_seconds", "write_safely",
           "DEFAULT_INTERVAL"]

DEFAULT_INTERVAL = 10.0


class Progress:
    """The events the training loop reports; this base class shows nothing.

    Every method is called on the host, between compiled calls, never while
    tracing. Subclasses (parts) override the ones they need.
    """

    def start(self, total: int, label: str) -> None:
        """The run is about to make its first compiled call (compilation starts now).

        Args:
            total: optimiser steps the run will take (the stages still to run).
            label: the run's name (a solver label, ``x8`` appended for an ensemble of 8).
        """

    def stage(self, number: int, stages: int, depth: int) -> None:
        """Stage ``number`` (1-based) of ``stages`` starts, with active depth ``depth``."""

    def advance(self, steps: int, loss: float) -> None:
        """A compiled call returned after ``steps`` optimiser steps; ``loss`` is its last step's loss
        (the mean over the members of an ensemble that did not diverge; NaN when none is left)."""

    def stage_end(self, number: int, stages: int, depth: int, losses: np.ndarray) -> None:
        """Stage ``number`` of ``stages`` is done; ``losses`` holds the loss of each of its steps,
        ``(steps,)`` for a single run, ``(members, steps)`` for an ensemble (host array; NaN for a
        member frozen after diverging)."""

    def close(self) -> None:
        """The run ended (normally or not)."""


class ProgressParts(Progress):
    """A :class:`Progress` made of parts: every event goes to every part, in order.

    A part that raises an ``Exception`` does not keep the event from the parts
    after it; the first such error is raised once all have had the event.
    ``close`` reaches every part whatever happens.
    """

    def __init__(self, *parts: Progress):
        self.parts = tuple(parts)

    def _each(self, method: str, *args) -> None:
        error = None
        for part in self.parts:
            try:
                getattr(part, method)(*args)
            except Exception as caught:  # noqa: BLE001 - isolated, raised after the others
                error = error or caught
        if error is not None:
            raise error

    def start(self, total, label):
        self._each("start", total, label)

    def stage(self, number, stages, depth):
        self._each("stage", number, stages, depth)

    def advance(self, steps, loss):
        self._each("advance", steps, loss)

    def stage_end(self, number, stages, depth, losses):
        self._each("stage_end", number, stages, depth, losses)

    def close(self):
        self._each("close")


def progress_interval() -> float:
    """Seconds between plain progress lines: ``DU_PROGRESS_INTERVAL``, else :data:`DEFAULT_INTERVAL`."""
    raw = os.environ.get("DU_PROGRESS_INTERVAL", "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        from ..errors import ConfigError

        raise ConfigError(f"DU_PROGRESS_INTERVAL must be a number of seconds >= 0, got {raw!r}")
    return value


def format_seconds(seconds: float) -> str:
    """``"12.3 s"``, or ``"12.3 min"`` from ten minutes on."""
    return f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 60:.1f} min"


def write_safely(stream: IO[str], text: str) -> None:
    """Write and flush ``text``; a closed or broken stream must not end the run."""
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


class PlainLines(Progress):
    """Complete plain lines on ``stream`` (see the module docstring).

    Args:
        stream: where to write (default: ``sys.stderr`` when the run starts).
        interval: seconds between lines (default: :func:`progress_interval`).
        suffix: appended to the run's label, e.g. ``" (solver 2 of 5)"``.
    """

    def __init__(self, *, stream: IO[str] | None = None, interval: float | None = None, suffix: str = ""):
        self.stream = stream
        self.interval = interval
        self.suffix = suffix
        self.label = ""
        self.where = ""  # "stage 2/3, depth 2"
        self.total = self.done = 0
        self.loss = math.nan
        self.started = self.last_line = 0.0
        self.reported = -1  # steps done at the last line

    def start(self, total, label):
        self.stream = self.stream if self.stream is not None else sys.stderr
        if self.interval is None:
            self.interval = progress_interval()
        self.label = f"{label}{self.suffix}"
        self.total, self.done = total, 0
        self.started = self.last_line = time.monotonic()
        self.line(f"compiling {self.label} ({total} steps)")

    def stage(self, number, stages, depth):
        self.where = f"stage {number}/{stages}, depth {depth}"

    def advance(self, steps, loss):
        self.done += steps
        self.loss = loss
        if time.monotonic() - self.last_line >= self.interval:
            self.report()

    def stage_end(self, number, stages, depth, losses):
        if number == stages and self.done != self.reported:
            self.report()

    def report(self) -> None:
        """A line with the stage, the step, the latest loss and the time so far."""
        self.reported = self.done
        self.line(f"training {self.label}: {self.where}, step {self.done}/{self.total}, loss {self.loss:.3e}, "
                  f"{format_seconds(time.monotonic() - self.started)}")

    def line(self, text: str) -> None:
        """Write ``text`` as one complete line."""
        write_safely(self.stream, text + "\n")
        self.last_line = time.monotonic()


def as_progress(progress: bool | Progress) -> Progress:
    """``progress`` itself when it is a :class:`Progress`; else :class:`PlainLines` on standard error
    (``True``) or a :class:`Progress` that shows nothing (``False``)."""
    if isinstance(progress, Progress):
        return progress
    return PlainLines() if progress else Progress()
