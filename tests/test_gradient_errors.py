"""Bad input gets a clear error that names the argument, before any work."""

import keras
import numpy as np
import pytest

import advgrad
from advgrad.gradients import trace_count


@pytest.fixture(scope="module")
def model():
    a = keras.Input((10,), name="a")
    b = keras.Input((5,), name="b")
    out = keras.layers.Dense(3)(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], out)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def inputs(n=4):
    return {"a": np.ones((n, 10), "float32"), "b": np.ones((n, 5), "float32")}


def no_trace(fn):
    before = trace_count()
    with pytest.raises(ValueError) as info:
        fn()
    assert trace_count() == before, "the error came after work started"
    return str(info.value)


def test_no_loss_given_and_none_compiled():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    message = no_trace(lambda: advgrad.input_gradients(plain, np.ones((1, 3)), [0]))
    assert "`loss`" in message and "compile" in message


@pytest.mark.parametrize(
    "x, pattern",
    [
        ({"a": np.ones((4, 10)), "c": np.ones((4, 5))}, r"`x`.*keys \['a', 'b'\].*unknown.*'c'"),
        ([np.ones((4, 10))], r"`x`: expected 2 input\(s\).*list of 1"),
        ({"a": np.ones((4, 10)), "b": np.ones((4, 6))}, r"`x\['b'\]`.*shape \(batch, 5\)"),
        (np.ones((4, 10)), r"`x`: expected a list or a dict of 2 inputs"),
    ],
)
def test_x_structure_mismatch(model, x, pattern):
    message = no_trace(lambda: advgrad.input_gradients(model, x, np.zeros(4, int)))
    assert __import__("re").search(pattern, message), message


@pytest.mark.parametrize(
    "y, pattern",
    [
        (np.array([0, 1, 2, 3]), r"`y`.*class ids in \[0, 3\).*3"),
        (np.array([0, 1, -1, 2]), r"`y`.*class ids in \[0, 3\)"),
        (np.zeros((4, 3)), r"`y`.*class ids of shape \(4,\).*categorical"),
        (np.zeros(5, int), r"`y`.*batch size 4"),
        (np.array([0.5, 1, 2, 0]), r"`y`.*integer class ids"),
    ],
)
def test_bad_labels(model, y, pattern):
    message = no_trace(lambda: advgrad.input_gradients(model, inputs(), y))
    assert __import__("re").search(pattern, message), message


def test_one_hot_labels_of_wrong_width(model):
    message = no_trace(
        lambda: advgrad.input_gradients(
            model,
            inputs(),
            np.zeros((4, 4)),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        )
    )
    assert "one-hot labels of shape (4, 3)" in message


def test_nan_in_x(model):
    x = inputs()
    x["b"][1, 2] = np.nan
    message = no_trace(lambda: advgrad.input_gradients(model, x, np.zeros(4, int)))
    assert "`x['b']`" in message and "NaN" in message


def test_integer_input(model):
    x = {"a": np.ones((4, 10), "int32"), "b": np.ones((4, 5), "float32")}
    message = no_trace(lambda: advgrad.input_gradients(model, x, np.zeros(4, int)))
    assert "`x['a']`" in message and "int32" in message


def test_unknown_wrt(model):
    message = no_trace(
        lambda: advgrad.input_gradients(model, inputs(), np.zeros(4, int), wrt="image")
    )
    assert "`wrt`" in message and "'image'" in message and "['a', 'b']" in message


def test_bad_reduction_and_loss(model):
    assert "`reduction`" in no_trace(
        lambda: advgrad.input_gradients(model, inputs(), np.zeros(4, int), reduction="sum")
    )
    assert "`loss`" in no_trace(
        lambda: advgrad.input_gradients(model, inputs(), np.zeros(4, int), loss="nope")
    )
