"""Reference models: small Keras models trained deterministically on the embedded data sets.

Each model is trained the first time it is asked for (seconds on a CPU, minutes for the
MNIST models; `load` says so on stderr, or to the ``advgrad.zoo`` logger when logging is
configured), then cached as a ``.keras`` file with a JSON sidecar that records its measured
clean test accuracy and the Keras/TensorFlow versions that built it. The MNIST models need
the ``mnist`` extra (``pip install "advgrad[mnist]"``) for their data. The cache folder is
``$ADVGRAD_CACHE`` when set, else ``~/.cache/advgrad/models``.

Every zoo model outputs **logits** (no softmax) and is compiled with
``keras.losses.SparseCategoricalCrossentropy(from_logits=True)`` and ``metrics=["accuracy"]``,
so it is ready for ``predict``, ``evaluate`` and the attacks.

>>> from advgrad import zoo
>>> [c.name for c in zoo.list_models()]
['digits-cnn', 'digits-cnn-pgd', 'digits-mlp', 'mnist-cnn', 'mnist-cnn-pgd', 'tabular-two-input']
>>> zoo.card("digits-cnn").output
'logits'
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from advgrad import data as _data
from advgrad._io import atomic_write, path_lock
from advgrad._validation import check_bool, invalid

if TYPE_CHECKING:
    import keras

__all__ = ["ModelCard", "build", "cache_dir", "card", "dataset", "list_models", "load", "names"]

SEED = 0
"""Seed given to ``keras.utils.set_random_seed`` before building any zoo model."""


@dataclasses.dataclass(frozen=True, eq=False)
class ModelCard:
    """What a zoo model is, what it was trained on and how well it does.

    Attributes:
        name: The name to pass to :func:`load`.
        description: One-line description of the architecture.
        data: The :mod:`advgrad.data` call that gives its training and test data.
        recipe: One-line training recipe.
        input_shape: Shape of one sample (without the batch axis), or for several inputs a
            dict of shapes keyed by input name.
        output: Always ``"logits"``: the model has no final softmax.
        num_classes: Number of classes (length of the logits vector).
        bounds: Valid input range the model was trained on, as in ``Dataset.bounds``.
        min_accuracy: Test accuracy the recipe is checked to reach.
        clean_accuracy: Test accuracy measured when the cached model was built, or ``None``
            when no built model is in the cache.
        parameters: Number of weights, or ``None`` when not built yet.
        built_with: Versions that built the cached model (``keras``, ``tensorflow``,
            ``numpy``) and the training time in seconds (``build_seconds``), or ``None``
            when not built yet.
        robust_accuracy: Its test accuracy under the attack it was checked with when it was
            built (``attack``, ``eps``, ``norm``, ``accuracy``), or ``None`` (not built yet,
            or no check in its recipe: the adversarially trained models and the MNIST ones
            have one).
        suite_accuracy: Its robust accuracy under an attack suite at the same eps when it was
            built (``suite``, ``eps``, ``norm``, ``samples``: the first test images it ran
            on, ``accuracy``, ``seconds``), or ``None`` (not built yet, or no suite check).

    >>> c = card("digits-mlp")
    >>> c.input_shape, c.num_classes, c.bounds
    ((64,), 10, (0.0, 1.0))
    """

    name: str
    description: str
    data: str
    recipe: str
    input_shape: tuple[int, ...] | dict[str, tuple[int, ...]]
    output: str
    num_classes: int
    bounds: Any
    min_accuracy: float
    clean_accuracy: float | None = None
    parameters: int | None = None
    built_with: dict[str, Any] | None = None
    robust_accuracy: dict[str, Any] | None = None
    suite_accuracy: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class _Check:
    """How a built model's robustness is measured for its card (Linf, on the test split)."""

    eps: float
    steps: int = 40  # PGD-steps x restarts (ce loss) on every test image
    restarts: int = 5
    suite: str | None = None  # and this suite (`advgrad.attacks.get_suite`) ...
    suite_samples: int = 200  # ... on the first this many test images
    min_robust_accuracy: float = 0.0


@dataclasses.dataclass(frozen=True)
class _Adversarial:
    """How a zoo model is trained adversarially (`advgrad.training.adversarial`)."""

    eps: float
    steps: int
    objective: str = "pgd-at"
    check_steps: int = 40  # the PGD that measures the card's robust accuracy
    check_restarts: int = 5
    min_robust_accuracy: float = 0.5

    @property
    def check(self) -> _Check:
        return _Check(
            self.eps,
            self.check_steps,
            self.check_restarts,
            min_robust_accuracy=self.min_robust_accuracy,
        )

    @property
    def recipe(self) -> str:
        return (
            f"{self.objective.upper()} (Madry et al. 2018): each batch replaced by PGD-"
            f"{self.steps} examples (Linf eps {self.eps:g}, step 2.5 x eps / {self.steps}, "
            "random start) made from the current weights inside the training step"
        )


@dataclasses.dataclass(frozen=True)
class _Spec:
    description: str
    data: str
    load_data: Callable[[], _data.Dataset]
    input_shape: tuple[int, ...] | dict[str, tuple[int, ...]]
    architecture: Callable[[], keras.Model]
    epochs: int
    batch_size: int
    learning_rate: float
    min_accuracy: float
    seconds: float  # about how long training and checks take on a 2-core CPU (first use)
    adversarial: _Adversarial | None = None
    check: _Check | None = None  # None: the adversarial recipe's check, if any
    num_classes: int | None = None  # with bounds: the card without loading the data
    bounds: Any = None

    @property
    def robustness_check(self) -> _Check | None:
        if self.check is not None:
            return self.check
        return None if self.adversarial is None else self.adversarial.check

    @property
    def recipe(self) -> str:
        text = (
            f"Adam(lr={self.learning_rate:g}, cosine decay to 0), {self.epochs} epochs, "
            f"batch {self.batch_size}, sparse cross-entropy from logits, seed {SEED}, "
            "op determinism on"
        )
        return text if self.adversarial is None else f"{self.adversarial.recipe}; {text}"


def _digits_cnn() -> keras.Model:
    import keras

    x = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(x)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(32, activation="relu", name="dense")(h)
    logits = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(x, logits, name="digits_cnn")


def _mnist_cnn() -> keras.Model:
    import keras

    x = keras.Input((28, 28, 1), name="image")
    h = keras.layers.Conv2D(32, 3, 2, padding="same", activation="relu", name="conv1")(x)
    h = keras.layers.Conv2D(64, 3, 2, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(128, activation="relu", name="dense")(h)
    logits = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(x, logits, name="mnist_cnn")


def _digits_mlp() -> keras.Model:
    import keras

    x = keras.Input((64,), name="pixels")
    h = keras.layers.Dense(128, activation="relu", name="dense1")(x)
    h = keras.layers.Dense(64, activation="relu", name="dense2")(h)
    logits = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(x, logits, name="digits_mlp")


def _tabular_two_input() -> keras.Model:
    import keras

    measurements = keras.Input((20,), name="measurements")
    errors = keras.Input((10,), name="errors")
    a = keras.layers.Dense(16, activation="relu", name="measurements_dense")(measurements)
    b = keras.layers.Dense(16, activation="relu", name="errors_dense")(errors)
    h = keras.layers.Concatenate(name="concat")([a, b])
    h = keras.layers.Dense(16, activation="relu", name="dense")(h)
    logits = keras.layers.Dense(2, name="logits")(h)
    return keras.Model(
        {"measurements": measurements, "errors": errors}, logits, name="tabular_two_input"
    )


MNIST_SECONDS = {"mnist-cnn": 180, "mnist-cnn-pgd": 1000}
"""About how long the MNIST models take to train and check on 2 busy CPU cores (measured:
163 s and 1,035 s, of which 66 s and 564 s training, at a load average of 5 to 10)."""

_MNIST: dict[str, Any] = {  # what the MNIST models share: data, architecture, optimiser
    "data": "mnist()",
    "load_data": lambda: _data.mnist(),
    "input_shape": (28, 28, 1),
    "architecture": _mnist_cnn,
    "learning_rate": 1e-3,
    "num_classes": 10,  # the card without the data (the `mnist` extra)
    "bounds": (0.0, 1.0),
}

_SPECS: dict[str, _Spec] = {
    "digits-cnn": _Spec(
        description="Conv(32)-Conv(64)-Dense(32)-Dense(10) CNN on 8x8 digits, 150k weights",
        data="digits()",
        load_data=lambda: _data.digits(),
        input_shape=(8, 8, 1),
        architecture=_digits_cnn,
        epochs=20,
        batch_size=32,
        learning_rate=3e-3,
        min_accuracy=0.95,
        seconds=20,
    ),
    "digits-cnn-pgd": _Spec(
        description=(
            "the digits-cnn architecture adversarially trained (PGD-AT, Linf eps 0.2) by "
            "advgrad.training"
        ),
        data="digits()",
        load_data=lambda: _data.digits(),
        input_shape=(8, 8, 1),
        architecture=_digits_cnn,
        epochs=30,
        batch_size=32,
        learning_rate=3e-3,
        min_accuracy=0.9,
        seconds=240,
        adversarial=_Adversarial(eps=0.2, steps=7),
    ),
    "digits-mlp": _Spec(
        description="Dense(128)-Dense(64)-Dense(10) MLP on flattened 8x8 digits, 17k weights",
        data="digits(flat=True)",
        load_data=lambda: _data.digits(flat=True),
        input_shape=(64,),
        architecture=_digits_mlp,
        epochs=20,
        batch_size=32,
        learning_rate=3e-3,
        min_accuracy=0.95,
        seconds=10,
    ),
    "mnist-cnn": _Spec(
        description=(
            "Conv(32, stride 2)-Conv(64, stride 2)-Dense(128)-Dense(10) CNN on 28x28 MNIST, "
            "422k weights"
        ),
        epochs=20,
        batch_size=64,
        min_accuracy=0.965,
        seconds=MNIST_SECONDS["mnist-cnn"],
        check=_Check(eps=0.3, suite="standard"),
        **_MNIST,
    ),
    "mnist-cnn-pgd": _Spec(
        description=(
            "the mnist-cnn architecture adversarially trained (PGD-AT, Linf eps 0.3) by "
            "advgrad.training"
        ),
        epochs=30,
        batch_size=32,  # twice the updates of batch 64: robust 0.821, not 0.779
        min_accuracy=0.95,
        seconds=MNIST_SECONDS["mnist-cnn-pgd"],
        adversarial=_Adversarial(eps=0.3, steps=10, min_robust_accuracy=0.8),
        check=_Check(eps=0.3, suite="standard", min_robust_accuracy=0.8),
        **_MNIST,
    ),
    "tabular-two-input": _Spec(
        description=(
            "two-input MLP on breast-cancer features: Dense(16) per input, concatenated, "
            "Dense(16)-Dense(2)"
        ),
        data="breast_cancer_two_input()",
        load_data=lambda: _data.breast_cancer_two_input(),
        input_shape={"measurements": (20,), "errors": (10,)},
        architecture=_tabular_two_input,
        epochs=30,
        batch_size=32,
        learning_rate=3e-3,
        min_accuracy=0.93,
        seconds=10,
    ),
}


def names() -> list[str]:
    """Names of every zoo model, sorted; no data set is built and no model is loaded.

    >>> names()  # doctest: +NORMALIZE_WHITESPACE
    ['digits-cnn', 'digits-cnn-pgd', 'digits-mlp', 'mnist-cnn', 'mnist-cnn-pgd',
     'tabular-two-input']
    """
    return sorted(_SPECS)


def _spec(name: str) -> _Spec:
    if not isinstance(name, str) or name not in _SPECS:
        raise invalid("name", f"one of {names()}", name)
    return _SPECS[name]


def cache_dir() -> pathlib.Path:
    """The folder zoo models are cached in: ``$ADVGRAD_CACHE``, else ``~/.cache/advgrad/models``.

    The folder is created when the first model is written, not by this call.

    >>> isinstance(cache_dir(), pathlib.Path)
    True
    """
    env = os.environ.get("ADVGRAD_CACHE")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "advgrad" / "models"


def _folder(directory: str | os.PathLike | None) -> pathlib.Path:
    return cache_dir() if directory is None else pathlib.Path(directory).expanduser()


def _read_sidecar(path: pathlib.Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        warnings.warn(f"Ignoring unreadable zoo sidecar {path}: {err}", stacklevel=3)
        return None
    return info if isinstance(info, dict) else None


def dataset(name: str) -> _data.Dataset:
    """The embedded data set a zoo model was trained and measured on.

    Args:
        name: A zoo model name (see :func:`list_models`).

    Returns:
        The model's :class:`advgrad.data.Dataset`, shaped to fit its inputs.

    Raises:
        ValueError: If ``name`` is not a zoo model.

    >>> dataset("digits-mlp").x_test.shape
    (450, 64)
    """
    return _spec(name).load_data()


def card(name: str, *, directory: str | os.PathLike | None = None) -> ModelCard:
    """The card of a zoo model, with its measured accuracy if it is in the cache.

    Args:
        name: A zoo model name (see :func:`list_models`).
        directory: Cache folder to look in. Defaults to :func:`cache_dir`.

    Returns:
        A :class:`ModelCard`. ``clean_accuracy``, ``parameters`` and ``built_with`` are
        ``None`` until the model has been built into ``directory``.

    Raises:
        ValueError: If ``name`` is not a zoo model.

    >>> card("tabular-two-input").input_shape
    {'measurements': (20,), 'errors': (10,)}
    """
    spec = _spec(name)
    folder = _folder(directory)
    info = None
    if (folder / f"{name}.keras").exists():
        info = _read_sidecar(folder / f"{name}.json")
    if spec.num_classes is None:
        ds = spec.load_data()
        num_classes, bounds = ds.num_classes, ds.bounds
    else:  # known without the data (the MNIST models' data needs an optional extra)
        num_classes, bounds = spec.num_classes, spec.bounds
    built_with = None
    if info is not None:
        keys = ("keras", "tensorflow", "numpy", "build_seconds")
        built_with = {k: info[k] for k in keys if k in info}
    return ModelCard(
        name=name,
        description=spec.description,
        data=spec.data,
        recipe=spec.recipe,
        input_shape=spec.input_shape,
        output="logits",
        num_classes=num_classes,
        bounds=bounds,
        min_accuracy=spec.min_accuracy,
        clean_accuracy=None if info is None else info.get("clean_accuracy"),
        parameters=None if info is None else info.get("parameters"),
        built_with=built_with,
        robust_accuracy=None if info is None else info.get("robust_accuracy"),
        suite_accuracy=None if info is None else info.get("suite_accuracy"),
    )


def list_models(*, directory: str | os.PathLike | None = None) -> list[ModelCard]:
    """Cards of every zoo model, sorted by name.

    Args:
        directory: Cache folder to read measured accuracies from. Defaults to
            :func:`cache_dir`.

    Returns:
        A list of :class:`ModelCard`.

    >>> [c.output for c in list_models()]
    ['logits', 'logits', 'logits', 'logits', 'logits', 'logits']
    """
    return [card(name, directory=directory) for name in names()]


def _accuracy(model: keras.Model, ds: _data.Dataset) -> float:
    logits = model.predict(ds.x_test, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == ds.y_test))


def _train(name: str) -> tuple[keras.Model, dict[str, Any]]:
    import keras
    import tensorflow as tf

    from advgrad.training import STEPS_PER_EXECUTION, EpochBatches

    spec = _spec(name)
    ds = spec.load_data()
    start = time.perf_counter()
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    model = spec.architecture()
    trained = model if spec.adversarial is None else _adversarial(model, spec.adversarial, ds)
    per_epoch = int(np.ceil(len(ds.y_train) / spec.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(spec.learning_rate, spec.epochs * per_epoch)
    trained.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=min(per_epoch, STEPS_PER_EXECUTION),  # the same weights, faster
    )
    if spec.adversarial is None:  # standard training: Keras' numpy path (weights as built)
        trained.fit(
            ds.x_train,
            ds.y_train,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            shuffle=True,
            verbose=0,
        )
    else:  # as `advgrad train` feeds it: a tf.data pipeline, shuffled by seed and epoch
        batches = EpochBatches(ds.x_train, ds.y_train, batch_size=spec.batch_size, seed=SEED)
        trained.fit(
            batches.dataset, epochs=spec.epochs, callbacks=[batches], shuffle=False, verbose=0
        )
    seconds = time.perf_counter() - start
    if trained is not model:
        model = trained.plain_model()
    accuracy = _accuracy(model, ds)
    info = {
        "name": name,
        "clean_accuracy": accuracy,
        "parameters": int(model.count_params()),
        "build_seconds": round(seconds, 3),
        "recipe": spec.recipe,
        "data": spec.data,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if accuracy < spec.min_accuracy:
        warnings.warn(
            f"Zoo model {name!r} reached test accuracy {accuracy:.4f}, below the expected "
            f"{spec.min_accuracy}; the recipe may not transfer to this TensorFlow build.",
            stacklevel=3,
        )
    check = spec.robustness_check
    if check is not None:
        info["robust_accuracy"] = _robust_accuracy(model, ds, check)
        if check.suite is not None:
            info["suite_accuracy"] = _suite_accuracy(model, ds, check)
        robust = info["robust_accuracy"]["accuracy"]
        if robust < check.min_robust_accuracy:
            warnings.warn(
                f"Zoo model {name!r} reached robust accuracy {robust:.4f}, below the expected "
                f"{check.min_robust_accuracy}.",
                stacklevel=3,
            )
    return model, info


def _adversarial(model: keras.Model, recipe: _Adversarial, ds: _data.Dataset) -> keras.Model:
    from advgrad import attacks, training

    attack = attacks.PGD(eps=recipe.eps, steps=recipe.steps, bounds=ds.bounds)
    return training.adversarial(model, attack, objective=recipe.objective, seed=SEED)


def _robust_accuracy(model: keras.Model, ds: _data.Dataset, recipe: _Check) -> dict:
    """Test accuracy under PGD (``steps`` x ``restarts``, ce loss) at the check's eps."""
    from advgrad import attacks

    attack = attacks.PGD(
        eps=recipe.eps,
        steps=recipe.steps,
        restarts=recipe.restarts,
        bounds=ds.bounds,
        loss="ce",
        seed=SEED,
    )
    result = attack.run(model, ds.x_test, ds.y_test)
    correct = np.argmax(model.predict(ds.x_test, verbose=0), -1) == ds.y_test
    return {
        "attack": f"PGD-{recipe.steps} x {recipe.restarts} restarts (ce loss)",
        "eps": recipe.eps,
        "norm": "linf",
        "accuracy": float(np.mean(correct & ~result.fooled)),
    }


def _suite_accuracy(model: keras.Model, ds: _data.Dataset, recipe: _Check) -> dict:
    """Robust accuracy under the check's suite at its eps, on the first test images."""
    from advgrad import attacks
    from advgrad.evaluation import evaluate

    n = min(recipe.suite_samples, len(ds.y_test))
    start = time.perf_counter()
    report = evaluate(
        model,
        (ds.x_test[:n], ds.y_test[:n]),
        suite=attacks.get_suite(recipe.suite, bounds=ds.bounds),
        eps=[recipe.eps],
        batch_size=n,
        seed=SEED,
        progress=False,
    )
    return {
        "suite": recipe.suite,
        "eps": recipe.eps,
        "norm": "linf",
        "samples": n,
        "accuracy": float(report.robust_accuracy[recipe.eps]),
        "seconds": round(time.perf_counter() - start, 3),
    }


def build(name: str) -> keras.Model:
    """Train a zoo model from scratch, deterministically, without touching the cache.

    Seeds everything with ``keras.utils.set_random_seed(0)`` and turns on
    ``tf.config.experimental.enable_op_determinism()`` (both stay in effect afterwards), so
    two builds on the same machine and versions give identical weights.

    Args:
        name: A zoo model name (see :func:`list_models`).

    Returns:
        The trained, compiled ``keras.Model`` (outputs logits).

    Raises:
        ValueError: If ``name`` is not a zoo model.

    >>> model = build("tabular-two-input")
    >>> model.output_shape
    (None, 2)
    """
    return _train(name)[0]


def _save(model: keras.Model, info: dict[str, Any], folder: pathlib.Path) -> None:
    from advgrad._io import json_text  # valid JSON: a non-finite number is null

    name = info["name"]
    atomic_write(folder / f"{name}.keras", lambda path: model.save(path, overwrite=True))
    atomic_write(folder / f"{name}.json", json_text(info, indent=2) + "\n")


def load(
    name: str, *, retrain: bool = False, directory: str | os.PathLike | None = None
) -> keras.Model:
    """Load a zoo model from the cache, training and caching it first if needed.

    The file is read with ``keras.models.load_model(path, safe_mode=True, compile=True)``.
    Writes go to a temporary file that is renamed into place, and a lock file beside it lets
    one process train a missing model while others wait for it and read it. A cached file
    that cannot be read is rebuilt with a warning.

    Args:
        name: A zoo model name (see :func:`list_models`).
        retrain: If True, train again and overwrite the cached model. Defaults to False.
        directory: Cache folder. Defaults to :func:`cache_dir` (``$ADVGRAD_CACHE`` or
            ``~/.cache/advgrad/models``).

    Returns:
        The compiled ``keras.Model``, outputting logits, ready for ``predict``.

    Raises:
        ValueError: If ``name`` is not a zoo model or ``retrain`` is not a bool.

    >>> model = load("digits-mlp")
    >>> model.predict(dataset("digits-mlp").x_test[:2], verbose=0).shape
    (2, 10)
    """
    _spec(name)
    retrain = check_bool("retrain", retrain)
    folder = _folder(directory)
    path = folder / f"{name}.keras"
    cached = None if retrain else _cached(path)
    if cached is not None:
        return cached
    folder.mkdir(parents=True, exist_ok=True)
    with path_lock(folder / f".{name}.lock", wait=True):  # one process trains, others wait
        cached = None if retrain else _cached(path)  # trained while this one waited
        return cached if cached is not None else _train_and_save(name, folder, retrain)


def _cached(path: pathlib.Path) -> keras.Model | None:
    """The cached model at `path`, or None: missing, or unreadable (with a warning)."""
    if not path.exists():
        return None
    import keras

    try:
        return keras.models.load_model(path, safe_mode=True, compile=True)
    except Exception as err:  # any unreadable file is rebuilt
        warnings.warn(
            f"Could not load cached zoo model {str(path)!r} ({err}); rebuilding it.",
            stacklevel=3,
        )
    return None


def _train_and_save(name: str, folder: pathlib.Path, retrain: bool) -> keras.Model:
    why = "retrain=True" if retrain else "first use"
    _say(
        f"training {name!r} ({why}; about {_spec(name).seconds:g} s on a 2-core CPU); "
        f"cached in {folder}"
    )
    model, info = _train(name)
    _save(model, info, folder)
    _say(
        f"trained {name!r} in {info['build_seconds']:.1f} s (test accuracy "
        f"{info['clean_accuracy']:.4f})"
    )
    return model


_log = logging.getLogger(__name__)


def _say(message: str) -> None:
    """One line of progress: to the ``advgrad.zoo`` logger (INFO) when the application
    configured logging (a handler on its way up), else one line on stderr: quiet in
    pytest, which captures logging; seen in a terminal or a notebook."""
    if _log.hasHandlers():
        _log.info(message)
    else:
        sys.stderr.write(f"{__name__}: {message}\n")
