"""Named suites: their members per norm, settings passed on, and the cascade they run as."""

from __future__ import annotations

import pytest

import advgrad
from advgrad.attacks import suites
from advgrad.config import parse_config
from advgrad.evaluation import evaluate


def test_members_in_cascade_order_per_norm():
    assert suites.list_suites() == ["adaptive", "fast", "standard"]
    names = lambda name, **kw: [a.name for a in advgrad.get_suite(name, **kw)]  # noqa: E731
    assert names("standard") == ["apgd", "apgd-t", "fab-t", "square"]
    assert names("standard", norm="l2") == ["apgd", "apgd-t", "fab-t", "square"]
    assert names("standard", norm="l1") == ["apgd", "apgd-t"]  # FAB-T, Square: Linf/L2 only
    assert names("fast") == ["apgd", "apgd-t"]
    assert advgrad.get_suite("fast")[0].loss == "ce"


def test_settings_reach_the_members_that_take_them():
    attacks = advgrad.get_suite(
        "standard", eps=0.2, norm="l2", bounds=(0.0, 1.0), seed=4, steps=7, queries=30
    )
    for attack in attacks:
        assert attack.eps == 0.2 and attack.norm == "l2" and attack.seed == 4
        assert tuple(attack.bounds) == (0.0, 1.0)
    apgd, apgd_t, fab_t, square = attacks
    assert apgd.steps == apgd_t.steps == fab_t.steps == 7 and square.queries == 30


@pytest.mark.parametrize(
    "name, settings, argument",
    [
        ("standrd", {}, "suite"),
        ("standard", {"norm": "l3"}, "norm"),
        ("fast", {"steps": 0}, "steps"),
    ],
)
def test_bad_input_is_named(name, settings, argument):
    with pytest.raises(advgrad.ArgumentError) as info:
        advgrad.get_suite(name, **settings)
    assert info.value.argument == argument


def test_evaluate_runs_a_named_suite_as_a_cascade(digits, digits_cnn):
    x, y = digits.x_test[:24], digits.y_test[:24]
    small = dict(bounds=(0.0, 1.0), steps=5, queries=40, n_target_classes=2, seed=1)
    report = evaluate(
        digits_cnn,
        (x, y),
        suite=advgrad.get_suite("standard", **small),
        eps=[0.05],
        individual=False,
        sanity=False,
    )
    assert report.attacks == ["apgd", "apgd-t", "fab-t", "square"]
    assert report.per_attack == {}  # the cascade alone: each attack on the samples left
    assert report.robust_accuracy[0.05] < report.clean_accuracy
    # a suite name: its members with default settings, and the cascade by default
    with pytest.warns(UserWarning, match="unbounded"):
        named = evaluate(digits_cnn, (x[:4], y[:4]), suite="fast", eps=[0.0], sanity=False)
    assert named.attacks == ["apgd", "apgd-t"] and named.individual is False
    assert named.robust_accuracy[0.0] == named.clean_accuracy
    with pytest.raises(advgrad.ArgumentError, match="suite name among"):
        evaluate(digits_cnn, (x, y), suite="standrd", eps=[0.1], sanity=False)


def test_yaml_suite_name_expands_to_its_members():
    document = {"model": "digits-cnn", "data": {"name": "digits"}, "suite": "standard", "eps": 0.1}
    config = parse_config(document)
    assert [a.name for a in config.suite] == ["apgd", "apgd-t", "fab-t", "square"]
    assert config.individual is False
    config = parse_config({**document, "norm": "l1", "individual": True})
    assert [a.name for a in config.suite] == ["apgd", "apgd-t"] and config.individual is True
    assert parse_config({**document, "suite": ["fgsm"]}).individual is True
    with pytest.raises(ValueError, match="did you mean 'standard'"):
        parse_config({**document, "suite": "standrd"})
    with pytest.raises(ValueError, match="individual: expected"):
        parse_config({**document, "individual": "yes"})


def test_standard_suite_is_at_least_as_strong_as_each_member(digits, digits_cnn):
    """The cascade's worst case is never above any member run alone (same seeds)."""
    x, y = digits.x_test[:32], digits.y_test[:32]
    small = dict(bounds=(0.0, 1.0), steps=5, queries=40, n_target_classes=2, seed=1)
    report = evaluate(
        digits_cnn,
        (x, y),
        suite=advgrad.get_suite("standard", **small),
        eps=[0.03],
        individual=True,
        sanity=False,
    )
    worst = report.robust_accuracy[0.03]
    assert all(worst <= row[0.03] for row in report.per_attack.values())
    assert worst < report.clean_accuracy
