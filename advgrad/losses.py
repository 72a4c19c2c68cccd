"""Per-sample losses: advgrad's own (on logits) and any Keras loss, behind one `LossSpec`.

A `LossSpec` knows what labels its loss wants (sparse class ids, one-hot rows, binary or any
values) and whether it reads logits or probabilities; `per_sample` always returns one value
per sample. A loss of your own (a function or a `keras.losses.Loss` that is not one of
Keras' built-ins) gets ``labels="inferred"``: its labels' format is read from their shape
against the output, as `model.fit` would take them (class ids of shape ``(B,)`` or ``(B, 1)``
for an output of shape ``(B, C)``, C > 1; labels shaped like the output otherwise). Say it
outright with ``LossSpec(fn, labels="sparse")`` where the shapes cannot tell.

>>> import numpy as np
>>> spec = get("ce")
>>> spec.labels, spec.from_logits
('sparse', True)
>>> logits = np.array([[2.0, 0.0, 0.0]], "float32")
>>> float(margin(np.array([0]), logits)[0])
-2.0
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from advgrad._backend import require_tensorflow_backend
from advgrad._validation import invalid

require_tensorflow_backend()  # Keras must run on TensorFlow (a clear error if not)

LossFn = Callable[[Any, Any], Any]


def _sparse_ids(y_true, num_classes_tensor):
    y_true = tf.convert_to_tensor(y_true)
    if y_true.shape.rank is not None and y_true.shape.rank > 1 and y_true.shape[-1] == 1:
        y_true = tf.squeeze(y_true, -1)
    return tf.cast(y_true, tf.int32)


def cross_entropy(y_true: Any, logits: Any) -> tf.Tensor:
    """Softmax cross-entropy on logits; `y_true` holds class ids (or one-hot rows).

    >>> float(cross_entropy([1], [[0.0, 0.0]])[0])  # log(2)
    0.6931471...
    """
    logits = tf.convert_to_tensor(logits)
    y_true = tf.convert_to_tensor(y_true)
    if y_true.shape.rank == logits.shape.rank and y_true.shape[-1] == logits.shape[-1]:
        return tf.nn.softmax_cross_entropy_with_logits(tf.cast(y_true, logits.dtype), logits)
    ids = _sparse_ids(y_true, tf.shape(logits)[-1])
    return tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits)


def _true_and_best_other(y_true, logits):
    logits = tf.convert_to_tensor(logits)
    ids = _sparse_ids(y_true, tf.shape(logits)[-1])
    onehot = tf.one_hot(ids, tf.shape(logits)[-1], dtype=logits.dtype)
    true_logit = tf.reduce_sum(onehot * logits, axis=-1)
    other = tf.reduce_max(logits - onehot * tf.cast(1e9, logits.dtype), axis=-1)
    return true_logit, other


def margin(y_true: Any, logits: Any) -> tf.Tensor:
    """Carlini-Wagner logit margin ``max_{j != y} z_j - z_y`` (> 0: misclassified).

    Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", 2017.
    """
    true_logit, other = _true_and_best_other(y_true, logits)
    return other - true_logit


def dlr(y_true: Any, logits: Any) -> tf.Tensor:
    """Difference of logits ratio, shift- and scale-invariant (needs >= 3 classes).

    Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020: ``-(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3)``.
    """
    logits = tf.convert_to_tensor(logits)
    true_logit, other = _true_and_best_other(y_true, logits)
    top = _top(logits, 3)
    scale = top[..., 0] - top[..., 2] + tf.cast(1e-12, logits.dtype)
    return (other - true_logit) / scale


def _true_and_target(labels, logits):
    """`labels` is ``[B, 2]``: column 0 the true class, column 1 the target class."""
    logits = tf.convert_to_tensor(logits)
    ids = tf.cast(tf.convert_to_tensor(labels), tf.int32)
    return logits, _pick(logits, ids[:, 0]), _pick(logits, ids[:, 1])


def _top(logits, k: int):
    """The `k` largest logits per row, largest first: `tf.math.top_k`'s values and
    gradient, with the gradient taken through `_pick` (top_k's own is a scatter that XLA
    cannot compile on a batch of dynamic size)."""
    order = tf.math.top_k(tf.stop_gradient(logits), k=k).indices
    return tf.stack([_pick(logits, order[..., j]) for j in range(k)], axis=-1)


def _pick(logits, ids):
    """``logits[i, ids[i]]`` per row, as a masked sum: exact, and its gradient (a select)
    compiles under XLA on a batch of dynamic size, where `tf.gather`'s (a scatter) does not."""
    mask = tf.one_hot(ids, tf.shape(logits)[-1], on_value=True, off_value=False)
    return tf.reduce_sum(tf.where(mask, logits, tf.zeros_like(logits)), axis=-1)


def targeted_dlr(labels: Any, logits: Any) -> tf.Tensor:
    """Targeted difference of logits ratio, to maximise (needs >= 4 classes).

    Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020:
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``, with ``z_pi`` the sorted logits.

    Args:
        labels: ``[B, 2]`` class ids: column 0 the true class y, column 1 the target t.
        logits: ``[B, C]`` logits, C >= 4.

    >>> round(float(targeted_dlr([[0, 1]], [[4.0, 2.0, 1.0, 0.0]])[0]), 3)
    -0.571
    """
    logits, true_logit, target_logit = _true_and_target(labels, logits)
    top = _top(logits, 4)
    scale = top[..., 0] - 0.5 * (top[..., 2] + top[..., 3]) + tf.cast(1e-12, logits.dtype)
    return (target_logit - true_logit) / scale


def targeted_margin(labels: Any, logits: Any) -> tf.Tensor:
    """Targeted Carlini-Wagner margin ``z_t - z_y``, to maximise (any number of classes).

    Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", 2017. The
    fallback of `APGDTargeted` for models with fewer than 4 classes.

    Args:
        labels: ``[B, 2]`` class ids: column 0 the true class y, column 1 the target t.
        logits: ``[B, C]`` logits.

    >>> float(targeted_margin([[0, 1]], [[3.0, 1.0]])[0])
    -2.0
    """
    _, true_logit, target_logit = _true_and_target(labels, logits)
    return target_logit - true_logit


_BUILTIN: dict[str, tuple[LossFn, str]] = {
    "ce": (cross_entropy, "ce"),
    "cross_entropy": (cross_entropy, "ce"),
    "margin": (margin, "margin"),
    "cw": (margin, "margin"),
    "dlr": (dlr, "dlr"),
}

_KERAS_LABELS = {
    keras.losses.sparse_categorical_crossentropy: "sparse",
    keras.losses.categorical_crossentropy: "onehot",
    keras.losses.binary_crossentropy: "binary",
    keras.losses.categorical_focal_crossentropy: "onehot",
    keras.losses.binary_focal_crossentropy: "binary",
}


@dataclass(frozen=True, eq=False)
class LossSpec:
    """A loss as advgrad uses it.

    Attributes:
        fn: ``(y_true, y_pred) -> loss`` (any rank; reduced to one value per sample).
        name: for messages (default: the function's name).
        labels: "sparse" (class ids), "onehot", "binary", "any" (shaped like the output) or
            "inferred" (a custom loss: class ids or output-shaped labels, read from the labels'
            shape against the output; labels taken from predictions are class ids).
        from_logits: True/False for cross-entropies, None when it does not apply.
    """

    fn: LossFn
    name: str = ""
    labels: str = "any"
    from_logits: bool | None = None

    def __post_init__(self) -> None:
        if not self.name:  # LossSpec(fn, labels=...): named after the function
            name = getattr(self.fn, "__name__", None) or getattr(self.fn, "name", None)
            object.__setattr__(self, "name", str(name or type(self.fn).__name__))

    @property
    def is_classification(self) -> bool:
        return self.labels in ("sparse", "onehot")

    def per_sample(self, y_true: Any, y_pred: Any) -> tf.Tensor:
        """One loss value per sample (mean over any further axes); a scalar stays scalar."""
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.convert_to_tensor(y_true)
        if self.labels != "sparse":
            y_true = tf.cast(y_true, y_pred.dtype)
            if y_true.shape.rank == y_pred.shape.rank - 1 and y_pred.shape[-1] == 1:
                y_true = tf.expand_dims(y_true, -1)
        value = tf.convert_to_tensor(self.fn(y_true, y_pred))
        rank = value.shape.rank
        if rank == 0:
            warnings.warn(
                f"The loss {self.name!r} returned a single number for the whole batch, so "
                "gradients are of that number (e.g. scaled by 1/batch), not per sample. "
                "Return one value per sample (reduce over axis=-1 only) to get per-sample "
                "gradients.",
                UserWarning,
                stacklevel=2,
            )
            return value
        if rank is not None and rank > 1:
            value = tf.reduce_mean(value, axis=list(range(1, rank)))
        return value


def get(identifier: Any) -> LossSpec:
    """A `LossSpec` from a name ("ce", "margin", "dlr" or any Keras loss name), a
    `keras.losses.Loss`, a `LossSpec` or a callable ``(y_true, y_pred) -> per-sample loss``.

    Raises:
        ValueError: `identifier` is none of these.
    """
    if isinstance(identifier, LossSpec):
        return identifier
    expected = (
        "'ce', 'margin', 'dlr', a Keras loss name, a keras.losses.Loss "
        "or a callable (y_true, y_pred) -> per-sample loss"
    )
    if isinstance(identifier, str):
        if identifier.lower() in _BUILTIN:
            fn, name = _BUILTIN[identifier.lower()]
            return LossSpec(fn, name, "sparse", True)
        try:
            fn = keras.losses.get(identifier)
        except (ValueError, TypeError):
            raise invalid("loss", expected, identifier) from None
        return _from_keras(fn, identifier)
    if isinstance(identifier, keras.losses.Loss):
        inner = getattr(identifier, "fn", None)
        if not _is_keras(type(identifier)) or (inner is not None and not _is_keras(inner)):
            return LossSpec(identifier.call, identifier.name, "inferred", None)
        labels = _KERAS_LABELS.get(inner, "any")
        config = _safe_config(identifier)
        from_logits = config.get("from_logits") if labels != "any" else None
        return LossSpec(identifier.call, identifier.name, labels, from_logits)
    if callable(identifier):
        for fn, name in _BUILTIN.values():
            if identifier is fn:
                return LossSpec(fn, name, "sparse", True)
        return _from_keras(identifier, getattr(identifier, "__name__", repr(identifier)))
    raise invalid("loss", expected, identifier)


def _is_keras(obj: Any) -> bool:
    """Whether `obj` (a function or class) is Keras' own, not the user's."""
    module = getattr(obj, "__module__", None) or ""
    return module == "keras" or module.startswith("keras.")


def _from_keras(fn: LossFn, name: str) -> LossSpec:
    if fn not in _KERAS_LABELS and not _is_keras(fn):
        return LossSpec(fn, name, "inferred", None)
    labels = _KERAS_LABELS.get(fn, "any")
    return LossSpec(fn, name, labels, False if labels != "any" else None)


def _safe_config(loss: keras.losses.Loss) -> dict:
    try:
        return loss.get_config()
    except (NotImplementedError, TypeError, AttributeError):
        return {}


__all__ = [
    "LossSpec",
    "cross_entropy",
    "dlr",
    "get",
    "margin",
    "targeted_dlr",
    "targeted_margin",
]
