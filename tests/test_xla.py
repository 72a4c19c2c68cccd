"""XLA: the opt-in ``jit_compile=True`` setting of every attack.

`Attack.compiled` passes it to ``tf.function(jit_compile=True)``; the setting is part of the
compiled function's cache key. XLA draws other random numbers for the same seed and rounds
softmax cross-entropy differently where a sample's loss is saturated, so bit-equality is
tested without random draws on the (unsaturated) margin loss; with the defaults, per-sample
robust outcomes are compared within a measured tolerance (tests/_outcomes.py).
Every other attack family compiles under XLA in tests/test_numeric_paths.py.
"""

from __future__ import annotations

import _outcomes as outcomes
import invariants
import keras
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad._compile import trace_count
from advgrad._validation import ArgumentError
from advgrad.config import ConfigError, build_run, load_config

EPS = {"linf": 0.1, "l2": 1.0, "l1": 4.0}
BOUNDS = (0.0, 1.0)


@pytest.fixture(scope="module")
def batch(digits):
    return digits.x_test[:100], digits.y_test[:100]


def test_jit_compile_is_a_validated_setting():
    attack = advgrad.attacks.PGD()
    assert attack.jit_compile is False and attack.get_config()["jit_compile"] is False
    assert advgrad.attacks.PGD.from_config(attack.replace(jit_compile=True).get_config()) == (
        advgrad.attacks.PGD(jit_compile=True)
    )
    with pytest.raises(ArgumentError) as info:
        advgrad.attacks.Square(jit_compile="yes")
    assert info.value.argument == "jit_compile"
    wrapped = advgrad.attacks.EOT("pgd", samples=2, jit_compile=True)
    assert wrapped.attack.jit_compile is True


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_with_xla_gives_the_same_x_adv_and_traces_once(digits_cnn, batch, norm):
    """Bit-equal to the plain run (no random draws, the unsaturated margin loss); one trace
    for every batch and eps, apart from the plain attack's (its own cache entry)."""
    x, y = batch[0][:40], batch[1][:40]
    attack = advgrad.attacks.PGD(
        eps=EPS[norm],
        norm=norm,
        bounds=BOUNDS,
        steps=5,
        random_start=False,
        loss="margin",
        batch_size=16,
    )
    plain = np.asarray(attack(digits_cnn, x, y))
    jitted = attack.replace(jit_compile=True)
    before = trace_count("attack")
    x_adv = np.asarray(jitted(digits_cnn, x, y))  # chunks of 16, 16 and 8: one trace
    assert trace_count("attack") == before + 1  # not the plain attack's function
    assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
    np.testing.assert_allclose(x_adv, plain, atol=1e-5, rtol=0)
    invariants.assert_within(x_adv, x, eps=EPS[norm], norm=norm, bounds=BOUNDS)
    jitted(digits_cnn, x[:24], y[:24], eps=EPS[norm] / 2)  # XLA compiles per shape, not trace
    attack(digits_cnn, x, y)
    assert trace_count("attack") == before + 1


@pytest.mark.slow
def test_pgd_defaults_with_xla_keep_budget_and_robust_outcomes(digits_cnn, batch):
    """XLA draws other random starts for the same seed and rounds differently: its run is
    compared, per sample, with plain runs of seeds 0 .. SEEDS - 1 as one more independent run,
    with the tolerance measured as tests/_outcomes.py describes (not tuned to one machine)."""
    x, y = batch
    attack = advgrad.attacks.PGD(eps=EPS["linf"], bounds=BOUNDS, steps=10, seed=0)
    runs = [attack.replace(seed=s).run(digits_cnn, x, y).x_adv for s in range(outcomes.SEEDS)]
    jitted = attack.replace(jit_compile=True).run(digits_cnn, x, y).x_adv
    for x_adv in (runs[0], jitted):
        invariants.assert_within(x_adv, x, eps=EPS["linf"], norm="linf", bounds=BOUNDS)
    xla = tf.function(lambda v: digits_cnn(v, training=False), jit_compile=True)
    outcomes.compare(outcomes.predictor(digits_cnn), xla, x, y, runs, jitted).check()


class _PyFunc(keras.layers.Layer):
    """Identity, plus an op XLA cannot compile (a Python function)."""

    def call(self, x):
        zero = tf.numpy_function(lambda v: np.float32(0.0), [x], tf.float32, stateful=False)
        return x + tf.stop_gradient(tf.reshape(zero, []))

    def compute_output_shape(self, shape):
        return shape


def test_a_model_xla_cannot_compile_names_jit_compile(rng):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(_PyFunc()(inputs)))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = rng.random((4, 4)).astype("float32"), np.array([0, 1, 2, 0])
    attack = advgrad.attacks.PGD(eps=0.1, steps=2)
    assert attack(model, x, y).shape == x.shape  # without XLA it runs
    with pytest.raises(ArgumentError) as info:
        attack.replace(jit_compile=True)(model, x, y)
    assert info.value.argument == "jit_compile" and "jit_compile=False" in str(info.value)


def test_a_suite_entry_sets_jit_compile(tmp_path, digits_cnn, batch):
    text = (
        "model: digits-cnn\n"
        "data: {name: digits, limit: 8}\n"
        "suite: [fgsm, {name: pgd, steps: 2, jit_compile: true}]\n"
        "eps: [0.1]\n"
    )
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    suite = build_run(load_config(path)).suite
    assert [a.jit_compile for a in suite] == [False, True]
    path.write_text(text.replace("jit_compile: true", "jit_compile: 2"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(p.startswith("suite[1].jit_compile:") for p in info.value.problems)
    x, y = batch[0][:8], batch[1][:8]
    entry = {"name": "pgd", "steps": 2, "bounds": BOUNDS, "jit_compile": True}
    report = advgrad.evaluate(digits_cnn, (x, y), suite=[entry], eps=[0.1], sanity=False)
    assert 0.0 <= report.robust_accuracy[0.1] <= 1.0
