"""Tests for advgrad.steps: step rules as init/update pairs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from advgrad import norms, steps
from advgrad.norms import L1, L2


def run_rule(rule: steps.StepRule, grads: list[tf.Tensor]) -> list[np.ndarray]:
    state = rule.init(grads[0])
    directions = []
    for grad in grads:
        direction, state = rule.update(grad, state)
        directions.append(direction.numpy())
    return directions


def add(value: float) -> steps.StepRule:
    return steps.StepRule(lambda g: (), lambda g, s: (g + value, s))


def scale(factor: float) -> steps.StepRule:
    return steps.StepRule(lambda g: (), lambda g, s: (g * factor, s))


def numpy_mi_fgsm(grads: list[np.ndarray], decay: float) -> list[np.ndarray]:
    """Hand-written momentum of Dong et al. (2018): g = mu * g + grad / ||grad||_1."""
    accumulated = np.zeros_like(grads[0])
    out = []
    for grad in grads:
        l1 = np.abs(grad).reshape(len(grad), -1).sum(axis=1)
        l1 = l1.reshape((-1,) + (1,) * (grad.ndim - 1))
        normalized = np.divide(grad, l1, out=np.zeros_like(grad), where=l1 > 0)
        accumulated = decay * accumulated + normalized
        out.append(accumulated.copy())
    return out


GRADS = [np.random.default_rng(seed).normal(size=(3, 4, 2, 2)) for seed in range(3)]
GRADS[1][2] = 0.0  # a zero gradient in the middle step of sample 2


def test_identity_and_sign():
    grad = tf.constant([[0.5, -2.0, 0.0]])
    direction, state = steps.identity().update(grad, steps.identity().init(grad))
    np.testing.assert_array_equal(direction.numpy(), grad.numpy())
    assert state == ()
    direction, state = steps.sign().update(grad, steps.sign().init(grad))
    np.testing.assert_array_equal(direction.numpy(), [[1.0, -1.0, 0.0]])
    assert state == ()


@pytest.mark.parametrize("norm", ["linf", "l2", L1(0.5)])
def test_normalize_uses_norm_direction(norm):
    grad = tf.constant(GRADS[0], tf.float32)
    rule = steps.normalize(norm)
    (direction,) = run_rule(rule, [grad])
    np.testing.assert_array_equal(direction, norms.get(norm).direction(grad).numpy())
    if norm == "l2":
        np.testing.assert_allclose(L2().norm(direction).numpy(), 1.0, rtol=1e-6)


def test_normalize_rejects_bad_norm():
    with pytest.raises(ValueError, match="argument `norm`"):
        steps.normalize("l7")


@pytest.mark.parametrize("decay", [1.0, 0.9, 0.0])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_momentum_matches_numpy(decay, dtype):
    got = run_rule(steps.momentum(decay), [tf.constant(g, dtype) for g in GRADS])
    want = numpy_mi_fgsm([g.astype(np.float64) for g in GRADS], decay)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == dtype.as_numpy_dtype
        np.testing.assert_allclose(g, w, rtol=1e-5 if dtype == tf.float32 else 1e-12)


def test_momentum_float16_and_zero_gradient():
    grads = [tf.zeros([2, 5], tf.float16), tf.constant(np.ones((2, 5)) * 300, tf.float16)]
    first, second = run_rule(steps.momentum(), grads)
    assert first.dtype == np.float16 and np.all(first == 0)
    np.testing.assert_allclose(second, 0.2, rtol=1e-3)


def test_mi_fgsm_chain_matches_numpy():
    rule = steps.chain(steps.momentum(1.0), steps.sign())
    got = run_rule(rule, [tf.constant(g) for g in GRADS])
    want = [np.sign(m) for m in numpy_mi_fgsm(GRADS, 1.0)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    state = rule.init(tf.constant(GRADS[0]))
    assert isinstance(state, tuple) and len(state) == 2 and state[1] == ()


def test_chain_composes_in_order():
    grad = [tf.constant([[1.0, -2.0]])]
    np.testing.assert_array_equal(run_rule(steps.chain(add(1.0), scale(3.0)), grad)[0], [[6, -3]])
    np.testing.assert_array_equal(run_rule(steps.chain(scale(3.0), add(1.0)), grad)[0], [[4, -5]])
    np.testing.assert_array_equal(run_rule(steps.chain(), grad)[0], [[1.0, -2.0]])
    nested = steps.chain(steps.chain(scale(2.0), add(1.0)), steps.sign(), scale(0.5))
    np.testing.assert_array_equal(run_rule(nested, grad)[0], [[0.5, -0.5]])


def test_chain_rejects_non_rules():
    with pytest.raises(ValueError, match="argument `rules`: expected StepRule objects"):
        steps.chain(steps.sign(), "sign")


@pytest.mark.parametrize("decay", [-1.0, float("nan"), "1", True, None])
def test_momentum_rejects_bad_decay(decay):
    with pytest.raises(ValueError, match="argument `decay`"):
        steps.momentum(decay)


def test_rules_in_tf_function_while_loop():
    """The state is a valid tf.while_loop variable; one trace for all step counts."""
    rule = steps.chain(steps.momentum(0.5), steps.normalize("l2"))
    traces = []
    grads = tf.constant(np.stack(GRADS), tf.float32)

    @tf.function
    def run(grads, n):
        traces.append(1)
        state = rule.init(grads[0])
        direction = tf.zeros_like(grads[0])
        for i in tf.range(n):
            direction, state = rule.update(grads[i], state)
        return direction

    for n in (1, 2, 3):
        got = run(grads, tf.constant(n))
        want = numpy_mi_fgsm(GRADS[:n], 0.5)[-1]
        norms_ = np.linalg.norm(want.reshape(3, -1), axis=1).reshape(3, 1, 1, 1)
        np.testing.assert_allclose(got.numpy(), want / norms_, rtol=1e-5, atol=1e-6)
    assert len(traces) == 1
