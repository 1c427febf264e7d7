"""Checkpoints of learned parameters: ``.npz`` arrays plus JSON metadata, no pickle.

A checkpoint holds every ``nnx.Param`` of a solver by dotted name, as stored
(the raw array, before its constraint is applied), and a JSON header naming the
solver, its depth, its options, each parameter's shape, dtype and constraint,
and the problem it was trained on (``Problem.describe()``). :func:`load_checkpoint`
refuses a file whose solver configuration differs from the one it is loaded
into, naming each difference. Files are written atomically (temporary file,
then rename) and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from . import __version__
from .atomic import atomic_write
from .errors import CheckpointError
from .interfaces import Problem, UnfoldedSolver
from .options import options_to_dict
from .params import Unconstrained, learned_variables

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_metadata"]

FORMAT = "du-framework-checkpoint"
FORMAT_VERSION = 2
_META = "__metadata__"


def _identity(solver: UnfoldedSolver) -> dict[str, Any]:
    return {"solver": solver.name, "depth": solver.depth, "options": options_to_dict(solver.options)}


def _params(solver: UnfoldedSolver) -> dict[str, tuple[np.ndarray, str]]:
    """Every raw parameter array by dotted name, with its constraint's description."""
    return {name: (np.asarray(variable[...]), (getattr(variable, "constraint", None) or Unconstrained()).describe())
            for name, variable in learned_variables(solver).items()}


def save_checkpoint(path: str | Path, solver: UnfoldedSolver, *, problem: Problem | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``solver``'s parameters and identity to ``path`` (``.npz``) atomically.

    Args:
        problem: the problem it was trained on (its ``describe()`` goes into the header).
        extra: more JSON-friendly header entries (label, status, ...).
    """
    path = Path(path)
    params = _params(solver)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "framework_version": __version__,
        **_identity(solver),
        "params": {name: {"shape": list(a.shape), "dtype": str(a.dtype), "constraint": constraint}
                   for name, (a, constraint) in params.items()},
        **({"problem": problem.describe()} if problem is not None else {}),
        **(extra or {}),
    }
    arrays = {f"param/{name}": value for name, (value, _) in params.items()}
    arrays[_META] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def _open(path: Path):
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    try:
        archive = np.load(path, allow_pickle=False)
        metadata = json.loads(bytes(archive[_META]).decode())
    except Exception as error:  # a truncated or foreign file
        raise CheckpointError(
            f"{str(path)!r} is not a du-framework checkpoint ({type(error).__name__}: {error})"
        ) from error
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a du-framework checkpoint (format {metadata.get('format')!r})")
    return archive, metadata


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON header of a checkpoint (solver, depth, options, parameter shapes, extras)."""
    return _open(Path(path))[1]


def load_checkpoint(path: str | Path, solver: UnfoldedSolver) -> UnfoldedSolver:
    """Return a copy of ``solver`` holding the parameters stored at ``path``.

    Raises:
        CheckpointError: the file is missing or corrupt, or was written for a
            different solver, depth or options (the message names each difference).
    """
    path = Path(path)
    archive, metadata = _open(path)
    expected = _identity(solver)
    differences = []
    for key in ("solver", "depth"):
        if metadata.get(key) != expected[key]:
            differences.append(f"{key}: file has {metadata.get(key)!r}, expected {expected[key]!r}")
    stored_options = metadata.get("options", {})
    for key in sorted(set(stored_options) | set(expected["options"])):
        if stored_options.get(key) != expected["options"].get(key):
            differences.append(
                f"option {key}: file has {stored_options.get(key)!r}, expected {expected['options'].get(key)!r}"
            )
    if not differences:
        stored = metadata.get("params", {})
        for name, (value, constraint) in _params(solver).items():
            key = f"param/{name}"
            if key not in archive.files:
                differences.append(f"parameter {name}: missing from the file")
            elif archive[key].shape != value.shape:
                differences.append(f"parameter {name}: file has shape {archive[key].shape}, expected {value.shape}")
            elif stored.get(name, {}).get("constraint", constraint) != constraint:
                differences.append(f"parameter {name}: file has constraint {stored[name]['constraint']!r}, "
                                   f"expected {constraint!r}")
    if differences:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match this solver configuration: "
            + "; ".join(differences)
            + ". Retrain, or load it with the configuration that wrote it."
        )
    graphdef, param_state, rest = nnx.split(solver, nnx.Param, ...)
    pure = nnx.to_pure_dict(param_state)

    def fill(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                fill(value, f"{prefix}{key}.")
            else:
                tree[key] = np.asarray(archive[f"param/{prefix}{key}"]).astype(value.dtype)

    fill(pure)
    nnx.replace_by_pure_dict(param_state, pure)
    return nnx.merge(graphdef, param_state, rest)
