"""Curve-only runs (``eps="curve"``) flag non-finite model outputs as fixed-eps runs do: the
curve records which samples had a NaN clean output and which had their minimal norm set by
a NaN output on an attack's input, the ``non_finite_outputs`` flag is raised from that,
report.json reading checks it, and a resumed run records the same (issue 24)."""

import json

import keras
import numpy as np
import pytest
from test_non_finite import PIXEL, NonFinite

from advgrad import ArgumentError
from advgrad.attacks import get_attack
from advgrad.evaluation import evaluate
from advgrad.report import Report

SAMPLES = 32

pytestmark = pytest.mark.filterwarnings("ignore:Non-finite model outputs")


@pytest.fixture(scope="module")
def nan_model(digits_cnn):
    """The digits CNN, its logits NaN where pixel 19 is bright or an input is off the grid."""
    x = keras.Input((8, 8, 1))
    return keras.Model(x, NonFinite()([x, digits_cnn(x)]))


@pytest.fixture(scope="module")
def data(digits):
    return digits.x_test[:SAMPLES], digits.y_test[:SAMPLES]


def _run(nan_model, data, digits, **changes):
    settings = {
        "suite": [get_attack("deepfool", norm="l2", bounds=digits.bounds, steps=5)],
        "eps": "curve",
        "batch_size": 16,
        "sanity": False,
    }
    return evaluate(nan_model, data, **{**settings, **changes})


@pytest.fixture(scope="module")
def report(nan_model, data, digits):
    with pytest.warns(UserWarning, match="Non-finite model outputs"):
        return _run(nan_model, data, digits)


def test_a_curve_only_run_flags_non_finite_outputs(report, data):
    bright = np.flatnonzero(data[0].reshape(SAMPLES, -1)[:, PIXEL] > 0.5)
    assert bright.size and report.eps == []
    non_finite = report.curve["non_finite"]
    assert non_finite["clean"] == bright.tolist()
    norms = np.asarray(report.curve["norms"])
    assert np.all(norms[bright] == 0)
    # Any step off the data's 1/16 grid gives NaN: every attacked sample's minimal norm is
    # that of a non-finite output, never of a misclassification.
    attacked = np.flatnonzero(norms > 0)
    assert (
        attacked.size and non_finite["attacked"] == attacked[np.isfinite(norms[attacked])].tolist()
    )
    (flag,) = [f for f in report.flags if f["code"] == "non_finite_outputs"]
    assert f"{bright.size} of {SAMPLES} samples on their clean input" in flag["message"]
    assert f"{len(non_finite['attacked'])} on the curve attacks' input" in flag["message"]
    assert flag["message"] == report.non_finite_message()


def test_the_curve_flag_is_checked_on_reading(report):
    document = json.loads(report.to_json())
    assert Report.from_json(json.dumps(document)) == report
    without = {
        **document,
        "flags": [f for f in document["flags"] if f["code"] != "non_finite_outputs"],
    }
    with pytest.raises(ArgumentError, match="no non_finite_outputs flag"):
        Report.from_json(json.dumps(without))
    edited = json.loads(json.dumps(document))
    edited["curve"]["non_finite"]["clean"] = edited["curve"]["non_finite"]["clean"][1:]
    with pytest.raises(ArgumentError, match=r"flags\[0\].message"):
        Report.from_json(json.dumps(edited))
    wrong = json.loads(json.dumps(document))
    wrong["curve"]["non_finite"]["clean"].append(wrong["curve"]["non_finite"]["attacked"][0])
    with pytest.raises(ArgumentError, match="curve.non_finite"):
        Report.from_json(json.dumps(wrong))


def test_a_resumed_curve_run_records_the_same(nan_model, data, digits, report, tmp_path):
    path = tmp_path / "state.json"
    _run(nan_model, (data[0][:16], data[1][:16]), digits, state=path)
    saved = json.loads(path.read_text())
    saved["complete"] = False  # as if killed after its first batch
    path.write_text(json.dumps(saved))
    resumed = _run(nan_model, data, digits, state=path)
    assert resumed.curve["non_finite"] == report.curve["non_finite"]
    assert resumed.flags == report.flags
    saved["tally"]["curve"]["non_finite"]["clean"] = [99]
    path.write_text(json.dumps(saved))
    with pytest.raises(ArgumentError, match="tally.curve.non_finite"):
        _run(nan_model, data, digits, state=path)
