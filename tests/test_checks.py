"""check_gradients: it passes on correct gradients and catches wrong ones."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from advgrad.checks import as_float64, check_gradients


class WrongGradientTanh(keras.layers.Layer):
    """tanh whose backward pass is off by 1%: the check must notice."""

    def call(self, inputs):
        @tf.custom_gradient
        def forward(x):
            y = tf.tanh(x)
            return y, lambda upstream: upstream * (1.0 - y * y) * 1.01

        return forward(inputs)


def small_model(activation_layer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8), activation_layer, keras.layers.Dense(3)]
    )
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_correct_gradients_pass(rng):
    model = small_model(keras.layers.Activation("tanh"))
    x, y = rng.normal(size=(6, 6)), rng.integers(0, 3, size=6)
    report = check_gradients(model, x, y, coordinates=16)
    assert report.passed and report.precision == "float64"
    assert report.max_relative_error < 1e-6
    assert report.coordinates == 16 and report.zero_gradient_fraction == 0.0
    assert "PASSED" in str(report)


def test_a_one_percent_wrong_gradient_is_caught(rng):
    model = small_model(WrongGradientTanh())
    x, y = rng.normal(size=(6, 6)), rng.integers(0, 3, size=6)
    report = check_gradients(model, x, y, coordinates=16)
    assert not report.passed
    assert report.max_relative_error > 5e-3
    assert any("mismatch" in flag for flag in report.flags)


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
