"""Correctness checks: the engine's gradients against central finite differences.

>>> import numpy as np, keras, advgrad
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
>>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> report = advgrad.check_gradients(model, np.ones((2, 3)), np.array([0, 1]))
>>> report.passed, report.precision
(True, 'float64')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from advgrad._validation import check_int, check_number, invalid
from advgrad.gradients import input_gradients, prepare_inputs, resolve_labels
from advgrad.models import ModelAdapter
from advgrad.objective import Objective, _compiled_loss_weights


@dataclass
class GradientCheck:
    """What `check_gradients` found.

    Attributes:
        max_relative_error: max over checked coordinates of |g - fd| / max(|g|, |fd|, floor)
            at the best step size, floor = 1e-4 * the largest |gradient| in the batch.
        max_absolute_error: max |g - fd|.
        coordinates: how many coordinates were checked.
        precision: "float64" when the model could be evaluated in float64, else its dtype.
        tolerance: the relative error allowed.
        zero_gradient_fraction: share of samples whose gradient is exactly zero everywhere.
        flags: human-readable problems (NaN/inf/zero gradients, mismatch).
    """

    max_relative_error: float
    max_absolute_error: float
    coordinates: int
    precision: str
    tolerance: float
    zero_gradient_fraction: float
    flags: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.flags

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def __str__(self) -> str:
        status = "PASSED" if self.passed else "FAILED"
        lines = [
            f"finite-difference check {status}: max relative error "
            f"{self.max_relative_error:.2e} (tolerance {self.tolerance:.0e}) over "
            f"{self.coordinates} coordinates, {self.precision}"
        ]
        lines += [f"  ! {flag}" for flag in self.flags]
        return "\n".join(lines)


def as_float64(model: Any) -> Any | None:
    """A float64 copy of a Sequential/functional model (same weights), or None."""
    adapter = ModelAdapter.of(model)
    if adapter.input_structure is None:
        return None

    def to_float64(layer):
        config = layer.get_config()
        config["dtype"] = "float64"
        return layer.__class__.from_config(config)

    inputs = [
        keras.Input(adapter.input_specs[name].shape, dtype="float64", name=name)
        for name in adapter.input_structure.names
    ]
    loss = getattr(model, "loss", None)
    custom = {  # the compile config names custom loss functions: let the clone find them
        getattr(fn, "__name__", ""): fn
        for fn in tf.nest.flatten(loss)
        if callable(fn) and not isinstance(fn, keras.losses.Loss)
    }
    try:
        with keras.saving.custom_object_scope(custom):
            clone = keras.models.clone_model(
                model,
                input_tensors=adapter.input_structure.pack(inputs),
                clone_function=to_float64,
            )
        for layer in model.layers:  # by name, whatever order the clone lists its layers in
            if layer.weights:
                clone.get_layer(layer.name).set_weights(layer.get_weights())
    except Exception:  # a layer whose config cannot rebuild it: check in its own dtype
        return None
    if loss is not None:
        clone.compile(loss=loss, loss_weights=_compiled_loss_weights(model))
    return clone


def check_gradients(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    loss: Any = None,
    wrt: Any = None,
    output: str | int | None = None,
    coordinates: int = 32,
    step_sizes: Sequence[float] | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> GradientCheck:
    """Compare `input_gradients` to central finite differences on random coordinates.

    The model is evaluated in float64 (a float64 copy with the same weights for Sequential
    and functional models; other models in their own dtype, with larger steps). Each
    coordinate is compared at several step sizes h and its error is the smallest one: a
    small h drowns tiny gradients in round-off, a large h straddles ReLU kinks, and a correct
    gradient agrees with the finite difference at some h while a wrong one agrees at none.

    Args:
        model, x, y, loss, wrt, output: as for `advgrad.input_gradients`.
        coordinates: how many (sample, input, feature) coordinates to check.
        step_sizes: the steps h to try; default (1e-4, 1e-5, 1e-6, 1e-7) in float64 and
            (1e-2, 1e-3) in lower precision.
        tolerance: relative error above which the check fails.
        seed: which coordinates are drawn.

    Returns:
        A `GradientCheck`; ``report.passed`` is False when the error exceeds `tolerance` or
        gradients are NaN, infinite or all zero.
    """
    coordinates = check_int("coordinates", coordinates, low=1)
    tolerance = check_number("tolerance", tolerance, low=0.0, low_open=True)
    seed = check_int("seed", seed, low=0)
    if step_sizes is not None and (
        np.ndim(step_sizes) != 1 or not np.size(step_sizes) or not np.all(np.greater(step_sizes, 0))
    ):
        raise invalid("step_sizes", "a list of positive numbers", step_sizes)
    inputs = prepare_inputs(model, x, wrt)  # validates before any work
    objective = Objective.resolve(inputs.adapter, loss, output)
    labels = resolve_labels(objective, inputs, y)
    model64 = as_float64(model)
    precision = "float64" if model64 is not None else _model_precision(model, inputs)
    target = model64 if model64 is not None else model
    dtype = np.float64 if model64 is not None else np.dtype(precision)
    if step_sizes is None:
        step_sizes = (1e-4, 1e-5, 1e-6, 1e-7) if dtype == np.float64 else (1e-2, 1e-3)
    hs = np.asarray(step_sizes, dtype=np.float64)
    xs = {n: np.asarray(t, dtype=dtype) for n, t in inputs.tensors.items()}
    packed = inputs.given.pack([xs[n] for n in inputs.given.names])
    names = inputs.wrt
    grads = input_gradients(target, packed, labels, loss=loss, wrt=list(names), output=output)
    grads = dict(zip(names, grads, strict=True))

    rng = np.random.default_rng(seed)
    picks = [_pick(rng, names, xs) for _ in range(coordinates)]
    rows = np.array([sample for _, sample, _ in picks])
    per_pick = 2 * len(hs)  # rows per coordinate: (+h, -h) for every h
    batch = {n: np.repeat(v[rows], per_pick, axis=0) for n, v in xs.items()}
    for k, (name, _, index) in enumerate(picks):
        for j, h in enumerate(hs):
            batch[name][k * per_pick + 2 * j][index] += h
            batch[name][k * per_pick + 2 * j + 1][index] -= h
    batch_labels = _take(labels, np.repeat(rows, per_pick))
    losses, _ = input_gradients(
        target,
        inputs.given.pack([batch[n] for n in inputs.given.names]),
        batch_labels,
        loss=loss,
        output=output,
        return_loss=True,
        wrt=[names[0]],
    )
    losses = np.asarray(losses, dtype=np.float64).reshape(coordinates, len(hs), 2)
    fd_all = (losses[..., 0] - losses[..., 1]) / (2 * hs)  # (coordinates, len(hs))
    engine = np.array([grads[n][s][i] for n, s, i in picks], dtype=np.float64)
    # Coordinates 10^4 times below the batch's largest gradient entry are compared on that
    # scale: the loss of a saturated softmax is log(1 + tiny), whose round-off swamps them.
    scale = max(float(np.max(np.abs(np.asarray(g, np.float64)))) for g in grads.values())
    floor = max(1e-4 * scale, 1e-12)
    errors_all = np.abs(engine[:, None] - fd_all)
    relative_all = errors_all / np.maximum(
        np.maximum(np.abs(engine)[:, None], np.abs(fd_all)), floor
    )
    best = np.argmin(relative_all, axis=1)
    relative = relative_all[np.arange(coordinates), best]
    errors = errors_all[np.arange(coordinates), best]
    return GradientCheck(
        max_relative_error=float(relative.max()),
        max_absolute_error=float(errors.max()),
        coordinates=coordinates,
        precision=precision,
        tolerance=tolerance,
        zero_gradient_fraction=_zero_fraction(grads),
        flags=_flags(grads, relative, tolerance),
    )


def _model_precision(model: Any, inputs) -> str:
    compute = getattr(model, "compute_dtype", None)
    if compute is not None:
        return str(compute)
    dtypes = {t.dtype.name for t in inputs.tensors.values() if t.dtype.is_floating}
    return "float64" if dtypes == {"float64"} else "float32"


def _pick(rng: np.random.Generator, names, xs) -> tuple[str, int, tuple]:
    name = names[rng.integers(len(names))]
    value = xs[name]
    sample = int(rng.integers(value.shape[0]))
    index = tuple(int(rng.integers(d)) for d in value.shape[1:])
    return name, sample, index


def _take(labels: Any, rows: np.ndarray) -> Any:
    if isinstance(labels, dict):
        return {k: np.asarray(v)[rows] for k, v in labels.items()}
    return np.asarray(labels)[rows]


def _zero_fraction(grads: dict) -> float:
    per_sample = sum(
        np.abs(np.asarray(g, np.float64)).reshape(len(g), -1).sum(axis=1) for g in grads.values()
    )
    return float(np.mean(per_sample == 0))


def _flags(grads: dict, relative: np.ndarray, tolerance: float) -> list[str]:
    flags = []
    values = np.concatenate([np.asarray(g, np.float64).ravel() for g in grads.values()])
    if np.isnan(values).any():
        flags.append("NaN gradients: the loss or the model produces NaN (log of 0?).")
    if np.isinf(values).any():
        flags.append("infinite gradients: the loss overflows.")
    if values.size and not np.any(values):
        flags.append(
            "all gradients are zero: the loss may be saturated (softmax probabilities of "
            "exactly 0 or 1) or the inputs disconnected from the output."
        )
    if np.nanmax(relative) > tolerance:
        flags.append(
            f"gradient mismatch: relative error {np.nanmax(relative):.2e} > {tolerance:.0e} "
            "against finite differences (non-smooth layers such as ReLU kinks can cause "
            "isolated mismatches; a systematic one means the gradient is wrong)."
        )
    return flags


__all__ = ["GradientCheck", "as_float64", "check_gradients"]
