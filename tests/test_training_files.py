"""What `advgrad train` leaves in its folder: a backup resumed only by its own config, with
the whole history; no model and no card after a diverged run; JSON that is valid JSON."""

import json

import keras
import numpy as np
import pytest

from advgrad import training

DOCUMENT = {
    "model": "digits-mlp",
    "data": {"name": "digits", "split": "train", "limit": 128},
    "attack": {"name": "pgd", "steps": 1},
    "eps": 0.2,
    "epochs": 4,
    "batch_size": 64,
    "learning_rate": 0.003,
}


def _strict_json(path):
    """The file's JSON, refusing NaN and Infinity (not JSON)."""

    def refuse(name):
        raise ValueError(f"{path.name} holds {name}: not valid JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _config(**changes):
    from advgrad.config.registries import default_catalog
    from advgrad.training.config import parse_train

    return parse_train({**DOCUMENT, **changes}, default_catalog())


class _Killed(Exception):
    pass


def _killed_at(monkeypatch, folder, epoch, **changes):
    """Run a config into `folder` and stop it as a kill would when `epoch` begins (0-based):
    the epochs before it are done and backed up, nothing else is written."""
    from advgrad.commands.training import run_training

    real = training.EpochBatches

    class Killed(real):
        def on_epoch_begin(self, at, logs=None):
            if at == epoch:
                raise _Killed(f"killed before epoch {at + 1}")
            super().on_epoch_begin(at, logs)

    with monkeypatch.context() as patch:
        patch.setattr(training, "EpochBatches", Killed)
        with pytest.raises(_Killed):
            run_training(_config(**changes), folder, verbose=0)
    assert not (folder / "model.keras").exists() and not (folder / "card.json").exists()


def _weights(folder):
    return keras.models.load_model(folder / "model.keras", safe_mode=True).get_weights()


@pytest.mark.slow
def test_a_resumed_run_has_the_uninterrupted_weights_and_the_whole_history(tmp_path, monkeypatch):
    from advgrad.commands.training import run_training

    whole = run_training(_config(), tmp_path / "whole", verbose=0)
    _killed_at(monkeypatch, tmp_path / "run", 2)
    card = run_training(_config(), tmp_path / "run", verbose=0)
    assert len(card["history"]["loss"]) == 4  # epochs 1-2 before the kill, 3-4 after
    for key, values in whole["history"].items():
        np.testing.assert_allclose(card["history"][key], values, rtol=1e-5, err_msg=key)
    assert _strict_json(tmp_path / "run" / "card.json")["history"] == card["history"]
    for a, b in zip(_weights(tmp_path / "whole"), _weights(tmp_path / "run"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not (tmp_path / "run" / "backup").exists()


@pytest.mark.slow
def test_a_backup_is_resumed_only_by_its_own_config(tmp_path, monkeypatch):
    from advgrad.commands.training import run_training
    from advgrad.schema.problems import ConfigError

    folder = tmp_path / "run"
    _killed_at(monkeypatch, folder, 2)
    before = sorted(p.name for p in (folder / "backup").iterdir())
    for changes, differs in (
        ({"learning_rate": 0.01}, "learning_rate 0.003 -> 0.01"),
        ({"epochs": 6}, "epochs 4 -> 6"),
        ({"attack": {"name": "pgd", "steps": 2}}, "attack"),
        ({"data": {**DOCUMENT["data"], "limit": 96}}, "data"),
    ):
        with pytest.raises(ConfigError) as info:
            run_training(_config(**changes), folder, verbose=0)
        message = str(info.value)
        assert "\n" not in message
        assert str(folder / "backup") in message and differs in message, message
        assert "--out" in message and "--force" in message, message
        assert not (folder / "model.keras").exists() and not (folder / "card.json").exists()
        assert sorted(p.name for p in (folder / "backup").iterdir()) == before
    card = run_training(_config(), folder, verbose=0)  # its own config resumes it
    assert len(card["history"]["loss"]) == 4


def _tiny(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _fit_tiny(model, callbacks, epochs=3):
    x = np.random.default_rng(0).random((16, 4)).astype("float32")
    y = np.arange(16) % 3
    return model.fit(
        x, y, epochs=epochs, batch_size=8, shuffle=False, verbose=0, callbacks=callbacks
    )


class _KillAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Killed


def test_backup_callback_checks_what_it_reads(tmp_path):
    folder = tmp_path / "backup"
    fingerprint = {"learning_rate": 0.01, "seed": 0}
    with pytest.raises(_Killed):
        _fit_tiny(_tiny(), [training.Backup(folder, fingerprint), _KillAt(2)])
    saved = _strict_json(folder / training.BACKUP_FILE)
    assert saved["epochs"] == 2 and len(saved["history"]["loss"]) == 2
    # another fingerprint: refused when fit begins, the backup left as it was
    other = training.Backup(folder, {**fingerprint, "learning_rate": 0.1})
    assert "learning_rate 0.01 -> 0.1" in other.problem
    with pytest.raises(ValueError, match=r"learning_rate 0\.01 -> 0\.1"):
        _fit_tiny(_tiny(), [other])
    assert _strict_json(folder / training.BACKUP_FILE) == saved
    # a weights file changed after it was backed up: refused, named
    weights = folder / saved["weights"]
    weights.write_bytes(weights.read_bytes() + b"\0")
    damaged = training.Backup(folder, fingerprint)
    assert saved["weights"] in damaged.problem and "sha256" in damaged.problem
    # a run file that is not advgrad's: refused, named
    (folder / training.BACKUP_FILE).write_text("[1, 2]")
    assert training.BACKUP_FILE in training.Backup(folder, fingerprint).problem


def test_backup_callback_resumes_and_keeps_the_whole_history(tmp_path):
    whole = _fit_tiny(_tiny(), [training.Backup(tmp_path / "a", {"k": 1})]).history
    backup = training.Backup(tmp_path / "b", {"k": 1})
    with pytest.raises(_Killed):
        _fit_tiny(_tiny(), [backup, _KillAt(2)])
    # a kill after the next epoch's weights were written, before they were committed
    (tmp_path / "b" / "epoch-3.weights.h5").write_bytes(b"half written")
    resumed = training.Backup(tmp_path / "b", {"k": 1})
    assert resumed.problem is None and resumed.epochs == 2
    model = _tiny(seed=5)
    history = _fit_tiny(model, [resumed]).history
    assert len(history["loss"]) == 1 and len(resumed.history["loss"]) == 3
    np.testing.assert_allclose(resumed.history["loss"], whole["loss"], rtol=1e-6)
    assert not (tmp_path / "b").exists() and not (tmp_path / "a").exists()


@pytest.mark.slow
def test_a_diverging_run_stops_at_the_first_non_finite_loss_and_writes_nothing(tmp_path):
    from advgrad.commands.training import run_training

    folder = tmp_path / "run"
    with pytest.raises(training.NonFiniteLossError) as info:
        run_training(_config(learning_rate=1e30), folder, verbose=0)
    message = str(info.value)
    assert "\n" not in message
    assert "training stopped in epoch" in message and "not finite" in message, message
    assert "`learning_rate` (1e+30" in message, message
    assert sorted(p.name for p in folder.iterdir()) == []  # no model, card or backup


def test_the_non_finite_loss_callback_names_the_batch_and_the_hint():
    model = _tiny()
    model.compile(keras.optimizers.SGD(1e30), model.loss)
    stop = training.StopOnNonFiniteLoss(hint="lower `learning_rate` (1e+30)")
    with pytest.raises(training.NonFiniteLossError) as info:
        _fit_tiny(model, [stop], epochs=5)
    message = str(info.value)
    assert message.startswith("training stopped in epoch "), message
    assert message.endswith("lower `learning_rate` (1e+30)"), message
    assert np.isnan(info.value.value) or np.isinf(info.value.value)


def test_cards_and_zoo_sidecars_are_valid_json(tmp_path):
    from advgrad import zoo
    from advgrad.commands.training import card_text

    text = card_text({"history": {"val_loss": [0.5, float("nan"), float("inf")]}, "a": 1})
    assert json.loads(text) == {"a": 1, "history": {"val_loss": [0.5, None, None]}}
    info = {"name": "m", "clean_accuracy": float("nan"), "recipe": {"lr": np.float32("inf")}}
    zoo._save(_tiny(), info, tmp_path)
    assert _strict_json(tmp_path / "m.json")["clean_accuracy"] is None
