"""Run folders as transactions, their manifest, ``config.toml`` and the provenance of a run.

``unfold compare`` and ``unfold train`` never write into the folder they were given
(``--out RUN``). They write into a staging folder beside it, ``.RUN.staging-<pid>``,
and publish it with one :func:`os.rename` once the run is complete, ``manifest.json``
written last. So ``RUN`` is either absent, the previous run whole, or the new run whole:
never half old and half new.

* A lock, ``fcntl.flock`` on ``.RUN.lock`` beside the folder (it must exclude a second
  writer before the folder exists and while the publishing rename replaces it), refuses
  a second process on the same folder; it holds the holder's pid, and the holder removes
  it when the run ends. A process that locked a file its holder had just removed sees
  that ``.RUN.lock`` names another file (or none) and tries again with the path's file.
* A non-empty ``RUN`` is refused unless ``force`` (the old folder is replaced as a whole:
  renamed aside to ``.RUN.old-<pid>``, the new one published, the old one deleted) or
  ``resume``.
* Resuming continues the staging folder an interrupted run left behind (it holds
  ``config.toml``, ``run.json`` and ``checkpoints/`` with the resumable states); a
  published folder is complete and has nothing to resume.
* Staging folders of processes that are gone (any but ours, since we hold the lock) are
  removed when a new run starts; one that an interrupted run left, and so could be
  resumed, is removed only with ``force`` (without it the run is refused, naming
  ``--resume`` and ``--force``).

See docs/cli.md ("Run folders") and docs/results.md ("manifest.json").
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import importlib.metadata
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write
from ..io.safe_files import file_sha256
from ..errors import ConfigError

__all__ = ["RunFolder", "run_target", "provenance", "config_digest", "to_toml", "toml_value", "write_manifest",
           "MANIFEST", "RUN_INFO", "CONFIG_TOML"]

MANIFEST = "manifest.json"
RUN_INFO = "run.json"  # the staging folder's identity: command, options (read on resume)
CONFIG_TOML = "config.toml"
MANIFEST_FORMAT = "du-framework-run"
MANIFEST_VERSION = 1
_STAGING = re.compile(r"^\.(?P<name>.+)\.staging-(?P<pid>\d+)$")


def run_target(path: str | Path) -> Path:
    """The run folder ``path`` names: itself, or the folder a staging folder ``.NAME.staging-PID`` belongs to."""
    path = Path(path)
    match = _STAGING.match(path.name)
    return path.parent / match.group("name") if match else path


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class RunFolder:
    """The transaction of one run writing ``target``; use as a context manager (it holds the lock).

    After entering, :attr:`staging` is the folder to write into (created, or the adopted
    staging folder of the interrupted run with ``resume``) and :attr:`resumed` says which.
    :meth:`publish` writes the manifest and renames the staging folder to ``target``.
    Leaving without publishing keeps the staging folder (it is what ``--resume`` continues).

    Raises (on entering):
        ConfigError: another process holds the folder; ``target`` is not empty (without
            ``force`` or ``resume``); an interrupted run waits there (without ``force`` or
            ``resume``); nothing to resume (with ``resume``).
    """

    def __init__(self, target: str | Path, *, command: str = "compare", force: bool = False,
                 resume: bool = False) -> None:
        self.target = Path(target)
        self.command = command
        self.force = force
        self.resume = resume
        self.staging = self.target.parent / f".{self.target.name}.staging-{os.getpid()}"
        self.lock_path = self.target.parent / f".{self.target.name}.lock"
        self.resumed = False
        self.published = False
        self._lock_fd: int | None = None

    # --- the lock ---------------------------------------------------------------------------
    def _acquire(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                os.close(fd)
                raise ConfigError(f"another unfold process{f' (pid {holder})' if holder.isdigit() else ''} is "
                                  f"writing {str(self.target)!r} (it holds {str(self.lock_path)!r}); wait for it to "
                                  f"finish or choose another --out") from None
            except BaseException:
                os.close(fd)
                raise
            if self._names(fd):
                break
            os.close(fd)  # its holder removed the file after we opened it: the lock is the file the path names
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _names(self, fd: int) -> bool:
        """Whether :attr:`lock_path` still names the file open as ``fd``."""
        try:
            on_disk, held = os.stat(self.lock_path), os.fstat(fd)
        except FileNotFoundError:
            return False
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def _release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                if self._names(self._lock_fd):
                    os.unlink(self.lock_path)  # removed while still held: a process that opened it retries
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- what lies beside the target ----------------------------------------------------------
    def _siblings(self, kind: str) -> list[Path]:
        pattern = re.compile(rf"^\.{re.escape(self.target.name)}\.{kind}-\d+$")
        try:
            found = [p for p in self.target.parent.iterdir() if pattern.match(p.name)]  # ours too: an earlier
            # run in this process that stopped; every writer is gone, since we hold the lock
        except OSError:
            return []
        return sorted(found, key=lambda p: p.lstat().st_mtime)

    def _recover_or_clean_aside(self) -> None:
        """A ``.RUN.old-PID`` folder is the previous run, renamed aside by a ``--force`` publish that was killed."""
        old = self._siblings("old")
        if old and not self.target.exists():
            os.rename(old.pop(), self.target)  # the publish never happened: restore the previous run
        for path in old:
            shutil.rmtree(path, ignore_errors=True)

    def _has_content(self) -> bool:
        try:
            return self.target.is_dir() and any(self.target.iterdir())
        except OSError:
            return True

    def __enter__(self) -> RunFolder:
        self._acquire()
        try:
            self._prepare()
        except BaseException:
            self._release()
            raise
        return self

    def _prepare(self) -> None:
        self._recover_or_clean_aside()
        stale = self._siblings("staging")  # every process that wrote them is gone: we hold the lock
        interrupted = [p for p in stale if (p / CONFIG_TOML).is_file() and (p / RUN_INFO).is_file()]
        if self.resume:
            if not interrupted:
                if (self.target / MANIFEST).is_file():
                    raise ConfigError(f"--resume {str(self.target)!r}: the run is complete ({MANIFEST} is written); "
                                      f"nothing to resume. Run it again with --out {self.target} --force")
                raise ConfigError(f"--resume {str(self.target)!r}: no interrupted run there (no staging folder "
                                  f".{self.target.name}.staging-PID with {CONFIG_TOML} beside it)")
            adopted = interrupted[-1]
            for path in stale:
                if path != adopted:
                    shutil.rmtree(path, ignore_errors=True)
            if adopted != self.staging:
                os.rename(adopted, self.staging)
            self.resumed = True
            return
        if interrupted and not self.force:
            raise ConfigError(f"--out {str(self.target)!r} has an interrupted run (staging folder "
                              f"{str(interrupted[-1])!r}); continue it with `unfold {self.command} --resume "
                              f"{self.target}`, or discard it and start again with --force")
        if self._has_content() and not self.force:
            raise ConfigError(f"--out {str(self.target)!r} is not empty; choose another --out, replace the folder "
                              f"as a whole with --force, or continue an interrupted run there with --resume")
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        self.staging.mkdir(mode=0o777)

    def __exit__(self, kind, error, trace) -> None:
        try:
            if (kind is not None and not self.published and not issubclass(kind, (KeyboardInterrupt, OSError))
                    and not any((self.staging / "checkpoints").glob("*.npz"))):
                shutil.rmtree(self.staging, ignore_errors=True)  # refused before anything was trained: no run
        finally:
            self._release()

    # --- publishing ----------------------------------------------------------------------------
    def publish(self, manifest: dict[str, Any]) -> Path:
        """Write ``manifest.json`` (``manifest`` plus the file list) last, then rename the staging folder to the target.

        An existing target is renamed aside first and deleted after (``force``); an empty one is removed.
        """
        write_manifest(self.staging, manifest)
        _fsync_dir(self.staging)
        aside = None
        if self.target.is_dir() and not self.target.is_symlink():
            try:
                self.target.rmdir()  # an empty folder (e.g. made by hand)
            except OSError:
                aside = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
                os.rename(self.target, aside)
        try:
            os.rename(self.staging, self.target)
        except BaseException:
            if aside is not None and not self.target.exists():
                os.rename(aside, self.target)
            raise
        _fsync_dir(self.target.parent)
        self.published = True
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return self.target


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``folder/manifest.json``: ``manifest`` plus ``files``, every other file with its size and sha256."""
    folder = Path(folder)
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(folder).as_posix()
        if relative == MANIFEST or path.name.endswith(".tmp"):
            continue
        files[relative] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    body = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, **manifest, "files": files}
    from .text import strict_json

    with atomic_write(folder / MANIFEST) as handle:
        handle.write(strict_json(body))
    return folder / MANIFEST


def config_digest(config_dict: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the resolved configuration (canonical JSON: sorted keys, no spaces)."""
    from .text import json_safe

    text = json.dumps(json_safe(config_dict), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --- config.toml -----------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any, where: str = "value") -> str:
    """``value`` as a TOML value (what follows ``KEY =``, or ``--set KEY=``); ``where`` names it in errors."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item, where) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(str(k))} = {toml_value(v, where)}" for k, v in value.items() if v is not None) + "}"
    raise ConfigError(f"cannot write {where} = {value!r} ({type(value).__name__}) as TOML")


def _body(table: dict[str, Any], where: str) -> list[str]:
    return [f"{_key(str(key))} = {toml_value(value, f'{where}.{key}')}" for key, value in table.items()
            if value is not None]  # TOML has no null: an unset option is left out (its default applies)


def to_toml(config_dict: dict[str, Any]) -> str:
    """The resolved configuration (:meth:`ExperimentConfig.to_dict`) as TOML that ``--config`` reads back.

    Dicts become tables, lists of dicts arrays of tables (``[[solvers]]``), dicts inside a
    table inline tables (e.g. ``optimizer_options``); floats are written with ``repr`` (they
    read back to the same value); ``None`` values are left out (TOML has no null).
    """
    lines: list[str] = []
    plain = {k: v for k, v in config_dict.items()
             if not isinstance(v, dict) and not (isinstance(v, list) and v and all(isinstance(i, dict) for i in v))}
    lines += _body(plain, "")
    for key, value in config_dict.items():
        if key in plain:
            continue
        if isinstance(value, dict):
            lines += ["", f"[{_key(key)}]", *_body(value, key)]
        else:
            for item in value:
                lines += ["", f"[[{_key(key)}]]", *_body(item, key)]
    return "\n".join(lines).lstrip("\n") + "\n"


# --- provenance ------------------------------------------------------------------------------------

_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_revision(cwd: str | Path | None = None) -> dict[str, Any] | None:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        top = git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": revision, "dirty": dirty, "root": top}


def _plugins(registry: Any) -> dict[str, dict[str, Any]]:
    """Every loaded plugin with its distribution and version (``None`` for one registered in process)."""
    from ..registry import ENTRY_POINT_GROUP

    dists = {}
    with contextlib.suppress(Exception):
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.dist is not None:
                dists.setdefault(ep.name, (ep.dist.name, ep.dist.version))
    out = {}
    for name in getattr(registry, "plugins", []):
        dist, version = dists.get(name, (None, None))
        out[name] = {"distribution": dist, "version": version}
    return out


def provenance(registry: Any = None, argv: list[str] | None = None, cwd: str | Path | None = None) -> dict[str, Any]:
    """What produced a run: versions (du-framework, plugins, jax, jaxlib, flax, optax, numpy), backend and
    devices, the command line (any ``scheme://user:password@`` written ``scheme://user:***@``) and the
    git revision of the current folder's checkout (``None`` outside one)."""
    import sys

    import jax

    from .. import __version__
    from .redact import hidden_argv

    if registry is None:
        from ..registry import get_registry

        registry = get_registry()
    try:
        devices = [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in jax.devices()]
        backend = jax.default_backend()
    except RuntimeError as error:  # no backend could start
        devices, backend = [], f"unavailable ({error})"
    return {
        "du_framework": __version__,
        "plugins": _plugins(registry),
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "python": sys.version.split()[0],
        "backend": backend,
        "devices": devices,
        "command_line": hidden_argv(sys.argv if argv is None else argv),
        "git": _git_revision(cwd),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
