"""`RobustAccuracy`: robust accuracy on validation data under a cheap attack, per epoch;
`StopOnNonFiniteLoss`: training stopped, with an error, at the first loss that is not finite.

A Keras callback: at the end of every `every`-th epoch it attacks the validation data with
its attack (FGSM or a few PGD steps: cheap, so a lower bound on the error only; evaluate
the final model with `advgrad.evaluate`'s strong suite) and writes the share of samples
classified correctly both clean and under the attack into the epoch's logs, where
``History``, ``CSVLogger``, ``EarlyStopping`` and ``ModelCheckpoint`` see it like any metric.
As in `advgrad.evaluate`, a sample whose model output is not finite (NaN or inf) is never
correct, robust or fooled (`advgrad.predictions.judge`), and a `FlaggedWarning` says how many.

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

import warnings
from typing import Any

import keras
import numpy as np

from advgrad._validation import FlaggedWarning, check_int, invalid
from advgrad.attacks.base import Attack
from advgrad.predictions import class_ids, judge

__all__ = ["NonFiniteLossError", "RobustAccuracy", "StopOnNonFiniteLoss"]


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
    ``base_model``), with its current weights, in inference mode. A sample counts as robust
    when its clean output is finite and correct, the attack did not fool it, and the output
    on the attack's input is finite: a NaN or inf output is never correct, robust or fooled
    (`advgrad.predictions.judge`); a `FlaggedWarning` names the epoch and how many.

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
        _, correct, clean_finite = judge(model, self.x, self.labels)
        result = self.attack.run(model, self.x, self.labels)  # fooled: never a NaN output
        _, _, adv_finite = judge(model, result.x_adv, self.labels)
        value = float(np.mean(correct & ~np.asarray(result.fooled) & adv_finite))
        self.history.append(value)
        if not (clean_finite.all() and adv_finite.all()):
            warnings.warn(
                f"Non-finite model outputs (NaN or inf) in {self.name} after epoch "
                f"{epoch + 1}: {int(np.sum(~clean_finite))} of {len(clean_finite)} samples on "
                f"their clean input, {int(np.sum(~adv_finite))} on the attack's input "
                "(counted neither correct nor robust).",
                FlaggedWarning,
                stacklevel=2,
            )
        if logs is not None:
            logs[self.name] = value


class NonFiniteLossError(ValueError):
    """Training stopped at a loss (or weights) that is not finite.

    Attributes:
        epoch: The epoch (from 1). batch: The batch it was seen by (from 1; None: at the
            epoch's end). value: The loss (None: the weights).
    """

    def __init__(self, message: str, epoch: int, batch: int | None, value: float | None):
        super().__init__(message)
        self.epoch, self.batch, self.value = epoch, batch, value


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise `NonFiniteLossError` at the first non-finite loss, or weights at an epoch's end.

    ``keras.callbacks.TerminateOnNaN`` stops quietly: ``fit`` returns with NaN weights. Put
    this callback before the ones that save the model, so that nothing non-finite is saved.

    Args:
        hint: The end of the message: the settings likely at fault, e.g. ``"lower the
            learning rate"``.

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.compile(keras.optimizers.SGD(1e30), "mse")
    >>> try:
    ...     model.fit(np.ones((4, 2)), np.ones((4, 2)), epochs=3, verbose=0,
    ...               callbacks=[StopOnNonFiniteLoss("lower the rate")])
    ... except NonFiniteLossError as err:
    ...     print(err)
    training stopped in epoch 2, by batch 1 of 1: the loss is not finite (inf); lower the rate
    """

    def __init__(self, hint: str = "lower the learning rate"):
        super().__init__()
        self.hint = str(hint)
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or np.all(np.isfinite(loss)):
            return
        steps = self.params.get("steps") if self.params else None
        where = f"by batch {batch + 1}" + (f" of {steps}" if steps else "")
        value = float(np.mean(loss))
        raise NonFiniteLossError(
            f"training stopped in epoch {self._epoch + 1}, {where}: the loss is not finite "
            f"({value}); {self.hint}",
            self._epoch + 1,
            batch + 1,
            value,
        )

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        values = (keras.ops.convert_to_numpy(w) for w in self.model.weights)
        if not all(np.all(np.isfinite(v)) for v in values if np.issubdtype(v.dtype, np.floating)):
            raise NonFiniteLossError(
                f"training stopped at the end of epoch {epoch + 1}: the weights are not "
                f"finite; {self.hint}",
                epoch + 1,
                None,
                None,
            )
