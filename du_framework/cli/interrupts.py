"""Ctrl-C and SIGTERM in the ``unfold`` process: never lost, never a traceback.

Python raises :class:`KeyboardInterrupt` wherever the main thread happens to be
when the signal arrives. Two places go wrong for a command line:

* **an import**: a command imports JAX (a second or more); an interrupt before
  the command line's own handling exists would print a raw traceback.
  :func:`defer_while_importing` (called first thing by ``du_framework.cli``, and
  only in the ``unfold`` process, see :func:`is_unfold_process`) records the
  signal instead; the command line raises it as soon as it starts
  (:func:`raise_pending`), before it writes anything; the heavy imports happen
  after that, under :func:`handling`.
* **a garbage-collection callback** (JAX registers one) or a ``__del__``: an
  exception raised there is "unraisable"; Python prints ``Exception ignored in:
  ...`` and carries on, so the interrupt is lost and the run completes.
  :func:`handling` installs a handler that raises :class:`KeyboardInterrupt` and a
  ``sys.unraisablehook`` that, for such a swallowed interrupt, prints nothing and
  sends the same signal again a moment later, when the main thread is back in
  ordinary code.

:func:`received` says which signal (if any) interrupted the command. This module
imports only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["is_unfold_process", "defer_while_importing", "handling", "raise_pending", "received", "RESEND_SECONDS"]

RESEND_SECONDS = 0.01  # how long after a swallowed interrupt the signal is sent again
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: list[int] = []  # the signals received, in order
_pending = False  # a signal was recorded while deferring, not raised yet


def is_unfold_process() -> bool:
    """Whether this process is the ``unfold`` command (the console script, or ``python -m du_framework``)."""
    if sys.argv and os.path.basename(sys.argv[0]) in ("unfold", "unfold.exe", "unfold-script.py"):
        return True
    orig = list(getattr(sys, "orig_argv", []))
    return "-mdu_framework" in orig or any(a == "-m" and b == "du_framework" for a, b in zip(orig, orig[1:]))


def received() -> int | None:
    """The last signal (``signal.SIGINT`` or ``signal.SIGTERM``) received, or ``None``."""
    return _received[-1] if _received else None


def _record(signum, frame) -> None:
    global _pending
    _received.append(signum)
    _pending = True


def _raise(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def defer_while_importing() -> None:
    """In the ``unfold`` process's main thread, record Ctrl-C and SIGTERM instead of raising them.

    The command line takes over with :func:`handling` and raises a recorded signal then.
    Elsewhere (a library import, a notebook, a test run) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread() or not is_unfold_process():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _record)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _record)


def raise_pending() -> None:
    """Raise :class:`KeyboardInterrupt` for a signal recorded while deferring (once)."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def _resend(signum: int) -> None:
    timer = threading.Timer(RESEND_SECONDS, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def handling(*, terminate: bool = True) -> Iterator[None]:
    """Within the block, Ctrl-C (and SIGTERM when ``terminate``) raise :class:`KeyboardInterrupt`, and one
    swallowed as unraisable is delivered again; the previous handlers and hook are restored after.

    Outside the main thread (where handlers cannot be set) the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = SIGNALS if terminate else (signal.SIGINT,)
    previous = {signum: signal.signal(signum, _raise) for signum in signals}
    previous_hook = sys.unraisablehook

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _received:
            _resend(_received[-1])  # lost in a gc callback or a __del__: deliver it again, in ordinary code
            return
        previous_hook(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
