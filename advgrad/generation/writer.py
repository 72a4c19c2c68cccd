"""Shard buffers, the shard files, and the background thread, so that writing overlaps the attack.

`Layout` names the columns of a shard from the first batch. A `ShardBuffer` collects one
shard's rows (batches may straddle shards) and the SHA-256 of its clean data. `ShardFiles`
writes a full buffer atomically (temporary name, fsync, rename: `advgrad._io.atomic_write`),
records its checksum and rewrites the manifest. `Background` runs calls in order on one
thread behind a bounded queue: `generate` hands it each attacked batch (predictions, norms,
buffers, files), so all of that overlaps the next batch's attack, and memory holds one
shard being filled plus a couple of batches, whatever the data size.

>>> import numpy as np
>>> from advgrad.nest import Structure
>>> layout = Layout.of(Structure("single", ("image",)), {"image": np.zeros((2, 3), "f4")},
...                    np.zeros(2, "i8"), ("image",), keep_clean=False)
>>> list(layout.columns)[3:]
['clean_correct', 'adv_correct', 'clean_class', 'adv_class', 'norm/image']
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from advgrad._io import atomic_write
from advgrad.generation.manifest import CLASS_COLUMNS, MANIFEST, file_sha256, write_manifest
from advgrad.generation.shards import shard_name, write_shard
from advgrad.nest import Structure
from advgrad.provenance import sha

__all__ = ["Background", "Layout", "ShardBuffer", "ShardFiles"]

NORM_DTYPE = np.float32


@dataclasses.dataclass(frozen=True)
class Layout:
    """The columns of every shard: name -> (dtype, per-sample shape), in file order.

    Attributes:
        structure: How the data gave the inputs (single, list or dict, and their names).
        names: The inputs in the model's order.
        perturbed: The inputs the attack perturbs (each has a ``norm/<name>`` column).
        columns: ``x_adv/<name>`` per input, ``clean/<name>`` (with ``keep_clean``), ``y``,
            ``index``, ``clean_correct``, ``adv_correct``, ``clean_class``, ``adv_class``,
            ``norm/<name>`` per perturbed input.
    """

    structure: Structure
    names: tuple[str, ...]
    perturbed: tuple[str, ...]
    columns: dict[str, tuple[np.dtype, tuple[int, ...]]]

    @classmethod
    def of(
        cls,
        structure: Structure,
        leaves: dict[str, np.ndarray],
        y: np.ndarray,
        perturbed: tuple[str, ...],
        keep_clean: bool,
    ) -> Layout:
        """The layout of a run from its first batch (inputs by name, in model order)."""
        columns: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        spec = {n: (v.dtype, tuple(v.shape[1:])) for n, v in leaves.items()}
        for name in leaves:
            columns[f"x_adv/{name}"] = spec[name]
        if keep_clean:
            for name in leaves:
                columns[f"clean/{name}"] = spec[name]
        columns["y"] = (y.dtype, tuple(y.shape[1:]))
        columns["index"] = (np.dtype(np.int64), ())
        columns["clean_correct"] = (np.dtype(bool), ())
        columns["adv_correct"] = (np.dtype(bool), ())
        for key in CLASS_COLUMNS:
            columns[key] = (np.dtype(np.int64), ())
        for name in perturbed:
            columns[f"norm/{name}"] = (np.dtype(NORM_DTYPE), ())
        return cls(structure, tuple(leaves), tuple(perturbed), columns)

    def to_manifest(self) -> dict[str, Any]:
        """``structure`` and ``columns`` as the manifest holds them."""
        return {
            "structure": {"kind": self.structure.kind, "names": list(self.structure.names)},
            "columns": {
                k: {"dtype": dtype.str, "shape": list(shape)}
                for k, (dtype, shape) in self.columns.items()
            },
        }

    def mismatch(self, leaves: dict[str, np.ndarray], y: np.ndarray) -> str | None:
        """What about a later batch differs from this layout (None: nothing)."""
        for name in self.names:
            dtype, shape = self.columns[f"x_adv/{name}"]
            value = leaves[name]
            if value.dtype != dtype or tuple(value.shape[1:]) != shape:
                return f"input {name!r}: {value.dtype}{tuple(value.shape[1:])}"
        dtype, shape = self.columns["y"]
        if y.dtype != dtype or tuple(y.shape[1:]) != shape:
            return f"labels: {y.dtype}{tuple(y.shape[1:])}"
        return None


class ShardBuffer:
    """One shard's rows as they arrive, and the digest of its clean data.

    Args:
        index: The shard's number.
        first: Its first sample (``index * shard_size``).
        size: Its capacity (``shard_size``).
        layout: The run's `Layout`.
        keep: Keep the rows (a shard to write); False: only digest its data (a shard
            already written, checked on resume).
    """

    def __init__(self, index: int, first: int, size: int, layout: Layout, keep: bool):
        self.index, self.first, self.size, self.layout = index, first, size, layout
        self.filled = 0
        self.arrays = (
            {k: np.empty((size, *shape), dtype) for k, (dtype, shape) in layout.columns.items()}
            if keep
            else None
        )
        self._hashes = {name: hashlib.sha256() for name in (*layout.names, "y")}

    def add(self, clean: dict[str, np.ndarray], y: np.ndarray, columns: Any, lo: int, hi: int):
        """Append rows ``lo:hi`` of a batch: its clean inputs and labels (digested) and, when
        kept, its shard `columns` (key -> batch array)."""
        for name in self.layout.names:
            self._hashes[name].update(np.ascontiguousarray(clean[name][lo:hi]).tobytes())
        self._hashes["y"].update(np.ascontiguousarray(y[lo:hi]).tobytes())
        if self.arrays is not None:
            stop = self.filled + hi - lo
            for key, array in self.arrays.items():
                array[self.filled : stop] = columns[key][lo:hi]
        self.filled += hi - lo

    @property
    def full(self) -> bool:
        return self.filled == self.size

    def data_sha256(self) -> str:
        """SHA-256 of the shard's clean inputs (name, dtype, shape, bytes) and labels."""
        parts = []
        for name in (*self.layout.names, "y"):
            dtype, shape = self.layout.columns["y" if name == "y" else f"x_adv/{name}"]
            parts += [name, f"{dtype.str}{shape}", self._hashes[name].hexdigest()]
        return sha(*parts)


class Background:
    """Runs calls on one background thread, in order, with a bounded queue.

    `submit` blocks while `depth` calls wait, so the work queued stays bounded; an error on
    the thread is raised in the caller at its next `submit` or at `finish` (later calls are
    then skipped).

    >>> done = []
    >>> worker = Background(depth=1)
    >>> worker.submit(done.append, 1); worker.submit(done.append, 2); worker.finish()
    >>> done
    [1, 2]
    """

    def __init__(self, depth: int = 1):
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="advgrad-generate", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; raise an error the thread met."""
        self._put((fn, args))

    def finish(self) -> None:
        """Wait for every queued call; raise the thread's error, if any."""
        self._put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop after the calls already queued (on an error in the caller)."""
        if self._thread.is_alive():
            self._put(None, check=False)
            self._thread.join()

    def _put(self, item: Any, check: bool = True) -> None:
        while True:
            if check and self.error is not None:
                raise self.error
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    return

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain: the caller raises the error at its next submit
            fn, args = item
            try:
                fn(*args)
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                self.error = err


class ShardFiles:
    """Writes shards into the output folder and keeps its manifest (one thread at a time).

    Args:
        out_dir: The output folder.
        manifest: The manifest to keep up to date.
        fmt: The shard format.
        name: The manifest's file name (a worker's: ``manifest.worker-i-of-N.json``).
    """

    def __init__(
        self, out_dir: pathlib.Path, manifest: dict[str, Any], fmt: str, name: str = MANIFEST
    ):
        self.out_dir, self.manifest, self.fmt = out_dir, manifest, fmt
        self.named = {} if name == MANIFEST else {"name": name}
        self.written = 0

    def write(self, buffer: ShardBuffer | None, updates: dict[str, Any]) -> None:
        """Write `buffer` (full, or the last) atomically, then apply `updates` to the
        manifest and rewrite it (None: only the updates)."""
        self.manifest.update(updates)
        if buffer is not None:
            name = shard_name(buffer.index, self.fmt)
            digest: dict[str, str] = {}

            def content(tmp: str) -> None:
                write_shard(tmp, buffer.arrays, buffer.filled, self.fmt)
                digest["sha256"] = file_sha256(tmp)

            try:
                atomic_write(self.out_dir / name, content)
            except OSError as err:
                raise OSError(
                    err.errno,
                    f"advgrad.generate could not write shard {buffer.index} to "
                    f"{self.out_dir / name} ({err.strerror or err}); nothing was left under "
                    "that name: free space or fix the folder, then resume",
                ) from err
            entry = {
                "index": buffer.index,
                "file": name,
                "count": buffer.filled,
                "first": buffer.first,
                "sha256": digest["sha256"],
                "data_sha256": buffer.data_sha256(),
            }
            shards = self.manifest["shards"]  # by index (a worker's: every N-th)
            at = next((p for p, e in enumerate(shards) if e["index"] >= buffer.index), None)
            if at is None:
                shards.append(entry)
            elif shards[at]["index"] == buffer.index:
                shards[at] = entry
            else:
                shards.insert(at, entry)
        write_manifest(self.out_dir, self.manifest, **self.named)
        if buffer is not None:
            self.written += 1
