"""One atomic write for every file advgrad keeps: zoo models, reports, resumable state.

`atomic_write` writes to a temporary file in the target's folder, fsyncs it, renames it over
the target and fsyncs the folder, so a reader (or a run resumed after a crash or a power
cut) sees the old file or the new one, never a part of either.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "out" / "a.json"
>>> atomic_write(path, '{"done": true}\\n')
>>> path.read_text()
'{"done": true}\\n'
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
from collections.abc import Callable

__all__ = ["atomic_write"]


def atomic_write(
    path: str | os.PathLike,
    content: str | bytes | Callable[[str], None],
    *,
    mode: int = 0o644,
) -> None:
    """Replace `path` with `content`, atomically and durably (POSIX).

    Args:
        path: The file to write; its folder is created if needed.
        content: Text (UTF-8), bytes, or a function that writes the file at the temporary
            path it is given (``model.save``, say).
        mode: Permissions of the new file (``mkstemp`` would leave 0600). Defaults to 0o644.
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
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


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
