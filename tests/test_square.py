"""Square (Andriushchenko et al., ECCV 2020): budget and bounds, queries, schedule, strength."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import advgrad
from advgrad._compile import trace_count
from advgrad.attacks import PGD, Square
from advgrad.attacks.square import _Grid, p_schedule

EPS = {"linf": 0.1, "l2": 1.0}
TABULAR_EPS = {"linf": 0.3, "l2": 1.0}


def _norms(delta: np.ndarray, norm: str) -> np.ndarray:
    flat = delta.reshape(len(delta), -1).astype(np.float64)
    return np.linalg.norm(flat, ord=np.inf if norm == "linf" else 2, axis=1)


@pytest.fixture(scope="module")
def batch(digits):
    return digits.x_test[:64], digits.y_test[:64]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_digits_within_budget_and_bounds(norm, batch, digits_cnn):
    x, y = batch
    eps = EPS[norm]
    result = Square(eps=eps, norm=norm, bounds=(0.0, 1.0), queries=100).run(digits_cnn, x, y)
    size = _norms(result.x_adv - x, norm)
    assert size.max() <= eps * (1 + 1e-5)
    if norm == "linf":  # the search lives on the ball's faces (clipped by the bounds)
        assert size.min() == pytest.approx(eps, abs=1e-6)
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    predicted = np.argmax(digits_cnn(result.x_adv, training=False), axis=1)
    np.testing.assert_array_equal(result.fooled, predicted != y)
    assert result.gradients == 0
    assert result.queries.dtype == np.int64
    assert result.queries.min() >= 1 and result.queries.max() <= 100
    assert result.fooled.mean() > {"linf": 0.2, "l2": 0.7}[norm]  # measured: 0.27, 0.81
    assert result.loss_trace.shape == (2,) and result.loss_trace[1] > result.loss_trace[0]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_tabular_per_feature_bounds_and_frozen_input(norm, tabular, tabular_model):
    bounds = tabular.bounds
    x = {k: np.clip(v[:48], *bounds[k]).astype(np.float32) for k, v in tabular.x_test.items()}
    y = tabular.y_test[:48]
    eps = TABULAR_EPS[norm]
    attack = Square(eps=eps, norm=norm, bounds=dict(bounds), queries=60, seed=1)
    result = attack.run(tabular_model, x, y)
    for name, value in x.items():  # both inputs perturbed, each in its own ball and bounds
        adv = result.x_adv[name]
        assert adv.dtype == value.dtype and adv.shape == value.shape
        assert _norms(adv - value, norm).max() <= eps * (1 + 1e-5)
        low, high = (np.asarray(b, np.float32) for b in bounds[name])
        assert np.all(adv >= low) and np.all(adv <= high)
        assert np.any(adv != value)
    frozen = {"measurements": advgrad.Budget(eps, norm, bounds["measurements"]), "errors": None}
    adv = attack(tabular_model, x, y, budget=frozen)
    np.testing.assert_array_equal(adv["errors"], x["errors"])
    assert _norms(adv["measurements"] - x["measurements"], norm).max() <= eps * (1 + 1e-5)


def test_fooled_samples_stop_querying(digits, digits_cnn):
    x, y = digits.x_test[:100], digits.y_test[:100]
    result = Square(eps=0.1, bounds=(0.0, 1.0), queries=300, seed=0).run(digits_cnn, x, y)
    fooled, count = result.fooled, result.queries
    np.testing.assert_array_equal(count[~fooled], 300)  # the whole budget, init included
    assert 0.2 < fooled.mean() < 0.9
    assert np.all(count[fooled] <= 300) and np.median(count[fooled]) < 100
    # eps = 0: nothing moves, every correctly classified sample spends the whole budget.
    still = Square(eps=0.0, bounds=(0.0, 1.0), queries=20).run(digits_cnn, x, y)
    np.testing.assert_array_equal(still.x_adv, x)
    correct = np.argmax(digits_cnn(x, training=False), axis=1) == y
    np.testing.assert_array_equal(still.fooled, ~correct)
    np.testing.assert_array_equal(still.queries[correct], 20)
    np.testing.assert_array_equal(still.queries[~correct], 1)  # fooled at the first query


def test_p_schedule_values():
    values = [float(p_schedule(i, 10_000)) for i in (0, 10, 11, 50, 51, 201, 501, 1001, 2001)]
    assert values == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2, 0.1, 0.05, 0.025, 0.0125])
    late = [float(p_schedule(i, 10_000)) for i in (4001, 6001, 8000, 8001, 9999)]
    assert late == pytest.approx([0.8 / 128, 0.8 / 256, 0.8 / 256, 0.8 / 512, 0.8 / 512])
    # Rescaled to the budget: iteration i of 1000 reads the paper's 10 i.
    assert float(p_schedule(1, 1000)) == pytest.approx(0.8)
    assert float(p_schedule(2, 1000)) == pytest.approx(0.4)
    assert float(p_schedule(500, 1000, p_init=0.5)) == pytest.approx(0.5 / 128)
    # Window sides: 8x8 image, sqrt(p * 64) rounded (L2: odd, >= 3); 1-D: p * features.
    image, flat = _Grid((8, 8, 1)), _Grid((20,))
    sides = [int(image.side(p_schedule(i, 100), l2=False)[0]) for i in (0, 1, 3, 6, 99)]
    assert sides == [7, 4, 3, 2, 1]  # p = 0.8, 0.2, 0.1, 0.05, 0.8 / 512
    assert [int(image.side(p_schedule(i, 100), l2=True)[0]) for i in (0, 2, 99)] == [7, 5, 3]
    assert [int(flat.side(p_schedule(i, 100), l2=False)[1]) for i in (0, 2, 99)] == [16, 4, 1]
    assert int(flat.side(p_schedule(0, 100), l2=False)[0]) == 1


def test_reproducible_and_seeded(batch, digits_cnn):
    x, y = batch
    attack = Square(eps=0.1, norm="l2", bounds=(0.0, 1.0), queries=40, seed=5)
    first, again = attack.run(digits_cnn, x, y), Square(**attack._settings).run(digits_cnn, x, y)
    np.testing.assert_array_equal(first.x_adv, again.x_adv)
    np.testing.assert_array_equal(first.queries, again.queries)
    other = attack.replace(seed=6).run(digits_cnn, x, y)
    assert np.mean(np.any((other.x_adv != first.x_adv).reshape(len(x), -1), axis=1)) > 0.9


def test_no_retracing_across_eps_seed_and_batch(batch, digits_cnn):
    x, y = batch
    Square(eps=0.1, bounds=(0.0, 1.0), queries=5).run(digits_cnn, x, y)
    before = trace_count("attack")
    Square(eps=0.05, bounds=(0.0, 1.0), queries=5, seed=9).run(digits_cnn, x[:10], y[:10])
    Square(eps=0.2, bounds=(0.0, 1.0), queries=5, batch_size=16).run(digits_cnn, x, y)
    assert trace_count("attack") == before


def test_targeted_reaches_targets(batch, digits_cnn):
    x, y = batch
    targets = (y + 1) % 10
    for norm, eps in (("linf", 0.3), ("l2", 2.0)):
        attack = Square(eps=eps, norm=norm, bounds=(0.0, 1.0), queries=200, targeted=True)
        result = attack.run(digits_cnn, x, targets)
        reached = np.argmax(digits_cnn(result.x_adv, training=False), axis=1) == targets
        np.testing.assert_array_equal(result.fooled, reached)
        assert reached.mean() > 0.9, (norm, reached.mean())  # measured: 0.97 for both


def test_strength_close_to_pgd(digits, digits_cnn):
    """Linf eps 0.1 on 200 digits: Square (1000 queries, no gradient) vs PGD-40.

    Measured: Square 0.460 (seeds 0-2: 0.455-0.465), PGD-40 0.465. On the whole test split
    (450) with the default 5000 queries: Square 0.467, PGD-40 0.476.
    """
    x, y = digits.x_test[:200], digits.y_test[:200]
    square = Square(eps=0.1, bounds=(0.0, 1.0), queries=1000).run(digits_cnn, x, y)
    pgd = PGD(eps=0.1, bounds=(0.0, 1.0), steps=40).run(digits_cnn, x, y)
    robust_square, robust_pgd = 1 - square.fooled.mean(), 1 - pgd.fooled.mean()
    assert robust_pgd == pytest.approx(0.465, abs=0.03)
    assert abs(robust_square - robust_pgd) <= 0.03, (robust_square, robust_pgd)


@pytest.mark.parametrize(
    ("settings", "argument"),
    [
        ({"queries": 0}, "queries"),
        ({"queries": -5}, "queries"),
        ({"queries": 2.5}, "queries"),
        ({"queries": True}, "queries"),
        ({"p_init": 0.0}, "p_init"),
        ({"p_init": 1.5}, "p_init"),
        ({"p_init": -0.1}, "p_init"),
        ({"p_init": math.nan}, "p_init"),
        ({"norm": "l1"}, "norm"),
        ({"loss": "no-such-loss"}, "loss"),
    ],
)
def test_bad_settings_raise_named_errors(settings, argument):
    with pytest.raises(advgrad.ArgumentError) as error:
        Square(**settings)
    assert error.value.argument == argument


def test_l1_budget_refused_before_work(batch, digits_cnn):
    x, y = batch
    before = trace_count("attack")
    with pytest.raises(advgrad.ArgumentError, match="norm"):
        Square(eps=0.1).run(digits_cnn, x, y, budget=advgrad.Budget(1.0, "l1"))
    assert trace_count("attack") == before


def test_registry_and_config():
    attack = advgrad.get_attack("square", eps=0.1, queries=10, p_init=0.5)
    assert isinstance(attack, Square) and attack.loss == "margin"
    assert advgrad.attacks.from_config(attack.get_config()) == attack
    assert attack.get_config()["queries"] == 10


def test_other_ranks_search_the_flattened_features(digits):
    """A rank-3 input (no channel axis) is searched as a 1-D image of its 64 features."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(), keras.layers.Dense(10)])
    x, y = digits.x_test[:32, :, :, 0], digits.y_test[:32]
    for norm, eps in (("linf", 0.1), ("l2", 1.0)):
        result = Square(eps=eps, norm=norm, bounds=(0.0, 1.0), queries=30).run(model, x, y)
        assert result.x_adv.shape == x.shape
        assert _norms(result.x_adv - x, norm).max() <= eps * (1 + 1e-5)
        assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
        assert np.all(np.any((result.x_adv != x).reshape(32, -1), axis=1))
