import contextlib
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402


def _two_logical_cpus() -> None:
    """Split the CPU into 2 logical devices before TensorFlow's runtime starts, for the
    tf.distribute tests (tests/test_distribute.py); ops still default to /cpu:0."""
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    with contextlib.suppress(RuntimeError):  # already initialized: the distribute tests skip
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )


_two_logical_cpus()

# Hypothesis keeps caches in ./.hypothesis by default: the suite writes only to temp folders.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="advgrad-hypothesis-"))


# `_isolated_cache` (the session's zoo cache) is in the root conftest.py, for the doctests too.


# Data sets and zoo models shared by the whole session. The models depend on `_isolated_cache`
# explicitly, so they are trained into (and read from) the per-session cache. Treat them as
# read-only: a test that changes a model (compile, set_weights, ...) must work on a copy.


@pytest.fixture(scope="session")
def mirrored():
    """One `tf.distribute.MirroredStrategy` over the 2 logical CPUs for the whole session:
    two such strategies in one process collide in their collective ops' instance keys."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def digits():
    """`advgrad.data.digits()`: 8x8x1 images in [0, 1], 10 classes."""
    from advgrad import data

    return data.digits()


@pytest.fixture(scope="session")
def digits_cnn(_isolated_cache):
    """The zoo's trained `digits-cnn` (logits), for the `digits` data set."""
    from advgrad import zoo

    return zoo.load("digits-cnn")


@pytest.fixture(scope="session")
def mixed_digits_cnn(digits_cnn):
    """``mixed_digits_cnn(policy)``: the zoo's digits CNN built under a mixed-precision
    `policy` ("mixed_float16", "mixed_bfloat16") with the float32 model's weights, built once
    per policy (read-only, like the other shared models)."""
    import keras

    from advgrad import zoo

    built = {}

    def get(policy: str) -> keras.Model:
        if policy not in built:
            keras.mixed_precision.set_global_policy(policy)
            try:
                model = zoo._digits_cnn()
            finally:
                keras.mixed_precision.set_global_policy("float32")
            model.set_weights(digits_cnn.get_weights())
            model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            built[policy] = model
        return built[policy]

    return get


@pytest.fixture(scope="session")
def tabular():
    """`advgrad.data.breast_cancer_two_input()`: dict inputs `measurements` and `errors`."""
    from advgrad import data

    return data.breast_cancer_two_input()


@pytest.fixture(scope="session")
def tabular_model(_isolated_cache):
    """The zoo's trained `tabular-two-input` model, for the `tabular` data set."""
    from advgrad import zoo

    return zoo.load("tabular-two-input")


@pytest.fixture
def clean_registry(monkeypatch):
    """Attacks registered by a test (and entry points it loads) are undone afterwards."""
    import _registry

    return _registry.isolate(monkeypatch)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
