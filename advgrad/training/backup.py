"""`Backup`: a killed training run resumed to the uninterrupted weights, by its own run only.

Like ``keras.callbacks.BackupAndRestore``, plus three things: the backup carries the run's
*fingerprint* (what determines its weights) and a backup of another fingerprint is refused,
naming what differs; it keeps every epoch's logs, so a resumed run has the whole history
(Keras' ``History`` holds only the epochs of the resumed process); and each epoch is
committed at once (the weights file is written and fsynced, then ``run.json``, which names
it and its SHA-256, is replaced atomically), so a kill at any moment leaves the previous
epoch's backup or the new one. What it reads back is checked, never trusted.

>>> import numpy as np, keras, tempfile
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
>>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> backup = Backup(tempfile.mkdtemp() + "/backup", {"learning_rate": 0.01})
>>> fit = model.fit(np.zeros((4, 2)), np.arange(4) % 2, epochs=2, callbacks=[backup], verbose=0)
>>> len(backup.history["loss"]), backup.problem
(2, None)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import keras

from advgrad._io import atomic_write, json_text, read_regular
from advgrad._validation import ArgumentError

__all__ = ["BACKUP_FILE", "Backup"]

BACKUP_FILE = "run.json"
"""The file of a backup folder that names its run, its epochs, its weights and history."""

_FORMAT = "advgrad.training.backup"
_VERSION = 1
_MAX_BYTES = 16 * 2**20
_WEIGHTS = re.compile(r"epoch-([1-9][0-9]{0,8})\.weights\.h5")
_KERAS_FILES = ("latest.weights.h5", "training_metadata.json")


def _short(value: Any) -> str | None:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else None


def _differences(old: Mapping, new: Mapping) -> list[str]:
    """``key old -> new`` for each key whose value differs (the key alone for long values)."""
    missing = object()
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if a == b:
            continue
        a_text = "(none)" if a is missing else _short(a)
        b_text = "(none)" if b is missing else _short(b)
        found.append(f"{key} {a_text} -> {b_text}" if a_text and b_text else str(key))
    return found


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Backup(keras.callbacks.Callback):
    """Back the training state up at each epoch's end; resume a run of the same fingerprint.

    Args:
        folder: The backup folder: created at the first epoch's end, removed (its own files)
            when training ends.
        fingerprint: A JSON-able mapping of what determines the weights (settings, digests
            of the initial weights and the data); a backup of another one is refused.

    Attributes:
        epochs: Epochs done: in the backup found (resumed when ``fit`` begins), then as run.
        history: Every epoch's logs, restored and new: ``{key: [value per epoch]}``.
        problem: Why the backup found cannot be resumed (one line), or None.

    Raises:
        ArgumentError: When ``fit`` begins, if the backup cannot be resumed (``problem``).
    """

    def __init__(self, folder: str | os.PathLike, fingerprint: Mapping[str, Any]):
        super().__init__()
        self.folder = pathlib.Path(folder)
        self.fingerprint = json.loads(json_text(dict(fingerprint), default=str))
        self._set_epoch = False
        self._read()

    def _read(self) -> None:
        self.epochs, self.history, self.problem = 0, {}, None
        self._weights: pathlib.Path | None = None
        run = self.folder / BACKUP_FILE
        if not run.exists():
            if any((self.folder / name).exists() for name in _KERAS_FILES):
                self.problem = (
                    f"{self.folder} holds a backup without its {BACKUP_FILE} (keras "
                    "BackupAndRestore's or an older advgrad's): its run cannot be checked"
                )
            return  # else nothing was committed: nothing to resume
        try:
            saved = json.loads(read_regular(run, _MAX_BYTES))
            epochs, weights, history = self._check(saved)
        except (OSError, ValueError) as err:
            self.problem = f"{run} cannot be resumed: {' '.join(str(err).split())}"
            return
        changed = _differences(saved["fingerprint"], self.fingerprint)
        if changed:
            self.problem = (
                f"{self.folder} holds a killed run of another config ({'; '.join(changed)})"
            )
            return
        path = self.folder / weights
        try:
            digest = _sha256(path) if path.is_file() else None
        except OSError as err:
            digest = f"unreadable ({err})"
        if digest is None:
            self.problem = f"{path} (named by {BACKUP_FILE}) is missing"
            return
        if digest != saved["weights_sha256"]:
            self.problem = f"{path} does not match the sha256 that {BACKUP_FILE} holds"
            return
        self.epochs, self.history, self._weights = epochs, history, path

    @staticmethod
    def _check(saved: Any) -> tuple[int, str, dict[str, list]]:
        """(epochs, weights file name, history) of a parsed run file, or ValueError."""
        if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
            raise ValueError(f"not an advgrad training backup ('format' is not {_FORMAT!r})")
        if saved.get("version") != _VERSION:
            raise ValueError(f"version {saved.get('version')!r}, this advgrad reads {_VERSION}")
        epochs, weights, history = saved.get("epochs"), saved.get("weights"), saved.get("history")
        match = _WEIGHTS.fullmatch(weights) if isinstance(weights, str) else None
        if (
            not isinstance(saved.get("fingerprint"), dict)
            or not isinstance(saved.get("weights_sha256"), str)
            or not isinstance(epochs, int)
            or isinstance(epochs, bool)
            or match is None
            or int(match.group(1)) != epochs
        ):
            raise ValueError("damaged ('fingerprint', 'epochs', 'weights' or their sha256)")
        numbers = (int, float, type(None))
        if not isinstance(history, dict) or not all(
            isinstance(v, list) and len(v) == epochs and all(isinstance(n, numbers) for n in v)
            for v in history.values()
        ):
            raise ValueError(f"damaged ('history' is not {epochs} numbers per key)")
        return epochs, weights, history

    def on_train_begin(self, logs: Any = None) -> None:
        self._read()
        if self.problem:
            raise ArgumentError("folder", f"{self.problem}; use another folder or remove it.")
        if self._weights is not None:
            optimizer = self.model.optimizer
            if optimizer is not None and not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            self.model.load_weights(str(self._weights))
            self.model._initial_epoch = self.epochs  # as keras.callbacks.BackupAndRestore
            self._set_epoch = True

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        for key in set(self.history) | set(logs):
            values = self.history.setdefault(key, [])
            values[:] = (values + [None] * epoch)[:epoch]
            value = logs.get(key)
            values.append(None if value is None else float(value))
        self.epochs = epoch + 1
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self.epochs}.weights.h5"
        path = self.folder / name
        self.model.save_weights(str(path), overwrite=True)
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        run = {
            "format": _FORMAT,
            "version": _VERSION,
            "fingerprint": self.fingerprint,
            "epochs": self.epochs,
            "weights": name,
            "weights_sha256": _sha256(path),
            "history": self.history,
        }
        atomic_write(self.folder / BACKUP_FILE, json_text(run, indent=1) + "\n")  # the commit
        self._weights = path
        self._remove(keep=name)

    def on_train_end(self, logs: Any = None) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the backup's files (its own only) and the folder if that leaves it empty."""
        if self._set_epoch and self.model is not None:
            self.model._initial_epoch = None
            self._set_epoch = False
        with contextlib.suppress(FileNotFoundError):
            (self.folder / BACKUP_FILE).unlink()
        self._remove(keep=None)
        self._weights = None
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def _remove(self, keep: str | None) -> None:
        with contextlib.suppress(FileNotFoundError):
            for path in self.folder.iterdir():
                if _WEIGHTS.fullmatch(path.name) and path.name != keep:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
