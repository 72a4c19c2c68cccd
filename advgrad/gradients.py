"""The input-gradient engine: dLoss/dInputs and dOutput/dInputs for any Keras model.

Inputs are converted to tensors by advgrad itself (never ``tape.watch`` on numpy), the loss is
resolved from the arguments or from ``model.compile`` (see `advgrad.objective`), and the
gradient runs in a `tf.function` traced once per model, loss and input signature (the batch
axis is left open, so batches of any size reuse one trace).

>>> import numpy as np, keras, advgrad
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
>>> model.compile(loss="mse")
>>> x, y = np.ones((2, 3)), np.zeros((2, 1))
>>> advgrad.input_gradients(model, x, y).shape
(2, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from advgrad._compile import compile_once, count_trace, trace_count
from advgrad._validation import invalid
from advgrad.models import ModelAdapter, select
from advgrad.nest import Structure
from advgrad.objective import Objective

REDUCTIONS = ("none", "mean")


@dataclass
class Inputs:
    """Validated inputs: the caller's structure, tensors by name (model order), and `wrt`."""

    adapter: ModelAdapter
    given: Structure
    tensors: dict[str, tf.Tensor]
    wrt: tuple[str, ...]
    returns_numpy: dict[str, bool]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.tensors)

    @property
    def batch_size(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    def specs(self) -> tuple[tf.TensorSpec, ...]:
        """TensorSpecs with an open batch axis: one trace serves every batch size."""
        return tuple(
            tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=_spec_name(n))
            for n, t in self.tensors.items()
        )

    def pack(self, leaves: dict[str, Any]) -> Any:
        """Lay out leaves the way the model's call expects them."""
        return self.adapter.pack_inputs(leaves, self.given)

    def give_back(self, values: dict[str, Any], wrt: Any) -> Any:
        """Results in the layout the caller asked for (numpy where the caller gave numpy)."""
        out = {
            n: v.numpy() if self.returns_numpy[n] and tf.is_tensor(v) else v
            for n, v in values.items()
        }
        if wrt is None:
            return self.given.pack([out[n] for n in self.given.names])
        if isinstance(wrt, (str, int)):
            return out[self.wrt[0]]
        return [out[n] for n in self.wrt]


def prepare_inputs(model: Any, x: Any, wrt: Any = None, argument: str = "x") -> Inputs:
    """Validate `x` (structure, shapes, dtypes, NaN) and `wrt`, and convert to tensors.

    Raises:
        ValueError: with the argument named, before any work starts.
    """
    adapter = ModelAdapter.of(model)
    given, leaves = adapter.split_inputs(x, argument)
    if any(v.shape[0] == 0 for v in leaves.values()):
        raise invalid(argument, "at least one sample (an empty batch has nothing to attack)", x)
    returns_numpy = {n: not tf.is_tensor(v) for n, v in leaves.items()}
    names = _resolve_wrt(wrt, given, tuple(leaves), argument)
    floating = [n for n, v in leaves.items() if tf.as_dtype(v.dtype).is_floating]
    for name, value in leaves.items():
        dtype = tf.as_dtype(value.dtype)
        model_dtype = adapter.input_dtype(name)
        if name in names and not (
            dtype.is_floating and (model_dtype is None or tf.as_dtype(model_dtype).is_floating)
        ):
            received = model_dtype if dtype.is_floating else dtype.name
            raise ValueError(
                f"Invalid value for argument `{given.label(argument, name)}`: expected "
                f"a floating-point input to differentiate, received dtype {received} for input "
                f"{name!r}. Integer inputs (such as embedding ids) are not differentiable: "
                f"leave them out with wrt={[n for n in floating if n != name]}."
            )
        if dtype.is_floating and bool(np.isnan(np.asarray(value)).any()):
            raise invalid(given.label(argument, name), "finite values (no NaN)", value)
    tensors = {n: tf.convert_to_tensor(v) for n, v in leaves.items()}
    return Inputs(adapter, given, tensors, names, returns_numpy)


def _resolve_wrt(wrt: Any, given: Structure, names: tuple[str, ...], argument: str):
    if wrt is None:
        return names
    items = [wrt] if isinstance(wrt, (str, int)) else wrt
    if not isinstance(items, Sequence) or not items:
        raise invalid("wrt", f"an input name or index, or a list of them, among {list(names)}", wrt)
    chosen = []
    for item in items:
        if isinstance(item, str) and item in names:
            chosen.append(item)
        elif isinstance(item, str) and item in given.names:
            chosen.append(names[given.names.index(item)])
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not 0 <= item < len(names):
                raise invalid("wrt", f"an input index in [0, {len(names)})", item)
            chosen.append(names[int(item)])
        else:
            raise invalid("wrt", f"input names among {list(names)} or indices", item)
    return tuple(chosen)


def _spec_name(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "input"


def label_specs(y: Any) -> Any:
    """TensorSpecs of labels with an open batch axis (one trace for every batch size)."""
    return tf.nest.map_structure(
        lambda v: tf.TensorSpec((None, *np.shape(v)[1:]), tf.as_dtype(np.asarray(v).dtype)), y
    )


def resolve_labels(objective: Objective, inputs: Inputs, y: Any, argument: str = "y") -> Any:
    """Validated labels; None means the model's own predictions (classification losses)."""
    if y is None:
        if not objective.is_classification:
            names = [t.spec.name for t in objective.terms]
            raise invalid(argument, f"targets for the loss {names} (it needs labels)", y)
        outputs = objective.forward(inputs.pack(inputs.tensors))
        return objective.labels_from_predictions(outputs)
    return objective.check_labels(y, inputs.batch_size, argument)


def input_gradients(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    loss: Any = None,
    wrt: Any = None,
    return_loss: bool = False,
    sample_weight: Any = None,
    reduction: str = "none",
    output: str | int | None = None,
) -> Any:
    """Gradient of the loss with respect to the model's inputs, dLoss/dInputs.

    With ``reduction="none"`` (default) gradients are per sample: sample i's gradient is that
    of its own loss L_i (the gradient of sum_i L_i), not scaled by 1/batch. With
    ``reduction="mean"`` it is the gradient of mean_i L_i (what ``model.fit`` sees).

    Args:
        model: a keras.Model (Sequential, functional, subclassed) or a callable on tensors.
        x: a numpy array, tensor, list or dict matching the model's inputs.
        y: labels in the form the loss expects. None: the model's own predictions (for a
            classification loss).
        loss: a Keras loss name, a keras.losses.Loss, a callable
            ``(y_true, y_pred) -> per-sample loss``, advgrad's "ce"/"margin"/"dlr", or a
            per-output dict/list. Default: the loss given to ``model.compile`` (with its loss
            weights, summed over outputs).
        wrt: None (every input, result shaped like `x`), an input name or index (one
            array), or a list of them (a list of arrays).
        return_loss: also return the loss (per sample, or the mean for "mean").
        sample_weight: optional per-sample weights, shape (batch,).
        reduction: "none" (per-sample gradients) or "mean".
        output: for a multi-output model, the output (name or index) whose loss to use;
            None sums the compiled losses of all outputs.

    Returns:
        Gradients with the structure, shapes and dtypes of `x` (numpy where `x` was numpy),
        or ``(loss, gradients)`` when `return_loss`.

    Raises:
        ValueError: bad input, named, before any work (no loss, wrong structure or shape,
            labels that do not fit, integer or NaN inputs, unknown `wrt`).

    >>> import numpy as np, keras, advgrad
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> g = advgrad.input_gradients(model, np.ones((4, 2), "float32"), [0, 1, 2, 0], loss="ce")
    >>> g.shape, g.dtype
    ((4, 2), dtype('float32'))
    """
    if reduction not in REDUCTIONS:
        raise invalid("reduction", f"one of {REDUCTIONS}", reduction)
    inputs = prepare_inputs(model, x, wrt)
    objective = Objective.resolve(inputs.adapter, loss, output)
    labels = resolve_labels(objective, inputs, y)
    weights = _sample_weight(sample_weight, inputs.batch_size)
    fn = loss_gradient_function(inputs, objective, reduction, label_specs(labels))
    per_sample, grads = fn(list(inputs.tensors.values()), labels, weights)
    values = inputs.give_back(dict(zip(inputs.wrt, grads, strict=True)), wrt)
    if not return_loss:
        return values
    loss_value = per_sample.numpy() if not tf.is_tensor(_first(x)) else per_sample
    if reduction == "mean":
        loss_value = (
            np.mean(loss_value)
            if isinstance(loss_value, np.ndarray)
            else (tf.reduce_mean(loss_value))
        )
    return loss_value, values


def _first(x: Any) -> Any:
    if isinstance(x, dict):
        return next(iter(x.values()))
    if isinstance(x, (list, tuple)):
        return x[0]
    return x


def _sample_weight(sample_weight: Any, batch: int) -> tf.Tensor:
    if sample_weight is None:
        return tf.ones((batch,), tf.float32)
    weights = np.asarray(sample_weight, dtype=np.float32)
    if weights.shape != (batch,) or not np.all(np.isfinite(weights)):
        raise invalid("sample_weight", f"finite weights of shape ({batch},)", sample_weight)
    return tf.constant(weights)


def value_and_grad(
    objective: Objective,
    inputs: Inputs,
    leaves: dict[str, tf.Tensor],
    y: Any,
    *,
    wrt: Sequence[str] | None = None,
    sample_weight: tf.Tensor | None = None,
    reduction: str = "none",
    negate: bool = False,
) -> tuple[tf.Tensor, Any, list[tf.Tensor]]:
    """The loss and its input gradients, for use inside a compiled function: the one tape of
    advgrad (`input_gradients` and every attack loop take their gradients from here).

    Args:
        objective: What the loss is (`Objective.resolve`).
        inputs: The validated inputs (their layout for the model's call, and `wrt`).
        leaves: ``{input name: tensor}`` to evaluate at (the attack's current iterate).
        y: Labels, as `objective.check_labels` returned them.
        wrt: Names of the inputs to differentiate; defaults to ``inputs.wrt``.
        sample_weight: Optional ``[B]`` weights of the per-sample losses.
        reduction: "none": the gradient of the sum (per-sample gradients); "mean": of the mean.
        negate: Take the loss with a minus sign (a targeted attack descends the loss).

    Returns:
        ``(per-sample loss, the outputs it was computed from, gradients)``, gradients in the
        order of `wrt` (zeros where the loss does not depend on an input).
    """

    def loss(outputs):
        per_sample = objective.per_sample(y, outputs)
        if negate:
            per_sample = -per_sample
        if sample_weight is not None and per_sample.shape.rank == 1:
            per_sample = per_sample * tf.cast(sample_weight, per_sample.dtype)
        return per_sample

    return _taped(objective, inputs, leaves, loss, wrt, mean=reduction != "none")


def output_value_and_grad(
    objective: Objective,
    inputs: Inputs,
    leaves: dict[str, tf.Tensor],
    fn: Any,
    *,
    wrt: Sequence[str] | None = None,
) -> tuple[tf.Tensor, Any, list[tf.Tensor]]:
    """A per-sample scalar of the outputs and its input gradients, for use inside a compiled
    function: the tape for attacks that differentiate something other than a loss (FAB's
    logit difference z_t - z_y, say).

    The outputs are those the objective reads (`Objective.forward`: the logits of a model
    ending in softmax, where they can be had), so ``fn`` sees class scores, not
    probabilities, whenever the objective does.

    Args:
        objective: Whose outputs to read (`Objective.resolve`).
        inputs: The validated inputs (their layout for the model's call, and `wrt`).
        leaves: ``{input name: tensor}`` to evaluate at.
        fn: ``outputs -> [B]`` tensor, one value per sample (no interaction between samples).
        wrt: Names of the inputs to differentiate; defaults to ``inputs.wrt``.

    Returns:
        ``(per-sample value, the outputs, gradients)``: sample i's gradient is that of its own
        value (the gradient of the sum), in the order of `wrt` (zeros where the value does not
        depend on an input).

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> inputs = prepare_inputs(model, np.ones((4, 2), "float32"))
    >>> objective = Objective.resolve(inputs.adapter, "ce", None)
    >>> margin = lambda z: z[:, 1] - z[:, 0]  # noqa: E731
    >>> value, _, grads = output_value_and_grad(objective, inputs, inputs.tensors, margin)
    >>> value.shape.as_list(), grads[0].shape.as_list()
    ([4], [4, 2])
    """
    return _taped(objective, inputs, leaves, fn, wrt, mean=False)


def _taped(objective, inputs, leaves, fn, wrt, mean: bool):
    """The one tape: ``fn(outputs)`` per sample, and the input gradients of its sum (or
    mean)."""
    watched = [leaves[n] for n in (inputs.wrt if wrt is None else wrt)]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        outputs = objective.forward(inputs.pack(leaves))
        value = fn(outputs)
        total = tf.reduce_mean(value) if mean else tf.reduce_sum(value)
    grads = tape.gradient(total, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return value, outputs, grads


def loss_gradient_function(inputs: Inputs, objective: Objective, reduction: str, y_specs):
    """The compiled ``(xs, y, sample_weight) -> (per-sample loss, grads)`` for this call."""
    key = (
        "loss_gradient",
        id(objective),
        inputs.given,
        inputs.wrt,
        reduction,
        inputs.specs(),
        spec_key(y_specs),
    )
    cache = inputs.adapter.cache
    if key not in cache:

        def compute(xs, y, sample_weight):
            count_trace("input_gradients")
            leaves = dict(zip(inputs.names, xs, strict=True))
            per_sample, _, grads = value_and_grad(
                objective, inputs, leaves, y, sample_weight=sample_weight, reduction=reduction
            )
            return per_sample, grads

        signature = [list(inputs.specs()), y_specs, tf.TensorSpec((None,), tf.float32)]
        cache[key] = compile_once(compute, signature)
    return cache[key]


def spec_key(specs: Any) -> Any:
    """A hashable cache key for a nest of TensorSpecs."""
    flat = tf.nest.flatten(specs)
    return (str(tf.nest.map_structure(lambda _: 0, specs)), tuple(flat))


def output_gradients(
    model: Any,
    x: Any,
    *,
    output_index: Any = None,
    output: str | int | None = None,
    wrt: Any = None,
) -> Any:
    """Gradient of a model output (or one unit of it) with respect to the inputs.

    No loss is involved: this is the saliency map (vanilla gradient).

    Args:
        model: a keras.Model or a callable on tensors.
        x: inputs, as for `input_gradients`.
        output_index: None (sum of all units of the output), an int (that unit on the last
            axis, e.g. a class), or an array of shape (batch,) (one unit per sample).
        output: which output of a multi-output model (name or index).
        wrt: as for `input_gradients`.

    Returns:
        Gradients shaped like `x` (or as `wrt` selects).

    >>> import numpy as np, keras, advgrad
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> advgrad.output_gradients(model, np.ones((1, 2), "float32"), output_index=1).shape
    (1, 2)
    """
    inputs = prepare_inputs(model, x, wrt)
    adapter = inputs.adapter
    key = adapter.output_key(output)
    if (
        key is None
        and adapter.output_structure is not None
        and len(adapter.output_structure.names) > 1
    ):
        raise invalid(
            "output", f"one of the model's outputs {list(adapter.output_structure.names)}", None
        )
    index = _output_index(output_index, inputs.batch_size, adapter.output_shape(key))
    fn_key = (
        "output_gradient",
        key,
        inputs.given,
        inputs.wrt,
        inputs.specs(),
        output_index is None,
    )
    if fn_key not in adapter.cache:
        names, wrt_names, whole = inputs.names, inputs.wrt, output_index is None

        def compute(xs, unit):
            count_trace("output_gradients")
            leaves = dict(zip(names, xs, strict=True))
            watched = [leaves[n] for n in wrt_names]
            with tf.GradientTape() as tape:
                tape.watch(watched)
                target = select(adapter(inputs.pack(leaves)), key)
                if not whole:
                    target = tf.gather(target, unit, axis=-1, batch_dims=1)
                total = tf.reduce_sum(target)
            return tape.gradient(total, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO)

        signature = [list(inputs.specs()), tf.TensorSpec((None,), tf.int32)]
        adapter.cache[fn_key] = compile_once(compute, signature)
    grads = adapter.cache[fn_key](list(inputs.tensors.values()), index)
    return inputs.give_back(dict(zip(inputs.wrt, grads, strict=True)), wrt)


def _output_index(output_index: Any, batch: int, shape: tuple | None) -> tf.Tensor:
    if output_index is None:
        return tf.zeros((batch,), tf.int32)
    units = shape[-1] if shape else None
    index = np.asarray(output_index)
    if not np.issubdtype(index.dtype, np.integer) or index.ndim > 1:
        raise invalid("output_index", "an int or int array of shape (batch,)", output_index)
    index = np.broadcast_to(index, (batch,)) if index.ndim == 0 else index
    if index.shape != (batch,) or index.min() < 0 or (units and index.max() >= units):
        raise invalid(
            "output_index", f"unit indices in [0, {units}) of shape ({batch},)", output_index
        )
    return tf.constant(index, tf.int32)


__all__ = [
    "input_gradients",
    "output_gradients",
    "output_value_and_grad",
    "prepare_inputs",
    "trace_count",
    "value_and_grad",
]
