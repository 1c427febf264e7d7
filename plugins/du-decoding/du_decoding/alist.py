"""MacKay's alist format for sparse binary parity-check matrices: a strict parser and a writer.

The format (D. J. C. MacKay, "Encyclopedia of sparse graph codes",
http://www.inference.org.uk/mackay/codes/alist.html), whitespace-separated integers::

    n m                      columns (code bits) and rows (checks) of H
    max_col max_row          the largest column and row weights
    w_1 ... w_n              the weight of each column
    r_1 ... r_m              the weight of each row
    n lines                  the rows (1-based) of the ones in each column
    m lines                  the columns (1-based) of the ones in each row

A list may be padded with zeros up to the maximal weight. Blank lines are skipped
(line numbers in messages are those of the file).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from du_framework import ProblemDataError
from du_framework.io.safe_files import read_limited

__all__ = ["ALIST_LIMIT", "AlistError", "parse_alist", "read_alist", "write_alist"]

ALIST_LIMIT = 16 * 1024**2
"""Largest alist file read (bytes): larger files are refused before reading."""


class AlistError(ProblemDataError):
    """A malformed alist file; the message names the file and the line."""


def _lines(text: str) -> list[tuple[int, list[str]]]:
    return [(number, line.split()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def parse_alist(text: str, source: str = "<alist>") -> np.ndarray:
    """The parity-check matrix ``H`` (``m x n``, ``uint8``) that alist ``text`` describes.

    Raises:
        AlistError: wrong counts, weights that disagree with the lists or exceed the maxima,
            indices out of range or repeated, non-integers, column lists inconsistent with
            the row lists; the message names ``source`` and the line.
    """
    lines = _lines(text)
    cursor = 0

    def fail(number: int | None, why: str) -> AlistError:
        where = f"line {number}" if number is not None else "end of file"
        return AlistError(f"alist file {source!r}, {where}: {why}")

    def take(count: int | None, what: str) -> tuple[int, list[int]]:
        nonlocal cursor
        if cursor >= len(lines):
            return_line = lines[-1][0] + 1 if lines else 1
            raise fail(return_line, f"missing {what} (the file ends early)")
        number, words = lines[cursor]
        cursor += 1
        values = []
        for word in words:
            try:
                values.append(int(word))
            except ValueError:
                raise fail(number, f"{what}: {word!r} is not an integer") from None
        if count is not None and len(values) != count:
            raise fail(number, f"{what}: expected {count} integer(s), found {len(values)}")
        return number, values

    number, (n, m) = take(2, "the sizes 'n m'")
    if n < 1 or m < 1:
        raise fail(number, f"the sizes must be positive, got n={n}, m={m}")
    number, (max_col, max_row) = take(2, "the maximal weights 'max_col max_row'")
    if not 1 <= max_col <= m or not 1 <= max_row <= n:
        raise fail(number, f"maximal weights must lie in 1..m={m} and 1..n={n}, got {max_col} {max_row}")
    col_line, col_weights = take(n, f"the {n} column weights")
    row_line, row_weights = take(m, f"the {m} row weights")
    for line, weights, top, kind in ((col_line, col_weights, max_col, "column"), (row_line, row_weights, max_row, "row")):
        bad = [w for w in weights if not 0 <= w <= top]
        if bad:
            raise fail(line, f"a {kind} weight {bad[0]} lies outside 0..{top} (the declared maximum)")
        if max(weights) != top:
            raise fail(line, f"the largest {kind} weight is {max(weights)}, not the declared maximum {top}")
    if sum(col_weights) != sum(row_weights):
        raise fail(row_line, f"the row weights sum to {sum(row_weights)}, the column weights to {sum(col_weights)}")

    def read_lists(count: int, weights: list[int], top: int, size: int, kind: str, other: str):
        lists, numbers = [], []
        for index in range(count):
            number, values = take(None, f"the list of {kind} {index + 1}")
            weight = weights[index]
            if len(values) > top or len(values) < weight:
                raise fail(number, f"{kind} {index + 1} lists {len(values)} entries; its weight is {weight} "
                                   f"(at most {top} with zero padding)")
            entries, padding = values[:weight], values[weight:]
            if any(v != 0 for v in padding):
                raise fail(number, f"{kind} {index + 1} has weight {weight} but lists more nonzero entries "
                                   f"({', '.join(map(str, values))})")
            out = [v for v in entries if not 1 <= v <= size]
            if out:
                raise fail(number, f"{kind} {index + 1}: {other} index {out[0]} lies outside 1..{size}")
            if len(set(entries)) != len(entries):
                raise fail(number, f"{kind} {index + 1} lists an {other} index twice")
            lists.append(entries)
            numbers.append(number)
        return lists, numbers

    column_lists, column_lines = read_lists(n, col_weights, max_col, m, "column", "row")
    row_lists, _ = read_lists(m, row_weights, max_row, n, "row", "column")
    if cursor < len(lines):
        raise fail(lines[cursor][0], "unexpected content after the row lists")

    matrix = np.zeros((m, n), np.uint8)
    for row, columns in enumerate(row_lists):
        matrix[row, np.asarray(columns, np.int64) - 1] = 1
    for column, rows in enumerate(column_lists):
        listed = set(rows)
        held = set((np.flatnonzero(matrix[:, column]) + 1).tolist())
        if listed != held:
            extra = sorted(listed - held) or sorted(held - listed)
            raise fail(column_lines[column], f"column {column + 1} lists rows {sorted(listed)}, but the row lists "
                                             f"put it in rows {sorted(held)} (row {extra[0]} disagrees)")
    return matrix


def read_alist(path: str | os.PathLike) -> np.ndarray:
    """:func:`parse_alist` of the file at ``path``, size-checked before reading (at most :data:`ALIST_LIMIT`)."""
    data = read_limited(path, limit=ALIST_LIMIT, what="alist file", error=AlistError)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as error:
        raise AlistError(f"alist file {str(path)!r} is not ASCII text (byte {error.start})") from None
    return parse_alist(text, source=str(Path(path)))


def write_alist(matrix: np.ndarray) -> str:
    """The alist text of a binary matrix ``H`` (``m x n``), lists zero-padded to the maximal weights."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or not np.isin(matrix, (0, 1)).all():
        raise ValueError("write_alist needs a 2-D matrix of zeros and ones")
    m, n = matrix.shape
    col_weights, row_weights = matrix.sum(axis=0).astype(int), matrix.sum(axis=1).astype(int)
    max_col, max_row = int(col_weights.max()), int(row_weights.max())

    def padded(indices: np.ndarray, top: int) -> str:
        values = list(indices + 1) + [0] * (top - len(indices))
        return " ".join(map(str, values))

    lines = [f"{n} {m}", f"{max_col} {max_row}", " ".join(map(str, col_weights)), " ".join(map(str, row_weights))]
    lines += [padded(np.flatnonzero(matrix[:, j]), max_col) for j in range(n)]
    lines += [padded(np.flatnonzero(matrix[i]), max_row) for i in range(m)]
    return "\n".join(lines) + "\n"
