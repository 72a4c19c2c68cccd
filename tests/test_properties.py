"""Property-based: over attack settings, input shapes, dtypes and budgets, every accepted call
gives finite outputs within budget and bounds (and leaves the caller's arrays alone), and
every refused call gets a ValueError that names an argument."""

from __future__ import annotations

import math

import invariants
import numpy as np
import tensorflow as tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import advgrad

SHAPES = [(5,), (3, 4), (2, 3, 2)]
DTYPES = [np.float32, np.float64]
CLASSES = 3
_MODELS: dict = {}


def linear_model(shape, dtype):
    """A fixed linear classifier on tensors (a plain callable: no Keras needed)."""
    key = (shape, np.dtype(dtype).name)
    if key not in _MODELS:
        features = int(np.prod(shape))
        weights = np.random.default_rng(features).normal(size=(features, CLASSES))
        w = tf.constant(weights.astype(dtype))

        def model(x):
            return tf.reshape(x, [tf.shape(x)[0], features]) @ w

        _MODELS[key] = model
    return _MODELS[key]


valid_eps = st.floats(0.0, 4.0, allow_nan=False)
invalid_eps = st.sampled_from([-0.1, math.nan, math.inf, 1e39, True, "0.1"])
valid_steps = st.integers(1, 4)
invalid_steps = st.sampled_from([0, -1, 2.0, True, 10**12])


@st.composite
def calls(draw):
    shape = draw(st.sampled_from(SHAPES))
    dtype = draw(st.sampled_from(DTYPES))
    batch = draw(st.integers(1, 4))
    low = draw(st.integers(-16, 8)) / 8  # exact in float32 too
    high = low + draw(st.integers(1, 24)) / 8
    bounded = draw(st.booleans())
    x = draw(
        st.lists(
            st.floats(low, high, allow_nan=False, width=32),
            min_size=batch * int(np.prod(shape)),
            max_size=batch * int(np.prod(shape)),
        )
    )
    x = np.asarray(x, dtype).reshape((batch, *shape))
    y = np.asarray(draw(st.lists(st.integers(0, CLASSES - 1), min_size=batch, max_size=batch)))
    name = draw(st.sampled_from(["fgsm", "bim", "pgd", "mifgsm"]))
    config = {
        "eps": draw(st.one_of(valid_eps, valid_eps, valid_eps, invalid_eps)),
        "norm": draw(st.sampled_from(["linf", "l2", "l1"])),
        "bounds": (low, high) if bounded else None,
        "targeted": draw(st.booleans()),
        "loss": draw(st.sampled_from(["ce", "margin", "dlr"])),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }
    if name != "fgsm":
        config["steps"] = draw(st.one_of(valid_steps, valid_steps, invalid_steps))
    if name == "pgd":
        config["restarts"] = draw(st.integers(1, 2))
    return name, config, x, y


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,  # nothing written outside the test's temporary folders
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(calls())
def test_accepted_calls_stay_finite_in_budget_and_bounds(call):
    name, config, x, y = call
    model = linear_model(x.shape[1:], x.dtype)
    original = x.copy()
    try:
        attack = advgrad.get_attack(name, **config)
        x_adv = attack(model, x, y)
    except ValueError as err:
        assert "Invalid value for argument `" in str(err), err
        event("refused")
        return
    event("accepted")
    assert isinstance(x_adv, np.ndarray)
    assert np.array_equal(x, original)  # the caller's array is untouched
    # Rounding grows with the inputs' magnitude and the number of features.
    slack = invariants.SLACK[x.dtype]
    scale = max(1.0, float(np.max(np.abs(x))))
    bounds = config["bounds"]
    invariants.assert_within(
        x_adv,
        x,
        eps=config["eps"],
        norm=config["norm"],
        bounds=bounds,
        atol=slack * scale * x[0].size,
        bounds_atol=0.0 if bounds is None else slack * max(1.0, *map(abs, bounds)),
    )


def two_input_model():
    """A fixed linear classifier on a dict of two inputs, "a" (4,) and "b" (2, 3)."""
    if "two" not in _MODELS:
        rng = np.random.default_rng(7)
        wa = tf.constant(rng.normal(size=(4, CLASSES)).astype(np.float32))
        wb = tf.constant(rng.normal(size=(6, CLASSES)).astype(np.float32))

        def model(x):
            b = tf.reshape(x["b"], [tf.shape(x["b"])[0], 6])
            return x["a"] @ wa + b @ wb

        _MODELS["two"] = model
    return _MODELS["two"]


@st.composite
def budget_calls(draw):
    batch = draw(st.integers(1, 3))
    budgets, x = {}, {}
    for name, shape in (("a", (4,)), ("b", (2, 3))):
        low = draw(st.integers(-8, 0)) / 8
        high = low + draw(st.integers(1, 16)) / 8
        size = batch * int(np.prod(shape))
        values = draw(st.lists(st.floats(low, high, width=32), min_size=size, max_size=size))
        x[name] = np.asarray(values, np.float32).reshape((batch, *shape))
        if draw(st.integers(0, 3)) == 3:  # Hypothesis leans to 0: frozen must be the rare one
            budgets[name] = None  # frozen
        else:
            eps = draw(st.one_of(valid_eps, valid_eps, invalid_eps))
            norm = draw(st.sampled_from(["linf", "l2", "l1"]))
            budgets[name] = (eps, norm, (low, high) if draw(st.booleans()) else None)
    y = np.asarray(draw(st.lists(st.integers(0, CLASSES - 1), min_size=batch, max_size=batch)))
    name = draw(st.sampled_from(["fgsm", "bim", "pgd", "mifgsm"]))
    return name, budgets, x, y


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(budget_calls())
def test_per_input_budgets_hold_and_frozen_inputs_stay(call):
    name, spec, x, y = call
    original = {k: v.copy() for k, v in x.items()}
    try:
        budget = {k: None if s is None else advgrad.Budget(*s) for k, s in spec.items()}
        attack = advgrad.get_attack(name, loss="ce", budget=budget)
        x_adv = attack(two_input_model(), x, y)
    except ValueError as err:
        assert "Invalid value for argument `" in str(err), err
        event("refused")
        return
    event("accepted")
    assert all(np.array_equal(x[k], original[k]) for k in x)
    for key, s in spec.items():
        if s is None:
            invariants.assert_frozen(x_adv[key], x[key])
            continue
        eps, norm, bounds = s
        invariants.assert_within(
            x_adv[key],
            x[key],
            eps=eps,
            norm=norm,
            bounds=bounds,
            atol=1e-5 * x[key][0].size,
            bounds_atol=1e-6,
        )
