"""What a gradient is taken of: the loss of a model's outputs, explicit or compiled.

`Objective.resolve(adapter, loss, output)` turns an explicit `loss`, or the loss given to
`model.compile` (a string, object, function, or per-output dict/list with loss weights), into
per-output terms, warns when the loss and the model's final activation disagree, checks
labels before any work, and computes one loss value per sample.

>>> import keras
>>> from advgrad.models import ModelAdapter
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
>>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> objective = Objective.resolve(ModelAdapter.of(model), None, None)
>>> [t.spec.labels for t in objective.terms]
['sparse']
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from advgrad import losses
from advgrad._validation import ArgumentError, describe, invalid
from advgrad.models import ModelAdapter, full_precision, select

CLASS_LOGIT_LOSSES = ("ce", "margin", "dlr")
"""Names of the losses that read class logits (advgrad's own, and APGD-T's targeted ones)."""


@dataclass(frozen=True, eq=False)
class Term:
    """One loss on one output (`key` None: the model's only, or selected, output)."""

    key: str | int | None
    name: str | None
    spec: losses.LossSpec
    weight: float = 1.0


class Objective:
    """Per-sample loss over a model's outputs; build it with `Objective.resolve`."""

    def __init__(
        self,
        adapter: ModelAdapter,
        terms: list[Term],
        output,
        use_logits: bool,
        classifier: bool = False,
        probability_unit: bool = False,
    ):
        self.adapter = adapter
        self.terms = tuple(terms)
        self.output = output
        self.use_logits = use_logits
        # The loss reads class logits (ce, margin, dlr): a one-unit output is seen as the
        # two-class pair (0, z) (`two_class`), by the loss here and by `Classes.scores`.
        self.classifier = classifier
        self._probability_unit = probability_unit  # one unit p, no sigmoid to strip: logit(p)
        self._logits_model = _logits_model(adapter, output) if use_logits else None

    # ------------------------------------------------------------ resolution
    @classmethod
    def resolve(cls, adapter: ModelAdapter, loss: Any, output: Any) -> Objective:
        """The objective for an explicit `loss` (wins) or the compiled one; cached."""
        key = adapter.output_key(output)
        compiled = getattr(adapter.model, "loss", None) if loss is None else None
        cache_key = ("objective", _identity(loss), _identity(compiled), key)
        if cache_key not in adapter.cache:
            adapter.cache[cache_key] = cls._build(adapter, loss, key)
        return adapter.cache[cache_key]

    @classmethod
    def _build(cls, adapter: ModelAdapter, loss: Any, key) -> Objective:
        given = loss if loss is not None else getattr(adapter.model, "loss", None)
        if given is None:
            raise ValueError(
                "Invalid value for argument `loss`: expected a loss (a Keras loss name, a "
                "keras.losses.Loss or a callable (y_true, y_pred) -> per-sample loss), or a "
                "model compiled with one; received loss=None and the model was not compiled "
                "with a loss. Pass e.g. loss='sparse_categorical_crossentropy' or call "
                "model.compile(loss=...)."
            )
        weights = None if loss is not None else compiled_loss_weights(adapter.model)
        terms = _terms(adapter, given, key, weights)
        if not terms:
            raise invalid("loss", "a loss for at least one output", given)
        for term in terms:
            _warn_on_activation_mismatch(adapter, term, key)
        single = key if key is not None else (terms[0].key if len(terms) == 1 else None)
        classifier = len(terms) == 1 and terms[0].spec.name in CLASS_LOGIT_LOSSES
        reading = unit_reading(adapter, single) if classifier else None
        use_logits = (
            classifier
            and adapter.final_layer(single) is not None
            and (adapter.final_activation(single) == "softmax" or reading == "sigmoid")
        )
        if classifier:
            terms = [Term(None, terms[0].name, terms[0].spec, terms[0].weight)]
            key = single
        return cls(adapter, terms, key, use_logits, classifier, reading == "probability")

    # --------------------------------------------------------------- compute
    def forward(self, inputs: Any) -> Any:
        """The outputs the loss reads: the selected output, as logits where possible, in
        float32 at least (`advgrad.models.full_precision`: a mixed-precision model's
        half-precision outputs are cast here, so losses and gradients run in float32)."""
        if self._logits_model is not None:
            return full_precision(self._logits_model(inputs))
        outputs = select(self.adapter(inputs), self.output)
        return logit(outputs) if self._probability_unit else outputs

    def view(self, outputs: Any) -> Any:
        """The class scores a classification loss reads off `forward`'s outputs: a one-unit
        logit z as the two-class logits (0, z) (`two_class`); any other output as it is."""
        return two_class(outputs) if self.classifier else outputs

    def class_count(self, key: str | int | None = None) -> int | None:
        """The number of classes of output `key` (default: the objective's) as the loss
        sees them: 2 for a one-unit output under a classification loss (None: not known)."""
        shape = self.adapter.output_shape(key if key is not None else self.output)
        if not shape or shape[-1] is None:
            return None
        return 2 if self.classifier and shape[-1] == 1 else int(shape[-1])

    def per_sample(self, y: Any, outputs: Any) -> tf.Tensor:
        """Weighted sum of the terms, one value per sample (or a scalar, see LossSpec)."""
        total = None
        outputs = self.view(outputs)
        for term in self.terms:
            labels = y if len(self.terms) == 1 else y[term.name]
            value = term.spec.per_sample(labels, select(outputs, term.key))
            value = value * tf.cast(term.weight, value.dtype) if term.weight != 1.0 else value
            total = value if total is None else total + tf.cast(value, total.dtype)
        return total

    @property
    def is_classification(self) -> bool:
        """Every term takes class labels: a classification loss, or a custom ("inferred")
        loss on an output that is not known to have a single unit."""
        return all(
            t.spec.is_classification or (t.spec.labels == "inferred" and self._classes(t) != 1)
            for t in self.terms
        )

    def _shape(self, term: Term) -> tuple | None:
        return self.adapter.output_shape(term.key if term.key is not None else self.output)

    def _classes(self, term: Term) -> int | None:
        """The output's number of units (1 for a per-sample scalar; None: not known)."""
        shape = self._shape(term)
        if shape is None:
            return None
        return shape[-1] if shape else 1

    # ---------------------------------------------------------------- labels
    def labels_from_predictions(self, outputs: Any) -> Any:
        """Labels from the model's own predictions (for a classification loss).

        A custom ("inferred") loss gets class ids, shape ``(B,)``, the form `model.fit` takes
        with an output of shape ``(B, C)``, C > 1; on a one-unit output there is no telling
        what its labels would be, so `y` must be given.
        """
        if self.classifier:
            check_not_multi_label(self.adapter, self.output)
        values = []
        outputs = self.view(outputs)
        for term in self.terms:
            predicted = np.asarray(select(outputs, term.key))
            if term.spec.labels == "inferred" and (predicted.ndim < 2 or predicted.shape[-1] < 2):
                raise ValueError(
                    f"Invalid value for argument `y`: expected labels for the loss "
                    f"{term.spec.name!r}; received y=None. advgrad takes labels from the "
                    "model's predictions for a classification loss only, and cannot tell what "
                    f"labels a custom loss on a one-unit output (shape {predicted.shape}) "
                    "wants (0/1 classes, +-1, a regression target?). Pass `y`."
                )
            ids = predicted.argmax(axis=-1)
            if term.spec.labels == "onehot":
                values.append(np.eye(predicted.shape[-1], dtype=predicted.dtype)[ids])
            else:
                values.append(ids.astype(np.int64))
        if len(values) == 1:
            return values[0]
        return {t.name: v for t, v in zip(self.terms, values, strict=True)}

    def check_labels(self, y: Any, batch: int | None, argument: str = "y") -> Any:
        """Validate `y` for every term; returns the labels as numpy arrays."""
        if y is None:
            raise invalid(argument, "labels for the loss", y)
        if self.classifier:  # class labels of independent sigmoid units mean nothing
            check_not_multi_label(self.adapter, self.output)
        if len(self.terms) == 1:
            return self._check_one(self.terms[0], y, batch, argument)
        if isinstance(y, Mapping):
            missing = [t.name for t in self.terms if t.name not in y]
            if missing:
                raise invalid(argument, f"a dict with labels for outputs {missing}", y)
            return {
                t.name: self._check_one(t, y[t.name], batch, f"{argument}[{t.name!r}]")
                for t in self.terms
            }
        if isinstance(y, Sequence) and len(y) == len(self.terms):
            return {
                t.name: self._check_one(t, v, batch, f"{argument}[{i}]")
                for i, (t, v) in enumerate(zip(self.terms, y, strict=True))
            }
        names = [t.name for t in self.terms]
        raise invalid(argument, f"a dict or list of labels for the outputs {names}", y)

    def _check_one(self, term: Term, y: Any, batch: int | None, argument: str) -> np.ndarray:
        y = np.asarray(y)
        shape = self.adapter.output_shape(term.key if term.key is not None else self.output)
        classes = self.class_count(term.key) if shape else None
        if y.ndim == 0 or (batch is not None and y.shape[0] != batch):
            raise invalid(argument, f"labels with batch size {batch} (one per sample)", y)
        kind = term.spec.labels
        if kind == "inferred":
            kind = _infer_labels(term, y, shape, batch, argument)
        if kind == "sparse":
            if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
                hint = " (one-hot labels need a categorical loss)" if y.ndim == 2 else ""
                raise invalid(argument, f"class ids of shape ({batch},){hint}", y)
            if not np.issubdtype(y.dtype, np.integer):
                if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                    raise invalid(argument, "integer class ids", y)
                y = y.astype(np.int64)
            if y.size and (y.min() < 0 or (classes is not None and y.max() >= classes)):
                bound = f"[0, {classes})" if classes is not None else ">= 0"
                raise ValueError(
                    f"Invalid value for argument `{argument}`: expected class ids in {bound}, "
                    f"received values from {y.min()} to {y.max()}."
                )
            return y
        if not np.issubdtype(y.dtype, np.number) or np.any(~np.isfinite(y)):
            raise invalid(argument, "finite numeric labels", y)
        if kind == "onehot":
            if y.ndim != 2 or (classes is not None and y.shape[1] != classes):
                raise invalid(
                    argument,
                    f"one-hot labels of shape ({batch}, {classes}) (class ids need a sparse loss)",
                    y,
                )
            return y
        if shape is not None:
            per_sample = tuple(y.shape[1:])
            fits = per_sample == tuple(shape) or (per_sample == () and tuple(shape) == (1,))
            if not fits and None not in shape:
                raise invalid(
                    argument, f"labels of shape ({batch}, {', '.join(map(str, shape))})", y
                )
        return y


# ------------------------------------------------------- one unit: a binary classifier
def two_class(logits: Any) -> Any:
    """The two-class logits ``(0, z)`` of a one-unit logit ``z`` (softmax of the pair is
    ``(1 - sigmoid(z), sigmoid(z))``); an output with several units is returned as it is.

    >>> two_class(tf.constant([[1.5], [-2.0]])).numpy().tolist()
    [[0.0, 1.5], [0.0, -2.0]]
    """
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank == 1:
        logits = logits[:, None]
    elif logits.shape.rank is None or logits.shape[-1] != 1:
        return logits
    return tf.concat([tf.zeros_like(logits), logits], axis=-1)


def logit(probabilities: Any) -> tf.Tensor:
    """``log(p / (1 - p))``, p clipped to [eps, 1 - eps] (Keras' epsilon) to stay finite.

    >>> round(float(logit(tf.constant(0.75))), 4)
    1.0986
    """
    p = tf.convert_to_tensor(probabilities)
    eps = tf.cast(keras.config.epsilon(), p.dtype)
    p = tf.clip_by_value(p, eps, 1 - eps)
    return tf.math.log(p) - tf.math.log1p(-p)


def unit_reading(adapter: ModelAdapter, key: str | int | None = None) -> str:
    """How a one-unit output is read, decided once for the loss and for "fooled":
    ``"sigmoid"`` (a final sigmoid, stripped to read the logit), ``"probability"`` (no
    sigmoid to strip, but the compiled loss is a binary cross-entropy on probabilities) or
    ``"logit"`` (anything else, e.g. ``BinaryCrossentropy(from_logits=True)``).

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, "sigmoid")])
    >>> unit_reading(ModelAdapter.of(model))
    'sigmoid'
    """
    if adapter.final_activation(key) == "sigmoid":
        return "sigmoid"
    spec = _compiled_spec(adapter, key)
    if spec is not None and spec.labels == "binary" and spec.from_logits is False:
        return "probability"
    return "logit"


def reads_probabilities(adapter: ModelAdapter, key: str | int | None = None) -> bool:
    """Whether output `key` gives probabilities (a final softmax, or one unit read as a
    probability: `unit_reading`), not logits.

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> reads_probabilities(ModelAdapter.of(model))
    False
    """
    if adapter.final_activation(key) == "softmax":
        return True
    shape = adapter.output_shape(key)
    return (
        shape is not None
        and tuple(shape[-1:]) in ((), (1,))
        and (unit_reading(adapter, key) != "logit")
    )


def _compiled_spec(adapter: ModelAdapter, key) -> losses.LossSpec | None:
    """The compiled loss of output `key` (None: none, or not one that can be read)."""
    compiled = getattr(adapter.model, "loss", None)
    if compiled is None:
        return None
    try:
        terms = _terms(adapter, compiled, key, None)
    except ValueError:
        return None
    return terms[0].spec if len(terms) == 1 else None


def check_not_multi_label(adapter: ModelAdapter, key: str | int | None = None) -> None:
    """Refuse a multi-label output (k > 1 independent sigmoid units) where classes are read.

    Raises:
        ArgumentError: the output has several units and ends in a sigmoid (unless compiled
            with a categorical loss), or is compiled with a binary cross-entropy.
    """
    shape = adapter.output_shape(key)
    if not shape or shape[-1] is None or shape[-1] < 2:
        return
    spec = _compiled_spec(adapter, key)
    sigmoid = adapter.final_activation(key) == "sigmoid"
    if (spec is not None and spec.labels == "binary") or (
        sigmoid and (spec is None or not spec.is_classification)
    ):
        units = shape[-1]
        expected = (
            "a classifier (softmax or logits over classes, or one sigmoid unit: binary); to "
            "attack label j of a multi-label model, attack its binary classifier "
            "advgrad.label_classifier(model, j)"
        )
        received = f"{units} independent sigmoid units (multi-label, shape (batch, {units}))"
        raise ArgumentError(
            "model",
            f"expected {expected}, received a model with {received}.",
            expected=expected,
            received=received,
        )


def label_classifier(model: Any, label: int, *, output: str | int | None = None) -> Any:
    """One label of a multi-label model (independent sigmoid units) as a binary classifier:
    a model whose one unit is that label's logit, compiled with a binary cross-entropy on
    logits, for every attack, suite and workflow (labels: 1 where the label is on).

    Args:
        model: A Keras model whose output (or output `output`) has one unit per label.
        label: Which unit, in ``[0, units)``.
        output: For a model with several outputs, the one holding the labels.

    Raises:
        ArgumentError: `label` is not a unit of the output, or `output` is not an output.

    >>> multi = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "sigmoid")])
    >>> one = label_classifier(multi, 2)
    >>> x = np.ones((2, 4), "float32")
    >>> bool(np.allclose(tf.sigmoid(one(x))[:, 0], multi(x)[:, 2], atol=1e-6))
    True
    """
    adapter = ModelAdapter.of(model)
    key = adapter.output_key(output)
    shape = adapter.output_shape(key)
    units = shape[-1] if shape else None
    whole = isinstance(label, (int, np.integer)) and not isinstance(label, bool)
    if not whole or label < 0 or (units is not None and label >= units):
        bound = f"[0, {units})" if units is not None else ">= 0"
        raise invalid("label", f"a unit of the model's output: an integer in {bound}", label)
    reading = unit_reading(adapter, key)
    if reading == "sigmoid":  # the final sigmoid stripped: every label's logit
        scores, from_logits = _logits_model(adapter, key), True
    else:
        scores, from_logits = (lambda inputs: select(adapter(inputs), key)), reading == "logit"
    return _Label(scores, int(label), from_logits=from_logits)


class _Label(keras.Model):
    """`label_classifier`'s model: unit `label` of `scores(inputs)`, compiled with a binary
    cross-entropy (on logits, or on probabilities where no sigmoid could be stripped)."""

    def __init__(self, scores: Any, label: int, *, from_logits: bool):
        super().__init__(name=f"label_{label}")
        self._scores, self._label = scores, label
        self.compile(loss=keras.losses.BinaryCrossentropy(from_logits=from_logits))

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self._scores(inputs)[..., self._label : self._label + 1]


# ------------------------------------------------------------------ helpers
def _infer_labels(term: Term, y: np.ndarray, shape: tuple | None, batch, argument: str) -> str:
    """The label format of a custom loss, read as Keras would: class ids ("sparse") of shape
    ``(B,)`` or ``(B, 1)`` for an output of shape ``(B, C)``, C > 1; labels shaped like the
    output ("any") otherwise, and whenever the output's shape is not known."""
    if shape is None or len(shape) != 1 or shape[-1] is None or shape[-1] == 1:
        return "any"
    per_sample = tuple(y.shape[1:])
    if per_sample in ((), (1,)):
        return "sparse"
    if per_sample == tuple(shape):
        return "any"
    raise ValueError(
        f"Invalid value for argument `{argument}`: expected class ids of shape ({batch},) or "
        f"({batch}, 1), or labels of shape ({batch}, {shape[-1]}), for the custom loss "
        f"{term.spec.name!r} (its labels' form is read from their shape against the "
        f"output's, as model.fit takes them); received labels of shape {y.shape}. To say "
        "which labels the loss takes, pass "
        'loss=advgrad.losses.LossSpec(fn, labels="sparse") (class ids), labels="onehot" or '
        'labels="any" (shaped like the output).'
    )


def _identity(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return ("id", id(value))


def compiled_loss_weights(model: Any) -> Any:
    """The ``loss_weights`` `model` was compiled with (None if none were given)."""
    compile_loss = getattr(model, "_compile_loss", None)
    return getattr(compile_loss, "_user_loss_weights", None)


def _terms(adapter: ModelAdapter, given: Any, key, weights) -> list[Term]:
    """Per-output terms of `given`, restricted to output `key` when it is set."""
    structure = adapter.output_structure
    names = structure.names if structure is not None else None
    if isinstance(given, Mapping) or (isinstance(given, Sequence) and not isinstance(given, str)):
        if names is None:
            raise invalid("loss", "a single loss for a model whose outputs are not known", given)
        items = _per_output(given, names, "loss")
        weight_items = _per_output(weights, names, "loss_weights") if weights else {}
        chosen = [n for n in names if items.get(n) is not None]
        if key is not None:
            name = key if isinstance(key, str) else names[key]
            chosen = [name] if items.get(name) is not None else []
            if not chosen:
                raise invalid("output", "an output that has a loss", key)
            return [Term(None, name, losses.get(items[name]), 1.0)]
        return [
            Term(_key(structure, n), n, losses.get(items[n]), float(weight_items.get(n, 1.0)))
            for n in chosen
        ]
    spec = losses.get(given)
    if key is not None or names is None or len(names) == 1:
        name = names[0] if names and key is None else (key if isinstance(key, str) else None)
        return [Term(None, name, spec)]
    return [Term(_key(structure, n), n, spec) for n in names]


def _per_output(given: Any, names: Sequence[str], argument: str) -> dict:
    if isinstance(given, Mapping):
        unknown = [k for k in given if k not in names]
        if unknown:
            raise invalid(argument, f"keys among the model's outputs {list(names)}", unknown)
        return dict(given)
    if len(given) != len(names):
        raise invalid(argument, f"{len(names)} entries, one per output {list(names)}", given)
    return dict(zip(names, given, strict=True))


def _key(structure, name: str):
    return name if structure.kind == "dict" else structure.names.index(name)


def _warn_on_activation_mismatch(adapter: ModelAdapter, term: Term, key) -> None:
    spec = term.spec
    if spec.from_logits is None or spec.name in ("ce", "margin", "dlr"):
        return
    where = term.key if term.key is not None else key
    activation = adapter.final_activation(where)
    if adapter.final_layer(where) is None:
        return  # a subclassed model: its last activation is not known
    squash = "sigmoid" if spec.labels == "binary" else "softmax"
    if spec.from_logits and activation in ("softmax", "sigmoid"):
        warnings.warn(
            f"The model ends in {activation}, but its loss {spec.name!r} has "
            "from_logits=True: probabilities are treated as logits, so the loss and its "
            "gradients are wrong. Use from_logits=False, or remove the final "
            f"{activation} (better for attacks: logits keep gradients from vanishing).",
            UserWarning,
            stacklevel=4,
        )
    elif spec.from_logits is False and activation != squash:
        warnings.warn(
            f"The model's output is not a {squash} (it looks like logits), but its loss "
            f"{spec.name!r} has from_logits=False: the loss squashes raw outputs as if "
            "they were probabilities, so gradients are wrong or vanish. Use "
            f"from_logits=True (e.g. keras.losses.{_class_name(spec)}(from_logits=True)).",
            UserWarning,
            stacklevel=4,
        )


def _class_name(spec: losses.LossSpec) -> str:
    return {
        "sparse": "SparseCategoricalCrossentropy",
        "onehot": "CategoricalCrossentropy",
        "binary": "BinaryCrossentropy",
    }[spec.labels]


def _logits_model(adapter: ModelAdapter, key):
    """A callable giving the pre-softmax tensor of a model ending in softmax.

    The final layer's own ``call`` runs on a stand-in whose activation is linear and whose
    every other attribute (weights, options) is the layer's: the user's layer is never
    changed, not even for a moment (another thread may be using it).
    """
    layer = adapter.final_layer(key)
    pre = keras.Model(adapter.model.inputs, layer.input)
    if isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)):
        return lambda inputs: pre(inputs, training=False)
    linear = _WithoutActivation(layer)
    call = type(layer).call

    def logits(inputs):
        return call(linear, pre(inputs, training=False))

    return logits


class _WithoutActivation:
    """A read-only stand-in for a layer: its attributes, but a linear activation."""

    activation = staticmethod(keras.activations.linear)

    def __init__(self, layer: Any):
        object.__setattr__(self, "_layer", layer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot set {name!r}: the layer is read-only here")


__all__ = [
    "CLASS_LOGIT_LOSSES",
    "Objective",
    "Term",
    "check_not_multi_label",
    "describe",
    "label_classifier",
    "logit",
    "reads_probabilities",
    "two_class",
    "unit_reading",
]
