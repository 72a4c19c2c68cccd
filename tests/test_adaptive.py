"""The adaptive suite: as strong as standard where it matters, its record, its determinism,
its resume, and the gradient-masked model still broken.

On the digits CNN (the first 32 test images, Linf eps 0.1, seed 0) and it behind a
zero-gradient quantiser. The panel over real models is `benchmarks/strength.py --panel only`.
"""

from __future__ import annotations

import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad.evaluation import evaluate
from advgrad.evaluation.adaptive import NEAR, STALLED
from advgrad.evaluation.cascade import ROBUST, Runner

N = 32
EPS = 0.1


@pytest.fixture(scope="module")
def subset(digits):
    return np.asarray(digits.x_test[:N]), np.asarray(digits.y_test[:N])


def _run(model, data, suite, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate(model, data, suite=suite, eps=EPS, sanity=False, **kwargs)


def _adaptive(**settings):
    return advgrad.get_suite("adaptive", eps=EPS, bounds=(0.0, 1.0), seed=0, **settings)


def _cost(report) -> int:
    return sum(report.gradients.values()) + sum(report.queries.values())


@pytest.fixture(scope="module")
def adaptive_report(digits_cnn, subset):
    return _run(digits_cnn, subset, _adaptive(), batch_size=16)


def test_as_strong_as_standard_at_a_fraction_of_its_cost(digits_cnn, subset, adaptive_report):
    standard = advgrad.get_suite(
        "standard", eps=EPS, bounds=(0.0, 1.0), seed=0, steps=50, queries=1000
    )
    reference = _run(digits_cnn, subset, standard, individual=False, batch_size=16)
    ours = np.asarray(adaptive_report.outcomes[EPS]) == ROBUST
    theirs = np.asarray(reference.outcomes[EPS]) == ROBUST
    assert int(np.sum(ours & ~theirs)) <= 1  # robust here, broken by standard
    # standard here at half its steps and a fifth of its queries; against the full suite:
    # the panel (benchmarks/strength.py --panel only)
    assert _cost(adaptive_report) <= 0.25 * _cost(reference)


def test_the_record_says_what_each_member_spent_on_each_sample_and_why(adaptive_report):
    report = adaptive_report
    assert [c["adaptive"]["rule"] for c in report.suite] == ["all", "near", "stalled"]
    assert not report.individual
    key = repr(EPS)
    first = report.suite[0]["adaptive"]["eps"][key]
    clean = np.array([np.nan if v is None else v for v in first["margin_clean"]])
    after = np.array([np.nan if v is None else v for v in first["margin_first"]])
    correct = np.asarray(report.outcomes[EPS]) >= ROBUST  # robust or fooled by an attack
    assert np.all(np.isfinite(clean) == correct) and np.all(clean[correct] > 0)
    for label, entry in zip(report.attacks, report.suite, strict=True):
        record = entry["adaptive"]["eps"][key]
        decision = np.asarray(record["decision"])
        queries = np.asarray(record["queries"])
        assert len(decision) == report.n_samples
        # exactly the queries the report counts, and only on the samples it ran on
        assert int(queries.sum()) == report.queries[label]
        assert np.all((queries > 0) == (decision == 1))
        assert np.all(np.asarray(record["gradients"]) <= queries)
    apgd = np.asarray(report.suite[0]["adaptive"]["eps"][key]["decision"])
    assert np.array_equal(apgd == 1, correct)  # the first stage: every clean-correct sample
    near = np.asarray(report.suite[1]["adaptive"]["eps"][key]["decision"])
    stopped = near == 2
    assert stopped.any() and (near == 1).any()
    # stopped early: still robust, and APGD-CE left them far (>= NEAR of the clean margin)
    assert np.all(np.asarray(report.outcomes[EPS])[stopped] == ROBUST)
    assert np.all(after[stopped] / clean[stopped] >= NEAR)
    square = np.asarray(report.suite[2]["adaptive"]["eps"][key]["decision"])
    informative = square == 3
    assert np.all(after[informative] / clean[informative] < STALLED)
    assert first["masked_batches"] == []  # the digits CNN's gradients are informative


def test_deterministic_for_a_seed(digits_cnn, subset, adaptive_report):
    again = _run(digits_cnn, subset, _adaptive(), batch_size=16)
    assert np.array_equal(again.outcomes[EPS], adaptive_report.outcomes[EPS])
    assert again.suite == adaptive_report.suite
    assert again.gradients == adaptive_report.gradients
    assert again.queries == adaptive_report.queries


def test_named_suite_and_get_suite_run_alike(digits_cnn, subset, adaptive_report):
    suite = [a.replace(bounds=(0.0, 1.0)) for a in advgrad.get_suite("adaptive")]
    rules = advgrad.get_suite("adaptive").rules
    again = _run(digits_cnn, subset, advgrad.attacks.Suite(suite, "adaptive", rules), batch_size=16)
    assert np.array_equal(again.outcomes[EPS], adaptive_report.outcomes[EPS])
    with pytest.raises(ValueError, match="argument `individual`"):
        _run(digits_cnn, subset, _adaptive(), individual=True)


def test_a_killed_run_resumes_to_the_uninterrupted_record(
    digits_cnn, subset, adaptive_report, tmp_path, monkeypatch
):
    state = tmp_path / "state.json"
    original = Runner.run_batch
    calls = []

    def dies_on_the_second_batch(self, tally, batch, *args, **kwargs):
        calls.append(batch)
        if batch == 1:
            raise KeyboardInterrupt
        return original(self, tally, batch, *args, **kwargs)

    monkeypatch.setattr(Runner, "run_batch", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _run(digits_cnn, subset, _adaptive(), batch_size=16, state=str(state))
    monkeypatch.setattr(Runner, "run_batch", original)
    resumed = _run(digits_cnn, subset, _adaptive(), batch_size=16, state=str(state))
    assert np.array_equal(resumed.outcomes[EPS], adaptive_report.outcomes[EPS])
    assert resumed.suite == adaptive_report.suite
    assert resumed.queries == adaptive_report.queries
    # a damaged record is refused, naming the state, and the file is left as it was
    saved = json.loads(state.read_text())
    saved["tally"]["adaptive"][repr(EPS)]["margin_clean"].pop()
    state.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="argument `state`.*damaged.*margins"):
        _run(digits_cnn, subset, _adaptive(), batch_size=16, state=str(state))
    # a state of the same attacks without the rules is another run's
    plain = [a.replace(bounds=(0.0, 1.0)) for a in advgrad.get_suite("adaptive")]
    with pytest.raises(ValueError, match="argument `state`.*differs in: adaptive"):
        _run(digits_cnn, subset, plain, batch_size=16, state=str(state), individual=False)


class _ZeroGradientQuantise(keras.layers.Layer):
    """Rounds to 1/32 steps; d(output)/d(input) = 0 (tests/test_masking.py's model)."""

    def call(self, x):
        return tf.stop_gradient(tf.round(x * 32) / 32)


def test_the_masked_model_is_still_broken(digits_cnn, subset):
    inputs = keras.Input(digits_cnn.input_shape[1:])
    masked = keras.Model(inputs, digits_cnn(_ZeroGradientQuantise()(inputs)))
    fast = _run(masked, subset, "fast", batch_size=N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate(masked, subset, suite=_adaptive(), eps=EPS, batch_size=N)
    # fast: the gradients see nothing; adaptive: Square sees through
    assert report.robust_accuracy[EPS] <= fast.robust_accuracy[EPS] - 0.3
    assert report.suite[0]["adaptive"]["eps"][repr(EPS)]["masked_batches"] == [0]
    assert "zero_gradients" in {flag["code"] for flag in report.flags}  # still flagged


def test_a_config_names_it_and_its_rules_reach_evaluate(digits_cnn):
    from advgrad.config import build_run, parse_config

    document = {"model": "digits-cnn", "data": {"name": "digits"}, "eps": 0.1}
    config = parse_config({**document, "suite": "adaptive"})
    assert config.suite_name == "adaptive" and config.individual is False
    assert [a.name for a in config.suite] == ["apgd", "apgd-t", "square"]
    assert parse_config({**document, "suite": ["apgd"]}).suite_name is None
    run = build_run(config)
    assert run.suite.rules == ("all", "near", "stalled")
    assert tuple(run.suite[0].bounds) == (0.0, 1.0)  # the config's bounds: the data's
    x, y = run.data
    report = _run(run.model, (x[:16], y[:16]), run.suite, batch_size=16)
    assert report.suite[1]["adaptive"]["rule"] == "near"
