"""One set of argument checks: one rule per concept, the same error everywhere."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import advgrad
from advgrad._validation import (
    ArgumentError,
    ArgumentTypeError,
    check_bool,
    check_eps,
    check_int,
    check_number,
    describe,
    invalid,
)


@pytest.mark.parametrize("eps", [math.inf, -math.inf, math.nan, -0.1, True, "0.1"])
def test_eps_rule_is_the_same_for_attacks_and_budgets(eps):
    """eps is a finite number >= 0 everywhere; an infinite radius is refused up front."""
    with pytest.raises(ArgumentError) as attack_error:
        advgrad.attacks.PGD(eps=eps)
    with pytest.raises(ArgumentError) as budget_error:
        advgrad.Budget(eps=eps)
    with pytest.raises(ArgumentError) as override_error:
        advgrad.attacks.PGD(eps=0.1).budgets(["x"], eps=eps)
    for error in (attack_error.value, budget_error.value, override_error.value):
        assert error.argument == "eps"
        assert error.expected == "a finite number >= 0"


def test_eps_rule_for_evaluate():
    ds = advgrad.data.digits()
    model = advgrad.zoo.load("digits-cnn")
    with pytest.raises(ArgumentError, match="a finite number >= 0") as error:
        advgrad.evaluate(model, ds.test, suite=["fgsm"], eps=[0.1, math.inf])
    assert error.value.argument == "eps"


@pytest.mark.parametrize("value", [True, 1.0, 0, -3, "8"])
def test_ints_are_integral_never_bools(value):
    with pytest.raises(ArgumentError) as error:
        check_int("coordinates", value, low=1)
    assert error.value.argument == "coordinates"


def test_check_gradients_refuses_a_bool_for_coordinates():
    model = advgrad.zoo.load("digits-mlp")
    ds = advgrad.data.digits(flat=True)
    with pytest.raises(ArgumentError, match="coordinates"):
        advgrad.check_gradients(model, ds.x_test[:2], ds.y_test[:2], coordinates=True)


def test_accepted_values_come_back_as_plain_python():
    assert check_int("steps", np.int64(5), low=1) == 5 and type(check_int("n", 5)) is int
    assert check_number("decay", np.float32(0.5), low=0) == 0.5
    assert check_eps(0) == 0.0 and check_bool("flag", np.bool_(True)) is True
    assert check_number("x", math.inf, finite=False) == math.inf
    with pytest.raises(ArgumentError, match="> 0"):
        check_number("step_size", 0.0, low=0.0, low_open=True)
    with pytest.raises(ArgumentError, match="<= 1"):
        check_number("rho", 1.5, low=0.0, high=1.0)
    with pytest.raises(ArgumentError):
        check_bool("progress", 1)


def test_structured_error_carries_its_parts_and_pickles():
    error = invalid("steps", "an int >= 1", 0)
    assert type(error) is ArgumentError and isinstance(error, ValueError)
    assert (error.argument, error.expected, error.received) == ("steps", "an int >= 1", "0")
    assert error.reason == "expected an int >= 1, received steps=0."
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ArgumentError and str(again) == str(error)
    # A TypeError is asked for: an ArgumentTypeError, caught as either TypeError or ValueError.
    for cls in (TypeError, ArgumentTypeError):
        assert type(invalid("model", "a callable", 3, cls=cls)) is ArgumentTypeError
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ArgumentError)
    assert type(invalid("model", "a callable", 3, cls=ValueError)) is ArgumentError


def test_describe_never_builds_a_whole_large_value():
    nested = [[list(range(10_000))] * 1_000] * 1_000  # repr would be gigabytes
    text = describe(nested)
    assert len(text) <= 80 and text.startswith("[[[")
    assert describe(np.zeros((3, 4), np.float32)) == "ndarray(shape=(3, 4), dtype=float32)"


def test_one_seed_rule_shared_by_evaluate_and_configs():
    """Seeds are ints in [0, 2**63): evaluate, the attacks and every config say so alike."""
    from advgrad._validation import SEED_LIMIT, check_seed
    from advgrad.config import ConfigError, parse_config

    assert SEED_LIMIT == 2**63 and check_seed(SEED_LIMIT - 1) == SEED_LIMIT - 1
    for seed in (-1, SEED_LIMIT, 2**64, True, 1.0):
        with pytest.raises(ArgumentError) as info:
            check_seed(seed)
        assert info.value.expected == "an int in [0, 2**63)"
    document = {"model": "digits-cnn", "data": {"name": "digits"}, "suite": "fgsm", "eps": 0.1}
    with pytest.raises(ConfigError) as info:
        parse_config({**document, "seed": 2**64})
    assert info.value.problems == [f"seed: expected an int in [0, 2**63), received {2**64}"]
