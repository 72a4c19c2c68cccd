"""Adversarial training inside Keras fit: robustness gained, TRADES, resume, save, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad import attacks
from advgrad.budget import Budget
from advgrad.training import EpochBatches, RobustAccuracy, adversarial

EPS = 0.2
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mlp(seed=0, softmax=False):
    keras.utils.set_random_seed(seed)
    x = keras.Input((64,), name="pixels")
    h = keras.layers.Dense(64, activation="relu")(x)
    out = keras.layers.Dense(10, activation="softmax" if softmax else None)(h)
    return keras.Model(x, out)


@pytest.fixture(scope="module")
def flat():
    return advgrad.data.digits(flat=True)


def _fit(
    model, ds, *, attack=None, epochs, n=None, batch_size=64, callbacks=(), loss=LOSS, **options
):
    x, y = ds.x_train[:n], ds.y_train[:n]
    trained = model if attack is None else adversarial(model, attack, **options)
    trained.compile(keras.optimizers.Adam(3e-3), loss, metrics=["accuracy"])
    history = trained.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks),
    )
    return trained, history


def _robust(model, ds, steps=10):
    attack = attacks.PGD(eps=EPS, steps=steps, bounds=(0, 1), loss="ce")
    result = attack.run(model, ds.x_test, ds.y_test)
    clean = np.argmax(model.predict(ds.x_test, verbose=0), -1) == ds.y_test
    return float(np.mean(clean)), float(np.mean(clean & ~result.fooled))


def test_pgd_at_raises_robust_accuracy(flat):
    standard, _ = _fit(_mlp(), flat, epochs=8)
    model = _mlp()
    attack = attacks.PGD(eps=EPS, steps=5, bounds=(0, 1))
    _fit(model, flat, attack=attack, epochs=8)
    clean_std, robust_std = _robust(standard, flat)
    clean_at, robust_at = _robust(model, flat)
    assert clean_std > 0.9 and robust_std < 0.2
    assert clean_at > 0.8
    assert robust_at > robust_std + 0.2, (robust_std, robust_at)  # measured: 0.02 -> 0.31


def test_ratio_zero_and_trades_beta_zero_are_standard_training(flat):
    standard, _ = _fit(_mlp(), flat, epochs=1, n=256)
    attack = attacks.PGD(eps=EPS, steps=2, bounds=(0, 1))
    clean_only, _ = _fit(_mlp(), flat, attack=attack, epochs=1, n=256, ratio=0.0)
    trades0, history = _fit(
        _mlp(), flat, attack=attack, epochs=1, n=256, objective="trades", beta=0.0
    )
    for a, b, c in zip(
        standard.get_weights(), clean_only.get_weights(), trades0.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, atol=1e-5)
    assert history.history["robust_kl"][0] > 0


def test_trades_trains_and_logs_its_kl_term(flat):
    model = _mlp(softmax=True)  # probabilities: the KL is read off them
    attack = attacks.PGD(eps=EPS, steps=3, bounds=(0, 1))
    probabilities = keras.losses.SparseCategoricalCrossentropy()
    robust, history = _fit(
        model,
        flat,
        attack=attack,
        epochs=3,
        n=512,
        objective="trades",
        beta=6.0,
        loss=probabilities,
    )
    kl, loss = history.history["robust_kl"], history.history["loss"]
    assert all(np.isfinite(kl)) and kl[-1] > 0
    assert loss[-1] < loss[0] - 0.2, loss
    assert history.history["accuracy"][-1] > 0.5  # chance: 0.1


@pytest.fixture(scope="module")
def seeded(flat):
    """PGD-AT (2 steps) models after one epoch on 128 digits with seeds 0, 0 and 1 (shared:
    the save test reads the first; treat them as read-only)."""
    attack = attacks.PGD(eps=EPS, steps=2, bounds=(0, 1))
    return [_fit(_mlp(), flat, attack=attack, epochs=1, n=128, seed=s)[0] for s in (0, 0, 1)]


def test_same_seed_same_weights_other_seed_other_weights(seeded):
    runs = [robust.get_weights()[0] for robust in seeded]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_to_the_uninterrupted_weights(flat, tmp_path):
    attack = attacks.PGD(eps=EPS, steps=2, bounds=(0, 1))
    whole, _ = _fit(_mlp(), flat, attack=attack, epochs=4, n=192)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    model = _mlp()
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(model, flat, attack=attack, epochs=4, n=192, callbacks=[backup, _Interrupt()])
    resumed, history = _fit(_mlp(seed=5), flat, attack=attack, epochs=4, n=192, callbacks=[backup])
    assert len(history.history["loss"]) == 2  # epochs 3 and 4 only
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_epoch_batches_resume_to_the_uninterrupted_weights(flat, tmp_path):
    """Shuffled batches keyed by (seed, epoch): a resumed run sees the uninterrupted orders."""
    attack = attacks.PGD(eps=EPS, steps=2, bounds=(0, 1))

    def fit(model, epochs, callbacks=()):
        batches = EpochBatches(flat.x_train[:96], flat.y_train[:96], batch_size=32, seed=3)
        robust = adversarial(model, attack)
        robust.compile(keras.optimizers.Adam(3e-3), LOSS, steps_per_execution=2)
        history = robust.fit(
            batches.dataset,
            epochs=epochs,
            callbacks=[batches, *callbacks],
            shuffle=False,
            verbose=0,
        )
        return robust, history

    whole, _ = fit(_mlp(), 4)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(_mlp(), 4, [backup, _Interrupt()])
    resumed, history = fit(_mlp(seed=5), 4, [backup])
    assert len(history.history["loss"]) == 2
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_epoch_batches_orders_differ_by_epoch_and_seed(flat):
    def labels(seed, epoch):
        batches = EpochBatches(flat.x_train[:50], np.arange(50), batch_size=8, seed=seed)
        batches.on_epoch_begin(epoch)
        return np.concatenate([y for _, y in batches.dataset.as_numpy_iterator()])

    first = labels(0, 0)
    assert sorted(first) == list(range(50))
    np.testing.assert_array_equal(first, labels(0, 0))
    assert not np.array_equal(first, labels(0, 1))
    assert not np.array_equal(first, labels(1, 0))
    with pytest.raises(ValueError, match="batch_size"):
        EpochBatches(flat.x_train[:4], np.arange(4), batch_size=0)
    with pytest.raises(ValueError, match="rows"):
        EpochBatches(flat.x_train[:4], np.arange(5), batch_size=2)


def test_saved_model_loads_as_plain_keras_model_in_safe_mode(flat, seeded, tmp_path):
    robust = seeded[0]  # adversarially trained: 2 batches of 64
    path = tmp_path / "robust.keras"
    robust.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded).__module__.startswith("keras.")  # a plain Keras model
    assert int(loaded.optimizer.iterations) == int(robust.optimizer.iterations) == 2
    np.testing.assert_allclose(
        loaded.predict(flat.x_test[:16], verbose=0),
        robust.predict(flat.x_test[:16], verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )
    assert loaded.loss.get_config()["from_logits"] is True
    scores = [
        m.evaluate(flat.x_test, flat.y_test, verbose=0, return_dict=True)["accuracy"]
        for m in (loaded, robust)
    ]
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)


def test_callbacks_validation_and_robust_accuracy_metric(flat):
    attack = attacks.PGD(eps=EPS, steps=2, bounds=(0, 1))
    val = (flat.x_test[:150], flat.y_test[:150])
    check = RobustAccuracy(val, attacks.FGSM(eps=EPS, bounds=(0, 1)))
    model = _mlp()
    robust = adversarial(model, attack)
    robust.compile(keras.optimizers.Adam(3e-3), LOSS, metrics=["accuracy"])
    history = robust.fit(
        flat.x_train[:256],
        flat.y_train[:256],
        epochs=2,
        batch_size=64,
        validation_data=val,
        callbacks=[check],
        verbose=0,
    )
    logs = history.history
    assert len(logs["val_robust_accuracy"]) == 2 and len(logs["val_accuracy"]) == 2
    assert 0 <= logs["val_robust_accuracy"][-1] <= logs["val_accuracy"][-1]
    evaluated = robust.evaluate(*val, verbose=0, return_dict=True)
    assert evaluated["accuracy"] == pytest.approx(logs["val_accuracy"][-1], abs=1e-6)


def test_multi_input_model_with_a_frozen_input(tabular, tabular_model):
    model = keras.models.clone_model(tabular_model)
    model.set_weights(tabular_model.get_weights())
    budget = {"measurements": Budget(0.3, "linf"), "errors": None}
    robust = adversarial(model, attacks.PGD(eps=0.3, steps=3, budget=budget))
    robust.compile(keras.optimizers.Adam(1e-3), LOSS, metrics=["accuracy"])
    x = {k: v[:64] for k, v in tabular.x_train.items()}
    y = tabular.y_train[:64]
    adv = robust._adversarial(x, tf.constant(y))
    assert sorted(adv) == ["measurements"]  # the frozen input is left clean
    moved = np.abs(adv["measurements"].numpy() - x["measurements"]).max()
    assert 0.2 < moved <= 0.3 + 1e-5
    history = robust.fit(
        tabular.x_train,
        tabular.y_train,
        epochs=2,
        batch_size=64,
        verbose=0,
        validation_data=tabular.test,
    )
    assert history.history["val_accuracy"][-1] > 0.85


def test_bad_input_is_refused_before_training(flat):
    model = _mlp()
    pgd = attacks.PGD(eps=EPS, steps=2, bounds=(0, 1))
    with pytest.raises(ValueError, match=r"argument `attack`: expected an attack that runs inside"):
        adversarial(model, attacks.Square(eps=EPS, bounds=(0, 1)))
    with pytest.raises(ValueError, match=r"argument `attack`: expected an untargeted attack"):
        adversarial(model, pgd.replace(targeted=True))
    with pytest.raises(ValueError, match=r"argument `ratio`: expected a finite number >= 0"):
        adversarial(model, pgd, ratio=1.5)
    with pytest.raises(ValueError, match=r"argument `beta`: expected a finite number >= 0"):
        adversarial(model, pgd, objective="trades", beta=-1.0)
    with pytest.raises(ValueError, match=r"argument `objective`: expected one of"):
        adversarial(model, pgd, objective="madry")
    # One unit is a binary classifier; a (batch, 2, 2) output is no classifier.
    regression = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(4), keras.layers.Reshape((2, 2))]
    )
    with pytest.raises(ValueError, match=r"argument `model`: expected a model with one class"):
        adversarial(regression, pgd)
    with pytest.raises(ValueError, match=r"argument `every`"):
        RobustAccuracy((flat.x_test, flat.y_test), pgd, every=0)


def test_train_config_parses_builds_and_runs(tmp_path):
    import pathlib

    from advgrad.commands.training import run_training
    from advgrad.config.registries import default_catalog
    from advgrad.schema.problems import ConfigError
    from advgrad.training.config import load_train, parse_train

    root = pathlib.Path(__file__).resolve().parents[1]
    config = load_train(root / "configs" / "train-digits-pgd.yaml", default_catalog())
    assert (config.attack.name, config.eps, config.objective, config.epochs) == (
        "pgd",
        0.2,
        "pgd-at",
        30,
    )
    assert config.validation.split == "test" and config.robust_check.name == "fgsm"
    document = {
        "model": "digits-mlp",
        "data": {"name": "digits", "split": "train", "limit": 128},
        "validation": {"name": "digits", "split": "test", "limit": 64},
        "attack": {"name": "pgd", "steps": 2},
        "eps": 0.2,
        "epochs": 2,
        "batch_size": 64,
        "robust_check": "fgsm",
        "objective": "trades",
        "beta": 1.0,
    }
    with pytest.raises(ConfigError) as info:
        parse_train(
            {**document, "beta": -1, "attack": {"name": "pgd", "step": 2}}, default_catalog()
        )
    text = str(info.value)
    assert "beta: expected a finite number >= 0" in text and "attack" in text
    card = run_training(parse_train(document, default_catalog()), tmp_path, verbose=0)
    assert len(card["history"]["val_robust_accuracy"]) == 2 and card["objective"] == "trades"
    assert card["validation_accuracy"] == pytest.approx(card["history"]["val_accuracy"][-1])
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    assert loaded.output_shape == (None, 10)
    assert not (tmp_path / "backup").exists()  # removed once training finished


def _mirrored_fit(strategy, flat, objective, *, n, epochs):
    """FGSM adversarial training of a small MLP on `n` digits in batches of 32 under
    `strategy` (None: no strategy)."""
    scope = strategy.scope() if strategy is not None else tf.distribute.get_strategy().scope()
    with scope:
        model = _mlp(seed=0)
        attack = attacks.FGSM(eps=EPS, bounds=(0, 1))
        robust = adversarial(model, attack, objective=objective, strategy=strategy)
        robust.compile(keras.optimizers.SGD(0.1), LOSS, metrics=["accuracy"])
    history = robust.fit(
        flat.x_train[:n], flat.y_train[:n], batch_size=32, epochs=epochs, shuffle=False, verbose=0
    )
    return model.get_weights(), history.history


def test_mirrored_strategy_trains_as_one_device(flat, mirrored):
    """2 logical CPUs (tests/conftest.py): the same weights and logged loss as one device for
    a deterministic attack; TRADES' KL term is scaled per replica like the loss."""
    assert len(tf.config.list_logical_devices("CPU")) >= 2
    strategy = mirrored
    # 2 epochs of 2 steps (a distributed fit's cost is mostly its tracing, not its steps)
    single, single_log = _mirrored_fit(None, flat, "pgd-at", n=64, epochs=2)
    mirrored, mirrored_log = _mirrored_fit(strategy, flat, "pgd-at", n=64, epochs=2)
    assert len(mirrored_log["loss"]) == 2
    for a, b in zip(single, mirrored, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(single_log["loss"], mirrored_log["loss"], rtol=1e-5)
    # TRADES' FGSM starts where the KL gradient vanishes: signs follow float noise, so the
    # check is on the first epoch's logged loss (natural + beta x KL, ~3% apart if the KL
    # term were not divided by the replicas like the natural loss).
    _, single_log = _mirrored_fit(None, flat, "trades", n=128, epochs=1)
    _, mirrored_log = _mirrored_fit(strategy, flat, "trades", n=128, epochs=1)
    np.testing.assert_allclose(single_log["loss"][0], mirrored_log["loss"][0], rtol=0.01)


def test_strategy_argument_is_checked(flat, mirrored):
    attack = attacks.FGSM(eps=EPS, bounds=(0, 1))
    with pytest.raises(ValueError, match="strategy"):
        adversarial(_mlp(), attack, strategy="mirrored")
    outside = _mlp()  # built outside the strategy's scope
    with pytest.raises(ValueError, match=r"strategy\.scope\(\)"):
        adversarial(outside, attack, strategy=mirrored)


@pytest.mark.slow
def test_train_config_with_a_distribute_section(tmp_path):
    """`advgrad train` with ``distribute: {strategy: mirrored, cpu_devices: 2}`` (its own
    process: the CPU is split before TensorFlow starts) trains on 2 replicas."""
    import json
    import subprocess
    import sys

    import yaml

    document = {
        "model": "digits-mlp",
        "data": {"name": "digits", "split": "train", "limit": 128},
        "validation": {"name": "digits", "split": "test", "limit": 64},
        "attack": {"name": "pgd", "steps": 2},
        "eps": 0.2,
        "epochs": 2,
        "batch_size": 32,
        "distribute": {"strategy": "mirrored", "cpu_devices": 2},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(document))
    command = [
        sys.executable,
        "-m",
        "advgrad.cli",
        "train",
        str(path),
        "--out",
        str(tmp_path / "o"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((tmp_path / "o" / "card.json").read_text())
    assert card["replicas"] == 2 and len(card["history"]["loss"]) == 2
    assert card["validation_accuracy"] > 0.2  # chance: 0.1
