"""Reading untrusted ``.npy`` and ``.npz`` files: every header checked before anything is allocated.

``numpy.load`` trusts a file's header: one that claims 10^12 elements makes it
try to allocate terabytes before it notices that the file is 200 bytes long.
Here the header is parsed with :mod:`numpy.lib.format` on the open file, and
its dtype (plain, no objects, of the kinds the caller allows), its shape and
``shape x itemsize`` are checked against the bytes the file (or the archive
member) actually holds and against a limit (:data:`DEFAULT_LIMIT`, 2 GiB)
before the data is read. Archives are opened with :mod:`zipfile`: member names
that look like paths, duplicate names, foreign members, declared sizes above
the limit and compressed sizes larger than the archive are refused before a
member is read, and the CRC of every member is checked. Pickle is never used.

Every failure (a bad magic string, a truncated file, a flipped byte, a zlib
error, a lying header) raises the caller's error class (a
:class:`~du_framework.errors.DUError`) with a message naming the file and,
for archives, the member.
"""

from __future__ import annotations

import os
import stat
import struct
import tokenize
import zipfile
import zlib
from math import prod
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npformat

from ..errors import DUError, ProblemDataError

__all__ = ["DEFAULT_LIMIT", "REAL_KINDS", "file_sha256", "read_limited", "read_npy", "read_npz"]

DEFAULT_LIMIT = 2 * 1024**3
"""Largest array (bytes of data) read by default; larger headers are refused before reading."""

REAL_KINDS = "iuf"
"""dtype kinds of real numbers (signed and unsigned integers, floats)."""

_MAX_HEADER = 10_000  # bytes of an .npy header (numpy's own default limit)
_MAX_MEMBERS = 10_000
# Every error an archive or a damaged .npy stream can raise while it is read.
# (numpy parses a header with ast and, for version 1.0, tokenize: a header cut short raises
# tokenize.TokenError, which the list above missed; a deeply nested one RecursionError, a RuntimeError.)
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
                RuntimeError, SyntaxError, KeyError, TypeError, OverflowError, UnicodeDecodeError,
                tokenize.TokenError)


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)  # pragma: no cover


def _check_header_length(handle: BinaryIO, version: tuple[int, int], available: int, where: str,
                         error: type[DUError]) -> None:
    """Refuse a header length above the limit or beyond the stream before numpy reads (and allocates) it."""
    field = {(1, 0): ("<H", 2), (2, 0): ("<I", 4)}.get(version)
    if field is None:
        return  # an unsupported version: refused just after, with its own message
    start = handle.tell()
    raw = handle.read(field[1])
    handle.seek(start)
    if len(raw) < field[1]:
        return  # truncated: numpy's own read reports it
    length = struct.unpack(field[0], raw)[0]
    if length > _MAX_HEADER or start + field[1] + length > available:
        raise error(f"{where} is not a readable .npy array: its header claims {length} bytes, more than the "
                    f"{min(_MAX_HEADER, max(available - start - field[1], 0))} it may have; refused before reading")


def _read_array(handle: BinaryIO, available: int, where: str, error: type[DUError], *, kinds: str,
                limit: int) -> np.ndarray:
    """The array of the ``.npy`` stream ``handle`` holding ``available`` bytes, checked before reading."""
    try:
        version = npformat.read_magic(handle)
        _check_header_length(handle, version, available, where, error)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(handle, max_header_size=_MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(handle, max_header_size=_MAX_HEADER)
        else:
            raise error(f"{where}: .npy format version {version[0]}.{version[1]} is not supported "
                        f"(save it with numpy.save)")
        header_bytes = handle.tell()
    except DUError:
        raise
    except _READ_ERRORS as failure:
        raise error(f"{where} is not a readable .npy array ({type(failure).__name__}: {failure}); "
                    f"save it with numpy.save") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise error(f"{where} is not a readable .npy array: it holds {dtype} values (objects or records); only "
                    f"plain numeric arrays are read (objects would need pickle, which is never used)")
    if dtype.kind not in kinds:
        names = {"i": "integer", "u": "unsigned", "f": "float", "c": "complex", "b": "bool", "U": "string",
                 "S": "bytes"}
        allowed = ", ".join(names.get(kind, kind) for kind in kinds)
        raise error(f"{where} holds {dtype} values; expected {allowed}")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise error(f"{where}: the header's shape {shape!r} is not a tuple of non-negative integers")
    count = prod(shape)  # Python integers: no overflow
    nbytes = count * dtype.itemsize
    # The extent ignoring empty axes: (0, 2**60) holds nothing, but numpy refuses to make it.
    extent = max(nbytes, prod(d for d in shape if d) * dtype.itemsize)
    if extent > limit:
        raise error(f"{where}: the header declares a {' x '.join(map(str, shape)) or 'scalar'} {dtype} array "
                    f"({_size(extent)}{' along its non-empty axes' if extent != nbytes else ''}), above the limit "
                    f"of {_size(limit)}; refused before reading")
    held = available - header_bytes
    if nbytes != held:
        raise error(f"{where}: the header declares a {' x '.join(map(str, shape)) or 'scalar'} {dtype} array "
                    f"({nbytes} bytes of data) but the file holds {max(held, 0)} bytes after the header; "
                    f"the file is truncated or corrupt")
    try:
        data = handle.read(nbytes)
        extra = handle.read(1)  # reaches the end of an archive member, where zipfile checks its CRC
    except _READ_ERRORS as failure:
        raise error(f"{where} is corrupt ({type(failure).__name__}: {failure})") from None
    if len(data) != nbytes or extra:
        raise error(f"{where}: the data is {len(data) + len(extra)} bytes, the header declares {nbytes}; "
                    f"the file is truncated or corrupt")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.array(array, dtype=dtype.newbyteorder("="), order="C")  # an own, writable, native-order copy


def _regular_file(path: Path, what: str, error: type[DUError]) -> int:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"no {what} at {str(path)!r}") from None
    except OSError as failure:
        raise error(f"{what} {str(path)!r} cannot be read: {failure.strerror or failure}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {str(path)!r} is not a regular file")
    return info.st_size


def read_limited(path: str | os.PathLike, *, limit: int, what: str, error: type[DUError] = ProblemDataError,
                 pipes: bool = False, too_large: str = ", more than the {limit} bytes this reader accepts") -> bytes:
    """The bytes of the file at ``path``, refused before reading when it is not a file of at most ``limit`` bytes.

    The one size-checked read of the project: a missing file, a folder, a device or socket, a
    file above ``limit`` (checked on ``stat`` before reading, and again while reading, for a file
    that grows) each raise ``error`` with a message naming ``what`` and the path (``too_large`` ends the
    message on a file above the limit; ``{limit}`` in it is replaced). With ``pipes``, a pipe
    (``--config <(...)``) is read too, up to the same cap.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"cannot read {what} {str(path)!r}: it does not exist") from None
    except OSError as failure:
        raise error(f"cannot read {what} {str(path)!r}: {failure.strerror or failure}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} {str(path)!r} is a folder, not a file")
    if not (stat.S_ISREG(info.st_mode) or (pipes and stat.S_ISFIFO(info.st_mode))):
        kinds = "a regular file or a pipe" if pipes else "a regular file"
        raise error(f"{what} {str(path)!r} is not {kinds} (a device or socket)")
    if info.st_size > limit:
        raise error(f"{what} {str(path)!r} is {info.st_size} bytes" + too_large.format(limit=limit))
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as failure:
        raise error(f"cannot read {what} {str(path)!r}: {failure.strerror or failure}") from None
    if len(data) > limit:
        raise error(f"{what} {str(path)!r} holds more than {limit} bytes" + too_large.format(limit=limit))
    return data


def file_sha256(path: str | os.PathLike, limit: int | None = None) -> str | None:
    """The hex sha256 of the file's bytes, read in chunks; ``None`` when it holds more than ``limit`` bytes
    (a file that grew since its size was checked)."""
    import hashlib

    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            size += len(block)
            if limit is not None and size > limit:
                return None
            digest.update(block)
    return digest.hexdigest()


def read_npy(path: str | os.PathLike, *, error: type[DUError] = ProblemDataError, kinds: str = REAL_KINDS,
             limit: int = DEFAULT_LIMIT, what: str = ".npy file") -> np.ndarray:
    """Read the array of a ``.npy`` file after checking its header against the file.

    Args:
        error: the exception class raised for every failure.
        kinds: the dtype kinds accepted (``numpy.dtype.kind`` letters).
        limit: the largest array, in bytes of data, that is read.
        what: what the file is, for messages ("no {what} at ...").

    Raises:
        error: no such file, not a regular file, a bad or unsupported header, a
            dtype outside ``kinds`` (object arrays always), a shape whose data
            exceeds ``limit`` or differs from the bytes the file holds, or a
            truncated file. The message names the file.
    """
    path = Path(path)
    size = _regular_file(path, what, error)
    try:
        with open(path, "rb") as handle:
            return _read_array(handle, size, repr(str(path)), error, kinds=kinds, limit=limit)
    except OSError as failure:
        raise error(f"{str(path)!r} cannot be read: {failure.strerror or failure}") from None


def _check_member_name(name: str, where: str, error: type[DUError]) -> None:
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\0" in name or ":" in parts[0]
            or any(part in ("", ".", "..") for part in parts)):
        raise error(f"{where}: the archive holds a member named {name!r}, which looks like a path; refused")


def read_npz(path: str | os.PathLike, *, error: type[DUError] = ProblemDataError, kinds: str = REAL_KINDS,
             limit: int = DEFAULT_LIMIT, what: str = ".npz file") -> dict[str, np.ndarray]:
    """Read every array of a ``.npz`` archive (as ``numpy.savez`` writes it), each header checked first.

    Returns the arrays by name (the member name without ``.npy``), in archive order.

    Raises:
        error: no such file; not a zip archive; a member whose name looks like a
            path (``../x.npy``, ``/x.npy``), is duplicated or is not ``.npy``;
            more than 10000 members; a member declaring more than ``limit``
            bytes (alone, or all members together) or a compressed size larger
            than the archive; any member failing :func:`read_npy`'s checks; a
            CRC, zlib or truncation error. The message names the file and member.
    """
    path = Path(path)
    size = _regular_file(path, what, error)
    where = repr(str(path))
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > _MAX_MEMBERS:
                raise error(f"{where} holds {len(members)} members, more than {_MAX_MEMBERS}; refused")
            seen: set[str] = set()
            total = 0
            for info in members:
                name = info.filename
                _check_member_name(name, where, error)
                if name in seen:
                    raise error(f"{where} holds two members named {name!r}; refused")
                seen.add(name)
                if info.is_dir() or not name.endswith(".npy"):
                    raise error(f"{where} holds a member {name!r} that is not a .npy array")
                if info.flag_bits & 0x1:
                    raise error(f"{where}: member {name!r} is encrypted; refused")
                if info.compress_size > size:
                    raise error(f"{where}: member {name!r} declares a compressed size of {info.compress_size} "
                                f"bytes, larger than the archive ({size} bytes); the file is corrupt")
                total += info.file_size
                if info.file_size > limit + _MAX_HEADER or total > limit + _MAX_HEADER * len(seen):
                    raise error(f"{where}: member {name!r} declares {_size(info.file_size)} "
                                f"({_size(total)} for the members so far), above the limit of {_size(limit)}; "
                                f"refused before reading")
            for info in members:
                with archive.open(info) as handle:
                    arrays[info.filename[:-4]] = _read_array(
                        handle, info.file_size, f"{where} (member {info.filename!r})", error, kinds=kinds,
                        limit=limit)
    except DUError:
        raise
    except _READ_ERRORS as failure:
        raise error(f"{where} is not a readable .npz archive ({type(failure).__name__}: {failure})") from None
    return arrays
