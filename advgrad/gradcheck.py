"""Gradient check: the engine's gradients against central finite differences (`check_gradients`).

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
from advgrad.objective import Objective, compiled_loss_weights


@dataclass
class GradientCheck:
    """What `check_gradients` found.

    Attributes:
        max_relative_error: max over checked coordinates of |g - fd| / max(|g|, |fd|, floor)
            at the best step size, floor = 1e-4 * the largest |gradient| in the batch.
        max_absolute_error: max |g - fd|.
        coordinates: how many coordinates were checked.
        precision: "float64" when the model could be evaluated in float64, else its dtype.
        tolerance: the relative error allowed: the `tolerance` asked for in float64, at least
            what the model's precision can resolve otherwise (see `check_gradients`).
        zero_gradient_fraction: share of samples whose gradient is exactly zero everywhere.
        flags: human-readable problems (NaN/inf/zero gradients, mismatch).
        conclusive: False when the finite differences could not resolve any checked
            coordinate (the gradients are below the precision's round-off): then
            ``passed`` is True (nothing was found wrong) but nothing was shown right either.
        reason: why the check is inconclusive, else "".
    """

    max_relative_error: float
    max_absolute_error: float
    coordinates: int
    precision: str
    tolerance: float
    zero_gradient_fraction: float
    flags: list[str] = field(default_factory=list)
    conclusive: bool = True
    reason: str = ""

    @property
    def passed(self) -> bool:
        """False only for a real failure (an inconclusive check is not one)."""
        return not self.flags

    @property
    def status(self) -> str:
        """PASSED, FAILED (``passed`` is False) or INCONCLUSIVE (``passed`` stays True)."""
        if self.flags:
            return "FAILED"
        return "PASSED" if self.conclusive else "INCONCLUSIVE"

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "status": self.status}

    def __str__(self) -> str:
        lines = [
            f"finite-difference check {self.status}: max relative error "
            f"{self.max_relative_error:.2e} (tolerance {self.tolerance:.1e}) over "
            f"{self.coordinates} coordinates, {self.precision}"
        ]
        lines += [f"  ! {flag}" for flag in self.flags]
        if self.status == "INCONCLUSIVE":
            lines.append(f"  ? {self.reason}")
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
        clone.compile(loss=loss, loss_weights=compiled_loss_weights(model))
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
    and functional models) where possible; other models (subclassed ones) in their own dtype.
    Each coordinate is compared at several step sizes h and its error is the smallest one: a
    small h drowns tiny gradients in round-off, a large h straddles ReLU kinks, and a correct
    gradient agrees with the finite difference at some h while a wrong one agrees at none.

    Below float64 (machine epsilon eps, 1.2e-7 in float32) the comparison is fitted to the
    round-off: steps of cbrt(eps) * max(|x|, 1) times (0.5, 1, 2, 4), divided by the step the
    rounded x + h and x - h really took; per-sample losses differenced in float64; a
    tolerance of at least 64 * eps^(2/3) (1.6e-3 in float32, well below a 1% error); and each
    coordinate compared on a scale no finer than the round-off of its difference quotient
    (16 * eps * max(|loss|, 1) / step). When that round-off swamps every checked coordinate
    the report is INCONCLUSIVE (``passed`` True, ``conclusive`` False), never FAILED.

    Args:
        model, x, y, loss, wrt, output: as for `advgrad.input_gradients`.
        coordinates: how many (sample, input, feature) coordinates to check.
        step_sizes: the steps h to try (absolute); default (1e-4, 1e-5, 1e-6, 1e-7) in
            float64 and the round-off-fitted steps above in lower precision.
        tolerance: relative error above which the check fails (in lower precision, at least
            what that precision resolves; the report's ``tolerance`` is the one applied).
        seed: which coordinates are drawn.

    Returns:
        A `GradientCheck`; ``report.passed`` is False when the error exceeds the tolerance or
        gradients are NaN, infinite or all zero; ``report.status`` also tells INCONCLUSIVE.
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
    eps = float(np.finfo(dtype).eps)
    low = eps > float(np.finfo(np.float64).eps)  # the model runs below float64
    if step_sizes is None:
        # float64: a ladder of absolute steps. Below: steps near the optimum of central
        # differences, cbrt(eps) * max(|x|, 1) (truncation ~h^2 against round-off ~eps/h).
        step_sizes = (1e-4, 1e-5, 1e-6, 1e-7) if not low else ()
    ladder = np.asarray(
        step_sizes if len(step_sizes) else np.cbrt(eps) * np.asarray(_LOW_STEP_FACTORS),
        dtype=np.float64,
    )
    relative_steps = low and not len(step_sizes)
    xs = {n: np.asarray(t, dtype=dtype) for n, t in inputs.tensors.items()}
    packed = inputs.given.pack([xs[n] for n in inputs.given.names])
    names = inputs.wrt
    grads = input_gradients(target, packed, labels, loss=loss, wrt=list(names), output=output)
    grads = dict(zip(names, grads, strict=True))

    rng = np.random.default_rng(seed)
    picks = [_pick(rng, names, xs) for _ in range(coordinates)]
    rows = np.array([sample for _, sample, _ in picks])
    per_pick = 2 * len(ladder)  # rows per coordinate: (+h, -h) for every h
    batch = {n: np.repeat(v[rows], per_pick, axis=0) for n, v in xs.items()}
    steps = np.empty((coordinates, len(ladder)), dtype=np.float64)  # the steps actually taken
    for k, (name, sample, index) in enumerate(picks):
        x0 = float(xs[name][sample][index])
        for j, h in enumerate(ladder):
            h = h * max(abs(x0), 1.0) if relative_steps else h
            plus, minus = k * per_pick + 2 * j, k * per_pick + 2 * j + 1
            batch[name][plus][index] += h
            batch[name][minus][index] -= h
            # x +- h is rounded to the model's dtype: divide by the difference it really made
            steps[k, j] = float(batch[name][plus][index]) - float(batch[name][minus][index])
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
    losses = np.asarray(losses, dtype=np.float64).reshape(coordinates, len(ladder), 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        fd_all = (losses[..., 0] - losses[..., 1]) / steps  # (coordinates, len(ladder))
    engine = np.array([grads[n][s][i] for n, s, i in picks], dtype=np.float64)
    # Coordinates 10^4 times below the batch's largest gradient entry are compared on that
    # scale: the loss of a saturated softmax is log(1 + tiny), whose round-off swamps them.
    scale = max(float(np.max(np.abs(np.asarray(g, np.float64)))) for g in grads.values())
    floor = np.full(fd_all.shape, max(1e-4 * scale, 1e-12))
    conclusive, reason = True, ""
    if low:
        # Below float64 the loss itself carries round-off of about eps * max(|loss|, 1) (times
        # the depth of the computation, hence _ROUNDOFF_FACTOR), so the difference quotient
        # carries noise / step. A coordinate is compared on a scale at which that noise is at
        # most half the tolerance, and the tolerance is at least what the precision resolves.
        resolvable = _LOW_TOLERANCE_FACTOR * eps ** (2 / 3)
        tolerance = max(tolerance, resolvable)
        magnitude = np.maximum(np.abs(losses).max(axis=-1), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            noise = _ROUNDOFF_FACTOR * eps * magnitude / np.abs(steps)
        floor = np.maximum(floor, noise / (tolerance / 2))
        resolved = np.maximum(np.abs(engine)[:, None], np.abs(fd_all)) >= floor
        if resolvable > _COARSEST_TOLERANCE:
            conclusive = False
            reason = (
                f"{precision} round-off allows no finite-difference check finer than a "
                f"{resolvable:.0e} relative error: check a float32 or float64 copy of the model."
            )
        elif not resolved.any():
            conclusive = False
            reason = (
                f"no checked coordinate's gradient rises above the {precision} round-off of "
                "the finite differences: the gradients could not be verified (check a "
                "float64 copy of the model, or inputs where the loss is not saturated)."
            )
    errors_all = np.abs(engine[:, None] - fd_all)
    relative_all = errors_all / np.maximum(
        np.maximum(np.abs(engine)[:, None], np.abs(fd_all)), floor
    )
    # a step lost to rounding (x +- h == x) says nothing; a coordinate with no step left neither
    relative_all = np.where(steps > 0, relative_all, np.inf)
    best = np.argmin(relative_all, axis=1)
    relative = relative_all[np.arange(coordinates), best]
    usable = (steps > 0).any(axis=1)
    relative = np.where(usable, relative, np.nan)
    errors = errors_all[np.arange(coordinates), best]
    if not usable.any():
        conclusive = False
        reason = "every step was lost to rounding (x + h == x): try larger step_sizes."
    return GradientCheck(
        max_relative_error=float(relative[usable].max()) if usable.any() else float("nan"),
        max_absolute_error=float(errors[usable].max()) if usable.any() else float("nan"),
        coordinates=coordinates,
        precision=precision,
        tolerance=tolerance,
        zero_gradient_fraction=_zero_fraction(grads),
        flags=_flags(grads, relative, tolerance),
        conclusive=conclusive,
        reason=reason,
    )


# Below float64: step multipliers of cbrt(eps) * max(|x|, 1); the round-off of a loss relative
# to eps * max(|loss|, 1); the relative tolerance in units of eps^(2/3) (float32: 1.6e-3, so a
# 1% gradient error is still caught; float16's 0.6 would catch nothing: inconclusive).
_LOW_STEP_FACTORS = (0.5, 1.0, 2.0, 4.0)
_ROUNDOFF_FACTOR = 16.0
_LOW_TOLERANCE_FACTOR = 64.0
_COARSEST_TOLERANCE = 0.05


def _model_precision(model: Any, inputs) -> str:
    """The lowest floating precision the model computes in: its own compute dtype, its
    layers' and its weights' (a float64 model with float32 layers computes in float32)."""
    compute = getattr(model, "compute_dtype", None)
    if compute is None:
        dtypes = {t.dtype.name for t in inputs.tensors.values() if t.dtype.is_floating}
        return "float64" if dtypes == {"float64"} else "float32"
    found = [str(compute)]
    found += [str(getattr(layer, "compute_dtype", None)) for layer in _layers(model)]
    found += [str(getattr(w, "dtype", None)) for w in getattr(model, "weights", ())]
    floats = []
    for name in found:
        try:
            if np.issubdtype(np.dtype(name), np.floating):
                floats.append(name)
        except TypeError:
            continue
    return max(floats, key=lambda n: np.finfo(np.dtype(n)).eps, default=str(compute))


def _layers(model: Any) -> list:
    try:
        return list(getattr(model, "layers", ()))
    except Exception:  # a model whose `layers` cannot be listed: its compute dtype stands
        return []


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
    compared = relative[~np.isnan(relative)]  # NaN: a NaN gradient (flagged) or no usable step
    if compared.size and compared.max() > tolerance:
        flags.append(
            f"gradient mismatch: relative error {compared.max():.2e} > {tolerance:.1e} "
            "against finite differences (non-smooth layers such as ReLU kinks can cause "
            "isolated mismatches; a systematic one means the gradient is wrong)."
        )
    return flags


__all__ = ["GradientCheck", "as_float64", "check_gradients"]
