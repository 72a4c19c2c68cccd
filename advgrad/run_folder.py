"""The one output-folder policy of every ``advgrad`` command that writes.

A command writes into a new folder, an empty one, or its own run: a folder whose
``.advgrad-run.json`` marker names the same command and the same config fingerprint.

- **Finished** (the same command on its own finished run): nothing is run; the command says
  where its result is and exits 0. ``--resume`` changes nothing; ``--force`` runs it again.
- **Unfinished** (killed): ``--resume`` continues it (commands that can resume), ``--force``
  starts again; without either it is refused, naming both flags.
- **Anything else** (another config's run, another command's, files that are not
  advgrad's) is refused before any work, naming the files in the way. ``--force`` writes
  anyway, replacing advgrad's own files; a user's file of a name advgrad would write is never
  replaced, even with ``--force``.

One run per folder at a time: the run holds an exclusive lock (`advgrad._io.path_lock`, the
project's one ``flock``) on ``.advgrad.lock`` in the folder, which names the holder's pid and
start time; a second run is refused at once, naming the holder (``shared=True``: workers of
one run share the folder). A run that fails removes the folders it created, if nothing but
advgrad's bookkeeping is in them. Files take the user's umask.

>>> import pathlib, tempfile
>>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> with RunFolder(out, "bench", "f1", files=("report.md",)) as folder:
...     folder.check()
...     folder.open()
...     path = folder.write("report.md", "# done\\n")
...     folder.done()
>>> with RunFolder(out, "bench", "f1", files=("report.md",)) as again:
...     again.check()
...     again.finished
True
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import hashlib
import json
import os
import pathlib
import shutil
from collections.abc import Callable, Iterable
from typing import Any

from advgrad._io import FileTooLargeError, FolderBusyError, atomic_write, path_lock, read_regular

__all__ = [
    "LOCK_FILE",
    "MARKER",
    "REPORT_JSON",
    "STATE_FILE",
    "RunFolder",
    "RunFolderError",
    "check_output_file",
    "fingerprint",
]

STATE_FILE = "state.json"
REPORT_JSON = "report.json"
LOCK_FILE = ".advgrad.lock"
MARKER = ".advgrad-run.json"
_BOOKKEEPING = (LOCK_FILE, MARKER)
_MARKER_LIMIT = 1 << 20


class RunFolderError(Exception):
    """A folder (or file) a command may not write (the command's exit code 2), with why."""


def fingerprint(*parts: Any) -> str:
    """A short hash of what defines a run (its command's config), for the folder marker.

    Parts are JSON-encoded (unknown objects by ``str``); a part that is an existing file's
    path (a ``pathlib.Path``) counts by its content, so an edited model is another run.

    >>> fingerprint("bench", {"eps": 0.1}) == fingerprint("bench", {"eps": 0.1})
    True
    >>> fingerprint("bench", {"eps": 0.1}) == fingerprint("bench", {"eps": 0.2})
    False
    """
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, pathlib.Path) and part.is_file():
            with open(part, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            text = json.dumps(part, sort_keys=True, default=str, allow_nan=False)
            digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _listing(names: Iterable[str], shown: int = 3) -> str:
    """``a, b, c and 2 more``: a few names, then how many others."""
    names = sorted(names)
    text = ", ".join(names[:shown])
    return f"{text} and {len(names) - shown} more" if len(names) > shown else text


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


class RunFolder:
    """The output folder of one command's run: checked, created, locked, marked, tidied.

    Use as a context manager: `check` before any work (`finished` tells whether the run is
    already done), `open` once the config is built (creates the folder, takes the lock,
    checks again under it, marks the run unfinished), `write` for each file, `done` at the
    end. On leaving, the lock is released; on an error, a run that wrote nothing leaves
    nothing: its bookkeeping is removed, and so are the folders it created.

    Args:
        path: The folder.
        command: The command's name (``bench``, ``train``...).
        fingerprint: What defines the run (`fingerprint` of its config): the same command
            with another fingerprint is another run.
        files: The names (shell patterns) of every file and folder the command writes
            there: its own files, which ``--force`` may replace.
        resume: ``--resume`` was given (None: the command cannot resume).
        force: ``--force`` was given.
        shared: Take the lock shared (several workers of one run).
        option: How the user names the folder, for messages (``--out``).
    """

    def __init__(
        self,
        path: pathlib.Path,
        command: str,
        fingerprint: str,
        *,
        files: Iterable[str],
        resume: bool | None = False,
        force: bool = False,
        shared: bool = False,
        option: str = "--out",
    ):
        self.path = pathlib.Path(path)
        self.command = command
        self.fingerprint = fingerprint
        self.files = tuple(files)
        self.resume = resume
        self.force = force
        self.shared = shared
        self.option = option
        self.finished = False  # the same command's finished run: nothing to do
        self.resuming = False  # the same command's unfinished run, continued
        self.created: list[pathlib.Path] = []  # the folders this run made, outermost first
        self._lock: contextlib.ExitStack | None = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        try:
            if kind is not None and self._lock is not None:
                self._remove_if_empty()
        finally:
            if self._lock is not None:
                self._lock.close()  # releases the lock
                self._lock = None

    # ------------------------------------------------------------------------- policy
    def check(self) -> None:
        """Refuse a folder this run may not write (`RunFolderError`); set `finished`."""
        out = self.path
        if out.exists() and not out.is_dir():
            raise RunFolderError(f"{self.option}: {out} exists and is not a folder")
        if not out.is_dir():
            return
        if self._lock is None and (out / LOCK_FILE).is_file():
            self._take_lock(create=False)
        names = {name for name in os.listdir(out) if name not in _BOOKKEEPING}
        marker = self._marker()
        ours = marker is not None and marker.get("command") == self.command
        owned = set(marker.get("files", ())) if marker is not None else set()
        if marker is None and (out / LOCK_FILE).exists():
            owned = set(self.files)  # a run of an earlier advgrad: no marker, its lock file
        own = {name for name in names if _matches(name, owned)}
        in_the_way = {name for name in names - own if _matches(name, self.files)}
        if in_the_way:  # never replaced, not even with --force
            raise RunFolderError(
                f"{out} holds {_listing(in_the_way)}, which advgrad did not write and would "
                f"replace: move them away, or pass a different {self.option}"
            )
        same = ours and marker.get("fingerprint") == self.fingerprint
        if same and marker.get("complete") and not self.force:
            self.finished = True
            return
        if same and (self.resume or self.shared):  # workers join their run (each resumes
            self.resuming = bool(self.resume)  # or refuses its own part: the pipeline's job)
            return
        if same and (self.force or self.resume is None):
            return  # started again (a command that cannot resume simply reruns)
        if self.force or not names:
            return
        if same:
            raise RunFolderError(
                f"{out} holds an unfinished {self.command} run of this config: pass --resume "
                f"to continue it, or --force to start it again"
            )
        if ours:
            problem = f"{out} holds a {self.command} run of another config"
        elif marker is not None:
            problem = f"{out} holds an `advgrad {marker.get('command')}` run"
        else:
            problem = (
                f"{out} is not empty ({_listing(names)}): advgrad writes only into a new or "
                "empty folder, or its own run"
            )
        raise RunFolderError(
            f"{problem}; pass --force to write into it anyway (replacing only advgrad's own "
            f"files), or a different {self.option}"
        )

    def open(self) -> None:
        """Create the folder (if needed), lock it, check it again under the lock, and mark
        the run unfinished (a fresh run first removes its own files' earlier versions)."""
        for _ in range(10):
            self._mkdir()
            if self._lock is not None or self._take_lock(create=True):
                break
        else:  # pragma: no cover - another process keeps removing the folder
            raise RunFolderError(f"could not lock {self.path / LOCK_FILE}")
        self.check()
        if self.finished:
            return
        if not (self.resuming or self.shared):
            self._remove_own()
        self._mark(complete=False)

    def write(self, name: str, content: str | bytes | Callable[[str], None]) -> pathlib.Path:
        """Write one of the run's files (`advgrad._io.atomic_write`); returns its path."""
        if not _matches(name, self.files):
            raise ValueError(f"{name!r} is not among the files of `advgrad {self.command}`")
        path = self.path / name
        atomic_write(path, content)
        return path

    def done(self) -> None:
        """Mark the run finished: the same command again has nothing to do."""
        self._mark(complete=True)

    # ---------------------------------------------------------------------- internals
    def _marker(self) -> dict[str, Any] | None:
        path = self.path / MARKER
        if not path.exists():
            return None
        try:
            marker = json.loads(read_regular(path, _MARKER_LIMIT))
        except (OSError, ValueError, FileTooLargeError):
            marker = None
        files = marker.get("files") if isinstance(marker, dict) else None
        if not (isinstance(files, list) and all(isinstance(f, str) for f in files)):
            raise RunFolderError(
                f"{path}: not advgrad's run marker (damaged or edited): remove it to make "
                f"{self.path} a folder of your own files, or pass a different {self.option}"
            )
        return marker

    def _mark(self, *, complete: bool) -> None:
        marker = {
            "command": self.command,
            "fingerprint": self.fingerprint,
            "complete": complete,
            "files": list(self.files),
        }
        atomic_write(self.path / MARKER, json.dumps(marker, indent=1, sort_keys=True) + "\n")

    def _remove_own(self) -> None:
        """A fresh run (``--force``, or a command that cannot resume) starts without the
        files an earlier run of advgrad's left here; a user's files stay."""
        marker = self._marker()
        if marker is None and not self.force:
            return
        patterns = {*self.files, *(marker["files"] if marker is not None else ())}
        for name in os.listdir(self.path):
            if name in _BOOKKEEPING or not _matches(name, patterns):
                continue
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)

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
            raise RunFolderError(f"{self.option}: {self.path} exists and is not a folder")

    def _take_lock(self, create: bool) -> bool:
        """Take the lock; False when the lock file is gone (none yet, or just removed)."""
        path = self.path / LOCK_FILE
        if not create and not path.is_file():
            return False
        stack = contextlib.ExitStack()
        try:
            fd = stack.enter_context(path_lock(path, shared=self.shared))
        except FolderBusyError:
            raise RunFolderError(
                f"another advgrad run{_lock_holder(path)} is writing to {self.path}: wait for "
                f"it to finish (or stop it), or pass a different {self.option}"
            ) from None
        try:  # a run tidying its folder may have removed the file before we locked it
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is None or not os.path.samestat(os.fstat(fd), current):
            stack.close()
            return False
        if not self.shared:
            started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            holder = json.dumps({"pid": os.getpid(), "started": started}) + "\n"
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, holder.encode(), 0)
        self._lock = stack
        return True

    def _remove_if_empty(self) -> None:
        try:
            marker = self._marker()
        except RunFolderError:
            return
        if marker is not None and marker.get("complete"):
            return
        try:
            if any(name not in _BOOKKEEPING for name in os.listdir(self.path)):
                return
            for name in _BOOKKEEPING:
                (self.path / name).unlink(missing_ok=True)
        except OSError:
            return
        for folder in reversed(self.created):
            try:
                folder.rmdir()
            except OSError:
                break


def check_output_file(
    path: pathlib.Path, *, force: bool, option: str, content: str | bytes | None = None
) -> bool:
    """Refuse to replace an existing file the user names as an output, unless ``force``.

    A run's own folder is `RunFolder`'s; a single file (``--csv FILE``) is written only if
    it is new, or with ``--force`` (the user asked for that very file to be replaced). A
    file that already holds exactly `content` is this command's finished output: True
    (nothing to write), so running a command again is never refused.

    >>> import pathlib, tempfile
    >>> check_output_file(pathlib.Path(tempfile.mkdtemp()) / "new.csv", force=False,
    ...                   option="--csv")
    False
    """
    if not str(path).strip():
        raise RunFolderError(f"{option}: expected a file path, received {str(path)!r}")
    if path.is_dir():
        raise RunFolderError(f"{option}: {path} is a folder, expected a file path")
    if not path.exists() or force:
        return False
    if content is not None and path.is_file():
        data = content.encode() if isinstance(content, str) else content
        with contextlib.suppress(OSError, FileTooLargeError, ValueError):
            if read_regular(path, len(data)) == data:
                return True
    raise RunFolderError(
        f"{option}: {path} exists: choose another name, or pass --force to replace it"
    )


def _lock_holder(path: pathlib.Path) -> str:
    """`` (pid 1234, started ...)`` from a lock file's content, or "" when it is unreadable."""
    try:
        holder = json.loads(read_regular(path, 4096))
        return f" (pid {int(holder['pid'])}, started {holder['started']})"
    except (OSError, ValueError, TypeError, KeyError):
        return ""
