"""Checks before any training: the output folder, and whether the run fits the machine.

:func:`check_out_dir` refuses an ``--out`` that is a file or cannot be created or written
(it creates and removes a probe file). :func:`check_training` estimates the memory a
training run needs and the work it does, before anything is compiled: the estimate is
analytic (shapes only, from ``jax.eval_shape``), so it costs milliseconds, where XLA's own
figure (:func:`du_framework.engine.program_memory`) needs a compilation.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["InsufficientMemoryError", "check_out_dir", "available_memory", "training_memory",
           "iteration_steps", "check_training", "WORK_WARNING", "REFERENCE_RATE"]

WORK_WARNING = 1e9  # iteration-steps (optimiser steps x active depth) above which a run is announced as long
REFERENCE_RATE = 3e4  # iteration-steps per second of the reference problem on a CPU (docs/performance.md)


class InsufficientMemoryError(ConfigError):
    """A run would need more memory than the machine has (the CLI exits 4, as for running out of it)."""


def check_out_dir(out: str | Path, option: str = "--out") -> Path:
    """Create ``out`` (with its parents) and prove it writable with a probe file, removed at once.

    Raises:
        ConfigError: ``out`` or a parent is a file, or the folder cannot be created or written
            (permissions, read-only file system, full disk); the message names the path.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {str(out)!r} is a file, not a folder; name a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{option} {str(out)!r} cannot be created: a part of its path is a file") from None
    except OSError as error:
        raise ConfigError(f"{option} {str(out)!r} cannot be created: {error.strerror or error}"
                          + (f" ({error.filename})" if error.filename and str(error.filename) != str(out) else ""))\
            from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".unfold-probe.", suffix=".tmp", dir=out)
        try:
            os.write(fd, b"probe")
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
    except OSError as error:
        raise ConfigError(f"{option} {str(out)!r} is not writable: {error.strerror or error}") from None
    return out


def available_memory(device: Any = None) -> tuple[int | None, str]:
    """Memory the training program may use, in bytes, and where it is: the accelerator's
    (``bytes_limit`` of its memory statistics) or, on a CPU, the machine's physical memory."""
    if device is not None and getattr(device, "platform", "cpu") != "cpu":
        with contextlib.suppress(Exception):
            limit = (device.memory_stats() or {}).get("bytes_limit")
            if limit:
                return int(limit), f"{device.platform} device {device.id}"
        return None, f"{device.platform} device"
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "this machine (physical memory)"
    except (ValueError, OSError, AttributeError):
        return None, "this machine"


def _nbytes(tree: Any) -> int:
    import jax

    return sum(int(np.prod(leaf.shape, dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
               for leaf in jax.tree.leaves(tree) if hasattr(leaf, "shape") and hasattr(leaf, "dtype"))


def _stored_states(depth: int, levels: int) -> int:
    """States kept for the backward pass: ``depth``, or about ``levels * depth**(1/levels)`` with remat."""
    if levels <= 0:
        return depth
    return min(depth, levels * math.ceil(depth ** (1.0 / levels)))


def training_memory(solver: Any, problem: Any, settings: Any) -> dict[str, int]:
    """An estimate of the training program's memory, in bytes, from shapes alone.

    ``states``: one batch's iteration state (from ``solver.init_state`` under
    ``jax.eval_shape``; ``batch_size x dim x 4`` bytes when that fails) times the states kept
    for the backward pass (``depth``, fewer with ``train.remat``) times 2 (each state and its
    cotangent); ``instances``: a batch of training instances and the solver's context;
    ``problem``: the problem's arrays. Split over ``train.devices``, the batch parts are per
    device. The estimate is of the order of XLA's (docs/performance.md), not exact.
    """
    import jax

    from ..engine.keys import host_key
    from ..engine.unroll import remat_levels

    batch = int(settings.batch_size)
    depth = int(getattr(solver, "depth", settings.depth))
    devices = int(settings.devices)
    if devices == 0:
        devices = len(jax.devices())
    per_device = max(1, math.ceil(batch / max(devices, 1)))
    try:
        def shapes(key):
            instance = problem.sample(key, per_device)
            context = solver.prepare(problem, instance)
            return instance, context, solver.init_state(problem, context)

        instance, context, state = jax.eval_shape(shapes, host_key(0))  # host_key: no eager compilation
        state_bytes, instance_bytes = _nbytes(state), _nbytes(instance) + _nbytes(context)
    except Exception:  # noqa: BLE001 - a component that cannot be traced abstractly: the simple estimate
        state_bytes = per_device * int(problem.dim) * 4
        instance_bytes = 2 * state_bytes
    try:
        problem_bytes = _nbytes(problem)
    except Exception:  # noqa: BLE001
        problem_bytes = 0
    stored = _stored_states(depth, remat_levels(settings.remat))
    parts = {"states": 2 * stored * state_bytes, "instances": instance_bytes, "problem": problem_bytes}
    parts["total"] = sum(parts.values())
    return parts


def iteration_steps(stages: Any) -> int:
    """The work of a schedule: the sum over its stages of optimiser steps x active depth."""
    return int(sum(int(stage.steps) * int(stage.active_depth) for stage in stages))


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} PiB"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.0f} hours"
    if seconds < 3 * 365 * 86400:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds / (365 * 86400):.0f} years"


def check_training(label: str, solver: Any, problem: Any, schedule: Any, settings: Any, *,
                   warn: Callable[[str], None], available: tuple[int | None, str] | None = None) -> None:
    """Refuse a training run that cannot fit in memory; warn about one that will take very long.

    Args:
        label: the solver's label, for the messages.
        warn: called with a one-line warning.
        available: ``(bytes, where)``, default :func:`available_memory` of the first device.

    Raises:
        InsufficientMemoryError: the estimate (:func:`training_memory`) exceeds the available
            memory; the message names ``train.batch_size``, ``train.depth`` and ``train.remat``.
    """
    if not getattr(solver, "is_trainable", False):
        return
    import jax

    from ..engine import expand_schedule
    from ..engine.unroll import remat_levels

    if available is None:
        available = available_memory(jax.devices()[0])
    limit, where = available
    need = training_memory(solver, problem, settings)
    if limit is not None and need["total"] > limit:
        remat = ("set train.remat = true (about 2 sqrt(depth) states kept instead of depth)"
                 if not remat_levels(settings.remat) else f"raise train.remat (now {settings.remat!r})")
        raise InsufficientMemoryError(
            f"training {label!r} needs about {_size(need['total'])} (states {_size(need['states'])}, instances "
            f"{_size(need['instances'])}, problem {_size(need['problem'])}) but {where} has {_size(limit)}: "
            f"lower train.batch_size (now {settings.batch_size}) or train.depth (now {settings.depth}), or {remat}")
    work = iteration_steps(expand_schedule(schedule, settings, solver.depth))
    if work > WORK_WARNING:
        warn(f"training {label!r} runs {work:.3g} iteration-steps (optimiser steps x active depth, over the "
             f"schedule); at {REFERENCE_RATE:.0e} per second, the reference problem's rate on a CPU, that is about "
             f"{_duration(work / REFERENCE_RATE)}, and more for a larger problem or batch; lower train.depth "
             f"(now {settings.depth}) or train.steps_per_stage (now {settings.steps_per_stage}) for a shorter run")
