"""FGSM, BIM, PGD and MI-FGSM on the trained digits CNN: exact FGSM, strength, no retracing,
batching, and argument errors raised before any work."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad.attacks import BIM, FGSM, MIFGSM, PGD
from advgrad.gradients import trace_count

EPS = 0.1
BOUNDS = (0.0, 1.0)


# `digits` and `digits_cnn` come from conftest.py.


@pytest.fixture(scope="module")
def digits_test(digits):
    """All 450 digits test images and their labels."""
    return digits.x_test, digits.y_test


def accuracy(model, x, y) -> float:
    return float(np.mean(model.predict(x, verbose=0).argmax(axis=1) == y))


# ------------------------------------------------------------------------------ FGSM exact


@pytest.mark.parametrize("labels", ["given", "predicted"])
def test_fgsm_is_the_closed_form(digits_cnn, digits_test, labels):
    x, y = digits_test
    y = y if labels == "given" else None
    grad = advgrad.input_gradients(digits_cnn, x, y)
    expected = np.clip(x + EPS * np.sign(grad), *BOUNDS)
    x_adv = FGSM(eps=EPS, bounds=BOUNDS)(digits_cnn, x, y)
    assert x_adv.dtype == x.dtype
    np.testing.assert_array_equal(x_adv, expected)


# -------------------------------------------------------------------------------- strength


@pytest.fixture(scope="module")
def robust(digits_cnn, digits_test):
    """Robust accuracy (model.predict on x_adv) of each attack on all 450 test images."""
    x, y = digits_test
    attacks = {
        "fgsm": FGSM(eps=EPS, bounds=BOUNDS),
        "bim": BIM(eps=EPS, steps=40, bounds=BOUNDS),
        "pgd": PGD(eps=EPS, steps=40, bounds=BOUNDS),
        "pgd-5": PGD(eps=EPS, steps=40, restarts=5, bounds=BOUNDS),
        "mifgsm": MIFGSM(eps=EPS, steps=10, bounds=BOUNDS),
    }
    result = {"clean": accuracy(digits_cnn, x, y)}
    for name, attack in attacks.items():
        out = attack.run(digits_cnn, x, y)
        result[name] = accuracy(digits_cnn, out.x_adv, y)
        # `fooled` agrees with the model's own predictions on x_adv.
        assert result[name] == pytest.approx(1.0 - out.fooled.mean(), abs=1e-9)
    return result


def test_clean_accuracy(robust):
    assert robust["clean"] >= 0.95


def test_strength_ordering(robust):
    # PGD-40 and BIM-40 tie here (0.476 each), but each fools 5 images the other doesn't: the
    # 1% slack (4 images) keeps a platform's rounding from flipping a tie into a failure.
    assert robust["pgd"] <= robust["bim"] + 0.01
    assert robust["pgd-5"] <= robust["bim"]
    assert robust["bim"] <= robust["fgsm"] - 0.03
    for name in ("fgsm", "bim", "pgd", "pgd-5", "mifgsm"):
        assert robust[name] < robust["clean"] - 0.2, (name, robust)


def test_restarts_never_hurt(robust):
    assert robust["pgd-5"] <= robust["pgd"]


def test_mifgsm_below_clean(robust):
    assert robust["mifgsm"] < robust["clean"] - 0.2


def test_pgd_loss_trace_increases(digits_cnn, digits_test):
    x, y = digits_test[0][:64], digits_test[1][:64]
    result = PGD(eps=EPS, steps=10, bounds=BOUNDS).run(digits_cnn, x, y)
    assert result.loss_trace.shape == (11,)
    assert np.all(np.isfinite(result.loss_trace))
    assert result.loss_trace[-1] > result.loss_trace[0] + 1.0
    assert result.gradients == 10


@pytest.mark.parametrize("layout", ["ids", "column", "onehot"])
def test_fooled_is_the_models_verdict(digits_cnn, digits_test, layout):
    """`fooled` says what model.predict says on x_adv, whatever the label layout."""
    x, y = digits_test[0][:64], digits_test[1][:64]
    labels = {"ids": y, "column": y[:, None], "onehot": np.eye(10, dtype="float32")[y]}[layout]
    loss = keras.losses.CategoricalCrossentropy(from_logits=True) if layout == "onehot" else "ce"
    result = BIM(eps=EPS, steps=5, bounds=BOUNDS, loss=loss).run(digits_cnn, x, labels)
    predicted = digits_cnn.predict(result.x_adv, verbose=0).argmax(axis=1)
    np.testing.assert_array_equal(result.fooled, predicted != y)
    assert 0 < result.fooled.sum() < len(y)


@pytest.mark.parametrize(
    "attack",
    [
        BIM(eps=EPS, steps=5, bounds=BOUNDS),
        PGD(eps=EPS, steps=5, bounds=BOUNDS),
        PGD(eps=EPS, steps=3, restarts=2, bounds=BOUNDS),
        MIFGSM(eps=EPS, steps=5, bounds=BOUNDS),
    ],
    ids=["bim", "pgd", "pgd-restarts", "mifgsm"],
)
def test_call_fools_what_run_fools(digits_cnn, digits_test, attack):
    """`attack(...)` skips judging the last iterate, yet fools exactly the samples `run`
    fools, with the same iterate; only a sample no iterate fools may get another one."""
    x, y = digits_test[0][:96], digits_test[1][:96]
    result = attack.run(digits_cnn, x, y)
    x_adv = attack(digits_cnn, x, y)
    fooled = digits_cnn.predict(x_adv, verbose=0).argmax(axis=1) != y
    np.testing.assert_array_equal(fooled, result.fooled)
    assert 0 < fooled.sum() < len(y)
    np.testing.assert_array_equal(x_adv[fooled], result.x_adv[fooled])


def test_pgd_seed_changes_random_start(digits_cnn, digits_test):
    x, y = digits_test[0][:32], digits_test[1][:32]
    attack = PGD(eps=EPS, steps=2, bounds=BOUNDS, seed=0)
    a = attack(digits_cnn, x, y)
    b = attack.replace(seed=1)(digits_cnn, x, y)
    assert np.any(a != b)


# ------------------------------------------------------------------------------- tracing


def test_no_retrace_across_batches(digits_cnn, digits_test):
    x, y = digits_test
    attack = PGD(eps=EPS, steps=3, bounds=BOUNDS)
    attack(digits_cnn, x[:32], y[:32])
    before = trace_count("attack")
    for i in range(1, 5):
        attack(digits_cnn, x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)])
    attack(digits_cnn, x[:17], y[:17])  # a different batch size too
    assert trace_count("attack") == before


def test_no_retrace_across_eps(digits_cnn, digits_test):
    x, y = digits_test[0][:32], digits_test[1][:32]
    attack = BIM(eps=EPS, steps=3, bounds=BOUNDS)
    base = attack(digits_cnn, x, y)
    before = trace_count("attack")
    outputs = {}
    for eps in (0.05, 0.2, 0.3):
        outputs[eps] = attack(digits_cnn, x, y, eps=eps)
        replaced = attack.replace(eps=eps)(digits_cnn, x, y)
        np.testing.assert_array_equal(replaced, outputs[eps])
        assert np.abs(outputs[eps] - x).max() <= eps + 1e-6
    attack.replace(eps=0.2, step_size=0.01, seed=5)(digits_cnn, x, y)
    assert trace_count("attack") == before
    # eps really changed (not a stale constant baked into the trace)
    assert np.abs(outputs[0.3] - x).max() > np.abs(base - x).max() + 0.1


# ------------------------------------------------------------------ batching and progress


def test_batch_size_matches_one_batch(digits_cnn, digits_test):
    x, y = digits_test[0][:50], digits_test[1][:50]  # 16 + 16 + 16 + 2
    attack = BIM(eps=EPS, steps=5, bounds=BOUNDS)
    whole = attack.run(digits_cnn, x, y)
    chunked = attack.replace(batch_size=16).run(digits_cnn, x, y)
    np.testing.assert_array_equal(chunked.x_adv, whole.x_adv)
    np.testing.assert_array_equal(chunked.fooled, whole.fooled)
    np.testing.assert_allclose(chunked.loss_trace, whole.loss_trace, rtol=1e-5)


def test_progress_bar_off_by_default(digits_cnn, digits_test, capsys):
    x, y = digits_test[0][:32], digits_test[1][:32]
    attack = BIM(eps=EPS, steps=2, bounds=BOUNDS, batch_size=16)
    assert attack.progress is False
    capsys.readouterr()
    attack(digits_cnn, x, y)
    assert capsys.readouterr().err == ""
    attack.replace(progress=True)(digits_cnn, x, y)
    assert "2/2" in capsys.readouterr().err


def test_keeps_tensor_and_dtype(digits_cnn, digits_test):
    x, y = digits_test[0][:8], digits_test[1][:8]
    attack = BIM(eps=EPS, steps=2, bounds=BOUNDS)
    out = attack(digits_cnn, tf.constant(x), y)
    assert tf.is_tensor(out) and out.dtype == tf.float32 and out.shape == x.shape
    out64 = attack(digits_cnn, x.astype(np.float64), y)
    assert isinstance(out64, np.ndarray) and out64.dtype == np.float64


def test_margin_loss(digits_cnn, digits_test):
    x, y = digits_test[0][:64], digits_test[1][:64]
    x_adv = PGD(eps=0.2, steps=10, bounds=BOUNDS, loss="margin")(digits_cnn, x, y)
    assert accuracy(digits_cnn, x_adv, y) < accuracy(digits_cnn, x, y) - 0.5


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("settings", "argument"),
    [
        ({"eps": -0.1}, "eps"),
        ({"eps": math.nan}, "eps"),
        ({"step_size": 0.0}, "step_size"),
        ({"step_size": -0.01}, "step_size"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"norm": "l3"}, "norm"),
        ({"epsilon": 0.1}, "epsilon"),
        ({"bounds": (1.0, 0.0)}, "bounds"),
        ({"restarts": 0}, "restarts"),
    ],
)
def test_bad_settings(settings, argument):
    before = trace_count()
    with pytest.raises(ValueError, match=f"`{argument}`"):
        PGD(**settings)
    assert trace_count() == before


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd", "mifgsm"])
def test_unknown_setting_named(name):
    with pytest.raises(ValueError, match="`epsilon`"):
        advgrad.get_attack(name, epsilon=0.1)


def _bad_calls(x, y):
    nan_x = x.copy()
    nan_x[0, 3, 3, 0] = np.nan
    return [
        ("eps", {}, {"x": x, "y": y, "eps": -0.1}),
        ("eps", {}, {"x": x, "y": y, "eps": math.nan}),
        ("budget", {}, {"x": x, "y": y, "budget": {"meta": advgrad.Budget(0.1)}}),
        ("x", {}, {"x": x + 0.5, "y": y}),
        ("x", {}, {"x": nan_x, "y": y}),
        ("y", {"targeted": True}, {"x": x, "y": None}),
    ]


@pytest.mark.parametrize("index", range(6), ids=["eps<0", "eps-nan", "budget", "x>1", "nan", "y"])
def test_bad_call_raises_before_work(digits_cnn, digits_test, index):
    x, y = digits_test[0][:16].copy(), digits_test[1][:16]
    argument, settings, call = _bad_calls(x, y)[index]
    # Settings traced nowhere else, so any work would show in the trace count.
    attack = BIM(eps=EPS, steps=7, bounds=BOUNDS, **settings)
    before = trace_count()
    x_arg, y_arg = call.pop("x"), call.pop("y")
    with pytest.raises(ValueError, match=f"`{argument}"):
        attack(digits_cnn, x_arg, y_arg, **call)
    assert trace_count() == before


def test_trace_count_sees_work(digits_cnn, digits_test):
    """The counter used above does move when an attack runs with new settings."""
    before = trace_count("attack")
    BIM(eps=EPS, steps=9, bounds=BOUNDS)(digits_cnn, digits_test[0][:4], digits_test[1][:4])
    assert trace_count("attack") == before + 1


def test_a_suite_of_attacks_gives_no_retracing_warning(digits_cnn, digits_test, caplog):
    """Each attack loop is traced once; TF must not report six of them as one retracing."""
    x, y = digits_test[0][:4], digits_test[1][:4]
    with caplog.at_level("WARNING", logger="tensorflow"):
        for steps in range(11, 17):  # six new configurations, each traced once
            BIM(eps=EPS, steps=steps, bounds=BOUNDS)(digits_cnn, x, y)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


# ------------------------------------------------------- hostile and unusual input (issue 11)
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_an_eps_the_dtype_cannot_hold_is_refused_never_nan(norm, digits_cnn, digits):
    """eps = 1e39 overflowed float32 and gave all-NaN x_adv counted as fooled; now refused."""
    x, y = digits.x_test[:8], digits.y_test[:8]
    with pytest.raises(ValueError, match=r"argument `eps`: expected a radius that float32"):
        PGD(eps=1e39, norm=norm, steps=2)(digits_cnn, x, y)
    with pytest.raises(ValueError, match=r"argument `step_size`"):
        PGD(eps=0.1, step_size=1e39, norm=norm, steps=2)(digits_cnn, x, y)
    eps = float(tf.float32.max) / 16
    with pytest.raises(ValueError, match=r"argument `eps`: expected a radius whose steps"):
        PGD(eps=eps, norm=norm, steps=2)(digits_cnn, x, y)  # its step is 1.25 x eps
    # The largest accepted radius still gives finite inputs in the ball.
    for random_start in (False, True):
        x_adv = PGD(eps=eps, norm=norm, steps=3, random_start=random_start)(digits_cnn, x, y)
        assert np.all(np.isfinite(x_adv))


def _two_output_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(16, activation="tanh")(inputs)
    outputs = {
        "cls": keras.layers.Dense(3, name="cls")(hidden),
        "aux": keras.layers.Dense(2, name="aux")(hidden),
        "reg": keras.layers.Dense(1, name="reg")(hidden),
    }
    model = keras.Model(inputs, outputs)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(loss={"cls": ce, "aux": ce, "reg": "mse"})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = {
        "cls": rng.integers(0, 3, 32),
        "aux": rng.integers(0, 2, 32),
        "reg": rng.normal(size=(32, 1)).astype(np.float32),
    }
    return model, x, y


def test_multi_output_models_read_fooled_from_the_named_classifier():
    """Attacks crashed ("unhashable type: 'dict'") on a model with several outputs."""
    model, x, y = _two_output_model()
    with pytest.raises(ValueError, match=r"argument `classifier`: expected the output that"):
        PGD(eps=1.0, steps=5).run(model, x, y)  # two classifiers: which one decides?
    with pytest.raises(ValueError, match=r"argument `classifier`.*classification loss"):
        PGD(eps=1.0, steps=5, classifier="reg").run(model, x, y)
    result = PGD(eps=1.0, steps=10, classifier="cls").run(model, x, y)
    predicted = np.argmax(model.predict(x, verbose=0)["cls"], -1)
    adv_predicted = np.argmax(model.predict(result.x_adv, verbose=0)["cls"], -1)
    np.testing.assert_array_equal(result.fooled, adv_predicted != y["cls"])
    assert result.fooled.sum() > np.sum(predicted != y["cls"])  # the attack flips some
    assert np.max(np.abs(result.x_adv - x)) <= 1.0 + 1e-6


def test_integer_inputs_pass_through_frozen():
    """An Embedding input next to a float one: the ids frozen, the floats attacked."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((4,), dtype="int32", name="ids")
    image = keras.Input((6,), name="image")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(10, 3)(ids))
    logits = keras.layers.Dense(3)(keras.layers.Concatenate()([embedded, image]))
    model = keras.Model({"ids": ids, "image": image}, logits)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = {
        "ids": np.arange(20, dtype=np.int32).reshape(5, 4) % 10,
        "image": np.random.default_rng(0).random((5, 6)).astype(np.float32),
    }
    y = np.array([0, 1, 2, 0, 1])
    budget = {"image": advgrad.Budget(0.3, bounds=(0.0, 1.0)), "ids": None}
    x_adv = PGD(eps=0.3, steps=3, budget=budget)(model, x, y)
    assert x_adv["ids"].dtype == np.int32 and np.array_equal(x_adv["ids"], x["ids"])
    assert np.max(np.abs(x_adv["image"] - x["image"])) <= 0.3 + 1e-6
    with pytest.raises(ValueError, match=r"`x\['ids'\]`.*freeze it with budget=\{'ids': None"):
        PGD(eps=0.3, steps=3)(model, x, y)


def test_an_empty_batch_is_a_named_error(digits_cnn):
    """Was "range() arg 3 must not be zero" (attacks) or a graph error (gradients)."""
    x, y = np.zeros((0, 8, 8, 1), np.float32), np.zeros(0, np.int64)
    for call in (PGD(eps=0.1), advgrad.input_gradients):
        with pytest.raises(ValueError, match=r"argument `x`: expected at least one sample"):
            call(digits_cnn, x, y)
