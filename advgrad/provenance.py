"""What a run records to identify what it ran on: digests of its model and data, versions.

`advgrad.evaluate`, `advgrad.generate` and `advgrad train` all write these into what they
leave behind (a report, a manifest, a training record) and compare them on resuming: the
SHA-256 of a model's weights (`model_digest`), of a batch (`batch_digest`), of any parts
(`sha`); the model's description (`describe_model`); the library versions (`versions`).

>>> sha("a", b"b") == sha("a", "b")
True
>>> model_digest(print) == model_digest(len)  # a plain callable: its class name
True
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
from typing import Any

import numpy as np
import tensorflow as tf

from advgrad.nest import Structure

__all__ = ["array_digest", "batch_digest", "describe_model", "model_digest", "sha", "versions"]


def sha(*parts: bytes | str) -> str:
    """SHA-256 (hex) of the parts, each followed by a NUL byte."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


def array_digest(h: Any, array: np.ndarray) -> None:
    """Add `array` (its dtype, shape and bytes) to the hash `h`."""
    array = np.ascontiguousarray(array)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())


def batch_digest(x: Any, y: np.ndarray) -> str:
    """SHA-256 of one batch: every input (by name, dtype, shape and bytes) and the labels."""
    h = hashlib.sha256()
    structure = Structure.of(x)
    for name, leaf in zip(structure.names, structure.leaves(x), strict=True):
        h.update(name.encode())
        array_digest(h, np.asarray(leaf))
    array_digest(h, np.asarray(y))
    return h.hexdigest()


def model_digest(model: Any) -> str:
    """SHA-256 of the model's weights (of its class name for a plain callable)."""
    get_weights = getattr(model, "get_weights", None)
    if get_weights is None:
        return sha("callable", f"{type(model).__module__}.{type(model).__qualname__}")
    h = hashlib.sha256()
    for weight in get_weights():
        array_digest(h, np.asarray(weight))
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of advgrad, TensorFlow, Keras, NumPy and Python, for the report."""
    import keras

    from advgrad._version import __version__

    return {
        "advgrad": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def describe_model(model: Any, digest: str) -> dict[str, Any]:
    """Name, class, weights digest and (when built) parameter count, for the report."""
    description: dict[str, Any] = {
        "name": getattr(model, "name", None) or type(model).__name__,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "weights_sha256": digest,
    }
    count = getattr(model, "count_params", None)
    if count is not None:
        with contextlib.suppress(Exception):  # an unbuilt model: no parameter count
            description["parameters"] = int(count())
    return description
