"""Reading saved runs back: a run folder (or an in-memory results dict) as plain NumPy arrays.

:func:`load_run` reads a folder written by ``unfold compare`` (``results.json`` of
schema version 2 or 3, and ``training.csv`` / ``stages.csv`` when saved) or by
``unfold train`` (checkpoints only: configuration, problem facts, the stored
parameters and the loss history when saved, but no evaluation curves). Every file
is untrusted input: JSON and CSV files are size-checked before they are read
(:data:`MAX_JSON_BYTES`, :data:`MAX_CSV_BYTES`), every value's type and every
curve's length is checked, and a failure names the file and the entry
(``results.json: solvers["dugd"].metrics["mse"][3] is "x", expected a number or
null``). Nothing is unpickled; checkpoints are read with
:func:`du_framework.io.checkpoint.read_checkpoint` (header-checked ``.npz``).

The manifest (``manifest.json``) lists every file of a published run with its
size and sha256. :func:`load_run` checks all of them: a file the loader reads
(``results.json``, ``config.json``, ``training.csv``, ``stages.csv``, the
checkpoints of a training run) that is missing or changed raises
:class:`ManifestMismatchError` (the numbers would not be the ones the run
produced; ``verify=False`` reads it anyway, with a warning); any other listed
file (a plot, ``results.csv``) that is missing or changed is a warning in
:attr:`Run.warnings`. A folder without a manifest (an older or incomplete run) is
read with a warning.

See docs/publishing.md.
"""

from __future__ import annotations

from ..results import LossHistory, StageSummary
from .fields import MetricInfo
from .files import (LONG_FORMAT_COLUMNS, MAX_CHECKED_BYTES, MAX_CSV_BYTES, MAX_JSON_BYTES, SUPPORTED_SCHEMAS,
                    ManifestMismatchError, RunFileError)
from .load import load_run
from .model import Run, SolverRun, no_history_reason

__all__ = ["load_run", "Run", "SolverRun", "MetricInfo", "LossHistory", "StageSummary", "RunFileError",
           "ManifestMismatchError", "SUPPORTED_SCHEMAS", "MAX_JSON_BYTES", "MAX_CSV_BYTES", "MAX_CHECKED_BYTES",
           "LONG_FORMAT_COLUMNS", "no_history_reason"]
