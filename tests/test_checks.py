"""check_gradients: it passes on correct gradients and catches wrong ones."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from advgrad.gradcheck import as_float64, check_gradients


class WrongGradientTanh(keras.layers.Layer):
    """tanh whose backward pass is off by 1%: the check must notice."""

    def call(self, inputs):
        @tf.custom_gradient
        def forward(x):
            y = tf.tanh(x)
            return y, lambda upstream: upstream * (1.0 - y * y) * 1.01

        return forward(inputs)


def small_model(activation_layer, dtype=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,), dtype=dtype or "float32"),
            keras.layers.Dense(8, dtype=dtype),
            activation_layer,
            keras.layers.Dense(3, dtype=dtype),
        ]
    )
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class SubclassedTanhNet(keras.Model):
    """A subclassed model: `as_float64` cannot clone it, so it is checked in its own dtype."""

    def __init__(self, wrong=False, dtype=None, kernel_initializer="glorot_uniform"):
        super().__init__(dtype=dtype)
        dense = dict(dtype=dtype, kernel_initializer=kernel_initializer)
        self.hidden = keras.layers.Dense(16, **dense)
        self.act = (WrongGradientTanh if wrong else keras.layers.Activation)(
            *(() if wrong else ("tanh",)), dtype=dtype
        )
        self.hidden2 = keras.layers.Dense(16, activation="tanh", **dense)
        self.logits = keras.layers.Dense(3, **dense)

    def call(self, inputs):
        return self.logits(self.hidden2(self.act(self.hidden(inputs))))


def subclassed_model(dtype, wrong=False, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = SubclassedTanhNet(wrong=wrong, dtype=dtype, **kwargs)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_correct_gradients_pass(rng, dtype):
    model = small_model(keras.layers.Activation("tanh", dtype=dtype), dtype=dtype)
    x, y = rng.normal(size=(6, 6)).astype(dtype), rng.integers(0, 3, size=6)
    report = check_gradients(model, x, y, coordinates=16)
    assert report.passed and report.precision == "float64"
    assert report.max_relative_error < 1e-6
    assert report.coordinates == 16 and report.zero_gradient_fraction == 0.0
    assert report.status == "PASSED" and report.conclusive
    assert "PASSED" in str(report)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_one_percent_wrong_gradient_is_caught(rng, dtype):
    model = small_model(WrongGradientTanh(dtype=dtype), dtype=dtype)
    x, y = rng.normal(size=(6, 6)).astype(dtype), rng.integers(0, 3, size=6)
    report = check_gradients(model, x, y, coordinates=16)
    assert not report.passed and report.status == "FAILED"
    assert report.max_relative_error > 5e-3
    assert any("mismatch" in flag for flag in report.flags)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_correct_subclassed_model_passes_in_its_own_precision(rng, dtype, seed):
    # Issue 12: a correct float32 subclassed model was reported FAILED (relative error ~4e-3
    # against a fixed 1e-4 tolerance, with steps 1e-2 and 1e-3 taken in float32).
    model = subclassed_model(dtype, seed=seed)
    x = (rng.normal(size=(8, 6)) * (1 + 4 * seed)).astype(dtype)
    y = rng.integers(0, 3, size=8)
    if seed:
        model.fit(x, y, epochs=20, verbose=0)  # trained, not only random weights
    report = check_gradients(model, x, y, coordinates=32, seed=seed)
    assert report.precision == dtype
    assert report.passed and report.status == "PASSED", str(report)
    assert report.max_relative_error < report.tolerance / 4
    if dtype == "float32":  # what float32 round-off allows: still well below a 1% error
        assert 1e-4 < report.tolerance < 3e-3
    else:
        assert report.tolerance == 1e-4 and report.max_relative_error < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_one_percent_wrong_gradient_is_caught_in_a_subclassed_model(rng, dtype):
    model = subclassed_model(dtype, wrong=True)
    x, y = rng.normal(size=(8, 6)).astype(dtype), rng.integers(0, 3, size=8)
    report = check_gradients(model, x, y, coordinates=32)
    assert report.precision == dtype
    assert not report.passed and report.status == "FAILED"
    assert report.max_relative_error > 5e-3
    assert any("mismatch" in flag for flag in report.flags)
    assert "FAILED" in str(report)


class Float32LayersInAFloat64Model(keras.Model):
    """Declares float64, computes in float32: its layers were built without a dtype."""

    def __init__(self):
        super().__init__(dtype="float64")
        self.hidden = keras.layers.Dense(16, activation="tanh", dtype="float32")
        self.logits = keras.layers.Dense(3, dtype="float32")

    def call(self, inputs):
        return self.logits(self.hidden(inputs))


def test_a_model_is_checked_in_the_lowest_precision_it_computes_in(rng):
    keras.utils.set_random_seed(0)
    model = Float32LayersInAFloat64Model()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = rng.normal(size=(8, 6)), rng.integers(0, 3, size=8)
    report = check_gradients(model, x, y, coordinates=16)
    assert report.precision == "float32"
    assert report.passed and report.status == "PASSED", str(report)


def test_float32_gradients_below_round_off_are_inconclusive_not_failed(rng):
    # weights of 1e-8: the loss is log(3) plus changes far below float32 round-off
    tiny = keras.initializers.RandomNormal(stddev=1e-8)
    model = subclassed_model("float32", kernel_initializer=tiny)
    x, y = rng.normal(size=(4, 6)).astype("float32"), rng.integers(0, 3, size=4)
    report = check_gradients(model, x, y, coordinates=8)
    assert report.passed and not report.conclusive and report.status == "INCONCLUSIVE"
    assert report.zero_gradient_fraction == 0.0 and not report.flags
    assert "INCONCLUSIVE" in str(report) and "round-off" in str(report)
    assert report.to_dict()["status"] == "INCONCLUSIVE" and report.to_dict()["passed"]


def test_float32_steps_can_be_given(rng):
    model = subclassed_model("float32")
    x, y = rng.normal(size=(4, 6)).astype("float32"), rng.integers(0, 3, size=4)
    report = check_gradients(model, x, y, coordinates=8, step_sizes=[1e-2, 3e-3])
    assert report.passed and report.status == "PASSED", str(report)
    # steps below float32 resolution leave x unchanged: nothing to compare, never FAILED
    report = check_gradients(model, x + 1, y, coordinates=8, step_sizes=[1e-12])
    assert report.passed and report.status == "INCONCLUSIVE" and "rounding" in str(report)


def test_zero_gradients_are_flagged(rng):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="zeros")])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    report = check_gradients(model, rng.normal(size=(3, 4)), [0, 1, 2])
    assert report.zero_gradient_fraction == 1.0
    assert any("zero" in flag for flag in report.flags)


def test_float64_copy_of_a_dict_input_model_matches_the_original(tabular, tabular_model):
    x = {k: v[:8] for k, v in tabular.x_test.items()}
    clone = as_float64(tabular_model)
    assert clone is not None and all(w.dtype == "float64" for w in clone.weights)
    x64 = {k: v.astype("float64") for k, v in x.items()}
    np.testing.assert_allclose(clone(x64).numpy(), tabular_model(x).numpy(), atol=1e-5)
    assert check_gradients(tabular_model, x, tabular.y_test[:8]).passed


def test_bad_arguments():
    model = small_model(keras.layers.Activation("tanh"))
    with pytest.raises(ValueError, match="`coordinates`"):
        check_gradients(model, np.ones((2, 6)), [0, 1], coordinates=0)
    with pytest.raises(ValueError, match="`step_sizes`"):
        check_gradients(model, np.ones((2, 6)), [0, 1], step_sizes=[-1.0])
