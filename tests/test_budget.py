"""Tests for advgrad.budget: Bounds, Budget and resolve_budgets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from advgrad.budget import Bounds, Budget, outside, resolve_budgets
from advgrad.norms import L1, L2, Linf

# ----------------------------------------------------------------------------------------------
# Bounds
# ----------------------------------------------------------------------------------------------


def test_bounds_scalars_and_arrays():
    bounds = Bounds(0, 1)
    assert (bounds.low, bounds.high) == (0.0, 1.0) and isinstance(bounds.low, float)
    per_feature = Bounds(np.array([0.0, -1.0, -np.inf]), np.array([1.0, 1.0, 5.0]))
    assert per_feature.low.shape == (3,) and not per_feature.low.flags.writeable
    assert not per_feature.is_unbounded
    assert Bounds.unbounded().is_unbounded and Bounds().is_unbounded
    assert Bounds.unbounded() == Bounds(-math.inf, math.inf)


@pytest.mark.parametrize(
    "low, high, expected",
    [
        (1.0, 0.0, "low <= high"),
        (np.array([0.0, 2.0]), np.array([1.0, 1.0]), "low <= high"),
        (float("nan"), 1.0, "without NaN"),
        (0.0, np.array([1.0, np.nan]), "without NaN"),
        ("a", 1.0, "numbers or arrays of numbers"),
        (None, 1.0, "numbers or arrays of numbers"),
        (True, 1.0, "numbers or arrays of numbers"),
        (np.zeros(3), np.ones(2), "broadcastable"),
        (math.inf, math.inf, "low < inf and high > -inf"),
        (-math.inf, -math.inf, "low < inf and high > -inf"),
    ],
)
def test_bounds_validation(low, high, expected):
    with pytest.raises(ValueError, match=f"argument `bounds`: expected .*{expected}"):
        Bounds(low, high)


def test_bounds_from_value():
    assert Bounds.from_value(None).is_unbounded
    assert Bounds.from_value((0.0, 1.0)) == Bounds(0.0, 1.0)
    assert Bounds.from_value([-1, 1]) == Bounds(-1.0, 1.0)
    bounds = Bounds(0.0, 2.0)
    assert Bounds.from_value(bounds) is bounds
    for bad in [1.0, (0.0,), (0.0, 1.0, 2.0), "0,1", {"low": 0.0, "high": 1.0}]:
        with pytest.raises(ValueError, match="argument `bounds`"):
            Bounds.from_value(bad)


@pytest.mark.parametrize("dtype", [tf.float16, tf.float32, tf.float64])
def test_bounds_clip_and_contains(dtype):
    bounds = Bounds(np.array([0.0, -1.0, -np.inf]), np.array([0.1, 1.0, 5.0]))
    x = tf.constant([[0.5, -3.0, -100.0], [-0.2, 0.5, 10.0]], dtype)
    clipped = bounds.clip(x)
    assert clipped.dtype == dtype and clipped.shape == x.shape
    want = np.array([[0.1, -1.0, -100.0], [0.0, 0.5, 5.0]])
    np.testing.assert_allclose(clipped.numpy(), want.astype(dtype.as_numpy_dtype))
    assert not bounds.contains(x)
    assert bounds.contains(clipped)  # bounds compared in x's dtype (0.1 in float16/32)
    assert bounds.contains(clipped.numpy().astype(np.float64) + 1e-3, atol=1e-2)
    assert not bounds.contains(clipped.numpy().astype(np.float64) + 1e-1, atol=1e-2)


def test_bounds_clip_rank_agnostic_and_graph():
    bounds = Bounds(0.0, 1.0)
    traces = []

    @tf.function
    def clip(x):
        traces.append(1)
        return bounds.clip(x)

    x = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 4, 2)), tf.float32)
    out = clip(x).numpy()
    np.testing.assert_array_equal(out, np.clip(x.numpy(), 0.0, 1.0))
    clip(x + 1.0)
    assert len(traces) == 1
    # Per-pixel bounds broadcast against the per-sample shape.
    image_bounds = Bounds(np.zeros((4, 1)), np.full((4, 1), 0.5))
    np.testing.assert_array_equal(image_bounds.clip(x).numpy(), np.clip(x.numpy(), 0.0, 0.5))
    unbounded = Bounds.unbounded()
    assert unbounded.clip(x) is x


def test_bounds_shape_mismatch():
    bounds = Bounds(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="argument `bounds`: expected arrays broadcastable"):
        bounds.clip(tf.zeros([2, 4]))
    with pytest.raises(ValueError, match="argument `bounds`"):
        bounds.contains(np.zeros([2, 4]))
    with pytest.raises(ValueError, match="argument `bounds`"):
        Bounds(np.zeros((2, 3)), 1.0).clip(tf.zeros([2, 3]))  # would broadcast over the batch


def test_bounds_equality_hash_config():
    a = Bounds(np.array([0.0, 1.0]), 2.0)
    b = Bounds(np.array([0.0, 1.0]), 2.0)
    assert a == b and hash(a) == hash(b) and a != Bounds(0.0, 2.0)
    assert a.get_config() == {"low": [0.0, 1.0], "high": 2.0}
    assert Bounds(**a.get_config()) == a


# ----------------------------------------------------------------------------------------------
# Budget
# ----------------------------------------------------------------------------------------------


def test_budget_defaults_are_unbounded_linf():
    budget = Budget(0.1)
    assert budget.eps == 0.1 and budget.norm == Linf()
    assert budget.bounds.is_unbounded
    x = tf.constant([[-5.0, 7.0]])
    np.testing.assert_array_equal(budget.bounds.clip(x).numpy(), x.numpy())  # no silent [0, 1]


def test_budget_accepts():
    assert Budget(0).eps == 0.0
    assert Budget(np.float32(0.5), "l2", (0, 1)).norm == L2()
    assert Budget(2, L1(0.9)).norm == L1(0.9)
    assert Budget(eps=1.0, bounds=Bounds(-1.0, 1.0)).bounds == Bounds(-1.0, 1.0)


@pytest.mark.parametrize(
    "eps", [-0.1, float("nan"), math.inf, True, "0.1", None, [0.1], np.array([0.1])]
)
def test_budget_eps_validation(eps):
    expected = r"argument `eps`: expected a finite number >= 0, received eps="
    with pytest.raises(ValueError, match=expected):
        Budget(eps)


def test_budget_norm_and_bounds_validation():
    with pytest.raises(ValueError, match="argument `norm`"):
        Budget(0.1, norm="l3")
    with pytest.raises(ValueError, match="argument `bounds`"):
        Budget(0.1, bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match="argument `bounds`"):
        Budget(0.1, bounds=1.0)


def test_budget_replace_config_hash():
    budget = Budget(0.1, "l1", (np.zeros(2), np.ones(2)))
    changed = budget.replace(eps=0.2, norm="l2")
    assert (changed.eps, changed.norm, changed.bounds) == (0.2, L2(), budget.bounds)
    assert budget.eps == 0.1  # unchanged
    with pytest.raises(ValueError, match="argument `eps`"):
        budget.replace(eps=-1.0)
    with pytest.raises(ValueError, match="argument `changes`"):
        budget.replace(epsilon=0.2)
    config = budget.get_config()
    assert config == {
        "eps": 0.1,
        "norm": {"name": "l1", "sparsity": 0.99},
        "bounds": {"low": [0.0, 0.0], "high": [1.0, 1.0]},
    }
    assert Budget.from_config(config) == budget
    assert Budget(0.1).get_config() == {"eps": 0.1, "norm": "linf", "bounds": None}
    assert Budget.from_config(Budget(0.1).get_config()) == Budget(0.1)
    assert hash(Budget(0.1, "l2")) == hash(Budget(0.1, 2))
    assert len({Budget(0.1), Budget(0.1), Budget(0.2)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.eps = 1.0


# ----------------------------------------------------------------------------------------------
# Threat-model membership: Budget.contains and outside
# ----------------------------------------------------------------------------------------------


def _images(seed=0, shape=(4, 8, 8, 1)):
    return np.random.default_rng(seed).uniform(0.1, 0.9, shape).astype(np.float32)


def test_contains_checks_the_ball_and_the_bounds():
    x = _images()
    x[2, 0, 0, 0] = 0.02
    x_adv = x.copy()
    x_adv[1] = np.clip(x_adv[1] + 0.2, 0, 1)  # beyond eps=0.1
    x_adv[2, 0, 0, 0] = -0.01  # inside the ball, but below the lower bound 0
    x_adv[3] = x_adv[3] + np.float32(0.1)  # on the ball's surface (float32 rounding)
    budget = Budget(0.1, bounds=(0.0, 1.0))
    expected = [True, False, False, True]
    assert budget.contains(x, x_adv).tolist() == expected
    assert budget.contains(tf.constant(x), tf.constant(x_adv)).tolist() == expected
    assert Budget(0.1).contains(x, x_adv).tolist() == [True, False, True, True]  # unbounded
    with_bounds = x.copy()
    with_bounds[0, 0, 0, 0] = -0.05
    assert not Budget(0.1, bounds=(0.0, 1.0)).contains(with_bounds, with_bounds)[0]


@pytest.mark.parametrize(
    "norm, delta",
    [("linf", 0.3), ("l2", 0.3 / 8.0), ("l1", 0.3 / 64.0)],  # each gives a norm of exactly 0.3
)
def test_contains_per_norm_with_a_rounding_slack(norm, delta):
    x = np.full((3, 8, 8, 1), 0.5, np.float32)
    x_adv = x.copy()
    x_adv[0] += np.float32(delta)  # on the surface
    x_adv[1] += np.float32(delta * 1.01)  # 1% outside
    x_adv[2, 0, 0, 0] += np.float32(delta) if norm == "linf" else np.float32(0.0)
    inside = Budget(0.3, norm).contains(x, x_adv)
    assert inside.tolist() == [True, False, True]
    # the slack is a few ulps per unit of the norm of an all-ones sample, not eps-sized
    assert not Budget(0.3 * 0.999, norm).contains(x, x_adv)[0]


def test_contains_refuses_non_finite_values():
    x = np.zeros((4, 3), np.float32)
    x_adv = x.copy()
    x_adv[1, 0] = np.nan
    x_adv[2, 1] = np.inf
    x_adv[3, 2] = -np.inf
    for budget in (Budget(0.5), Budget(0.5, "l2"), Budget(0.5, "l1"), Budget(0.5, bounds=(-1, 1))):
        assert budget.contains(x, x_adv).tolist() == [True, False, False, False]


def test_contains_eps_zero_and_integer_inputs():
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    moved = x + np.array([[0.0], [1e-9]])
    assert Budget(0.0).contains(x, moved).tolist() == [True, False]
    ints = np.arange(6).reshape(2, 3)
    assert Budget(1.0).contains(ints, ints + np.array([[1], [2]])).tolist() == [True, False]


def test_outside_a_whole_threat_model_with_frozen_inputs():
    clean = {"image": _images(1, (3, 4)), "meta": np.array([[1.0], [np.nan], [3.0]])}
    adv = {"image": clean["image"].copy(), "meta": clean["meta"].copy()}
    adv["image"][0] += 0.05
    adv["meta"][2] = 4.0  # a frozen input changed
    budgets = {"image": Budget(0.1, bounds=(0.0, 1.0)), "meta": None}
    assert outside(budgets, clean, adv).tolist() == [False, False, True]  # NaN left as NaN
    adv["image"][1] += 0.5
    assert outside(budgets, clean, adv).tolist() == [False, True, True]
    # inputs missing from the budgets (the attack does not know them) are not checked
    assert outside({"image": Budget(1.0)}, clean, adv).tolist() == [False, False, False]
    assert outside({"image": None}, clean, adv).tolist() == [True, True, False]


# ----------------------------------------------------------------------------------------------
# resolve_budgets
# ----------------------------------------------------------------------------------------------


def test_resolve_single_input():
    result = resolve_budgets(["x"], None, eps=0.3, norm="l2", bounds=(0.0, 1.0))
    assert result == {"x": Budget(0.3, "l2", (0.0, 1.0))}
    given = Budget(0.1)
    assert resolve_budgets(["x"], given, eps=0.3) == {"x": given}  # a budget wins over eps


def test_resolve_list_inputs():
    names = ["image", "meta"]
    result = resolve_budgets(names, None, eps=0.1)
    assert list(result) == names and all(b == Budget(0.1) for b in result.values())
    shared = Budget(0.2, "l1")
    assert resolve_budgets(names, shared) == {"image": shared, "meta": shared}
    per_input = resolve_budgets(names, None, eps=0.1, bounds={"image": (0.0, 1.0)})
    assert per_input["image"].bounds == Bounds(0.0, 1.0)
    assert per_input["meta"].bounds.is_unbounded


def test_resolve_dict_with_frozen_inputs():
    names = ["image", "meta", "mask"]
    image = Budget(0.1, bounds=(0.0, 1.0))
    result = resolve_budgets(names, {"image": image, "meta": None})
    assert result == {"image": image, "meta": None, "mask": None}  # missing = frozen
    assert list(result) == names


def test_resolve_errors():
    names = ["image", "meta"]
    with pytest.raises(ValueError, match=r"argument `budget`: expected keys among \['image'"):
        resolve_budgets(names, {"imgae": Budget(0.1)})
    with pytest.raises(ValueError, match="argument `budget`: expected a dict of Budget or None"):
        resolve_budgets(names, {"image": 0.1})
    with pytest.raises(ValueError, match="argument `budget`: expected at least one input"):
        resolve_budgets(names, {"image": None})
    with pytest.raises(ValueError, match="argument `budget`"):
        resolve_budgets(names, 0.1)
    with pytest.raises(ValueError, match=r"argument `bounds`: expected keys among"):
        resolve_budgets(names, None, eps=0.1, bounds={"other": (0.0, 1.0)})
    with pytest.raises(ValueError, match="argument `eps`"):
        resolve_budgets(names, None)
    with pytest.raises(ValueError, match="argument `eps`"):
        resolve_budgets(names, None, eps=-1.0)
    with pytest.raises(ValueError, match="argument `input_names`"):
        resolve_budgets("image", None, eps=0.1)
    with pytest.raises(ValueError, match="argument `input_names`"):
        resolve_budgets(["a", "a"], None, eps=0.1)
    with pytest.raises(ValueError, match="argument `input_names`"):
        resolve_budgets([], None, eps=0.1)


def test_bounds_from_data_per_feature_and_global():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3, 2)) * np.array([1.0, 10.0])  # standardised-looking features
    tight = Bounds.from_data(x)
    assert tight.low.shape == (3, 2) and tight.contains(x)
    wide = Bounds.from_data(x, margin=0.1)
    width = x.max(axis=0) - x.min(axis=0)
    np.testing.assert_allclose(wide.low, x.min(axis=0) - 0.1 * width)
    np.testing.assert_allclose(wide.high, x.max(axis=0) + 0.1 * width)
    flat = Bounds.from_data(x, per_feature=False)
    assert (flat.low, flat.high) == (float(x.min()), float(x.max()))
    budget = Budget(0.5, bounds=Bounds.from_data(x, margin=0.05))  # usable as bounds
    assert budget.bounds.contains(x)


@pytest.mark.parametrize(
    "x, kwargs, argument",
    [
        (np.zeros((0, 3)), {}, "x"),
        (np.array([[np.nan, 1.0]]), {}, "x"),
        (np.array([["a", "b"]]), {}, "x"),
        (np.zeros((2, 3)), {"margin": -0.1}, "margin"),
        (np.zeros((2, 3)), {"per_feature": 1}, "per_feature"),
    ],
)
def test_bounds_from_data_refuses_bad_input(x, kwargs, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        Bounds.from_data(x, **kwargs)
