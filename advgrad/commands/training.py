"""What ``advgrad train`` runs: `run_training` trains as a training config says and writes
``model.keras`` (a plain Keras model) and ``card.json`` into the output folder.

The config is read by `advgrad.training.config`, the model, data and attacks are built by
`advgrad.config.training_build.build_training`; training is `advgrad.training.adversarial`
inside Keras ``fit``. TensorFlow is imported when `run_training` is called.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any

import numpy as np

from advgrad.config.training_build import TrainingRun, build_training, check_seed
from advgrad.schema.problems import ConfigError
from advgrad.training.config import TrainConfig

__all__ = ["card_text", "run_training"]


def run_training(
    config: TrainConfig, output: str | os.PathLike, *, verbose: int = 2
) -> dict[str, Any]:
    """Train as the config says; write ``model.keras`` and ``card.json`` into `output`.

    Seeds Keras (`keras.utils.set_random_seed`) and turns on TensorFlow's op determinism, so
    the same config gives the same weights on the same machine and versions. With
    ``backup`` a folder ``output/backup`` holds the state at each epoch's end
    (`advgrad.training.Backup`): run the same config again after
    a crash and it resumes to the uninterrupted weights (the data come through
    `advgrad.training.EpochBatches`, shuffled by seed and epoch) with the whole history; a
    backup of another config is refused. Training stops at the first non-finite loss,
    writing nothing. With a ``distribute:`` section the model is built, wrapped and
    compiled under its strategy (`advgrad.config.distribute_build.make_strategy`).

    Returns:
        The card (what ``card.json`` holds): the recipe, the history, the final clean and
        robust validation accuracy (when there is validation data), the training time.

    Raises:
        ConfigError: A bad config (before `output` is made), or a backup in `output` of
            another config (or damaged).
        NonFiniteLossError: The loss (or the weights) became NaN or infinite.
    """
    import keras
    import tensorflow as tf

    from advgrad import training
    from advgrad._io import atomic_write
    from advgrad.config.distribute_build import make_strategy

    check_seed(config)
    strategy = make_strategy(config.bench.distribute, config.bench.source)  # TF not started
    folder = pathlib.Path(output).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.bench.seed)
    tf.config.experimental.enable_op_determinism()
    with (strategy or tf.distribute.get_strategy()).scope():  # the model's weights mirrored
        run = build_training(config)
        robust = training.adversarial(
            run.model,
            run.attack,
            objective=config.objective,
            beta=config.beta,
            ratio=config.ratio,
            seed=config.bench.seed,
            strategy=strategy,
        )
        x, y = run.data
        per_epoch = int(np.ceil(len(y) / config.bench.batch_size))
        steps = config.epochs * per_epoch
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
        # Keras 3.15 on TF 2.21 fails with steps_per_execution > 1 on several replicas.
        several = strategy is not None and strategy.num_replicas_in_sync > 1
        robust.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=_loss(run.model),
            metrics=["accuracy"],
            steps_per_execution=1 if several else min(per_epoch, training.STEPS_PER_EXECUTION),
        )
    replicas = 1 if strategy is None else int(strategy.num_replicas_in_sync)
    backup = None
    if config.backup:
        backup = training.Backup(folder / "backup", _fingerprint(config, run, replicas))
        if backup.problem:
            fix = "train into another `output` (--out), or start again with --force"
            raise ConfigError([f"{backup.problem}; {fix}"], source=config.bench.source)
    batches = training.EpochBatches(
        x, y, batch_size=config.bench.batch_size, seed=config.bench.seed
    )
    callbacks: list[Any] = [batches, training.StopOnNonFiniteLoss(_likely_settings(config))]
    if run.robust_check is not None and run.validation is not None:
        callbacks.append(training.RobustAccuracy(run.validation, run.robust_check))
    if backup is not None:  # last: it records the logs the others added
        callbacks.append(backup)
    start = time.perf_counter()
    try:
        history = robust.fit(
            batches.dataset,
            epochs=config.epochs,
            validation_data=run.validation,
            callbacks=callbacks,
            shuffle=False,
            verbose=verbose,
        )
    except training.NonFiniteLossError:
        if backup is not None:  # the same config diverges again: nothing worth resuming
            backup.remove()
        raise
    seconds = time.perf_counter() - start
    model = robust.plain_model()
    atomic_write(folder / "model.keras", lambda path: model.save(path, overwrite=True))
    card = {
        "model": config.bench.model,
        "from_scratch": config.from_scratch,
        "objective": config.objective,
        "beta": config.beta if config.objective == "trades" else None,
        "ratio": config.ratio,
        "attack": run.attack.get_config(),
        "eps": config.eps,
        "epochs": config.epochs,
        "batch_size": config.bench.batch_size,
        "learning_rate": config.learning_rate,
        "seed": config.bench.seed,
        "training_seconds": round(seconds, 2),
        "replicas": replicas,
        "history": backup.history if backup is not None else history.history,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
    }
    if run.validation is not None:
        card["validation_accuracy"] = float(
            robust.evaluate(*run.validation, verbose=0, return_dict=True)["accuracy"]
        )
    text = card_text(card)
    atomic_write(folder / "card.json", text)
    return json.loads(text)


def card_text(card: dict[str, Any]) -> str:
    """``card.json``'s text: valid JSON (a non-finite number is written null)."""
    from advgrad._io import json_text

    return json_text(card, indent=2, default=_jsonable) + "\n"


def _fingerprint(config: TrainConfig, run: TrainingRun, replicas: int) -> dict[str, Any]:
    """What determines the trained weights: a backup of another fingerprint is not resumed."""
    from advgrad.provenance import batch_digest, model_digest

    x, y = run.data
    optional = lambda value: None if value is None else dataclasses.asdict(value)  # noqa: E731
    return {
        "model": config.bench.model,
        "model_weights": model_digest(run.model),  # the weights training starts from
        "from_scratch": config.from_scratch,
        "data": dataclasses.asdict(config.bench.data),
        "data_content": batch_digest(x, y),
        "validation": optional(config.validation),
        "attack": run.attack.get_config(),
        "eps": config.eps,
        "objective": config.objective,
        "beta": config.beta if config.objective == "trades" else None,
        "ratio": config.ratio,
        "epochs": config.epochs,
        "batch_size": config.bench.batch_size,
        "learning_rate": config.learning_rate,
        "seed": config.bench.seed,
        "robust_check": optional(config.robust_check),
        "replicas": replicas,
    }


def _likely_settings(config: TrainConfig) -> str:
    """The end of the non-finite-loss message: the config's keys likely at fault."""
    default = TrainConfig.learning_rate
    text = f"lower `learning_rate` ({config.learning_rate:g}; the default is {default:g})"
    if config.objective == "trades":
        text += f" or `beta` ({config.beta:g})"
    return text + "; no model written"


def _loss(model: Any) -> Any:
    """Sparse cross-entropy, from logits unless the model ends in softmax."""
    import keras

    from advgrad.models import ModelAdapter

    probabilities = ModelAdapter.of(model).final_activation() == "softmax"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if hasattr(value, "get_config"):
        return value.get_config()
    return str(value)
