"""Checkpoints of learned parameters: ``.npz`` arrays plus JSON metadata, no pickle.

A checkpoint holds every ``nnx.Param`` of a solver by dotted name, as stored
(the raw array, before its constraint is applied; a network's weights under their
nested path, ``prox.module.layers.0.kernel``), and a JSON header naming the
solver, its depth, its options, each parameter's shape, dtype, constraint and
whether reports show it (``report``; false for large matrices and networks' weights),
and the problem it was trained on: its name, its options, its ``describe()``
and a SHA-256 fingerprint of ``describe()`` and of every array of the problem
(:func:`problem_fingerprint`; it changes with a user matrix file's content, a
seed, a size or any constant the problem precomputes).

:func:`load_checkpoint` refuses a file whose solver configuration or problem
differs from the one it is loaded into, naming each difference; a problem
mismatch may be allowed explicitly (``allow_problem_mismatch=True``, to
evaluate a trained solver on another problem), and is then reported in the
:class:`LoadedCheckpoint`. Files are untrusted: every header is checked before
anything is read (:mod:`du_framework.io.safe_files`), the JSON header's structure
is validated, and loaded parameters must be real, finite and of the declared
dtype and shape. Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from ..version import __version__
from .atomic import atomic_write
from ..errors import CheckpointError
from ..interfaces import Problem, UnfoldedSolver
from ..options import options_to_dict
from ..params import Unconstrained, learned_variables
from .safe_files import DEFAULT_LIMIT, read_npz

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "read_checkpoint_metadata",
           "problem_fingerprint", "problem_identity", "LoadedCheckpoint"]

FORMAT = "du-framework-checkpoint"
FORMAT_VERSION = 3
_META = "__metadata__"
_MAX_METADATA = 16 * 1024**2  # bytes of JSON header
_PARAM_KINDS = "biufcSU"  # read, then refused by name unless real (see _check_values)


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, default=str))


def _identity(solver: UnfoldedSolver) -> dict[str, Any]:
    return {"solver": solver.name, "depth": solver.depth, "options": _jsonable(options_to_dict(solver.options))}


def _params(solver: UnfoldedSolver) -> dict[str, tuple[np.ndarray, str]]:
    """Every raw parameter array by dotted name, with its constraint's description."""
    return {name: (np.asarray(variable[...]), (getattr(variable, "constraint", None) or Unconstrained()).describe())
            for name, variable in learned_variables(solver).items()}


def _reported(solver: UnfoldedSolver) -> dict[str, bool]:
    """Whether results and plots show each parameter (``False`` for large matrices and networks' weights)."""
    return {name: bool(getattr(variable, "report", True)) for name, variable in learned_variables(solver).items()}


def problem_fingerprint(problem: Problem) -> str:
    """SHA-256 (hex) of ``problem.describe()`` and of every array leaf of the problem pytree.

    Generic: a problem that read a matrix file holds it (or arrays computed from
    it) as leaves, so the fingerprint changes with the file's content; it also
    changes with a seed, a size or a regularisation weight that any array
    depends on. Arrays are hashed with their dtype and shape, in pytree order.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(_jsonable(problem.describe()), sort_keys=True).encode())
    for leaf in jax.tree.leaves(problem):
        try:
            array = np.ascontiguousarray(np.asarray(leaf))
        except Exception:  # noqa: BLE001 - a non-array leaf: hash its text
            digest.update(repr(leaf).encode())
            continue
        digest.update(f"|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes() if array.dtype.kind in "biufc" else repr(array.tolist()).encode())
    return digest.hexdigest()


def problem_identity(problem: Problem, options: Any = None) -> dict[str, Any]:
    """The header entry identifying ``problem`` (built from ``options``, its ``Options``, if known)."""
    return {
        "name": problem.name,
        "options": None if options is None else _jsonable(options_to_dict(options)),
        "describe": _jsonable(problem.describe()),
        "sha256": problem_fingerprint(problem),
    }


def save_checkpoint(path: str | Path, solver: UnfoldedSolver, *, problem: Problem | None = None,
                    problem_options: Any = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``solver``'s parameters and identity to ``path`` (``.npz``) atomically.

    Args:
        problem: the problem it was trained on (its identity goes into the header:
            :func:`problem_identity`).
        problem_options: the problem's ``Options`` (recorded and compared on load).
        extra: more JSON-friendly header entries (label, status, ...).
    """
    path = Path(path)
    params, reported = _params(solver), _reported(solver)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "framework_version": __version__,
        **_identity(solver),
        "params": {name: {"shape": list(a.shape), "dtype": str(a.dtype), "constraint": constraint,
                          "report": reported[name]}
                   for name, (a, constraint) in params.items()},
        **({"problem": problem_identity(problem, problem_options)} if problem is not None else {}),
        **(extra or {}),
    }
    arrays = {f"param/{name}": value for name, (value, _) in params.items()}
    arrays[_META] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


# --- reading --------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_metadata(metadata: Any, where: str) -> dict[str, Any]:
    """Refuse a JSON header whose structure is not a checkpoint's (naming the first wrong entry)."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{where} is not a valid du-framework checkpoint: {what}")

    if not isinstance(metadata, dict):
        raise bad(f"its header is {type(metadata).__name__} JSON ({json.dumps(metadata)[:60]}), not an object")
    if metadata.get("format") != FORMAT:
        raise bad(f"format {metadata.get('format')!r}, expected {FORMAT!r}")
    version = metadata.get("format_version")
    if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
        raise bad(f"format_version {version!r}; this du-framework reads versions 1 to {FORMAT_VERSION}")
    checks = {
        "solver": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
        "depth": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
        "options": (lambda v: isinstance(v, dict), "an object"),
        "params": (lambda v: isinstance(v, dict), "an object"),
    }
    for key, (check, expected) in checks.items():
        if key not in metadata:
            raise bad(f"its header has no {key!r}")
        if not check(metadata[key]):
            raise bad(f"{key!r} is {json.dumps(metadata[key])[:60]}, expected {expected}")
    for name, entry in metadata["params"].items():
        if not isinstance(entry, dict):
            raise bad(f"params.{name} is {json.dumps(entry)[:60]}, expected an object")
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"params.{name}.shape is {json.dumps(shape)[:60]}, expected a list of integers >= 0")
        for key in ("dtype", "constraint"):
            if not isinstance(entry.get(key), str):
                raise bad(f"params.{name}.{key} is {json.dumps(entry.get(key))[:60]}, expected a string")
        if not isinstance(entry.get("report", True), bool):  # optional: files before networks lack it
            raise bad(f"params.{name}.report is {json.dumps(entry.get('report'))[:60]}, expected true or false")
    problem = metadata.get("problem")
    if problem is not None:
        if not isinstance(problem, dict) or not isinstance(problem.get("name"), str):
            raise bad(f"'problem' is {json.dumps(problem)[:60]}, expected an object with a 'name'")
        for key, kind, label in (("options", dict, "an object"), ("sha256", str, "a string"),
                                 ("describe", dict, "an object")):
            if problem.get(key) is not None and not isinstance(problem[key], kind):
                raise bad(f"problem.{key} is {json.dumps(problem[key])[:60]}, expected {label}")
    for key in ("label", "status"):
        if key in metadata and not isinstance(metadata[key], str):
            raise bad(f"{key!r} is {json.dumps(metadata[key])[:60]}, expected a string")
    return metadata


def _no_constant(token: str):
    raise ValueError(f"{token} is not JSON")


def read_checkpoint(path: str | Path, *, limit: int = DEFAULT_LIMIT) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The validated JSON header and the arrays (``param/<name>``) of a checkpoint.

    Raises:
        CheckpointError: missing file, not a checkpoint, a lying or hostile
            archive (see :func:`du_framework.io.safe_files.read_npz`), or a header
            of the wrong structure; the message names the file.
    """
    path = Path(path)
    where = repr(str(path))
    arrays = read_npz(path, error=CheckpointError, kinds=_PARAM_KINDS, limit=limit, what="checkpoint")
    raw = arrays.pop(_META, None)
    if raw is None:
        raise CheckpointError(f"{where} is not a du-framework checkpoint (it has no {_META!r})")
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > _MAX_METADATA:
        raise CheckpointError(f"{where} is not a du-framework checkpoint (its {_META!r} is a {raw.dtype} array of "
                              f"shape {raw.shape}, expected at most {_MAX_METADATA} bytes of JSON)")
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{where} is not a du-framework checkpoint (its header is not JSON: {error})") from None
    metadata = _validate_metadata(metadata, where)
    for name in arrays:
        if not name.startswith("param/"):
            raise CheckpointError(f"{where} is not a valid du-framework checkpoint: unexpected array {name!r}")
    return metadata, arrays


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON header of a checkpoint (solver, depth, options, parameter shapes, problem, extras)."""
    return read_checkpoint(path)[0]


@dataclasses.dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` (with ``details=True``) found.

    Attributes:
        solver: a copy of the solver holding the stored parameters.
        metadata: the file's validated header.
        problem_mismatch: the differences between the problem the file was
            trained on and the one given (non-empty only with
            ``allow_problem_mismatch=True``).
    """

    solver: UnfoldedSolver
    metadata: dict[str, Any]
    problem_mismatch: list[str]


def _problem_differences(stored: Any, expected: dict[str, Any]) -> list[str]:
    if not isinstance(stored, dict):
        return ["problem: the file does not record the problem it was trained on"]
    differences = []
    if stored.get("name") != expected["name"]:
        differences.append(f"problem: file has {stored.get('name')!r}, expected {expected['name']!r}")
        return differences
    if expected["options"] is not None:
        if stored.get("options") is None:
            differences.append("problem options: the file does not record them")
        else:
            for key in sorted(set(stored["options"]) | set(expected["options"])):
                if stored["options"].get(key) != expected["options"].get(key):
                    differences.append(f"problem option {key}: file has {stored['options'].get(key)!r}, "
                                       f"expected {expected['options'].get(key)!r}")
    if stored.get("sha256") is None:
        differences.append("problem data: the file records no fingerprint (written by an older du-framework)")
    elif stored["sha256"] != expected["sha256"]:
        differences.append(f"problem data (sha256 of describe() and its arrays, e.g. a matrix file): file has "
                           f"{stored['sha256'][:12]}..., expected {expected['sha256'][:12]}...")
    return differences


def _check_values(name: str, array: np.ndarray, expected: np.ndarray, declared: dict[str, Any]) -> str | None:
    """Why ``array`` cannot be parameter ``name`` (or None)."""
    if array.dtype.kind == "c":
        return f"parameter {name}: file holds complex {array.dtype} values; parameters are real ({expected.dtype})"
    if array.dtype.kind not in "iuf":
        return f"parameter {name}: file holds {array.dtype} values; parameters are real numbers ({expected.dtype})"
    if str(array.dtype) != declared["dtype"]:
        return f"parameter {name}: file holds {array.dtype} values but its header declares {declared['dtype']}"
    if array.dtype != expected.dtype:
        return f"parameter {name}: file has dtype {array.dtype}, expected {expected.dtype}"
    if list(array.shape) != declared["shape"]:
        return f"parameter {name}: file holds shape {array.shape} but its header declares {tuple(declared['shape'])}"
    if array.shape != expected.shape:
        return f"parameter {name}: file has shape {array.shape}, expected {expected.shape}"
    finite = np.isfinite(array)
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        return (f"parameter {name}: {int((~finite).sum())} non-finite values (NaN or inf), the first at index "
                f"{first}; parameters must be finite")
    return None


def load_checkpoint(path: str | Path, solver: UnfoldedSolver, *, problem: Problem | None = None,
                    problem_options: Any = None, allow_problem_mismatch: bool = False,
                    details: bool = False) -> UnfoldedSolver | LoadedCheckpoint:
    """Return a copy of ``solver`` holding the parameters stored at ``path``.

    Args:
        problem: the problem the solver will run on; the file's problem must be
            the same (name, options when ``problem_options`` is given, and
            :func:`problem_fingerprint`). ``None`` skips the problem check.
        problem_options: the ``Options`` ``problem`` was built from.
        allow_problem_mismatch: load a file trained on another problem anyway
            (a warning is issued unless ``details`` is set; the differences are in
            :attr:`LoadedCheckpoint.problem_mismatch`).
        details: return a :class:`LoadedCheckpoint` instead of the solver.

    Raises:
        CheckpointError: the file is missing, corrupt or hostile; or it was
            written for a different solver, depth, options, parameter set,
            shape, dtype or constraint, or (unless allowed) problem; or a stored
            parameter is not real and finite. The message names each difference.
    """
    path = Path(path)
    metadata, arrays = read_checkpoint(path)
    expected = _identity(solver)
    differences = []
    for key in ("solver", "depth"):
        if metadata[key] != expected[key]:
            differences.append(f"{key}: file has {metadata[key]!r}, expected {expected[key]!r}")
    stored_options = metadata["options"]
    for key in sorted(set(stored_options) | set(expected["options"])):
        if stored_options.get(key) != expected["options"].get(key):
            differences.append(
                f"option {key}: file has {stored_options.get(key)!r}, expected {expected['options'].get(key)!r}")
    problem_mismatch = ([] if problem is None
                        else _problem_differences(metadata.get("problem"), problem_identity(problem, problem_options)))
    current = _params(solver)
    if not differences:
        stored = metadata["params"]
        for name in sorted(set(stored) - set(current)):
            differences.append(f"parameter {name}: in the file, but this solver has no such parameter")
        for name, (value, constraint) in current.items():
            key = f"param/{name}"
            if key not in arrays or name not in stored:
                differences.append(f"parameter {name}: missing from the file")
            elif stored[name]["constraint"] != constraint:
                differences.append(f"parameter {name}: file has constraint {stored[name]['constraint']!r}, "
                                   f"expected {constraint!r}")
            else:
                problem_with_values = _check_values(name, arrays[key], value, stored[name])
                if problem_with_values:
                    differences.append(problem_with_values)
        for key in sorted(set(arrays) - {f"param/{name}" for name in current}):
            if key[len("param/"):] not in stored:
                differences.append(f"array {key}: in the file, but this solver has no such parameter")
    refused = differences + ([] if allow_problem_mismatch else problem_mismatch)
    if refused:
        hint = "Retrain, or load it with the configuration that wrote it."
        if problem_mismatch and not allow_problem_mismatch:
            hint = ("Retrain on this problem, or allow the mismatch explicitly (allow_problem_mismatch=True; "
                    "unfold compare --allow-problem-mismatch) to evaluate it on this problem anyway.")
        raise CheckpointError(f"checkpoint {str(path)!r} does not match this "
                              f"{'problem' if not differences else 'solver configuration'}: "
                              + "; ".join(refused) + f". {hint}")
    graphdef, param_state, rest = nnx.split(solver, nnx.Param, ...)
    pure = nnx.to_pure_dict(param_state)

    def fill(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                fill(value, f"{prefix}{key}.")
            else:
                tree[key] = arrays[f"param/{prefix}{key}"]

    fill(pure)
    nnx.replace_by_pure_dict(param_state, pure)
    loaded = nnx.merge(graphdef, param_state, rest)
    if details:
        return LoadedCheckpoint(loaded, metadata, problem_mismatch)
    if problem_mismatch:
        warnings.warn(f"checkpoint {str(path)!r} was trained on another problem (allowed): "
                      + "; ".join(problem_mismatch), stacklevel=2)
    return loaded
