"""The engine against finite differences and hand-written GradientTape code."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad.gradcheck import check_gradients
from advgrad.gradients import trace_count

FD_TOLERANCE = 1e-4


def tape_gradient(model, x, loss_fn):
    """The reference: GradientTape on tensors, per-sample losses summed."""
    xs = tf.nest.map_structure(lambda v: tf.convert_to_tensor(v), x)
    with tf.GradientTape() as tape:
        tape.watch(xs)
        value = tf.reduce_sum(loss_fn(model(xs, training=False)))
    return tf.nest.map_structure(lambda g: g.numpy(), tape.gradient(value, xs))


def assert_matches(engine, reference, rtol=1e-5, atol=1e-7):
    for got, want in zip(tf.nest.flatten(engine), tf.nest.flatten(reference), strict=True):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def assert_fd(model, x, y, **kwargs):
    report = check_gradients(model, x, y, coordinates=24, **kwargs)
    assert report.precision == "float64"
    assert report.max_relative_error <= FD_TOLERANCE, str(report)
    assert report.passed, str(report)
    return report


@pytest.fixture(scope="module")
def dense_mse():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(loss="mse")
    return model


@pytest.fixture(scope="module")
def two_input():
    keras.utils.set_random_seed(2)
    a = keras.Input((10,), name="a")
    b = keras.Input((5,), name="b")
    hidden = keras.layers.Dense(16, activation="tanh")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], keras.layers.Dense(1)(hidden))
    model.compile(loss="mse")
    return model


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, activation="tanh"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )


def test_sequential_mse_numpy_float64(dense_mse, rng):
    x = rng.normal(size=(6, 10))
    y = rng.normal(size=(6, 1))
    grads = advgrad.input_gradients(dense_mse, x, y)
    assert grads.shape == x.shape and grads.dtype == np.float64
    want = tape_gradient(dense_mse, x, lambda out: keras.losses.mean_squared_error(y, out))
    assert_matches(grads, want)
    assert_fd(dense_mse, x, y)


@pytest.mark.parametrize("layout", ["list", "dict"])
def test_two_input_functional(two_input, rng, layout):
    xa = rng.normal(size=(5, 10)).astype("float32")
    xb = rng.normal(size=(5, 5)).astype("float32")
    y = rng.normal(size=(5, 1)).astype("float32")
    x = [xa, xb] if layout == "list" else {"a": xa, "b": xb}
    grads = advgrad.input_gradients(two_input, x, y)
    assert type(grads) is type(x)
    want = tape_gradient(two_input, [xa, xb], lambda o: keras.losses.mean_squared_error(y, o))
    got = grads if layout == "list" else [grads["a"], grads["b"]]
    assert_matches(got, want)
    assert [g.shape for g in got] == [(5, 10), (5, 5)]
    assert_fd(two_input, x, y)


@pytest.mark.parametrize("labels", ["onehot", "sparse"])
def test_cnn_logits_cross_entropy(cnn, rng, labels):
    x = rng.uniform(size=(4, 28, 28, 1)).astype("float32")
    ids = np.array([0, 3, 7, 9])
    if labels == "onehot":
        y, loss = np.eye(10, dtype="float32")[ids], keras.losses.CategoricalCrossentropy(True)
    else:
        y, loss = ids, keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    cnn.compile(loss=loss)
    grads = advgrad.input_gradients(cnn, x, y)
    want = tape_gradient(cnn, x, lambda o: tf.nn.sparse_softmax_cross_entropy_with_logits(ids, o))
    assert_matches(grads, want, rtol=1e-4, atol=1e-6)
    assert_fd(cnn, x, y)


def test_output_gradients_without_loss(two_input, rng):
    xa = rng.normal(size=(3, 10)).astype("float32")
    xb = rng.normal(size=(3, 5)).astype("float32")
    grads = advgrad.output_gradients(two_input, {"a": xa, "b": xb})
    want = tape_gradient(two_input, [xa, xb], lambda o: o)
    assert_matches([grads["a"], grads["b"]], want)


def test_output_gradients_per_sample_unit(cnn, rng):
    x = rng.uniform(size=(3, 28, 28, 1)).astype("float32")
    units = np.array([1, 5, 9])
    grads = advgrad.output_gradients(cnn, x, output_index=units)
    want = tape_gradient(cnn, x, lambda o: tf.gather(o, units, axis=1, batch_dims=1))
    assert_matches(grads, want)


class Sin(keras.layers.Layer):
    def call(self, inputs):
        return keras.ops.sin(inputs)


def custom_mse(y_true, y_pred):
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


def test_custom_layer_and_custom_loss(rng):
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8), Sin(), keras.layers.Dense(2)]
    )
    model.compile(loss=custom_mse)
    x = rng.normal(size=(4, 6))
    y = rng.normal(size=(4, 2))
    grads = advgrad.input_gradients(model, x, y)
    assert_matches(grads, tape_gradient(model, x, lambda o: custom_mse(y, o)))
    assert_fd(model, x, y)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__(dtype="float64")
        self.hidden = keras.layers.Dense(12, activation="tanh", dtype="float64")
        self.head = keras.layers.Dense(3, dtype="float64")

    def call(self, inputs):
        return self.head(self.hidden(inputs))


def test_subclassed_model(rng):
    keras.utils.set_random_seed(5)
    model = Subclassed()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.normal(size=(5, 7))
    y = np.array([0, 1, 2, 1, 0])
    grads = advgrad.input_gradients(model, x, y)
    want = tape_gradient(model, x, lambda o: tf.nn.sparse_softmax_cross_entropy_with_logits(y, o))
    assert_matches(grads, want)
    assert_fd(model, x, y)


@pytest.fixture(scope="module")
def two_output():
    keras.utils.set_random_seed(6)
    inp = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="tanh")(inp)
    model = keras.Model(
        inp, {"value": keras.layers.Dense(1)(hidden), "label": keras.layers.Dense(4)(hidden)}
    )
    model.compile(
        loss={
            "value": "mse",
            "label": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        },
        loss_weights={"value": 2.0, "label": 1.0},
    )
    return model


def test_two_output_sum_and_choice(two_output, rng):
    x = rng.normal(size=(5, 8)).astype("float32")
    y = {"value": rng.normal(size=(5, 1)).astype("float32"), "label": np.array([0, 1, 2, 3, 0])}

    def both(out):
        mse = keras.losses.mean_squared_error(y["value"], out["value"])
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y["label"], out["label"])
        return 2.0 * mse + ce

    assert_matches(advgrad.input_gradients(two_output, x, y), tape_gradient(two_output, x, both))
    assert_fd(two_output, x, y)
    only = advgrad.input_gradients(two_output, x, y["label"], output="label")
    want = tape_gradient(
        two_output,
        x,
        lambda out: tf.nn.sparse_softmax_cross_entropy_with_logits(y["label"], out["label"]),
    )
    assert_matches(only, want)


def test_reduction_mean_scales_by_batch(dense_mse, rng):
    x, y = rng.normal(size=(4, 10)), rng.normal(size=(4, 1))
    per_sample = advgrad.input_gradients(dense_mse, x, y)
    loss, mean = advgrad.input_gradients(dense_mse, x, y, reduction="mean", return_loss=True)
    np.testing.assert_allclose(mean, per_sample / 4, rtol=1e-6)
    assert np.ndim(loss) == 0


def test_explicit_loss_wins_and_softmax_model_uses_logits(rng):
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(3), keras.layers.Activation("softmax")]
    )
    model.compile(loss="mse")
    x = rng.normal(size=(4, 5)).astype("float32")
    y = np.array([0, 1, 2, 0])
    grads = advgrad.input_gradients(model, x, y, loss="ce")
    pre = keras.Model(model.inputs, model.layers[-1].input)
    want = tape_gradient(pre, x, lambda o: tf.nn.sparse_softmax_cross_entropy_with_logits(y, o))
    assert_matches(grads, want)


# Keras warns too, from inside the loss; advgrad's warning, which names the fix, is the subject.
@pytest.mark.filterwarnings("ignore:.*received `from_logits=True`.*Softmax:UserWarning")
def test_softmax_with_from_logits_true_warns(rng):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.warns(UserWarning, match="ends in softmax.*from_logits=True"):
        advgrad.input_gradients(model, np.ones((2, 4), "float32"), [0, 1])


def test_logits_with_from_logits_false_warns():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="looks like logits.*from_logits=True"):
        advgrad.input_gradients(model, np.ones((2, 4), "float32"), [0, 1])


def test_matching_activation_does_not_warn():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        advgrad.input_gradients(model, np.ones((2, 4), "float32"), [0, 1])


def test_caller_arrays_unchanged_and_no_retrace(two_input, rng):
    xa = rng.normal(size=(8, 10)).astype("float32")
    xb = rng.normal(size=(8, 5)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    copies = (xa.copy(), xb.copy(), y.copy())
    advgrad.input_gradients(two_input, [xa, xb], y)
    before = trace_count("input_gradients")
    for _ in range(5):
        advgrad.input_gradients(two_input, [xa, xb], y)
    advgrad.input_gradients(two_input, [xa[:3], xb[:3]], y[:3])  # other batch size
    assert trace_count("input_gradients") == before
    for original, copy in zip((xa, xb, y), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_float16_and_tensor_inputs_keep_dtype(dense_mse, rng):
    x16 = rng.normal(size=(3, 10)).astype("float16")
    grads = advgrad.input_gradients(dense_mse, x16, np.zeros((3, 1)))
    assert grads.dtype == np.float16 and grads.shape == (3, 10)
    xt = tf.constant(rng.normal(size=(3, 10)), tf.float32)
    grads = advgrad.input_gradients(dense_mse, xt, np.zeros((3, 1)))
    assert tf.is_tensor(grads) and grads.dtype == tf.float32


def test_labels_default_to_predictions(cnn, rng):
    cnn.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.uniform(size=(3, 28, 28, 1)).astype("float32")
    predicted = cnn.predict(x, verbose=0).argmax(-1)
    assert_matches(advgrad.input_gradients(cnn, x), advgrad.input_gradients(cnn, x, predicted))


def test_wrt_selects_inputs_and_integer_inputs(rng):
    ids = keras.Input((4,), dtype="int32", name="ids")
    dense = keras.Input((3,), name="dense")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(10, 2)(ids))
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([embedded, dense]))
    model = keras.Model({"ids": ids, "dense": dense}, out)
    model.compile(loss="mse")
    x = {"ids": rng.integers(0, 10, size=(2, 4)).astype("int32"), "dense": np.ones((2, 3))}
    y = np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"x\['ids'\].*floating-point.*'ids'.*not differentiable"):
        advgrad.input_gradients(model, x, y)
    grads = advgrad.input_gradients(model, x, y, wrt="dense")
    assert grads.shape == (2, 3)
    assert isinstance(advgrad.input_gradients(model, x, y, wrt=["dense"]), list)
