"""What a training run shows while it runs: a status line while it compiles, then a bar, or plain lines.

The training loop (:mod:`.loop`) reports to a :class:`Progress` on the host,
between compiled calls, with what it already holds there (the chunk's losses
come back to the host anyway), so showing progress costs no device round trip.

:class:`ProgressDisplay` is what a person sees:

* on a terminal (or in a Jupyter kernel): ``compiling <label>...`` as soon as
  the run starts, replaced by a tqdm bar once the first compiled call returns;
  the bar names the stage, the active depth and the latest loss;
* elsewhere (standard error redirected to a file or a pipe: CI, a batch
  scheduler, ``2> log``): complete plain lines, never a carriage return: one
  when compilation starts, one whenever ``interval`` seconds have passed since
  the last (checked after each compiled call), and one at the end of the last
  stage. ``DU_PROGRESS_INTERVAL`` sets the interval in seconds (default 10; 0:
  a line after every compiled call).

A comparison adds "solver 3 of 6" to the label (``position``) and replaces the
bar by a one-line summary when the solver is done (``du_framework.workbench.compare.run_comparison``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import IO

import numpy as np

__all__ = ["Progress", "ProgressDisplay", "progress_for", "progress_interval", "interactive_stream",
           "DEFAULT_INTERVAL"]

DEFAULT_INTERVAL = 10.0


class Progress:
    """What the training loop reports; this base class shows nothing.

    Every method is called on the host, between compiled calls, never while
    tracing. Subclasses override the ones they need.
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


def interactive_stream(stream: IO[str]) -> bool:
    """Whether ``stream`` can redraw a line: a terminal, or standard error inside a Jupyter kernel."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return "ipykernel" in sys.modules and type(stream).__name__ == "OutStream"


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 60:.1f} min"


class ProgressDisplay(Progress):
    """The progress a person sees (see the module docstring).

    Args:
        position: ``(k, n)`` to name the run "solver k of n" (a comparison).
        stream: where to write (default: ``sys.stderr`` when the run starts).
        interactive: a redrawn bar (``True``) or plain lines (``False``);
            default: :func:`interactive_stream`.
        interval: seconds between plain lines (default: :func:`progress_interval`).
        leave: keep the finished bar on screen (``False``: erase it, for a
            caller that prints its own summary line instead).
    """

    def __init__(self, *, position: tuple[int, int] | None = None, stream: IO[str] | None = None,
                 interactive: bool | None = None, interval: float | None = None, leave: bool = True):
        self._position = position
        self._stream = stream
        self._interactive = interactive
        self._interval = interval
        self._leave = leave
        self._bar = None
        self._status = False  # the "compiling" status is on screen (interactive)
        self._where = ""
        self._stage = None  # (number, stages, depth)
        self._total = self._done = 0
        self._loss = math.nan
        self._label = ""
        self._started = self._last_line = 0.0
        self._reported = -1  # steps done at the last plain line

    def start(self, total, label):
        self._stream = self._stream if self._stream is not None else sys.stderr
        if self._interactive is None:
            self._interactive = interactive_stream(self._stream)
        if self._interval is None:
            self._interval = progress_interval()
        where = f" (solver {self._position[0]} of {self._position[1]})" if self._position else ""
        self._label = f"{label}{where}"
        self._total, self._done = total, 0
        self._started = self._last_line = time.monotonic()
        if self._interactive:
            self._write(f"\rcompiling {self._label}...")
            self._status = True
        else:
            self._line(f"compiling {self._label} ({total} steps)")

    def stage(self, number, stages, depth):
        self._stage = (number, stages, depth)
        self._where = f"stage {number}/{stages}, depth {depth}"
        if self._bar is not None:
            self._bar.set_postfix_str(self._where, refresh=False)

    def advance(self, steps, loss):
        self._done += steps
        self._loss = loss
        if not self._interactive:
            if time.monotonic() - self._last_line >= self._interval:
                self._report()
            return
        if self._bar is None:  # the first compiled call returned: the bar replaces the status line
            from tqdm.auto import tqdm

            self._clear_status()
            self._bar = tqdm(total=self._total, initial=self._done, desc=f"training {self._label}", unit="step",
                             leave=self._leave, file=self._stream, dynamic_ncols=True,
                             postfix=f"{self._where}, loss {loss:.3e}")
            return
        self._bar.set_postfix_str(f"{self._where}, loss {loss:.3e}", refresh=False)
        self._bar.update(steps)

    def stage_end(self, number, stages, depth, losses):
        if not self._interactive and number == stages and self._done != self._reported:
            self._report()

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._clear_status()

    def _report(self) -> None:
        self._reported = self._done
        self._line(f"training {self._label}: {self._where}, step {self._done}/{self._total}, loss {self._loss:.3e}, "
                   f"{_seconds(time.monotonic() - self._started)}")

    def _line(self, text: str) -> None:
        self._write(text + "\n")
        self._last_line = time.monotonic()

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not end the run
            pass

    def _clear_status(self) -> None:
        if self._status:
            self._status = False
            self._write("\r" + " " * (len(self._label) + 13) + "\r")


def progress_for(progress: bool | Progress, *, position: tuple[int, int] | None = None,
                 leave: bool = True) -> Progress:
    """``progress`` itself when it is a :class:`Progress`; else a :class:`ProgressDisplay` (``True``)
    or a :class:`Progress` that shows nothing (``False``)."""
    if isinstance(progress, Progress):
        return progress
    return ProgressDisplay(position=position, leave=leave) if progress else Progress()
