"""Non-finite model outputs in `generate` and in training's `RobustAccuracy` (issue 24): a
sample whose model output is NaN or inf is never correct, robust or fooled, and is flagged,
as `advgrad.evaluate` decides (tests/test_non_finite.py)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from advgrad.attacks import FGSM, Square
from advgrad.generation import generate
from advgrad.generation.shards import read_shard
from advgrad.report import FlaggedWarning
from advgrad.training import RobustAccuracy

# `digits` and `digits_cnn` come from conftest.py.

SAMPLES, PIXEL, EPS = 64, 19, 0.1


class NaNWhereBright(keras.layers.Layer):
    """The logits, NaN where pixel 19 of the input exceeds 0.5 (or is NaN itself)."""

    def call(self, inputs):
        x, logits = inputs
        pixel = tf.reshape(x, [tf.shape(x)[0], -1])[:, PIXEL]
        broken = (pixel > 0.5) | tf.math.is_nan(pixel)
        return tf.where(broken[:, None], tf.fill(tf.shape(logits), float("nan")), logits)


@pytest.fixture(scope="module")
def model(digits_cnn):
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, NaNWhereBright()([inputs, digits_cnn(inputs)]))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def data(digits, digits_cnn):
    x, y = digits.x_test[:SAMPLES], digits.y_test[:SAMPLES]
    bright = x.reshape(SAMPLES, -1)[:, PIXEL] > 0.5
    # argmax of a NaN row is 0: a bright 0 was once counted correct
    assert np.any(bright & (y == 0)) and np.any(~bright)
    return x, y, bright


def _judged(model, x, y):
    """Per sample (correct, finite), computed here from the model's outputs."""
    out = np.asarray(model(x))
    finite = np.isfinite(out).all(axis=1)
    return (np.argmax(np.nan_to_num(out, nan=-np.inf), axis=1) == y) & finite, finite


def _columns(out):
    manifest = json.loads((out / "manifest.json").read_text())
    fmt = manifest["config"]["format"]
    parts = [read_shard(out / s["file"], fmt, manifest["columns"]) for s in manifest["shards"]]
    name = manifest["structure"]["names"][0]
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return columns, columns[f"x_adv/{name}"]


@pytest.mark.parametrize("graph", [True, False], ids=["compiled", "execute"])
def test_generate_never_counts_a_non_finite_output_correct(model, data, digits, tmp_path, graph):
    """clean_correct / adv_correct are False where the output is NaN (both batch paths: the
    one compiled call of a graph attack, and `Attack.execute`), and a warning flags them."""
    x, y, bright = data
    attack = (
        FGSM(eps=EPS, bounds=digits.bounds)
        if graph
        else Square(eps=EPS, queries=4, bounds=digits.bounds, seed=1)
    )
    with pytest.warns(FlaggedWarning, match="Non-finite model outputs") as caught:
        generate(model, (x, y), attack, tmp_path, shard_size=32, batch_size=16, format="npz")
    columns, x_adv = _columns(tmp_path)
    clean_correct, clean_finite = _judged(model, x, y)
    np.testing.assert_array_equal(clean_finite, ~bright)
    np.testing.assert_array_equal(columns["clean_correct"], clean_correct)
    assert not np.any(columns["clean_correct"][bright])
    adv_correct, adv_finite = _judged(model, x_adv, y)
    np.testing.assert_array_equal(columns["adv_correct"], adv_correct)
    assert not np.any(columns["adv_correct"][~adv_finite])
    # the predicted classes: -1 where the output is not finite (no prediction)
    for key, inputs, finite in (("clean_class", x, clean_finite), ("adv_class", x_adv, adv_finite)):
        predicted = np.argmax(np.nan_to_num(np.asarray(model(inputs)), nan=-np.inf), axis=1)
        np.testing.assert_array_equal(columns[key], np.where(finite, predicted, -1))
    (message,) = {str(w.message) for w in caught if issubclass(w.category, FlaggedWarning)}
    assert f"{int(bright.sum())} of {SAMPLES} samples on their clean input" in message
    assert f"{int((~adv_finite).sum())} on their adversarial input" in message


def test_generate_of_a_finite_model_warns_nothing(digits, digits_cnn, tmp_path, recwarn):
    x, y = digits.x_test[:16], digits.y_test[:16]
    generate(digits_cnn, (x, y), FGSM(eps=EPS, bounds=digits.bounds), tmp_path, shard_size=16)
    assert not [w for w in recwarn if issubclass(w.category, FlaggedWarning)]


def test_robust_accuracy_never_counts_a_non_finite_output_robust(model, data, digits):
    """RobustAccuracy: a NaN clean output is not correct, a NaN adversarial output is not
    robust (nor fooled); a warning says how many."""
    x, y, bright = data
    attack = FGSM(eps=EPS, bounds=digits.bounds)
    check = RobustAccuracy((x, y), attack)
    check.set_model(model)
    logs = {}
    with pytest.warns(FlaggedWarning, match="Non-finite model outputs"):
        check.on_epoch_end(0, logs)
    clean_correct, _ = _judged(model, x, y)
    result = attack.replace(loss="ce").run(model, x, y)
    _, adv_finite = _judged(model, result.x_adv, y)
    expected = float(np.mean(clean_correct & ~np.asarray(result.fooled) & adv_finite))
    assert logs["val_robust_accuracy"] == pytest.approx(expected)
    assert check.history == [logs["val_robust_accuracy"]]


def test_robust_accuracy_counts_a_bright_zero_no_longer(model, data, digits):
    """eps=0 moves nothing: robust exactly where the clean output is finite and correct."""
    x, y, bright = data
    check = RobustAccuracy((x, y), FGSM(eps=0.0, bounds=digits.bounds))
    check.set_model(model)
    logs = {}
    with pytest.warns(FlaggedWarning):
        check.on_epoch_end(0, logs)
    clean_correct, _ = _judged(model, x, y)
    assert logs["val_robust_accuracy"] == pytest.approx(float(np.mean(clean_correct)))
