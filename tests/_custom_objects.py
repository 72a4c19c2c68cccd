"""A user's module of custom Keras objects, for the tests of ``imports:`` and ``--import``.

The module is written into a test's folder under a name unique to that folder, imported to
build and save a model, then forgotten with its Keras registrations, as a fresh process would
have neither: only importing it again (what ``imports:`` does) lets the model load.
Used by tests/test_config.py, tests/test_cli.py and tests/test_user_path.py.
"""

from __future__ import annotations

import importlib
import pathlib
import re
import sys
from types import ModuleType

import keras
import numpy as np

SOURCE = """\
import keras


@keras.saving.register_keras_serializable(package={package!r})
class ScaledDense(keras.layers.Dense):
    \"\"\"A dense layer whose output is multiplied by a fixed `scale`.\"\"\"

    def __init__(self, units, scale=1.0, **kwargs):
        super().__init__(units, **kwargs)
        self.scale = scale

    def call(self, inputs):
        return super().call(inputs) * self.scale

    def get_config(self):
        return {{**super().get_config(), "scale": self.scale}}


@keras.saving.register_keras_serializable(package={package!r})
def ce(y_true, y_pred):
    \"\"\"Cross-entropy on logits with integer labels.\"\"\"
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


@keras.saving.register_keras_serializable(package={package!r})
def smoothed_ce(y_true, y_pred):
    \"\"\"Cross-entropy on logits with integer labels (10 classes) and 5% label smoothing.\"\"\"
    labels = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, [-1]), "int32"), 10)
    labels = labels * 0.95 + 0.005
    return keras.losses.categorical_crossentropy(labels, y_pred, from_logits=True)
"""

# What a config or the command line says when a model needs an object nobody imported.
UNKNOWN_HINT = (
    "(register it with @keras.saving.register_keras_serializable() in a module listed under "
    "`imports:`, or pass --import MODULE)"
)

# A config for `custom_model`'s model and data, without `imports:`.
CONFIG = (
    "model: custom.keras\n"
    "data: {npz: d.npz, x: x, y: y, bounds: [0.0, 1.0]}\n"
    "suite: [fgsm]\n"
    "eps: 0.1\n"
)


def write_module(folder: pathlib.Path, prefix: str = "my_layers") -> tuple[str, ModuleType]:
    """Writes ``<prefix>_<folder name>.py`` into `folder` and imports it (`folder` is on
    ``sys.path`` only while importing). Returns the module's name and the module."""
    name = f"{prefix}_" + re.sub(r"\W", "_", folder.name)
    (folder / f"{name}.py").write_text(SOURCE.format(package=name))
    sys.path.insert(0, str(folder))
    try:
        return name, importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def forget(module: str) -> None:
    """Drops the module and its Keras registrations, as a fresh process has neither."""
    registered = keras.saving.get_custom_objects()
    for key in [key for key in registered if key.startswith(f"{module}>")]:
        del registered[key]
    sys.modules.pop(module, None)


def custom_model(folder: pathlib.Path) -> tuple[str, str]:
    """A model saved with the module's layer (``ScaledDense(3, scale=2.0)``) and loss
    (``ce``) as ``custom.keras``, 8 rows of 4 features in ``d.npz``; then the module is
    forgotten. Returns ``(module name, CONFIG)``."""
    module, custom = write_module(folder)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, custom.ScaledDense(3, scale=2.0)(inputs))
    model.compile(loss=custom.ce)
    model.save(folder / "custom.keras")
    x = np.random.default_rng(0).uniform(0, 1, (8, 4)).astype("float32")
    np.savez(folder / "d.npz", x=x, y=np.arange(8) % 3)
    forget(module)
    return module, CONFIG
