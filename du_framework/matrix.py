"""Loading a user's operator matrix from a ``.npy`` file, validated, never with pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ProblemDataError

__all__ = ["load_matrix"]


def load_matrix(path: str | Path, *, shape: tuple[int, int], names: tuple[str, str] = ("problem.m", "problem.n"),
                key: str = "problem.matrix") -> np.ndarray:
    """Read a real, finite matrix of ``shape`` from a ``.npy`` file; return it as float64.

    ``names`` are the configuration keys that set the expected rows and columns,
    quoted in the message when the file's shape differs.

    Raises:
        ProblemDataError: no such file, not a plain ``.npy`` array (object arrays
            would need pickle and are refused), not real and numeric, wrong shape,
            or non-finite entries (the first one's index is named).
    """
    path = Path(path)
    where = f"{key}: {str(path)!r}"
    if not path.is_file():
        raise ProblemDataError(f"{key}: no file at {str(path)!r}; give the path of a .npy file holding a "
                               f"{shape[0]} x {shape[1]} matrix (numpy.save)")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ProblemDataError(f"{where} is not a readable .npy array ({error}); save it with numpy.save") from error
    if not isinstance(matrix, np.ndarray) or not np.issubdtype(matrix.dtype, np.number) or np.iscomplexobj(matrix):
        raise ProblemDataError(f"{where} must hold a real numeric array, got {getattr(matrix, 'dtype', type(matrix))}")
    if matrix.shape != tuple(shape):
        keys = " and ".join(dict.fromkeys(names))
        raise ProblemDataError(
            f"{where} holds an array of shape {matrix.shape}, but {names[0]} x {names[1]} = {shape[0]} x {shape[1]}; "
            f"set {keys} to the matrix's shape (rows, columns) or save it with that shape")
    bad = ~np.isfinite(matrix)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ProblemDataError(f"{where} has {int(bad.sum())} non-finite entries (NaN or inf), the first at index "
                               f"{first}; the matrix must be finite")
    return matrix.astype(np.float64)
