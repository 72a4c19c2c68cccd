"""Building a training config: the model, the data and the attacks (`advgrad.commands.
training.run_training` then trains).

`build_training` reuses the benchmark build (`advgrad.config.build_run`: the model loaded
safely, the data checked against it, bounds and frozen inputs resolved into the attack) and
adds the validation data and the per-epoch robustness check. TensorFlow is imported when it
is called.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from advgrad.config.build import build_run, check_data_fits, load_data, model_input_names
from advgrad.schema.problems import Problems
from advgrad.training.config import TrainConfig, check_keras_seed

__all__ = ["TrainingRun", "build_training", "check_seed"]


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

    check_seed(config)
    run = build_run(config.bench)
    model = run.model
    attack = at_eps(run.suite[0], config.eps)
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
        robust_check = at_eps(get_attack(entry.name, **{**shared, **entry.settings}), config.eps)
    if config.from_scratch:
        keras.utils.set_random_seed(config.bench.seed)
        model = keras.models.clone_model(model)
    return TrainingRun(model, run.data, validation, attack, robust_check)


def check_seed(config: TrainConfig) -> None:
    """The seed Keras is seeded with, checked as when parsing (a config made in code).

    Raises:
        ConfigError: A seed Keras cannot take.
    """
    problems = Problems()
    check_keras_seed(config.bench.seed, problems)
    problems.raise_if_any(config.bench.source)


def at_eps(attack: Any, eps: float) -> Any:
    """`attack` at radius `eps`, in every budget it holds too."""
    budget = attack.budget
    if isinstance(budget, dict):
        budget = {k: None if v is None else v.replace(eps=eps) for k, v in budget.items()}
    elif budget is not None:
        budget = budget.replace(eps=eps)
    return attack.replace(eps=eps, budget=budget)
