"""Custom losses: their labels' format is read from the labels' shape, as `model.fit` does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad import losses


def sparse_ce_logits(y_true, y_pred):
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


class SparseCE(keras.losses.Loss):
    """A Loss subclass of one's own (not a Keras built-in)."""

    def call(self, y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(11)
    return keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)]
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5)).astype("float32")
    y = np.array([0, 1, 2, 1, 0, 2])
    return x, y


def reference(model, x, y):
    builtin = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return advgrad.input_gradients(model, x, y, loss=builtin)


def test_custom_losses_are_inferred_and_keras_ones_unchanged():
    assert losses.get(lambda y_true, y_pred: y_pred).labels == "inferred"
    assert losses.get(SparseCE()).labels == "inferred"
    assert losses.get("sparse_categorical_crossentropy").labels == "sparse"
    assert losses.get(keras.losses.CategoricalCrossentropy()).labels == "onehot"
    assert losses.get("mse").labels == "any"
    assert losses.get(keras.losses.MeanSquaredError()).labels == "any"
    assert losses.get("ce").labels == "sparse"
    assert losses.LossSpec(sparse_ce_logits, labels="sparse").name == "sparse_ce_logits"


@pytest.mark.parametrize(
    "loss",
    [
        lambda y_true, y_pred: keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=True
        ),
        SparseCE(),
    ],
    ids=["function", "loss-subclass"],
)
@pytest.mark.parametrize("shape", [(6,), (6, 1)], ids=["ids", "ids-column"])
def test_custom_loss_with_class_ids_matches_builtin(classifier, data, loss, shape):
    x, y = data
    grads = advgrad.input_gradients(classifier, x, y.reshape(shape), loss=loss)
    np.testing.assert_allclose(grads, reference(classifier, x, y), rtol=1e-5, atol=1e-5)


def test_custom_loss_with_onehot_labels_still_works(classifier, data):
    x, y = data

    def onehot_ce(y_true, y_pred):
        return keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True)

    grads = advgrad.input_gradients(classifier, x, np.eye(3)[y], loss=onehot_ce)
    np.testing.assert_allclose(grads, reference(classifier, x, y), rtol=1e-5, atol=1e-5)


def test_compiled_custom_loss(data):
    x, y = data
    keras.utils.set_random_seed(12)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(loss=sparse_ce_logits)
    model.fit(x, y, epochs=1, verbose=0)  # the loss works in fit with these labels
    grads = advgrad.input_gradients(model, x, y)
    np.testing.assert_allclose(grads, reference(model, x, y), rtol=1e-5, atol=1e-5)
    # y=None: class ids from the model's own predictions
    predicted = model.predict(x, verbose=0).argmax(-1)
    np.testing.assert_allclose(
        advgrad.input_gradients(model, x), reference(model, x, predicted), rtol=1e-5, atol=1e-5
    )


def test_pgd_on_custom_loss(classifier, data):
    x, y = data
    attack = advgrad.attacks.PGD(eps=0.1, steps=3, loss=sparse_ce_logits)
    result = attack.run(classifier, x, y)
    assert result.x_adv.shape == x.shape
    assert np.all(np.abs(result.x_adv - x) <= 0.1 + 1e-6)
    assert np.all(np.isfinite(result.loss_trace))
    assert result.loss_trace[-1] >= result.loss_trace[0]


def test_class_ids_are_validated(classifier, data):
    x, _ = data
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\)"):
        advgrad.input_gradients(classifier, x, np.arange(6), loss=sparse_ce_logits)


def test_labels_of_no_known_form_name_loss_spec(classifier, data):
    x, _ = data
    with pytest.raises(ValueError, match=r"`y`.*class ids of shape \(6,\).*\(6, 3\)") as info:
        advgrad.input_gradients(classifier, x, np.zeros((6, 2)), loss=sparse_ce_logits)
    assert 'loss=advgrad.losses.LossSpec(fn, labels="sparse")' in str(info.value)


def test_one_unit_output_without_labels_is_ambiguous(data):
    x, _ = data
    keras.utils.set_random_seed(13)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])

    def custom(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    with pytest.raises(ValueError, match=r"`y`.*it needs labels"):
        advgrad.input_gradients(model, x, loss=custom)
    # with labels, a one-unit output takes (B,) or (B, 1) values
    for y in (np.ones(6), np.ones((6, 1))):
        grads = advgrad.input_gradients(model, x, y, loss=custom)
        assert grads.shape == x.shape


def test_unknown_output_size_without_labels_asks_for_y(data):
    """The model does not say its output's size: y=None on what is a one-unit output."""
    x, _ = data

    def custom(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    def model(inputs):
        return tf.reduce_sum(inputs, axis=-1, keepdims=True)

    with pytest.raises(ValueError, match=r"`y`.*'custom'.*one-unit output.*Pass `y`"):
        advgrad.input_gradients(model, x, loss=custom)


def test_explicit_loss_spec_declares_class_ids(classifier, data):
    x, y = data
    spec = losses.LossSpec(sparse_ce_logits, labels="sparse")
    grads = advgrad.input_gradients(classifier, x, y, loss=spec)
    np.testing.assert_allclose(grads, reference(classifier, x, y), rtol=1e-5, atol=1e-5)


def test_evaluate_with_compiled_custom_loss(data):
    x, _ = data
    keras.utils.set_random_seed(14)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(loss=sparse_ce_logits)
    y = model.predict(x, verbose=0).argmax(-1)
    attack = advgrad.attacks.PGD(steps=2, bounds=(-5.0, 5.0))
    report = advgrad.evaluate(model, (x, y), suite=[attack], eps=[0.1], sanity=False)
    assert report.clean_accuracy == 1.0
    assert 0.0 <= report.robust_accuracy[0.1] <= 1.0
