"""Binary classifiers with one output unit, through every workflow.

A one-unit output is the two-class logit pair (0, z) (`advgrad.objective.two_class`): z is
the pre-sigmoid logit of a final sigmoid, the output itself when the model is compiled
with ``from_logits=True``. Both models are trained here on scikit-learn's breast-cancer
data scaled to [0, 1]; every registered attack, both suites, generation, adversarial
training and saliency run on them. A multi-label model (several sigmoid units) is refused.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_attack_contract import ATTACKS, _norm, make_attack  # every registered attack

import advgrad
from advgrad.generation import load_generated
from advgrad.models import ModelAdapter
from advgrad.objective import Objective, two_class, unit_reading
from advgrad.predictions import Classes, judge

BATCH = 32
EPS = {"linf": 0.1, "l2": 0.5, "l1": 2.0}  # features in [0, 1], 30 of them

# On 2 classes APGD-T runs the targeted margin; whether it warns is the suites' business.
pytestmark = pytest.mark.filterwarnings("ignore:APGDTargeted")


@pytest.fixture(scope="module")
def cancer():
    """Breast-cancer features scaled to [0, 1] (all 569 samples) and 0/1 labels."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = bunch.data
    x = ((x - x.min(0)) / (x.max(0) - x.min(0))).astype(np.float32)
    return x, bunch.target.astype(np.int64)


def _train(cancer, last: keras.layers.Layer, loss) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(16, "relu"), last])
    model.compile(keras.optimizers.Adam(0.02), loss, metrics=["accuracy"])
    model.fit(*cancer, epochs=8, batch_size=64, verbose=0)
    assert model.evaluate(*cancer, verbose=0)[1] > 0.9  # a real classifier
    return model


@pytest.fixture(scope="module")
def sigmoid_model(cancer):
    """Dense(1, "sigmoid") with binary_crossentropy."""
    return _train(cancer, keras.layers.Dense(1, "sigmoid"), "binary_crossentropy")


@pytest.fixture(scope="module")
def logit_model(cancer):
    """Dense(1) (a logit) with BinaryCrossentropy(from_logits=True)."""
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    return _train(cancer, keras.layers.Dense(1), loss)


@pytest.fixture(scope="module", params=["sigmoid", "logit"])
def model(request):
    return request.getfixturevalue(f"{request.param}_model")


@pytest.fixture(scope="module")
def batch(cancer):
    x, y = cancer
    return x[:BATCH], y[:BATCH]


# ------------------------------------------------------------------------ the view
def test_one_unit_is_the_two_class_logit_pair(sigmoid_model, logit_model, batch):
    x, _ = batch
    assert two_class(tf.constant([[2.0]])).numpy().tolist() == [[0.0, 2.0]]
    assert unit_reading(ModelAdapter.of(sigmoid_model)) == "sigmoid"
    assert unit_reading(ModelAdapter.of(logit_model)) == "logit"
    for model in (sigmoid_model, logit_model):
        objective = Objective.resolve(ModelAdapter.of(model), "ce", None)
        assert objective.class_count() == 2
        z = objective.forward(tf.constant(x)).numpy()
        out = model.predict(x, verbose=0)
        logits = np.log(out) - np.log1p(-out) if model is sigmoid_model else out
        np.testing.assert_allclose(z, logits, rtol=1e-3, atol=1e-3)  # the pre-sigmoid z
        # CE of the pair is the binary cross-entropy; "fooled" is judge's decision.
        labels = np.array([0, 1] * (BATCH // 2))
        ce = objective.per_sample(labels, z).numpy()
        binary = np.logaddexp(0, np.where(labels, -z[:, 0], z[:, 0]))
        np.testing.assert_allclose(ce, binary, rtol=1e-5, atol=1e-6)
        classes = Classes.of_objective(objective)
        fooled = classes.fooled(classes.scores(z), Classes.truth(labels), False).numpy()
        predicted, correct, finite = judge(model, x, labels)
        np.testing.assert_array_equal(fooled, ~correct & finite)
        np.testing.assert_array_equal(predicted, (z[:, 0] > 0).astype(np.int64))


def test_a_probability_without_a_sigmoid_to_strip_is_read_as_its_logit(sigmoid_model, batch):
    """A subclassed model's sigmoid cannot be stripped: the compiled loss says its one
    unit is a probability p, so the loss reads logit(p) and "fooled" thresholds p at 0.5."""

    class Wrapped(keras.Model):
        def call(self, inputs):
            return sigmoid_model(inputs)

    wrapped = Wrapped()
    wrapped.compile(loss="binary_crossentropy")
    x, y = batch
    assert unit_reading(ModelAdapter.of(wrapped)) == "probability"
    assert Classes.of(ModelAdapter.of(wrapped)).threshold == 0.5
    result = advgrad.attacks.APGD(eps=0.1, steps=10, bounds=(0, 1)).run(wrapped, x, y)
    expected = advgrad.attacks.APGD(eps=0.1, steps=10, bounds=(0, 1)).run(sigmoid_model, x, y)
    _, correct, finite = judge(wrapped, result.x_adv, y)
    np.testing.assert_array_equal(result.fooled, ~correct & finite)
    assert abs(result.fooled.mean() - expected.fooled.mean()) <= 2 / BATCH


# -------------------------------------------------------------------- every attack
@pytest.mark.parametrize("name", ATTACKS)
def test_every_attack(sigmoid_model, batch, name):
    _check_attack(sigmoid_model, batch, name)


# FGSM, BIM, PGD, MI-FGSM and EOT(PGD) maximise the compiled loss, which always worked.
CLASS_READERS = [n for n in ATTACKS if getattr(make_attack(n), "loss", "own") is not None]


@pytest.mark.parametrize("name", CLASS_READERS)
def test_every_attack_that_reads_classes_from_logits(logit_model, batch, name):
    _check_attack(logit_model, batch, name)


def _check_attack(model, batch, name):
    x, y = batch
    attack = make_attack(name, bounds=(0.0, 1.0))
    attack = attack.replace(eps=EPS[attack.norm])
    result = attack.run(model, x, y)
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
    assert np.all((result.x_adv >= 0) & (result.x_adv <= 1))
    assert _norm(result.x_adv - x, attack.norm).max() <= attack.eps * (1 + 1e-5) + 1e-6
    _, correct, finite = judge(model, result.x_adv, y)
    np.testing.assert_array_equal(result.fooled, ~correct & finite)  # decided once
    assert result.fooled.any(), name  # real gradients (or scores): some sample flips


def test_labels_from_predictions(model, batch):
    """y=None: the predicted classes of the one unit (z > 0), not argmax of one column."""
    x, _ = batch
    predicted = judge(model, x, np.zeros(BATCH, np.int64))[0]
    assert 0 < predicted.sum() < BATCH
    result = advgrad.attacks.APGD(eps=0.1, steps=10, bounds=(0, 1)).run(model, x)
    _, correct, _ = judge(model, result.x_adv, predicted)
    np.testing.assert_array_equal(result.fooled, ~correct)


# ------------------------------------------------------------------------ workflows
def _robust(model, batch, suite, eps) -> dict[float, float]:
    return advgrad.evaluate(model, batch, suite=suite, eps=eps, sanity=False).robust_accuracy


def test_suites_are_at_most_pgd20(sigmoid_model, batch):
    eps = [0.05, 0.1]
    settings = {"bounds": (0, 1), "steps": 20, "queries": 200}  # PGD-20's gradient budget
    standard = _robust(sigmoid_model, batch, advgrad.get_suite("standard", **settings), eps)
    fast = _robust(sigmoid_model, batch, advgrad.get_suite("fast", **settings), eps)
    pgd = _robust(sigmoid_model, batch, [advgrad.attacks.PGD(steps=20, bounds=(0, 1))], eps)
    print(f"robust accuracy at eps {eps}: standard {standard}, fast {fast}, PGD-20 {pgd}")
    clean = judge(sigmoid_model, batch[0], batch[1])[1].mean()
    for e in eps:
        assert standard[e] <= pgd[e] and fast[e] <= pgd[e], e
        assert standard[e] < clean, e  # the suite does fool the model


def test_suites_on_the_logit_model(logit_model, batch):
    for name in ("standard", "fast"):
        suite = advgrad.get_suite(name, bounds=(0, 1), steps=5, queries=50)
        half = (batch[0][: BATCH // 2], batch[1][: BATCH // 2])
        robust = _robust(logit_model, half, suite, [0.1])
        assert robust[0.1] < judge(logit_model, *half)[1].mean(), name


def test_generate(sigmoid_model, batch, tmp_path):
    model = sigmoid_model
    x, y = batch
    attack = advgrad.attacks.APGD(eps=0.1, steps=10, bounds=(0, 1))
    advgrad.generate(model, batch, attack, tmp_path / "out", shard_size=BATCH)
    x_adv, y_adv = next(iter(load_generated(tmp_path / "out", batch_size=BATCH)))
    x_adv = x_adv.numpy()
    np.testing.assert_array_equal(y_adv.numpy(), y)
    assert np.all((x_adv >= 0) & (x_adv <= 1)) and np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert judge(model, x_adv, y)[1].mean() < judge(model, x, y)[1].mean()


@pytest.mark.parametrize("objective", ["pgd-at", "trades"])
def test_adversarial_training(sigmoid_model, batch, objective):
    model = keras.models.clone_model(sigmoid_model)
    model.set_weights(sigmoid_model.get_weights())
    attack = advgrad.attacks.PGD(eps=0.1, steps=3, bounds=(0, 1))
    robust = advgrad.training.adversarial(model, attack, objective=objective)
    robust.compile(keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    history = robust.fit(*batch, epochs=1, batch_size=16, verbose=0).history
    assert np.isfinite(history["loss"][0])
    if objective == "trades":  # the KL between the two classes' probabilities, not 0
        assert history["robust_kl"][0] > 1e-4


def test_saliency(logit_model, sigmoid_model, batch):
    x, _ = batch
    x = x[:4]
    for model, method in [
        (sigmoid_model, advgrad.saliency.integrated_gradients),
        (logit_model, advgrad.saliency.vanilla),
    ]:
        maps = method(model, x)
        assert maps.shape == x.shape and np.all(np.isfinite(maps)) and np.abs(maps).max() > 0


# ----------------------------------------------------------------------- multi-label
def test_multi_label_is_refused_in_one_line(batch):
    x, _ = batch
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(5, "sigmoid")])
    model.compile(loss="binary_crossentropy")
    labels = (np.arange(BATCH * 5).reshape(BATCH, 5) % 3 == 0).astype(np.float32)
    for attack in (advgrad.attacks.PGD(eps=0.1, steps=2), advgrad.attacks.APGD(eps=0.1)):
        with pytest.raises(advgrad.ArgumentError, match="`model`.*multi-label") as error:
            attack(model, x, labels)
        message = str(error.value)
        assert "\n" not in message and "advgrad.label_classifier(model, j)" in message
    # Told which label: its binary classifier (the label's logit, the sigmoid stripped).
    binary = advgrad.label_classifier(model, 2)
    np.testing.assert_allclose(tf.sigmoid(binary(x))[:, 0], model(x)[:, 2], rtol=1e-5, atol=1e-6)
    assert unit_reading(ModelAdapter.of(binary)) == "logit"
    result = advgrad.attacks.APGD(eps=0.3, steps=5, bounds=(0, 1)).run(binary, x, labels[:, 2])
    _, correct, finite = judge(binary, result.x_adv, labels[:, 2].astype(np.int64))
    np.testing.assert_array_equal(result.fooled, ~correct & finite)
    assert result.fooled.any()
    for label in (5, -1, 1.0, True):
        with pytest.raises(advgrad.ArgumentError, match="`label`.*in \\[0, 5\\)"):
            advgrad.label_classifier(model, label)
