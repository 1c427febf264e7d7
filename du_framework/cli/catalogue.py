"""What ``unfold list`` and ``unfold examples`` print, kept between processes so that they start without JAX.

Listing the catalogue loads every plugin, and the plugins import JAX (about 2 s of a 2.5 s command).
What the listing prints depends only on the installed distributions, the plugins' files and the
environment that chooses them (``DU_PLUGINS``), so the first run in a fresh process keeps its output
in ``$XDG_CACHE_HOME/du-framework/catalogue/`` (``~/.cache/...``) under a key made of those, and a
later run with the same key prints it without loading a plugin. Installing, removing or upgrading a
distribution, or editing a plugin's file, changes the key. ``DU_CATALOGUE_CACHE=off`` turns it off;
``DU_CATALOGUE_CACHE=FOLDER`` moves it. Nothing is cached in a process that has already imported JAX
(a plugin registered in process, as tests do, is not an installed one) or when the listing fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["cached"]

_GROUPS = ("du_framework", "du_framework.builtin")
_SOURCES = (".py", ".toml", ".alist", ".json", ".txt", ".md")


def _folder() -> Path | None:
    setting = os.environ.get("DU_CATALOGUE_CACHE", "").strip()
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    if setting:
        return Path(setting)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "du-framework" / "catalogue"


def _package_files(module: str) -> list[str]:
    """``path:mtime_ns:size`` of every source file of the top-level package of ``module``, found without
    importing it."""
    try:
        spec = importlib.util.find_spec(module.partition(".")[0])
    except (ImportError, ValueError):
        return [f"{module}:missing"]
    if spec is None:
        return [f"{module}:missing"]
    roots = list(spec.submodule_search_locations or []) or ([spec.origin] if spec.origin else [])
    files = []
    for root in roots:
        path = Path(root).resolve()
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in _SOURCES)
        for file in candidates:
            with contextlib.suppress(OSError):
                stat = file.stat()
                files.append(f"{file}:{stat.st_mtime_ns}:{stat.st_size}")
    return files


def _key(command: str) -> str:
    """A digest of what the listing depends on: the command, the interpreter, every installed distribution
    with its version and location, the plugins' entry points and their files, and DU_PLUGINS."""
    parts = [command, sys.executable, sys.version, os.environ.get("DU_PLUGINS", "\0unset")]
    dists = [f"{dist.metadata['Name']}=={dist.version}@{os.path.abspath(str(dist.locate_file('')))}"
             for dist in importlib.metadata.distributions()]
    parts.extend(sorted(dists))
    modules = {"du_framework"}
    for group in _GROUPS:
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: (e.name, e.value)):
            parts.append(f"{group}:{ep.name}={ep.value}")
            modules.add(ep.value.partition(":")[0])
    for module in sorted(modules):
        parts.extend(_package_files(module))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def cached(command: str, produce: Callable[[], int]) -> int:
    """Print what ``produce`` prints for ``command`` (its exit code returned), from the cache when it holds
    it; otherwise run it and keep its output when it succeeds."""
    folder = _folder()
    if folder is None or "jax" in sys.modules:
        return produce()
    file = folder / f"{_key(command)}.txt"
    try:
        kept = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    else:
        sys.stdout.write(kept)
        return 0
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = produce()
    text = buffer.getvalue()
    sys.stdout.write(text)
    if code == 0:
        with contextlib.suppress(OSError):  # a cache that cannot be written is no cache, not an error
            folder.mkdir(parents=True, exist_ok=True)
            partial = file.with_name(f"{file.name}.{os.getpid()}.tmp")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, file)
    return code
