"""Which class the targeted attacks of `evaluate` aim at: the ``targets`` rule.

A rule gives one target class id per sample of a batch (`TargetRule.ids`); the attacks with
``targeted=True`` get them, laid out like the labels (`layout`). Untargeted attacks ignore
the rule. The rules:

- ``"most-likely-wrong"`` (the default, ``targets=None``): the clean input's most likely
  class other than its label;
- ``"least-likely"``: the clean input's least likely class;
- ``"random"``: a class other than the label, drawn uniformly with a generator seeded from
  `evaluate`'s seed and the batch index (a resumed run draws the same targets);
- an int: that class for every sample;
- an array of class ids, one per sample (arrays of data only, not a `tf.data.Dataset`).

A sample whose target equals its own label cannot be "fooled" into its own class: targeted
attacks skip it and it counts as robust against them (a fixed class or an array only; the
other rules never pick the label).

>>> rule = resolve("least-likely")
>>> rule.ids(np.array([[0.1, 0.7, 0.2]]), np.array([1]), batch=0, offset=0).tolist()
[0]
>>> resolve(None).name, resolve(3).describe()
('most-likely-wrong', 3)
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from advgrad._validation import check_int, invalid

__all__ = ["DEFAULT", "RULES", "TargetRule", "layout", "resolve"]

DEFAULT = "most-likely-wrong"
RULES = ("most-likely-wrong", "least-likely", "random")
"""The named rules of ``targets``."""

_EXPECTED = (
    "None, one of " + ", ".join(repr(r) for r in RULES) + ", a class id (an int >= 0) or an "
    "array of class ids, one per sample"
)
_RANDOM_TAG = 0x7A4E7  # keeps the random targets' stream apart from every other seeded draw


class TargetRule:
    """A resolved ``targets`` argument (use `resolve`)."""

    def __init__(self, name: str, fixed: int | None = None, array: np.ndarray | None = None):
        self.name = name  # a rule name, "fixed" or "array"
        self.fixed = fixed
        self.array = array

    @property
    def default(self) -> bool:
        """Whether this is the default rule (today's targets: the most likely wrong class)."""
        return self.name == DEFAULT

    def describe(self) -> str | int:
        """For the report: the rule name, the fixed class, or ``"array sha256:..."``."""
        if self.name == "fixed":
            return self.fixed
        if self.name == "array":
            return f"array sha256:{self.digest()}"
        return self.name

    def digest(self) -> str:
        """SHA-256 of the per-sample array (dtype int64)."""
        array = np.ascontiguousarray(self.array, np.int64)
        return hashlib.sha256(f"{array.shape}".encode() + array.tobytes()).hexdigest()

    def fingerprint(self) -> str | None:
        """The state fingerprint's ``targets`` entry; None for the default rule (no entry,
        so a state written before ``targets`` existed still resumes)."""
        if self.default:
            return None
        if self.name == "fixed":
            return f"class {self.fixed}"
        if self.name == "array":
            return f"array sha256:{self.digest()}"
        return self.name

    def check(self, classes: int, n_samples: int | None, streamed: bool) -> None:
        """Refuse (naming ``targets``) a class id outside ``[0, classes)`` or an array that
        does not hold one id per sample, or any array for streamed data."""
        if self.name == "fixed" and self.fixed >= classes:
            raise invalid(
                "targets", f"a class id in [0, {classes}) (the model's classes)", self.fixed
            )
        if self.name != "array":
            return
        if streamed:
            raise invalid(
                "targets",
                "a rule name or one class id with a tf.data.Dataset (per-sample target arrays "
                "need (x, y) arrays: a dataset's length and order are not known in advance)",
                self.array,
            )
        if len(self.array) != n_samples:
            raise invalid(
                "targets", f"an array of {n_samples} class ids (one per sample)", self.array
            )
        bad = (self.array < 0) | (self.array >= classes)
        if np.any(bad):
            first = int(np.flatnonzero(bad)[0])
            raise invalid(
                "targets",
                f"class ids in [0, {classes}) (the model's classes); targets[{first}] is "
                f"{int(self.array[first])}",
                self.array,
            )

    def ids(self, outputs: np.ndarray, truth: np.ndarray, batch: int, offset: int, seed: int = 0):
        """Target class ids of one batch (number `batch`, starting at sample `offset`)."""
        n = len(truth)
        if self.name == "fixed":
            return np.full(n, self.fixed, np.int64)
        if self.name == "array":
            return np.asarray(self.array[offset : offset + n], np.int64)
        binary = outputs.ndim == 1 or outputs.shape[-1] == 1
        classes = 2 if binary else outputs.shape[-1]
        if self.name == "random":
            rng = np.random.default_rng([int(seed), int(batch), _RANDOM_TAG])
            draw = rng.integers(0, classes - 1, size=n)  # among the classes-1 wrong ones
            return (draw + (draw >= truth)).astype(np.int64)
        if binary:  # one unit: the only wrong class is both the most and least likely
            return (1 - truth).astype(np.int64)
        scores = np.array(outputs, np.float64)
        if self.name == "least-likely":
            scores[np.arange(n), truth] = np.inf
            return np.argmin(scores, axis=1).astype(np.int64)
        scores[np.arange(n), truth] = -np.inf
        return np.argmax(scores, axis=1).astype(np.int64)


def resolve(targets: Any) -> TargetRule:
    """`evaluate`'s ``targets`` argument as a `TargetRule` (class ids checked later,
    against the model's classes, by `TargetRule.check`)."""
    if targets is None:
        return TargetRule(DEFAULT)
    if isinstance(targets, str):
        if targets not in RULES:
            raise invalid("targets", _EXPECTED, targets)
        return TargetRule(targets)
    if isinstance(targets, (int, np.integer)) and not isinstance(targets, (bool, np.bool_)):
        return TargetRule("fixed", fixed=check_int("targets", int(targets), low=0))
    if isinstance(targets, (list, tuple, np.ndarray)):
        array = np.asarray(targets)
        if array.ndim != 1 or len(array) == 0:
            raise invalid("targets", _EXPECTED + " (a 1-D, non-empty array)", targets)
        if array.dtype.kind not in "iu":
            raise invalid("targets", "an array of integer class ids", f"dtype {array.dtype}")
        return TargetRule("array", array=array.astype(np.int64))
    raise invalid("targets", _EXPECTED, targets)


def layout(ids: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Target `ids` laid out like the labels `y` (class ids, or one-hot rows)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.eye(y.shape[1], dtype=y.dtype)[ids]
    return ids.astype(y.dtype).reshape(y.shape)
