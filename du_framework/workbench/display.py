"""What a person sees while a solver trains: a compile status and a bar on a terminal, plain lines elsewhere.

:class:`ProgressDisplay` is one part of the training loop's progress
(:mod:`du_framework.engine.progress`):

* on a terminal (or in a Jupyter kernel): ``compiling <label>...`` as soon as
  the run starts, replaced by a tqdm bar once the first compiled call returns;
  the bar names the stage, the active depth and the latest loss;
* elsewhere (standard error redirected to a file or a pipe: CI, a batch
  scheduler, ``2> log``): the engine's plain lines
  (:class:`~du_framework.engine.progress.PlainLines`), never a carriage return.

A comparison adds "solver 3 of 6" to the label (``position``) and replaces the
bar by a one-line summary when the solver is done (``du_framework.workbench.compare.run_comparison``).
tqdm is imported only when a bar is drawn.
"""

from __future__ import annotations

import sys
from typing import IO

from ..engine.progress import PlainLines, Progress, progress_interval, write_safely

__all__ = ["ProgressDisplay", "progress_for", "interactive_stream"]


def interactive_stream(stream: IO[str]) -> bool:
    """Whether ``stream`` can redraw a line: a terminal, or standard error inside a Jupyter kernel."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return "ipykernel" in sys.modules and type(stream).__name__ == "OutStream"


class ProgressDisplay(Progress):
    """The progress a person sees (see the module docstring).

    Args:
        position: ``(k, n)`` to name the run "solver k of n" (a comparison).
        stream: where to write (default: ``sys.stderr`` when the run starts).
        interactive: a redrawn bar (``True``) or plain lines (``False``);
            default: :func:`interactive_stream`.
        interval: seconds between plain lines (default:
            :func:`~du_framework.engine.progress.progress_interval`).
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
        self._lines: PlainLines | None = None  # the plain lines, where the stream is not interactive
        self._bar = None
        self._status = False  # the "compiling" status is on screen (interactive)
        self._where = ""
        self._total = self._done = 0
        self._label = ""

    def start(self, total, label):
        self._stream = self._stream if self._stream is not None else sys.stderr
        if self._interactive is None:
            self._interactive = interactive_stream(self._stream)
        if self._interval is None:
            self._interval = progress_interval()
        where = f" (solver {self._position[0]} of {self._position[1]})" if self._position else ""
        if not self._interactive:
            self._lines = PlainLines(stream=self._stream, interval=self._interval, suffix=where)
            self._lines.start(total, label)
            return
        self._label = f"{label}{where}"
        self._total, self._done = total, 0
        write_safely(self._stream, f"\rcompiling {self._label}...")
        self._status = True

    def stage(self, number, stages, depth):
        if self._lines is not None:
            self._lines.stage(number, stages, depth)
            return
        self._where = f"stage {number}/{stages}, depth {depth}"
        if self._bar is not None:
            self._bar.set_postfix_str(self._where, refresh=False)

    def advance(self, steps, loss):
        if self._lines is not None:
            self._lines.advance(steps, loss)
            return
        self._done += steps
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
        if self._lines is not None:
            self._lines.stage_end(number, stages, depth, losses)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._clear_status()

    def _clear_status(self) -> None:
        if self._status:
            self._status = False
            write_safely(self._stream, "\r" + " " * (len(self._label) + 13) + "\r")


def progress_for(progress: bool | Progress, *, position: tuple[int, int] | None = None,
                 leave: bool = True) -> Progress:
    """``progress`` itself when it is a :class:`~du_framework.engine.progress.Progress`; else a
    :class:`ProgressDisplay` (``True``) or a :class:`Progress` that shows nothing (``False``)."""
    if isinstance(progress, Progress):
        return progress
    return ProgressDisplay(position=position, leave=leave) if progress else Progress()
