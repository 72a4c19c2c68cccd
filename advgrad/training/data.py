"""`EpochBatches`: training data as a `tf.data` pipeline whose shuffle is keyed by the epoch.

Keras' ``fit`` over numpy arrays pays its array adapter on every step (about twice the input
cost of a `tf.data` pipeline on a small model: `benchmarks/training.py`), and a seeded
``Dataset.shuffle(reshuffle_each_iteration=True)`` starts its sequence of orders again in a
new process, so a run resumed by ``keras.callbacks.BackupAndRestore`` would see epoch 1's
order again at epoch 3. Here epoch ``e``'s order is a stateless permutation of
``(seed, e)``: the callback sets ``e`` when the epoch begins, and a resumed run sees exactly
the batches of the uninterrupted one.

>>> import numpy as np, keras
>>> x, y = np.arange(10, dtype="float32").reshape(5, 2), np.arange(5)
>>> batches = EpochBatches(x, y, batch_size=2, seed=0)
>>> [len(b) for b, _ in batches.dataset], int(batches.dataset.cardinality())
([2, 2, 1], 3)
>>> batches.on_epoch_begin(1)
>>> sorted(int(i) for _, labels in batches.dataset for i in labels)
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from advgrad._validation import SIZE_LIMIT, check_int, check_seed, invalid

__all__ = ["EpochBatches"]


class EpochBatches(keras.callbacks.Callback):
    """Shuffled batches of ``(x, y)`` for ``fit``, the order a function of (seed, epoch).

    Pass ``dataset`` as ``fit``'s data and the object itself among its callbacks (it sets
    the epoch whose order the next pass over ``dataset`` takes), with ``shuffle=False``
    (the dataset is shuffled already).

    Args:
        x: Inputs as the model takes them: an array, or a list or dict of arrays.
        y: Labels, an array with as many rows.
        batch_size: Samples per batch (the last batch of an epoch may be smaller), an int
            in ``[1, 2**31)``.
        seed: Seed of the orders, an int in ``[0, 2**63)`` (`advgrad._validation.check_seed`).

    Attributes:
        dataset: The batched, prefetched ``tf.data.Dataset`` of ``(x, y)``; its cardinality
            is the number of batches per epoch.

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> batches = EpochBatches(np.zeros((6, 2), "float32"), np.arange(6) % 2, batch_size=4)
    >>> fit = model.fit(batches.dataset, epochs=2, callbacks=[batches], shuffle=False, verbose=0)
    >>> len(fit.epoch)
    2
    """

    def __init__(self, x: Any, y: Any, *, batch_size: int, seed: int = 0):
        super().__init__()
        batch_size = check_int("batch_size", batch_size, low=1, high=SIZE_LIMIT)
        seed = check_seed(seed)
        labels = np.asarray(y)
        rows = {np.shape(leaf)[0] for leaf in tf.nest.flatten(x)} | {len(labels)}
        if len(rows) != 1 or not labels.shape[0]:
            raise invalid("x", "inputs and labels with the same number of rows (>= 1)", rows)
        count = len(labels)
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_batches")
        inputs = tf.nest.map_structure(tf.convert_to_tensor, x)
        targets = tf.convert_to_tensor(labels)

        def order(_):
            key = tf.stack([tf.constant(seed, tf.int64), self._epoch.read_value()])
            rows = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), key)
            return tf.data.Dataset.from_tensor_slices(rows)

        def gather(index):
            take = lambda value: tf.gather(value, index)  # noqa: E731
            return tf.nest.map_structure(take, inputs), take(targets)

        self.dataset = (
            tf.data.Dataset.from_tensors(0)
            .flat_map(order)
            .apply(tf.data.experimental.assert_cardinality(count))
            .batch(batch_size)
            .map(gather)
            .prefetch(tf.data.AUTOTUNE)
        )

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        """Key the next pass over ``dataset`` by `epoch` (``fit`` passes the absolute epoch,
        also when ``BackupAndRestore`` resumes a run)."""
        self._epoch.assign(epoch)
