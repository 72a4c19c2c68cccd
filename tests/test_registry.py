"""The attack registry: names, configs that round-trip, user attacks and entry points."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import _registry
import invariants
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad import steps
from advgrad._validation import check_number
from advgrad.attacks import BIM, IterativeAttack, registry
from advgrad.attacks.base import setting
from advgrad.norms import Norm

BUILTIN = ["bim", "fgsm", "mifgsm", "pgd"]


# `digits`, `digits_cnn`, `tabular` and `clean_registry` come from conftest.py.


@pytest.fixture(scope="module")
def digits_batch(digits):
    """The first 16 digits test images and their labels."""
    return digits.x_test[:16], digits.y_test[:16]


def scale(factor: float) -> steps.StepRule:
    """A user's stateless step rule: multiply the direction by `factor`."""

    def init(grad):
        return ()

    def update(grad, state):
        return grad * tf.constant(factor, grad.dtype), state

    return steps.StepRule(init, update)


class ScaledSign(IterativeAttack):
    """A user's attack: the norm's steepest-ascent direction scaled by `factor`."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"steps": 5, "factor": 0.5}
    CHECKS: ClassVar[dict[str, Any]] = {
        "factor": setting(check_number, "factor", low=0.0, low_open=True)
    }
    FIXED: ClassVar[dict[str, Any]] = {"random_start": False, "restarts": 1}

    def step_rule(self, norm: Norm) -> steps.StepRule:
        return steps.chain(steps.normalize(norm), scale(self.factor))


# ------------------------------------------------------------------------------- lookup


def test_list_attacks():
    names = advgrad.list_attacks()
    assert names == sorted(names)
    assert set(BUILTIN) <= set(names)


@pytest.mark.parametrize("name", BUILTIN)
def test_get_attack(name):
    attack = advgrad.get_attack(name.upper(), eps=0.2)
    assert attack.name == name and attack.eps == 0.2
    assert isinstance(attack, registry._REGISTRY[name])


@pytest.mark.parametrize("name", ["nope", "", None, 3])
def test_unknown_name(name):
    with pytest.raises(ValueError, match="`name`") as info:
        advgrad.get_attack(name)
    assert "pgd" in str(info.value)  # the error lists what exists


def test_invalid_setting_through_registry():
    with pytest.raises(ValueError, match="`steps`"):
        advgrad.get_attack("pgd", steps=0)


def test_from_config_needs_a_name():
    with pytest.raises(ValueError, match="`config`"):
        advgrad.attacks.from_config({"eps": 0.1})


# ---------------------------------------------------------------------- config round-trip


def _settings(name: str) -> dict[str, Any]:
    defaults = registry._REGISTRY[name].DEFAULTS
    wanted = {
        "eps": 0.2,
        "norm": "l2",
        "bounds": (0.0, 1.0),
        "seed": 7,
        "steps": 3,
        "step_size": 0.1,
        "restarts": 2,
        "decay": 0.5,
    }
    return {k: v for k, v in wanted.items() if k in defaults}


@pytest.mark.parametrize("name", BUILTIN)
def test_config_round_trip(name, digits_cnn, digits_batch):
    attack = advgrad.get_attack(name, **_settings(name))
    config = attack.get_config()
    assert config["name"] == name
    assert set(config) == {"name", *type(attack).DEFAULTS}
    via_json = json.loads(json.dumps(config))  # plain data, as a YAML/JSON file holds it
    for rebuilt in (
        advgrad.attacks.from_config(via_json),
        type(attack).from_config(config),
        advgrad.get_attack(name, **{k: v for k, v in config.items() if k != "name"}),
    ):
        assert type(rebuilt) is type(attack)
        assert rebuilt.get_config() == config
        assert rebuilt == attack
        np.testing.assert_array_equal(
            rebuilt(digits_cnn, *digits_batch), attack(digits_cnn, *digits_batch)
        )


def test_config_round_trip_with_budget_and_per_feature_bounds(tabular):
    budget = {
        "measurements": advgrad.Budget(0.3, "l1", bounds=tabular.bounds["measurements"]),
        "errors": None,
    }
    attack = advgrad.attacks.PGD(budget=budget, bounds=dict(tabular.bounds), steps=3)
    config = json.loads(json.dumps(attack.get_config()))
    rebuilt = advgrad.attacks.from_config(config)
    assert rebuilt.get_config() == attack.get_config()
    assert rebuilt.budget["measurements"] == budget["measurements"]
    assert rebuilt.budget["errors"] is None


# ---------------------------------------------------------------------------- user attack


def test_register_user_attack(clean_registry, digits_cnn, digits_batch):
    registered = advgrad.register_attack("scaled-sign")(ScaledSign)
    assert registered is ScaledSign and ScaledSign.name == "scaled-sign"
    assert "scaled-sign" in advgrad.list_attacks()
    x, y = digits_batch
    x_before = x.copy()
    for norm, eps in (("linf", 0.1), ("l2", 1.0), ("l1", 4.0)):
        attack = advgrad.get_attack("scaled-sign", eps=eps, norm=norm, bounds=(0.0, 1.0))
        assert attack.factor == 0.5
        x_adv = attack(digits_cnn, x, y)
        np.testing.assert_array_equal(x, x_before)
        invariants.assert_within(x_adv, x, eps=eps, norm=norm, bounds=(0.0, 1.0))
        np.testing.assert_array_equal(attack(digits_cnn, x, y), x_adv)  # deterministic
        np.testing.assert_array_equal(attack(digits_cnn, x, y, eps=0.0), x)
        # Its own rule really runs: half the direction is BIM with half the step size.
        step = attack.relative_step() * eps
        bim = BIM(eps=eps, norm=norm, bounds=(0.0, 1.0), steps=5, step_size=step / 2)
        np.testing.assert_array_equal(x_adv, bim(digits_cnn, x, y))
    rebuilt = advgrad.attacks.from_config(attack.get_config())
    assert isinstance(rebuilt, ScaledSign) and rebuilt.get_config() == attack.get_config()
    with pytest.raises(ValueError, match="`factor`"):
        ScaledSign(factor=0.0)


# --------------------------------------------------------------------------- entry points


class _FakeEntryPoint:
    """What `importlib.metadata.entry_points(group=...)` yields: a name and `load()`."""

    def __init__(self, name: str, target: Any):
        self.name = name
        self.group = registry.ENTRY_POINT_GROUP
        self.loads = 0
        self._target = target

    def load(self) -> Any:
        self.loads += 1
        return self._target


def test_entry_point_discovery(clean_registry, monkeypatch, digits_cnn, digits_batch):
    class ThirdParty(IterativeAttack):
        DEFAULTS: ClassVar[dict[str, Any]] = {"steps": 2}

    class Impostor(IterativeAttack):  # an entry point may not replace a built-in attack
        pass

    entries = [_FakeEntryPoint("third-party", ThirdParty), _FakeEntryPoint("pgd", Impostor)]
    groups = []

    def entry_points(**params):
        groups.append(params.get("group"))
        return entries if params.get("group") == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)

    assert "third-party" in advgrad.list_attacks()
    attack = advgrad.get_attack("third-party", eps=0.1, bounds=(0.0, 1.0))
    assert isinstance(attack, ThirdParty) and attack.name == "third-party"
    x, y = digits_batch
    x_adv = attack(digits_cnn, x, y)
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6 and np.any(x_adv != x)
    assert advgrad.get_attack("pgd").__class__ is advgrad.attacks.PGD
    # Entry points are read once, not on every lookup.
    advgrad.list_attacks()
    assert groups == [registry.ENTRY_POINT_GROUP]
    assert [e.loads for e in entries] == [1, 1]


def test_entry_point_module_registers_itself(clean_registry, monkeypatch):
    """An entry point may name a module whose import registers its attacks."""

    def load_module():
        @advgrad.register_attack("from-module")
        class FromModule(IterativeAttack):
            pass

        return object()  # the module: not a class, so nothing else is registered

    class _Module(_FakeEntryPoint):
        def load(self):
            return load_module()

    monkeypatch.setattr(
        registry.metadata, "entry_points", lambda **params: [_Module("my-module", None)]
    )
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    names = advgrad.list_attacks()
    assert "from-module" in names and "my-module" not in names


def test_clean_registry_undoes_registrations_and_entry_points():
    """What `clean_registry` does, undone inside the test: a user attack and an entry
    point's attack are listed, then gone, and the entry points will be read again."""

    class ThirdParty(IterativeAttack):
        pass

    before, loaded = advgrad.list_attacks(), registry._entry_points_loaded
    with pytest.MonkeyPatch.context() as mp:
        _registry.isolate(mp)
        advgrad.register_attack("scaled-sign")(ScaledSign)
        entries = [_FakeEntryPoint("third-party", ThirdParty)]
        mp.setattr(registry.metadata, "entry_points", lambda **params: entries)
        mp.setattr(registry, "_entry_points_loaded", False)
        assert {"scaled-sign", "third-party"} <= set(advgrad.list_attacks())
    assert advgrad.list_attacks() == before
    assert registry._entry_points_loaded == loaded
