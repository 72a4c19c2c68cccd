"""Embedded data sets: fixed splits, dtypes, ranges, read-only arrays, bounds."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

from advgrad import data


def test_digits_shapes_dtypes_and_range():
    ds = data.digits()
    assert ds.name == "digits"
    assert ds.num_classes == 10
    assert ds.input_names is None
    assert ds.x_train.shape == (1347, 8, 8, 1)
    assert ds.x_test.shape == (450, 8, 8, 1)
    assert ds.y_train.shape == (1347,)
    assert ds.y_test.shape == (450,)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.bounds == (0.0, 1.0)
    low, high = ds.bounds
    for x in (ds.x_train, ds.x_test):
        assert x.min() >= low and x.max() <= high
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    # pixel values are k / 16 for integer k
    np.testing.assert_array_equal(ds.x_train * 16, np.round(ds.x_train * 16))
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert set(np.unique(ds.y_test)) == set(range(10))


def test_digits_split_is_fixed_and_stratified():
    ds = data.digits()
    bunch = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data / 16.0, bunch.target, test_size=450, random_state=0, stratify=bunch.target
    )
    np.testing.assert_array_equal(ds.y_test, y_test)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_allclose(ds.x_test.reshape(450, 64), x_test, rtol=0, atol=0)
    np.testing.assert_allclose(ds.x_train.reshape(1347, 64), x_train, rtol=0, atol=0)
    # pinned, so a change of split is noticed
    assert ds.y_test[:12].tolist() == [2, 0, 4, 9, 4, 1, 2, 4, 6, 7, 9, 1]
    assert np.bincount(ds.y_test).tolist() == [45, 46, 44, 46, 45, 46, 45, 45, 43, 45]
    assert float(ds.x_train.sum()) == pytest.approx(26312.8125)


def test_digits_flat_matches_images():
    images, flat = data.digits(), data.digits(flat=True)
    assert flat.x_train.shape == (1347, 64) and flat.x_test.shape == (450, 64)
    np.testing.assert_array_equal(flat.x_train, images.x_train.reshape(-1, 64))
    np.testing.assert_array_equal(flat.x_test, images.x_test.reshape(-1, 64))
    np.testing.assert_array_equal(flat.y_test, images.y_test)


def test_loaders_are_cached_and_read_only():
    assert data.digits() is data.digits()
    assert data.breast_cancer_two_input() is data.breast_cancer_two_input()
    ds = data.digits()
    for array in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[0] = 0
    tab = data.breast_cancer_two_input()
    arrays = [*tab.x_train.values(), *tab.x_test.values(), tab.y_train, tab.y_test]
    arrays += [a for pair in tab.bounds.values() for a in pair]
    for array in arrays:
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[0] = 0
    assert data.digits().x_train[0, 0, 0, 0] == ds.x_train[0, 0, 0, 0]


def test_breast_cancer_two_input_structure():
    ds = data.breast_cancer_two_input()
    assert ds.name == "breast_cancer_two_input"
    assert ds.num_classes == 2
    assert ds.input_names == ("measurements", "errors")
    assert list(ds.x_train) == ["measurements", "errors"]
    assert list(ds.x_test) == ["measurements", "errors"]
    assert ds.x_train["measurements"].shape == (426, 20)
    assert ds.x_train["errors"].shape == (426, 10)
    assert ds.x_test["measurements"].shape == (143, 20)
    assert ds.x_test["errors"].shape == (143, 10)
    for x in (*ds.x_train.values(), *ds.x_test.values()):
        assert x.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert set(np.unique(ds.y_train)) == {0, 1}
    assert np.bincount(ds.y_test).tolist() == [53, 90]
    assert np.bincount(ds.y_train).tolist() == [159, 267]


def test_breast_cancer_standardized_with_training_statistics():
    ds = data.breast_cancer_two_input()
    x_train = np.concatenate([ds.x_train["measurements"], ds.x_train["errors"]], axis=1)
    x_test = np.concatenate([ds.x_test["measurements"], ds.x_test["errors"]], axis=1)
    np.testing.assert_allclose(x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x_train.std(axis=0), 1.0, atol=1e-4)

    bunch = load_breast_cancer()
    raw_train, raw_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=0.25, random_state=0, stratify=bunch.target
    )
    mean, std = raw_train.mean(axis=0), raw_train.std(axis=0)
    np.testing.assert_allclose(x_test, (raw_test - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds.y_test, y_test)
    np.testing.assert_array_equal(ds.y_train, y_train)


def test_breast_cancer_bounds_are_training_min_max():
    ds = data.breast_cancer_two_input()
    assert set(ds.bounds) == {"measurements", "errors"}
    for key, width in (("measurements", 20), ("errors", 10)):
        low, high = ds.bounds[key]
        assert low.shape == (width,) and high.shape == (width,)
        assert np.all(low < high)
        x = ds.x_train[key]
        np.testing.assert_array_equal(low, x.min(axis=0))
        np.testing.assert_array_equal(high, x.max(axis=0))
        assert np.all((x >= low) & (x <= high))
    # the test split lies close to, not necessarily inside, the training range
    for key in ds.input_names:
        low, high = ds.bounds[key]
        assert np.mean((ds.x_test[key] >= low) & (ds.x_test[key] <= high)) > 0.99


def test_get_and_names():
    assert data.names() == ["breast_cancer_two_input", "digits", "mnist"]
    assert data.get("digits") is data.digits()
    assert data.get("digits", flat=True) is data.digits(flat=True)
    assert data.get("breast_cancer_two_input") is data.breast_cancer_two_input()


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"argument `name`.*digits.*received name='cifar10'"):
        data.get("cifar10")
    with pytest.raises(ValueError, match=r"argument `flat`: expected True or False"):
        data.digits(flat="yes")


def test_repr_is_short():
    text = repr(data.digits())
    assert text.startswith("Dataset(name='digits', train=1347, test=450")
    assert len(text) < 200
