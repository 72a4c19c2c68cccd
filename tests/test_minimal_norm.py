"""Minimal-norm attacks (`CarliniWagnerL2`, `DeepFool`, `FMN`): reported norms, the papers'
ordering on the digits CNN, eps as a filter, confidence, retracing and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import advgrad
from advgrad._compile import trace_count
from advgrad.attacks import FMN, CarliniWagnerL2, DeepFool

ORDERS = {"linf": np.inf, "l2": 2, "l1": 1}


def _norms(x_adv, x, norm):
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    return np.linalg.norm(delta, ord=ORDERS[norm], axis=1)


def _logits(model, x):
    return np.array(model(x, training=False))


@pytest.fixture(scope="module")
def batch(digits):
    return digits.x_test[:64], digits.y_test[:64]


CASES = [
    (DeepFool, "linf", {}),
    (DeepFool, "l2", {}),
    (FMN, "linf", {"steps": 30}),
    (FMN, "l2", {"steps": 30}),
    (FMN, "l1", {"steps": 30}),
    (CarliniWagnerL2, "l2", {"binary_search_steps": 3, "steps": 30}),
]


@pytest.mark.parametrize(("cls", "norm", "settings"), CASES, ids=lambda v: getattr(v, "name", v))
def test_norms_are_those_of_the_returned_perturbation(cls, norm, settings, batch, digits_cnn):
    x, y = batch
    result = cls(norm=norm, bounds=(0.0, 1.0), **settings).run(digits_cnn, x, y)
    fooled = result.fooled
    assert fooled.mean() > 0.95, fooled.mean()  # no budget: nearly every sample flips
    # The reported norm is the norm of the returned perturbation, the sample is misclassified
    # there, and a failure is the clean input with norm inf.
    np.testing.assert_allclose(result.norms[fooled], _norms(result.x_adv, x, norm)[fooled], 1e-5)
    predicted = _logits(digits_cnn, result.x_adv).argmax(1)
    np.testing.assert_array_equal(predicted != y, fooled)
    assert np.all(np.isinf(result.norms[~fooled]))
    np.testing.assert_array_equal(result.x_adv[~fooled], x[~fooled])
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    # Misclassified clean samples: fooled at x itself, norm 0.
    wrong = _logits(digits_cnn, x).argmax(1) != y
    assert np.all(result.norms[wrong] == 0)
    # Minimal: 10% of the way back to x, most moved samples are classified correctly again.
    moved = fooled & (result.norms > 0)
    inner = x + 0.9 * (result.x_adv - x)
    assert np.mean(_logits(digits_cnn, inner).argmax(1)[moved] == y[moved]) > 0.7


def test_l2_medians_order_as_the_papers(batch, digits_cnn):
    """FMN and CW (defaults: 100 steps; 9 x 100) find norms at most DeepFool's, which needs
    the fewest gradients."""
    x, y = batch
    results = {
        cls.__name__: cls(norm="l2", bounds=(0.0, 1.0)).run(digits_cnn, x, y)
        for cls in (DeepFool, FMN, CarliniWagnerL2)
    }
    median = {k: float(np.median(r.norms)) for k, r in results.items()}
    assert median["FMN"] <= median["DeepFool"] and median["CarliniWagnerL2"] <= median["DeepFool"]
    assert 0.3 < median["DeepFool"] < 0.8, median
    gradients = {k: r.gradients for k, r in results.items()}
    assert gradients["DeepFool"] < gradients["FMN"] == 100, gradients
    assert gradients["CarliniWagnerL2"] == 900
    np.testing.assert_array_equal(results["CarliniWagnerL2"].queries, 902)


@pytest.mark.parametrize("cls", [DeepFool, FMN])
def test_eps_only_filters(cls, batch, digits_cnn):
    """With a budget, the result is the unbudgeted one where its norm is within eps, and
    the clean input (norm inf) elsewhere."""
    x, y = batch
    attack = cls(norm="l2", bounds=(0.0, 1.0), steps=20)
    free = attack.run(digits_cnn, x, y)
    bounded = attack.run(digits_cnn, x, y, eps=0.5)
    within = free.norms <= 0.5
    assert 0.2 < within.mean() < 0.8
    np.testing.assert_array_equal(bounded.fooled, within)
    np.testing.assert_array_equal(bounded.norms[within], free.norms[within])
    assert np.all(np.isinf(bounded.norms[~within]))
    np.testing.assert_array_equal(bounded.x_adv[~within], x[~within])


def test_cw_confidence(batch, digits_cnn):
    """Every returned sample is wrong by at least `confidence` in logits, at a larger norm."""
    x, y = batch[0][:32], batch[1][:32]
    plain = CarliniWagnerL2(bounds=(0.0, 1.0), binary_search_steps=3, steps=40)
    sure = plain.replace(confidence=2.0)
    low, high = plain.run(digits_cnn, x, y), sure.run(digits_cnn, x, y)
    logits = _logits(digits_cnn, high.x_adv)
    own = logits[np.arange(len(y)), y]
    logits[np.arange(len(y)), y] = -np.inf
    gap = logits.max(1) - own
    assert high.fooled.mean() > 0.9
    assert gap[high.fooled & (high.norms > 0)].min() >= 2.0 - 1e-4
    both = low.fooled & high.fooled
    assert np.median(high.norms[both]) > np.median(low.norms[both]) + 0.05


def test_no_retracing_across_batches_eps_and_step_size(batch, digits_cnn):
    x, y = batch
    attack = FMN(norm="l2", bounds=(0.0, 1.0), steps=5)
    attack.run(digits_cnn, x[:8], y[:8])
    before = trace_count("attack")
    attack.run(digits_cnn, x[:16], y[:16], eps=0.4)
    attack.replace(step_size=0.5, batch_size=8).run(digits_cnn, x[:16], y[:16])
    assert trace_count("attack") == before


def test_step_size_reaches_the_compiled_attack(batch, digits_cnn):
    x, y = batch
    attack = CarliniWagnerL2(bounds=(0.0, 1.0), binary_search_steps=1, steps=10, initial_const=10.0)
    slow = attack.replace(step_size=0.001).run(digits_cnn, x[:16], y[:16])
    fast = attack.run(digits_cnn, x[:16], y[:16])
    assert slow.fooled.sum() < fast.fooled.sum()


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: CarliniWagnerL2(confidence=-1.0), "confidence"),
        (lambda: CarliniWagnerL2(norm="linf"), "norm"),
        (lambda: DeepFool(candidates=1), "candidates"),
        (lambda: DeepFool(norm="l1"), "norm"),
        (lambda: FMN(steps=0), "steps"),
        (lambda: FMN(gamma_init=1.5), "gamma_init"),
        (lambda: advgrad.get_attack("fmn", targeted=True), "targeted"),
    ],
)
def test_bad_settings_are_named(make, argument):
    with pytest.raises(advgrad.ArgumentError, match=f"`{argument}`"):
        make()
