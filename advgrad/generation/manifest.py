"""The manifest of a generated data set, and `verify`: are the shards all there and intact?

``manifest.json`` in the output folder says what the run was (``config``: the attack's
``get_config()``, shard size, format, seed, batch size, ``keep_clean``; ``model``: its
weights' SHA-256; ``data``: the SHA-256 of the clean inputs and labels read so far, and per
shard), what the shards hold (``structure`` of the inputs, ``columns`` with dtype and
per-sample shape), the ``versions`` of advgrad, TensorFlow, Keras, NumPy and Python, and
every finished shard (``file``, ``count``, ``first`` sample, ``sha256`` of the file,
``data_sha256`` of its clean data). It is rewritten atomically after every shard, and holds
no timestamp: the same run writes the same bytes. A run of several workers
(`advgrad.generation.workers`) keeps one such file per worker and writes ``manifest.json``
when the last one finishes; until then `read_manifest` (and so `verify` and
`advgrad.load_generated`) refuses the folder, naming the workers still missing.

>>> import tempfile
>>> verify(tempfile.mkdtemp())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
advgrad._validation.ArgumentError: Invalid value for argument `out_dir`: expected a folder ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Any

from advgrad._io import atomic_write, read_regular
from advgrad._validation import ArgumentError, invalid
from advgrad.generation.shards import count_records
from advgrad.generation.workers import Share, unfinished

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "VerifyResult",
    "differences",
    "file_sha256",
    "read_manifest",
    "verify",
    "write_manifest",
]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "advgrad.generation"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 28
_EXPECTED = "a folder written by advgrad.generate (holding its manifest.json)"


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(out_dir: pathlib.Path, manifest: dict[str, Any], name: str = MANIFEST) -> None:
    """Replace the manifest (or the worker manifest `name`) atomically (sorted keys, fixed
    layout: the same bytes each run)."""
    atomic_write(out_dir / name, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def read_manifest(
    out_dir: str | os.PathLike, argument: str = "out_dir", share: Share | None = None
) -> dict[str, Any]:
    """The manifest of `out_dir` (or of its worker `share`), checked to be one `generate` writes.

    Raises:
        ArgumentError: Naming `argument`, if there is none (saying which workers are missing
            in a folder of several workers), or it cannot be read or parsed, or is not an
            advgrad manifest of this version.
    """
    name = MANIFEST if share is None else share.file
    path = pathlib.Path(out_dir) / name

    def refuse(why: str) -> ArgumentError:
        received = repr(str(out_dir))
        return ArgumentError(
            argument,
            f"expected {_EXPECTED}, received {argument}={received}, {why}",
            expected=_EXPECTED,
            received=received,
        )

    if not path.exists():
        workers = unfinished(out_dir) if share is None and pathlib.Path(out_dir).is_dir() else None
        raise refuse(workers or f"which holds no {name}.")
    try:
        saved = json.loads(read_regular(path, MAX_MANIFEST_BYTES).decode("utf-8"))
    except (OSError, ValueError) as err:
        raise refuse(f"whose {name} cannot be read ({err}).") from None
    if not isinstance(saved, dict) or saved.get("format") != MANIFEST_FORMAT:
        raise refuse(f"whose {name} is not an advgrad.generate manifest.")
    if saved.get("version") != MANIFEST_VERSION:
        raise refuse(
            f"whose manifest has version {saved.get('version')!r}; this advgrad reads "
            f"version {MANIFEST_VERSION}."
        )
    for key, kind in (("config", dict), ("model", dict), ("data", dict), ("shards", list)):
        if not isinstance(saved.get(key), kind):
            raise refuse(f"whose {name} is damaged ({key!r} missing or of the wrong type).")
    numbers = (
        range(len(saved["shards"]))
        if share is None
        else range(share.index, share.count * len(saved["shards"]), share.count)
    )  # every shard in order, or a worker's: i, i + N, ...
    for number, entry in zip(numbers, saved["shards"], strict=True):
        if not isinstance(entry, dict) or entry.get("index") != number:
            raise refuse(f"whose {name} is damaged (shard entry {number}).")
    worker = saved.get("worker")
    if share is not None and (not isinstance(worker, dict) or worker.get("count") != share.count):
        raise refuse(f"whose {name} is damaged ('worker' missing or wrong).")
    return saved


def differences(saved: dict[str, Any], config: dict[str, Any], model_sha: str) -> list[str]:
    """What differs between a saved manifest and this run: the names of the `generate`
    arguments (``attack``, ``shard_size``, ``format``, ``seed``, ``batch_size``,
    ``keep_clean``) and ``model`` (its weights)."""
    old = saved["config"]
    names = [k for k in config if k not in old or old[k] != config[k]]
    names += [k for k in old if k not in config]
    if saved["model"].get("weights_sha256") != model_sha:
        names.append("model")
    return names


@dataclasses.dataclass
class VerifyResult:
    """What `verify` found.

    Attributes:
        ok: True when the run is complete and every shard is present and intact.
        complete: Whether the run that wrote the folder finished.
        shards: Shards the manifest lists.
        samples: Samples they hold (per the manifest).
        missing: Indices of the listed shards whose file is gone.
        corrupt: Indices of the listed shards whose checksum or sample count is wrong.
        problems: One line per missing or corrupt shard, saying what is wrong.
    """

    ok: bool
    complete: bool
    shards: int
    samples: int
    missing: list[int]
    corrupt: list[int]
    problems: list[str]

    @property
    def bad(self) -> list[int]:
        """The missing and corrupt shards, in order: what a resume regenerates."""
        return sorted(self.missing + self.corrupt)


def check_shards(out_dir: pathlib.Path, manifest: dict[str, Any]) -> VerifyResult:
    """Re-check every shard the manifest lists: file present, SHA-256 and sample count."""
    fmt = manifest["config"]["format"]
    missing, corrupt, problems = [], [], []
    for entry in manifest["shards"]:
        index, path = entry["index"], out_dir / entry["file"]
        if not path.is_file():
            missing.append(index)
            problems.append(f"shard {index} ({entry['file']}): missing")
            continue
        try:
            digest = file_sha256(path)
            count = count_records(path, fmt) if digest == entry["sha256"] else None
        except (OSError, ValueError) as err:
            corrupt.append(index)
            problems.append(f"shard {index} ({entry['file']}): unreadable ({err})")
            continue
        if digest != entry["sha256"]:
            corrupt.append(index)
            problems.append(f"shard {index} ({entry['file']}): checksum mismatch")
        elif count != entry["count"]:
            corrupt.append(index)
            problems.append(f"shard {index}: {count} samples, the manifest says {entry['count']}")
    complete = bool(manifest.get("complete"))
    return VerifyResult(
        ok=complete and not missing and not corrupt,
        complete=complete,
        shards=len(manifest["shards"]),
        samples=sum(int(e["count"]) for e in manifest["shards"]),
        missing=missing,
        corrupt=corrupt,
        problems=problems,
    )


def verify(out_dir: str | os.PathLike) -> VerifyResult:
    """Re-check a generated data set: every shard's SHA-256 and sample count.

    A missing or corrupt shard is listed (``missing``, ``corrupt``, ``problems``); the next
    ``generate(..., resume=True)`` into the folder regenerates exactly those (and finishes an
    incomplete run).

    Args:
        out_dir: The folder `advgrad.generate` wrote.

    Returns:
        A `VerifyResult`; ``result.ok`` is True when the run is complete and intact.

    Raises:
        ArgumentError: Naming `out_dir`, if it holds no readable manifest (a run of several
            workers that has not finished: naming the workers and shards still missing).

    >>> import tempfile, numpy as np
    >>> from advgrad import data, zoo
    >>> from advgrad.attacks import FGSM
    >>> from advgrad.generation import generate
    >>> ds, out = data.digits(), tempfile.mkdtemp()
    >>> _ = generate(zoo.load("digits-cnn"), (ds.x_test[:20], ds.y_test[:20]),
    ...              FGSM(eps=0.1, bounds=ds.bounds), out, shard_size=8, format="npz")
    >>> result = verify(out)
    >>> result.ok, result.shards, result.samples
    (True, 3, 20)
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise invalid("out_dir", "a folder path (str or os.PathLike)", out_dir)
    manifest = read_manifest(out_dir)
    return check_shards(pathlib.Path(out_dir), manifest)
