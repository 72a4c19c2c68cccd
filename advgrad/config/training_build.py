"""Building and running a training config: the model, the data and the attack, then `fit`.

`build_training` reuses the benchmark build (`advgrad.config.build_run`: the model loaded
safely, the data checked against it, bounds and frozen inputs resolved into the attack) and
adds the validation data and the per-epoch robustness check; `run_training` trains with
`advgrad.training.adversarial` and writes ``model.keras`` (a plain Keras model) and
``card.json`` into the output folder. TensorFlow is imported when they are called.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any, NamedTuple

import numpy as np

from advgrad.config.build import build_run, check_data_fits, load_data, model_input_names
from advgrad.schema.problems import ConfigError, Problems
from advgrad.training.config import TrainConfig, check_keras_seed

__all__ = ["TrainingRun", "build_training", "run_training"]


class TrainingRun(NamedTuple):
    """What `build_training` returns.

    Attributes:
        model: The ``keras.Model`` to train (fresh weights when ``from_scratch``).
        data: ``(x, y)``: the training data.
        validation: ``(x, y)`` or None.
        attack: The training attack at the config's eps, bounds and frozen inputs applied.
        robust_check: The per-epoch check's attack (same eps and bounds), or None.
    """

    model: Any
    data: tuple[Any, np.ndarray]
    validation: tuple[Any, np.ndarray] | None
    attack: Any
    robust_check: Any


def build_training(config: TrainConfig) -> TrainingRun:
    """Load the model and the data and make the attacks of a training config.

    Raises:
        ConfigError: As `advgrad.config.build_run`, and for validation data that does not
            fit the model or a seed Keras cannot take (`advgrad.training.config.
            KERAS_SEED_LIMIT`).
    """
    import keras

    from advgrad.attacks import get_attack

    _check_seed(config)
    run = build_run(config.bench)
    model = run.model
    attack = _at_eps(run.suite[0], config.eps)
    validation = None
    if config.validation is not None:
        problems = Problems()
        x, y, _ = load_data(config.validation, model)
        check_data_fits(x, y, model, model_input_names(model), problems)
        problems.raise_if_any(config.bench.source)
        validation = (x, y)
    robust_check = None
    if config.robust_check is not None:
        entry = config.robust_check
        defaults = get_attack(entry.name).get_config()
        shared = {k: attack.get_config()[k] for k in ("bounds", "budget", "norm") if k in defaults}
        robust_check = _at_eps(get_attack(entry.name, **{**shared, **entry.settings}), config.eps)
    if config.from_scratch:
        keras.utils.set_random_seed(config.bench.seed)
        model = keras.models.clone_model(model)
    return TrainingRun(model, run.data, validation, attack, robust_check)


def _check_seed(config: TrainConfig) -> None:
    """The seed Keras is seeded with, checked as when parsing (a config made in code)."""
    problems = Problems()
    check_keras_seed(config.bench.seed, problems)
    problems.raise_if_any(config.bench.source)


def _at_eps(attack: Any, eps: float) -> Any:
    budget = attack.budget
    if isinstance(budget, dict):
        budget = {k: None if v is None else v.replace(eps=eps) for k, v in budget.items()}
    elif budget is not None:
        budget = budget.replace(eps=eps)
    return attack.replace(eps=eps, budget=budget)


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

    _check_seed(config)
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
    from advgrad.evaluate.state import batch_digest, model_digest

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
