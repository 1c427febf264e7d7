"""JAX's persistent compilation cache, so a new process skips compiling the same programs."""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["enable_compile_cache"]


def enable_compile_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled XLA programs on disk, so a new process skips compiling them again.

    This is JAX's persistent compilation cache, switched on for programs of any
    compile time. ``path`` defaults to ``$DU_COMPILE_CACHE`` or else
    ``$XDG_CACHE_HOME/du-framework/xla`` (``~/.cache/du-framework/xla``);
    ``DU_COMPILE_CACHE=off`` disables it. Returns the folder in use, or ``None``
    when disabled. The ``unfold`` command calls this at start-up.
    """
    setting = os.environ.get("DU_COMPILE_CACHE", "")
    if path is None and setting.lower() in ("off", "0", "false", "no"):
        return None
    if path is None:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = setting or base / "du-framework" / "xla"
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile every time, as without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder
