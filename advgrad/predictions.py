"""What a classifier predicts, and whether a prediction is "fooled": decided in one place.

`Classes` reads class ids off a model's outputs (argmax over the last axis; for one unit, a
threshold: 0.5 on a sigmoid's probabilities, 0 on a logit) and off labels (ids or one-hot
rows). The attack loop uses it inside its compiled graph and `predicted_classes` uses it on
numpy, so the two can never disagree about what fooled a sample. A sample whose output is not
finite (a NaN or inf anywhere in its row) has no prediction: it is never correct and never
fooled (`Classes.finite`, `judge`).

>>> import numpy as np
>>> from advgrad import data, zoo
>>> model = zoo.load("digits-mlp")
>>> x = data.digits(flat=True).x_test[:4]
>>> predict(model, x).shape, predicted_classes(model, x).dtype
((4, 10), dtype('int64'))
>>> Classes(threshold=0.5).predicted(np.array([[0.7], [0.2]])).numpy().tolist()
[1, 0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from advgrad._compile import compile_once
from advgrad._validation import invalid
from advgrad.models import ModelAdapter
from advgrad.objective import Objective, check_not_multi_label, two_class, unit_reading

__all__ = ["Classes", "class_ids", "finite_rows", "judge", "predict", "predicted_classes"]


class Classes:
    """Class ids from outputs and labels, and the fooled test, in TensorFlow ops.

    Args:
        threshold: For a one-unit output, the value above which class 1 is predicted: 0.5
            for sigmoid probabilities, 0.0 for a logit.
    """

    def __init__(
        self,
        threshold: float = 0.0,
        *,
        key: Any = None,
        label: str | None = None,
        two_class: bool = False,
    ):
        self.threshold = float(threshold)
        self.key = key  # where the class scores are in the outputs read (None: all of them)
        self.label = label  # where their labels are in y (None: y itself)
        self.two_class = two_class  # a one-unit logit z is read as the pair (0, z)

    @classmethod
    def of(cls, adapter: ModelAdapter, output: Any = None, *, logits: bool = False) -> Classes:
        """How to read output `output` of a model: one unit that is a probability (after a
        sigmoid, or compiled as one: `advgrad.objective.unit_reading`) is thresholded at
        0.5 unless `logits` (the logit is what is read), a logit at 0.

        Raises:
            ArgumentError: the output is multi-label (several independent sigmoid units).
        """
        check_not_multi_label(adapter, output)
        probability = not logits and unit_reading(adapter, output) != "logit"
        return cls(0.5 if probability else 0.0)

    @classmethod
    def of_objective(cls, objective: Objective, classifier: Any = None) -> Classes | None:
        """How to read "fooled" off the outputs the objective computes.

        A single-loss objective reads its output. With a loss per output, `classifier` (an
        output name or index) names the output; None picks the only output whose loss is a
        classification loss, and no output at all when none is (nothing can be fooled).

        Raises:
            ArgumentError: `classifier` names no output with a classification loss, or
                several outputs have one and `classifier` is None.
        """
        terms = objective.terms
        if len(terms) == 1 and classifier is None:
            return cls._reading(objective, terms[0], label=None)
        candidates = [t for t in terms if t.spec.is_classification]
        if classifier is not None:
            chosen = [
                t
                for i, t in enumerate(terms)
                if classifier in (t.name, t.key)
                or (isinstance(classifier, int) and classifier == i)
            ]
            if not chosen or not chosen[0].spec.is_classification:
                expected = (
                    f"an output with a classification loss among {[t.name for t in candidates]}"
                )
                raise invalid("classifier", expected, classifier)
            term = chosen[0]
        elif len(candidates) == 1:
            term = candidates[0]
        elif not candidates:
            return None
        else:
            expected = f"the output that decides 'fooled', one of {[t.name for t in candidates]}"
            raise invalid("classifier", expected, classifier)
        return cls._reading(objective, term, label=term.name if len(terms) > 1 else None)

    @classmethod
    def _reading(cls, objective: Objective, term: Any, label: str | None) -> Classes:
        key = term.key if term.key is not None else objective.output
        shape = objective.adapter.output_shape(key)
        if objective.classifier and (shape is None or tuple(shape[-1:]) in ((), (1,))):
            # One unit, seen as the pair (0, z): thresholded as the model's own output is.
            reader = cls.of(objective.adapter, key)
            return cls(reader.threshold, key=term.key, label=label, two_class=True)
        reader = cls.of(objective.adapter, key, logits=objective.use_logits)
        return cls(reader.threshold, key=term.key, label=label)

    def scores(self, outputs: Any) -> Any:
        """The class scores among the outputs the objective computes (a one-unit logit as
        the two-class logits, where the objective reads it so: `Objective.view`)."""
        scores = outputs if self.key is None else outputs[self.key]
        return two_class(scores) if self.two_class else scores

    def labels(self, y: Any) -> Any:
        """Their labels among the (validated) labels of the objective."""
        return y if self.label is None else y[self.label]

    def predicted(self, outputs: Any) -> tf.Tensor:
        """Predicted class ids, ``[B]`` int64. The pair (0, z) of a one-unit output is
        decided as that unit is: ``sigmoid(z) > 0.5`` where the model gives probabilities
        (the same rounding as the model's own output, so the two never disagree), else
        ``z > 0``."""
        out = tf.convert_to_tensor(outputs)
        if self.two_class and out.shape[-1] == 2:
            out = out[:, 1:] - out[:, :1]
            out = tf.sigmoid(out) if self.threshold == 0.5 else out
        if out.shape.rank == 1 or out.shape[-1] == 1:
            return tf.cast(tf.reshape(out, [-1]) > tf.cast(self.threshold, out.dtype), tf.int64)
        return tf.argmax(out, axis=-1)

    @staticmethod
    def truth(y: Any) -> dict[str, tf.Tensor]:
        """The labels as ``[B]`` int64 ids, both ways a label can be read: ``"binary"``
        (label > 0.5, for a one-unit output) and ``"classes"`` (argmax of one-hot rows, else
        the ids). Read once per batch; `fooled` picks the one that fits the output."""
        labels = tf.convert_to_tensor(y)
        one_hot = labels.shape.rank is not None and labels.shape.rank >= 2
        if one_hot and labels.shape[-1] != 1:
            classes = tf.argmax(labels, axis=-1)
        else:
            classes = tf.reshape(tf.cast(labels, tf.int64), [-1])
        binary = tf.cast(tf.reshape(tf.cast(labels, tf.float32), [-1]) > 0.5, tf.int64)
        return {"binary": binary, "classes": classes}

    @staticmethod
    def finite(outputs: Any) -> tf.Tensor:
        """Per sample (``[B]`` bool): every value of its output is finite."""
        out = tf.convert_to_tensor(outputs)
        if not out.dtype.is_floating:
            return tf.ones(tf.shape(out)[:1], tf.bool)
        rows = tf.reshape(out, [tf.shape(out)[0], -1])
        return tf.reduce_all(tf.math.is_finite(rows), axis=1)

    def fooled(self, outputs: Any, truth: dict[str, tf.Tensor], targeted: bool) -> tf.Tensor:
        """Per sample: the prediction differs from the label (equals it when `targeted`), and
        the output is finite (a NaN or inf output fools nobody)."""
        out = tf.convert_to_tensor(outputs)
        labels = truth["binary"] if out.shape.rank == 1 or out.shape[-1] == 1 else truth["classes"]
        predicted = self.predicted(out)
        hit = tf.equal(predicted, labels) if targeted else tf.not_equal(predicted, labels)
        return hit & self.finite(out)


def predict(model: Any, x: Any) -> np.ndarray:
    """The model's output on `x` (inference mode), as numpy: logits or probabilities.

    Runs in a `tf.function` cached per model (one trace serves every batch size).

    Args:
        model: A keras.Model or a callable on tensors with one classification output.
        x: An array, or a list or dict of arrays, matching the model's inputs.

    Returns:
        Array of shape ``[batch, classes]`` (or ``[batch, 1]`` for a binary output).

    Raises:
        ValueError: If the model has several outputs.
    """
    adapter = ModelAdapter.of(model)
    given, leaves = adapter.split_inputs(x)
    tensors = [tf.convert_to_tensor(v) for v in leaves.values()]
    specs = tuple(tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in tensors)
    key = ("predict", given, tuple(leaves), specs)
    fn = adapter.cache.get(key)
    if fn is None:  # one trace per input signature, whatever the batch size
        names = tuple(leaves)

        def forward(*values):
            return adapter(adapter.pack_inputs(dict(zip(names, values, strict=True)), given))

        fn = compile_once(forward, specs)
        adapter.cache[key] = fn
    outputs = tf.nest.flatten(fn(*tensors))
    if len(outputs) != 1:
        raise invalid("model", "a model with a single classification output", model)
    return np.asarray(outputs[0])


def predicted_classes(model: Any, x: Any, outputs: np.ndarray | None = None) -> np.ndarray:
    """Predicted class ids, as `Classes` reads them: argmax over the last axis, or a
    threshold for one unit (0.5 after a sigmoid, else 0).

    Args:
        model: As for `predict`.
        x: Inputs, as for `predict`.
        outputs: The model's outputs on `x` when already computed. Defaults to None.

    Returns:
        int64 array ``[batch]``.
    """
    out = predict(model, x) if outputs is None else np.asarray(outputs)
    return Classes.of(ModelAdapter.of(model)).predicted(out).numpy()


def finite_rows(outputs: Any) -> np.ndarray:
    """Per sample (``[B]`` bool): every value of its output is finite.

    >>> finite_rows(np.array([[0.0, 1.0], [np.nan, 1.0], [np.inf, 0.0]])).tolist()
    [True, False, False]
    """
    out = np.asarray(outputs)
    if not np.issubdtype(out.dtype, np.floating):
        return np.ones(len(out), bool)
    return np.isfinite(out.reshape(len(out), -1)).all(axis=1)


def judge(
    model: Any, x: Any, truth: np.ndarray, outputs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample ``(predicted, correct, finite)``, as `advgrad.evaluate` decides them: a
    sample whose output is not finite is never correct (nor, on an adversarial input,
    fooled: ``fooled = ~correct & finite``).

    Args:
        model: As for `predict`.
        x: Inputs, as for `predict`.
        truth: Class ids ``[B]`` (`class_ids`).
        outputs: The model's outputs on `x` when already computed. Defaults to None.
    """
    out = predict(model, x) if outputs is None else np.asarray(outputs)
    predicted = predicted_classes(model, x, out)
    finite = finite_rows(out)
    return predicted, (predicted == truth) & finite, finite


def class_ids(y: Any) -> np.ndarray:
    """Integer class ids from labels given as ids (``[B]`` or ``[B, 1]``) or one-hot rows.

    >>> class_ids([[0, 1], [1, 0]]).tolist(), class_ids([3, 1]).tolist()
    ([1, 0], [3, 1])
    """
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] > 1:
        return np.argmax(array, axis=1).astype(np.int64)
    return array.reshape(len(array)).astype(np.int64)
