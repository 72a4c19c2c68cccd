"""Gradient masking: gradient attacks are fooled by it, Square and the sanity flags are not.

The digits CNN behind an input quantiser with a zero gradient (`tf.stop_gradient(round(32 x)
/ 32)`): the clean digits are multiples of 1/16, so its clean predictions are the CNN's, and
a perturbation of at most eps = 0.1 = 3.2/32 reaches the CNN rounded to at most 3/32 < eps,
so the masked model is truly no less robust than the CNN. (1/16 steps would round 0.1 up to
0.125 and make it *less* robust.) Its input gradient is zero everywhere: PGD cannot move
from its random start and reports the clean accuracy as robust, while Square (score-based,
no gradients) finds about as many adversarial examples as PGD does on the unmasked CNN, and
`advgrad.evaluate(..., sanity=True)` says the gradients are masked (Athalye, Carlini &
Wagner, ICML 2018; the issue's "gradient masking" must-hold). Figures measured on the first
48 test images, seed 0: clean 0.979, PGD-10 on the CNN 0.500, PGD-10 on the masked model
0.979, Square (500 queries) on the masked model 0.500 (on the CNN 0.417).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad import attacks
from advgrad.predictions import predicted_classes

N = 48
EPS = 0.1
LEVELS = 32


class ZeroGradientQuantise(keras.layers.Layer):
    """Rounds to 1/LEVELS steps; d(output)/d(input) = 0 (not straight-through)."""

    def call(self, x):
        return tf.stop_gradient(tf.round(x * LEVELS) / LEVELS)


@pytest.fixture(scope="module")
def subset(digits):
    return np.asarray(digits.x_test[:N]), np.asarray(digits.y_test[:N])


@pytest.fixture(scope="module")
def masked(digits_cnn):
    inputs = keras.Input(digits_cnn.input_shape[1:])
    return keras.Model(inputs, digits_cnn(ZeroGradientQuantise()(inputs)))


def _robust(model, x, y, x_adv) -> float:
    assert np.max(np.abs(x_adv - x)) <= EPS + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    correct = predicted_classes(model, x) == y
    return float(np.mean(correct & (predicted_classes(model, x_adv) == y)))


def test_masked_gradients_are_zero_and_predictions_unchanged(masked, digits_cnn, subset):
    x, y = subset
    grads = np.asarray(advgrad.input_gradients(masked, x, y, loss="ce"))
    assert not np.any(grads)
    np.testing.assert_array_equal(predicted_classes(masked, x), predicted_classes(digits_cnn, x))


def test_pgd_is_masked_square_sees_through(masked, digits_cnn, subset):
    x, y = subset
    clean = float(np.mean(predicted_classes(masked, x) == y))
    pgd = attacks.PGD(eps=EPS, bounds=(0, 1), steps=10, loss="ce", seed=0)
    square = attacks.Square(eps=EPS, bounds=(0, 1), queries=500, seed=0)
    unmasked_pgd = _robust(digits_cnn, x, y, pgd(digits_cnn, x, y))
    masked_pgd = _robust(masked, x, y, pgd(masked, x, y))
    masked_square = _robust(masked, x, y, square(masked, x, y))
    # Measured: clean 0.979, unmasked PGD 0.500, masked PGD 0.979, masked Square 0.500.
    assert masked_pgd >= clean - 1 / N  # PGD reports (almost) the clean accuracy
    assert masked_pgd >= unmasked_pgd + 0.35  # ... far above the unmasked model's
    assert masked_square <= masked_pgd - 0.35  # Square sees through the masking
    assert abs(masked_square - unmasked_pgd) <= 0.15  # close to the unmasked PGD figure


def test_sanity_flags_name_the_masking(masked, subset):
    x, y = subset
    pgd = attacks.PGD(eps=EPS, bounds=(0, 1), steps=10, loss="ce", seed=0)
    with pytest.warns(UserWarning, match="sanity flag"):
        report = advgrad.evaluate(masked, (x, y), suite=[pgd], eps=EPS, batch_size=N)
    codes = [f["code"] for f in report.flags]
    assert "zero_gradients" in codes and "loss_not_increasing" in codes  # as measured
    zero = next(f for f in report.flags if f["code"] == "zero_gradients")
    assert "100% of 48 samples" in zero["message"]
    assert "gradient masking?" in zero["message"] and "standard` suite" in zero["advice"]
    assert report.robust_accuracy[EPS] >= report.clean_accuracy - 1 / N
