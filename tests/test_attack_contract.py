"""The contract every registered attack keeps, for every norm and every kind of input.

Each case runs one attack on real data through a trained model and checks the invariants:
the output lies in the norm ball and in the bounds, keeps the caller's structure, dtypes and
shapes, leaves the caller's arrays alone, returns frozen inputs exactly, is the identity for
eps=0 and is deterministic for a fixed seed. Targeted attacks reach an easy target.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import keras
import numpy as np
import pytest

import advgrad
from advgrad.attacks import registry

# APGD-T on the 2-class tabular model falls back to the targeted margin loss, and says so.
pytestmark = pytest.mark.filterwarnings("ignore:APGDTargeted. the targeted DLR loss needs")

NORMS = ("linf", "l2", "l1")
KINDS = ("single", "list", "dict-frozen", "per-feature-bounds")
# Radii per norm: digits pixels lie in [0, 1] (64 of them); tabular features are standardized.
EPS = {
    "digits": {"linf": 0.1, "l2": 1.0, "l1": 4.0},
    "tabular": {"linf": 0.3, "l2": 1.0, "l1": 2.0},
}
BATCH = 32


def _builtin_attacks() -> list[str]:
    """Every registered attack, except those other test modules register for themselves."""
    names = []
    for name in advgrad.list_attacks():
        module = registry.registered_class(name).__module__
        if module.rsplit(".", 1)[-1].startswith("test_"):
            continue
        names.append(name)
    return names


ATTACKS = _builtin_attacks()

# Per-attack settings for the contract runs, over the shared ones below (e.g. few queries
# for a score-based attack). An attack's own test module tests its defaults.
CONTRACT_SETTINGS: dict[str, dict[str, Any]] = {
    "eot": {"attack": "pgd", "samples": 2},
    "square": {"queries": 50},
    "fab-t": {"steps": 5, "restarts": 2, "n_target_classes": 2},
    "cw-l2": {"binary_search_steps": 3, "initial_const": 1.0},
    "deepfool": {"candidates": 3},
}


def make_attack(name: str, **settings: Any):
    """`get_attack(name, ...)` with a seed and few steps, dropping settings it doesn't take."""
    defaults = registry.registered_class(name).DEFAULTS
    settings = {"steps": 5, "restarts": 2, "seed": 3, **CONTRACT_SETTINGS.get(name, {}), **settings}
    return advgrad.get_attack(name, **{k: v for k, v in settings.items() if k in defaults})


# ---------------------------------------------------------------------------------- models


# `digits`, `digits_cnn`, `tabular` and `tabular_model` come from conftest.py.


@pytest.fixture(scope="module")
def digits_batch(digits):
    """The first BATCH digits test images and labels."""
    return digits.x_test[:BATCH], digits.y_test[:BATCH]


@pytest.fixture(scope="module")
def tabular_batch(tabular):
    """Tabular test inputs clipped into the training-derived bounds, labels and bounds."""
    x = {
        k: np.clip(v[:BATCH], *tabular.bounds[k]).astype(np.float32)
        for k, v in tabular.x_test.items()
    }
    return x, tabular.y_test[:BATCH], tabular.bounds


@pytest.fixture(scope="module")
def halves_model(digits):
    """A two-input (list) model: the top and bottom halves of an 8x8 digit, 4x8x1 each."""
    keras.utils.set_random_seed(0)
    top = keras.Input((4, 8, 1), name="top")
    bottom = keras.Input((4, 8, 1), name="bottom")
    h = keras.layers.Concatenate(axis=1)([top, bottom])
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
    logits = keras.layers.Dense(10)(h)
    model = keras.Model([top, bottom], logits)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(split_halves(digits.x_train), digits.y_train, epochs=3, batch_size=32, verbose=0)
    accuracy = model.evaluate(split_halves(digits.x_test), digits.y_test, verbose=0)[1]
    assert accuracy > 0.8  # a real model, so the attacks have real gradients
    return model


def split_halves(x: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(x[:, :4]), np.ascontiguousarray(x[:, 4:])]


@dataclasses.dataclass
class Case:
    """One kind of input: model, inputs, labels, settings and the per-input threat model."""

    model: Any
    x: Any
    y: np.ndarray
    settings: dict[str, Any]  # eps/norm/bounds settings for the attack
    call: dict[str, Any]  # keyword arguments of the call (budget)
    eps: dict[str, float]  # per input name (list: index) -> radius; missing = frozen
    bounds: dict[str, tuple[Any, Any]]


@pytest.fixture
def case(request, digits_batch, tabular_batch) -> Case:
    kind, norm = request.param
    if kind == "single":
        x, y = digits_batch
        eps = EPS["digits"][norm]
        return Case(
            request.getfixturevalue("digits_cnn"),
            x,
            y,
            {"eps": eps, "norm": norm, "bounds": (0.0, 1.0)},
            {},
            {"x": eps},
            {"x": (0.0, 1.0)},
        )
    if kind == "list":
        x, y = digits_batch
        eps = EPS["digits"][norm]
        return Case(
            request.getfixturevalue("halves_model"),
            split_halves(x),
            y,
            {"eps": eps, "norm": norm, "bounds": (0.0, 1.0)},
            {},
            {0: eps, 1: eps},
            {0: (0.0, 1.0), 1: (0.0, 1.0)},
        )
    x, y, bounds = tabular_batch
    eps = EPS["tabular"][norm]
    model = request.getfixturevalue("tabular_model")
    if kind == "dict-frozen":
        budget = {
            "measurements": advgrad.Budget(eps, norm, bounds=bounds["measurements"]),
            "errors": None,
        }
        return Case(
            model,
            x,
            y,
            {"norm": norm},
            {"budget": budget},
            {"measurements": eps},
            {"measurements": bounds["measurements"]},
        )
    assert kind == "per-feature-bounds"
    return Case(
        model,
        x,
        y,
        {"eps": eps, "norm": norm, "bounds": dict(bounds)},
        {},
        {"measurements": eps, "errors": eps},
        dict(bounds),
    )


def _leaves(x: Any) -> dict[Any, np.ndarray]:
    if isinstance(x, dict):
        return dict(x)
    if isinstance(x, list):
        return dict(enumerate(x))
    return {"x": x}


def _norm(delta: np.ndarray, norm: str) -> np.ndarray:
    flat = delta.reshape(len(delta), -1).astype(np.float64)
    order = {"linf": np.inf, "l2": 2, "l1": 1}[norm]
    return np.linalg.norm(flat, ord=order, axis=1)


def _assert_same_structure(x_adv: Any, x: Any) -> None:
    assert type(x_adv) is type(x)
    if isinstance(x, dict):
        assert list(x_adv) == list(x)
    if isinstance(x, list):
        assert len(x_adv) == len(x)
    for key, value in _leaves(x).items():
        out = _leaves(x_adv)[key]
        assert isinstance(out, np.ndarray), key
        assert out.dtype == value.dtype and out.shape == value.shape, key


PARAMS = [(kind, norm) for kind in KINDS for norm in NORMS]
IDS = [f"{kind}-{norm}" for kind, norm in PARAMS]


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("case", PARAMS, ids=IDS, indirect=True)
def test_contract(name: str, case: Case):
    norm = case.settings["norm"]
    if norm not in registry.registered_class(name).NORMS:
        with pytest.raises(advgrad.ArgumentError, match="norm"):
            make_attack(name, **case.settings)
        return
    attack = make_attack(name, **case.settings)
    x_before = copy.deepcopy(case.x)
    y_before = case.y.copy()

    x_adv = attack(case.model, case.x, case.y, **case.call)

    # The caller's arrays are unchanged.
    for key, value in _leaves(x_before).items():
        np.testing.assert_array_equal(_leaves(case.x)[key], value)
    np.testing.assert_array_equal(case.y, y_before)
    # Same structure, dtypes and shapes.
    _assert_same_structure(x_adv, case.x)

    adv, clean = _leaves(x_adv), _leaves(case.x)
    for key in clean:
        if key not in case.eps:  # frozen: returned exactly
            np.testing.assert_array_equal(adv[key], clean[key])
            continue
        eps = case.eps[key]
        size = _norm(adv[key] - clean[key], norm)
        tolerance = 1e-6 if norm == "linf" else 1e-5 * eps + 1e-6
        assert size.max() <= eps + tolerance, (key, size.max(), eps)
        low, high = case.bounds[key]
        assert np.all(adv[key] >= np.asarray(low, np.float32)), key
        assert np.all(adv[key] <= np.asarray(high, np.float32)), key
    # The attack does something: some perturbed input moved.
    assert any(np.any(adv[k] != clean[k]) for k in case.eps)

    # Same seed, same output: the same object twice, and an equal fresh object.
    again = attack(case.model, case.x, case.y, **case.call)
    fresh = make_attack(name, **case.settings)(case.model, case.x, case.y, **case.call)
    for key in clean:
        np.testing.assert_array_equal(_leaves(again)[key], adv[key])
        np.testing.assert_array_equal(_leaves(fresh)[key], adv[key])

    # eps = 0 returns the input exactly.
    if "budget" in case.call:
        zero = {
            k: None if v is None else v.replace(eps=0.0) for k, v in case.call["budget"].items()
        }
        unchanged = attack(case.model, case.x, case.y, budget=zero)
    else:
        unchanged = attack(case.model, case.x, case.y, eps=0.0)
    _assert_same_structure(unchanged, case.x)
    for key, value in clean.items():
        np.testing.assert_array_equal(_leaves(unchanged)[key], value)


def _is_iterative(attack) -> bool:
    return getattr(attack, "steps", 1) > 1


def _target_loss(model, x, targets) -> float:
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return float(loss(targets, model(x, training=False)))


TARGETED_EPS = {"linf": 0.5, "l2": 3.0, "l1": 10.0}


# What each attack declares: the norms it attacks in (`NORMS`), and whether `targeted` is a
# setting (APGD-T, FAB-T and the minimal-norm attacks pick their own targets, or none).
TARGETED = [
    (name, norm)
    for name in ATTACKS
    for norm in NORMS
    if norm in registry.registered_class(name).NORMS
    and "targeted" in registry.registered_class(name).DEFAULTS
]


@pytest.mark.parametrize(("name", "norm"), TARGETED, ids=[f"{n}-{m}" for n, m in TARGETED])
def test_targeted_reaches_targets(name: str, norm: str, digits, digits_cnn):
    x, y = digits.x_test[:64], digits.y_test[:64]
    targets = (y + 1) % 10
    settings = {"eps": TARGETED_EPS[norm], "norm": norm, "bounds": (0.0, 1.0), "targeted": True}
    if norm == "l1":  # the sparse L1 direction moves a few pixels per step
        settings["steps"] = 20
    attack = make_attack(name, **settings)
    result = attack.run(digits_cnn, x, targets)
    reached = np.argmax(digits_cnn(result.x_adv, training=False), axis=1) == targets
    np.testing.assert_array_equal(result.fooled, reached)  # `fooled` means "reached" here
    assert _target_loss(digits_cnn, result.x_adv, targets) < _target_loss(digits_cnn, x, targets)
    if _is_iterative(attack):
        assert reached.mean() > 0.9, (name, norm, reached.mean())


class _Careless(advgrad.attacks.Attack):
    """A family whose chunk function breaks the contract: NaN rows, rows outside the ball,
    and honest rows, claiming every sample fooled."""

    def attack_chunks(self, plan, *, judge):
        def attack_chunk(chunk):
            (x,) = chunk.xs
            row = np.arange(chunk.start, chunk.stop)[:, None, None, None] % 3
            shifted = np.where(row == 0, np.nan, np.where(row == 1, x + 0.5, x))
            adv = np.clip(shifted, 0.0, 1.0).astype(x.dtype.as_numpy_dtype)
            ones = np.ones(chunk.size, np.int64)
            return advgrad.attacks.ChunkResult([adv], np.ones(chunk.size, bool), ones)

        return attack_chunk


def test_the_driver_enforces_the_contract_for_every_family(digits, digits_cnn):
    """`Attack.execute` checks what a family returns: a non-finite row or a row outside the
    budget gets the clean input back and is not fooled (with a warning naming the bug)."""
    x, y = digits.x_test[:9], digits.y_test[:9]
    attack = _Careless(eps=0.1, bounds=(0.0, 1.0), batch_size=4)
    with pytest.warns(RuntimeWarning, match="outside their budget or bounds"):
        result = attack.run(digits_cnn, x, y)
    honest = np.arange(9) % 3 == 2
    np.testing.assert_array_equal(result.x_adv[~honest], x[~honest])
    np.testing.assert_array_equal(result.fooled, honest)
    np.testing.assert_array_equal(result.queries, np.ones(9))
    assert result.gradients == 1 and result.loss_trace is None and result.norms is None
