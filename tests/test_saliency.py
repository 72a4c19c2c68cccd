"""Saliency maps: the five methods on real models, completeness, sanity and deletion checks,
bad input, figures, configs."""

import inspect
import json
import pathlib

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

import advgrad
from advgrad import saliency
from advgrad._compile import trace_count
from advgrad._validation import ArgumentError
from advgrad.config.registries import default_catalog
from advgrad.saliency.config import MAX_STEPS as CONFIG_MAX_STEPS
from advgrad.saliency.config import METHOD_SETTINGS, load_saliency, parse_saliency
from advgrad.saliency.config import METHODS as CONFIG_METHODS
from advgrad.saliency.config import RULES as CONFIG_RULES
from advgrad.schema.problems import ConfigError

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def images(digits):
    return digits.x_test[:32]


class _NaNAbove(keras.layers.Layer):
    """NaN for every sample whose mean is above `threshold`, the input otherwise: a layer
    that breaks a model on some inputs (its gradient there is 0, not NaN: a silent map)."""

    def __init__(self, threshold, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold

    def call(self, x):
        mean = keras.ops.mean(x, axis=(1, 2, 3), keepdims=True)
        return keras.ops.where(mean > self.threshold, float("nan"), x)


BROKEN = [1, 4]  # the samples of `nan_model` whose outputs are NaN


@pytest.fixture(scope="module")
def nan_model(digits):
    """A small CNN whose outputs are NaN for the two bright digits (mean > 0.39) among six,
    finite for the four dark ones (mean < 0.24), at samples 1 and 4."""
    order = np.argsort(digits.x_test.reshape(len(digits.x_test), -1).mean(axis=1))
    dark, bright = order[:4], order[-2:]
    x = digits.x_test[[dark[0], bright[0], dark[1], dark[2], bright[1], dark[3]]]
    init = keras.initializers.GlorotUniform(seed=0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            _NaNAbove(0.32),
            keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=init, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, kernel_initializer=init),
        ]
    )
    return model, x


def _strict_json(text):
    """json.loads that refuses NaN and Infinity (what json.dumps(allow_nan=False) writes)."""

    def refuse(constant):
        raise ValueError(f"not valid JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _relative_gaps(model, x, baseline, delta):
    targets = saliency.predicted_targets(model, x)
    gap = saliency.scores(model, x, targets) - saliency.scores(model, baseline, targets)
    return np.abs(delta) / np.abs(gap), gap


# --------------------------------------------------------------------------- the methods
def test_vanilla_is_the_engines_output_gradient(digits_cnn, images):
    targets = saliency.predicted_targets(digits_cnn, images)
    maps = saliency.vanilla(digits_cnn, images)
    engine = advgrad.output_gradients(digits_cnn, images, output_index=targets)
    assert maps.shape == images.shape and maps.dtype == images.dtype
    np.testing.assert_allclose(maps, engine, rtol=1e-5, atol=1e-6)
    assert np.abs(maps).max() > 0.1  # a real map, not zeros
    other = saliency.vanilla(digits_cnn, images, target=(targets + 1) % 10)
    assert np.abs(other - maps).max() > 0.1  # the target matters


def test_gradient_x_input_is_input_times_gradient(digits_cnn, images):
    np.testing.assert_allclose(
        saliency.gradient_x_input(digits_cnn, images),
        images * saliency.vanilla(digits_cnn, images),
        rtol=1e-6,
        atol=1e-7,
    )


def test_integrated_gradients_completeness_on_the_digits_cnn(digits, digits_cnn):
    """Default steps (64): every one of the 450 test images within 1% (relative)."""
    x = digits.x_test
    maps, delta = saliency.integrated_gradients(digits_cnn, x, return_delta=True)
    assert maps.shape == x.shape
    rel, gap = _relative_gaps(digits_cnn, x, np.zeros_like(x), delta)
    assert np.abs(gap).min() > 1.0  # the gaps are not trivially small
    assert rel.max() < 0.01, rel.max()
    assert np.median(rel) < 0.002
    # delta is what it says: sum of attributions minus the score gap
    np.testing.assert_allclose(maps.reshape(len(x), -1).sum(1) - gap, delta, atol=1e-3)


def test_integrated_gradients_completeness_on_the_two_input_model(tabular, tabular_model):
    """Dict inputs: maps keyed like x, and every sample within 1% with the defaults. At
    exactly 64 steps (``tolerance=None``) some samples of this ReLU model miss it (the
    quadrature's error, on samples whose score changes little): the default integrates
    those rows again with more steps, and leaves the others as they were."""
    x = tabular.x_test
    maps, delta = saliency.integrated_gradients(tabular_model, x, return_delta=True)
    assert set(maps) == {"measurements", "errors"}
    assert {k: v.shape for k, v in maps.items()} == {k: v.shape for k, v in x.items()}
    baseline = {k: np.zeros_like(v) for k, v in x.items()}
    rel, gap = _relative_gaps(tabular_model, x, baseline, delta)
    assert rel.max() < 0.01, rel.max()
    total = sum(v.reshape(len(v), -1).sum(1) for v in maps.values())
    np.testing.assert_allclose(total - gap, delta, atol=1e-4)
    fixed = saliency.integrated_gradients(tabular_model, x, return_delta=True, tolerance=None)[1]
    missed = np.abs(fixed) / np.abs(gap) > 0.01
    assert 0 < missed.sum() < len(gap) / 2  # what the refinement is for: a few samples
    np.testing.assert_array_equal(delta[~missed], fixed[~missed])
    with pytest.warns(UserWarning, match="raise max_steps"):
        saliency.integrated_gradients(tabular_model, x, max_steps=64)


def test_integrated_gradients_rules_baselines_and_tensor_inputs(digits_cnn, images):
    x = images[:8]
    base = saliency.integrated_gradients(digits_cnn, x, baseline=0.25, steps=16)
    one = np.full(x.shape[1:], 0.25, np.float32)
    np.testing.assert_allclose(
        saliency.integrated_gradients(digits_cnn, x, baseline=one, steps=16), base, atol=1e-5
    )
    np.testing.assert_allclose(
        saliency.integrated_gradients(digits_cnn, x, baseline=np.full_like(x, 0.25), steps=16),
        base,
        atol=1e-5,
    )
    for rule in saliency.RULES:
        _, delta = saliency.integrated_gradients(
            digits_cnn, x, steps=128, method=rule, return_delta=True
        )
        assert np.abs(delta).max() < 0.1, rule
    import tensorflow as tf

    as_tensor = saliency.integrated_gradients(digits_cnn, tf.constant(x), baseline=0.25, steps=16)
    assert tf.is_tensor(as_tensor)
    np.testing.assert_allclose(as_tensor.numpy(), base, atol=1e-5)


def test_smoothgrad_noise_zero_is_vanilla_and_a_seed_repeats(digits_cnn, images):
    x = images[:16]
    vanilla = saliency.vanilla(digits_cnn, x)
    np.testing.assert_allclose(
        saliency.smoothgrad(digits_cnn, x, noise=0.0, samples=10), vanilla, rtol=1e-5, atol=1e-6
    )
    a = saliency.smoothgrad(digits_cnn, x, samples=20, seed=3)
    b = saliency.smoothgrad(digits_cnn, x, samples=20, seed=3)
    c = saliency.smoothgrad(digits_cnn, x, samples=20, seed=4)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    assert np.abs(a - vanilla).max() > 1e-2
    # smoothing: the noisy average varies less from pixel to pixel than the gradient
    assert np.abs(np.diff(a, axis=1)).mean() < np.abs(np.diff(vanilla, axis=1)).mean()


def test_grad_cam_last_convolution_is_the_default(digits_cnn, images):
    x = images[:8]
    maps = saliency.grad_cam(digits_cnn, x)
    assert maps.shape == x.shape and (maps >= 0).all() and maps.max() > 0
    np.testing.assert_allclose(saliency.grad_cam(digits_cnn, x, layer="conv2"), maps, atol=1e-6)
    first = saliency.grad_cam(digits_cnn, x, layer="conv1")
    assert np.abs(first - maps).max() > 1e-3
    targets = saliency.predicted_targets(digits_cnn, x)
    other = saliency.grad_cam(digits_cnn, x, target=(targets + 5) % 10)
    assert np.abs(other - maps).max() > 1e-3  # class-discriminative


def test_grad_cam_resizes_a_coarse_layer_to_the_input():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12, 10, 3)),
            keras.layers.Conv2D(4, 3, strides=2, padding="same", name="coarse"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x = np.random.default_rng(0).random((3, 12, 10, 3), "float32")
    maps = saliency.grad_cam(model, x)
    assert maps.shape == x.shape and (maps >= 0).all()
    np.testing.assert_array_equal(maps[..., 0], maps[..., 2])  # broadcast over channels


def test_a_softmax_model_is_explained_by_its_logits():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    probs = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    logits = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    logits.layers[-1].set_weights(probs.layers[-1].get_weights())
    x = np.random.default_rng(1).normal(size=(6, 5)).astype("float32")
    for method in ("vanilla", "integrated_gradients", "smoothgrad"):
        np.testing.assert_allclose(
            saliency.attribute(probs, x, method, samples=4)
            if method == "smoothgrad"
            else saliency.attribute(probs, x, method),
            saliency.attribute(logits, x, method, samples=4)
            if method == "smoothgrad"
            else saliency.attribute(logits, x, method),
            rtol=1e-4,
            atol=1e-5,
        )


def test_regression_subclassed_custom_layer_and_list_inputs():
    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=shape[1:], initializer="ones")

        def call(self, x):
            return x * self.w

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.scale = Scale()
            self.hidden = keras.layers.Dense(8, activation="tanh")
            self.out = keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.hidden(self.scale(x)))

    keras.utils.set_random_seed(0)
    net = Net()
    x = np.random.default_rng(0).random((5, 4)).astype("float32")
    net(x)
    maps, delta = saliency.integrated_gradients(net, x, return_delta=True)
    assert maps.shape == x.shape and np.abs(delta).max() < 1e-4  # smooth: near exact
    np.testing.assert_allclose(
        saliency.vanilla(net, x), advgrad.output_gradients(net, x, output_index=0), atol=1e-6
    )
    with pytest.raises(ArgumentError, match="target"):
        saliency.vanilla(net, x, target=1)  # one output unit

    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Dense(6, "relu")(joined)))
    xs = [np.ones((4, 3), "float32"), np.ones((4, 2), "float32")]
    maps, delta = saliency.integrated_gradients(model, xs, return_delta=True)
    assert [m.shape for m in maps] == [(4, 3), (4, 2)]
    assert np.abs(delta).max() < 1e-3


def test_not_finite_outputs_are_warned_and_their_maps_are_nan(nan_model):
    """Issue 24: a model whose outputs are NaN for some samples gave NaN (or, through a
    zero gradient, plausible zero) maps without a word. Each method now warns, naming
    itself and the count, and those samples' maps are NaN; the others are untouched."""
    model, x = nan_model
    good = [i for i in range(len(x)) if i not in BROKEN]
    settings = {"smoothgrad": {"samples": 8}, "integrated_gradients": {"steps": 16}}
    for method in saliency.METHODS:
        options = settings.get(method, {})
        with pytest.warns(UserWarning) as record:
            maps = saliency.attribute(model, x, method, **options)
        texts = [str(w.message) for w in record]
        assert any(t.startswith(f"{method}: 2 of 6 sample(s)") for t in texts), texts
        assert any("not finite" in t and "samples 1, 4" in t for t in texts), texts
        flat = maps.reshape(len(x), -1)
        assert np.isnan(flat[BROKEN]).all(), method
        assert np.isfinite(flat[good]).all(), method
        if method != "smoothgrad":  # (its noise depends on the batch)
            alone = saliency.attribute(model, x[good], method, **options)
            np.testing.assert_allclose(flat[good], alone.reshape(len(good), -1), atol=1e-6)
    with pytest.warns(UserWarning, match="integrated_gradients: 2 of 6"):
        _, delta = saliency.integrated_gradients(model, x, steps=16, return_delta=True)
    assert np.isnan(delta[BROKEN]).all() and np.isfinite(delta[good]).all()


def test_one_compiled_call_per_signature(digits_cnn, images):
    saliency.integrated_gradients(digits_cnn, images[:5], steps=8)
    before = trace_count("saliency")
    saliency.integrated_gradients(digits_cnn, images[:7], steps=16, batch_size=64)
    saliency.integrated_gradients(digits_cnn, images[:3], steps=5, method="trapezoid")
    assert trace_count("saliency") == before  # batch size, steps, chunking: no retrace


def test_chunking_does_not_change_the_result(digits_cnn, images):
    x = images[:10]
    whole = saliency.integrated_gradients(digits_cnn, x, steps=32)
    chunked = saliency.integrated_gradients(digits_cnn, x, steps=32, batch_size=7)
    np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- the checks
def test_deletion_test_vanilla_beats_random_pixels(digits, digits_cnn):
    """Over the whole test split: the top-k pixels of the vanilla gradient move the logit
    more than k random pixels (measured; the figures are in benchmarks/results)."""
    x = digits.x_test
    maps = saliency.vanilla(digits_cnn, x)
    results = saliency.deletion_test(digits_cnn, x, maps, k=(4, 8, 16), bounds=digits.bounds)
    for result in results:
        assert result.ranked_change > 1.5 * result.random_change, result
        assert result.ranked_drop > result.random_drop
    assert [r.k for r in results] == [4, 8, 16]


def test_sanity_check_model_randomisation(digits_cnn, images):
    x = images[:12]
    before = [w.copy() for w in digits_cnn.get_weights()]
    result = saliency.sanity_check(
        digits_cnn,
        x,
        settings={"smoothgrad": {"samples": 8}, "integrated_gradients": {"steps": 16}},
    )
    assert set(result) == set(saliency.METHODS)
    for w, v in zip(before, digits_cnn.get_weights(), strict=True):
        np.testing.assert_array_equal(w, v)  # the trained model is untouched
    assert result["vanilla"].correlation < 0.3 and not result["vanilla"].flagged
    assert result["smoothgrad"].correlation < 0.3
    # gradient x input keeps the input's zeros whatever the weights: flagged, as documented
    assert result["gradient_x_input"].flagged
    for item in result.values():
        assert abs(item.signed_correlation) < 0.5
        assert item.per_sample.shape == (len(x),)
    copy_a = saliency.randomized_copy(digits_cnn, seed=1).get_weights()[0]
    copy_b = saliency.randomized_copy(digits_cnn, seed=1).get_weights()[0]
    np.testing.assert_array_equal(copy_a, copy_b)
    assert not np.allclose(copy_a, before[0])


def test_rank_correlation_ties_and_constants():
    a = np.array([[0.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0], [1.0, np.nan, 2.0, 3.0]])
    b = np.array([[0.0, 0.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    rho = saliency.rank_correlation(a, b)
    assert rho[0] == pytest.approx(spearmanr(a[0], b[0]).statistic) == pytest.approx(3.5 / 4.5)
    assert np.isnan(rho[1])  # a constant map ranks nothing: undefined, as spearmanr says
    with pytest.warns(RuntimeWarning, match="constant"):
        assert np.isnan(spearmanr(a[1], b[1]).statistic)
    assert np.isnan(rho[2])  # a map that is not finite: undefined too


def test_sanity_check_constant_maps_are_undefined_not_a_pass(digits_cnn, images):
    """Issue 24: on blank images gradient x input and integrated gradients are 0 whatever
    the weights; the check reported a correlation of 0.0 (unrelated maps: a pass). A
    correlation of constant maps is undefined: None, flagged, said so, valid JSON."""
    blank = np.zeros((3, *images.shape[1:]), images.dtype)
    methods = ["gradient_x_input", "integrated_gradients"]
    steps = {"integrated_gradients": {"steps": 8}}
    result = saliency.sanity_check(digits_cnn, blank, methods=methods, settings=steps)
    for method, item in result.items():
        assert item.correlation is None and item.signed_correlation is None, item
        assert item.undefined == 3 and item.flagged
        assert np.isnan(item.per_sample).all()
        text = str(item)
        assert text.startswith(f"{method}: rank correlation undefined"), text
        assert "3 of 3 samples" in text and "flagged" in text, text
        record = _strict_json(json.dumps(item.to_dict(), allow_nan=False))
        assert record["correlation"] is None and record["undefined"] == 3
        assert record["flagged"] is True and record["per_sample"] == [None] * 3
    # blank and real images together: the mean is over the samples where it is defined
    [item] = saliency.sanity_check(digits_cnn, images[:3], methods=["vanilla"]).values()
    assert item.undefined == 0 and item.correlation == pytest.approx(item.per_sample.mean())
    assert str(item).startswith("vanilla: rank correlation ") and "passed" in str(item)
    x = np.concatenate([images[:3], blank])
    [item] = saliency.sanity_check(digits_cnn, x, methods=["gradient_x_input"]).values()
    assert item.undefined == 3 and np.isnan(item.per_sample[3:]).all()
    assert item.correlation == pytest.approx(item.per_sample[:3].mean())
    assert "3 of 6 samples undefined" in str(item), str(item)


def test_deletion_test_constant_maps_rank_nothing(digits, digits_cnn, images):
    """A constant map ranks no feature first: its samples are left out of the means (and
    counted); with no sample left, every number is undefined (None), never 0.0."""
    x = images[:6]
    maps = saliency.vanilla(digits_cnn, x)
    maps[3:] = 0.0
    [some] = saliency.deletion_test(digits_cnn, x, maps, k=[4], bounds=digits.bounds)
    [alone] = saliency.deletion_test(digits_cnn, x[:3], maps[:3], k=[4], bounds=digits.bounds)
    assert some.undefined == 3 and alone.undefined == 0
    assert some.ranked_change == pytest.approx(alone.ranked_change)
    assert some.ranked_drop == pytest.approx(alone.ranked_drop)
    [none] = saliency.deletion_test(digits_cnn, x, np.zeros_like(x), k=[4], bounds=digits.bounds)
    assert none.undefined == 6
    assert none.ranked_change is None and none.random_change is None and none.ratio is None
    assert "undefined" in str(none) and "6 of 6 samples" in str(none), str(none)
    record = _strict_json(json.dumps(none.to_dict(), allow_nan=False))
    assert record["ranked_change"] is None and record["ratio"] is None
    assert _strict_json(json.dumps(some.to_dict(), allow_nan=False))["undefined"] == 3


# ------------------------------------------------------------------------------ bad input
def test_bad_input_is_named_before_any_work(digits_cnn, images, tabular, tabular_model):
    x = images[:4]
    cases = [
        (lambda: saliency.vanilla(digits_cnn, x, target=10), "target", "[0, 10)"),
        (lambda: saliency.vanilla(digits_cnn, x, target=[1, 2]), "target", "shape (4,)"),
        (lambda: saliency.vanilla(digits_cnn, x, target=1.5), "target", "class index"),
        (lambda: saliency.integrated_gradients(digits_cnn, x, steps=0), "steps", "[1, 2**16)"),
        (lambda: saliency.integrated_gradients(digits_cnn, x, tolerance=-1), "tolerance", ">= 0"),
        (
            lambda: saliency.integrated_gradients(digits_cnn, x, max_steps=8),
            "max_steps",
            "[64, 2**16)",
        ),
        (
            lambda: saliency.integrated_gradients(digits_cnn, x, steps=1, method="trapezoid"),
            "steps",
            ">= 2",
        ),
        (lambda: saliency.integrated_gradients(digits_cnn, x, method="simpson"), "method", ""),
        (
            lambda: saliency.integrated_gradients(digits_cnn, x, baseline=np.zeros((8, 8))),
            "baseline",
            "(8, 8, 1)",
        ),
        (
            lambda: saliency.integrated_gradients(
                tabular_model,
                {k: v[:4] for k, v in tabular.x_test.items()},
                baseline={"measurements": np.zeros(20), "errors": np.zeros(9)},
            ),
            "baseline['errors']",
            "(10,)",
        ),
        (
            lambda: saliency.integrated_gradients(
                tabular_model, {k: v[:4] for k, v in tabular.x_test.items()}, baseline=[0, 0]
            ),
            "baseline",
            "dict with keys",
        ),
        (lambda: saliency.smoothgrad(digits_cnn, x, noise=-0.1), "noise", ">= 0"),
        (lambda: saliency.smoothgrad(digits_cnn, x, samples=0), "samples", "[1, 2**16)"),
        (lambda: saliency.grad_cam(digits_cnn, x, layer="nope"), "layer", "conv1"),
        (lambda: saliency.grad_cam(digits_cnn, x, layer="dense"), "layer", "spatial"),
        (lambda: saliency.attribute(digits_cnn, x, "lrp"), "method", "vanilla"),
        (lambda: saliency.vanilla(digits_cnn, x[..., 0]), "x", "shape"),
    ]
    for call, argument, text in cases:
        with pytest.raises(ArgumentError) as info:
            call()
        assert info.value.argument == argument, (argument, str(info.value))
        assert text in str(info.value), str(info.value)
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ArgumentError, match="no convolution"):
        saliency.grad_cam(dense, np.ones((2, 4), "float32"))


def test_steps_out_of_range_names_steps_before_any_work(digits_cnn, images):
    """Issue 24: ``integrated_gradients(steps=10**9)`` blamed `max_steps` (after building
    10**9 points): the argument the user gave is named, with its range, before any work."""
    x = images[:2]
    saliency.integrated_gradients(digits_cnn, x, steps=4)
    before = trace_count("saliency")
    for steps in (2**16, 10**9):
        with pytest.raises(ArgumentError) as info:
            saliency.integrated_gradients(digits_cnn, x, steps=steps)
        assert info.value.argument == "steps"
        assert str(info.value) == (
            "Invalid value for argument `steps`: expected an int in [1, 2**16), "
            f"received steps={steps}."
        )
        with pytest.raises(ArgumentError, match=r"`samples`: expected an int in \[1, 2\*\*16\)"):
            saliency.smoothgrad(digits_cnn, x, samples=steps)
    assert trace_count("saliency") == before
    # more steps than the default max_steps: max_steps follows them (the user gave steps)
    maps = saliency.integrated_gradients(digits_cnn, x[:1], steps=5000, tolerance=None)
    assert np.isfinite(maps).all()


def test_config_steps_out_of_range_is_named_by_its_yaml_path(digits_cnn, tmp_path, capsys):
    from advgrad import cli

    for steps in (2**16, 10**9):
        path = tmp_path / f"steps-{steps}.yaml"
        path.write_text(
            "model: digits-cnn\ndata: {name: digits, limit: 2}\n"
            f"methods:\n  - {{name: integrated_gradients, steps: {steps}}}\n"
        )
        code = cli.main(["saliency", str(path), "--out", str(tmp_path / f"out-{steps}")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"methods[0].steps: expected an int in [1, 2**16), received {steps}" in err, err
        assert "max_steps" not in err


# -------------------------------------------------------------------------------- figures
def test_write_saliency_images_and_index(digits, digits_cnn, tmp_path):
    x, y = digits.x_test[:3], digits.y_test[:3]
    paths = saliency.write_saliency(
        digits_cnn,
        x,
        tmp_path / "out",
        settings={"smoothgrad": {"samples": 4}, "integrated_gradients": {"steps": 8}},
        labels=y,
    )
    assert set(paths["figures"]) == set(saliency.METHODS)
    for path in paths["figures"].values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    index = paths["index"].read_text()
    for method in saliency.METHODS:
        assert f"]({method}.png)" in index
    assert "completeness" in index
    with np.load(paths["attributions"]) as archive:
        assert archive["vanilla"].shape == x.shape
        np.testing.assert_array_equal(archive["targets"], saliency.predicted_targets(digits_cnn, x))


def test_write_saliency_tabular_bar_chart(tabular, tabular_model, tmp_path):
    x = {k: v[:3] for k, v in tabular.x_test.items()}
    paths = saliency.write_saliency(
        tabular_model, x, tmp_path, methods=["vanilla", "integrated_gradients", "grad_cam"]
    )
    assert set(paths["figures"]) == {"vanilla", "integrated_gradients"}
    assert "no convolution" in paths["skipped"]["grad_cam"]
    assert paths["figures"]["vanilla"].read_bytes()[:4] == b"\x89PNG"
    with np.load(paths["attributions"]) as archive:
        assert archive["vanilla/measurements"].shape == (3, 20)
    assert "skipped" in paths["index"].read_text()


def test_write_saliency_flags_not_finite_maps(nan_model, tmp_path):
    """Issue 24: the samples whose outputs are not finite are flagged per method in the
    returned dict, attributions.npz and index.md (not a NaN completeness gap)."""
    model, x = nan_model
    settings = {"smoothgrad": {"samples": 4}, "integrated_gradients": {"steps": 8}}
    with pytest.warns(UserWarning, match="not finite"):
        paths = saliency.write_saliency(model, x, tmp_path, settings=settings, samples=6)
    assert paths["not_finite"] == {method: BROKEN for method in saliency.METHODS}
    expected = [i in BROKEN for i in range(len(x))]
    with np.load(paths["attributions"]) as archive:
        for method in saliency.METHODS:
            assert archive[f"not_finite/{method}"].tolist() == expected
            assert np.isnan(archive[method][BROKEN]).all()
    index = paths["index"].read_text()
    assert index.count("not finite: 2 of 6 samples (1, 4)") == len(saliency.METHODS), index
    assert "over the 4 samples with finite maps" in index, index
    assert "= nan" not in index.lower(), index
    for path in paths["figures"].values():
        assert path.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.rglob("*.json"))  # (no JSON here; any would be strict)


def test_every_json_the_saliency_command_writes_is_valid(digits_cnn, tmp_path, capsys):
    """Issue 24: no bare NaN or Infinity in any JSON of a saliency run's folder."""
    from advgrad import cli

    path = tmp_path / "saliency.yaml"
    path.write_text(
        "model: digits-cnn\ndata: {name: digits, limit: 2}\n"
        "methods: [vanilla, {name: integrated_gradients, steps: 8}]\n"
    )
    out = tmp_path / "out"
    assert cli.main(["saliency", str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "index.md").is_file()
    for written in out.rglob("*.json"):
        _strict_json(written.read_text())


# -------------------------------------------------------------------------------- configs
def test_config_methods_and_defaults_match_the_functions():
    assert CONFIG_METHODS == saliency.METHODS and CONFIG_RULES == saliency.RULES
    assert CONFIG_MAX_STEPS == saliency.MAX_STEPS
    functions = {
        "smoothgrad": saliency.smoothgrad,
        "integrated_gradients": saliency.integrated_gradients,
        "grad_cam": saliency.grad_cam,
    }
    for method, settings in METHOD_SETTINGS.items():
        for key, default in settings.items():
            assert inspect.signature(functions[method]).parameters[key].default == default


def test_the_shipped_config_loads_and_builds(tmp_path):
    from advgrad.config.saliency_build import build_saliency

    config = load_saliency(ROOT / "configs" / "saliency-digits.yaml", default_catalog())
    assert [m.name for m in config.methods] == list(saliency.METHODS)
    run = build_saliency(config)
    assert run.x.shape == (8, 8, 8, 1) and run.target is None
    import dataclasses

    picked = dataclasses.replace(config, indices=(1, 5), target="label")
    run = build_saliency(picked)
    assert run.x.shape == (2, 8, 8, 1) and run.target.tolist() == run.y.tolist()
    with pytest.raises(ConfigError, match=r"indices\[0\]: sample 9 does not exist"):
        build_saliency(dataclasses.replace(config, indices=(9,)))


def test_config_problems_are_named_by_path():
    catalog = default_catalog()
    document = {
        "model": "digits-cnn",
        "data": {"name": "digits", "limit": 4},
        "methods": [
            "vanila",
            {"name": "smoothgrad", "samples": 0, "noize": 0.1},
            {"name": "integrated_gradients", "steps": "many", "method": "simpson"},
            {"steps": 3},
            "vanilla",
            "vanilla",
        ],
        "target": "best",
        "indices": [0, -1],
        "sample": 3,
    }
    with pytest.raises(ConfigError) as info:
        parse_saliency(document, catalog)
    text = "\n".join(info.value.problems)
    for expected in (
        "unknown key 'sample' (did you mean 'samples'?)",
        "methods[0]: expected one of vanilla",
        "(did you mean 'vanilla'?)",
        "methods[1].samples: expected an int in [1, 2**16), received 0",
        "methods[1]: unknown key 'noize' (did you mean 'noise'?)",
        "methods[2].steps: expected an int in [1, 2**16), received 'many'",
        "methods[2].method: expected one of riemann_middle",
        "methods[3]: missing key 'name'",
        "methods[5]: vanilla is listed twice",
        "target: expected predicted, label or a class id",
        "indices[1]: expected an int >= 0, received -1",
    ):
        assert expected in text, (expected, text)
    with pytest.raises(ConfigError, match="missing key 'methods'"):
        parse_saliency({"model": "digits-cnn", "data": {"name": "digits"}}, catalog)


def test_saliency_bars_name_an_embedded_data_sets_features(tabular):
    """breast_cancer_two_input carries scikit-learn's feature names, per input; a saliency
    config on it names the bars with them unless it gives its own."""
    from sklearn.datasets import load_breast_cancer

    from advgrad.config.saliency_build import feature_names_of
    from advgrad.saliency.config import parse_saliency
    from advgrad.saliency.plots import _features
    from advgrad.schema.catalog import Catalog

    sklearn_names = tuple(load_breast_cancer().feature_names)
    assert tabular.feature_names == {
        "measurements": sklearn_names[:20],
        "errors": sklearn_names[20:],
    }
    catalog = Catalog(
        attacks={}, norms=("linf",), datasets=("breast_cancer_two_input",), models=("m",)
    )
    document = {"model": "m", "data": {"name": "breast_cancer_two_input"}, "methods": ["vanilla"]}
    x = {k: v[:2] for k, v in tabular.x_test.items()}
    names = feature_names_of(parse_saliency(document, catalog), x)
    assert names == tabular.feature_names
    labels, _ = _features({k: np.zeros((2, v.shape[1])) for k, v in x.items()}, names)
    assert labels[:2] == ["mean radius", "mean texture"] and labels[20] == "worst radius"
    own = {"errors": [f"e{i}" for i in range(10)]}  # the config's win
    config = parse_saliency({**document, "feature_names": own}, catalog)
    assert feature_names_of(config, x) == {"errors": tuple(own["errors"])}
