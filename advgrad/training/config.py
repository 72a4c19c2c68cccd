"""Training configs: what `advgrad train` runs, parsed like a benchmark config.

A training config names a model, the training data, one attack and its eps (as a generation
config does) and the training recipe. Everything it shares with a benchmark config
(``model``, ``imports``, ``data``, ``eps``, ``norm``, ``bounds``, ``inputs``, ``batch_size``,
``seed``, ``output``, ``distribute``) is checked by the same code
(`advgrad.schema.bench.parse`), and problems are named by the training config's own paths
(``attack.steps: ...``). Pure: no TensorFlow.

Schema (``model``, ``data``, ``attack``, ``eps`` and ``epochs`` are required)::

    model: digits-cnn            # a zoo name or a .keras file (as in a benchmark config)
    from_scratch: true           # true: its architecture with fresh weights (seeded);
                                 # false: train on from its weights
    data: {name: digits, split: train}        # the training data
    validation: {name: digits, split: test}   # optional: validation data, every epoch
    attack: {name: pgd, steps: 7}   # makes the training examples; must run in a graph
    eps: 0.2                     # its radius
    norm: linf                   # optional, as in a benchmark config
    bounds: data                 # optional, as in a benchmark config
    objective: pgd-at            # pgd-at (Madry et al. 2018) | trades (Zhang et al. 2019)
    beta: 6.0                    # trades: weight of the KL term (>= 0)
    ratio: 1.0                   # share of each batch made adversarial, in [0, 1]
    epochs: 30
    batch_size: 32
    learning_rate: 0.003         # Adam, cosine decay to 0 over the run
    seed: 0                      # weights, shuffling and the attack's random starts:
                                 # an int in [0, 2**32) (it seeds Keras)
    robust_check: {name: fgsm}   # optional: val_robust_accuracy each epoch under this
                                 # attack at eps (needs validation)
    backup: true                 # <output>/backup at each epoch's end: a killed run
                                 # resumes where it stopped (--resume; same config only)
    output: runs/train-digits-pgd   # model.keras and card.json go here (--out overrides)
    distribute: {strategy: mirrored, cpu_devices: 2}  # optional: tf.distribute, as in bench

>>> from advgrad.schema.catalog import Catalog
>>> catalog = Catalog(attacks={"pgd": {"name": "pgd", "eps": 0.0, "norm": "linf", "steps": 40}},
...                   norms=("linf",), datasets=("digits",), models=("digits-cnn",))
>>> document = {"model": "digits-cnn", "data": {"name": "digits", "split": "train"},
...             "attack": {"name": "pgd", "steps": 7}, "eps": 0.2, "epochs": 30}
>>> config = parse_train(document, catalog)
>>> config.attack.name, config.eps, config.objective, config.epochs, config.from_scratch
('pgd', 0.2, 'pgd-at', 30, True)
>>> from advgrad.schema.problems import ConfigError
>>> try:
...     parse_train({**document, "ratio": 1.5, "objective": "trade"}, catalog)
... except ConfigError as err:
...     for problem in err.problems:
...         print(problem)
objective: expected one of pgd-at, trades, received 'trade' (did you mean 'trades'?)
ratio: expected a finite number >= 0 and <= 1, received 1.5
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from collections.abc import Mapping
from typing import Any

from advgrad._validation import SEED_LIMIT, check_bool, check_int, check_number
from advgrad.schema.bench import AttackConfig, DataConfig
from advgrad.schema.catalog import Catalog
from advgrad.schema.problems import Problems, check_document
from advgrad.schema.single import SHARED_KEYS, OneAttack, check_attack_and_eps, parse_shared
from advgrad.schema.yamlfile import load_with

__all__ = [
    "KERAS_SEED_LIMIT",
    "OBJECTIVES",
    "SCHEMA",
    "TrainConfig",
    "check_keras_seed",
    "load_train",
    "parse_train",
]

SCHEMA = (
    textwrap.dedent(__doc__.split("::\n", 1)[1].split("\n>>>", 1)[0]).strip("\n") + "\n"
    if __doc__
    else ""
)
"""Every key of a training config, one commented example each (the schema above)."""

OBJECTIVES = ("pgd-at", "trades")
"""The objectives `advgrad.training.adversarial` trains with (its ``OBJECTIVES``)."""

KERAS_SEED_LIMIT = 2**32
"""A training config's ``seed`` is below this, a stricter rule than every other seed's
(`advgrad._validation.SEED_LIMIT`): it seeds Keras (``keras.utils.set_random_seed``: Python's,
NumPy's and TensorFlow's global generators), and NumPy takes no larger seed. Checked when the
config is parsed (`check_keras_seed`), so a bad seed is a config error, before any work."""
_KERAS_SEED = "an int in [0, 2**32) (a training seed seeds Keras: keras.utils.set_random_seed)"

_OWN_KEYS = (
    "attack",
    "from_scratch",
    "validation",
    "objective",
    "beta",
    "ratio",
    "epochs",
    "learning_rate",
    "robust_check",
    "backup",
)
_REQUIRED = ("model", "data", "attack", "eps", "epochs")


@dataclasses.dataclass(frozen=True)
class TrainConfig(OneAttack):
    """A validated training config (`OneAttack`: ``bench``, ``attack``, ``eps``).

    Attributes:
        objective: ``"pgd-at"`` or ``"trades"``.
        beta: TRADES' weight of the KL term.
        ratio: Share of each batch made adversarial.
        epochs: Training epochs.
        learning_rate: Adam's initial learning rate (cosine decay to 0).
        from_scratch: Train the model's architecture from fresh weights (else its weights).
        validation: Validation data (`DataConfig`), or None.
        robust_check: The attack of the per-epoch ``val_robust_accuracy``, or None.
        backup: Keep an `advgrad.training.Backup` folder in the output.
    """

    epochs: int = 1
    objective: str = "pgd-at"
    beta: float = 6.0
    ratio: float = 1.0
    learning_rate: float = 3e-3
    from_scratch: bool = True
    validation: DataConfig | None = None
    robust_check: AttackConfig | None = None
    backup: bool = True


def load_train(path: str | os.PathLike, catalog: Catalog) -> TrainConfig:
    """Read and validate a training YAML file (the schema above), read safely.

    Raises:
        ConfigError: Every problem found, by its YAML path.
    """
    return load_with(parse_train, path, catalog)


def check_keras_seed(seed: Any, problems: Problems) -> None:
    """A problem at ``seed`` for a seed of the one rule (`advgrad._validation.check_seed`)
    that Keras cannot take (``>= KERAS_SEED_LIMIT``); any other bad seed is the shared
    schema's problem (named there, once)."""
    integral = isinstance(seed, int) and not isinstance(seed, bool)
    if integral and KERAS_SEED_LIMIT <= seed < SEED_LIMIT:
        problems.expected("seed", _KERAS_SEED, seed)


def parse_train(
    document: Any,
    catalog: Catalog,
    *,
    base: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
) -> TrainConfig:
    """Validate a training config given as a mapping (what ``yaml.safe_load`` returns).

    Raises:
        ConfigError: Every problem found, by path.
    """
    problems = Problems()
    expected = "a mapping of keys (model, data, attack, eps, epochs, ...)"
    check_document(document, _OWN_KEYS + SHARED_KEYS, _REQUIRED, expected, problems, source)
    get = document.get
    check_attack_and_eps(document, problems)
    objective = get("objective", "pgd-at")
    if objective not in OBJECTIVES:
        problems.expected("objective", f"one of {', '.join(OBJECTIVES)}", objective, OBJECTIVES)
    beta = problems.check("beta", get("beta", 6.0), lambda p, v: check_number(p, v, low=0.0))
    ratio = problems.check(
        "ratio", get("ratio", 1.0), lambda p, v: check_number(p, v, low=0.0, high=1.0)
    )
    epochs = problems.check("epochs", get("epochs", 1), lambda p, v: check_int(p, v, low=1))
    learning_rate = problems.check(
        "learning_rate",
        get("learning_rate", 3e-3),
        lambda p, v: check_number(p, v, low=0.0, low_open=True),
    )
    from_scratch = problems.check("from_scratch", get("from_scratch", True), check_bool)
    check_keras_seed(get("seed", 0), problems)
    backup = problems.check("backup", get("backup", True), check_bool)

    shared = {k: v for k, v in document.items() if k in SHARED_KEYS}
    if isinstance(get("attack"), (str, Mapping)):
        shared["suite"] = [get("attack")]
    bench = parse_shared(shared, catalog, base, problems)
    validation = robust_check = None
    if get("validation") is not None:
        part = parse_shared({**shared, "data": get("validation")}, catalog, base, problems, "data")
        validation = None if part is None else part.data
    if get("robust_check") is not None:
        value = get("robust_check")
        if get("validation") is None:
            problems.add("robust_check", "needs `validation` (the data it attacks each epoch)")
        if not isinstance(value, (str, Mapping)):
            problems.expected("robust_check", "an attack name or a mapping with `name`", value)
        else:
            part = parse_shared({**shared, "suite": [value]}, catalog, base, problems, "suite")
            robust_check = None if part is None else part.suite[0]
    problems.raise_if_any(source)
    return TrainConfig(
        bench=bench,
        epochs=int(epochs),
        objective=str(objective),
        beta=float(beta),
        ratio=float(ratio),
        learning_rate=float(learning_rate),
        from_scratch=bool(from_scratch),
        validation=validation,
        robust_check=robust_check,
        backup=bool(backup),
    )
