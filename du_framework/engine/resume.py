"""Resumable training: the state of a run at a stage boundary, and its file.

:func:`~du_framework.engine.train` calls ``on_stage_end(state)`` with a
:class:`TrainState` after every stage, and continues a run from one with
``resume=state``: the parameters, the optimiser state, the PRNG state and the
loss history are restored and the remaining stages run, so the result is the
same as an uninterrupted run (bitwise on CPU, where the program is
deterministic). :func:`save_train_state` writes one atomically (``.npz`` arrays
and a JSON header, no pickle) and :func:`load_train_state` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..io.atomic import atomic_write
from ..errors import CheckpointError

__all__ = ["TrainState", "save_train_state", "load_train_state"]

FORMAT = "du-framework-train-state"
FORMAT_VERSION = 1
_HEADER = "__header__"


@dataclasses.dataclass
class TrainState:
    """A training run after ``stages_done`` stages (host arrays; a leading member axis for ensembles).

    Attributes:
        stages_done: how many stages of the schedule are complete.
        params: the raw learned parameters, a nested dict as ``nnx.to_pure_dict`` gives.
        opt_state: the optimiser state's leaves, in ``jax.tree.leaves`` order.
        key_data: the PRNG key's data (``jax.random.key_data``), uint32.
        losses: the loss of every optimiser step so far.
        stage_losses: the mean loss over the last chunk of each completed stage (per member for ensembles).
        identity: what the run belongs to (solver, depth, options, settings, ...), compared on resume.
        diverged_at: for an ensemble trained with ``on_divergence="record"``, per member
            ``None`` or where it diverged (``{"stage": s, "step": n}``); such a member
            stays frozen at its parameters here when the run resumes.
    """

    stages_done: int
    params: dict
    opt_state: list[np.ndarray]
    key_data: np.ndarray
    losses: np.ndarray
    stage_losses: list
    identity: dict[str, Any] = dataclasses.field(default_factory=dict)
    diverged_at: list | None = None


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = np.asarray(value)
    return out


def _nest(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def save_train_state(path: str | Path, state: TrainState) -> Path:
    """Write ``state`` to ``path`` (``.npz``) atomically: a crash leaves the previous file whole."""
    path = Path(path)
    params = _flatten(state.params)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "stages_done": int(state.stages_done),
              "stage_losses": [np.asarray(v).tolist() for v in state.stage_losses], "params": sorted(params),
              "opt_leaves": len(state.opt_state), "identity": state.identity,
              "diverged_at": state.diverged_at}
    arrays = {f"param/{name}": value for name, value in params.items()}
    arrays.update({f"opt/{index:05d}": np.asarray(leaf) for index, leaf in enumerate(state.opt_state)})
    arrays["key"] = np.asarray(state.key_data, np.uint32)
    arrays["losses"] = np.asarray(state.losses, np.float32)
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def load_train_state(path: str | Path) -> TrainState:
    """Read a :class:`TrainState` written by :func:`save_train_state`.

    Raises:
        CheckpointError: no such file, not a train-state file, or a corrupt one.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no resumable training state at {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(bytes(archive[_HEADER]).decode())
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ValueError("not a du-framework training state")
            params = {name: archive[f"param/{name}"] for name in header["params"]}
            opt_state = [archive[f"opt/{index:05d}"] for index in range(int(header["opt_leaves"]))]
            key_data, losses = archive["key"], archive["losses"]
    except CheckpointError:
        raise
    except Exception as error:  # noqa: BLE001 - a truncated, foreign or corrupt file
        raise CheckpointError(f"{str(path)!r} is not a readable du-framework training state "
                              f"({type(error).__name__}: {error})") from None
    diverged_at = header.get("diverged_at")
    if diverged_at is not None and not (isinstance(diverged_at, list) and all(
            at is None or (isinstance(at, dict) and set(at) == {"stage", "step"}
                           and all(isinstance(v, int) for v in at.values())) for at in diverged_at)):
        raise CheckpointError(f"{str(path)!r}: its record of diverged ensemble members is malformed")
    return TrainState(int(header["stages_done"]), _nest(params), opt_state, key_data, losses,
                      list(header["stage_losses"]), dict(header.get("identity") or {}), diverged_at)


def key_from_data(key_data: np.ndarray) -> jax.Array:
    """The PRNG key (or stacked keys) whose data is ``key_data``."""
    return jax.random.wrap_key_data(np.asarray(key_data, np.uint32), impl="threefry2x32")
