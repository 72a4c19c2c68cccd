"""advgrad.flags: each flag fires on a model or report that has the problem, not otherwise."""

import inspect
import re

import keras
import pytest
import tensorflow as tf

from advgrad import flags as sanity
from advgrad.attacks import get_attack, list_attacks
from advgrad.evaluation import evaluate
from advgrad.report import Report

GRADIENT_CODES = {"zero_gradients", "nan_gradients", "tiny_gradients"}


class SaturatedSoftmax(keras.layers.Layer):
    """softmax(1000 * logits) in one layer, its top probabilities rounded to exactly 1
    (masking). The rounding makes it exact on every CPU: exp and the normalisation round
    differently between instruction sets (0.99999994 here, 1.0 elsewhere)."""

    def call(self, logits):
        probabilities = tf.nn.softmax(1000.0 * logits)
        return tf.where(probabilities > 0.999, tf.ones_like(probabilities), probabilities)


class Noisy(keras.layers.Layer):
    """Adds fresh Gaussian noise on every call, also at inference (a randomized defense)."""

    def call(self, x):
        return x + tf.random.normal(tf.shape(x), stddev=0.1)


# `digits` and `digits_cnn` come from conftest.py.


@pytest.fixture(scope="module")
def masked(digits_cnn):
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, SaturatedSoftmax()(digits_cnn(inputs)))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False))
    return model


def _suite(bounds):
    return [get_attack("fgsm", bounds=bounds), get_attack("pgd", bounds=bounds, steps=5)]


@pytest.mark.filterwarnings("ignore:The model's output is not a softmax")
def test_gradient_masking_model_gets_the_zero_gradient_flag(masked, digits_cnn, digits):
    x, y = digits.x_test[:64], digits.y_test[:64]
    flag = sanity.gradient_flag(masked, x, y)
    assert flag is not None and flag.code == "zero_gradients"
    assert "gradient masking" in flag.advice
    assert sanity.gradient_flag(digits_cnn, x, y) is None

    with pytest.warns(UserWarning, match="sanity flag"):
        report = evaluate(masked, (x, y), suite=_suite(digits.bounds), eps=[0.1, 0.3, 1.0])
    codes = [f["code"] for f in report.flags]
    assert "zero_gradients" in codes
    # eps=1 covers [0, 1]: robust accuracy should be ~0, the masked model keeps it high
    assert "unbounded_eps" in codes and report.robust_accuracy[1.0] > 0.1
    assert "noise_stronger" in codes  # random noise beats the stuck gradient attacks
    assert "loss_not_increasing" in codes
    for flag in report.flags:
        assert set(flag) == {"code", "message", "advice"} and flag["advice"]


def test_normal_model_gets_no_gradient_flags(digits_cnn, digits):
    x, y = digits.x_test[:64], digits.y_test[:64]
    report = evaluate(digits_cnn, (x, y), suite=_suite(digits.bounds), eps=[0.1, 0.3, 1.0])
    assert report.robust_accuracy[1.0] == 0.0
    assert report.flags == []
    assert sanity.noise_stronger(digits_cnn, x, y, report) is None
    assert sanity.unbounded_eps(report, x, digits_cnn) is None
    assert sanity.randomized_outputs(digits_cnn, x) is None


def test_randomized_outputs(digits):
    inputs = keras.Input((8, 8, 1))
    hidden = Noisy()(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(hidden))
    flag = sanity.randomized_outputs(model, digits.x_test[:8])
    assert flag is not None and flag.code == "randomized_outputs"
    assert "expectation" in flag.advice and "several draws" in flag.advice


def _report(**fields):
    defaults = dict(
        clean_accuracy=0.9,
        robust_accuracy={0.1: 0.5, 0.2: 0.3},
        per_attack={},
        outcomes={},
        n_samples=200,
        attacks=["fgsm", "pgd"],
        suite=[{"name": "fgsm", "bounds": [0.0, 1.0]}, {"name": "pgd", "bounds": [0.0, 1.0]}],
        gradients_per_sample={"fgsm": 1, "pgd": 10},
    )
    defaults.update(fields)
    return Report(**defaults)


def test_non_monotone_curves():
    assert sanity.non_monotone(_report()) is None
    flag = sanity.non_monotone(_report(robust_accuracy={0.1: 0.3, 0.2: 0.5}))
    assert flag.code == "non_monotone" and "worst case" in flag.message
    per_attack = {"fgsm": {0.1: 0.6, 0.2: 0.7}, "pgd": {0.1: 0.5, 0.2: 0.3}}
    assert "fgsm" in sanity.non_monotone(_report(per_attack=per_attack)).message
    # one sample up (1/200 = 0.5 point) is noise
    assert sanity.non_monotone(_report(robust_accuracy={0.1: 0.3, 0.2: 0.305})) is None


def test_single_step_stronger_than_iterative():
    fine = {"fgsm": {0.1: 0.6, 0.2: 0.4}, "pgd": {0.1: 0.5, 0.2: 0.3}}
    assert sanity.single_step_stronger(_report(per_attack=fine)) is None
    bad = {"fgsm": {0.1: 0.4, 0.2: 0.3}, "pgd": {0.1: 0.5, 0.2: 0.3}}
    flag = sanity.single_step_stronger(_report(per_attack=bad))
    assert flag.code == "single_step_stronger" and "fgsm 40.0% < pgd 50.0% at eps=0.1" in (
        flag.message
    )
    # a different threat model (here: other bounds) is not comparable
    other = [{"name": "fgsm", "bounds": [-1.0, 2.0]}, {"name": "pgd", "bounds": [0.0, 1.0]}]
    assert sanity.single_step_stronger(_report(per_attack=bad, suite=other)) is None
    # nor is a targeted attack: it aims at one class and may rightly fool fewer samples
    targeted = [{"name": "fgsm"}, {"name": "pgd", "targeted": True}]
    assert sanity.single_step_stronger(_report(per_attack=bad, suite=targeted)) is None


def test_loss_not_increasing():
    rising = {"pgd": {0.1: [0.5, 2.0]}, "fgsm": {0.1: [0.5, 0.4]}}  # single step: ignored
    assert sanity.loss_not_increasing(_report(loss_trend=rising)) is None
    flat = {"pgd": {0.0: [0.5, 0.5], 0.1: [0.5, 0.5]}}
    flag = sanity.loss_not_increasing(_report(loss_trend=flat))
    assert flag.code == "loss_not_increasing" and "eps=0.1" in flag.message
    assert "eps=0 " not in flag.message


def test_unbounded_eps_uses_the_input_range(digits):
    x = digits.x_test[:8]
    high = _report(robust_accuracy={0.5: 0.4, 1.0: 0.3}, eps=[0.5, 1.0])
    assert sanity.unbounded_eps(high, x).code == "unbounded_eps"
    small = _report(robust_accuracy={0.5: 0.4, 0.9: 0.3}, eps=[0.5, 0.9])
    assert sanity.unbounded_eps(small, x) is None  # the ball does not cover [0, 1]
    low = _report(robust_accuracy={0.5: 0.4, 1.0: 0.05}, eps=[0.5, 1.0])
    assert sanity.unbounded_eps(low, x) is None
    l2 = [{"name": "pgd", "norm": "l2", "bounds": [0.0, 1.0]}]
    l2_report = _report(
        robust_accuracy={1.0: 0.5, 8.0: 0.3}, eps=[1.0, 8.0], suite=l2, attacks=["pgd"]
    )
    assert sanity.unbounded_eps(l2_report, x).code == "unbounded_eps"  # ||1||_2 = 8 on 8x8
    l2_report.eps, l2_report.robust_accuracy = [1.0, 7.9], {1.0: 0.5, 7.9: 0.3}
    assert sanity.unbounded_eps(l2_report, x) is None


@pytest.mark.filterwarnings("ignore:The model's output is not a softmax")
def test_gradient_flag_uses_cross_entropy_without_a_compiled_loss(digits_cnn, digits):
    x, y = digits.x_test[:32], digits.y_test[:32]
    inputs = keras.Input((8, 8, 1))
    uncompiled = keras.Model(inputs, SaturatedSoftmax()(digits_cnn(inputs)))
    flag = sanity.gradient_flag(uncompiled, x, y)  # decided up front: loss "ce"
    assert flag is not None and flag.code == "zero_gradients"
    assert "cross-entropy, as the model has no compiled loss" in flag.message
    with pytest.raises(ValueError, match="argument `loss`"):  # no silent retry with "ce"
        sanity.gradient_flag(uncompiled, x, y, loss="no-such-loss")


def _every_advice(digits):
    """The advice of every flag the report-only checks raise, and every literal of the module."""
    x = digits.x_test[:8]
    bad = {"fgsm": {0.1: 0.4, 0.2: 0.3}, "pgd": {0.1: 0.5, 0.2: 0.3}}
    flags = [
        sanity.non_monotone(_report(robust_accuracy={0.1: 0.3, 0.2: 0.5})),
        sanity.single_step_stronger(_report(per_attack=bad)),
        sanity.loss_not_increasing(_report(loss_trend={"pgd": {0.1: [0.5, 0.5]}})),
        sanity.unbounded_eps(_report(robust_accuracy={0.5: 0.4, 1.0: 0.3}, eps=[0.5, 1.0]), x),
    ]
    assert all(flag is not None for flag in flags)
    # the model-based flags build their advice from literals: read them off the source
    return [flag.advice for flag in flags] + [inspect.getsource(sanity)]


ATTACK_NAMES = ["APGD", "Square", "FAB", "EOT", "BPDA", "DeepFool", "CW"]


def test_advice_names_only_attacks_advgrad_ships(digits):
    shipped = set(list_attacks())
    absent = [name for name in ATTACK_NAMES if name.lower() not in shipped]
    pattern = re.compile(r"\b(" + "|".join(absent) + r")\b", re.IGNORECASE)
    for text in _every_advice(digits):
        assert not pattern.findall(text), pattern.findall(text)


def test_flag_to_dict():
    flag = sanity.Flag("code", "message", "advice")
    assert flag.to_dict() == {"code": "code", "message": "message", "advice": "advice"}
    assert str(flag) == "[code] message advice"
