"""Atomic file writes: a crash never leaves a half-written file in place of a good one.

A file is written to a temporary sibling ``.NAME.XXXXXXXX.tmp``, flushed to disk and renamed
over ``NAME``. The new file gets the mode ``open()`` would give it (``0o666`` less the umask:
0644 under the usual umask 022), or the mode of the file it replaces. Temporary siblings that
an earlier, killed process left behind are removed once they are an hour old.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_write", "file_mode", "remove_stale_temporaries", "STALE_SECONDS"]

STALE_SECONDS = 3600.0  # a temporary file this old belongs to no live writer


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide and not thread-safe)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(path: str | Path) -> int:
    """The permission bits a file written at ``path`` gets: the existing file's, else ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def remove_stale_temporaries(path: str | Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the ``.NAME.*.tmp`` siblings of ``path`` not modified for ``older_than`` seconds.

    Returns the removed paths. Files that vanish meanwhile or cannot be removed are skipped.
    """
    path = Path(path)
    removed = []
    now = time.time()
    try:
        candidates = list(path.parent.glob(f".{path.name}.*.tmp"))
    except OSError:
        return removed
    for candidate in candidates:
        with contextlib.suppress(OSError):
            info = candidate.lstat()
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > older_than:
                candidate.unlink()
                removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w"):
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched. The file
    is created with the mode ``open()`` would give it (see :func:`file_mode`), not ``0600``.
    An ``OSError`` without a file name (``write``/``fsync`` on a full disk) is raised again
    naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    permissions = file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            os.fchmod(handle.fileno(), permissions)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.filename is None and error.errno is not None:
            # write(2) and fsync(2) report a full disk (ENOSPC) or a quota without a file name:
            # name the file (the same OSError subclass, e.g. PermissionError for EACCES)
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise
