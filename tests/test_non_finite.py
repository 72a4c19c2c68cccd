"""Non-finite model outputs are never a number (issue 24 B): a sample whose output is NaN
or inf is never correct, robust or fooled, and a flag says how many there were."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from advgrad import flags as sanity
from advgrad.attacks import get_attack
from advgrad.evaluation import evaluate
from advgrad.evaluation.cascade import Runner
from advgrad.predictions import Classes
from advgrad.report import CLEAN_MISCLASSIFIED, CLEAN_NON_FINITE, ROBUST, Report, non_finite

# `digits` and `digits_cnn` come from conftest.py.

SAMPLES, EPS, PIXEL = 64, [0.0, 0.1], 19

pytestmark = pytest.mark.filterwarnings(
    "ignore:Non-finite model outputs", "ignore:advgrad.evaluate raised"
)


class NonFinite(keras.layers.Layer):
    """The logits, NaN where pixel 19 of the input exceeds 0.5 (some clean inputs) or the
    input leaves the data's 1/16 grid (any attack step that moves a pixel)."""

    def call(self, inputs):
        x, logits = inputs
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        bright = flat[:, PIXEL] > 0.5
        off_grid = tf.reduce_any(tf.abs(flat * 16.0 - tf.round(flat * 16.0)) > 1e-3, axis=1)
        nan = tf.fill(tf.shape(logits), float("nan"))
        return tf.where((bright | off_grid)[:, None], nan, logits)


@pytest.fixture(scope="module")
def model(digits_cnn):
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, NonFinite()([inputs, digits_cnn(inputs)]))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _run(model, digits, **changes):
    kwargs = dict(
        suite=[
            get_attack("fgsm", bounds=digits.bounds),
            get_attack("pgd", bounds=digits.bounds, steps=3),
        ],
        eps=EPS,
        batch_size=16,
        sanity=False,
    )
    kwargs.update(changes)
    return evaluate(model, (digits.x_test[:SAMPLES], digits.y_test[:SAMPLES]), **kwargs)


@pytest.fixture(scope="module")
def expected(digits, digits_cnn):
    x, y = digits.x_test[:SAMPLES], digits.y_test[:SAMPLES]
    bright = x.reshape(SAMPLES, -1)[:, PIXEL] > 0.5
    correct = np.argmax(digits_cnn.predict(x, verbose=0), axis=-1) == y
    assert np.any(bright & (y == 0))  # argmax of a NaN row is 0: these once counted correct
    return bright, correct & ~bright


@pytest.fixture(scope="module")
def report(model, digits):
    with pytest.warns(UserWarning, match="Non-finite model outputs"):
        return _run(model, digits, sanity=True, return_adversarial=True)


def test_a_non_finite_clean_output_is_never_correct_or_robust(report, expected):
    bright, correct = expected
    assert report.clean_accuracy == np.mean(correct)
    for e in EPS:
        codes = report.outcomes[e]
        np.testing.assert_array_equal(codes == CLEAN_NON_FINITE, bright)
        assert not np.any((codes == ROBUST) & bright)
        for label in report.attacks:
            assert not np.any(report.attack_outcomes[label][e][bright])
    # eps=0 moves nothing: robust exactly where the clean prediction is right and finite
    np.testing.assert_array_equal(report.outcomes[0.0] == ROBUST, correct)
    assert report.robust_accuracy[0.0] == report.clean_accuracy


def test_a_non_finite_adversarial_output_is_not_robust_and_not_fooled(report, expected):
    bright, correct = expected
    codes = report.outcomes[0.1]
    assert report.robust_accuracy[0.1] == 0.0 and report.per_attack["fgsm"][0.1] == 0.0
    assert not np.any(codes >= 0)  # nobody was fooled: every attacked output is NaN
    broken = codes <= non_finite(0)
    np.testing.assert_array_equal(broken, correct)
    assert not report.adversarial or 0.1 not in report.adversarial  # none to keep
    assert (
        report.to_csv()
        .splitlines()[1 + int(np.flatnonzero(bright)[0])]
        .endswith("clean_non_finite,0,0,clean_non_finite,0,0")
    )


def test_the_flag_names_how_many_and_markdown_shows_it(report, expected):
    bright, correct = expected
    flags = [f for f in report.flags if f["code"] == "non_finite_outputs"]
    assert len(flags) == 1
    message = flags[0]["message"]
    assert f"{int(bright.sum())} of {SAMPLES} samples on their clean input" in message
    assert f"{int(correct.sum())} at eps=0.1" in message
    assert re.search(r"at eps=0(?![.\d])", message) is None  # none at eps=0: not named
    assert "**non_finite_outputs**" in report.to_markdown()


def test_the_outcomes_round_trip_through_report_json(report, tmp_path):
    back = Report.from_json(report.to_json(tmp_path / "report.json"))
    assert back == report
    for e in EPS:
        np.testing.assert_array_equal(back.outcomes[e], report.outcomes[e])
    document = report.to_dict()
    document["flags"] = [f for f in document["flags"] if f["code"] != "non_finite_outputs"]
    with pytest.raises(ValueError, match="flags: no non_finite_outputs flag"):
        Report.from_dict(document)
    document = report.to_dict()
    for flag in document["flags"]:
        if flag["code"] == "non_finite_outputs":
            flag["message"] = flag["message"].replace(" of ", "0 of ", 1)
    with pytest.raises(ValueError, match=r"flags\[\d\]\.message"):
        Report.from_dict(document)


def test_an_interrupted_run_resumes_to_the_same_outcomes(model, digits, tmp_path, monkeypatch):
    full = _run(model, digits)
    original = Runner.run_batch

    def interrupted(self, tally, batch, *args, **kwargs):
        if batch == 2:
            raise KeyboardInterrupt
        return original(self, tally, batch, *args, **kwargs)

    path = tmp_path / "state.json"
    monkeypatch.setattr(Runner, "run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(model, digits, state=path)
    monkeypatch.setattr(Runner, "run_batch", original)
    assert json.loads(path.read_text())["batches_done"] == 2
    resumed = _run(model, digits, state=path)
    assert resumed.clean_accuracy == full.clean_accuracy
    assert resumed.flags == full.flags
    for e in EPS:
        np.testing.assert_array_equal(resumed.outcomes[e], full.outcomes[e])
    cascade = _run(model, digits, individual=False, state=tmp_path / "cascade.json")
    for e in EPS:
        np.testing.assert_array_equal(cascade.outcomes[e], full.outcomes[e])


def test_fooled_needs_a_finite_output():
    classes = Classes()
    outputs = tf.constant([[np.nan, np.nan], [0.0, 1.0], [np.inf, 0.0]])
    truth = Classes.truth(tf.constant([1, 0, 1]))
    assert classes.fooled(outputs, truth, targeted=False).numpy().tolist() == [False, True, False]
    assert classes.fooled(outputs, truth, targeted=True).numpy().tolist() == [False, False, False]


def test_sanity_flag_from_outcomes():
    codes = np.array([CLEAN_NON_FINITE, ROBUST, non_finite(1), 0, CLEAN_MISCLASSIFIED], np.int8)
    r = Report(0.6, {0.1: 0.2}, {}, {0.1: codes}, 5, ["fgsm", "pgd"])
    flag = sanity.non_finite_outputs(r)
    assert flag.code == "non_finite_outputs"
    assert "1 of 5 samples on their clean input" in flag.message
    assert "1 at eps=0.1" in flag.message
    assert sanity.non_finite_outputs(Report(1.0, {0.1: 1.0}, {}, {0.1: codes[1:2]}, 1)) is None
    assert r.cumulative() == {"fgsm": {0.1: 0.4}, "pgd": {0.1: 0.2}}
