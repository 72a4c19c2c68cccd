"""Mixed precision: models built under ``mixed_float16`` / ``mixed_bfloat16`` policies.

Such a model casts its float32 inputs to half precision inside its layers and returns
half-precision logits. advgrad casts the outputs it reads to float32
(`advgrad.models.full_precision`), so losses and gradients run in float32, while the inputs,
the perturbation, its projection and clipping stay in float32: the budget holds exactly.
The digits CNN is rebuilt under each policy with the float32 zoo model's weights.
"""

from __future__ import annotations

import pathlib
import re

import _outcomes as outcomes
import invariants
import keras
import numpy as np
import pytest

import advgrad

POLICIES = ("mixed_float16", "mixed_bfloat16")
EPS = 0.1
BOUNDS = (0.0, 1.0)


@pytest.fixture(scope="module", params=POLICIES)
def mixed(request, mixed_digits_cnn):
    return request.param, mixed_digits_cnn(request.param)


@pytest.fixture(scope="module")
def images(digits):
    return digits.x_test[:100], digits.y_test[:100]


def _checked(x_adv, x) -> np.ndarray:
    """An attack's output, after the invariant every output keeps (tests/invariants.py)."""
    invariants.assert_within(x_adv, x, eps=EPS, norm="linf", bounds=BOUNDS)
    return np.asarray(x_adv)


def _vanished(model, reference, x, y) -> np.ndarray:
    """Samples whose `model` input gradient is exactly zero where `reference`'s is not."""
    grads = advgrad.input_gradients(model, x, y).reshape(len(y), -1)
    expected = advgrad.input_gradients(reference, x, y).reshape(len(y), -1)
    return ~np.any(grads != 0, axis=1) & np.any(expected != 0, axis=1)


def test_policy_is_restored_and_model_is_mixed(mixed, images):
    policy, model = mixed
    assert keras.mixed_precision.global_policy().name == "float32"
    expected = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[policy]
    assert model(images[0][:2]).dtype.name == expected  # the model's own output
    outputs = advgrad.predictions.predict(model, images[0][:2])  # what advgrad reads
    assert outputs.dtype == np.float32


# PGD and APGD-CE (the first attack of the "fast" and "standard" suites), 10 steps, seed 0.
ATTACKS = {
    "pgd": advgrad.attacks.PGD(eps=EPS, bounds=BOUNDS, steps=10, seed=0),
    "apgd-ce": advgrad.attacks.APGD(eps=EPS, bounds=BOUNDS, steps=10, seed=0),
}


@pytest.fixture(scope="module")
def float32_runs(digits_cnn, images):
    """An attack's float32 outputs with seeds 0 .. SEEDS - 1 (each attack run once)."""
    x, y = images
    runs: dict[str, list[np.ndarray]] = {}

    def get(name: str) -> list[np.ndarray]:
        if name not in runs:
            attack = ATTACKS[name]
            runs[name] = [
                _checked(attack.replace(seed=s)(digits_cnn, x, y), x) for s in range(outcomes.SEEDS)
            ]
        return runs[name]

    return get


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_robust_outcomes_match_float32_up_to_rounding(
    digits_cnn, mixed_digits_cnn, images, float32_runs, name, policy
):
    """Per sample, the attack on the half-precision model reaches the float32 outcome wherever
    rounding cannot legitimately change it; the tolerance is measured, not tuned to one machine
    (float16 kernels differ between CPUs): see tests/_outcomes.py.

    Excused besides: samples the half-precision attack could not move because their input
    gradient underflows to zero in float16 (see the xfail test below). That is float16's range,
    the same on every CPU, not its kernels; remove the excuse when the xfail test passes.
    """
    model = mixed_digits_cnn(policy)
    x, y = images
    x_adv = _checked(ATTACKS[name](model, x, y), x)
    outcomes.compare(
        outcomes.predictor(digits_cnn),
        outcomes.predictor(model),
        x,
        y,
        float32_runs(name),
        x_adv,
        excused=_vanished(model, digits_cnn, x_adv, y),
    ).check()


@pytest.mark.xfail(
    strict=True,
    reason="float16 backpropagation underflows where float32's cross-entropy saturates: "
    "advgrad does not scale the loss before differentiating a mixed_float16 model",
)
def test_float16_input_gradients_do_not_vanish(digits_cnn, mixed_digits_cnn, images):
    model = mixed_digits_cnn("mixed_float16")
    x, y = images
    vanished = _vanished(model, digits_cnn, x, y)
    assert not vanished.any(), f"{int(vanished.sum())} of {len(y)} clean samples"


def test_losses_and_input_gradients_are_float32_and_finite(mixed, digits_cnn, images):
    _, model = mixed
    x, y = images[0][:32], images[1][:32]
    loss, grads = advgrad.input_gradients(model, x, y, return_loss=True)
    ref_loss, ref_grads = advgrad.input_gradients(digits_cnn, x, y, return_loss=True)
    assert loss.dtype == np.float32 and grads.dtype == np.float32 and grads.shape == x.shape
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grads))
    cosine = np.sum(grads * ref_grads) / (np.linalg.norm(grads) * np.linalg.norm(ref_grads))
    assert cosine > 0.95
    np.testing.assert_allclose(loss, ref_loss, atol=0.1, rtol=0.05)


def test_large_losses_do_not_overflow(digits_cnn, mixed_digits_cnn, images):
    """Logits scaled to fit float16 (max 65504) whose cross-entropy does not: advgrad
    computes the loss from the float16 logits in float32."""
    x = images[0][:16]
    logits = digits_cnn.predict(x, verbose=0)
    scale = 50_000.0 / np.abs(logits).max()
    worst = np.argmin(logits, axis=1)  # the least likely class: loss = max - min logit
    base = mixed_digits_cnn("mixed_float16")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Model(base.input, keras.layers.Rescaling(scale)(base.output))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model(x).dtype.name == "float16" and np.all(np.isfinite(model(x).numpy()))
    loss, grads = advgrad.input_gradients(model, x, worst, loss="ce", return_loss=True)
    assert loss.dtype == np.float32 and np.all(np.isfinite(loss)) and loss.max() > 65504
    assert np.all(np.isfinite(grads))


def test_readme_example_runs():
    """README's "Mixed precision and XLA" example runs (it asserts its own claim)."""
    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    section = readme.read_text().split("## Mixed precision and XLA", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert namespace["x_adv"].shape == (16, 8, 8, 1)
