"""The two shard formats, written byte for byte the same on every run: no dates, no randomness.

A shard holds named columns of equal length (``x_adv/<input>``, ``y``, ``index``, ...):

- ``npz``: a zip archive (stored, not compressed) of one ``.npy`` file per column, every
  entry dated 1980-01-01 (``np.savez`` would stamp the current time);
- ``tfrecord``: one ``tf.train.Example`` per sample, each column a ``bytes_list`` of the
  row's raw bytes (dtype and shape in the manifest), features in column order. The
  protobuf is encoded here (a map's order is then fixed) and framed by TensorFlow's writer.

`write_shard` writes a file at the path it is given (`advgrad._io.atomic_write` gives it a
temporary one), `count_records` counts a file's samples without TensorFlow, and
`read_shard` reads a shard back whole (tests, small shards).

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
>>> write_shard(path, {"y": np.arange(3), "index": np.arange(3)}, 2, "npz")
>>> count_records(path, "npz"), read_shard(path, "npz")["y"].tolist()
(2, [0, 1])
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["FORMATS", "count_records", "read_shard", "shard_name", "write_shard"]

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
    keys = [key.encode() for key in columns]
    rows = [
        np.ascontiguousarray(array[:count]).reshape(count, -1).view(np.uint8)
        for array in columns.values()
    ]
    sizes = [r.shape[1] for r in rows]
    entries = [
        _field(_field(k) + _field(_field(_field(bytes(n))), 0x12))
        for k, n in zip(keys, sizes, strict=True)
    ]
    template = _field(b"".join(entries))
    records = np.empty((count, len(template)), np.uint8)
    records[:] = np.frombuffer(template, np.uint8)
    end = len(template) - sum(len(e) for e in entries)  # the Example's own prefix
    for entry, size, row in zip(entries, sizes, rows, strict=True):
        end += len(entry)  # a column's bytes close its entry
        records[:, end - size : end] = row
    return records


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
