"""The two shard formats, written byte for byte the same on every run: no dates, no randomness.

A shard holds named columns of equal length (``x_adv/<input>``, ``y``, ``index``, ...):

- ``npz``: a zip archive (stored, not compressed) of one ``.npy`` file per column, every
  entry dated 1980-01-01 (``np.savez`` would stamp the current time);
- ``tfrecord``: one ``tf.train.Example`` per sample, each column a ``bytes_list`` of the
  row's raw bytes (dtype and shape in the manifest), features in column order. The
  protobuf is encoded here (a map's order is then fixed) and framed by TensorFlow's writer.

`write_shard` writes a file at the path it is given (`advgrad._io.atomic_write` gives it a
temporary one), `count_records` counts a file's samples without TensorFlow, `read_shard`
reads a shard back whole (tests, small shards), and `parse_shard` parses a shard's bytes
already read (and hashed) against the manifest's columns, refusing any that differ;
`shard_limit` bounds the size of a shard of a given layout.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
>>> write_shard(path, {"y": np.arange(3), "index": np.arange(3)}, 2, "npz")
>>> count_records(path, "npz"), read_shard(path, "npz")["y"].tolist()
(2, [0, 1])
>>> spec = {"y": {"dtype": "<i8", "shape": []}, "index": {"dtype": "<i8", "shape": []}}
>>> parse_shard(path.read_bytes(), "npz", spec, 2)["index"].tolist()
[0, 1]
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "FORMATS",
    "count_records",
    "parse_shard",
    "read_shard",
    "shard_limit",
    "shard_name",
    "write_shard",
]

FORMATS = ("tfrecord", "npz")
"""The shard formats `generate` writes."""

_SUFFIX = {"tfrecord": ".tfrecord", "npz": ".npz"}
_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry holds: fixed, so bytes repeat


def shard_name(index: int, fmt: str) -> str:
    """The file name of shard number `index`: ``shard-00003.npz``.

    >>> shard_name(3, "tfrecord")
    'shard-00003.tfrecord'
    """
    return f"shard-{index:05d}{_SUFFIX[fmt]}"


def write_shard(path: str | os.PathLike, columns: Mapping[str, np.ndarray], count: int, fmt: str):
    """Write the first `count` rows of every column to `path`, in format `fmt`."""
    if fmt == "npz":
        _write_npz(path, columns, count)
    else:
        _write_tfrecord(path, columns, count)


# --------------------------------------------------------------------------- npz
def _write_npz(path: Any, columns: Mapping[str, np.ndarray], count: int) -> None:
    with open(path, "wb") as file, zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
        for key, array in columns.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as entry:
                rows = np.ascontiguousarray(array[:count])
                np.lib.format.write_array(entry, rows, allow_pickle=False)


# ---------------------------------------------------------------------- tfrecord
def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(payload: bytes, tag: int = 0x0A) -> bytes:
    """A length-delimited protobuf field (tag 0x0A: field 1; 0x12: field 2)."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def encode_example(keys: list[bytes], values: list[bytes]) -> bytes:
    """A serialized ``tf.train.Example`` with one ``bytes_list`` feature per key, in order.

    >>> example = tf.train.Example.FromString(encode_example([b"y"], [b"ab"]))
    >>> example.features.feature["y"].bytes_list.value[0]
    b'ab'
    """
    entries = b"".join(
        _field(_field(key) + _field(_field(_field(value)), 0x12))
        for key, value in zip(keys, values, strict=True)
    )
    return _field(entries)


def encode_examples(columns: Mapping[str, np.ndarray], count: int) -> np.ndarray:
    """The first `count` rows of `columns` as serialized Examples, one row of bytes each.

    Every column has a fixed size per sample, so every record has the same layout: a
    template (`encode_example` of zero bytes) with each column's bytes at a fixed offset,
    filled for all samples at once. Row ``i`` is ``encode_example(keys, values of i)``.

    >>> columns = {"y": np.array([3, 4]), "ok": np.array([True, False])}
    >>> records = encode_examples(columns, 2)
    >>> records[1].tobytes() == encode_example([b"y", b"ok"], [np.int64(4).tobytes(), b"\\x00"])
    True
    """
    rows = [
        np.ascontiguousarray(array[:count]).reshape(count, -1).view(np.uint8)
        for array in columns.values()
    ]
    template, slots = _record_layout({k: r.shape[1] for k, r in zip(columns, rows, strict=True)})
    records = np.empty((count, len(template)), np.uint8)
    records[:] = np.frombuffer(template, np.uint8)
    for (start, stop), row in zip(slots.values(), rows, strict=True):
        records[:, start:stop] = row
    return records


def _record_layout(sizes: Mapping[str, int]) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The Example of a sample whose columns hold `sizes` bytes (all zero), and where each
    column's bytes lie in it (key -> ``(start, stop)``): every record of a shard has it."""
    entries = [
        _field(_field(k.encode()) + _field(_field(_field(bytes(n))), 0x12))
        for k, n in sizes.items()
    ]
    template = _field(b"".join(entries))
    end = len(template) - sum(len(e) for e in entries)  # the Example's own prefix
    slots = {}
    for key, entry, size in zip(sizes, entries, sizes.values(), strict=True):
        end += len(entry)  # a column's bytes close its entry
        slots[key] = (end - size, end)
    return template, slots


def _write_tfrecord(path: Any, columns: Mapping[str, np.ndarray], count: int) -> None:
    records = encode_examples(columns, count)
    with tf.io.TFRecordWriter(os.fspath(path)) as writer:
        for record in records:
            writer.write(record.tobytes())


# ----------------------------------------------------------------------- reading
def count_records(path: str | os.PathLike, fmt: str) -> int:
    """The number of samples in a shard file (read from its framing or header).

    Raises:
        ValueError: If the file is truncated or not a shard of format `fmt`.
        OSError: If it cannot be read.
    """
    if fmt == "npz":
        try:
            with zipfile.ZipFile(path) as archive, archive.open("index.npy") as entry:
                version = np.lib.format.read_magic(entry)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, _ = read(entry)
        except (zipfile.BadZipFile, KeyError) as err:
            raise ValueError(f"not an npz shard: {err}") from None
        return int(shape[0])
    count = 0
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        position = 0
        while position < size:
            head = file.read(12)
            if len(head) < 12:
                raise ValueError("truncated record header")
            (length,) = struct.unpack("<Q", head[:8])
            position += 12 + length + 4
            if position > size:
                raise ValueError("truncated record")
            file.seek(position)
            count += 1
    return count


def read_shard(
    path: str | os.PathLike, fmt: str, columns: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Every column of a shard as arrays (the whole shard in memory).

    Args:
        path: The shard file.
        fmt: Its format.
        columns: For ``tfrecord``: the manifest's ``columns`` (key -> ``{"dtype", "shape"}``).
    """
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    features = {key: tf.io.FixedLenFeature([], tf.string) for key in columns}
    result: dict[str, list[np.ndarray]] = {key: [] for key in columns}
    for record in tf.data.TFRecordDataset(os.fspath(path)).batch(4096):
        parsed = tf.io.parse_example(record, features)
        for key, spec in columns.items():
            result[key].append(decode_column(parsed[key], spec).numpy())
    return {
        key: np.concatenate(parts) if parts else np.zeros((0, *spec["shape"]), spec["dtype"])
        for (key, parts), spec in zip(result.items(), columns.values(), strict=True)
    }


def decode_column(raw: tf.Tensor, spec: Mapping[str, Any]) -> tf.Tensor:
    """Raw bytes (one string per sample, ``[B]`` or a scalar) -> values ``[B, *shape]``."""
    dtype = tf.as_dtype(np.dtype(spec["dtype"]))
    values = tf.io.decode_raw(raw, tf.uint8 if dtype == tf.bool else dtype)
    if dtype == tf.bool:
        values = tf.cast(values, tf.bool)
    shape = [int(d) for d in spec["shape"]]
    return tf.reshape(values, [-1, *shape] if raw.shape.rank else shape)


# ------------------------------------------------- reading bytes, checked against a layout
_NPZ_SLACK = 4096  # bytes a zip entry and .npy header may add to a column (both are short)


def _row_bytes(spec: Mapping[str, Any]) -> int:
    return np.dtype(spec["dtype"]).itemsize * int(np.prod(spec["shape"], dtype=np.int64))


def shard_limit(columns: Mapping[str, Mapping[str, Any]], count: int, fmt: str) -> int:
    """The most bytes a shard of `count` samples with `columns` (the manifest's) takes: exact
    for ``tfrecord`` (fixed-size records), a bound for ``npz`` (headers vary a little).

    >>> shard_limit({"y": {"dtype": "<i8", "shape": []}}, 4, "tfrecord")
    148
    """
    if fmt == "tfrecord":
        template, _ = _record_layout({k: _row_bytes(s) for k, s in columns.items()})
        return count * (len(template) + 16)
    return sum(count * _row_bytes(s) + _NPZ_SLACK for s in columns.values()) + _NPZ_SLACK


def parse_shard(
    data: bytes,
    fmt: str,
    columns: Mapping[str, Mapping[str, Any]],
    count: int,
    keys: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """The columns `keys` (default: all) of a shard's bytes `data`, checked to hold `count`
    samples laid out as `columns` (the manifest's: key -> ``{"dtype", "shape"}``).

    A ``tfrecord`` shard is cut at its fixed record size, each record's length checked and
    the first one's layout compared with the columns' (the file's hash, checked first by the
    caller, covers the rest); an ``npz`` shard's arrays are read with their headers checked.

    Raises:
        ValueError: Saying what differs: the size, the number of samples, a column missing
            or of another dtype or shape.
    """
    keys = list(columns) if keys is None else keys
    if fmt == "npz":
        return _parse_npz(data, columns, count, keys)
    found = _record_columns(data)  # the file's columns, in its order, and their sizes
    if sorted(found) != sorted(columns):
        raise ValueError(f"columns {list(found)}, the manifest lists {list(columns)}")
    for key, size in found.items():
        if size != _row_bytes(columns[key]):
            spec = columns[key]
            raise ValueError(
                f"column {key} holds {size} bytes a sample, the manifest's "
                f"{spec['dtype']}{spec['shape']} take {_row_bytes(spec)}"
            )
    template, slots = _record_layout({k: _row_bytes(columns[k]) for k in found})
    width = len(template) + 16  # length (8), its CRC (4), the Example, its CRC (4)
    if len(data) != count * width:
        raise ValueError(
            f"{len(data)} bytes, but {count} samples of the manifest's columns take "
            f"{count * width} ({width} per sample)"
        )
    records = np.frombuffer(data, np.uint8).reshape(count, width)
    lengths = np.ascontiguousarray(records[:, :8]).view("<u8")
    if count and np.any(lengths != len(template)):
        raise ValueError(f"records of other lengths than the manifest's columns give ({width})")
    if count:
        first = records[0, 12 : 12 + len(template)].copy()
        for start, stop in slots.values():
            first[start:stop] = 0
        if first.tobytes() != template:
            raise ValueError("records not laid out as the manifest's columns")
    out = {}
    for key in keys:
        start, stop = slots[key]
        raw = np.ascontiguousarray(records[:, 12 + start : 12 + stop])
        spec = columns[key]
        out[key] = raw.view(np.dtype(spec["dtype"])).reshape(count, *spec["shape"])
    return out


def _record_columns(data: bytes) -> dict[str, int]:
    """The columns of a tfrecord file's first record, in their order, with their bytes per
    sample (`encode_example`: an Example of one Features message of map entries, each its
    key then its value, a bytes list of one value)."""

    def field(buffer: bytes, at: int = 0, tag: int = 0x0A) -> tuple[bytes, int]:
        if at >= len(buffer) or buffer[at] != tag:
            raise ValueError("not an advgrad tfrecord shard")
        length, shift, at = 0, 0, at + 1
        while at < len(buffer) and shift < 64:
            length |= (buffer[at] & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if not buffer[at - 1] & 0x80:
                break
        if at + length > len(buffer):
            raise ValueError("truncated record")
        return buffer[at : at + length], at + length

    if len(data) < 12:
        raise ValueError("truncated record header")
    (length,) = struct.unpack("<Q", data[:8])
    features, _ = field(data[12 : 12 + length])
    found, at = {}, 0
    while at < len(features):
        entry, at = field(features, at)
        key, rest = field(entry)
        value, _ = field(field(field(entry, rest, 0x12)[0])[0])
        found[key.decode("utf-8", "replace")] = len(value)
    return found


def _parse_npz(data: bytes, columns: Mapping[str, Any], count: int, keys: list[str]):
    """Every column's ``.npy`` header checked (dtype, shape, C order), the `keys` read."""
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if names != {f"{k}.npy" for k in columns}:
                listed = sorted(n.removesuffix(".npy") for n in names)
                raise ValueError(f"columns {listed}, the manifest lists {list(columns)}")
            for key, spec in columns.items():
                expected = (np.dtype(spec["dtype"]), (count, *spec["shape"]), False)
                with archive.open(f"{key}.npy") as entry:
                    version = np.lib.format.read_magic(entry)
                    if version not in ((1, 0), (2, 0)):
                        raise ValueError(f"column {key}: .npy version {version}")
                    read = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
                    shape, fortran, dtype = read(entry)
                    if (dtype, shape, fortran) != expected:
                        raise ValueError(
                            f"column {key} is {dtype.str}{list(shape)}, the manifest says "
                            f"{expected[0].str}{list(expected[1])}"
                        )
                if key in keys:
                    with archive.open(f"{key}.npy") as entry:
                        out[key] = np.lib.format.read_array(entry, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise ValueError(f"not an npz shard ({err})") from None
    return out
