"""Generation as N independent workers: who writes which shard, the workers' files, the merge.

Worker ``i`` of ``N`` (``generate(..., worker="i/N")``) writes the shards whose number ``s``
has ``s % N == i``, and records them in its own manifest, ``manifest.worker-i-of-N.json``
(the layout of ``manifest.json`` plus ``worker``: its index, the number of workers and the
total number of shards once known). The workers share nothing but the folder: each reads
all of the data, attacks only the batches that touch its shards (a batch keeps its number,
and so its seed, whoever attacks it), and locks only its own lock file
(``.manifest.worker-i-of-N.lock``). ``manifest.json`` is written by the worker that
finishes last (`merge` of the N worker files, under the short lock ``.manifest.lock``): it
lists every shard as a one-worker run does, plus ``workers: N``. Until then the folder has
no ``manifest.json``, and `unfinished` says what is missing. A run has at most
`MAX_WORKERS` (1024) workers: a ``worker`` over it is refused before any work, and so is a
worker file in a folder that names more (it is not advgrad's), never iterated over.

>>> share = check_worker("1/3")
>>> share.label, share.file, [s for s in range(8) if share.owns(s)]
('1/3', 'manifest.worker-1-of-3.json', [1, 4, 7])
>>> check_worker((3, 3))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
advgrad._validation.ArgumentError: Invalid value for argument `worker`: expected ...
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import numbers
import os
import pathlib
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from advgrad._io import read_regular
from advgrad._validation import ArgumentError, invalid
from advgrad.provenance import sha

__all__ = [
    "MAX_WORKERS",
    "MERGE_LOCK",
    "Share",
    "check_worker",
    "merge",
    "unfinished",
    "worker_files",
]

MAX_WORKERS = 1024
"""The most workers a run has (``N`` of ``worker="i/N"``): enough for any cluster, few
enough that a folder's files are always listed and merged in a blink."""

MERGE_LOCK = ".manifest.lock"
"""The lock file the workers hold, briefly, to claim their file and to merge the manifests."""

_FILE = re.compile(r"^manifest\.worker-(\d{1,30})-of-(\d{1,30})\.json$")
_EXPECTED = f"'i/N' (a string) or a pair (i, N) of ints with 1 <= N <= {MAX_WORKERS} and 0 <= i < N"
_MAX_BYTES = 1 << 28
_SHOWN = 8  # shard numbers listed per worker in a message


@dataclasses.dataclass(frozen=True)
class Share:
    """Worker ``index`` of ``count``: the shards it writes and the names of its files."""

    index: int
    count: int

    def owns(self, shard: int) -> bool:
        """Whether this worker writes shard number `shard`."""
        return shard % self.count == self.index

    @property
    def label(self) -> str:
        """``"i/N"``, as ``--worker`` takes it."""
        return f"{self.index}/{self.count}"

    @property
    def file(self) -> str:
        """The worker's manifest file name: ``manifest.worker-i-of-N.json``."""
        return f"manifest.worker-{self.index}-of-{self.count}.json"

    @property
    def lock(self) -> str:
        """The worker's lock file name (held while it runs: one run per folder and worker)."""
        return f".manifest.worker-{self.index}-of-{self.count}.lock"


def check_worker(worker: Any) -> Share | None:
    """`worker` as a `Share` (None stays None), or an `ArgumentError` naming ``worker``.

    Args:
        worker: None, a string ``"i/N"`` or a pair ``(i, N)`` of ints, ``0 <= i < N``,
            ``N <= MAX_WORKERS`` (1024).
    """
    if worker is None:
        return None
    parts: Any = None
    if isinstance(worker, str):
        match = re.fullmatch(r"\s*(\d{1,20})\s*/\s*(\d{1,20})\s*", worker)
        parts = (int(match[1]), int(match[2])) if match else None
    elif isinstance(worker, (tuple, list)) and len(worker) == 2 and all(map(_is_int, worker)):
        parts = (int(worker[0]), int(worker[1]))
    if parts is None or not (parts[1] >= 1 and 0 <= parts[0] < parts[1] <= MAX_WORKERS):
        raise invalid("worker", _EXPECTED, worker)
    return Share(*parts)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def worker_files(folder: str | os.PathLike) -> dict[Share, pathlib.Path]:
    """The worker manifests in `folder`, by worker.

    Raises:
        ArgumentError: Naming ``out_dir``, if a file of that pattern names a worker that
            advgrad never runs (``i >= N``, or ``N`` over `MAX_WORKERS`): one line, the file
            named, nothing iterated.
    """
    found = {}
    for path in pathlib.Path(folder).iterdir():
        match = _FILE.match(path.name)
        if not match:
            continue
        index, count = int(match[1]), int(match[2])
        if not (0 <= index < count <= MAX_WORKERS) or Share(index, count).file != path.name:
            raise ArgumentError(
                "out_dir",
                f"{str(folder)!r} holds {path.name}, which names worker {match[1]} of "
                f"{match[2]}: advgrad runs at most {MAX_WORKERS} workers, numbered 0..N-1, "
                "so the file is not one it wrote: remove it, or pass another folder.",
            )
        found[Share(index, count)] = path
    return dict(sorted(found.items(), key=lambda kv: (kv[0].count, kv[0].index)))


def _shards(numbers: Iterable[int], total: int | None = None) -> str:
    """The first few of `numbers` (`total` of them: ``len(numbers)`` unless given)."""
    total = len(numbers) if total is None else total
    shown = ", ".join(str(s) for s in itertools.islice(numbers, _SHOWN))
    return shown + (f", ... ({total} in all)" if total > _SHOWN else "")


def unfinished(folder: str | os.PathLike) -> str | None:
    """What a folder of workers still lacks, in words (None: no worker files in it).

    >>> import tempfile
    >>> unfinished(tempfile.mkdtemp()) is None
    True
    """
    files = worker_files(folder)
    if not files:
        return None
    counts = sorted({share.count for share in files})
    if len(counts) > 1:
        return (
            f"which holds the files of runs with {' and '.join(map(str, counts))} workers "
            "(manifest.worker-*.json): keep one of them, or pass another folder."
        )
    (count,) = counts
    saved: dict[int, Any] = {}
    for share, path in files.items():
        try:
            saved[share.index] = json.loads(read_regular(path, _MAX_BYTES).decode("utf-8"))
        except (OSError, ValueError):
            saved[share.index] = None
    totals = [
        m["worker"].get("shards")
        for m in saved.values()
        if isinstance(m, dict) and isinstance(m.get("worker"), dict)
    ]
    total = next((t for t in totals if isinstance(t, int) and not isinstance(t, bool)), None)
    missing = []
    for index in range(count):  # count <= MAX_WORKERS (`worker_files`)
        share, entry = Share(index, count), saved.get(index, "absent")
        mine = None if total is None else range(index, max(total, 0), count)  # never listed
        if entry == "absent":
            text = "not started" + ("" if not mine else f" (shards {_shards(mine)})")
        elif not isinstance(entry, dict) or not isinstance(entry.get("shards"), list):
            text = f"its {share.file} is damaged: resume it"
        elif entry.get("complete"):
            continue
        else:
            done = {e.get("index") for e in entry["shards"] if isinstance(e, dict)}
            text = f"unfinished, {len(done)} shard(s) written"
            if mine is not None:
                left = len(mine) - sum(1 for s in done if _is_int(s) and s in mine)
                if left > 0:
                    todo = (s for s in mine if s not in done)  # lazily: the first few
                    text += f", shards {_shards(todo, left)} to write"
        missing.append(f"worker {share.label}: {text}")
    if not missing:
        return (
            f"a run of {count} workers that have all finished, but whose manifest.json was "
            "not written: resume any worker (resume=True) to write it."
        )
    return (
        f"a run of {count} workers that has not finished ({'; '.join(missing)}): manifest.json "
        f"is written when the last worker finishes; run the missing ones "
        f"(worker='i/{count}', resume=True for an unfinished one)."
    )


def merge(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The one manifest of a folder from its N finished workers' manifests, in worker order.

    The same as a one-worker run's (every shard, in order; the data's digest), plus
    ``workers: N``.

    Raises:
        ArgumentError: If the workers ran different configs or models, or read different
            data (named), or their shards do not add up to the data.
    """
    first = manifests[0]
    count = len(manifests)
    for index, other in enumerate(manifests[1:], 1):
        for key in ("config", "model", "structure", "columns", "data"):
            if other[key] != first[key]:
                argument = {"structure": "data", "columns": "data"}.get(key, key)
                raise ArgumentError(
                    argument,
                    f"workers 0/{count} and {index}/{count} differ in their {key}: run every "
                    "worker with the same data, config and model (pass another out_dir).",
                )
    shards = sorted((e for m in manifests for e in m["shards"]), key=lambda e: e["index"])
    total = -(-int(first["data"]["samples"]) // int(first["config"]["shard_size"]))
    digest = sha(*(e["data_sha256"] for e in shards))
    in_order = len(shards) == total and all(e["index"] == k for k, e in enumerate(shards))
    if not in_order or digest != first["data"]["sha256"]:
        raise ArgumentError(
            "out_dir",
            f"the {count} workers' files list shards that do not add up to the data "
            f"({total} shards): resume each worker (resume=True) to write the missing ones.",
        )
    merged = {k: v for k, v in first.items() if k != "worker"}
    merged.update(shards=shards, complete=True, workers=count)
    return merged
