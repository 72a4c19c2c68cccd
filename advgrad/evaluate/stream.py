"""The data of an evaluation as batches of exactly `batch_size` samples, from arrays or tf.data.

Arrays are sliced; a `tf.data.Dataset` of ``(x, y)`` batches is re-batched, so both give the
same batches (and so the same result and the same resumable state). Nothing is read ahead:
memory does not grow with the data set.

>>> import numpy as np
>>> batches = Batches((np.zeros((5, 2)), np.arange(5)), batch_size=2)
>>> batches.total, [len(y) for _, y in batches]
(3, [2, 2, 1])
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from advgrad._validation import invalid
from advgrad.nest import Structure

__all__ = ["Batches", "concat", "take"]

_PAIR = "an (x, y) pair of arrays or a tf.data.Dataset of them"


class Batches:
    """Batches of exactly `batch_size` samples (the last one shorter) from arrays or tf.data.

    Args:
        data: An ``(x, y)`` pair (``x`` an array, list or dict of arrays) or a batched
            `tf.data.Dataset` of such pairs.
        batch_size: Samples per batch.

    Attributes:
        total: The number of batches, when known in advance (arrays); else None.

    Raises:
        ValueError: If `data` is not one of the above, or inputs and labels differ in length
            (arrays: at once; a dataset: when the offending element is read).
    """

    def __init__(self, data: Any, batch_size: int):
        self.batch_size = batch_size
        self.total: int | None = None
        if isinstance(data, tf.data.Dataset):
            self.dataset = data
            self.arrays = None
            return
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise invalid("data", _PAIR, data)
        x, y = data
        if x is None or y is None:
            raise invalid("data", _PAIR, data)
        structure = Structure.of(x)
        leaves = [_as_array(v) for v in structure.leaves(x)]
        labels = _as_array(y)
        if labels.ndim == 0 or len(labels) == 0:
            raise invalid("data", "labels y with one entry per sample (at least one)", y)
        for leaf in leaves:
            if leaf.ndim == 0 or len(leaf) != len(labels):
                raise invalid("data", f"inputs with {len(labels)} samples (one per label)", leaf)
        self.dataset = None
        self.arrays = (structure, leaves, labels)
        self.total = -(-len(labels) // batch_size)

    def __iter__(self) -> Iterator[tuple[Any, np.ndarray]]:
        if self.arrays is not None:
            structure, leaves, labels = self.arrays
            for start in range(0, len(labels), self.batch_size):
                stop = start + self.batch_size
                yield structure.pack([v[start:stop] for v in leaves]), labels[start:stop]
            return
        yield from self._rebatched()

    def _rebatched(self) -> Iterator[tuple[Any, np.ndarray]]:
        structure = None
        pending: list[tuple[list[np.ndarray], np.ndarray]] = []
        count = 0
        for element in self.dataset.as_numpy_iterator():
            if not isinstance(element, tuple) or len(element) != 2:
                raise invalid("data", "a tf.data.Dataset of (x, y) batches", self.dataset)
            x, y = element
            y = np.asarray(y)
            if y.ndim == 0:
                raise invalid(
                    "data", "a batched tf.data.Dataset of (x, y) (call .batch(n))", self.dataset
                )
            if structure is None:
                structure = Structure.of(x)
            leaves = [np.asarray(v) for v in structure.leaves(x)]
            pending.append((leaves, y))
            count += len(y)
            while count >= self.batch_size:
                batch, pending, count = _split(pending, self.batch_size)
                yield structure.pack(batch[0]), batch[1]
        if count:
            batch, pending, count = _split(pending, count)
            yield structure.pack(batch[0]), batch[1]


def _split(pending, size):
    """Take `size` samples off the front of the pending chunks."""
    leaves = [np.concatenate([c[0][i] for c in pending]) for i in range(len(pending[0][0]))]
    labels = np.concatenate([c[1] for c in pending])
    head = ([v[:size] for v in leaves], labels[:size])
    rest = labels[size:]
    remaining = [([v[size:] for v in leaves], rest)] if len(rest) else []
    return head, remaining, len(rest)


def _as_array(value: Any) -> np.ndarray:
    return value.numpy() if tf.is_tensor(value) else np.asarray(value)


def take(x: Any, index: np.ndarray) -> Any:
    """Rows `index` of every array of the nest `x`."""
    return tf.nest.map_structure(lambda v: np.asarray(v)[index], x)


def concat(parts: list[Any]) -> Any:
    """The nests `parts` (same structure) concatenated along the batch axis."""
    return tf.nest.map_structure(lambda *v: np.concatenate(v), *parts)
