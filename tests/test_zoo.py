"""Reference models: accuracy, logits output, determinism, cache round trip, errors."""

import importlib.util
import json
import pathlib

import keras
import numpy as np
import pytest

from advgrad import zoo
from advgrad._io import atomic_write

NAMES = ["digits-cnn", "digits-mlp", "tabular-two-input"]  # built by the `cache` fixture
ROBUST = "digits-cnn-pgd"  # adversarially trained: built by its own (slow) test only
MNIST = ["mnist-cnn", "mnist-cnn-pgd"]  # never trained in the suite (tests/test_mnist.py)
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(_isolated_cache):
    """The session's cache (tests/conftest.py: $ADVGRAD_CACHE, shared by the xdist workers)
    with every model of `NAMES` in it: trained there once per session, by whichever test
    loads it first. Tests that need an empty cache use their own `tmp_path`."""
    models = {name: zoo.load(name) for name in NAMES}
    return {"folder": zoo.cache_dir(), "models": models}


def _predict(model, name):
    return model.predict(zoo.dataset(name).x_test, batch_size=256, verbose=0)


def test_list_models_and_cards_before_build(tmp_path):
    cards = zoo.list_models(directory=tmp_path)
    assert [c.name for c in cards] == sorted([*NAMES, ROBUST, *MNIST])
    for c in cards:
        assert c.output == "logits"
        assert c.clean_accuracy is None and c.parameters is None and c.built_with is None
        assert c.robust_accuracy is None
        assert c.description and c.recipe and c.data
    assert zoo.card("digits-cnn", directory=tmp_path).input_shape == (8, 8, 1)
    assert zoo.card("digits-mlp", directory=tmp_path).input_shape == (64,)
    tab = zoo.card("tabular-two-input", directory=tmp_path)
    assert tab.input_shape == {"measurements": (20,), "errors": (10,)}
    assert tab.num_classes == 2
    assert tab.bounds["errors"][0].shape == (10,)
    assert not list(tmp_path.iterdir()), "reading cards must not write to the cache"


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVGRAD_CACHE", str(tmp_path / "models"))
    assert zoo.cache_dir() == tmp_path / "models"
    monkeypatch.delenv("ADVGRAD_CACHE")
    assert zoo.cache_dir() == pathlib.Path.home() / ".cache" / "advgrad" / "models"


@pytest.mark.parametrize("name", NAMES)
def test_model_reaches_its_accuracy(cache, name):
    model = cache["models"][name]
    ds = zoo.dataset(name)
    logits = _predict(model, name)
    assert logits.shape == (len(ds.y_test), ds.num_classes)
    accuracy = float(np.mean(logits.argmax(-1) == ds.y_test))
    c = zoo.card(name, directory=cache["folder"])
    assert accuracy >= c.min_accuracy
    assert c.clean_accuracy == pytest.approx(accuracy)
    assert c.built_with["keras"] == keras.__version__
    assert c.built_with["build_seconds"] > 0  # measured; its speed is no test's business
    assert c.parameters == model.count_params()
    # logits, not probabilities: rows do not sum to one and take negative values
    assert not np.allclose(logits.sum(-1), 1.0)
    assert logits.min() < 0


def test_digits_cnn_architecture(cache):
    model = cache["models"]["digits-cnn"]
    assert model.input_shape == (None, 8, 8, 1)
    assert 140_000 <= model.count_params() <= 160_000


def test_tabular_model_has_two_named_inputs(cache):
    model = cache["models"]["tabular-two-input"]
    assert sorted(t.name for t in keras.tree.flatten(model.inputs)) == ["errors", "measurements"]
    x = zoo.dataset("tabular-two-input").x_test
    swapped = {"errors": x["errors"], "measurements": x["measurements"]}
    np.testing.assert_allclose(
        model.predict(swapped, verbose=0), model.predict(x, verbose=0), rtol=0, atol=0
    )


@pytest.mark.parametrize("name", NAMES)
def test_load_from_file_gives_same_predictions_and_compile(cache, name):
    folder = cache["folder"]
    info = json.loads((folder / f"{name}.json").read_text())
    assert info["name"] == name and "tensorflow" in info and "keras" in info
    loaded = zoo.load(name, directory=folder)
    assert loaded is not cache["models"][name]
    np.testing.assert_allclose(
        _predict(loaded, name), _predict(cache["models"][name], name), rtol=1e-6, atol=1e-6
    )
    assert isinstance(loaded.loss, keras.losses.SparseCategoricalCrossentropy)
    assert loaded.loss.get_config()["from_logits"] is True
    assert loaded.layers[-1].get_config()["activation"] == "linear"


def _files(folder):
    """The cache's files but the lock files `zoo.load` leaves (one per model, empty)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_cache_holds_only_final_files(cache):
    """Each model is its .keras and .json files (no temporary file left); other tests of the
    session may have added other zoo models and their locks."""
    files = _files(cache["folder"])
    assert all(p.stat().st_size == 0 for p in cache["folder"].glob(".*.lock"))
    assert {f"{n}.keras" for n in NAMES} | {f"{n}.json" for n in NAMES} <= set(files)
    known = {f"{n}.{ext}" for n in [*NAMES, ROBUST, *MNIST] for ext in ("keras", "json")}
    assert set(files) <= known, sorted(set(files) - known)


def test_corrupt_cache_file_is_rebuilt_deterministically(cache, tmp_path):
    """The rebuilt model (digits-mlp, the smallest) has the very weights of the session's
    cached one: a build is deterministic."""
    (tmp_path / "digits-mlp.keras").write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="rebuilding"):
        model = zoo.load("digits-mlp", directory=tmp_path)
    ds = zoo.dataset("digits-mlp")
    assert np.mean(_predict(model, "digits-mlp").argmax(-1) == ds.y_test) >= 0.95
    assert zoo.card("digits-mlp", directory=tmp_path).clean_accuracy >= 0.95
    assert _files(tmp_path) == ["digits-mlp.json", "digits-mlp.keras"]
    cached = cache["models"]["digits-mlp"]
    for a, b in zip(model.get_weights(), cached.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_failed_write_leaves_no_temporary_file(tmp_path):
    def fail(path):
        pathlib.Path(path).write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "digits-mlp.keras", fail)
    assert list(tmp_path.iterdir()) == []


def test_unknown_name_is_a_clear_error(tmp_path):
    for call in (zoo.load, zoo.build, zoo.card, zoo.dataset):
        with pytest.raises(ValueError, match=r"argument `name`") as info:
            call("digits-resnet")
        assert "digits-cnn" in str(info.value) and "received name='digits-resnet'" in str(
            info.value
        )
    with pytest.raises(ValueError, match=r"argument `retrain`: expected True or False"):
        zoo.load("digits-mlp", retrain="yes", directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_build_zoo_script_keeps_cached_models(cache, capsys):
    spec = importlib.util.spec_from_file_location("build_zoo", ROOT / "scripts" / "build_zoo.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    before = (cache["folder"] / "digits-cnn.keras").stat().st_mtime_ns
    status = script.main(["--out", str(cache["folder"]), "--only", "digits-cnn", "--keep"])
    assert status == 0
    assert (cache["folder"] / "digits-cnn.keras").stat().st_mtime_ns == before
    out = capsys.readouterr().out
    assert "digits-cnn:" in out and "clean accuracy: 0.9" in out


@pytest.mark.slow
def test_adversarially_trained_digits_cnn(tmp_path, digits_cnn):
    """digits-cnn-pgd: PGD-AT at Linf eps 0.2 by advgrad.training (about a minute)."""
    card = zoo.card(ROBUST, directory=tmp_path)
    assert "PGD-AT" in card.recipe and "eps 0.2" in card.recipe
    model = zoo.load(ROBUST, directory=tmp_path)
    card = zoo.card(ROBUST, directory=tmp_path)
    assert type(model).__module__.startswith("keras.")  # a plain model, read in safe mode
    assert card.clean_accuracy >= 0.9
    robust = card.robust_accuracy
    assert robust["eps"] == 0.2 and robust["attack"].startswith("PGD-40 x 5")
    assert robust["accuracy"] >= 0.5
    assert card.built_with["build_seconds"] > 0
    # the standard CNN falls under the same attack: at least 30 points apart
    from advgrad import attacks

    ds = zoo.dataset(ROBUST)
    pgd = attacks.PGD(eps=0.2, steps=40, bounds=(0, 1), loss="ce")
    standard = 1 - float(np.mean(pgd.run(digits_cnn, ds.x_test, ds.y_test).fooled))
    assert robust["accuracy"] >= standard + 0.3, (robust, standard)


def test_concurrent_loads_train_a_missing_model_once(tmp_path, monkeypatch):
    """Two loaders of a missing model (two processes, or xdist workers sharing a cache): one
    trains it under the lock, the other waits and reads the cached file."""
    import threading

    real, trained = zoo._train, []

    def counted(name):
        trained.append(name)
        return real(name)

    monkeypatch.setattr(zoo, "_train", counted)
    models = [None, None]

    def load(i):
        models[i] = zoo.load("digits-mlp", directory=tmp_path)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert trained == ["digits-mlp"]
    x = zoo.dataset("digits-mlp").x_test[:8]
    np.testing.assert_array_equal(models[0].predict(x, verbose=0), models[1].predict(x, verbose=0))
