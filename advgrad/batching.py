"""The data a workflow streams: batches of exactly `batch_size` samples, checked, seeded.

`advgrad.evaluate` and `advgrad.generate` both read their data through `Batches`: arrays are
sliced; a `tf.data.Dataset` of ``(x, y)`` batches is re-batched, so both give the same
batches (and so the same result and the same resumable state). Nothing is read ahead:
memory does not grow with the data set.

`check_batch` refuses what the attacks would refuse (labels that are not class ids of the
model, NaN inputs) and inf inputs, naming `data`: arrays are checked whole before any work
(`Batches.check`), streamed data batch by batch, before each batch is attacked; the model's
classes come from `output_classes`. `seed_of` gives each (batch, attack, eps) its own seed,
independent of every other batch, so that a resumed run repeats the uninterrupted one.

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

from advgrad._validation import SEED_LIMIT, ArgumentError, describe, invalid
from advgrad.models import ModelAdapter
from advgrad.nest import Structure
from advgrad.predictions import predict

__all__ = [
    "SEED_LIMIT",
    "Batches",
    "check_batch",
    "check_finite",
    "check_labels",
    "concat",
    "output_classes",
    "seed_of",
    "take",
]

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
        ArgumentError: Naming `data`, if it is not one of the above, is empty, or inputs
            and labels differ in length (arrays: at once; a dataset: when the offending
            element is read, as is an empty element).
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

    @property
    def streamed(self) -> bool:
        """Whether the data come from a tf.data.Dataset (checked batch by batch)."""
        return self.dataset is not None

    def head(self) -> Any:
        """The first sample's inputs (arrays only)."""
        structure, leaves, _ = self.arrays
        return structure.pack([v[:1] for v in leaves])

    def check(self, classes: int) -> None:
        """`check_batch` on the whole of the arrays (arrays only), before any work."""
        structure, leaves, labels = self.arrays
        check_labels(labels, classes)
        check_finite(structure, leaves)

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
        for number, element in enumerate(self.dataset.as_numpy_iterator()):
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
            if len(y) == 0:
                raise ArgumentError(
                    "data",
                    "expected a tf.data.Dataset of non-empty (x, y) batches, received an empty "
                    f"batch (element {number}).",
                )
            for name, leaf in zip(structure.names, leaves, strict=True):
                if leaf.ndim == 0 or len(leaf) != len(y):
                    count = "a scalar" if leaf.ndim == 0 else f"{len(leaf)} inputs"
                    raise ArgumentError(
                        "data",
                        "expected (x, y) batches with one label per input, received a batch "
                        f"of {count} and {len(y)} labels in {structure.label('x', name)} "
                        f"(element {number}).",
                    )
            pending.append((leaves, y))
            count += len(y)
            while count >= self.batch_size:
                batch, pending, count = _split(pending, self.batch_size)
                yield structure.pack(batch[0]), batch[1]
        if count:
            batch, pending, count = _split(pending, count)
            yield structure.pack(batch[0]), batch[1]


_CHUNK = 1 << 22
"""Values per input `check_finite` looks at a time (its temporary mask stays small)."""


def check_batch(x: Any, y: np.ndarray, classes: int, first: int = 0) -> None:
    """Refuse a batch the attacks would refuse, naming `data`: labels that are not class ids
    in ``[0, classes)`` (ids, ``[n, 1]`` ids or one-hot rows of width `classes`), and
    non-finite values (NaN or inf) in any floating-point input. `first` is the index of the
    batch's first sample in the data (for the messages).

    >>> check_batch(np.zeros((2, 3)), np.array([0, 9]), classes=10)
    >>> try:
    ...     check_batch(np.zeros((2, 3)), np.array([0, 10]), classes=10)
    ... except ArgumentError as err:
    ...     print(err.argument, "|", err.reason)
    data | expected class ids in [0, 10), received values from 0 to 10 in y (sample 1: 10).
    """
    check_labels(y, classes, first)
    structure = Structure.of(x)
    check_finite(structure, [np.asarray(v) for v in structure.leaves(x)], first)


def check_labels(y: Any, classes: int, first: int = 0) -> None:
    """Labels as `advgrad.predictions.class_ids` reads them, checked as the attacks' losses
    check them (`advgrad.objective.Objective.check_labels`), with the same wording."""
    y = np.asarray(y)
    n = len(y) if y.ndim else 0
    shapes = f"class ids of shape ({n},) or one-hot rows of shape ({n}, {classes})"
    if y.ndim == 0 or y.ndim > 2:
        raise _refuse(shapes, "y", y)
    if y.ndim == 2 and y.shape[1] != 1:  # one-hot rows (or soft labels): argmax is the class
        if y.shape[1] != classes:
            raise _refuse(f"one-hot labels of shape ({n}, {classes})", "y", y)
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
            raise _refuse("finite numeric labels", "y", y)
        return
    ids = y.reshape(n)
    if ids.dtype == bool:
        ids = ids.astype(np.int64)
    if not np.issubdtype(ids.dtype, np.number) or np.issubdtype(ids.dtype, np.complexfloating):
        raise _refuse("integer class ids", "y", y)
    if not np.issubdtype(ids.dtype, np.integer):  # float ids must be whole numbers
        if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
            raise _refuse("integer class ids", "y", y)
        ids = ids.astype(np.int64)
    if n and (ids.min() < 0 or ids.max() >= classes):
        row = int(np.flatnonzero((ids < 0) | (ids >= classes))[0])
        low, high, bad = int(ids.min()), int(ids.max()), int(ids[row])
        expected = f"class ids in [0, {classes})"
        raise ArgumentError(
            "data",
            f"expected {expected}, received values from {low} to {high} in y "
            f"(sample {first + row}: {bad}).",
            expected=expected,
            received=describe(y),
        )


def check_finite(structure: Structure, leaves: list[np.ndarray], first: int = 0) -> None:
    """Every floating-point input finite: no NaN (the attacks refuse it, with this wording)
    and no inf (no threat model holds an infinite input). Looked at `_CHUNK` values at a
    time, so the temporary mask stays small however large the arrays."""
    for name, leaf in zip(structure.names, leaves, strict=True):
        if not _floating(leaf.dtype) or leaf.ndim == 0:
            continue
        rows = max(1, _CHUNK // max(1, leaf[:1].size))
        for start in range(0, len(leaf), rows):
            finite = np.isfinite(leaf[start : start + rows])
            if finite.all():
                continue
            row = start + int(np.flatnonzero(~finite.reshape(len(finite), -1).all(axis=1))[0])
            word = "NaN" if np.isnan(leaf[row]).any() else "inf"
            label = structure.label("x", name)
            detail = f" (sample {first + row})"
            raise _refuse(f"finite values (no {word})", label, leaf, detail)


def _floating(dtype: Any) -> bool:
    try:
        return tf.as_dtype(dtype).is_floating
    except TypeError:  # object, strings...: no float to check
        return False


def _refuse(expected: str, label: str, value: Any, detail: str = "") -> ArgumentError:
    """The error naming `data`, about its part `label` (``y``, ``x``, ``x['image']``)."""
    text = describe(value)
    return ArgumentError(
        "data",
        f"expected {expected}, received {label}={text}{detail}.",
        expected=expected,
        received=text,
    )


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


def output_classes(model: Any, x: Any = None) -> int | None:
    """How many classes the model's output tells apart: its width (2 for one unit, read by
    a threshold). From the model's output shape, else from its output on the first sample
    of `x` (None without `x`)."""
    shape = ModelAdapter.of(model).output_shape(None)
    if shape is None or (len(shape) and shape[-1] is None):
        if x is None:
            return None
        shape = predict(model, take(x, np.arange(1))).shape[1:]
    width = int(shape[-1]) if len(shape) else 1
    return 2 if width == 1 else width


# SEED_LIMIT (re-exported): a workflow's seed is in [0, SEED_LIMIT), the one rule of
# `advgrad._validation.check_seed`. `seed_of` takes any int >= 0 (np.random.SeedSequence),
# but the sanity checks draw their noise with the int64 seed pair [seed, i]
# (`advgrad.flags.noise_stronger`), which holds no more.


def seed_of(seed: int, attack_seed: int, batch: int, attack: int, eps: int) -> int:
    """The seed of one (batch, attack, eps): independent of every other batch, in
    ``[0, 2**31 - 1)`` (any int32 or int64 seed tensor of an attack holds it).

    >>> seed_of(SEED_LIMIT - 1, 2**40, 3, 1, 0) < 2**31 - 1
    True
    """
    entropy = [int(seed), int(attack_seed), int(batch), int(attack), int(eps)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % (2**31 - 1))
