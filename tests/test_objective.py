"""The objective reads pre-softmax logits without ever touching the user's layers."""

from __future__ import annotations

import threading

import keras
import numpy as np

import advgrad


class _WatchedDense(keras.layers.Dense):
    """A Dense layer that records every change of its activation once watched."""

    def __setattr__(self, name, value):
        if name == "activation" and getattr(self, "_watching", False):
            self.__dict__.setdefault("_sets", []).append(value)
        super().__setattr__(name, value)


def _softmax_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    head = _WatchedDense(4, activation="softmax")
    model = keras.Model(inputs, head(hidden))
    model.compile(loss="sparse_categorical_crossentropy")
    head._watching = True
    return model, head


def test_logits_never_mutate_the_final_layer():
    model, head = _softmax_model()
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 0])
    grads = advgrad.input_gradients(model, x, y, loss="ce")  # "ce" reads the logits
    attack = advgrad.attacks.PGD(eps=0.1, steps=3, loss="ce")
    attack(model, x, y)
    assert head.__dict__.get("_sets", []) == []
    assert head.activation is keras.activations.softmax
    # The gradient is that of cross-entropy on the pre-softmax logits.
    logits_model = keras.Model(model.inputs, head.input @ head.kernel + head.bias)
    expected = advgrad.input_gradients(logits_model, x, y, loss="ce")
    np.testing.assert_allclose(grads, expected, rtol=1e-4, atol=1e-6)


def test_other_threads_always_see_the_softmax():
    """While gradients run, a reader in another thread never sees a linear activation."""
    model, head = _softmax_model()
    x = np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32)
    y = np.zeros(64, np.int64)
    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            seen.add(head.activation.__name__)

    reader = threading.Thread(target=watch)
    reader.start()
    try:
        for _ in range(20):
            advgrad.input_gradients(model, x, y, loss="ce")
    finally:
        done.set()
        reader.join()
    assert seen == {"softmax"}
