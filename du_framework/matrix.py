"""Loading a user's operator matrix from a ``.npy`` file, validated, never with pickle.

The file is untrusted: its header is parsed and checked (dtype, shape, size
against the file and a limit) before any data is read
(:func:`du_framework.io.safe_files.read_npy`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ProblemDataError
from .io.safe_files import DEFAULT_LIMIT, REAL_KINDS, read_npy

__all__ = ["load_matrix", "max_entry"]


def max_entry(rows: int) -> float:
    """The largest ``|a_ij|`` accepted in a matrix with ``rows`` rows.

    Any larger entry could make ``A^T A`` (computed in float64, then used in
    float32) overflow float32: ``rows * max|a|^2 <= float32 max``.
    """
    return float(np.sqrt(np.finfo(np.float32).max / max(rows, 1)))


def load_matrix(path: str | Path, *, shape: tuple[int, int], names: tuple[str, str] = ("problem.m", "problem.n"),
                key: str = "problem.matrix", limit: int = DEFAULT_LIMIT) -> np.ndarray:
    """Read a real, finite matrix of ``shape`` from a ``.npy`` file; return it as float64.

    ``names`` are the configuration keys that set the expected rows and columns,
    quoted in the message when the file's shape differs.

    Raises:
        ProblemDataError: no such file; not a plain ``.npy`` array (object arrays
            would need pickle and are refused); a header that does not match
            the file's size or declares more than ``limit`` bytes (refused
            before reading); not real and numeric; empty; wrong shape;
            non-finite entries (the first one's index is named); or entries so
            large that ``A^T A`` would overflow (see :func:`max_entry`).
    """
    path = Path(path)
    where = f"{key}: {str(path)!r}"
    if not path.is_file():
        raise ProblemDataError(f"{key}: no file at {str(path)!r}; give the path of a .npy file holding a "
                               f"{shape[0]} x {shape[1]} matrix (numpy.save)")
    try:
        matrix = read_npy(path, kinds=REAL_KINDS, limit=limit, what="matrix file")
    except ProblemDataError as error:
        raise ProblemDataError(f"{key}: {error}") from None
    if matrix.size == 0:
        raise ProblemDataError(f"{where} holds an empty array of shape {matrix.shape}; the matrix needs "
                               f"{shape[0]} x {shape[1]} entries")
    if matrix.shape != tuple(shape):
        keys = " and ".join(dict.fromkeys(names))
        raise ProblemDataError(
            f"{where} holds an array of shape {matrix.shape}, but {names[0]} x {names[1]} = {shape[0]} x {shape[1]}; "
            f"set {keys} to the matrix's shape (rows, columns) or save it with that shape")
    matrix = matrix.astype(np.float64)
    bad = ~np.isfinite(matrix)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ProblemDataError(f"{where} has {int(bad.sum())} non-finite entries (NaN or inf), the first at index "
                               f"{first}; the matrix must be finite")
    largest, bound = float(np.max(np.abs(matrix))), max_entry(shape[0])
    if largest > bound:
        first = tuple(int(i) for i in np.argwhere(np.abs(matrix) > bound)[0])
        raise ProblemDataError(f"{where} has entries as large as {largest:.3g} (the first above {bound:.3g} at "
                               f"index {first}); with {shape[0]} rows A^T A would overflow float32; scale the "
                               f"matrix down (and the problem's other constants with it)")
    return matrix
