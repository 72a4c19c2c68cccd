"""`RobustAccuracy`: robust accuracy on validation data under a cheap attack, per epoch.

A Keras callback: at the end of every `every`-th epoch it attacks the validation data with
its attack (FGSM or a few PGD steps: cheap, so a lower bound on the error only; evaluate
the final model with `advgrad.evaluate`'s strong suite) and writes the share of samples
classified correctly both clean and under the attack into the epoch's logs, where
``History``, ``CSVLogger``, ``EarlyStopping`` and ``ModelCheckpoint`` see it like any metric.

>>> import numpy as np, keras, advgrad
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
>>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> x, y = np.random.default_rng(0).random((12, 4)).astype("float32"), np.arange(12) % 3
>>> check = RobustAccuracy((x, y), advgrad.attacks.FGSM(eps=0.1, bounds=(0, 1)))
>>> history = model.fit(x, y, epochs=1, verbose=0, callbacks=[check])
>>> 0.0 <= history.history["val_robust_accuracy"][0] <= 1.0
True
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from advgrad._validation import check_int, invalid
from advgrad.attacks.base import Attack
from advgrad.predictions import class_ids, predicted_classes

__all__ = ["RobustAccuracy"]


class RobustAccuracy(keras.callbacks.Callback):
    """Log the robust accuracy on `validation_data` under `attack` at the end of epochs.

    Args:
        validation_data: ``(x, y)``: inputs as the model takes them and class labels (ids or
            one-hot rows).
        attack: An untargeted advgrad attack with its eps, norm and bounds; its loss
            defaults to cross-entropy.
        every: Attack every `every` epochs (1: each); other epochs log nothing.
        name: The log key. Defaults to ``"val_robust_accuracy"``.

    The model attacked is the one being trained (an `advgrad.training.AdversarialModel`'s
    ``base_model``), with its current weights, in inference mode.

    Raises:
        ArgumentError: A bad argument, named, when the callback is made.
    """

    def __init__(
        self,
        validation_data: tuple[Any, Any],
        attack: Attack,
        *,
        every: int = 1,
        name: str = "val_robust_accuracy",
    ):
        super().__init__()
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise invalid("validation_data", "a pair (x, y)", validation_data)
        if not isinstance(attack, Attack) or attack.targeted:
            raise invalid("attack", "an untargeted advgrad attack", attack)
        self.x, self.y = validation_data
        self.labels = class_ids(self.y)
        self.attack = attack if attack.loss is not None else attack.replace(loss="ce")
        self.every = check_int("every", every, low=1)
        if not isinstance(name, str) or not name:
            raise invalid("name", "a non-empty string", name)
        self.name = name
        self.history: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        model = getattr(self.model, "base_model", self.model)
        correct = predicted_classes(model, self.x) == self.labels
        result = self.attack.run(model, self.x, self.labels)
        value = float(np.mean(correct & ~np.asarray(result.fooled)))
        self.history.append(value)
        if logs is not None:
            logs[self.name] = value
