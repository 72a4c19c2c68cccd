"""One atomic write for every file advgrad keeps, one bounded read for every file it is given.

`atomic_write` writes to a temporary file in the target's folder, fsyncs it, renames it over
the target and fsyncs the folder, so a reader (or a run resumed after a crash or a power
cut) sees the old file or the new one, never a part of either.

`read_regular` reads a file a user names (a config, a report) only if it is a regular file
under a size limit: a device (``/dev/zero``), a FIFO (which would block forever), a folder
or an oversized file is refused at once, before anything is read. Callers map its errors
(plain ``ValueError`` subclasses; ``OSError`` for a missing or unreadable file) to their own.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "out" / "a.json"
>>> atomic_write(path, '{"done": true}\\n')
>>> path.read_text()
'{"done": true}\\n'
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "FileTooLargeError",
    "FolderBusyError",
    "NotRegularFileError",
    "atomic_write",
    "folder_lock",
    "json_text",
    "path_lock",
    "read_regular",
]

_CHUNK = 1 << 20


class NotRegularFileError(ValueError):
    """`read_regular` was given a device, a FIFO, a socket or a folder (``path``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        super().__init__(f"not a regular file: {self.path}")


class FileTooLargeError(ValueError):
    """`read_regular` was given a file of ``size`` bytes, over its ``limit``."""

    def __init__(self, path: str | os.PathLike, size: int, limit: int):
        self.path = os.fspath(path)
        self.size = size
        self.limit = limit
        super().__init__(f"file too large: {self.path}: {size} bytes (limit {limit} bytes)")


class FolderBusyError(OSError):
    """`folder_lock` found ``path`` locked: another run is writing it."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        super().__init__(f"folder in use by another run: {self.path}")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `folder` while the block runs.

    Two runs writing the same folder at once would interleave their files; the second one is
    refused at once instead (`FolderBusyError`). The lock is the operating system's
    (``flock`` on the folder itself: no lock file is left behind), so a killed run holds it
    no longer and a resume never finds a stale lock. Where ``fcntl`` is missing (Windows),
    the block runs unlocked.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with folder_lock(folder):
    ...     try:
    ...         with folder_lock(folder):
    ...             pass
    ...     except FolderBusyError:
    ...         print("refused")
    refused
    """
    with path_lock(folder):
        yield


@contextlib.contextmanager
def path_lock(
    path: str | os.PathLike, *, shared: bool = False, wait: bool = False
) -> Iterator[int | None]:
    """Hold an ``flock`` on `path` (a folder, or a lock file) while the block runs.

    Like `folder_lock`, for several runs sharing one folder: `shared` locks coexist with
    each other but not with an exclusive one (`folder_lock`'s, say), and a `path` that is
    not a folder is a lock file, created (empty, and left behind) if missing, so that one
    folder holds one lock per file name. Without `wait`, a held lock is refused at once
    (`FolderBusyError`); with it, the block waits for the lock. Where ``fcntl`` is missing
    (Windows), the block runs unlocked. The block receives the locked descriptor (None
    where unlocked), to write the holder's name into a lock file, say.

    >>> import os, tempfile
    >>> lock = os.path.join(tempfile.mkdtemp(), ".worker.lock")
    >>> with path_lock(lock):
    ...     try:
    ...         with path_lock(lock):
    ...             pass
    ...     except FolderBusyError:
    ...         print("refused")
    refused
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield None
        return
    if os.path.isdir(path):
        fd = os.open(path, os.O_RDONLY)
    else:  # opened for writing: an exclusive lock on NFS needs it
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o666)  # the umask decides, as for any file
    try:
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            raise FolderBusyError(path) from None
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def json_text(value: Any, *, indent: int | None = None, default: Callable | None = None) -> str:
    """`value` as JSON text with sorted keys; non-finite numbers become null (JSON has no
    NaN or Infinity: ``json.dumps`` would write bare ``NaN``).

    >>> import numpy as np
    >>> json_text({"loss": [0.5, float("nan")], "lr": np.float32("inf")})
    '{"loss": [0.5, null], "lr": null}'
    """
    return json.dumps(_finite(value, default), indent=indent, sort_keys=True, allow_nan=False)


def _finite(value: Any, default: Callable | None) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a NumPy scalar
        return _finite(value.item(), default)
    if isinstance(value, Mapping):
        return {k: _finite(v, default) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, default) for v in value]
    if default is None:
        raise TypeError(f"not JSON serializable: {type(value).__name__}")
    return _finite(default(value), None)


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes.

    The file is opened without blocking (``O_NONBLOCK``: a FIFO with no writer opens at
    once) and checked on the opened descriptor (``fstat``: no race with a rename), so
    nothing but a regular file is ever read, and never more than ``limit + 1`` bytes (a file
    that grows while it is read is refused too).

    Args:
        path: The file.
        limit: The largest size accepted, in bytes (an int >= 0).

    Returns:
        The file's content.

    Raises:
        NotRegularFileError: If `path` is a device, a FIFO, a socket or a folder.
        FileTooLargeError: If the file holds more than `limit` bytes.
        OSError: If the file is missing or cannot be opened or read.
        ValueError: If `limit` is not an int >= 0.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = path.write_text("abc")
    >>> read_regular(path, 3)
    b'abc'
    >>> read_regular(path.parent, 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    advgrad._io.NotRegularFileError: not a regular file: ...
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"read_regular: limit must be an int >= 0, received {limit!r}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(path)
        if info.st_size > limit:
            raise FileTooLargeError(path, info.st_size, limit)
        chunks = []
        total = 0
        first = min(limit + 1, info.st_size + 1)  # the whole file in one read, as a rule
        while True:
            chunk = os.read(fd, first if not chunks else min(_CHUNK, limit + 1 - total))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew since fstat
                raise FileTooLargeError(path, max(total, os.fstat(fd).st_size), limit)
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike,
    content: str | bytes | Callable[[str], None],
    *,
    mode: int | None = None,
) -> None:
    """Replace `path` with `content`, atomically and durably (POSIX).

    Args:
        path: The file to write; its folder is created if needed.
        content: Text (UTF-8), bytes, or a function that writes the file at the temporary
            path it is given (``model.save``, say).
        mode: Permissions of the new file. Defaults to what ``open`` gives a new file: 0o666
            less the process's umask (``mkstemp`` alone would leave 0o600).
    """
    path = pathlib.Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=folder)
    try:
        if callable(content):
            os.close(fd)
            content(tmp)
            fd = os.open(tmp, os.O_RDONLY)
        else:
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.chmod(tmp, _default_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException as err:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(err, OSError) and err.filename is None:  # a full disk names no file
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    _fsync_dir(folder)


def _default_mode() -> int:
    """0o666 less the umask: the mode ``open`` gives a new file (a ``umask 077`` is kept)."""
    try:  # Linux names it without changing it (changing it would race other threads)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(folder: pathlib.Path) -> None:
    """Make the rename durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
