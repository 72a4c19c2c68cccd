"""The perturbed inputs of a plan as one joint ``[B, D]`` row per sample, and back.

The minimal-norm attacks (FAB-T, CW-L2, DeepFool, FMN) work on one flat vector per sample
whatever the model's inputs: `JointRows` lays the perturbed inputs out side by side in a
common compute dtype (float64 if any input is, else float32), with their bounds as rows.

>>> import numpy as np, keras
>>> from advgrad.attacks import PGD
>>> model = keras.Sequential([keras.Input((2, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
>>> plan = PGD(eps=0.1, bounds=(0, 1), loss="ce").plan(model, np.zeros((4, 2, 3), "float32"))
>>> rows = JointRows(plan)
>>> rows.sizes, rows.flat(rows.split(np.ones((4, 6), "float32")))[0].shape
([6], TensorShape([6]))
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from advgrad._validation import invalid
from advgrad.attacks.plan import Chunk, ChunkResult, Plan

__all__ = ["JointRows", "check_joint", "joint_chunks"]


def check_joint(plan: Plan, why: str) -> None:
    """A joint-row attack needs one norm over every perturbed input and a classifier.

    Raises:
        ArgumentError: Several norms (``budget``, saying `why`), or no class scores (``model``).
    """
    kinds = {plan.budgets[n].norm.name for n in plan.perturbed}
    if len(kinds) > 1:
        raise invalid("budget", f"one norm for every perturbed input ({why})", sorted(kinds))
    if plan.classes is None:
        raise invalid("model", "a classifier (an output with class scores)", None)


def joint_chunks(run: Callable, arguments: Callable[[Chunk], tuple]) -> Callable:
    """The chunk function (`advgrad.attacks.Attack.attack_chunks`) of a joint-row attack:
    ``run(chunk.xs, chunk.labels, *arguments(chunk))`` gives (x_adv per perturbed input,
    fooled, norms, gradients, queries) per sample."""

    def attack_chunk(chunk: Chunk) -> ChunkResult:
        x_adv, fooled, norms, gradients, queries = run(chunk.xs, chunk.labels, *arguments(chunk))
        return ChunkResult(
            x_adv, fooled.numpy(), queries.numpy(), gradients.numpy(), norms=norms.numpy()
        )

    return attack_chunk


class JointRows:
    """The joint-row layout of `plan`'s perturbed inputs: shapes, dtypes, sizes, bounds."""

    def __init__(self, plan: Plan):
        self.names, self.perturbed = plan.inputs.names, plan.perturbed
        self.budgets = [plan.budgets[n] for n in self.perturbed]
        specs = dict(zip(self.names, plan.inputs.specs(), strict=True))
        self.shapes = [tuple(specs[n].shape[1:]) for n in self.perturbed]
        self.dtypes = [specs[n].dtype for n in self.perturbed]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.dtype = tf.float64 if tf.float64 in self.dtypes else tf.float32
        self.exact = all(d == self.dtype for d in self.dtypes)
        lows, highs = [], []
        for budget, shape in zip(self.budgets, self.shapes, strict=True):
            lows.append(np.broadcast_to(np.asarray(budget.bounds.low, np.float64), shape).ravel())
            highs.append(np.broadcast_to(np.asarray(budget.bounds.high, np.float64), shape).ravel())
        self.low, self.high = np.concatenate(lows), np.concatenate(highs)

    def flat(self, leaves: dict[str, tf.Tensor]) -> tf.Tensor:
        """The perturbed inputs as one ``[B, D]`` row per sample, in the compute dtype."""
        rows = [
            tf.reshape(tf.cast(leaves[n], self.dtype), [-1, size])
            for n, size in zip(self.perturbed, self.sizes, strict=True)
        ]
        return tf.concat(rows, axis=1)

    def split(self, row: tf.Tensor) -> dict[str, tf.Tensor]:
        """Rows back to the perturbed inputs, in their shapes and dtypes."""
        parts = tf.split(row, self.sizes, axis=1)
        return {
            n: tf.cast(tf.reshape(part, [-1, *shape]), dtype)
            for n, part, shape, dtype in zip(
                self.perturbed, parts, self.shapes, self.dtypes, strict=True
            )
        }

    def representable(self, row: tf.Tensor) -> tf.Tensor:
        """`row` rounded to what the inputs' dtypes hold (what the model will see)."""
        return row if self.exact else self.flat(self.split(row))

    def bound(self, which: str) -> tf.Tensor:
        """The ``"low"`` or ``"high"`` bounds as one row."""
        return tf.constant(self.low if which == "low" else self.high, self.dtype)

    def clip(self, row: tf.Tensor) -> tf.Tensor:
        """`row` clipped into the bounds."""
        return tf.minimum(tf.maximum(row, self.bound("low")), self.bound("high"))
