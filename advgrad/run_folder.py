"""The output folder of one ``advgrad bench`` run: what may be written into, one run at a time.

A run writes only into a new folder, an empty one, or (``resume``) a folder that holds its
own ``state.json``; ``force`` writes anyway, replacing only advgrad's own files. While it runs
it holds an exclusive ``flock`` on ``.advgrad.lock`` in the folder (holder's pid and start
time inside), so a second run into the same folder fails at once, naming the holder. A run
that fails removes the folders it created, if nothing but the lock file is in them.

>>> import pathlib, tempfile
>>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> with RunFolder(out, resume=False, force=False) as folder:
...     folder.check()
...     folder.open()
...     sorted(p.name for p in out.iterdir())
['.advgrad.lock']
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pathlib
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, runs are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "REPORT_JSON", "STATE_FILE", "RunFolder", "RunFolderError"]

STATE_FILE = "state.json"
REPORT_JSON = "report.json"
LOCK_FILE = ".advgrad.lock"


class RunFolderError(Exception):
    """A folder a run may not write into (the command's exit code 2), with the reason."""


def _listing(names: list[str], shown: int = 3) -> str:
    """``a, b, c and 2 more``: a few names, then how many others."""
    text = ", ".join(names[:shown])
    return f"{text} and {len(names) - shown} more" if len(names) > shown else text


class RunFolder:
    """The output folder of one ``bench`` run: checked, created, locked, tidied on failure.

    Use as a context manager: `check` before any work (locks the folder if a lock file is
    already there), `open` once the config is built (creates the folder, takes the lock and
    checks again under it). On leaving, the lock is released; on an error, a folder this run
    created is removed again if nothing but the lock file is in it.
    """

    def __init__(self, path: pathlib.Path, *, resume: bool, force: bool):
        self.path = path
        self.resume = resume
        self.force = force
        self.created: list[pathlib.Path] = []  # the folders this run made, outermost first
        self._fd: int | None = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        try:
            if kind is not None and self._fd is not None and self.path in self.created:
                self._remove_if_empty()
        finally:
            if self._fd is not None:
                os.close(self._fd)  # releases the lock
                self._fd = None

    def check(self) -> None:
        """Refuse a folder that another run is writing to, or that holds files not ours."""
        out = self.path
        if out.exists() and not out.is_dir():
            raise RunFolderError(f"--out: {out} exists and is not a folder")
        if not out.is_dir():
            return
        if self._fd is None:
            self._lock(create=False)
        names = sorted(name for name in os.listdir(out) if name != LOCK_FILE)
        if self.force or not names:
            return
        if not self.resume:
            existing = [name for name in (STATE_FILE, REPORT_JSON) if name in names]
            if existing:
                raise RunFolderError(
                    f"{out} already holds a run ({', '.join(existing)}); pass --resume to "
                    "continue it, or a different --out"
                )
            problem = (
                f"{out} is not empty ({_listing(names)}): advgrad writes only into a new or "
                "empty folder"
            )
        elif STATE_FILE in names:
            return  # this config's own run, as evaluate checks by the state's fingerprint
        else:
            problem = f"{out} holds no {STATE_FILE} to resume but other files ({_listing(names)})"
        raise RunFolderError(
            f"{problem}; pass --force to write into it anyway (replacing only advgrad's own "
            "files), or a different --out"
        )

    def open(self) -> None:
        """Create the folder (if needed), lock it, and check it again under the lock."""
        for _ in range(10):
            self._mkdir()
            if self._fd is not None or self._lock(create=True):
                break
        else:  # pragma: no cover - another process keeps removing the folder
            raise RunFolderError(f"could not lock {self.path / LOCK_FILE}")
        self.check()

    def _mkdir(self) -> None:
        missing = []
        folder = self.path
        while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            if folder not in self.created:
                self.created.append(folder)
        if not self.path.is_dir():
            raise RunFolderError(f"--out: {self.path} exists and is not a folder")

    def _lock(self, create: bool) -> bool:
        """Take the lock; False when the lock file is gone (none yet, or just removed)."""
        if fcntl is None:  # pragma: no cover - no flock on this platform: no locking
            return True
        path = self.path / LOCK_FILE
        flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise RunFolderError(f"another advgrad run{holder} is writing to {self.path}") from None
        except BaseException:
            os.close(fd)
            raise
        try:  # a run tidying its folder may have removed the file before we locked it
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is None or not os.path.samestat(os.fstat(fd), current):
            os.close(fd)
            return False
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        holder = json.dumps({"pid": os.getpid(), "started": started}) + "\n"
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
            os.fchmod(fd, 0o644)
        self._fd = fd
        return True

    def _remove_if_empty(self) -> None:
        try:
            if any(name != LOCK_FILE for name in os.listdir(self.path)):
                return
            (self.path / LOCK_FILE).unlink(missing_ok=True)
        except OSError:
            return
        for folder in reversed(self.created):
            try:
                folder.rmdir()
            except OSError:
                break


def _lock_holder(fd: int) -> str:
    """`` (pid 1234, started ...)`` from a lock file's content, or "" when it is unreadable."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0))
        return f" (pid {int(holder['pid'])}, started {holder['started']})"
    except (OSError, ValueError, TypeError, KeyError):
        return ""
