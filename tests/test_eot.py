"""EOT (Athalye, Carlini & Wagner, ICML 2018): the expected loss over a random model's passes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad.attacks import EOT, PGD, Square


class InputNoise(keras.layers.Layer):
    """Gaussian noise on the input, drawn at every call: inference itself is random."""

    def __init__(self, stddev: float, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev

    def call(self, x):
        return x + tf.random.normal(tf.shape(x), stddev=self.stddev)


@pytest.fixture(scope="module")
def noisy_cnn(digits_cnn):
    """The digits CNN behind input noise of standard deviation 0.3 (digits lie in [0, 1])."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, digits_cnn(InputNoise(0.3)(inputs)))


def _robust_accuracy(model, x, y, passes: int = 16) -> tuple[float, float]:
    """(accuracy of single random passes, accuracy of the mean probabilities), over `passes`."""
    outputs = [keras.ops.convert_to_numpy(model(x)) for _ in range(passes)]
    single = float(np.mean([np.mean(o.argmax(1) == y) for o in outputs]))
    probabilities = np.mean([keras.ops.convert_to_numpy(keras.ops.softmax(o)) for o in outputs], 0)
    return single, float(np.mean(probabilities.argmax(1) == y))


def test_eot_matters_on_a_random_model(digits, noisy_cnn):
    """PGD-20 at Linf eps 0.1 on 200 digits, without EOT and with EOT over 8 passes.

    Measured (seeds 0, 1, 2): single-pass robust accuracy 0.72-0.73 without EOT, 0.55 with
    it; mean-probability robust accuracy 0.92-0.93 without, 0.755-0.815 with (clean: 0.83
    single-pass, 0.955-0.97 mean).
    """
    x, y = digits.x_test[:200], digits.y_test[:200]
    keras.utils.set_random_seed(0)
    pgd = PGD(eps=0.1, steps=20, bounds=(0.0, 1.0), loss="ce", seed=0)
    plain = _robust_accuracy(noisy_cnn, pgd(noisy_cnn, x, y), y)
    expected = _robust_accuracy(noisy_cnn, EOT(pgd, samples=8)(noisy_cnn, x, y), y)
    assert 0.66 < plain[0] < 0.78 and 0.48 < expected[0] < 0.62, (plain, expected)
    assert expected[0] < plain[0] - 0.12, (plain, expected)
    assert expected[1] < plain[1] - 0.08, (plain, expected)


def test_one_sample_on_a_deterministic_model_is_the_wrapped_attack(digits, digits_cnn):
    x, y = digits.x_test[:32], digits.y_test[:32]
    pgd = PGD(eps=0.1, steps=5, bounds=(0.0, 1.0), seed=2)
    plain, wrapped = pgd.run(digits_cnn, x, y), EOT(pgd, samples=1).run(digits_cnn, x, y)
    np.testing.assert_array_equal(wrapped.x_adv, plain.x_adv)
    np.testing.assert_array_equal(wrapped.fooled, plain.fooled)
    # Four identical passes average to the same loss and gradient.
    four = EOT(pgd, samples=4).run(digits_cnn, x, y)
    np.testing.assert_allclose(four.x_adv, plain.x_adv, atol=1e-6)
    np.testing.assert_allclose(four.loss_trace, plain.loss_trace, rtol=1e-5)
    assert (four.gradients, plain.gradients) == (4 * 5, 5)  # passes, not evaluations
    np.testing.assert_array_equal(four.queries, 4 * plain.queries)


def test_square_under_eot_counts_its_queries(digits, noisy_cnn):
    x, y = digits.x_test[:32], digits.y_test[:32]
    attack = EOT(Square(eps=0.1, bounds=(0.0, 1.0), queries=30, loss="margin"), samples=2)
    result = attack.run(noisy_cnn, x, y)
    assert result.gradients == 0 and result.queries.max() <= 2 * 30  # passes: 2 per query
    assert np.all(result.queries % 2 == 0)
    assert np.abs(result.x_adv - x).max() <= 0.1 + 1e-6
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0


def test_settings_config_and_registry():
    attack = advgrad.get_attack("eot", attack="pgd", samples=2, eps=0.1, steps=7)
    assert isinstance(attack, EOT) and isinstance(attack.attack, PGD)
    assert (attack.samples, attack.eps, attack.steps, attack.targeted) == (2, 0.1, 7, False)
    config = attack.get_config()
    assert config == {"name": "eot", "attack": attack.attack.get_config(), "samples": 2}
    assert advgrad.attacks.from_config(config) == attack
    changed = attack.replace(eps=0.2, samples=3)
    assert (changed.eps, changed.samples, changed.steps) == (0.2, 3, 7)
    assert EOT({"name": "square", "queries": 9}).queries == 9
    assert EOT(PGD(eps=0.3), eps=None).eps == 0.3  # None keeps the wrapped attack's
    assert repr(EOT(PGD(eps=0.3), samples=2)) == "EOT(PGD(eps=0.3), samples=2)"


@pytest.mark.parametrize(
    ("args", "settings", "argument"),
    [
        ((), {"samples": 0}, "samples"),
        ((), {"samples": 2.5}, "samples"),
        ((), {"samples": True}, "samples"),
        ((3,), {}, "attack"),
        (("no-such-attack",), {}, "attack"),
        ((EOT(),), {}, "attack"),
        (({"name": "eot"},), {}, "attack"),
        (("pgd",), {"eps": -1.0}, "eps"),
        (("square",), {"norm": "l1"}, "norm"),
        (("square",), {"steps": 3}, "steps"),
    ],
)
def test_bad_arguments_raise_named_errors(args, settings, argument):
    with pytest.raises(advgrad.ArgumentError) as error:
        EOT(*args, **settings)
    assert error.value.argument == argument
