"""One rule for seeds and sizes (issue 24): `advgrad._validation`'s `SEED_LIMIT`,
`SHARD_LIMIT` and `check_seed` everywhere, and a training config's Keras seed limit checked
at parse time (exit 2, by key, before any folder is made)."""

import textwrap

import numpy as np
import pytest

from advgrad import _validation
from advgrad._validation import SEED_LIMIT, SHARD_LIMIT, ArgumentError
from advgrad.attacks import FGSM, PGD
from advgrad.config.registries import default_catalog
from advgrad.schema.problems import ConfigError

TRAIN = """\
model: digits-mlp
data: {name: digits, split: train, limit: 64}
attack: {name: pgd, steps: 2}
eps: 0.2
epochs: 1
batch_size: 32
"""

GENERATE = """\
model: digits-cnn
data: {name: digits, split: test, limit: 16}
attack: fgsm
eps: 0.1
"""


def _yaml(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# ------------------------------------------------------------------ training seeds (3a)
def test_train_config_seed_beyond_keras_refused_at_parse_time(tmp_path):
    from advgrad.training.config import KERAS_SEED_LIMIT, load_train

    assert KERAS_SEED_LIMIT == 2**32
    with pytest.raises(ConfigError) as info:
        load_train(_yaml(tmp_path, TRAIN + "seed: 1099511627776\n", "t.yaml"), default_catalog())
    assert info.value.problems == [
        "seed: expected an int in [0, 2**32) (a training seed seeds Keras: "
        "keras.utils.set_random_seed), received 1099511627776"
    ]
    ok = load_train(_yaml(tmp_path, TRAIN + "seed: 4294967295\n", "ok.yaml"), default_catalog())
    assert ok.bench.seed == 2**32 - 1


def test_train_config_seed_beyond_63_bits_named_once(tmp_path):
    from advgrad.training.config import load_train

    with pytest.raises(ConfigError) as info:
        load_train(_yaml(tmp_path, TRAIN + f"seed: {2**63}\n", "t.yaml"), default_catalog())
    assert info.value.problems == [
        "seed: expected an int in [0, 2**63), received 9223372036854775808"
    ]


def test_train_cli_seed_beyond_keras_exits_2_nothing_made(tmp_path, capsys):
    from advgrad.cli import main

    path = _yaml(tmp_path, TRAIN + "seed: 1099511627776\n", "t.yaml")
    out = tmp_path / "out"
    assert main(["train", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"advgrad: error: {path}: seed: expected an int in [0, 2**32) (a training seed "
        "seeds Keras: keras.utils.set_random_seed), received 1099511627776\n"
    )
    assert not out.exists()


def test_run_training_refuses_a_seed_keras_cannot_take_before_any_folder(tmp_path):
    """A TrainConfig made in code (not parsed) is refused by `run_training` before it
    creates the output folder."""
    import dataclasses

    from advgrad.commands.training import run_training
    from advgrad.config.training_build import build_training
    from advgrad.training.config import load_train

    config = load_train(_yaml(tmp_path, TRAIN, "t.yaml"), default_catalog())
    config = dataclasses.replace(config, bench=dataclasses.replace(config.bench, seed=2**40))
    with pytest.raises(ConfigError, match=r"seed: expected an int in \[0, 2\*\*32\)"):
        run_training(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match=r"seed: expected an int in \[0, 2\*\*32\)"):
        build_training(config)


def test_adversarial_and_epoch_batches_take_every_seed_of_the_one_rule():
    import keras

    from advgrad.training import EpochBatches, adversarial

    x = np.random.default_rng(0).random((8, 4)).astype("float32")
    y = np.arange(8) % 3
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    attack = PGD(eps=0.1, steps=1, bounds=(0, 1))
    robust = adversarial(model, attack, seed=SEED_LIMIT - 1)  # was: expected [0, 2**31)
    robust.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batches = EpochBatches(x, y, batch_size=4, seed=SEED_LIMIT - 1)  # was: [0, 2**63 - 1)
    history = robust.fit(batches.dataset, epochs=1, callbacks=[batches], shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for make in (
        lambda: adversarial(model, attack, seed=SEED_LIMIT),
        lambda: EpochBatches(x, y, batch_size=4, seed=SEED_LIMIT),
    ):
        with pytest.raises(ArgumentError, match=r"expected an int in \[0, 2\*\*63\)"):
            make()
    with pytest.raises(ArgumentError, match=r"batch_size.*\[1, 2\*\*31\)"):
        EpochBatches(x, y, batch_size=2**31, seed=0)


# ------------------------------------------------------------- generation (3b, 3c)
def test_generate_takes_the_largest_seed_and_refuses_the_next(digits, digits_cnn, tmp_path):
    from advgrad.generation import generate

    data = (digits.x_test[:8], digits.y_test[:8])
    attack = FGSM(eps=0.1, bounds=digits.bounds)
    manifest = generate(digits_cnn, data, attack, tmp_path / "a", shard_size=8, seed=2**63 - 1)
    assert manifest["config"]["seed"] == 2**63 - 1 and manifest["complete"]
    with pytest.raises(ArgumentError) as info:
        generate(digits_cnn, data, attack, tmp_path / "b", shard_size=8, seed=2**63)
    assert str(info.value) == (
        "Invalid value for argument `seed`: expected an int in [0, 2**63), received "
        "seed=9223372036854775808."
    )


def test_generate_and_its_config_share_the_shard_size_limit(digits, digits_cnn, tmp_path):
    from advgrad.generation import generate
    from advgrad.generation.config import parse_generate

    assert SHARD_LIMIT == 2**40
    with pytest.raises(ArgumentError, match=r"shard_size.*\[1, 2\*\*40\)"):
        generate(digits_cnn, (digits.x_test[:8], digits.y_test[:8]), FGSM(), tmp_path,
                 shard_size=SHARD_LIMIT)  # fmt: skip
    document = {
        "model": "digits-cnn",
        "data": {"name": "digits"},
        "attack": "fgsm",
        "eps": 0.1,
        "shard_size": SHARD_LIMIT,
    }
    with pytest.raises(ConfigError) as info:
        parse_generate(document, default_catalog())
    assert info.value.problems == [
        "shard_size: expected an int in [1, 2**40), received 1099511627776"
    ]
    config = parse_generate({**document, "shard_size": SHARD_LIMIT - 1}, default_catalog())
    assert config.shard_size == SHARD_LIMIT - 1


def test_generate_cli_shard_size_beyond_the_limit_exits_2(tmp_path, capsys):
    from advgrad.cli import main

    path = _yaml(tmp_path, GENERATE + f"shard_size: {2**40}\n", "g.yaml")
    assert main(["generate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "shard_size: expected an int in [1, 2**40), received 1099511627776" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- one constant (3d)
def test_one_seed_limit():
    from advgrad import batching

    assert batching.SEED_LIMIT is _validation.SEED_LIMIT  # re-exported for its importers
    assert "SEED_LIMIT" in batching.__all__
    PGD(seed=SEED_LIMIT - 1)
    with pytest.raises(ArgumentError) as info:
        PGD(seed=SEED_LIMIT)
    assert info.value.reason == "expected an int in [0, 2**63), received seed=9223372036854775808."
    with pytest.raises(ArgumentError, match=r"batch_size.*\[1, 2\*\*31\)"):
        PGD(batch_size=2**31)


def test_evaluate_seed_and_batch_size_follow_the_one_rule(digits, digits_cnn):
    from advgrad.evaluation import evaluate

    data = (digits.x_test[:4], digits.y_test[:4])
    with pytest.raises(ArgumentError, match=r"seed.*\[0, 2\*\*63\)"):
        evaluate(digits_cnn, data, suite=[FGSM()], eps=[0.1], seed=SEED_LIMIT)
    with pytest.raises(ArgumentError, match=r"batch_size.*\[1, 2\*\*31\)"):
        evaluate(digits_cnn, data, suite=[FGSM()], eps=[0.1], batch_size=2**31)
