"""Suites fit the model's classes: on 2 and 3 classes they run as designed and flag nothing.

APGD-T's targeted DLR needs 4 classes: below, the suite runs the targeted margin on every
other class (classes - 1 targets), FAB-T too, and the report's suite config says so.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression

import advgrad
from advgrad.evaluation import evaluate

SMALL = {"bounds": (0.0, 1.0), "steps": 5, "queries": 40, "seed": 0}


def _softmax_classifier(loader, classes: int):
    """A softmax classifier (one Dense layer) with the weights of a logistic regression fit
    on a scikit-learn data set scaled to [0, 1], and 8 samples of each class."""
    data = loader()
    low, high = data.data.min(axis=0), data.data.max(axis=0)
    x = ((data.data - low) / (high - low)).astype("float32")
    y = data.target.astype("int64")
    fit = LogisticRegression(C=10.0, max_iter=500).fit(x, y)
    weights, bias = fit.coef_.T, fit.intercept_
    if classes == 2:  # one decision function z: the logits (-z / 2, z / 2)
        weights, bias = np.concatenate([-weights, weights], 1) / 2, np.array([-bias, bias]).T[0] / 2
    model = keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(classes, activation="softmax")]
    )
    model.layers[-1].set_weights([weights.astype("float32"), bias.astype("float32")])
    model.compile(loss="sparse_categorical_crossentropy")
    rows = np.concatenate([np.flatnonzero(y == c)[:8] for c in range(classes)])
    return model, x[rows], y[rows]


@pytest.fixture(scope="module")
def two_classes():
    """Breast cancer (malignant or benign), 30 features."""
    return _softmax_classifier(load_breast_cancer, 2)


@pytest.fixture(scope="module")
def three_classes():
    """Iris, 4 features."""
    return _softmax_classifier(load_iris, 3)


@pytest.mark.parametrize("name", ["fast", "standard"])
@pytest.mark.parametrize("fixture, classes", [("two_classes", 2), ("three_classes", 3)])
def test_suite_runs_as_designed_on_few_classes(fixture, classes, name, request):
    model, x, y = request.getfixturevalue(fixture)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = evaluate(model, (x, y), suite=advgrad.get_suite(name, **SMALL), eps=[0.05, 0.3])
    assert not [f for f in report.flags if f["code"] == "run_warning"], report.flags
    assert not [w for w in caught if "APGDTargeted" in str(w.message)]
    used = {config["name"]: config for config in report.suite}
    assert used["apgd-t"]["n_target_classes"] == classes - 1
    assert used["apgd-t"]["loss"] == "margin"  # the targeted DLR needs a 4th logit
    if name == "standard":
        assert used["fab-t"]["n_target_classes"] == classes - 1
    assert "n_target_classes=9" not in report.to_markdown()
    assert report.clean_accuracy > 0.8
    assert report.robust_accuracy[0.3] < report.robust_accuracy[0.05] <= report.clean_accuracy


def test_a_suite_on_ten_classes_keeps_its_paper_settings():
    attacks = advgrad.get_suite("standard")
    fitted = [a.for_classes(10) for a in attacks]
    assert fitted == attacks  # 9 targets, the targeted DLR: nothing to change
    apgd_t = attacks[1].for_classes(4)
    assert (apgd_t.n_target_classes, apgd_t.loss) == (3, "dlr")


def test_apgd_t_on_three_classes_is_its_margin_run(three_classes):
    """Called directly, APGD-T on 3 classes runs what `for_classes` says, without a word."""
    model, x, y = three_classes
    attack = advgrad.attacks.APGDTargeted(eps=0.3, steps=5, bounds=(0.0, 1.0))
    used = attack.for_classes(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        result = attack.run(model, x, y)
    explicit = used.run(model, x, y)
    np.testing.assert_array_equal(result.x_adv, explicit.x_adv)
    assert result.queries.max() <= 5 * 2  # two targets of 5 steps


def test_apgd_t_loss_setting_is_checked():
    with pytest.raises(advgrad.ArgumentError, match="losses of APGD-T") as info:
        advgrad.attacks.APGDTargeted(loss="ce")
    assert info.value.argument == "loss"


def test_eot_around_apgd_t_and_fab_t_fits_the_classes(three_classes):
    """EOT hands `for_classes` to the attack it wraps: the report records, and the run
    uses, 2 targets on 3 classes (not 9), with no flag."""
    model, x, y = three_classes
    apgd_t = advgrad.attacks.APGDTargeted(eps=0.3, steps=5, bounds=(0.0, 1.0))
    fab_t = advgrad.attacks.FABTargeted(eps=0.3, steps=5, bounds=(0.0, 1.0))
    fitted = advgrad.attacks.EOT(apgd_t, samples=2).for_classes(3)
    assert (fitted.attack.n_target_classes, fitted.attack.loss, fitted.samples) == (2, "margin", 2)
    assert fitted.get_config()["attack"] == apgd_t.for_classes(3).get_config()
    suite = [advgrad.attacks.EOT(a, samples=2) for a in (apgd_t, fab_t)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = evaluate(model, (x, y), suite=suite, eps=[0.3])
    assert not [f for f in report.flags if f["code"] == "run_warning"], report.flags
    assert not [w for w in caught if "class" in str(w.message)], [str(w.message) for w in caught]
    assert [c["attack"]["n_target_classes"] for c in report.suite] == [2, 2]
    assert report.suite[0]["attack"]["loss"] == "margin"
    assert report.robust_accuracy[0.3] < report.clean_accuracy
