"""A Keras model seen the way advgrad needs it: named inputs, outputs, final activation.

`ModelAdapter` reads a model once (input names, shapes and dtypes, output names, whether it
ends in softmax) and validates what callers pass against it, so that errors name the
argument before any work starts.

>>> import keras
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
>>> adapter = ModelAdapter.of(model)
>>> adapter.input_structure.kind, adapter.final_activation()
('single', 'softmax')
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from advgrad._backend import require_tensorflow_backend
from advgrad._validation import describe, invalid
from advgrad.nest import Structure

require_tensorflow_backend()  # Keras must run on TensorFlow (a clear error if not)


@dataclass(frozen=True)
class InputSpec:
    """Shape (without the batch axis; None = any) and dtype of one model input."""

    shape: tuple[int | None, ...] | None
    dtype: str | None


_ADAPTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ModelAdapter:
    """Reads a keras.Model (or any callable on tensors) once; use `ModelAdapter.of(model)`."""

    def __init__(self, model: Any):
        if not callable(model):
            raise invalid("model", "a keras.Model or a callable", model, cls=TypeError)
        self.model = model
        self.input_structure, inputs = _read_nest(model, "inputs")
        self.input_specs = (
            None
            if inputs is None
            else {n: _spec_of(t) for n, t in zip(self.input_structure.names, inputs, strict=True)}
        )
        self.output_structure, outputs = _read_nest(model, "outputs")
        self.output_shapes = None if outputs is None else [tuple(t.shape[1:]) for t in outputs]
        self.cache: dict = {}  # compiled functions of the engine and the attacks

    @classmethod
    def of(cls, model: Any) -> ModelAdapter:
        """The adapter of `model`, created once and kept while the model lives."""
        if isinstance(model, ModelAdapter):
            return model
        try:
            adapter = _ADAPTERS.get(model)
        except TypeError:  # not weak-referenceable
            return cls(model)
        if adapter is None:
            adapter = cls(model)
            _ADAPTERS[model] = adapter
        return adapter

    # ----------------------------------------------------------------- inputs
    def split_inputs(self, x: Any, argument: str = "x") -> tuple[Structure, dict[str, Any]]:
        """Validate `x` against the model's inputs.

        Returns the caller's structure (to give results back the same way) and an ordered
        ``{input name: array or tensor}`` in the model's input order.
        """
        if x is None:
            raise invalid(argument, "an array, a tensor, a list or a dict of them", x)
        model_structure = self.input_structure
        if model_structure is None:  # subclassed model: take the caller's structure as is
            given = Structure.of(x)
            leaves = dict(zip(given.names, given.leaves(x), strict=True))
        else:
            given, leaves = self._match(x, model_structure, argument)
        batch = None
        for name, value in leaves.items():
            shape = getattr(value, "shape", None)
            if shape is None or not hasattr(value, "dtype"):
                value = np.asarray(value)
                leaves[name] = value
                shape = value.shape
            label = given.label(argument, name)
            if len(shape) < 1:
                raise invalid(label, "an array with a batch axis (rank >= 1)", value)
            spec = (self.input_specs or {}).get(name)
            if (
                spec is not None
                and spec.shape is not None
                and (
                    len(shape) - 1 != len(spec.shape)
                    or any(
                        want is not None and got is not None and want != got
                        for want, got in zip(spec.shape, tuple(shape)[1:], strict=False)
                    )
                )
            ):
                raise invalid(
                    label,
                    f"shape (batch, {', '.join(str(d) for d in spec.shape)}) "
                    f"for model input {name!r}",
                    value,
                )
            if batch is None:
                batch = shape[0]
            elif shape[0] is not None and batch is not None and shape[0] != batch:
                raise invalid(argument, f"the same batch size ({batch}) for every input", value)
        return given, leaves

    def _match(self, x: Any, model_structure: Structure, argument: str):
        names = model_structure.names
        if isinstance(x, Mapping):
            unknown = [k for k in x if k not in names]
            missing = [n for n in names if n not in x]
            if unknown or missing:
                parts = []
                if unknown:
                    parts.append(f"unknown key(s) {unknown}")
                if missing:
                    parts.append(f"missing key(s) {missing}")
                raise ValueError(
                    f"Invalid value for argument `{argument}`: expected a dict with keys "
                    f"{list(names)} (the model's inputs), received {'; '.join(parts)}."
                )
            given = Structure("dict", tuple(x))
            return given, {n: x[n] for n in names}
        if isinstance(x, (list, tuple)):
            if len(x) != len(names):
                single = " (a single array)" if model_structure.kind == "single" else ""
                raise ValueError(
                    f"Invalid value for argument `{argument}`: expected {len(names)} input(s) "
                    f"{list(names)}{single}, received a {type(x).__name__} of {len(x)}."
                )
            given = Structure("list", names)
            return given, dict(zip(names, x, strict=True))
        if len(names) != 1:
            raise invalid(
                argument,
                f"a list or a dict of {len(names)} inputs {list(names)}",
                x,
            )
        return Structure("single", names), {names[0]: x}

    def pack_inputs(self, leaves: Mapping[str, Any], given: Structure) -> Any:
        """Lay out named leaves the way the model's call expects them."""
        structure = self.input_structure or given
        return structure.pack([leaves[n] for n in structure.names])

    def input_dtype(self, name: str) -> str | None:
        spec = (self.input_specs or {}).get(name)
        return spec.dtype if spec is not None else None

    # ---------------------------------------------------------------- outputs
    def output_key(self, output: str | int | None) -> str | int | None:
        """Validate `output` (an output name or index); None means the whole output."""
        if output is None:
            return None
        structure = self.output_structure
        if structure is None:
            return output
        if isinstance(output, (int, np.integer)) and not isinstance(output, bool):
            if not -len(structure.names) <= output < len(structure.names):
                raise invalid("output", f"an index below {len(structure.names)}", output)
            return structure.names[int(output)] if structure.kind == "dict" else int(output)
        if isinstance(output, str) and output in structure.names:
            return output if structure.kind == "dict" else structure.names.index(output)
        raise invalid("output", f"one of the model's outputs {list(structure.names)}", output)

    def output_shape(self, key: str | int | None) -> tuple | None:
        """Per-sample shape of an output (None when the model does not say)."""
        if self.output_shapes is None:
            return None
        if key is None:
            return self.output_shapes[0] if len(self.output_shapes) == 1 else None
        names = self.output_structure.names
        index = key if isinstance(key, int) else names.index(key)
        return self.output_shapes[index]

    def final_activation(self, key: str | int | None = None) -> str | None:
        """'softmax' or 'sigmoid' when the selected output ends in one, else None."""
        layer = self.final_layer(key)
        if layer is None:
            return None
        if isinstance(layer, keras.layers.Softmax):
            return "softmax"
        activation = getattr(layer, "activation", None)
        for name in ("softmax", "sigmoid"):
            if activation is getattr(keras.activations, name):
                return name
        return None

    def final_layer(self, key: str | int | None = None):
        """The layer that produces the selected output of a Sequential/functional model."""
        outputs = getattr(self.model, "outputs", None) if _is_graph_model(self.model) else None
        if not outputs:
            return None
        if key is None and len(outputs) != 1:
            return None
        if key is None:
            tensor = outputs[0]
        else:
            names = self.output_structure.names
            tensor = outputs[key if isinstance(key, int) else names.index(key)]
        history = getattr(tensor, "_keras_history", None)
        return history[0] if history else None

    def __call__(self, inputs: Any) -> Any:
        """The model's outputs at inference, floating-point ones in float32 at least
        (`full_precision`: a mixed-precision model's float16/bfloat16 outputs are cast)."""
        outputs = (
            self.model(inputs, training=False)
            if _accepts_training(self.model)
            else (self.model(inputs))
        )
        return full_precision(outputs)


def _is_graph_model(model: Any) -> bool:
    """True for Sequential and functional models (their inputs are known up front)."""
    if not isinstance(model, keras.Model):
        return False
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def _accepts_training(model: Any) -> bool:
    return isinstance(model, keras.layers.Layer)


def _spec_of(tensor: Any) -> InputSpec:
    shape = tuple(tensor.shape[1:]) if tensor.shape is not None else None
    dtype = getattr(tensor, "dtype", None)
    return InputSpec(shape, str(tf.as_dtype(dtype).name) if dtype is not None else None)


def _read_nest(model: Any, side: str) -> tuple[Structure | None, list[Any] | None]:
    """The layout and symbolic tensors of a graph model's ``"inputs"`` or ``"outputs"``
    (None, None for a subclassed model, whose inputs are known only when it is called)."""
    if not _is_graph_model(model):
        return None, None
    struct = getattr(model, f"_{side}_struct", None)
    if isinstance(struct, Mapping):
        names = tuple(struct)
        return Structure("dict", names), [struct[n] for n in names]
    tensors = list(getattr(model, side))
    if side == "inputs":
        names = tuple(_tensor_name(t, i) for i, t in enumerate(tensors))
    else:
        given = list(getattr(model, "output_names", None) or [])
        names = tuple(given[i] if i < len(given) else f"output_{i}" for i in range(len(tensors)))
    kind = "list" if len(tensors) != 1 or isinstance(struct, (list, tuple)) else "single"
    return Structure(kind, names), tensors


def _tensor_name(tensor: Any, index: int) -> str:
    name = getattr(tensor, "name", None)
    if not name or name.startswith("keras_tensor"):
        return f"input_{index}" if index else "input"
    return name


LOW_PRECISION = (tf.float16, tf.bfloat16)
"""Output dtypes `full_precision` casts to float32."""


def full_precision(outputs: Any) -> Any:
    """A model's outputs with every float16/bfloat16 tensor cast to float32.

    A model built under a ``mixed_float16`` or ``mixed_bfloat16`` policy computes in half
    precision and returns half-precision outputs; losses, softmax and gradients read from
    them must run in float32 (a float16 cross-entropy overflows past ~65504). Every output
    advgrad reads passes through here (`ModelAdapter.__call__`, `Objective.forward`); the
    inputs, the perturbation and its projection keep the inputs' own dtype.

    >>> import tensorflow as tf
    >>> out = full_precision({"a": tf.ones([2], tf.float16), "b": tf.ones([2], tf.int32)})
    >>> out["a"].dtype.name, out["b"].dtype.name
    ('float32', 'int32')
    """

    def cast(value: Any) -> Any:
        if tf.is_tensor(value) and value.dtype in LOW_PRECISION:
            return tf.cast(value, tf.float32)
        return value

    return tf.nest.map_structure(cast, outputs)


def select(outputs: Any, key: str | int | None) -> Any:
    """Pick one output of a model's result (None keeps the whole result)."""
    return outputs if key is None else outputs[key]


__all__ = ["LOW_PRECISION", "InputSpec", "ModelAdapter", "describe", "full_precision", "select"]
