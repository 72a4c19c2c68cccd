"""The README's examples run and do what they say."""

import pathlib
import re

import numpy as np

import advgrad

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_the_two_setup_commands():
    first = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S).group(1)
    commands = [line for line in first.splitlines() if line.strip()]
    assert len(commands) == 2
    assert "advgrad bench configs/digits.yaml" in commands[0]
    assert "pytest" in commands[1]


def test_own_attack_example_registers_and_respects_the_budget(clean_registry, digits, digits_cnn):
    """The example registers `adam-pgd`; `clean_registry` removes it afterwards."""
    block = next(b for b in python_blocks() if "register_attack" in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    attack = namespace["attack"]
    assert "adam-pgd" in advgrad.list_attacks()
    x, y = digits.x_test[:64], digits.y_test[:64]
    x_adv = attack(digits_cnn, x, y)
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    robust = (digits_cnn.predict(x_adv, verbose=0).argmax(-1) == y).mean()
    clean = (digits_cnn.predict(x, verbose=0).argmax(-1) == y).mean()
    assert robust < clean - 0.2
    np.testing.assert_array_equal(attack(digits_cnn, x, y), x_adv)  # reproducible


def test_own_loss_example_runs():
    block = next(b for b in python_blocks() if "LossSpec" in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # it asserts its own claim
    assert namespace["grads"].shape == (8, 4)


def test_own_model_and_data_config_is_valid(tmp_path):
    """The README's config for one's own model and data parses (with stand-in files)."""
    import yaml

    from advgrad.config import parse_config

    section = README.read_text().split("## Your own model and data", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    import keras

    stand_in = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    stand_in.save(tmp_path / "my-model.keras")  # a real archive: an empty file is refused
    arrays = {"features": np.zeros((2, 3)), "labels": np.zeros(2, int), "low": 0, "high": 1}
    np.savez(tmp_path / "test.npz", **arrays)
    config = parse_config(yaml.safe_load(block), base=tmp_path)
    assert config.targets == 3 and config.data.bounds_keys == ("low", "high")
    assert config.imports == ("my_layers",) and config.bounds == "data"


def test_generation_example_runs(tmp_path, monkeypatch, digits_cnn):
    """The README's generation example writes shards that load back as a dataset."""
    block = next(b for b in python_blocks() if "load_generated" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    x, y = next(iter(namespace["ds"]))
    assert x.shape[1:] == (8, 8, 1) and len(x) == len(y) == 32
    assert advgrad.verify(tmp_path / "out").ok


def test_saliency_example_runs():
    block = next(b for b in python_blocks() if "saliency.integrated_gradients" in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # asserts completeness itself
    assert namespace["checks"]["integrated_gradients"].flagged
    assert not namespace["checks"]["vanilla"].flagged


def test_minimal_norm_example_runs(tmp_path, monkeypatch):
    block = next(b for b in python_blocks() if 'eps=[0.5, "curve"]' in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    norms, report = namespace["result"].norms, namespace["report"]
    assert 0.3 < np.median(norms) < 0.8
    curve = report.curve_accuracy([0.25, 0.5, 0.75])
    assert curve[0.25] >= curve[0.5] >= curve[0.75]
    assert any((tmp_path / "runs" / "curve").iterdir())


def test_training_example_runs():
    block = next(b for b in python_blocks() if "training.adversarial" in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    logs = namespace["history"].history
    assert logs["val_accuracy"][-1] > 0.8
    assert 0.0 <= logs["val_robust_accuracy"][-1] <= logs["val_accuracy"][-1]
