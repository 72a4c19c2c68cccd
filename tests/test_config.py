"""Benchmark configs: safe loading, validation by path, building model/data/attacks."""

import importlib
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from _custom_objects import UNKNOWN_HINT, custom_model

from advgrad._validation import ArgumentError, invalid
from advgrad.config import (
    BenchConfig,
    Catalog,
    ConfigError,
    build_run,
    load_config,
    parse_config,
    registries,
)
from advgrad.config.registries import default_catalog

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"

BASE = """\
model: digits-cnn
data: {name: digits, limit: 16}
suite: [fgsm, {name: pgd, steps: 2}]
eps: [0.1, 0.3]
"""


def write(tmp_path, text, name="bench.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path):
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def tiny_model(tmp_path, classes=3, features=4, name="tiny.keras"):
    """A small compiled Dense model saved as .keras (no training needed)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(classes)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = tmp_path / name
    model.save(path)
    return path


@pytest.mark.parametrize(
    "name",
    ["digits.yaml", "digits-eps-sweep.yaml", "digits-standard.yaml", "tabular-multi-input.yaml"],
)
def test_shipped_configs_are_valid(name):
    config = load_config(CONFIGS / name)
    assert isinstance(config, BenchConfig)
    assert config.eps and all(e >= 0 for e in config.eps)
    assert config.source == (CONFIGS / name).absolute()


def test_digits_config_fields():
    config = load_config(CONFIGS / "digits.yaml")
    assert config.model == "digits-cnn" and config.is_zoo_model
    assert config.data.name == "digits" and config.data.split == "test"
    assert config.eps == (0.05, 0.1, 0.2, 0.3, 1.0)
    assert [a.name for a in config.suite] == ["fgsm", "pgd", "mifgsm"]
    assert config.suite[1].settings == {"steps": 10}
    assert config.bounds == "data" and config.norm == "linf"
    assert config.output == pathlib.Path("runs/digits").absolute()


def test_every_problem_reported_by_path(tmp_path):
    path = write(
        tmp_path,
        """\
        modle: digits-cnn
        data: {name: digts, limit: 0}
        suite:
          - fgsm
          - {name: pgd, steps: ten}
          - {name: pgdd}
          - {name: pgd, stpes: 3}
          - {name: pgd, eps: 0.1}
        eps: [-0.1, 0.2, abc]
        norm: l3
        bounds: [1.0, 0.0]
        batch_size: 0
        """,
    )
    problems = problems_of(path)
    expected = [
        "unknown key 'modle' (did you mean 'model'?)",
        "missing key 'model'",
        "data.name: expected one of breast-cancer-two-input, digits, mnist, received 'digts' "
        "(did you mean 'digits'?)",
        "data.limit: expected an int >= 1, received 0",
        "norm: expected one of linf, l2, l1, received 'l3'",
        "suite[1].steps: expected an int, received 'ten'",
        "eps[0]: expected a finite number >= 0, received -0.1",
        "eps[2]: expected a finite number >= 0, received 'abc'",
        "bounds: expected low <= high, received [1.0, 0.0]",
        "batch_size: expected an int in [1, 2**31), received 0",
    ]
    for message in expected:
        assert message in problems, (message, problems)
    assert any(
        p.startswith("suite[2]: unknown attack 'pgdd' (did you mean 'pgd'?); registered attacks: ")
        and "fgsm" in p
        for p in problems
    ), problems
    assert any(
        p.startswith("suite[3]: unknown setting 'stpes'") and "'steps'" in p for p in problems
    )
    assert any(p.startswith("suite[4].eps: set `eps` at the top level") for p in problems)
    assert len(problems) == 13


def test_error_is_one_line_naming_the_file(tmp_path):
    path = write(tmp_path, BASE.replace("eps: [0.1, 0.3]", "eps: [-0.1]"))
    with pytest.raises(ValueError) as info:  # a ConfigError is caught as a ValueError
        load_config(path)
    assert type(info.value) is ConfigError
    text = str(info.value)
    assert "\n" not in text
    assert text == f"{path}: eps[0]: expected a finite number >= 0, received -0.1"


def test_unsafe_yaml_refused(tmp_path):
    path = write(tmp_path, "model: !!python/object/apply:os.system ['echo pwned']\n")
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith("refused unsafe YAML (line 1): could not determine a constructor")
    assert "python/object/apply:os.system" in problems[0]
    assert "safe_load" in problems[0]


def test_invalid_yaml_and_missing_file(tmp_path):
    assert problems_of(write(tmp_path, "model: [unclosed\n"))[0].startswith("invalid YAML at line")
    assert problems_of(tmp_path / "nope.yaml") == [
        f"config file not found: {tmp_path / 'nope.yaml'}"
    ]
    assert problems_of(write(tmp_path, "- a list\n"))[0].startswith("expected a mapping of keys")


def test_attack_setting_validated_by_the_attack(tmp_path):
    path = write(tmp_path, BASE.replace("steps: 2", "steps: 0, random_start: 1"))
    problems = problems_of(path)
    assert "suite[1].random_start: expected a bool, received 1" in problems
    path = write(tmp_path, BASE.replace("steps: 2", "steps: 0"))
    assert problems_of(path) == [
        "suite[1].steps: expected an int in [1, 2147483647), received steps=0"
    ]
    path = write(tmp_path, BASE.replace("steps: 2", "steps: 2, norm: l2"))
    assert load_config(path).suite[1].settings == {"steps": 2, "norm": "l2"}


def test_missing_model_file_names_model(tmp_path):
    path = write(tmp_path, BASE.replace("model: digits-cnn", "model: models/missing.keras"))
    assert problems_of(path) == [
        f"model: model file not found: {tmp_path / 'models/missing.keras'}"
    ]
    path = write(tmp_path, BASE.replace("model: digits-cnn", "model: digits-cn"))
    (problem,) = problems_of(path)
    assert problem.startswith("model: expected a zoo model name (digits-cnn, digits-cnn-pgd,")
    assert problem.endswith("received 'digits-cn' (did you mean 'digits-cnn'?)")


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    tiny_model(folder)
    path = write(folder, BASE.replace("model: digits-cnn", "model: tiny.keras"))
    monkeypatch.chdir(tmp_path)
    config = load_config(path)
    assert config.model == str(folder / "tiny.keras") and not config.is_zoo_model


def test_lambda_model_refused_by_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(outputs))
    model.compile(loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "lambda.keras")
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 4), "float32"), y=np.zeros(4, "int64"))
    path = write(
        tmp_path,
        """\
        model: lambda.keras
        data: {npz: d.npz, x: x, y: y}
        suite: [fgsm]
        eps: 0.1
        bounds: null
        """,
    )
    config = load_config(path)
    with pytest.raises(ConfigError) as info:
        build_run(config)
    (problem,) = info.value.problems
    assert problem.startswith(f"model: Keras safe mode refused to load {tmp_path / 'lambda.keras'}")
    assert "Lambda" in problem and "\n" not in str(info.value)


def npz_config(tmp_path, x, y, extra=""):
    tiny_model(tmp_path)
    np.savez(tmp_path / "data.npz", features=x, labels=y)
    return write(
        tmp_path,
        f"""\
        model: tiny.keras
        data: {{npz: data.npz, x: features, y: labels, bounds: [-1.0, 1.0]}}
        suite: [fgsm]
        eps: [0.1]
        {extra}
        """,
    )


def test_npz_labels_length_mismatch(tmp_path):
    x = np.zeros((10, 4), "float32")
    path = npz_config(tmp_path, x, np.zeros(9, "int64"))
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    assert info.value.problems == ["data.y: 9 labels for 10 input samples: the lengths must match"]


def test_npz_labels_out_of_range(tmp_path):
    x = np.zeros((6, 4), "float32")
    path = npz_config(tmp_path, x, np.array([0, 1, 2, 3, 4, 1]))
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    assert info.value.problems == [
        "data.y: labels range from 0 to 4, but the model has 3 classes (labels 0..2)"
    ]


@pytest.mark.parametrize("content", [b"hello, not an archive\n", b"\x93NUMPY"])
def test_a_file_that_is_not_an_npz_is_called_so(tmp_path, content):
    """NumPy describes any non-zip file as "pickled (object) data"; the config does not."""
    path = npz_config(tmp_path, np.zeros((6, 4), "float32"), np.zeros(6, "int64"))
    (tmp_path / "data.npz").write_bytes(content)
    (problem,) = problems_of(path)
    assert problem == (
        f"data.npz: {tmp_path / 'data.npz'} is not a .npz file (a zip of .npy arrays, from "
        "np.savez)"
    )
    assert "pickle" not in problem


def test_npz_unknown_key(tmp_path):
    x = np.zeros((6, 4), "float32")
    path = npz_config(tmp_path, x, np.zeros(6, "int64"))
    path.write_text(path.read_text().replace("y: labels", "y: label"))
    assert problems_of(path) == [
        "data.y: no array 'label' in data.npz (it holds features, labels) (did you mean 'labels'?)"
    ]


def test_npz_builds_with_its_bounds(tmp_path, rng):
    x = rng.uniform(-1, 1, (12, 4)).astype("float32")
    y = rng.integers(0, 3, 12)
    path = npz_config(tmp_path, x, y, extra="norm: l2")
    config = load_config(path).with_overrides(limit=5)
    model, (xs, ys), suite, eps, bounds = build_run(config)
    assert xs.shape == (5, 4) and ys.tolist() == y[:5].tolist()
    assert bounds == [-1.0, 1.0] and eps == [0.1]
    assert suite[0].get_config()["bounds"] == [-1.0, 1.0]
    assert suite[0].get_config()["norm"] == "l2"
    assert model.output_shape == (None, 3)


def test_explicit_bounds_must_hold_the_data(tmp_path, rng):
    x = rng.uniform(-1, -0.5, (12, 4)).astype("float32")
    path = npz_config(tmp_path, x, np.zeros(12, "int64"), extra="bounds: [0.0, 1.0]")
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    (problem,) = info.value.problems
    assert problem.startswith("bounds: 12 of 12 evaluated samples of input")
    assert "outside [0, 1]" in problem


def test_data_bounds_need_a_range(tmp_path):
    x = np.zeros((6, 4), "float32")
    path = npz_config(tmp_path, x, np.zeros(6, "int64"))
    path.write_text(path.read_text().replace(", bounds: [-1.0, 1.0]", ""))
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    assert info.value.problems[0].startswith("bounds: 'data' needs a data set with a valid range")


def test_digits_build_applies_bounds_norm_and_limit():
    config = parse_config(
        {
            "model": "digits-cnn",
            "data": {"name": "digits", "limit": 16},
            "suite": ["fgsm", {"name": "pgd", "steps": 2}],
            "eps": 0.1,
        }
    )
    run = build_run(config)
    x, y = run.data
    assert x.shape == (16, 8, 8, 1) and y.shape == (16,)
    assert run.bounds == [0.0, 1.0] and run.eps == [0.1]
    assert [a.name for a in run.suite] == ["fgsm", "pgd"]
    assert run.suite[1].steps == 2 and run.suite[1].bounds == [0.0, 1.0]


def test_with_overrides_checks_limit():
    config = load_config(CONFIGS / "digits.yaml")
    assert config.with_overrides(limit=7).data.limit == 7
    assert config.with_overrides().data.limit is None
    with pytest.raises(ValueError, match="`limit`"):
        config.with_overrides(limit=0)


def test_tabular_config_freezes_errors_input():
    config = load_config(CONFIGS / "tabular-multi-input.yaml")
    assert config.inputs == {"measurements": {"bounds": "data"}, "errors": None}
    with pytest.warns(UserWarning, match="lie outside the data set's range"):
        run = build_run(config)
    x, y = run.data
    assert set(x) == {"measurements", "errors"} and len(y) == 143
    assert set(run.bounds) == {"measurements"}
    low, high = (np.asarray(side) for side in run.bounds["measurements"])
    assert low.shape == high.shape == (20,)
    assert np.all(x["measurements"] >= low) and np.all(x["measurements"] <= high)
    budget = run.suite[1].get_config()["budget"]
    assert budget["errors"] is None and budget["measurements"]["norm"] == "linf"
    result = run.suite[1].replace(eps=0.5).run(run.model, x, y)
    assert np.array_equal(np.asarray(result.x_adv["errors"]), x["errors"])
    assert np.max(np.abs(np.asarray(result.x_adv["measurements"]) - x["measurements"])) > 0


def test_inputs_section_errors(tmp_path):
    path = write(
        tmp_path,
        BASE + "inputs: {image: {bound: data}, other: 3}\n",
    )
    problems = problems_of(path)
    assert "inputs.image: unknown key 'bound' (did you mean 'bounds'?)" in problems
    assert any(p.startswith("inputs.other: expected frozen (or null)") for p in problems)
    path = write(tmp_path, BASE + "inputs: {imag: {}}\n")
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    assert info.value.problems == [
        "inputs.imag: 'imag' is not an input of the model (image) (did you mean 'image'?)"
    ]


def test_model_without_loss_refused(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save(tmp_path / "tiny.keras")  # never compiled: no loss
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 4), "float32"), y=np.zeros(4, "int64"))
    path = write(
        tmp_path,
        """\
        model: tiny.keras
        data: {npz: d.npz, x: x, y: y}
        suite: [fgsm, {name: pgd, loss: ce}]
        eps: 0.1
        bounds: null
        """,
    )
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    (problem,) = info.value.problems
    assert problem.startswith("model: the model has no compiled loss and suite[0] (fgsm) sets none")
    path.write_text(path.read_text().replace("[fgsm, ", "[{name: fgsm, loss: margin}, "))
    assert len(build_run(load_config(path)).suite) == 2


PURE_CATALOG = """
from advgrad._validation import check_int
from advgrad.schema.catalog import Catalog

def validate(name, settings):  # what an attack's constructor would check
    check_int("steps", settings.get("steps", 10), low=1)

catalog = Catalog(
    attacks={
        "fgsm": {"name": "fgsm", "eps": 0.0, "norm": "linf", "loss": None},
        "pgd": {"name": "pgd", "eps": 0.0, "norm": "linf", "steps": 10, "random_start": True},
    },
    norms=("linf", "l2", "l1"),
    datasets=("breast_cancer_two_input", "digits"),
    flattenable=("digits",),
    models=("digits-cnn", "tabular-two-input"),
    validate_attack=validate,
)
"""


def test_schema_validates_without_tensorflow(tmp_path):
    """Parsing and validating a whole document needs no TensorFlow, given a catalog."""
    write(
        tmp_path,
        """\
        model: tabular-two-input
        data: {name: breast_cancer_two_input, split: train, limit: 32}
        suite: [fgsm, {name: pgd, steps: 3, random_start: false, norm: l2}]
        eps: [0.0, 0.5]
        norm: linf
        bounds: {measurements: [-3.0, 3.0], errors: data}
        inputs: {measurements: {bounds: data}, errors: frozen}
        batch_size: 16
        plot_examples: false
        seed: 3
        output: runs/tabular
        """,
    )
    code = PURE_CATALOG + textwrap.dedent(
        f"""
        import sys
        from advgrad.schema.bench import ConfigError, load, parse

        config = load({str(tmp_path / "bench.yaml")!r}, catalog)
        assert config.data.name == "breast_cancer_two_input" and config.data.limit == 32
        assert [a.name for a in config.suite] == ["fgsm", "pgd"], config.suite
        assert config.suite[1].settings == {{"steps": 3, "random_start": False, "norm": "l2"}}
        assert config.inputs == {{"measurements": {{"bounds": "data"}}, "errors": None}}
        assert config.eps == (0.0, 0.5) and config.seed == 3 and not config.plot_examples
        document = {{"model": "digits-cn", "data": {{"name": "digits"}},
                     "suite": [{{"name": "pgd", "steps": 0}}], "eps": 0.1}}
        try:
            parse(document, catalog)
        except ConfigError as err:
            print(err.problems)
        assert "tensorflow" not in sys.modules, "tensorflow imported"
        assert "keras" not in sys.modules, "keras imported"
        print("pure")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "pure"
    assert "suite[0].steps: expected an int >= 1, received steps=0" in lines[0]
    assert "(did you mean 'digits-cnn'?)" in lines[0]


def test_importing_config_imports_no_tensorflow():
    code = (
        "import sys, advgrad.config, advgrad.schema.bench, advgrad.schema.catalog\n"
        "import advgrad.training.config, advgrad.generation.config, advgrad.saliency.config\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def fresh_catalog():
    """Rebuild the cached registry catalog before and after the test."""
    registries._from_registries.cache_clear()
    yield
    registries._from_registries.cache_clear()


def test_zoo_name_checked_without_building_data_sets(monkeypatch, fresh_catalog):
    from advgrad import data

    def refuse(*args, **kwargs):
        raise AssertionError("a data set was built to check a zoo name")

    for loader in ("digits", "breast_cancer_two_input", "get"):
        monkeypatch.setattr(data, loader, refuse)
    document = {"model": "digits-cnn", "data": {"name": "digits"}, "suite": "fgsm", "eps": 0.1}
    assert parse_config(document).model == "digits-cnn"
    with pytest.raises(ConfigError, match=r"did you mean 'digits-mlp'\?"):
        parse_config({**document, "model": "digits-mpl"})


def test_data_set_spellings_and_flat():
    document = {"model": "tabular-two-input", "suite": "fgsm", "eps": 0.1}
    for name in ("breast-cancer-two-input", "breast_cancer_two_input"):
        config = parse_config({**document, "data": {"name": name}})
        assert config.data.name == "breast_cancer_two_input"
    with pytest.raises(ConfigError) as info:
        parse_config({**document, "data": {"name": "breast-cancer", "flat": 1}})
    assert info.value.problems == [
        "data.name: expected one of breast-cancer-two-input, digits, mnist, received "
        "'breast-cancer' (did you mean 'breast-cancer-two-input'?)",
        "data.flat: expected a bool, received 1",
    ]
    with pytest.raises(ConfigError) as info:
        parse_config({**document, "data": {"name": "breast-cancer-two-input", "flat": True}})
    assert info.value.problems == ["data.flat: only the digits data set can be flattened"]


def test_registry_catalog():
    catalog = default_catalog()
    assert catalog is default_catalog()  # cached
    assert catalog.norms == ("linf", "l2", "l1")
    assert catalog.datasets == ("breast_cancer_two_input", "digits", "mnist")
    assert catalog.flattenable == ("digits",)
    assert catalog.models == (
        "digits-cnn",
        "digits-cnn-pgd",
        "digits-mlp",
        "mnist-cnn",
        "mnist-cnn-pgd",
        "tabular-two-input",
    )
    assert {"fgsm", "pgd", "mifgsm"} <= set(catalog.attack_names)
    assert catalog.attacks["pgd"]["steps"] >= 1
    with pytest.raises(ArgumentError) as info:
        catalog.check_attack("pgd", {"steps": 0})
    assert info.value.argument == "steps"


def test_attack_error_mapped_to_its_path_by_argument():
    """The suite's problems come from `ArgumentError.argument`/`reason`, not from the text."""

    def validate(name, settings):
        if settings.get("steps") == 0:
            raise ArgumentError("steps", "expected an int >= 1, received steps=0.")
        if settings.get("steps") == 2:
            raise ArgumentError("restarts", "must not exceed `steps` (2).")
        if settings.get("steps") == 3:
            raise ValueError("pgd cannot run 3 steps")

    catalog = Catalog(
        attacks={"pgd": {"name": "pgd", "steps": 10}},
        models=("m",),
        datasets=("digits",),
        validate_attack=validate,
    )
    suite = ["pgd", {"name": "pgd", "steps": 0}, {"name": "pgd", "steps": 2}]
    suite.append({"name": "pgd", "steps": 3})
    document = {"model": "m", "data": {"name": "digits"}, "suite": suite, "eps": 0.1}
    with pytest.raises(ConfigError) as info:
        parse_config(document, catalog=catalog)
    assert info.value.problems == [
        "suite[1].steps: expected an int >= 1, received steps=0",
        "suite[2].restarts: must not exceed `steps` (2)",
        "suite[3]: pgd cannot run 3 steps",
    ]


def test_bounds_error_of_an_attack_lands_on_bounds(tmp_path, monkeypatch):
    """At build time an attack's `bounds` error is the config's top-level `bounds`."""
    import advgrad.attacks

    real = advgrad.attacks.get_attack

    def get_attack(name, **settings):
        if settings.get("bounds") is not None:
            raise invalid("bounds", "bounds this attack can use", settings["bounds"])
        return real(name, **settings)

    monkeypatch.setattr(advgrad.attacks, "get_attack", get_attack)
    x = np.zeros((6, 4), "float32")
    path = npz_config(tmp_path, x, np.zeros(6, "int64"))
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    assert info.value.problems == [
        "bounds: expected bounds this attack can use, received bounds=[-1.0, 1.0]"
    ]


# ------------------------------------------------------------------------ hostile input
def laughs(levels=9):
    """A "billion laughs" document: 9 ** `levels` strings from a few hundred bytes."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def test_yaml_aliases_refused(tmp_path):
    path = write(tmp_path, BASE.replace("eps: [0.1, 0.3]", "eps: &e [0.1, 0.3]\nseed: *e"))
    assert problems_of(path) == ["YAML aliases (*e) are not allowed in a config (line 5)"]
    path = write(tmp_path, "base: &base {steps: 2}\nsuite: [{name: pgd, <<: *base}]\n")
    assert problems_of(path) == ["YAML aliases (*base) are not allowed in a config (line 2)"]


@pytest.mark.timeout(60)
def test_billion_laughs_refused_before_expanding(tmp_path):
    text = laughs()
    assert len(text) < 600
    path = write(tmp_path, BASE + text.replace("a8:", "bounds:"))
    (problem,) = problems_of(path)
    assert problem == "YAML aliases (*a0) are not allowed in a config (line 6)"


def test_duplicate_keys_refused(tmp_path):
    path = write(tmp_path, BASE + "eps: 0.5\n")
    assert problems_of(path) == ["duplicate key 'eps' (line 5)"]
    path = write(tmp_path, BASE.replace("steps: 2", "steps: 2, steps: 3"))
    assert problems_of(path) == ["duplicate key 'steps' (line 3)"]
    # a key YAML cannot hash is invalid YAML, not "unsafe"
    (problem,) = problems_of(write(tmp_path, "? [a]\n: 1\n"))
    assert problem.startswith("invalid YAML at line 1") and "unhashable key" in problem


def test_yaml_too_deep_or_with_huge_ints_refused(tmp_path):
    deep = "[" * 5000 + "]" * 5000
    (problem,) = problems_of(write(tmp_path, BASE.replace("[0.1, 0.3]", deep)))
    assert problem == "YAML nested deeper than 64 levels (line 4)"
    path = write(tmp_path, BASE + "seed: " + "1" * 5000 + "\n")
    (problem,) = problems_of(path)
    assert problem.startswith("invalid YAML at line 5") and "digits" in problem


@pytest.mark.timeout(60)
def test_bounds_too_long_or_too_deep_refused_before_converting():
    document = {"model": "digits-cnn", "data": {"name": "digits"}, "suite": "fgsm", "eps": 0.1}
    shared = [0.0] * 10
    for _ in range(6):  # 10 ** 7 numbers, 7 small lists
        shared = [shared] * 10
    cyclic: list = [0.0]
    cyclic.append(cyclic)
    deep: list = [0.0]
    for _ in range(40):
        deep = [deep]
    cases = {
        "numbers": [[0.0] * 1_000_001, 1.0],
        "shared": [shared, 1.0],
        "cyclic": [0.0, cyclic],
        "deep": [deep, 1.0],
    }
    too_many = "expected at most 1000000 numbers per bound side, received more"
    too_deep = "expected lists nested at most 32 levels deep, received deeper ones"
    expected = {
        "numbers": f"bounds[0]: {too_many}",
        "shared": f"bounds[0]: {too_many}",
        "cyclic": f"bounds[1]: {too_deep}",
        "deep": f"bounds[0]: {too_deep}",
    }
    for name, bounds in cases.items():
        with pytest.raises(ConfigError) as info:
            parse_config({**document, "bounds": bounds})
        assert info.value.problems == [expected[name]], name
        assert len(str(info.value)) < 300
    side = np.linspace(0, 0.5, 64).reshape(8, 8, 1).tolist()
    config = parse_config({**document, "bounds": [side, 1.0]})
    assert config.bounds == (side, 1.0)


def test_long_keys_and_values_described_briefly():
    document = {"model": "x" * 100_000, "data": {"name": "digits"}, "suite": "fgsm", "eps": 0.1}
    with pytest.raises(ConfigError) as info:
        parse_config({**document, "k" * 100_000: 1})
    assert len(str(info.value)) < 1000
    assert len(info.value.problems) == 2
    with pytest.raises(ConfigError) as info:
        parse_config({**document, "model": "digits-cnn", "eps": ["x"] * 500})
    problems = info.value.problems
    assert len(problems) == 101 and problems[-1] == "and 400 more problems"


@pytest.mark.timeout(60)
def test_config_must_be_a_regular_file_under_1_mib(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problems == [f"not a regular file: {tmp_path}"]
    big = write(tmp_path, BASE + "#" * (1 << 20) + "\n")
    size = big.stat().st_size
    with pytest.raises(ConfigError) as info:
        load_config(big)
    assert info.value.problems == [f"config file too large: {size} bytes (limit 1 MiB)"]
    if sys.platform == "win32":
        return
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # nobody writes to it: the read must fail at once, not block
    for path in (fifo, pathlib.Path("/dev/zero")):
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert info.value.problems == [f"not a regular file: {path}"]


# ---------------------------------------------------------------- imports: custom objects
def test_imports_let_custom_layers_and_losses_load_in_safe_mode(tmp_path):
    module, text = custom_model(tmp_path)
    path = write(tmp_path, text + f"imports: [{module}]\n")
    config = load_config(path)
    assert config.imports == (module,)
    assert config.folder == tmp_path.absolute()
    run = build_run(config)
    assert type(run.model.layers[-1]).__name__ == "ScaledDense"
    assert run.model.layers[-1].scale == 2.0
    assert run.model.loss.__name__ == "ce"
    assert str(tmp_path) not in sys.path  # the config's folder only while importing
    assert module in sys.modules


def test_unknown_custom_class_is_one_short_line(tmp_path):
    _, text = custom_model(tmp_path)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    problem = f"model: cannot load custom.keras: unknown class 'ScaledDense' {UNKNOWN_HINT}"
    assert info.value.problems == [problem]
    assert len(problem) < 300
    assert str(info.value) == f"{path.absolute()}: {problem}"


def test_unknown_custom_loss_is_named_too(tmp_path):
    module, text = custom_model(tmp_path)
    # the layer alone registered again: the compiled loss is what is missing now
    sys.path.insert(0, str(tmp_path))
    try:
        custom = importlib.import_module(module)
    finally:
        sys.path.remove(str(tmp_path))
    registered = keras.saving.get_custom_objects()
    del registered[f"{module}>ce"]
    del sys.modules[module]
    assert registered[f"{module}>ScaledDense"] is custom.ScaledDense  # the layer is known
    with pytest.raises(ConfigError) as info:
        build_run(load_config(write(tmp_path, text)))
    assert info.value.problems == [
        f"model: cannot load custom.keras: unknown function '{module}>ce' {UNKNOWN_HINT}"
    ]


def test_imports_names_validated_without_tensorflow(tmp_path):
    document = {"model": "digits-cnn", "data": {"name": "digits"}, "suite": "fgsm", "eps": 0.1}
    names = ["pkg.losses", "my_layers.py", "lib/my_layers", 3, "my-layers", "pkg.class", ""]
    with pytest.raises(ConfigError) as info:
        parse_config({**document, "imports": names})
    assert info.value.problems == [
        "imports[1]: expected a module name, not a file: 'my_layers' finds my_layers.py next "
        "to the config",
        "imports[2]: expected a module name, not a file: 'my_layers' finds my_layers.py next "
        "to the config",
        "imports[3]: expected a dotted module name such as my_layers or pkg.losses, received 3",
        "imports[4]: expected a dotted module name such as my_layers or pkg.losses, "
        "received 'my-layers'",
        "imports[5]: expected a dotted module name such as my_layers or pkg.losses, "
        "received 'pkg.class'",
        "imports[6]: expected a dotted module name such as my_layers or pkg.losses, received ''",
    ]
    with pytest.raises(ConfigError) as info:
        parse_config({**document, "imports": {"pkg": 1}})
    assert info.value.problems == ["imports: expected a list of module names, received {'pkg': 1}"]
    assert parse_config({**document, "imports": "pkg.losses"}).imports == ("pkg.losses",)
    assert parse_config(document).imports == ()


def test_a_module_that_cannot_be_imported_is_a_problem_at_its_index(tmp_path):
    unique = re.sub(r"\W", "_", tmp_path.name)
    (tmp_path / f"broken_{unique}.py").write_text("raise RuntimeError('boom\\n' * 200)\n")
    path = write(
        tmp_path, BASE + f"imports: [json, missing_{unique}, broken_{unique}, json.nope]\n"
    )
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    boom = " ".join(["boom"] * 200)[:197] + "..."  # long reasons are cut
    assert info.value.problems == [
        f"imports[1]: cannot import 'missing_{unique}': ModuleNotFoundError: "
        f"No module named 'missing_{unique}'",
        f"imports[2]: cannot import 'broken_{unique}': RuntimeError: {boom}",
        "imports[3]: cannot import 'json.nope': ModuleNotFoundError: No module named 'json.nope'",
    ]


def test_with_overrides_adds_extra_imports(tmp_path):
    module, text = custom_model(tmp_path)
    config = load_config(write(tmp_path, text + "imports: [json]\n"))
    extra = config.with_overrides(imports=[module, "json", module])
    assert (extra.imports, extra.extra_imports) == (("json",), (module,))
    assert type(build_run(extra).model.layers[-1]).__name__ == "ScaledDense"
    with pytest.raises(ArgumentError, match="`import`") as info:
        config.with_overrides(imports=["my_layers.py"])
    assert info.value.reason.startswith("expected a module name, not a file")
    with pytest.raises(ConfigError) as info:
        build_run(config.with_overrides(imports=["no_such_module_" + module]))
    assert info.value.problems == [
        f"--import no_such_module_{module}: cannot import 'no_such_module_{module}': "
        f"ModuleNotFoundError: No module named 'no_such_module_{module}'"
    ]


# ------------------------------------------------------------------- targets
@pytest.mark.parametrize("value", ["most-likely-wrong", "least-likely", "random", 0, 7])
def test_targets_key_is_parsed(tmp_path, value):
    config = load_config(write(tmp_path, BASE + f"targets: {value}\n"))
    assert config.targets == value
    assert load_config(write(tmp_path, BASE, "plain.yaml")).targets is None


@pytest.mark.parametrize(
    "value, received",
    [
        ("least_likely", "'least_likely'"),
        (-1, "-1"),
        (1.5, "1.5"),
        ("true", "True"),
        ("[1, 2]", ""),
    ],
)
def test_bad_targets_are_named(tmp_path, value, received):
    (problem,) = problems_of(write(tmp_path, BASE + f"targets: {value}\n"))
    assert problem.startswith("targets: expected one of most-likely-wrong, least-likely, random")
    assert received in problem
    if value == "least_likely":
        assert "did you mean 'least-likely'" in problem


def test_targets_reach_the_targeted_attacks(tmp_path):
    from advgrad.evaluation import evaluate

    path = write(
        tmp_path,
        """\
        model: digits-cnn
        data: {name: digits, limit: 16}
        suite: [{name: pgd, steps: 2, targeted: true}, fgsm]
        eps: [0.3]
        targets: 3
        """,
    )
    config = load_config(path)
    run = build_run(config)
    report = evaluate(
        run.model, run.data, suite=run.suite, eps=run.eps, sanity=False, targets=config.targets
    )
    assert report.suite[0]["targets"] == 3 and "targets" not in report.suite[1]


def npz_bounds_config(tmp_path, x, low, high, bounds="{low: lo, high: hi}"):
    tiny_model(tmp_path)
    np.savez(tmp_path / "data.npz", features=x, labels=np.zeros(len(x), "int64"), lo=low, hi=high)
    return write(
        tmp_path,
        f"""\
        model: tiny.keras
        data: {{npz: data.npz, x: features, y: labels, bounds: {bounds}}}
        suite: [fgsm]
        eps: [0.1]
        """,
    )


def test_npz_bounds_arrays_reach_the_attacks(tmp_path, rng):
    x = rng.uniform(0, 1, (8, 4)).astype("float32")
    low, high = np.array([-1.0, 0.0, 0.0, -2.0]), np.array([1.0, 1.0, 2.0, 2.0])
    path = npz_bounds_config(tmp_path, x, low, high)
    config = load_config(path)
    assert config.data.bounds_keys == ("lo", "hi") and config.data.bounds is None
    _, _, suite, _, bounds = build_run(config)
    assert bounds == [low.tolist(), high.tolist()]
    assert suite[0].get_config()["bounds"] == [low.tolist(), high.tolist()]


def test_npz_bounds_unknown_key_named_at_its_side(tmp_path, rng):
    x = rng.uniform(0, 1, (8, 4)).astype("float32")
    path = npz_bounds_config(tmp_path, x, np.zeros(4), np.ones(4), "{low: low, high: hi}")
    (problem,) = problems_of(path)
    assert problem.startswith("data.bounds.low: no array 'low' in data.npz")
    assert "(did you mean 'lo'?)" in problem


def test_npz_bounds_arrays_must_fit_the_inputs(tmp_path, rng):
    x = rng.uniform(0, 1, (8, 4)).astype("float32")
    path = npz_bounds_config(tmp_path, x, np.zeros(3), np.ones(3))
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    (problem,) = info.value.problems
    assert problem.startswith("data.bounds: arrays 'lo' (3,) and 'hi' (3,) do not fit input")


# ----------------------------------------------------------------- generation configs
def _generation(**changes):
    document = {
        "model": "digits-cnn",
        "data": {"name": "digits", "split": "train"},
        "attack": {"name": "pgd", "steps": 10},
        "eps": 0.1,
        "shard_size": 500,
    }
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


def test_generation_config_shares_the_benchmark_checks():
    from advgrad.generation.config import parse_generate

    config = parse_generate(_generation(format="npz"), default_catalog())
    assert config.attack.name == "pgd" and config.attack.settings == {"steps": 10}
    assert config.eps == 0.1 and config.shard_size == 500 and config.format == "npz"
    assert config.bench.data.split == "train" and config.bench.bounds == "data"
    assert parse_generate(_generation(), default_catalog()).format == "tfrecord"


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"attack": {"name": "pgd", "steps": "ten"}}, "attack.steps: expected an int"),
        ({"attack": "pgdd"}, "attack: unknown attack 'pgdd' (did you mean 'pgd'?)"),
        ({"attack": ["pgd", "fgsm"]}, "attack: expected one attack"),
        ({"attack": None}, "missing key 'attack'"),
        ({"eps": [0.1, 0.2]}, "eps: expected one radius"),
        ({"eps": "curve"}, "eps: expected one radius"),
        ({"shard_size": 0}, "shard_size: expected an int in [1, 2**40), received 0"),
        ({"format": "parquet"}, "format: expected one of tfrecord, npz, received 'parquet'"),
        ({"suite": ["pgd"]}, "unknown key 'suite'"),
        ({"targets": 3}, "unknown key 'targets'"),
    ],
)
def test_generation_config_problems_are_named(changes, problem):
    from advgrad.generation.config import parse_generate

    with pytest.raises(ConfigError) as info:
        parse_generate(_generation(**changes), default_catalog())
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems
    assert not any("suite" in p for p in info.value.problems if "'suite'" not in p)


@pytest.mark.parametrize(
    ("eps", "expected"),
    [("curve", ("curve",)), ("[0.3, curve, 0.1]", (0.3, 0.1, "curve")), ("0.1", (0.1,))],
)
def test_eps_curve(tmp_path, eps, expected):
    path = write(tmp_path, BASE.replace("eps: [0.1, 0.3]", f"eps: {eps}"))
    assert load_config(path).eps == expected


def test_eps_curve_misspelt_is_a_problem(tmp_path):
    path = write(tmp_path, BASE.replace("eps: [0.1, 0.3]", "eps: [curve, curv]"))
    assert any(p.startswith("eps[1]") for p in problems_of(path))


# ------------------------------------------- issue 24: refused at parse/build time, by key
@pytest.mark.parametrize("kind", ["pickle", "zip"])
def test_a_model_file_that_is_not_a_keras_archive_is_called_so(tmp_path, kind):
    """A pickle (or a zip that is not a Keras archive) saved as .keras: never 'not found'."""
    import pickle

    path = tmp_path / "x.keras"
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"not": "a model"}))
    else:
        np.savez(tmp_path / "x.npz", a=np.zeros(3))
        (tmp_path / "x.npz").rename(path)
    config = write(tmp_path, BASE.replace("model: digits-cnn", "model: x.keras"))
    assert problems_of(config) == [
        f"model: {path} is not a Keras .keras archive (a zip with config.json, written by "
        "model.save); advgrad loads models in Keras' safe mode and never unpickles"
    ]


@pytest.mark.parametrize(
    "key, path", [("features", "data.x"), ("labels", "data.y"), ("hi", "data.bounds.high")]
)
def test_npz_object_arrays_named_by_their_key(tmp_path, key, path):
    arrays = {
        "features": np.zeros((4, 4), "float32"),
        "labels": np.zeros(4, "int64"),
        "lo": np.zeros(4),
        "hi": np.ones(4),
    }
    arrays[key] = np.array([{"a": 1}] * 4, dtype=object)
    np.savez(tmp_path / "data.npz", **arrays)
    tiny_model(tmp_path)
    config = write(
        tmp_path,
        """\
        model: tiny.keras
        data: {npz: data.npz, x: features, y: labels, bounds: {low: lo, high: hi}}
        suite: [fgsm]
        eps: [0.1]
        """,
    )
    assert problems_of(config) == [
        f"{path}: array {key!r} in data.npz holds Python objects (dtype object): expected a "
        "numeric array (advgrad reads .npz files with allow_pickle=False)"
    ]


@pytest.mark.parametrize(
    "line, problem",
    [
        ("seed: 18446744073709551616", "seed: expected an int in [0, 2**63), received "),
        ("seed: 9223372036854775808", "seed: expected an int in [0, 2**63), received "),
        ("batch_size: 2147483648", "batch_size: expected an int in [1, 2**31), received "),
    ],
)
def test_integers_out_of_range_refused_at_parse_time(tmp_path, line, problem):
    (found,) = problems_of(write(tmp_path, BASE + line + "\n"))
    assert found == problem + line.split(": ")[1]


def test_largest_seed_and_batch_size_accepted(tmp_path):
    text = BASE + "seed: 9223372036854775807\nbatch_size: 2147483647\n"
    config = load_config(write(tmp_path, text))
    assert config.seed == 2**63 - 1 and config.batch_size == 2**31 - 1


def test_cli_seed_out_of_range_exits_2_in_one_line(tmp_path, capsys):
    from advgrad.cli import main

    path = write(tmp_path, BASE + "seed: 18446744073709551616\n")
    assert main(["bench", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"advgrad: error: {path}: seed: expected an int in [0, 2**63), received "
        "18446744073709551616"
    )
    assert not (tmp_path / "out").exists()


def test_targets_beyond_the_model_classes_refused_at_build(tmp_path):
    path = npz_config(tmp_path, np.zeros((6, 4), "float32"), np.zeros(6, "int64"), "targets: 3")
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    assert info.value.problems == ["targets: class 3, but the model has 3 classes (0..2)"]


@pytest.mark.parametrize("bounds", ["[-1.0, 1.0]", "{low: lo, high: hi}"])
def test_npz_data_bounds_that_do_not_hold_the_data_are_refused(tmp_path, rng, bounds):
    """No longer widened with a warning: README says such bounds are refused."""
    x = rng.uniform(-3, 3, (8, 4)).astype("float32")
    x[0, 0], x[1, 1] = -3.0, 3.0
    path = npz_bounds_config(tmp_path, x, -np.ones(4), np.ones(4), bounds)
    with pytest.raises(ConfigError) as info:
        build_run(load_config(path))
    (problem,) = info.value.problems
    side = "[-1, 1]" if bounds.startswith("[") else "the range of 'lo' and 'hi' in data.npz"
    assert re.fullmatch(
        rf"data\.bounds: 8 of 8 evaluated samples of input '\w+' lie outside {re.escape(side)} "
        r"\(values from -3 to 3\): give data\.bounds that hold every sample, or set "
        r"`bounds: null` \(no clipping\)",
        problem,
    ), problem
