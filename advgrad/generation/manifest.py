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

``version`` 2 shards hold the model's predicted classes (``clean_class``, ``adv_class``);
a folder of version 1 (written before them) is still read by `verify` and
`advgrad.load_generated` (without those fields), but never resumed (`check_resumable`).

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
import math
import os
import pathlib
import re
from typing import Any

import numpy as np

from advgrad._io import FileTooLargeError, atomic_write, read_regular
from advgrad._validation import ArgumentError, describe, invalid
from advgrad.generation.shards import FORMATS, parse_shard, shard_limit, shard_name
from advgrad.generation.workers import MAX_WORKERS, Share, unfinished

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "READ_VERSIONS",
    "ShardError",
    "VerifyResult",
    "check_resumable",
    "differences",
    "file_sha256",
    "jsonable",
    "read_manifest",
    "read_shard_checked",
    "verify",
    "write_manifest",
]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "advgrad.generation"
MANIFEST_VERSION = 2
"""The version `generate` writes: 2 added the predicted classes (``CLASS_COLUMNS``)."""
READ_VERSIONS = (1, 2)
"""The versions `read_manifest` reads (to verify and load); only `MANIFEST_VERSION` resumes."""
CLASS_COLUMNS = ("clean_class", "adv_class")
"""The columns of the model's predicted classes (int64, -1: no finite output): version 2."""
MAX_MANIFEST_BYTES = 1 << 28
_EXPECTED = "a folder written by advgrad.generate (holding its manifest.json)"
_FIX = (
    "the file was edited or damaged; regenerate with `advgrad generate CONFIG --force` "
    "(or generate() into an empty folder)"
)
_HEX = re.compile(r"^[0-9a-f]{64}$")
_KINDS = ("single", "list", "dict")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def jsonable(value: Any) -> Any:
    """`value` with every non-finite float as a string (``"inf"``, ``"-inf"``, ``"nan"``):
    what the manifest holds, strict JSON (``bounds: [-inf, inf]`` is ``["-inf", "inf"]``).

    >>> jsonable({"bounds": [float("-inf"), 1.0], "eps": float("nan")})
    {'bounds': ['-inf', 1.0], 'eps': 'nan'}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def write_manifest(out_dir: pathlib.Path, manifest: dict[str, Any], name: str = MANIFEST) -> None:
    """Replace the manifest (or the worker manifest `name`) atomically (sorted keys, fixed
    layout: the same bytes each run; strict JSON: `jsonable`)."""
    text = json.dumps(jsonable(manifest), indent=1, sort_keys=True, allow_nan=False)
    atomic_write(out_dir / name, text + "\n")


def read_manifest(
    out_dir: str | os.PathLike, argument: str = "out_dir", share: Share | None = None
) -> dict[str, Any]:
    """The manifest of `out_dir` (or of its worker `share`), checked to be one `generate` writes.

    Every field `verify`, `load_generated` and a resume use is checked (`_check`): shards
    named as the writer names them (``shard-00003.npz``: no other path), indices in order,
    counts that add up to ``data.samples`` in a complete run, hashes of 64 hex digits.

    Raises:
        ArgumentError: Naming `argument`, if there is none (saying which workers are missing
            in a folder of several workers), or it cannot be read or parsed, or is not an
            advgrad manifest of this version, or is damaged: one line naming the file, the
            entry and the field, e.g. ``manifest.json: shard 3: missing `sha256`: ...``.
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
    version = saved.get("version")
    if not _is_int(version) or version not in READ_VERSIONS:
        raise refuse(
            f"whose manifest has version {version!r}; this advgrad reads versions "
            f"{', '.join(map(str, READ_VERSIONS))}."
        )
    try:
        _check(saved, share)
    except _Damage as damage:
        raise ArgumentError(
            argument,
            f"{path}: {damage}: {_FIX}.",
            expected=_EXPECTED,
            received=repr(str(out_dir)),
        ) from None
    return saved


class _Damage(Exception):
    """A field of a manifest that `generate` never writes (its place and what is wrong)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(mapping: dict, key: str, label: str, expected: str, ok: Any) -> Any:
    """``mapping[key]``, or `_Damage` naming `label`: missing, or not `ok` (`expected`)."""
    if key not in mapping:
        raise _Damage(f"missing `{label}`")
    value = mapping[key]
    if not ok(value):
        raise _Damage(f"`{label}` is {describe(value)}, expected {expected}")
    return value


def _check(saved: dict[str, Any], share: Share | None) -> None:
    """Raise `_Damage` at the first field of `saved` that `generate` would not have written."""
    for key, kind, what in (
        ("config", dict, "an object"),
        ("model", dict, "an object"),
        ("data", dict, "an object"),
        ("shards", list, "a list"),
    ):
        _field(saved, key, key, what, lambda v, kind=kind: isinstance(v, kind))
    config, data = saved["config"], saved["data"]
    size = _field(
        config, "shard_size", "config.shard_size", "an int >= 1", lambda v: _is_int(v) and v >= 1
    )
    fmt = _field(config, "format", "config.format", f"one of {list(FORMATS)}", FORMATS.__contains__)
    keep = _field(config, "keep_clean", "config.keep_clean", "true or false", _is_bool)
    _field(
        config,
        "attack",
        "config.attack",
        "the attack's config (an object with its name)",
        lambda v: isinstance(v, dict) and isinstance(v.get("name"), str),
    )
    complete = _field(saved, "complete", "complete", "true or false", _is_bool)
    samples = _field(
        data,
        "samples",
        "data.samples",
        "an int >= 1" + ("" if complete else " or null"),
        lambda v: (_is_int(v) and v >= 1) or (v is None and not complete),
    )
    if "workers" in saved:
        _field(saved, "workers", "workers", f"an int in 1..{MAX_WORKERS}", _worker_count)
    if share is not None:
        worker = _field(saved, "worker", "worker", "an object", lambda v: isinstance(v, dict))
        for key, value in (("index", share.index), ("count", share.count)):
            _field(worker, key, f"worker.{key}", repr(value), lambda v, x=value: v == x)
        total = _field(
            worker,
            "shards",
            "worker.shards",
            "an int >= 1" + ("" if complete else " or null"),
            lambda v: (_is_int(v) and v >= 1) or (v is None and not complete),
        )
    if saved.get("columns") is not None or complete or saved["shards"]:
        _check_layout(saved, keep, classes=saved["version"] >= 2)
    # every shard in order, or a worker's: i, i + N, ...
    first, step = (0, 1) if share is None else (share.index, share.count)
    for position, entry in enumerate(saved["shards"]):
        index = first + position * step
        if not isinstance(entry, dict):
            raise _Damage(f"shard {index}: not an object")
        try:
            _check_entry(entry, index, size, fmt)
        except _Damage as damage:
            raise _Damage(f"shard {index}: {damage}") from None
    if not complete:
        return
    shards = -(-samples // size)  # what a complete run of data.samples holds
    if share is not None and total != shards:
        raise _Damage(f"`worker.shards` is {total}, but data.samples={samples} make {shards}")
    listed = saved["shards"]
    wanted = range(first, shards, step)
    if len(listed) != len(wanted):
        raise _Damage(
            f"`shards` lists {len(listed)} shard(s), but data.samples={samples} in shards of "
            f"{size} make {len(wanted)}" + ("" if share is None else f" for worker {share.label}")
        )
    for entry in listed:
        expected = min(size, samples - entry["index"] * size)
        if entry["count"] != expected:
            raise _Damage(
                f"shard {entry['index']}: `count` is {entry['count']}, but data.samples="
                f"{samples} in shards of {size} make {expected}"
            )


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _worker_count(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= MAX_WORKERS


def _check_entry(entry: dict[str, Any], index: int, size: int, fmt: str) -> None:
    _field(
        entry,
        "index",
        "index",
        f"{index} (the shards in order)",
        lambda v: _is_int(v) and v == index,
    )
    name = shard_name(index, fmt)
    _field(entry, "file", "file", repr(name), lambda v: v == name)  # no other path, ever
    _field(entry, "count", "count", f"an int in 1..{size}", lambda v: _is_int(v) and 1 <= v <= size)
    _field(entry, "first", "first", str(index * size), lambda v: _is_int(v) and v == index * size)
    for key in ("sha256", "data_sha256"):
        _field(
            entry, key, key, "64 hex digits", lambda v: isinstance(v, str) and bool(_HEX.match(v))
        )


def _check_layout(saved: dict[str, Any], keep_clean: bool, classes: bool) -> None:
    """``structure`` and ``columns``: what `load_generated` builds its pipeline from
    (`classes`: with the predicted classes, version 2)."""
    structure = _field(saved, "structure", "structure", "an object", lambda v: isinstance(v, dict))
    _field(structure, "kind", "structure.kind", f"one of {list(_KINDS)}", _KINDS.__contains__)
    names = _field(
        structure,
        "names",
        "structure.names",
        "a list of distinct names",
        lambda v: (
            isinstance(v, list)
            and v
            and all(isinstance(n, str) for n in v)
            and len(set(v)) == len(v)
        ),
    )
    columns = _field(saved, "columns", "columns", "an object", lambda v: isinstance(v, dict))
    needed = [f"x_adv/{n}" for n in names] + ["y", "index", "clean_correct", "adv_correct"]
    needed += [f"clean/{n}" for n in names] if keep_clean else []
    needed += list(CLASS_COLUMNS) if classes else []
    for key in [*needed, *(k for k in columns if k not in needed)]:
        spec = _field(columns, key, f"columns.{key}", "an object", lambda v: isinstance(v, dict))
        _field(spec, "dtype", f"columns.{key}.dtype", "a numeric NumPy dtype", _numeric_dtype)
        _field(
            spec,
            "shape",
            f"columns.{key}.shape",
            "a list of ints >= 0",
            lambda v: (
                isinstance(v, list) and len(v) <= 32 and all(_is_int(d) and d >= 0 for d in v)
            ),
        )
    for key in ("index", *(CLASS_COLUMNS if classes else ())):
        _field(columns[key], "dtype", f"columns.{key}.dtype", "'<i8'", lambda v: v == "<i8")
        _field(columns[key], "shape", f"columns.{key}.shape", "[]", lambda v: v == [])


def _numeric_dtype(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 16:
        return False
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        return False
    return dtype.kind in "biufc" and dtype.itemsize > 0 and dtype.fields is None


def check_resumable(saved: dict[str, Any], out_dir: str | os.PathLike, name: str) -> None:
    """Refuse to resume (or join, as a worker) a run whose manifest `name` is of an older
    version than `generate` writes: its shards lack columns new ones hold.

    Raises:
        ArgumentError: Naming ``out_dir``, the file, its version and the fix.

    >>> check_resumable({"version": 1}, "out", "manifest.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    advgrad._validation.ArgumentError: ... manifest.json is of version 1 ...
    """
    version = saved.get("version")
    if version == MANIFEST_VERSION:
        return
    raise ArgumentError(
        "out_dir",
        f"{str(out_dir)!r} holds a run whose {name} is of version {version} (written by an "
        f"older advgrad, without the predicted classes); this advgrad resumes version "
        f"{MANIFEST_VERSION} only: `advgrad verify` and load_generated still read it, and to "
        "generate it again pass another out_dir (or `advgrad generate CONFIG --force`).",
    )


def differences(saved: dict[str, Any], config: dict[str, Any], model_sha: str) -> list[str]:
    """What differs between a saved manifest and this run: the names of the `generate`
    arguments (``attack``, ``shard_size``, ``format``, ``seed``, ``batch_size``,
    ``keep_clean``) and ``model`` (its weights)."""
    old, config = jsonable(saved["config"]), jsonable(config)  # as written: inf -> "inf"
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


class ShardError(ValueError):
    """A shard that is not what the manifest says: ``index``, ``file``, ``missing`` (no file),
    ``problem`` (in words, e.g. ``"checksum mismatch"``)."""

    def __init__(self, index: int, file: str, problem: str, missing: bool = False):
        self.index, self.file, self.problem, self.missing = index, file, problem, missing
        super().__init__(f"shard {index} ({file}): {problem}")


def read_shard_checked(
    out_dir: pathlib.Path,
    manifest: dict[str, Any],
    entry: dict[str, Any],
    keys: list[str] | None = None,
    *,
    check_hash: bool = True,
) -> dict[str, np.ndarray]:
    """The columns `keys` (default: all) of one shard of a manifest `read_manifest` checked:
    the file (inside `out_dir`, a regular file of at most the size its samples take) is read
    once, its SHA-256 compared with the manifest's, then parsed from those bytes
    (`advgrad.generation.shards.parse_shard`: samples, dtypes and shapes of every column).

    Raises:
        ShardError: Saying what is wrong (``missing``: no file).
    """
    index, name, count = entry["index"], entry["file"], entry["count"]
    path = out_dir / name
    if not os.path.lexists(path):
        raise ShardError(index, name, "missing", missing=True)
    real, folder = pathlib.Path(os.path.realpath(path)), os.path.realpath(out_dir)
    if not real.is_relative_to(folder) or real == pathlib.Path(folder):  # a link out of it
        raise ShardError(index, name, "a link to a file outside the folder")
    columns, fmt = manifest["columns"], manifest["config"]["format"]
    limit = shard_limit(columns, count, fmt)
    try:
        data = read_regular(path, limit)
    except FileNotFoundError:
        raise ShardError(index, name, "missing", missing=True) from None
    except FileTooLargeError as err:
        raise ShardError(
            index, name, f"{err.size} bytes, more than {count} samples take ({limit})"
        ) from None
    except (OSError, ValueError) as err:
        raise ShardError(index, name, f"unreadable ({err})") from None
    if check_hash and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ShardError(index, name, "checksum mismatch")
    try:
        return parse_shard(data, fmt, columns, count, keys)
    except ValueError as err:
        raise ShardError(index, name, f"does not match manifest.json: {err}") from None


def check_shards(out_dir: pathlib.Path, manifest: dict[str, Any]) -> VerifyResult:
    """Re-check every shard the manifest lists: `read_shard_checked` (file, size, SHA-256,
    samples, dtypes and shapes)."""
    missing, corrupt, problems = [], [], []
    for entry in manifest["shards"]:
        try:
            read_shard_checked(out_dir, manifest, entry, [])  # every column checked, none kept
        except ShardError as err:
            (missing if err.missing else corrupt).append(err.index)
            problems.append(str(err))
    complete = manifest["complete"]
    return VerifyResult(
        ok=complete and not missing and not corrupt,
        complete=complete,
        shards=len(manifest["shards"]),
        samples=sum(e["count"] for e in manifest["shards"]),
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
