"""Reading a run folder's files: size-checked JSON and CSV reads, and the manifest check."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...io.safe_files import DEFAULT_LIMIT, read_limited



SUPPORTED_SCHEMAS = (2, 3)
"""The ``schema_version`` values of ``results.json`` this module reads."""

MAX_JSON_BYTES = 256 * 1024**2
"""Largest JSON file read (results.json, manifest.json, config.json); larger ones are refused unread."""

MAX_CSV_BYTES = 256 * 1024**2
"""Largest CSV file read (training.csv, stages.csv): about 6 million rows of ~42 bytes (50,000 steps
x 10 seeds x 12 solvers); every row becomes Python objects, so a larger file would take gigabytes."""

MAX_CHECKED_BYTES = 256 * 1024**2
"""Largest file listed in manifest.json that :func:`load_run` hashes without reading it (a plot,
``results.csv``, ``tune.db``); a larger one is left unchecked, with a warning."""

FORMAT_SPEC = re.compile(r"[+\- ]?#?0?\d{0,2},?(?:\.\d{1,2})?[eEfFgG%]?")
"""What a metric's ``format`` in results.json may be: a short float spec (``.3e``, ``.2f``, ``+8.2e``),
width and precision of at most two digits, so a cell is never a huge string."""

LONG_FORMAT_COLUMNS = ("run", "solver", "seed", "status", "iteration", "metric", "value")
"""The keys of each row of :meth:`Run.long_format`, in this order."""


# Files a loaded run's numbers come from: a manifest mismatch in one of them is an error.
READ_FILES = ("results.json", "config.json", "training.csv", "stages.csv")


class RunFileError(ConfigError):
    """A run folder or one of its files cannot be read (missing, malformed, of an unknown schema)."""


class ManifestMismatchError(RunFileError):
    """A file the loader reads differs from its record in ``manifest.json`` (changed after the run)."""


# --- reading files -------------------------------------------------------------------------------


def read_bytes(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a run's file, through the one size-checked reader (a :class:`RunFileError` when refused)."""
    return read_limited(path, limit=limit, what=what, error=RunFileError)


def read_json(path: Path, what: str | None = None) -> Any:
    what = what or path.name
    data = read_bytes(path, MAX_JSON_BYTES, what)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RunFileError(f"{what} {str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        ended = data.rstrip().endswith((b"}", b"]"))  # a file unfold wrote ends with its top-level object
        state = "not valid JSON" if ended and error.pos < len(data.rstrip()) else "truncated (it ends early)"
        raise RunFileError(f"{what} {str(path)!r} is {state}: {error.msg} at line {error.lineno}, "
                           f"column {error.colno}") from None
    except RecursionError:
        raise RunFileError(f"{what} {str(path)!r} is nested too deeply to be a results file") from None


def read_csv(path: Path, columns: tuple[str, ...], what: str) -> list[tuple[int, dict[str, str]]]:
    data = read_bytes(path, MAX_CSV_BYTES, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RunFileError(f"{what} {str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise RunFileError(f"{what} {str(path)!r} is empty; expected the header {','.join(columns)}")
        missing = [name for name in columns if name not in header]
        if missing:
            raise RunFileError(f"{what} {str(path)!r} lacks the column(s) {', '.join(missing)}; its header is "
                               f"{','.join(header)[:200]!r}, expected {','.join(columns)}")
        index = {name: header.index(name) for name in columns}
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise RunFileError(f"{what} {str(path)!r}, line {reader.line_num}: {len(row)} fields, expected "
                                   f"{len(header)} (truncated or malformed)")
            rows.append((reader.line_num, {name: row[i] for name, i in index.items()}))
    except csv.Error as error:
        raise RunFileError(f"{what} {str(path)!r}, line {reader.line_num}: {error}") from None
    return rows


def csv_number(text: str, kind: type, where: str) -> Any:
    if text == "":  # not recorded (a step the writer could not place in a stage)
        return -1 if kind is int else math.nan
    try:
        value = kind(text)
    except ValueError:
        raise RunFileError(f"{where} is {text[:40]!r}, expected {'an integer' if kind is int else 'a number'}") from None
    return value


def check_limit(relative: str) -> int:
    """The most bytes of ``relative`` (a file a manifest lists) worth hashing: what its reader accepts."""
    name = relative.lower()
    if name.endswith(".json"):
        return MAX_JSON_BYTES
    if name.endswith(".csv"):
        return MAX_CSV_BYTES
    if name.endswith(".npz"):
        return DEFAULT_LIMIT
    return MAX_CHECKED_BYTES
