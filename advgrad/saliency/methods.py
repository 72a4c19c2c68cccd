"""Saliency maps from the gradient engine: vanilla gradient, gradient x input, SmoothGrad,
integrated gradients and Grad-CAM.

Every map is the gradient of one *score* per sample: the target unit of the model's output,
read before the softmax where the model ends in one (`advgrad.objective.Objective.forward`,
as tf-keras-vis' ``ReplaceToLinear``), so that a saturated softmax does not flatten the
map. The gradients come from `advgrad.gradients.output_value_and_grad` inside one compiled
function per model and input signature: SmoothGrad's noisy copies and the points of the
integrated-gradients path are batched (``points x samples`` rows per pass, at most
`batch_size` rows) and summed inside that one call, so memory stays bounded whatever
`steps` or `samples` are.

A sample whose model output (or gradient) is not finite, at x or at a point a method
evaluates, gets a NaN map, and the method warns, naming itself and how many samples.

>>> import numpy as np, keras
>>> from advgrad import saliency
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
>>> x = np.ones((4, 3), "float32")
>>> saliency.vanilla(model, x, target=1).shape
(4, 3)
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from advgrad._compile import compile_once, count_trace
from advgrad._validation import check_int, check_number, invalid
from advgrad.gradients import Inputs, output_value_and_grad, prepare_inputs
from advgrad.models import ModelAdapter
from advgrad.objective import Objective, _WithoutActivation

__all__ = [
    "MAX_STEPS",
    "METHODS",
    "RULES",
    "grad_cam",
    "gradient_x_input",
    "has_conv_layers",
    "integrated_gradients",
    "predicted_targets",
    "scores",
    "smoothgrad",
    "vanilla",
]

METHODS = ("vanilla", "gradient_x_input", "smoothgrad", "integrated_gradients", "grad_cam")
"""The saliency methods, by name (as configs and `advgrad.saliency.attribute` name them)."""

RULES = ("riemann_middle", "gausslegendre", "trapezoid")
"""Quadrature rules of `integrated_gradients`."""

MAX_STEPS = 2**16
"""Gradient evaluations per sample (`steps`, `max_steps`, SmoothGrad's `samples`): ints
in [1, 2**16), checked before any work."""

DEFAULT_MAX_STEPS = 4096

BATCH_ROWS = 1024
"""Default `batch_size`: the most rows (path points or noisy copies x samples) per pass.

On CPUs, passes of about a thousand rows ran fastest: integrated gradients (64 steps, 450
digits) took 0.87x the forward+backward floor with 1024 rows per pass, 1.18x with 4096
(``benchmarks/results/saliency.md``). On an accelerator, larger batches may pay.
"""


# ------------------------------------------------------------------------------- the setup
@dataclass
class _Setup:
    """Validated inputs, the scores' objective, and the target unit of every sample."""

    inputs: Inputs
    objective: Objective
    key: Any
    targets: np.ndarray  # int32, (batch,)
    batch_size: int

    @property
    def adapter(self) -> ModelAdapter:
        return self.inputs.adapter

    def give_back(self, values: list[np.ndarray], wrt: Any) -> Any:
        """Arrays (in `wrt` order) back in the layout of `x` (tensors where `x` held them)."""
        return self.inputs.give_back(dict(zip(self.inputs.wrt, values, strict=True)), wrt)


def _setup(model, x, target, output, wrt, batch_size, check=None) -> _Setup:
    """Validate everything (`check(inputs)` too), then read the default targets."""
    batch_size = check_int("batch_size", batch_size, low=1)
    inputs = prepare_inputs(model, x, wrt)
    adapter = inputs.adapter
    key = adapter.output_key(output)
    structure = adapter.output_structure
    if key is None and structure is not None and len(structure.names) > 1:
        raise invalid("output", f"one of the model's outputs {list(structure.names)}", output)
    objective = Objective.resolve(adapter, "ce", output)
    shape = adapter.output_shape(key)
    units = (shape[-1] if shape else 1) if shape is not None else None
    targets = _targets(target, inputs.batch_size, units)
    if check is not None:
        check(inputs)
    if targets is None:  # the predicted class (a one-unit output: that unit)
        outputs = _forward_all(objective, inputs, batch_size)
        targets = predicted_from_outputs(outputs)
    elif units is None:  # a subclassed model: check against the outputs it gives
        outputs = _forward_all(objective, inputs, batch_size)
        _targets(target, inputs.batch_size, 1 if outputs.ndim == 1 else outputs.shape[-1])
    return _Setup(inputs, objective, key, targets.astype(np.int32), batch_size)


def _targets(target: Any, batch: int, units: int | None) -> np.ndarray | None:
    """None (predicted), or validated class ids of shape (batch,)."""
    if target is None:
        return None
    index = np.asarray(target)
    if not np.issubdtype(index.dtype, np.integer) or index.ndim > 1:
        raise invalid("target", "a class index (int) or one per sample, shape (batch,)", target)
    index = np.broadcast_to(index, (batch,)) if index.ndim == 0 else index
    if index.shape != (batch,):
        raise invalid("target", f"one class index per sample, shape ({batch},)", target)
    if index.min() < 0 or (units is not None and index.max() >= units):
        bound = f"[0, {units})" if units is not None else ">= 0"
        raise invalid(
            "target",
            f"class indices in {bound} (the model's output has {units} unit(s))",
            target if index.size == 1 or np.ndim(target) == 0 else index,
        )
    return np.array(index, dtype=np.int32)


def predicted_from_outputs(outputs: np.ndarray) -> np.ndarray:
    """The predicted class of each sample (argmax on the last axis; 0 for one unit)."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return np.zeros(len(outputs), np.int32)
    flat = outputs.reshape(len(outputs), -1, outputs.shape[-1]).sum(axis=1)
    return flat.argmax(axis=-1).astype(np.int32)


def _score(outputs: tf.Tensor, units: tf.Tensor) -> tf.Tensor:
    """One score per sample: unit `units[i]` of sample i's output (summed over any axes
    between the batch and the units)."""
    if outputs.shape.rank == 1:
        return outputs
    if outputs.shape.rank > 2:
        outputs = tf.reduce_sum(outputs, axis=list(range(1, outputs.shape.rank - 1)))
    return tf.gather(outputs, units, axis=-1, batch_dims=1)


# -------------------------------------------------------------------------------- forward
def _forward_function(objective: Objective, inputs: Inputs):
    key = ("saliency_forward", id(objective), inputs.given, inputs.specs())
    cache = inputs.adapter.cache
    if key not in cache:
        names = inputs.names

        def forward(xs):
            count_trace("saliency")
            return objective.forward(inputs.pack(dict(zip(names, xs, strict=True))))

        cache[key] = compile_once(forward, [list(inputs.specs())])
    return cache[key]


def _slices(batch: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, batch)) for s in range(0, batch, size)]


def _forward_all(objective: Objective, inputs: Inputs, batch_size: int, leaves=None):
    fn = _forward_function(objective, inputs)
    leaves = inputs.tensors if leaves is None else leaves
    parts = [
        np.asarray(fn([tf.convert_to_tensor(v)[part] for v in leaves.values()]))
        for part in _slices(inputs.batch_size, max(1, batch_size))
    ]
    return np.concatenate(parts, axis=0)


def scores(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    output: str | int | None = None,
    batch_size: int = BATCH_ROWS,
) -> np.ndarray:
    """The score each map explains: the target unit of the (pre-softmax) output, per sample.

    Integrated gradients' completeness reads ``scores(model, x) - scores(model, baseline)``.

    Args:
        model: A keras.Model (Sequential, functional, subclassed) or a callable on tensors.
        x: Inputs: an array, or a list or dict of arrays for several inputs.
        target: None (the predicted class), a class index, or one per sample.
        output: For a multi-output model, the output (name or index) to explain.
        batch_size: Samples per forward pass.

    Returns:
        A float array of shape (batch,).

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.set_weights([np.array([[1.0], [2.0]])])
    >>> scores(model, np.ones((1, 2), "float32")).tolist()
    [3.0]
    """
    setup = _setup(model, x, target, output, None, batch_size)
    return _scores_of(setup, setup.inputs.tensors)


def _scores_of(setup: _Setup, leaves: dict[str, Any]) -> np.ndarray:
    outputs = _forward_all(setup.objective, setup.inputs, setup.batch_size, leaves)
    return np.asarray(_score(tf.constant(outputs), tf.constant(setup.targets))).astype(np.float64)


def predicted_targets(
    model: Any, x: Any, *, output: str | int | None = None, batch_size: int = BATCH_ROWS
) -> np.ndarray:
    """The default `target`: each sample's predicted class (0 for a one-unit output).

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> predicted_targets(model, np.ones((5, 2), "float32")).shape
    (5,)
    """
    return _setup(model, x, None, output, None, batch_size).targets.astype(np.int64)


# ------------------------------------------------------------------ the compiled path sum
def _path_function(setup: _Setup, noisy: bool):
    """The compiled ``sum_j w_j * grad score(start + a_j (x - start) + noise_j)``, summed over
    the points j in chunks of ``c`` points (``c x batch`` rows per pass), in one call."""
    inputs, objective = setup.inputs, setup.objective
    key = ("saliency_path", id(objective), inputs.given, inputs.wrt, inputs.specs(), noisy)
    cache = inputs.adapter.cache
    if key in cache:
        return cache[key]
    names, wrt = inputs.names, inputs.wrt
    specs = {n: s for n, s in zip(names, inputs.specs(), strict=True)}

    def path_sum(xs, starts, sigmas, targets, alphas, weights, seed):
        count_trace("saliency")
        x = dict(zip(names, xs, strict=True))
        start = dict(zip(wrt, starts, strict=True))
        sigma = dict(zip(wrt, sigmas, strict=True))
        batch = tf.shape(targets)[0]
        chunks, points = tf.shape(alphas)[0], tf.shape(alphas)[1]
        rows = tf.tile(targets, [points])
        total = [tf.zeros_like(x[n]) for n in wrt]
        bad = tf.zeros([batch], tf.bool)  # per sample: an output evaluated was not finite
        for i in tf.range(chunks):
            leaves = {}
            for index, n in enumerate(names):
                rank = specs[n].shape.rank
                value = x[n][tf.newaxis]
                if n in start:
                    a = tf.reshape(tf.cast(alphas[i], value.dtype), [-1] + [1] * rank)
                    value = start[n][tf.newaxis] + a * (value - start[n][tf.newaxis])
                    if noisy:
                        shape = tf.concat([[points], tf.shape(x[n])], axis=0)
                        stream = tf.cast(i * len(names) + index, tf.int64)
                        noise = tf.random.stateless_normal(
                            shape, tf.stack([seed, stream]), dtype=value.dtype
                        )
                        scale = tf.reshape(sigma[n], [1, batch] + [1] * (rank - 1))
                        value = value + noise * scale
                else:
                    value = tf.tile(value, [points] + [1] * rank)
                leaves[n] = tf.reshape(value, tf.concat([[-1], tf.shape(x[n])[1:]], axis=0))
            _, outputs, grads = output_value_and_grad(
                objective, inputs, leaves, lambda outputs: _score(outputs, rows), wrt=wrt
            )
            finite = tf.reshape(_finite_rows(outputs), [points, batch])
            used = tf.not_equal(weights[i], 0.0)[:, tf.newaxis]
            bad = tf.logical_or(bad, tf.reduce_any(used & ~finite, axis=0))
            new = []
            for n, acc, g in zip(wrt, total, grads, strict=True):
                rank = specs[n].shape.rank
                g = tf.reshape(g, tf.concat([[points], tf.shape(x[n])], axis=0))
                w = tf.reshape(tf.cast(weights[i], g.dtype), [-1] + [1] * rank)
                new.append(acc + tf.reduce_sum(w * g, axis=0))
            total = new
        return total, bad

    wrt_specs = [specs[n] for n in wrt]
    signature = [
        list(inputs.specs()),
        wrt_specs,
        [tf.TensorSpec((None,), s.dtype) for s in wrt_specs],
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None, None), tf.float64),
        tf.TensorSpec((None, None), tf.float64),
        tf.TensorSpec((), tf.int64),
    ]
    cache[key] = compile_once(path_sum, signature)
    return cache[key]


def _finite_rows(outputs: tf.Tensor) -> tf.Tensor:
    """Per row, whether every output value is finite."""
    flat = tf.reshape(outputs, [tf.shape(outputs)[0], -1])
    return tf.reduce_all(tf.math.is_finite(flat), axis=1)


def _run_path(
    setup: _Setup,
    starts: dict[str, np.ndarray] | None,
    alphas: np.ndarray,
    weights: np.ndarray,
    sigmas: dict[str, np.ndarray] | None = None,
    seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Weighted sums of gradients along the points, per sample, in wrt order (numpy), and
    per sample whether an output evaluated was not finite."""
    inputs = setup.inputs
    fn = _path_function(setup, sigmas is not None)
    batch = inputs.batch_size
    per_call = min(batch, setup.batch_size)
    points = len(alphas)
    most = max(1, setup.batch_size // per_call)
    chunks = -(-points // most)
    size = -(-points // chunks)
    padded = chunks * size  # the points, padded with weight-0 copies to whole chunks
    a = np.zeros(padded)
    w = np.zeros(padded)
    a[:points], w[:points] = alphas, weights
    a, w = tf.constant(a.reshape(chunks, size)), tf.constant(w.reshape(chunks, size))
    results: list[list[np.ndarray]] = [[] for _ in inputs.wrt]
    bad = []
    for number, part in enumerate(_slices(batch, per_call)):
        xs = [t[part] for t in inputs.tensors.values()]
        start = [
            tf.convert_to_tensor(
                (starts[n] if starts is not None else np.asarray(inputs.tensors[n]))[part]
            )
            for n in inputs.wrt
        ]
        sigma = [
            tf.constant(
                (sigmas[n][part] if sigmas is not None else np.zeros(part.stop - part.start)),
                inputs.tensors[n].dtype,
            )
            for n in inputs.wrt
        ]
        targets = tf.constant(setup.targets[part])
        call_seed = tf.constant(int(seed) * 1_000_003 + number, tf.int64)
        sums, broken = fn(xs, start, sigma, targets, a, w, call_seed)
        for out, value in zip(results, sums, strict=True):
            out.append(value.numpy())
        bad.append(broken.numpy())
    return [np.concatenate(parts, axis=0) for parts in results], np.concatenate(bad)


def _as_numpy(inputs: Inputs, name: str) -> np.ndarray:
    return np.asarray(inputs.tensors[name])


def _check_points(argument: str, value: Any, low: int = 1) -> int:
    """Gradient evaluations per sample: an int in [low, MAX_STEPS)."""
    return check_int(argument, value, low=low, high=MAX_STEPS)


def _flag_not_finite(method: str, values: list[np.ndarray], bad: np.ndarray) -> np.ndarray:
    """Samples whose output (`bad`) or map is not finite: their maps set to NaN, in place,
    and a warning naming `method` and the count. Returns the mask."""
    mask = np.array(bad, bool)
    for v in values:
        mask |= ~np.isfinite(v.reshape(len(v), -1)).all(axis=1)
    if mask.any():
        for v in values:
            if np.issubdtype(v.dtype, np.inexact):
                v[mask] = np.nan
        rows = np.flatnonzero(mask)
        shown = ", ".join(str(r) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
        warnings.warn(
            f"{method}: {len(rows)} of {len(mask)} sample(s) give a model output or gradient "
            f"that is not finite (NaN or inf): their maps are NaN (samples {shown})",
            stacklevel=3,
        )
    return mask


# ---------------------------------------------------------------------------- the methods
def vanilla(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    output: str | int | None = None,
    wrt: Any = None,
    batch_size: int = BATCH_ROWS,
) -> Any:
    """The vanilla gradient: d score / d x, the target's sensitivity to each input feature.

    Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks: Visualising Image
    Classification Models and Saliency Maps", ICLR Workshop 2014.

    Args:
        model: A keras.Model (Sequential, functional, subclassed) or a callable on tensors.
        x: Inputs: an array, or a list or dict of arrays for several inputs.
        target: None (each sample's predicted class; the only unit of a one-unit output,
            such as a regression's), a class index for every sample, or an int array of
            shape (batch,), one per sample.
        output: For a multi-output model, the output (name or index) to explain.
        wrt: Which inputs to explain: None (all; the result is shaped like `x`), an input
            name or index (one array), or a list of them.
        batch_size: Most rows per gradient pass.

    Returns:
        Attributions with the structure, shapes and dtypes of `x` (numpy where `x` was);
        NaN for a sample whose output or gradient is not finite (with a warning).

    Raises:
        ValueError: Bad input, named, before any work (a target outside the classes, say).

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.set_weights([np.array([[1.0], [-2.0]])])
    >>> vanilla(model, np.ones((1, 2), "float32")).tolist()
    [[1.0, -2.0]]
    """
    setup = _setup(model, x, target, output, wrt, batch_size)
    grads, bad = _run_path(setup, None, np.ones(1), np.ones(1))
    _flag_not_finite("vanilla", grads, bad)
    return setup.give_back(_cast_like(setup, grads), wrt)


def gradient_x_input(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    output: str | int | None = None,
    wrt: Any = None,
    batch_size: int = BATCH_ROWS,
) -> Any:
    """Gradient x input: ``x * d score / d x`` (integrated gradients' one-step cousin,
    exact for a linear model with a zero baseline).

    Shrikumar, Greenside and Kundaje, "Learning Important Features Through Propagating
    Activation Differences", ICML 2017 (section 2.1).

    Flagged by the model-randomisation check (`advgrad.saliency.sanity_check`): a zero
    feature gets zero whatever the weights, so the absolute map follows the input.

    Args:
        model, x, target, output, wrt, batch_size: As for `vanilla`.

    Returns:
        Attributions with the structure, shapes and dtypes of `x`.

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.set_weights([np.array([[1.0], [-2.0]])])
    >>> gradient_x_input(model, np.array([[3.0, 1.0]], "float32")).tolist()
    [[3.0, -2.0]]
    """
    setup = _setup(model, x, target, output, wrt, batch_size)
    grads, bad = _run_path(setup, None, np.ones(1), np.ones(1))
    values = [g * _as_numpy(setup.inputs, n) for n, g in zip(setup.inputs.wrt, grads, strict=True)]
    _flag_not_finite("gradient_x_input", values, bad)
    return setup.give_back(_cast_like(setup, values), wrt)


def smoothgrad(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    samples: int = 50,
    noise: float = 0.15,
    seed: int = 0,
    output: str | int | None = None,
    wrt: Any = None,
    batch_size: int = BATCH_ROWS,
) -> Any:
    """SmoothGrad: the vanilla gradient averaged over `samples` noisy copies of each input.

    The noise is Gaussian with standard deviation ``noise * (max(x_i) - min(x_i))``: relative
    to the range of each sample (of each input), as in the paper and tf-keras-vis. With
    ``noise=0`` it is the vanilla gradient; with the same `seed` it is the same map.

    Smilkov, Thorat, Kim, Viegas and Wattenberg, "SmoothGrad: removing noise by adding
    noise", ICML Workshop on Visualization for Deep Learning 2017.

    Args:
        model, x, target, output, wrt, batch_size: As for `vanilla`.
        samples: Noisy copies per sample (an int in [1, 2**16)).
        noise: Noise level relative to each sample's range (a finite number >= 0).
        seed: Seed of the noise (int >= 0).

    Returns:
        Attributions with the structure, shapes and dtypes of `x`.

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.set_weights([np.array([[1.0], [-2.0]])])
    >>> smoothgrad(model, np.array([[0.0, 1.0]], "float32"), samples=8).round(4).tolist()
    [[1.0, -2.0]]
    """
    samples = _check_points("samples", samples)
    noise = check_number("noise", noise, low=0.0)
    seed = check_int("seed", seed, low=0, high=2**31)
    setup = _setup(model, x, target, output, wrt, batch_size)
    sigmas = {}
    for n in setup.inputs.wrt:
        value = _as_numpy(setup.inputs, n).astype(np.float64)
        flat = value.reshape(len(value), -1)
        span = flat.max(axis=1) - flat.min(axis=1) if flat.shape[1] else np.zeros(len(value))
        sigmas[n] = noise * span
    grads, bad = _run_path(
        setup, None, np.ones(samples), np.full(samples, 1.0 / samples), sigmas, seed
    )
    _flag_not_finite("smoothgrad", grads, bad)
    return setup.give_back(_cast_like(setup, grads), wrt)


def integration_rule(steps: int, rule: str = "riemann_middle") -> tuple[np.ndarray, np.ndarray]:
    """Points in [0, 1] and weights of the quadrature along the path (weights sum to 1).

    ``"riemann_middle"`` (default): the midpoints of `steps` equal intervals, each weighted
    ``1 / steps``. Along the path, the gradient of a ReLU network is piecewise constant (it
    jumps where a unit switches), and evenly spaced points resolve the jumps best: on the
    zoo's digits CNN with 64 steps the largest completeness error over the 450 test images
    is 0.9% against 1.6% for Gauss-Legendre and 2.4% for the trapezoid rule (65 points;
    ``benchmarks/saliency.py``). ``"gausslegendre"``: `steps` Gauss-Legendre nodes (exact
    for polynomials of degree ``2 steps - 1``; Captum's default). ``"trapezoid"``: `steps`
    evenly spaced points from 0 to 1, the ends weighted one half (``steps - 1`` intervals;
    needs ``steps >= 2``).

    >>> points, weights = integration_rule(3, "trapezoid")
    >>> points.tolist(), weights.tolist()
    ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
    """
    steps = _check_points("steps", steps)
    if rule not in RULES:
        raise invalid("method", f"one of {RULES}", rule)
    if rule == "riemann_middle":
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1.0) / 2.0, weights / 2.0
    if steps < 2:
        raise invalid("steps", "an int >= 2 for the trapezoid rule (both ends of the path)", 1)
    points = np.linspace(0.0, 1.0, steps)
    weights = np.full(steps, 1.0 / (steps - 1))
    weights[[0, -1]] /= 2.0
    return points, weights


def integrated_gradients(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    baseline: Any = None,
    steps: int = 64,
    method: str = "riemann_middle",
    output: str | int | None = None,
    wrt: Any = None,
    batch_size: int = BATCH_ROWS,
    return_delta: bool = False,
    tolerance: float | None = 0.01,
    max_steps: int | None = None,
) -> Any:
    """Integrated gradients: ``(x - x') * integral_0^1 grad score(x' + a (x - x')) da``.

    Completeness: the attributions of a sample sum to ``score(x) - score(x')`` up to the
    quadrature error (`return_delta` gives it). The `steps` gradients of the whole batch
    run in one compiled call, ``points x samples`` rows per pass. With a ReLU network the
    gradient along the path is piecewise constant, and a sample whose score changes little
    (``score(x)`` close to ``score(x')``) can miss completeness by far more than 1% of that
    change at any fixed number of steps: such samples (``|delta| > tolerance x |score(x) -
    score(x')|``) are integrated again with twice the steps, up to `max_steps` (only those
    rows; a warning names any still over). On the digits CNN no image needs it at 64 steps.

    Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.

    Flagged by the model-randomisation check (`advgrad.saliency.sanity_check`) on the
    digits CNN: a feature equal to its baseline gets zero whatever the weights.

    Args:
        model, x, target, output, wrt, batch_size: As for `vanilla`.
        baseline: The reference input x': None (zeros), a number (that value everywhere),
            or arrays shaped like one sample or like `x` (per input, in `x`'s structure,
            for several inputs).
        steps: Gradient evaluations along the path (an int in [1, 2**16); >= 2 for
            "trapezoid").
        method: The quadrature rule (`integration_rule`): "riemann_middle" (default),
            "gausslegendre" or "trapezoid".
        return_delta: Also return the completeness gap per sample,
            ``sum(attributions) - (score(x) - score(x'))``, shape (batch,).
        tolerance: The completeness gap allowed per sample, relative to its score change
            (default 0.01: 1%), or None for exactly `steps` gradients per sample.
        max_steps: The most steps a sample is refined to (an int in [steps, 2**16));
            None (default): 4096, or `steps` if more.

    Returns:
        Attributions with the structure, shapes and dtypes of `x`; with `return_delta`,
        ``(attributions, delta)`` (NaN for a sample whose output is not finite).

    Raises:
        ValueError: Bad input, named, before any work: a baseline of the wrong shape,
            `steps` out of range, an unknown rule or target.

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.set_weights([np.array([[1.0], [-2.0]])])
    >>> attributions = integrated_gradients(model, np.array([[3.0, 1.0]], "float32"))
    >>> attributions.round(4).tolist()
    [[3.0, -2.0]]
    """
    steps = _check_points("steps", steps)
    if max_steps is None:
        max_steps = max(DEFAULT_MAX_STEPS, steps)
    max_steps = _check_points("max_steps", max_steps, low=steps)
    points, weights = integration_rule(steps, method)
    if tolerance is not None:
        tolerance = check_number("tolerance", tolerance, low=0.0)
    starts: dict[str, np.ndarray] = {}
    setup = _setup(
        model, x, target, output, wrt, batch_size, lambda i: starts.update(_baselines(i, baseline))
    )
    sums, bad = _run_path(setup, starts, points, weights)
    values = [
        (_as_numpy(setup.inputs, n) - starts[n]) * g
        for n, g in zip(setup.inputs.wrt, sums, strict=True)
    ]
    if tolerance is None and not return_delta:
        _flag_not_finite("integrated_gradients", values, bad)
        return setup.give_back(_cast_like(setup, values), wrt)
    leaves = dict(setup.inputs.tensors)
    leaves.update({n: tf.constant(starts[n]) for n in setup.inputs.wrt})
    at_x, at_start = _scores_of(setup, setup.inputs.tensors), _scores_of(setup, leaves)
    bad |= ~np.isfinite(at_x) | ~np.isfinite(at_start)
    gap = at_x - at_start
    delta = _totals(values) - gap
    over = np.zeros(0, np.int64)
    if tolerance is not None:
        # A floor for samples whose score does not change at all (x = x', say).
        allowed = tolerance * np.maximum(np.abs(gap), 1e-6 * (1 + np.abs(at_x) + np.abs(at_start)))
        count = steps
        over = np.flatnonzero((np.abs(delta) > allowed) & ~bad)
        while over.size and count * 2 <= max_steps:
            count *= 2
            rows = _rows(setup, over)
            points, weights = integration_rule(count, method)
            again, broken = _run_path(
                rows, {n: v[over] for n, v in starts.items()}, points, weights
            )
            bad[over] |= broken
            for v, n, g in zip(values, setup.inputs.wrt, again, strict=True):
                v[over] = (_as_numpy(rows.inputs, n) - starts[n][over]) * g
            delta[over] = _totals([v[over] for v in values]) - gap[over]
            over = over[(np.abs(delta[over]) > allowed[over]) & ~bad[over]]
    delta[_flag_not_finite("integrated_gradients", values, bad)] = np.nan
    if tolerance is not None and over.size:
        warnings.warn(
            f"integrated_gradients: {over.size} sample(s) still miss completeness by more "
            f"than tolerance={tolerance:g} of their score change at max_steps={count}: "
            "raise max_steps for them",
            stacklevel=2,
        )
    result = setup.give_back(_cast_like(setup, values), wrt)
    return (result, delta) if return_delta else result


def _totals(values: list[np.ndarray]) -> np.ndarray:
    """Per sample, the sum of the attributions over every input and feature (float64)."""
    return sum(v.reshape(len(v), -1).astype(np.float64).sum(axis=1) for v in values)


def _rows(setup: _Setup, rows: np.ndarray) -> _Setup:
    """`setup` restricted to some samples (the same compiled functions serve it)."""
    inputs = dataclasses.replace(
        setup.inputs, tensors={n: tf.gather(t, rows) for n, t in setup.inputs.tensors.items()}
    )
    return dataclasses.replace(setup, inputs=inputs, targets=setup.targets[rows])


def _baselines(inputs: Inputs, baseline: Any) -> dict[str, np.ndarray]:
    """Per wrt input, the baseline broadcast to the batch (validated, in x's dtype)."""
    given = inputs.given
    if baseline is None or (np.ndim(baseline) == 0 and not isinstance(baseline, (dict, list))):
        if baseline is not None:
            check_number("baseline", baseline)
        value = 0.0 if baseline is None else float(baseline)
        return {
            n: np.full(_as_numpy(inputs, n).shape, value, _dtype(inputs, n)) for n in inputs.wrt
        }
    if given.kind == "single":
        parts = {given.names[0]: baseline}
    elif given.kind == "dict":
        if not isinstance(baseline, dict) or set(baseline) != set(given.names):
            expected = f"a number, or a dict with keys {list(given.names)}"
            raise invalid("baseline", expected, baseline)
        parts = dict(baseline)
    else:
        if not isinstance(baseline, (list, tuple)) or len(baseline) != len(given.names):
            raise invalid("baseline", f"a number, or a list of {len(given.names)} arrays", baseline)
        parts = dict(zip(given.names, baseline, strict=True))
    names = dict(zip(given.names, inputs.names, strict=True))
    out = {}
    for label, part in parts.items():
        name = names[label]
        if name not in inputs.wrt:
            continue
        shape = _as_numpy(inputs, name).shape
        value = np.asarray(part, dtype=np.float64)
        argument = given.label("baseline", label) if given.kind != "single" else "baseline"
        if value.shape not in (shape, shape[1:]) and value.ndim != 0:
            raise invalid(
                argument,
                f"an array of shape {shape[1:]} (one sample) or {shape} (the batch)",
                part,
            )
        if not np.all(np.isfinite(value)):
            raise invalid(argument, "finite values", part)
        out[name] = np.broadcast_to(value, shape).astype(_dtype(inputs, name))
    return out


def _dtype(inputs: Inputs, name: str) -> np.dtype:
    return np.dtype(inputs.tensors[name].dtype.as_numpy_dtype)


def _cast_like(setup: _Setup, values: list[np.ndarray]) -> list[Any]:
    """In x's dtypes; tensors where x held tensors."""
    out = []
    for n, v in zip(setup.inputs.wrt, values, strict=True):
        v = np.asarray(v, _dtype(setup.inputs, n))
        out.append(v if setup.inputs.returns_numpy[n] else tf.constant(v))
    return out


# ------------------------------------------------------------------------------ Grad-CAM
def has_conv_layers(model: Any) -> bool:
    """Whether `grad_cam` finds a convolution in `model` by itself (``layer=None``): a
    ``keras.Model`` with a convolution whose output is spatial."""
    try:
        return isinstance(model, keras.Model) and bool(_conv_layers(model))
    except (AttributeError, TypeError):
        return False


def _conv_layers(model: Any) -> list[Any]:
    return [
        layer
        for layer in model.layers
        if "Conv" in type(layer).__name__
        and "Transpose" not in type(layer).__name__
        and len(getattr(layer.output, "shape", ())) >= 3
    ]


def _find_layer(model: Any, layer: Any) -> Any:
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise invalid(
            "model",
            "a Sequential or functional keras.Model for grad_cam (it reads a layer's output)",
            model,
        )
    if layer is None:
        convs = _conv_layers(model)
        if not convs:
            raise invalid(
                "layer",
                "the name of a layer with spatial output (the model has no convolution)",
                layer,
            )
        return convs[-1]
    if isinstance(layer, keras.layers.Layer):
        if layer not in model.layers:
            raise invalid("layer", "a layer of the model", layer.name)
        found = layer
    else:
        names = [item.name for item in model.layers]
        if layer not in names:
            raise invalid("layer", f"the name of one of the model's layers {names}", layer)
        found = model.get_layer(layer)
    if len(found.output.shape) < 3:
        raise invalid(
            "layer",
            "a layer with spatial output (batch, ..., channels), such as a convolution",
            f"{found.name} (output shape {tuple(found.output.shape)})",
        )
    return found


def _cam_function(setup: _Setup, layer: Any):
    inputs, adapter = setup.inputs, setup.adapter
    key = ("saliency_grad_cam", layer.name, setup.key, inputs.given, inputs.specs())
    if key in adapter.cache:
        return adapter.cache[key]
    model = adapter.model
    outputs = list(model.outputs)
    index = setup.key if isinstance(setup.key, int) else 0
    if isinstance(setup.key, str):
        index = adapter.output_structure.names.index(setup.key)
    final = adapter.final_layer(setup.key)
    softmax = setup.objective.use_logits and final is not None
    head_input = final.input if softmax else outputs[index]
    both = keras.Model(model.inputs, [layer.output, head_input])
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    names = inputs.names

    def logits_of(value):
        if not softmax or isinstance(final, (keras.layers.Softmax, keras.layers.Activation)):
            return value
        return type(final).call(_WithoutActivation(final), value)

    def cam(xs, targets):
        count_trace("saliency")
        packed = inputs.pack(dict(zip(names, xs, strict=True)))
        with tf.GradientTape() as tape:
            activation, head = both(packed, training=False)
            tape.watch(activation)
            head = logits_of(head)
            total = tf.reduce_sum(_score(head, targets))
        grads = tape.gradient(total, activation)
        rank = activation.shape.rank
        channel = 1 if channels_first else rank - 1
        spatial = [a for a in range(1, rank) if a != channel]
        weights = tf.reduce_mean(grads, axis=spatial, keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * activation, axis=channel))
        return cam, _finite_rows(head)

    adapter.cache[key] = compile_once(cam, [list(inputs.specs()), tf.TensorSpec((None,), tf.int32)])
    return adapter.cache[key]


def grad_cam(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    layer: str | None = None,
    output: str | int | None = None,
    wrt: Any = None,
    batch_size: int = 512,
) -> Any:
    """Grad-CAM: a convolution's feature maps weighted by their mean gradient, ReLU'd and
    resized (bilinear) to the input's spatial shape.

    ``cam = relu(sum_k mean_ij(d score / d A_k) * A_k)`` for the feature maps ``A`` of
    `layer` (the last convolution when None). The map is coarse (the layer's resolution)
    and class-discriminative; it is laid over every input whose spatial rank fits the
    layer's and broadcast over its channels; other inputs get zeros.

    Selvaraju, Cogswell, Das, Vedantam, Parikh and Batra, "Grad-CAM: Visual Explanations
    from Deep Networks via Gradient-based Localization", ICCV 2017.

    Args:
        model: A Sequential or functional keras.Model with a layer of spatial output.
        x, target, output, wrt: As for `vanilla`.
        layer: The layer's name; None: the last convolution found.
        batch_size: Samples per pass.

    Returns:
        Maps with the structure and shapes of `x` (values >= 0; NaN where the output is
        not finite).

    Raises:
        ValueError: No such layer, a layer without spatial output, a subclassed model.

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3),
    ...                           keras.layers.Flatten(), keras.layers.Dense(3)])
    >>> maps = grad_cam(model, np.random.default_rng(0).random((2, 6, 6, 1), "float32"))
    >>> maps.shape, bool((maps >= 0).all())
    ((2, 6, 6, 1), True)
    """
    found = _find_layer(ModelAdapter.of(model).model, layer)
    setup = _setup(model, x, target, output, wrt, batch_size)
    fn = _cam_function(setup, found)
    inputs = setup.inputs
    parts = [
        fn([t[part] for t in inputs.tensors.values()], tf.constant(setup.targets[part]))
        for part in _slices(inputs.batch_size, setup.batch_size)
    ]
    maps = np.concatenate([cam.numpy() for cam, _ in parts], axis=0)
    bad = ~np.concatenate([finite.numpy() for _, finite in parts], axis=0)
    channels_first = getattr(found, "data_format", "channels_last") == "channels_first"
    values = [_laid_over(maps, _as_numpy(inputs, n), channels_first) for n in inputs.wrt]
    _flag_not_finite("grad_cam", values, bad)
    return setup.give_back(_cast_like(setup, values), wrt)


def _laid_over(maps: np.ndarray, x: np.ndarray, channels_first: bool) -> np.ndarray:
    """The maps (batch, *s) resized to x's spatial shape and broadcast over its channels;
    zeros when x's spatial rank does not fit."""
    rank = maps.ndim - 1
    sample = x.shape[1:]
    if len(sample) == rank + 1:
        spatial = sample[1:] if channels_first else sample[:-1]
    elif len(sample) == rank:
        spatial = sample
    else:
        return np.zeros_like(x)
    if rank not in (1, 2):
        if tuple(maps.shape[1:]) != tuple(spatial):
            return np.zeros_like(x)
        resized = maps
    else:
        grid = maps[..., None] if rank == 2 else maps[:, :, None, None]
        size = list(spatial) if rank == 2 else [spatial[0], 1]
        resized = tf.image.resize(grid, size, method="bilinear").numpy()
        resized = resized[..., 0] if rank == 2 else resized[:, :, 0, 0]
    if len(sample) == rank + 1:
        resized = resized[:, None] if channels_first else resized[..., None]
    return np.broadcast_to(resized, x.shape).astype(x.dtype)
