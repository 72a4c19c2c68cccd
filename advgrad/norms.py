"""Norm balls: per-sample norm, random start, steepest-ascent direction and projection.

A `Norm` owns everything an attack needs to know about its threat model (Foolbox 3 style):

- `norm(x)`: the per-sample norm, shape `[B]`;
- `random_init(shape, eps, seed, dtype)`: a point drawn uniformly in the ball of radius `eps`;
- `direction(grad)`: the steepest-ascent direction of unit norm;
- `project(delta, eps)`: the Euclidean projection of `delta` onto the ball of radius `eps`.

Conventions shared by every method:

- Axis 0 is the batch; every other axis belongs to the sample (any rank, rank 1 included).
- They are pure TensorFlow, so they run eagerly and inside `tf.function` (graph mode).
- `eps` may be a Python number or a tensor, scalar or of shape `[B]` (one radius per sample).
  Nothing branches on its value, so a `tf.function` does not retrace when a tensor `eps`
  changes.
- Results have the input's dtype. float16/bfloat16 inputs are computed in float32 and cast back.
- Random draws only use stateless ops (`tf.random.stateless_*`): the same `seed` (a shape-[2]
  integer tensor, or a Python int) gives the same sample, eagerly and in graph mode.

>>> import tensorflow as tf
>>> from advgrad import norms
>>> norm = norms.get("l2")
>>> delta = norm.project(tf.constant([[3.0, 4.0], [0.3, 0.4]]), eps=1.0)
>>> norm.norm(delta).numpy().round(3).tolist()
[1.0, 0.5]
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import tensorflow as tf

from advgrad._validation import check_number, invalid

__all__ = [
    "Norm",
    "Linf",
    "L2",
    "L1",
    "get",
    "names",
    "project_l1_box",
    "sparse_sign_direction",
    "unit_rows",
]

_LOW_PRECISION = (tf.float16, tf.bfloat16)


# ----------------------------------------------------------------------------------------------
# Rank-agnostic helpers (batch axis 0; all other axes are one sample).
# ----------------------------------------------------------------------------------------------


def _compute_dtype(dtype: tf.DType) -> tf.DType:
    """float16/bfloat16 are computed in float32; other floating dtypes as they are."""
    return tf.float32 if dtype in _LOW_PRECISION else dtype


def _num_features(x: tf.Tensor) -> int | tf.Tensor:
    """Number of elements per sample: a Python int when the static shape allows it."""
    sample_shape = x.shape[1:]
    if sample_shape.rank is not None and sample_shape.is_fully_defined():
        return int(np.prod(sample_shape.as_list(), dtype=np.int64))
    return tf.reduce_prod(tf.shape(x)[1:])


def _flatten(x: tf.Tensor) -> tuple[tf.Tensor, tf.DType]:
    """`x` as `[B, d]` in its compute dtype, plus the dtype to cast results back to."""
    x = tf.convert_to_tensor(x)
    flat = tf.reshape(x, tf.stack([tf.shape(x)[0], _num_features(x)]))
    return tf.cast(flat, _compute_dtype(x.dtype)), x.dtype


def _unflatten(flat: tf.Tensor, like: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """Back to the shape and dtype of `like`."""
    out = tf.cast(tf.reshape(flat, tf.shape(like)), dtype)
    return tf.ensure_shape(out, like.shape)


def _per_sample(eps: Any, batch: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """`eps` (scalar or `[B]`) as a `[B, 1]` column in `dtype`."""
    eps = tf.cast(tf.convert_to_tensor(eps, dtype_hint=dtype), dtype)  # 0.1 stays float64
    return tf.reshape(tf.broadcast_to(tf.reshape(eps, [-1]), tf.reshape(batch, [1])), [-1, 1])


def _safe_scale(flat: tf.Tensor) -> tf.Tensor:
    """Each row divided by its max |value| (0 stays 0): no under/overflow in the norms."""
    peak = tf.reduce_max(tf.abs(flat), axis=1, keepdims=True)
    return tf.math.divide_no_nan(flat, peak)


def _unit_rows(flat: tf.Tensor, p: float) -> tf.Tensor:
    """Each row divided by its Lp norm (p = 1 or 2); zero rows stay zero, never NaN."""
    scaled = _safe_scale(flat)
    if p == 1:
        size = tf.reduce_sum(tf.abs(scaled), axis=1, keepdims=True)
    else:
        size = tf.sqrt(tf.reduce_sum(tf.square(scaled), axis=1, keepdims=True))
    return tf.math.divide_no_nan(scaled, size)


def unit_rows(x: Any, p: float) -> tf.Tensor:
    """Each sample of `x` (``[B, ...]``) divided by its Lp norm over all its values (p = 1 or
    2), in `x`'s shape and dtype (float16/bfloat16 computed in float32). A zero sample stays
    zero, never NaN.

    Args:
        x: A tensor with a batch axis.
        p: 1 or 2.

    >>> import tensorflow as tf
    >>> unit_rows(tf.constant([[1.0, -3.0], [0.0, 0.0]]), 1).numpy().tolist()
    [[0.25, -0.75], [0.0, 0.0]]
    """
    x = tf.convert_to_tensor(x)
    flat, dtype = _flatten(x)
    return _unflatten(_unit_rows(flat, p), x, dtype)


def _seed_tensor(seed: Any) -> tf.Tensor:
    """A shape-[2] integer seed tensor; a scalar int `s` becomes `[s, 0]`."""
    # One dtype for both int32 and int64 seeds: `tf.random.split` depends on it.
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    return seed


def _flat_shape(shape: Any) -> tuple[tf.Tensor, tf.Tensor, int | tf.Tensor]:
    """`(shape as a tensor, [B, d], d)` for a requested sample shape."""
    if isinstance(shape, tf.TensorShape):
        shape = shape.as_list()
    if isinstance(shape, (list, tuple)) and all(isinstance(s, (int, np.integer)) for s in shape):
        dims = [int(s) for s in shape]
        if not dims:
            raise invalid("shape", "a shape with a batch axis (rank >= 1)", shape)
        features = int(np.prod(dims[1:], dtype=np.int64))
        return tf.constant(dims, tf.int32), tf.constant([dims[0], features], tf.int32), features
    shape = tf.cast(tf.convert_to_tensor(shape), tf.int32)
    features = tf.reduce_prod(shape[1:])
    return shape, tf.stack([shape[0], features]), features


def _float_dtype(dtype: Any) -> tf.DType:
    dtype = tf.as_dtype(dtype)
    if not dtype.is_floating:
        raise invalid("dtype", "a floating dtype", dtype.name)
    return dtype


# ----------------------------------------------------------------------------------------------
# Norms
# ----------------------------------------------------------------------------------------------


class Norm:
    """Base class of the norm balls (`Linf`, `L2`, `L1`).

    The public methods flatten every sample to a row (`[B, d]`, in the compute dtype) and
    handle shapes, dtypes and `eps`; a subclass sets `name` and `p` and implements four hooks
    on rows: `_norm_rows(flat)`, `_random_rows(flat_shape, features, eps_col, seed, dtype)`,
    `_direction_rows(flat)` and `_project_rows(flat, eps_col)`, with `eps_col` of shape
    `[B, 1]` (`Linf` overrides `direction` itself: a sign needs no flattening). Norms compare
    and hash by `get_config()`, so they can be part of a `tf.function` cache key or a dict key.

    Attributes:
        name: Identifier accepted by `get` ("linf", "l2", "l1").
        p: The order of the norm (`math.inf`, 2.0 or 1.0).
        coordinatewise: True when the direction treats coordinates independently (Linf).

    >>> from advgrad.norms import Linf
    >>> Linf() == Linf(), hash(Linf()) == hash(Linf())
    (True, True)
    """

    name: str = ""
    p: float = math.nan
    #: The steepest-ascent direction treats every coordinate on its own (Linf's sign), so a
    #: coordinate pinned at a bound takes no step length from the others.
    coordinatewise: bool = False

    def norm(self, x: tf.Tensor) -> tf.Tensor:
        """Per-sample norm over all non-batch axes.

        Args:
            x: Tensor of shape `[B, ...]`.

        Returns:
            Tensor of shape `[B]` in the dtype of `x`.
        """
        flat, dtype = _flatten(x)
        return tf.cast(self._norm_rows(flat), dtype)

    def _norm_rows(self, flat: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def random_init(self, shape: Any, eps: Any, seed: Any, dtype: Any = tf.float32) -> tf.Tensor:
        """A sample drawn uniformly in the ball of radius `eps`, independently per sample.

        Args:
            shape: Shape `[B, ...]` of the result: a list of ints, a fully defined
                `TensorShape`, or an int tensor such as `tf.shape(x)`.
            eps: Radius: number or tensor, scalar or shape `[B]`. Must be finite.
            seed: Shape-[2] int32/int64 tensor for the stateless random ops (a Python int `s`
                means `[s, 0]`). The same seed gives the same sample.
            dtype: Floating dtype of the result. Defaults to float32.

        Returns:
            Tensor of `shape` and `dtype`.
        """
        dtype = _float_dtype(dtype)
        shape_t, flat_shape, features = _flat_shape(shape)
        compute = _compute_dtype(dtype)
        eps_col = _per_sample(eps, flat_shape[0], compute)
        flat = self._random_rows(flat_shape, features, eps_col, _seed_tensor(seed), compute)
        return tf.cast(tf.reshape(flat, shape_t), dtype)

    def _random_rows(self, flat_shape, features, eps_col, seed, dtype) -> tf.Tensor:
        raise NotImplementedError

    def direction(self, grad: tf.Tensor) -> tf.Tensor:
        """Steepest-ascent direction of unit norm: argmax of <d, grad> over ||d|| <= 1.

        Zero gradients (per sample) give a zero direction, never NaN.

        Args:
            grad: Tensor of shape `[B, ...]`.

        Returns:
            Tensor of the shape and dtype of `grad`.
        """
        grad = tf.convert_to_tensor(grad)
        flat, dtype = _flatten(grad)
        return _unflatten(self._direction_rows(flat), grad, dtype)

    def _direction_rows(self, flat: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def project(self, delta: tf.Tensor, eps: Any) -> tf.Tensor:
        """Euclidean projection of `delta` onto the ball of radius `eps`, per sample.

        Samples already inside the ball are returned unchanged. The result's norm can exceed
        `eps` by floating-point rounding (a few ulps); compare with a tolerance.

        Args:
            delta: Tensor of shape `[B, ...]` (a perturbation, not the adversarial input).
            eps: Radius: number or tensor, scalar or shape `[B]`, >= 0 (may be inf).

        Returns:
            Tensor of the shape and dtype of `delta`.
        """
        delta = tf.convert_to_tensor(delta)
        flat, dtype = _flatten(delta)
        eps_col = _per_sample(eps, tf.shape(flat)[0], flat.dtype)
        return _unflatten(self._project_rows(flat, eps_col), delta, dtype)

    def _project_rows(self, flat: tf.Tensor, eps_col: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Serializable configuration; `get(config)` rebuilds the norm."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Norm:
        """Rebuild a norm from `get_config()`."""
        return get(config)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Norm):
            return NotImplemented
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Linf(Norm):
    """The L-infinity ball: every coordinate within `[-eps, eps]`.

    Direction `sign(grad)` (FGSM, Goodfellow et al. 2015); projection is clipping.

    >>> import tensorflow as tf
    >>> from advgrad.norms import Linf
    >>> Linf().project(tf.constant([[0.5, -2.0]]), 1.0).numpy().tolist()
    [[0.5, -1.0]]
    """

    name = "linf"
    p = math.inf
    coordinatewise = True

    def _norm_rows(self, flat):
        return tf.reduce_max(tf.abs(flat), axis=1)

    def _random_rows(self, flat_shape, features, eps_col, seed, dtype):
        return tf.random.stateless_uniform(flat_shape, seed, -1.0, 1.0, dtype=dtype) * eps_col

    def direction(self, grad: tf.Tensor) -> tf.Tensor:
        # Coordinate-wise, so no flattening: the attack loop calls this every step.
        return tf.sign(tf.convert_to_tensor(grad))

    def _project_rows(self, flat, eps_col):
        return tf.minimum(tf.maximum(flat, -eps_col), eps_col)


class L2(Norm):
    """The L2 (Euclidean) ball.

    Direction `grad / ||grad||_2`; projection scales samples outside the ball back onto it.

    >>> import tensorflow as tf
    >>> from advgrad.norms import L2
    >>> L2().direction(tf.constant([[0.0, 2.0], [0.0, 0.0]])).numpy().tolist()
    [[0.0, 1.0], [0.0, 0.0]]
    """

    name = "l2"
    p = 2.0

    def _norm_rows(self, flat):
        peak = tf.reduce_max(tf.abs(flat), axis=1)
        scaled = _safe_scale(flat)
        return peak * tf.sqrt(tf.reduce_sum(tf.square(scaled), axis=1))

    def _random_rows(self, flat_shape, features, eps_col, seed, dtype):
        seeds = tf.random.split(seed, 2)
        gauss = tf.random.stateless_normal(flat_shape, seeds[0], dtype=dtype)
        unit = _unit_rows(gauss, 2)
        u = tf.random.stateless_uniform(tf.stack([flat_shape[0], 1]), seeds[1], dtype=dtype)
        radius = tf.pow(u, 1.0 / tf.cast(features, dtype))
        return unit * radius * eps_col

    def _direction_rows(self, flat):
        return _unit_rows(flat, 2)

    def _project_rows(self, flat, eps_col):
        size = self._norm_rows(flat)[:, None]
        one = tf.ones_like(size)
        factor = tf.where(size > eps_col, eps_col / tf.where(size > 0, size, one), one)
        return flat * factor


class L1(Norm):
    """The L1 ball, with the sparse steepest-ascent direction of Tramer & Boneh (2019).

    `direction(grad)` is SLIDE's direction ("Adversarial Training and Robustness for Multiple
    Perturbations", NeurIPS 2019): keep the coordinates whose |grad| is at or above the
    per-sample `sparsity` quantile (at least one; zero gradients are never kept), and spread a
    unit L1 mass over them: `sign(grad) * mask / mask.sum()`. `project` is the exact projection
    onto the L1 ball (Duchi, Shalev-Shwartz, Singer & Chandra, ICML 2008), sort-based and
    vectorised over the batch.

    Args:
        sparsity: Quantile in [0, 1) of |grad| above which coordinates are kept. Defaults to
            0.99 (the top 1% of coordinates); 0 keeps every non-zero coordinate.

    Raises:
        ValueError: If `sparsity` is not a number in [0, 1).

    >>> import tensorflow as tf
    >>> from advgrad.norms import L1
    >>> L1().project(tf.constant([[2.0, 1.0, 0.0]]), 1.0).numpy().tolist()
    [[1.0, 0.0, 0.0]]
    >>> L1(sparsity=0.5).direction(tf.constant([[0.1, -3.0, 2.0, 0.2]])).numpy().tolist()
    [[0.0, -0.5, 0.5, 0.0]]
    """

    name = "l1"
    p = 1.0

    def __init__(self, sparsity: float = 0.99):
        self.sparsity = check_number("sparsity", sparsity, low=0.0, high=1.0, high_open=True)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "sparsity": self.sparsity}

    def _norm_rows(self, flat):
        return tf.reduce_sum(tf.abs(flat), axis=1)

    def _random_rows(self, flat_shape, features, eps_col, seed, dtype):
        seeds = tf.random.split(seed, 2)
        batch = flat_shape[0]
        # E_1..E_{d+1} iid Exp(1) as -log(U), U in (0, 1]; (E_1..E_d) / sum(E) is uniform in
        # the simplex interior, so its L1 norm follows Beta(d, 1): uniform in the ball.
        u = tf.random.stateless_uniform(tf.stack([batch, features + 1]), seeds[0], dtype=dtype)
        exp = -tf.math.log(1.0 - u)
        point = exp[:, :-1] / tf.reduce_sum(exp, axis=1, keepdims=True)
        coin = tf.random.stateless_uniform(flat_shape, seeds[1], dtype=dtype)
        signs = tf.where(coin < 0.5, tf.constant(-1, dtype), tf.constant(1, dtype))
        return point * signs * eps_col

    def _direction_rows(self, flat):
        magnitude = tf.abs(flat)
        features = tf.shape(flat)[1]
        dropped = tf.cast(tf.floor(self.sparsity * tf.cast(features, tf.float64)), tf.int32)
        keep = tf.clip_by_value(features - dropped, 1, tf.maximum(features, 1))
        threshold = tf.math.top_k(magnitude, k=keep, sorted=True).values[:, -1:]
        mask = tf.cast((magnitude >= threshold) & (magnitude > 0), flat.dtype)
        count = tf.reduce_sum(mask, axis=1, keepdims=True)
        return tf.math.divide_no_nan(tf.sign(flat) * mask, count)

    def _project_rows(self, flat, eps_col):
        magnitude = tf.abs(flat)
        inside = tf.reduce_sum(magnitude, axis=1, keepdims=True) <= eps_col
        # Duchi et al. (2008), Fig. 1: sort |v| descending, find the last j with
        # u_j > (sum_{i<=j} u_i - eps) / j, threshold theta = (sum_{i<=rho} u_i - eps) / rho.
        ordered = tf.sort(magnitude, axis=1, direction="DESCENDING")
        cumulative = tf.cumsum(ordered, axis=1)
        index = tf.cast(tf.range(1, tf.shape(flat)[1] + 1), flat.dtype)
        # Outside samples only (the others are returned as they are): eps there is finite.
        eps_safe = tf.where(inside, tf.zeros_like(eps_col), eps_col)
        active = ordered * index > cumulative - eps_safe
        positions = tf.broadcast_to(tf.cast(index, tf.int32), tf.shape(active))
        rho = tf.reduce_max(tf.where(active, positions, tf.zeros_like(positions)), axis=1)
        rho = tf.maximum(rho, 1)
        total = tf.gather(cumulative, rho - 1, axis=1, batch_dims=1)[:, None]
        theta = (total - eps_safe) / tf.cast(rho, flat.dtype)[:, None]
        # One Newton step on sum(max(|v| - theta, 0)) = eps: a no-op for the exact theta, it
        # removes the rounding error of the long cumsum (float32, many features).
        excess = tf.maximum(magnitude - theta, 0)
        count = tf.reduce_sum(tf.cast(excess > 0, flat.dtype), axis=1, keepdims=True)
        residual = tf.reduce_sum(excess, axis=1, keepdims=True) - eps_safe
        theta = theta + tf.math.divide_no_nan(residual, count)
        projected = tf.sign(flat) * tf.maximum(magnitude - theta, 0)
        return tf.where(inside, flat, projected)


# ----------------------------------------------------------------------------------------------
# The L1 ball intersected with a box ("Mind the box", Croce & Hein 2021)
# ----------------------------------------------------------------------------------------------


def _rows_like(value: Any, like: tf.Tensor, flat: tf.Tensor) -> tf.Tensor:
    """`value` (broadcastable to `like`'s shape) as `[B, d]` rows in `flat`'s dtype."""
    value = tf.cast(tf.convert_to_tensor(value, dtype_hint=flat.dtype), flat.dtype)
    return tf.reshape(tf.broadcast_to(value, tf.shape(like)), tf.shape(flat))


def project_l1_box(delta: Any, eps: Any, low: Any = -math.inf, high: Any = math.inf) -> tf.Tensor:
    """Exact Euclidean projection onto ``{d : ||d||_1 <= eps, low <= d <= high}``, per sample.

    The set is the L1 ball of radius `eps` intersected with a box that contains 0: for an
    attack, ``delta = x_adv - x`` and the box is ``[low - x, high - x]`` (the input bounds
    seen from the clean point). Projecting onto the ball and then clipping into the box (what
    a generic loop does) can leave a point far from the closest one; this is the closest.

    The solution is ``d_i = sign(v_i) min(max(|v_i| - lam, 0), c_i)`` with ``c_i`` the room
    the box leaves in the direction of ``v_i`` and ``lam >= 0`` the smallest value that puts
    ``d`` in the ball. ``sum_i |d_i|`` is piecewise linear in ``lam`` with the 2d breakpoints
    ``|v_i| - c_i`` and ``|v_i|``: sorting them gives it at every breakpoint (cumulative
    sums), and the interval that reaches `eps` gives ``lam`` in closed form, O(d log d) per
    sample (Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on image
    classifiers", ICML 2021, and AutoAttack's `L1_projection`). A final Newton step on
    ``lam`` removes the rounding of the long cumulative sums. Vectorised over the batch, pure
    TensorFlow: it runs eagerly and inside `tf.function`.

    Args:
        delta: Tensor ``[B, ...]`` of perturbations to project.
        eps: Radius, a number or a tensor, scalar or ``[B]``, >= 0 (may be inf).
        low: Lower end of the box for ``delta``: a number or a tensor broadcastable to the
            shape of `delta` (one value per feature, or per sample and feature); ``-inf``
            for none. Values above 0 are taken as 0 (the box must contain 0).
        high: Upper end, the same way; ``inf`` for none. Values below 0 are taken as 0.

    Returns:
        Tensor of the shape and dtype of `delta`: its projection. A sample already inside
        both the ball and the box is returned unchanged; one inside the ball only is clipped.
        The result's L1 norm can exceed `eps` by a few ulps.

    >>> import tensorflow as tf
    >>> from advgrad.norms import project_l1_box
    >>> v = tf.constant([[2.0, 1.0, 0.0]])
    >>> project_l1_box(v, 1.0, high=[0.5, 1.0, 1.0]).numpy().tolist()  # ball, then clip: 0.5, 0, 0
    [[0.5, 0.5, 0.0]]
    """
    delta = tf.convert_to_tensor(delta)
    flat, dtype = _flatten(delta)
    eps_col = _per_sample(eps, tf.shape(flat)[0], flat.dtype)
    low_rows = tf.minimum(_rows_like(low, delta, flat), 0)
    high_rows = tf.maximum(_rows_like(high, delta, flat), 0)
    return _unflatten(_project_l1_box_rows(flat, eps_col, low_rows, high_rows), delta, dtype)


def _project_l1_box_rows(flat, eps_col, low, high):
    magnitude = tf.abs(flat)
    room = tf.where(flat >= 0, high, -low)  # c_i: how far the box lets |d_i| grow
    boxed = tf.minimum(magnitude, room)  # |clip(v, low, high)|: the box alone
    total = tf.reduce_sum(boxed, axis=1, keepdims=True)
    inside = total <= eps_col  # clipping alone reaches the ball: lam = 0
    eps_safe = tf.where(inside, tf.zeros_like(eps_col), eps_col)  # finite below
    # |d_i|(lam) = clip(|v_i| - lam, 0, boxed_i): slope -1 on (|v_i| - boxed_i, |v_i|).
    # With g(lam) = total - sum_i |d_i|(lam) (non-decreasing from g(0) = 0), find
    # g(lam) = total - eps between the sorted breakpoints, where the slope is the number of
    # coordinates whose interval is open (+1 at each start, -1 at each end).
    starts = magnitude - boxed
    points = tf.concat([starts, magnitude], axis=1)
    marks = tf.concat([tf.ones_like(starts), -tf.ones_like(magnitude)], axis=1)
    order = tf.argsort(points, axis=1)  # ties: any order (the search ends past a tie group)
    points = tf.gather(points, order, batch_dims=1)
    slope = tf.cumsum(tf.gather(marks, order, batch_dims=1), axis=1)  # on (p_j, p_{j+1})
    rise = slope[:, :-1] * (points[:, 1:] - points[:, :-1])
    at_points = tf.concat([tf.zeros_like(eps_col), tf.cumsum(rise, axis=1)], axis=1)  # g(p_j)
    target = total - eps_safe
    j = tf.maximum(tf.reduce_sum(tf.cast(at_points <= target, tf.int32), axis=1) - 1, 0)
    base = tf.gather(points, j, batch_dims=1)[:, None]
    reached = tf.gather(at_points, j, batch_dims=1)[:, None]
    rate = tf.gather(slope, j, batch_dims=1)[:, None]
    lam = tf.maximum(base + tf.math.divide_no_nan(target - reached, rate), 0)
    # One Newton step on sum_i |d_i|(lam) = eps (exact lam: a no-op).
    size = tf.clip_by_value(magnitude - lam, 0, boxed)
    open_ = tf.cast((magnitude - lam > 0) & (magnitude - lam < boxed), flat.dtype)
    residual = tf.reduce_sum(size, axis=1, keepdims=True) - eps_safe
    count = tf.reduce_sum(open_, axis=1, keepdims=True)
    lam = tf.maximum(lam + tf.math.divide_no_nan(residual, count), 0)
    size = tf.clip_by_value(magnitude - lam, 0, boxed)
    # Rounding can leave a few ulps above eps: shrinking towards 0 stays in the box.
    norm = tf.reduce_sum(size, axis=1, keepdims=True)
    size = size * tf.where(norm > eps_safe, tf.math.divide_no_nan(eps_safe, norm), 1)
    return tf.where(inside, tf.sign(flat) * boxed, tf.sign(flat) * size)


def sparse_sign_direction(grad: Any, fraction: Any) -> tf.Tensor:
    """The sign of `grad` on its largest coordinates, with unit L1 norm: l1-APGD's step.

    Per sample, the coordinates whose ``|grad|`` is at or above the value at position
    ``floor((1 - fraction) d)`` of the ascending order are kept (about ``fraction x d`` of
    them, at least one; zero gradients never), and the direction is ``sign(grad) * kept /
    count``. Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on image
    classifiers", ICML 2021: the fraction adapts during the attack to the sparsity
    of the best point found (`advgrad.attacks.APGD` with ``norm="l1"``). Zero coordinates of
    `grad` (e.g. ones the box blocks, masked beforehand) are never chosen.

    Args:
        grad: Tensor ``[B, ...]``.
        fraction: The share of coordinates to keep, a number or a tensor ``[B]`` in [0, 1].

    Returns:
        Tensor of the shape and dtype of `grad`; zero for a zero gradient.

    >>> import tensorflow as tf
    >>> from advgrad.norms import sparse_sign_direction
    >>> g = tf.constant([[0.1, -3.0, 2.0, 0.2], [1.0, 0.0, 0.0, 0.0]])
    >>> sparse_sign_direction(g, [0.5, 0.75]).numpy().tolist()
    [[0.0, -0.5, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]]
    """
    grad = tf.convert_to_tensor(grad)
    flat, dtype = _flatten(grad)
    magnitude = tf.abs(flat)
    features = tf.shape(flat)[1]
    share = tf.reshape(_per_sample(fraction, tf.shape(flat)[0], tf.float64), [-1])
    position = tf.cast(tf.floor((1.0 - share) * tf.cast(features, tf.float64)), tf.int32)
    position = tf.clip_by_value(position, 0, tf.maximum(features - 1, 0))
    threshold = tf.gather(tf.sort(magnitude, axis=1), position, batch_dims=1)[:, None]
    mask = tf.cast((magnitude >= threshold) & (magnitude > 0), flat.dtype)
    count = tf.reduce_sum(mask, axis=1, keepdims=True)
    return _unflatten(tf.math.divide_no_nan(tf.sign(flat) * mask, count), grad, dtype)


_ALIASES = {"linf": Linf, "inf": Linf, "l2": L2, "2": L2, "l1": L1, "1": L1}


def names() -> list[str]:
    """The canonical norm names, one per norm, in the registry's order (aliases left out).

    >>> from advgrad import norms
    >>> norms.names()
    ['linf', 'l2', 'l1']
    """
    return list(dict.fromkeys(cls.name for cls in _ALIASES.values()))


def get(identifier: Any) -> Norm:
    """Resolve a norm identifier (Keras-style `get`).

    Args:
        identifier: A `Norm` (returned as is); a name "linf"/"inf", "l2", "l1" (any case);
            a number `inf`, 2 or 1; or a config dict from `Norm.get_config()`.

    Returns:
        A `Norm` instance.

    Raises:
        ValueError: If `identifier` is none of the above.

    >>> import math
    >>> from advgrad import norms
    >>> norms.get("Linf"), norms.get(math.inf), norms.get(2), norms.get("l1")
    (Linf(), Linf(), L2(), L1(sparsity=0.99))
    """
    if isinstance(identifier, Norm):
        return identifier
    expected = "one of 'linf', 'l2', 'l1' (or a Norm)"
    if isinstance(identifier, dict):
        config = dict(identifier)
        cls = _ALIASES.get(str(config.pop("name", "")).lower())
        if cls is None:
            raise invalid("norm", expected, identifier)
        try:
            return cls(**config)
        except TypeError:
            raise invalid("norm", f"a config of {cls.__name__}", identifier) from None
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.strip().lower())
    elif isinstance(identifier, numbers.Real) and not isinstance(identifier, (bool, np.bool_)):
        value = float(identifier)
        cls = {math.inf: Linf, 2.0: L2, 1.0: L1}.get(value)
    else:
        cls = None
    if cls is None:
        raise invalid("norm", expected, identifier)
    return cls()
