"""The workbench: experiments above the kernel.

Configuration (:mod:`.config`), the side-by-side comparison (:mod:`.compare`),
tuning (:mod:`.tuning`), run folders (:mod:`.runs`), reading saved runs back
(:mod:`.loading`), figures, reports and publishing, and run observers. It
imports the kernel (``du_framework``); the kernel never imports it, and the
command line (``du_framework.cli``) sits above both (docs/concepts.md).

Reading saved folders back, from here: :func:`load_run` (a run of ``unfold compare``
or ``unfold train``) and :func:`load_study` (a study of ``unfold tune``); each name
is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what static tools read; at run time the names load on first use
    from .loading import Run, load_run
    from .tuning.stored import TuningStudy, load_study

__all__ = ["Run", "TuningStudy", "load_run", "load_study"]

_EXPORTS = {"load_run": "loading", "Run": "loading", "load_study": "tuning.stored", "TuningStudy": "tuning.stored"}


def __getattr__(name: str):
    """A public name imported on first use (submodules are imported as usual)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
