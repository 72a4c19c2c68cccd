"""Tests for advgrad.norms: balls, random starts, directions and projections."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from advgrad import norms
from advgrad.norms import L1, L2, Linf

ALL_NORMS = [Linf(), L2(), L1()]
NORM_IDS = ["linf", "l2", "l1"]
DTYPES = [tf.float16, tf.float32, tf.float64]
SHAPES = [(5, 12), (5, 3, 4), (5, 2, 3, 2)]  # ranks 2, 3, 4


def np_norm(x: np.ndarray, p: float) -> np.ndarray:
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    return np.linalg.norm(flat, ord=p, axis=1)


def tolerance(dtype: tf.DType) -> float:
    return {tf.float16: 2e-3, tf.float32: 1e-5, tf.float64: 1e-10}[dtype]


def duchi_reference(v: np.ndarray, eps: float) -> np.ndarray:
    """Projection of a vector onto the L1 ball (Duchi et al. 2008, Fig. 1), plain numpy."""
    v = np.asarray(v, np.float64)
    if np.abs(v).sum() <= eps:
        return v.copy()
    if eps == 0:
        return np.zeros_like(v)
    u = np.sort(np.abs(v))[::-1]
    css = np.cumsum(u)
    j = np.arange(1, len(u) + 1)
    rho = np.nonzero(u * j > css - eps)[0][-1]
    theta = (css[rho] - eps) / (rho + 1)
    return np.sign(v) * np.maximum(np.abs(v) - theta, 0.0)


def bisection_reference(v: np.ndarray, eps: float) -> np.ndarray:
    """Same projection by bisection on the soft threshold theta (independent of sorting)."""
    a = np.abs(np.asarray(v, np.float64))
    if a.sum() <= eps:
        return np.asarray(v, np.float64).copy()
    lo, hi = 0.0, a.max()
    for _ in range(200):
        theta = (lo + hi) / 2
        if np.maximum(a - theta, 0).sum() > eps:
            lo = theta
        else:
            hi = theta
    return np.sign(v) * np.maximum(a - (lo + hi) / 2, 0.0)


def uniform_l1_ball(rng: np.random.Generator, n: int, d: int, eps: float) -> np.ndarray:
    e = rng.exponential(size=(n, d + 1))
    return eps * (e[:, :d] / e.sum(axis=1, keepdims=True)) * rng.choice([-1.0, 1.0], (n, d))


# ----------------------------------------------------------------------------------------------
# get, config, equality
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier, cls",
    [
        ("linf", Linf),
        ("inf", Linf),
        ("Linf", Linf),
        (np.inf, Linf),
        (float("inf"), Linf),
        ("l2", L2),
        ("L2", L2),
        (2, L2),
        (2.0, L2),
        ("l1", L1),
        (1, L1),
    ],
)
def test_get_aliases(identifier, cls):
    assert type(norms.get(identifier)) is cls


def test_get_returns_instance_and_config():
    l1 = L1(sparsity=0.9)
    assert norms.get(l1) is l1
    assert norms.get(l1.get_config()) == l1
    assert L1.from_config(l1.get_config()) == l1
    assert l1.get_config() == {"name": "l1", "sparsity": 0.9}
    assert Linf().get_config() == {"name": "linf"}
    assert (Linf().p, L2().p, L1().p) == (math.inf, 2.0, 1.0)


@pytest.mark.parametrize("bad", ["l3", "max", 3, 0, True, None, [1], {"name": "nope"}])
def test_get_rejects(bad):
    with pytest.raises(ValueError, match=r"argument `norm`: expected one of 'linf', 'l2', 'l1'"):
        norms.get(bad)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "0.5", True])
def test_l1_sparsity_validated(bad):
    with pytest.raises(ValueError, match="argument `sparsity`"):
        L1(sparsity=bad)


def test_equality_hash_repr():
    assert Linf() == Linf() and L2() == L2() and L1() == L1(0.99)
    assert L1(0.5) != L1(0.9) and Linf() != L2()
    assert len({Linf(), Linf(), L2(), L1(), L1(0.5)}) == 4
    assert repr(L1(0.5)) == "L1(sparsity=0.5)" and repr(Linf()) == "Linf()"


# ----------------------------------------------------------------------------------------------
# norm
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_norm_matches_numpy(norm, dtype, shape):
    x = np.random.default_rng(0).normal(size=shape)
    got = norm.norm(tf.constant(x, dtype))
    assert got.dtype == dtype and got.shape == (shape[0],)
    want = np_norm(tf.cast(tf.constant(x, dtype), tf.float64).numpy(), norm.p)
    np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=tolerance(dtype))


def test_l2_norm_float16_does_not_overflow():
    x = tf.fill([2, 4], tf.constant(300.0, tf.float16))  # 300^2 = 90000 > float16 max
    np.testing.assert_allclose(L2().norm(x).numpy(), [600.0, 600.0])


# ----------------------------------------------------------------------------------------------
# random_init
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_random_init_in_ball(norm, dtype, shape):
    eps = 0.3
    x = norm.random_init(shape, eps, seed=[1, 2], dtype=dtype)
    assert x.dtype == dtype and tuple(x.shape) == shape
    sizes = np_norm(x.numpy(), norm.p)
    assert np.all(sizes <= eps * (1 + tolerance(dtype)))
    assert np.all(sizes > 0)


def test_random_init_per_sample_eps():
    eps = tf.constant([0.0, 0.1, 1.0, 10.0])
    for norm in ALL_NORMS:
        sizes = norm.norm(norm.random_init([4, 50], eps, seed=[3, 4])).numpy()
        assert sizes[0] == 0.0
        assert np.all(sizes[1:] <= eps.numpy()[1:] * (1 + 1e-5))
        assert np.all(sizes[1:] > eps.numpy()[1:] * 0.5)  # d=50: radius^50 puts all mass near eps


@pytest.mark.parametrize("norm", [L2(), L1()], ids=["l2", "l1"])
def test_random_init_uniform_radius(norm):
    """Uniform in the ball of R^d: P(||x|| < r * eps) = r^d."""
    n, d, eps = 4000, 4, 2.0
    sizes = norm.norm(norm.random_init([n, 2, 2], eps, seed=[7, 11], dtype=tf.float64)).numpy()
    assert np.all(sizes <= eps * (1 + 1e-12))
    for r in (0.5, 0.8, 0.95):
        fraction = np.mean(sizes < r * eps)
        sigma = math.sqrt(r**d * (1 - r**d) / n)
        assert abs(fraction - r**d) < 4 * sigma + 1e-3, (r, fraction, r**d)


def test_random_init_uniform_coordinates():
    """Linf: each coordinate uniform in [-eps, eps]; L2/L1: symmetric, isotropic signs."""
    n, eps = 4000, 0.5
    x = Linf().random_init([n, 4], eps, seed=[5, 6], dtype=tf.float64).numpy()
    assert np.all(np.abs(x) <= eps)
    assert abs(np.mean(np.abs(x) < eps / 2) - 0.5) < 0.02
    for norm in (L2(), L1()):
        x = norm.random_init([n, 4], eps, seed=[5, 6], dtype=tf.float64).numpy()
        assert np.all(np.abs(np.mean(x > 0, axis=0) - 0.5) < 0.03)
        assert np.all(np.abs(np.mean(x, axis=0)) < 0.02)


@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_random_init_reproducible(norm):
    a = norm.random_init([8, 3, 3], 1.0, seed=tf.constant([10, 20], tf.int64))
    b = norm.random_init([8, 3, 3], 1.0, seed=tf.constant([10, 20], tf.int32))
    c = norm.random_init([8, 3, 3], 1.0, seed=[10, 21])
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())
    # Different samples of one batch are different draws.
    assert not np.allclose(a.numpy()[0], a.numpy()[1])
    # A Python int seed s means [s, 0].
    np.testing.assert_array_equal(
        norm.random_init([2, 5], 1.0, seed=3).numpy(),
        norm.random_init([2, 5], 1.0, seed=[3, 0]).numpy(),
    )


def test_random_init_rejects_integer_dtype():
    with pytest.raises(ValueError, match="argument `dtype`"):
        Linf().random_init([2, 2], 1.0, seed=[0, 0], dtype=tf.int32)


# ----------------------------------------------------------------------------------------------
# direction
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_direction_unit_norm(dtype, shape):
    grad_np = np.random.default_rng(1).normal(size=shape)
    grad = tf.constant(grad_np, dtype)
    for norm in ALL_NORMS:
        direction = norm.direction(grad)
        assert direction.dtype == dtype and direction.shape == grad.shape
        d = direction.numpy().astype(np.float64)
        if norm.p == math.inf:
            np.testing.assert_array_equal(d, np.sign(grad.numpy()))
        else:
            np.testing.assert_allclose(np_norm(d, norm.p), 1.0, rtol=tolerance(dtype))
        # Steepest ascent: aligned with the gradient.
        assert np.all(np.sum((d * grad_np).reshape(len(d), -1), axis=1) > 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_direction_is_normalized_gradient(dtype):
    grad = np.random.default_rng(2).normal(size=(4, 3, 5))
    got = L2().direction(tf.constant(grad, dtype)).numpy().astype(np.float64)
    want = grad / np_norm(grad, 2)[:, None, None]
    np.testing.assert_allclose(got, want, atol=5 * tolerance(dtype))


@pytest.mark.parametrize(
    "features, sparsity, kept",
    [(200, 0.99, 2), (784, 0.99, 8), (100, 0.99, 1), (10, 0.99, 1), (40, 0.9, 4), (12, 0.0, 12)],
)
def test_l1_direction_sparsity(features, sparsity, kept):
    grad = np.random.default_rng(3).normal(size=(6, features))
    direction = L1(sparsity).direction(tf.constant(grad, tf.float64)).numpy()
    nonzero = direction != 0
    np.testing.assert_array_equal(nonzero.sum(axis=1), kept)
    np.testing.assert_allclose(np.abs(direction).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(direction[nonzero], np.sign(grad[nonzero]) / kept)
    # The kept coordinates are the largest |grad| ones, and match numpy's quantile.
    for row, mask in zip(np.abs(grad), nonzero, strict=True):
        assert row[mask].min() >= row[~mask].max(initial=0)
        np.testing.assert_array_equal(mask, row >= np.quantile(row, sparsity))


def test_l1_direction_ties_and_partial_zero():
    grad = tf.constant([[1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 5.0, 0.0]])
    direction = L1(sparsity=0.5).direction(grad).numpy()
    np.testing.assert_allclose(direction[0], [0.25, -0.25, 0.25, -0.25])  # ties all kept
    np.testing.assert_allclose(direction[1], [0.0, 0.0, 1.0, 0.0])  # zeros never kept


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_zero_gradient_gives_zero_direction(norm, dtype):
    grad = np.random.default_rng(4).normal(size=(3, 2, 4))
    grad[1] = 0.0
    direction = norm.direction(tf.constant(grad, dtype)).numpy()
    assert np.all(np.isfinite(direction))
    np.testing.assert_array_equal(direction[1], 0.0)
    assert np.all(np.abs(direction[[0, 2]]).sum(axis=(1, 2)) > 0)


def test_direction_extreme_magnitudes():
    tiny = tf.constant([[1e-30, -2e-30, 0.0]], tf.float32)  # squares underflow in float32
    np.testing.assert_allclose(L2().norm(L2().direction(tiny)).numpy(), [1.0], rtol=1e-6)
    huge = tf.constant([[300.0, 400.0]], tf.float16)  # squares overflow in float16
    np.testing.assert_allclose(L2().direction(huge).numpy(), [[0.6, 0.8]], rtol=1e-3)


# ----------------------------------------------------------------------------------------------
# project
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.5, 3.0, 100.0])
def test_l1_projection_matches_references(eps):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(16, 30)) * rng.uniform(0.01, 2.0, size=(16, 1))
    x[3] = 0.0
    x[4, :] = 0.7  # ties
    got = L1().project(tf.constant(x, tf.float64), eps).numpy()
    for row, projected in zip(x, got, strict=True):
        np.testing.assert_allclose(projected, duchi_reference(row, eps), atol=1e-12)
        np.testing.assert_allclose(projected, bisection_reference(row, eps), atol=1e-9)


def test_l1_projection_optimal():
    """The projection is closer to x than any of 200 feasible points (random and nearby)."""
    rng = np.random.default_rng(6)
    eps, d = 1.0, 10
    x = rng.normal(size=(8, d)) * 2.0
    projected = L1().project(tf.constant(x, tf.float64), eps).numpy()
    for row, p in zip(x, projected, strict=True):
        assert np.abs(p).sum() <= eps * (1 + 1e-12)
        random_points = uniform_l1_ball(rng, 100, d, eps)
        nearby = p + rng.normal(scale=0.05, size=(100, d))
        nearby *= np.minimum(1.0, eps / np.abs(nearby).sum(axis=1, keepdims=True))
        candidates = np.concatenate([random_points, nearby])
        assert np.all(np.abs(candidates).sum(axis=1) <= eps * (1 + 1e-12))
        best = np.linalg.norm(row - p)
        assert np.all(np.linalg.norm(row - candidates, axis=1) >= best - 1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_projection_in_ball_idempotent_inside_unchanged(norm, dtype, shape):
    rng = np.random.default_rng(7)
    eps = 0.5
    x = rng.normal(size=shape)
    x[0] *= 1e-3  # sample 0 is inside every ball
    delta = tf.constant(x, dtype)
    projected = norm.project(delta, eps)
    assert projected.dtype == dtype and projected.shape == delta.shape
    sizes = np_norm(projected.numpy(), norm.p)
    assert np.all(sizes <= eps * (1 + 4 * tolerance(dtype)))
    np.testing.assert_array_equal(projected.numpy()[0], delta.numpy()[0])
    again = norm.project(projected, eps).numpy().astype(np.float64)
    np.testing.assert_allclose(again, projected.numpy().astype(np.float64), atol=tolerance(dtype))
    # Compare with the float64 result.
    reference = norm.project(tf.cast(delta, tf.float64), eps).numpy()
    np.testing.assert_allclose(
        projected.numpy().astype(np.float64), reference, atol=4 * tolerance(dtype)
    )


def test_projection_known_values():
    delta = tf.constant([[3.0, -4.0], [0.3, 0.1]])
    np.testing.assert_allclose(Linf().project(delta, 0.5).numpy(), [[0.5, -0.5], [0.3, 0.1]])
    np.testing.assert_allclose(L2().project(delta, 1.0).numpy(), [[0.6, -0.8], [0.3, 0.1]])
    np.testing.assert_allclose(L1().project(delta, 1.0).numpy(), [[0.0, -1.0], [0.3, 0.1]])
    np.testing.assert_allclose(L1().project(delta, 2.0).numpy(), [[0.5, -1.5], [0.3, 0.1]])


@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_projection_eps_zero_and_inf(norm):
    delta = tf.constant(np.random.default_rng(8).normal(size=(4, 6)), tf.float32)
    np.testing.assert_array_equal(norm.project(delta, 0.0).numpy(), 0.0)
    np.testing.assert_array_equal(norm.project(delta, math.inf).numpy(), delta.numpy())
    np.testing.assert_array_equal(norm.project(tf.zeros([2, 3]), 0.0).numpy(), 0.0)


@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_projection_per_sample_eps(norm):
    delta = tf.constant(np.random.default_rng(9).normal(size=(3, 8)) * 5, tf.float64)
    eps = np.array([0.1, 1.0, 2.0])
    got = norm.project(delta, tf.constant(eps)).numpy()
    for i in range(3):
        want = norm.project(delta[i : i + 1], eps[i]).numpy()[0]
        np.testing.assert_allclose(got[i], want, atol=1e-12)
    np.testing.assert_allclose(np_norm(got, norm.p), eps, rtol=1e-12)


@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_python_eps_keeps_float64_precision(norm):
    delta = tf.constant(np.random.default_rng(12).normal(size=(3, 7)), tf.float64)
    np.testing.assert_allclose(norm.norm(norm.project(delta, 0.1)).numpy(), 0.1, rtol=1e-14)
    sizes = norm.norm(norm.random_init([500, 2], 0.1, seed=[0, 1], dtype=tf.float64)).numpy()
    assert sizes.max() <= 0.1 and sizes.max() > 0.1 - 1e-2


@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_empty_batch(norm):
    empty = tf.zeros([0, 3, 2])
    assert norm.project(empty, 1.0).shape == (0, 3, 2)
    assert norm.direction(empty).shape == (0, 3, 2)
    assert norm.norm(empty).shape == (0,)
    assert norm.random_init([0, 3, 2], 1.0, seed=[0, 0]).shape == (0, 3, 2)


# ----------------------------------------------------------------------------------------------
# Graph mode: one trace for every eps, dynamic shapes
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ALL_NORMS, ids=NORM_IDS)
def test_graph_mode_no_retrace_on_eps(norm):
    traces = []

    @tf.function
    def step(x, grad, eps, seed):
        traces.append(1)
        delta = norm.random_init(tf.shape(x), eps, seed, dtype=x.dtype)
        delta = norm.project(delta + 0.1 * norm.direction(grad), eps)
        return delta, norm.norm(delta)

    rng = np.random.default_rng(10)
    x = tf.constant(rng.normal(size=(4, 3, 5)), tf.float32)
    grad = tf.constant(rng.normal(size=(4, 3, 5)), tf.float32)
    results = []
    for i, eps in enumerate([0.1, 0.5, 2.0, 0.0]):
        delta, sizes = step(x, grad, tf.constant(eps), tf.constant([i, 1]))
        assert delta.shape == x.shape
        assert np.all(sizes.numpy() <= eps * (1 + 1e-5))
        results.append(delta.numpy())
    assert len(traces) == 1
    # The same seed in graph mode and eagerly gives the same draw.
    eager = norm.random_init(tf.shape(x), 0.5, tf.constant([1, 1]))
    graph_only = tf.function(lambda: norm.random_init(tf.shape(x), 0.5, tf.constant([1, 1])))
    np.testing.assert_allclose(eager.numpy(), graph_only().numpy(), rtol=1e-6)


def test_graph_mode_unknown_shapes():
    traces = []

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32), tf.TensorSpec([], tf.float32)])
    def run(x, eps):
        traces.append(1)
        return [n.project(x, eps) + n.direction(x) for n in ALL_NORMS]

    for shape in [(2, 6), (3, 2, 2), (1, 2, 2, 3)]:
        x = tf.constant(np.random.default_rng(11).normal(size=shape), tf.float32)
        outs = run(x, tf.constant(0.3))
        for norm, out in zip(ALL_NORMS, outs, strict=True):
            want = norm.project(x, 0.3) + norm.direction(x)
            np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert len(traces) == 1


# ------------------------------------------------------------------ L1 ball x box (Mind the box)


def l1_box_reference(v: np.ndarray, eps: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Projection onto {||d||_1 <= eps, low <= d <= high} (low <= 0 <= high), plain numpy:
    d = sign(v) clip(|v| - lam, 0, room) with lam found by bisection on the dual variable."""
    v = np.asarray(v, np.float64)
    room = np.where(v >= 0, high, -low)

    def size(lam):
        return np.clip(np.abs(v) - lam, 0, room)

    if size(0.0).sum() <= eps:
        return np.sign(v) * size(0.0)
    lo, hi = 0.0, float(np.abs(v).max())
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if size(mid).sum() > eps else (lo, mid)
    return np.sign(v) * size(hi)


def _l1_box_cases(rng, batch=64, features=50):
    """Random perturbations, radii and boxes: scalar, per feature and unbounded sides."""
    v = rng.normal(size=(batch, features)) * rng.choice([0.05, 1.0, 5.0], size=(batch, 1))
    eps = rng.choice([0.0, 0.5, 2.0, 10.0, 100.0], size=batch)
    low = -rng.uniform(0, 1, size=(batch, features))
    high = rng.uniform(0, 1, size=(batch, features))
    low[rng.uniform(size=low.shape) < 0.2] = -np.inf
    high[rng.uniform(size=high.shape) < 0.2] = np.inf
    low[rng.uniform(size=low.shape) < 0.1] = 0.0  # at the bound: no room on that side
    return v, eps, low, high


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_project_l1_box_matches_bisection_reference(dtype, rng):
    v, eps, low, high = _l1_box_cases(rng)
    got = norms.project_l1_box(tf.constant(v, dtype), tf.constant(eps, dtype), low, high).numpy()
    want = np.stack([l1_box_reference(*row) for row in zip(v, eps, low, high, strict=True)])
    scale = np.maximum(1.0, np.abs(v).max())
    assert np.abs(got - want).max() <= (2e-5 if dtype == tf.float32 else 1e-10) * scale
    assert np.all(np.abs(got).sum(axis=1) <= eps * (1 + 1e-6) + 1e-6)
    assert np.all((got >= low.astype(got.dtype)) & (got <= high.astype(got.dtype)))


def test_project_l1_box_is_closest_feasible_point(rng):
    """No feasible point (random ones, and the ball-then-clip point) is closer than it."""
    v, eps, low, high = _l1_box_cases(rng, batch=16, features=20)
    got = norms.project_l1_box(v, eps, low, high).numpy()
    mine = np.linalg.norm(got - v, axis=1)
    clip_after = np.clip(L1().project(tf.constant(v), tf.constant(eps)).numpy(), low, high)
    assert np.all(mine <= np.linalg.norm(clip_after - v, axis=1) + 1e-9)
    for _ in range(50):
        cand = np.clip(got + rng.normal(size=got.shape) * 0.05, low, high)
        cand = norms.project_l1_box(cand, eps, low, high).numpy()  # feasible
        assert np.all(mine <= np.linalg.norm(cand - v, axis=1) + 1e-9)


def test_project_l1_box_keeps_points_inside_and_equals_l1_unbounded(rng):
    v = rng.normal(size=(8, 3, 4)) * 0.01
    np.testing.assert_array_equal(norms.project_l1_box(v, 1.0, -1.0, 1.0).numpy(), v)
    w = rng.normal(size=(8, 3, 4)) * 3  # no box: the plain L1 projection
    np.testing.assert_allclose(
        norms.project_l1_box(w, [0.5] * 8).numpy(), L1().project(w, 0.5).numpy(), atol=1e-9
    )


def test_project_l1_box_in_tf_function_with_per_feature_bounds(rng):
    low = -np.linspace(0.0, 1.0, 6)
    high = np.linspace(1.0, 0.0, 6)

    @tf.function(input_signature=[tf.TensorSpec([None, 2, 3], tf.float32), tf.TensorSpec([])])
    def project(delta, eps):
        return norms.project_l1_box(delta, eps, low.reshape(2, 3), high.reshape(2, 3))

    v = rng.normal(size=(5, 2, 3)).astype(np.float32)
    got = project(v, 0.7).numpy().reshape(5, -1)
    want = np.stack([l1_box_reference(r, 0.7, low, high) for r in v.reshape(5, -1)])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_sparse_sign_direction_keeps_the_top_fraction(rng):
    g = rng.normal(size=(4, 100))
    g[3] = 0.0
    d = norms.sparse_sign_direction(g, [0.05, 0.2, 0.0, 0.5]).numpy()
    assert (d != 0).sum(axis=1).tolist() == [5, 20, 1, 0]
    np.testing.assert_allclose(np.abs(d).sum(axis=1), [1, 1, 1, 0])
    for row, grad in zip(d[:3], g[:3], strict=True):
        kept = np.abs(grad[row != 0])
        assert kept.min() >= np.abs(grad[row == 0]).max()
        np.testing.assert_array_equal(np.sign(row[row != 0]), np.sign(grad[row != 0]))
