"""Saliency maps: the five methods on real models, completeness, sanity and deletion checks,
bad input, figures, configs."""

import inspect
import pathlib

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

import advgrad
from advgrad import saliency
from advgrad._compile import trace_count
from advgrad._validation import ArgumentError
from advgrad.config.problems import ConfigError
from advgrad.config.registries import default_catalog
from advgrad.config.saliency import METHOD_SETTINGS, load_saliency, parse_saliency
from advgrad.config.saliency import METHODS as CONFIG_METHODS
from advgrad.config.saliency import RULES as CONFIG_RULES

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def images(digits):
    return digits.x_test[:32]


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
    a = np.array([[0.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    b = np.array([[0.0, 0.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    rho = saliency.rank_correlation(a, b)
    assert rho[0] == pytest.approx(spearmanr(a[0], b[0]).statistic) == pytest.approx(3.5 / 4.5)
    assert rho[1] == 0.0  # a constant map ranks nothing


# ------------------------------------------------------------------------------ bad input
def test_bad_input_is_named_before_any_work(digits_cnn, images, tabular, tabular_model):
    x = images[:4]
    cases = [
        (lambda: saliency.vanilla(digits_cnn, x, target=10), "target", "[0, 10)"),
        (lambda: saliency.vanilla(digits_cnn, x, target=[1, 2]), "target", "shape (4,)"),
        (lambda: saliency.vanilla(digits_cnn, x, target=1.5), "target", "class index"),
        (lambda: saliency.integrated_gradients(digits_cnn, x, steps=0), "steps", ">= 1"),
        (lambda: saliency.integrated_gradients(digits_cnn, x, tolerance=-1), "tolerance", ">= 0"),
        (lambda: saliency.integrated_gradients(digits_cnn, x, max_steps=8), "max_steps", ">= 64"),
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
        (lambda: saliency.smoothgrad(digits_cnn, x, samples=0), "samples", ">= 1"),
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


# -------------------------------------------------------------------------------- configs
def test_config_methods_and_defaults_match_the_functions():
    assert CONFIG_METHODS == saliency.METHODS and CONFIG_RULES == saliency.RULES
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
        "methods[1].samples: expected an int >= 1, received 0",
        "methods[1]: unknown key 'noize' (did you mean 'noise'?)",
        "methods[2].steps: expected an int >= 1, received 'many'",
        "methods[2].method: expected one of riemann_middle",
        "methods[3]: missing key 'name'",
        "methods[5]: vanilla is listed twice",
        "target: expected predicted, label or a class id",
        "indices[1]: expected an int >= 0, received -1",
    ):
        assert expected in text, (expected, text)
    with pytest.raises(ConfigError, match="missing key 'methods'"):
        parse_saliency({"model": "digits-cnn", "data": {"name": "digits"}}, catalog)
