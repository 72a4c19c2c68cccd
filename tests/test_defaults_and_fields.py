"""Issue 25, parts 5 and 7: the minimal-norm attacks' default norm, `keep_clean` in a
generation config, `load_generated(..., fields=True)`, and the warning of a direct attack
call left unbounded on data in [0, 1]."""

import textwrap
import warnings

import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad import Budget
from advgrad._validation import ArgumentError, FlaggedWarning
from advgrad.attacks import FGSM, FMN, PGD, CarliniWagnerL2, DeepFool
from advgrad.generation import GeneratedFields, generate, load_generated

UNBOUNDED = "unbounded: its adversarial inputs may leave the valid range"


# ------------------------------------------------------------------- part 5: defaults
def test_minimal_norm_attacks_default_to_l2_everywhere(capsys):
    """DeepFool and FMN default to L2 like CW-L2: the class, the registry, the catalog the
    configs are checked against and `advgrad attacks` all say so."""
    from advgrad.cli import main
    from advgrad.config.registries import default_catalog
    from advgrad.evaluation.curve import curve_attacks

    assert DeepFool().norm == FMN().norm == CarliniWagnerL2().norm == "l2"
    catalog = default_catalog()
    for name in ("deepfool", "fmn", "cw-l2"):
        assert advgrad.get_attack(name).get_config()["norm"] == "l2"
        assert catalog.attacks[name]["norm"] == "l2"
    # one norm by default: the three share a robustness curve without `norm=`
    assert len(curve_attacks([DeepFool(), FMN(), CarliniWagnerL2()])) == 3
    assert main(["attacks"]) == 0
    listing = capsys.readouterr().out.splitlines()
    for name in ("deepfool", "fmn"):
        settings = listing[listing.index(next(s for s in listing if s.startswith(name))) + 1]
        assert "norm='l2'" in settings, settings


def test_a_config_without_norm_builds_l2_minimal_norm_attacks(digits_cnn):
    from advgrad.config import build_run, parse_config

    document = {
        "model": "digits-cnn",
        "data": {"name": "digits", "limit": 8},
        "suite": ["deepfool", "fmn", "cw-l2"],
        "eps": "curve",
        "bounds": "data",
    }
    run = build_run(parse_config(document))
    assert [a.norm for a in run.suite] == ["l2", "l2", "l2"]
    linf = build_run(parse_config({**document, "suite": ["deepfool", "fmn"], "norm": "linf"}))
    assert [a.norm for a in linf.suite] == ["linf", "linf"]  # the config's norm still wins


# ------------------------------------------------------ part 5: keep_clean in a config
def test_keep_clean_in_a_generation_config_end_to_end(tmp_path, capsys, digits, digits_cnn):
    from advgrad.cli import main
    from advgrad.config.registries import default_catalog
    from advgrad.generation.config import SCHEMA, parse_generate
    from advgrad.schema.problems import ConfigError

    assert "keep_clean:" in SCHEMA
    config = tmp_path / "generate.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            model: digits-cnn
            data: {name: digits, split: test, limit: 24}
            attack: fgsm
            eps: 0.1
            bounds: data
            shard_size: 16
            format: npz
            batch_size: 8
            keep_clean: true
            """
        )
    )
    out = tmp_path / "data"
    assert main(["generate", str(config), "--out", str(out)]) == 0, capsys.readouterr().err
    assert advgrad.verify(out).ok
    x, y = digits.x_test[:24], digits.y_test[:24]
    mixed = np.concatenate([b for b, _ in load_generated(out, mix_clean=0.5)])
    clean = np.all(mixed == x, axis=(1, 2, 3))
    assert clean.sum() == 12  # exactly half served clean, the stored clean inputs
    adversarial = np.concatenate([b for b, _ in load_generated(out)])
    np.testing.assert_array_equal(mixed[~clean], adversarial[~clean])
    np.testing.assert_array_equal(np.concatenate([b for _, b in load_generated(out)]), y)

    document = {
        "model": "digits-cnn",
        "data": {"name": "digits"},
        "attack": "fgsm",
        "eps": 0.1,
        "shard_size": 8,
        "keep_clean": "yes",
    }
    with pytest.raises(ConfigError, match="keep_clean: expected True or False"):
        parse_generate(document, default_catalog())


# ---------------------------------------------------- part 5: load_generated(fields=)
@pytest.fixture(scope="module")
def generated(tmp_path_factory, digits, digits_cnn):
    """20 digits attacked by FGSM (eps 0.1), clean inputs kept, in shards of 8."""
    out = tmp_path_factory.mktemp("generated")
    x, y = digits.x_test[:20], digits.y_test[:20]
    attack = FGSM(eps=0.1, bounds=digits.bounds)
    generate(digits_cnn, (x, y), attack, out, shard_size=8, format="tfrecord", keep_clean=True)
    return out, x, y


def test_fields_are_the_stored_record_of_each_sample(generated, digits_cnn):
    out, x, y = generated
    plain = next(iter(load_generated(out, batch_size=20)))
    assert len(plain) == 2  # the default is still (x, y)
    x_adv, labels, f = next(iter(load_generated(out, batch_size=20, fields=True)))
    assert isinstance(f, GeneratedFields)
    np.testing.assert_array_equal(x_adv, plain[0])
    np.testing.assert_array_equal(labels, y)
    assert f.index.dtype == tf.int64 and f.index.numpy().tolist() == list(range(20))
    predicted = lambda v: digits_cnn.predict(v, verbose=0).argmax(-1)  # noqa: E731
    np.testing.assert_array_equal(f.clean_correct, predicted(x) == y)
    np.testing.assert_array_equal(f.adv_correct, predicted(x_adv.numpy()) == y)
    np.testing.assert_array_equal(f.clean_class, predicted(x))  # the classes themselves
    np.testing.assert_array_equal(f.adv_class, predicted(x_adv.numpy()))
    assert f.clean_class.dtype == f.adv_class.dtype == tf.int64
    assert not f.adv_correct.numpy().all()  # FGSM at 0.1 fools some
    size = np.abs(x_adv.numpy() - x).reshape(20, -1).max(axis=1)
    np.testing.assert_allclose(f.norm, size, rtol=1e-5, atol=1e-6)
    assert f.adversarial.numpy().all()
    assert [a.decode() for a in f.attack.numpy()] == ["fgsm"] * 20


def test_fields_with_mix_clean_say_which_sample_is_clean(generated):
    out, x, _ = generated
    rows = list(load_generated(out, batch_size=None, mix_clean=0.25, fields=True, shuffle=True))
    assert len(rows) == 20
    for value, _, f in rows:
        assert bool(f.adversarial) != bool(np.array_equal(value, x[int(f.index)]))
    assert sum(not bool(f.adversarial) for _, _, f in rows) == 5


def test_fields_keep_the_per_shard_sha256_check(generated, tmp_path):
    import shutil

    out, _, _ = generated
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = next(copy.glob("shard-00001.*"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(tf.errors.InvalidArgumentError, match="checksum mismatch"):
        list(load_generated(copy, fields=True))
    with pytest.raises(ArgumentError) as err:
        load_generated(out, fields="yes")
    assert err.value.argument == "fields"


def test_fields_norm_has_the_inputs_structure(tabular, tabular_model, tmp_path):
    x = {k: v[:12] for k, v in tabular.x_test.items()}
    attack = PGD(steps=2, budget={"measurements": Budget(0.5, "l2")})  # "errors": frozen
    generate(tabular_model, (x, tabular.y_test[:12]), attack, tmp_path, shard_size=12)
    x_adv, _, f = next(iter(load_generated(tmp_path, batch_size=12, fields=True)))
    assert set(f.norm) == {"measurements", "errors"}
    delta = x_adv["measurements"].numpy().astype(np.float64) - x["measurements"]
    np.testing.assert_allclose(f.norm["measurements"], np.linalg.norm(delta, axis=1), 1e-5)
    assert np.all(f.norm["errors"].numpy() == 0)  # frozen: unchanged
    assert f.attack.numpy()[0] == b"pgd"


# ------------------------------------------------------- part 7: direct calls on [0, 1]
def _unbounded(records):
    return [r for r in records if UNBOUNDED in str(r.message)]


def test_a_direct_call_on_unit_data_without_bounds_warns_once(digits, digits_cnn):
    x, y = digits.x_test[:8], digits.y_test[:8]
    attack = PGD(eps=0.1, steps=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x_adv = attack.replace(seed=1)(digits_cnn, x, y)  # a copy with the same bounds
        attack.run(digits_cnn, x, y)  # shares the copy's warning
        attack(digits_cnn, x, y)
    (record,) = _unbounded(caught)
    assert record.category is FlaggedWarning and record.filename == __file__
    assert "attack 'pgd' is unbounded" in str(record.message)
    assert x_adv.max() > 1 or x_adv.min() < 0  # what it warns about
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PGD(eps=0.1, steps=1)(digits_cnn, x, y)  # another attack object: warned again
        PGD(eps=0.1, steps=1, bounds=digits.bounds)(digits_cnn, x, y)  # bounded
        PGD(eps=0.1, steps=1)(digits_cnn, x * 2 - 1, y)  # data not in [0, 1]
    assert len(_unbounded(caught)) == 1
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)  # a copy per batch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(advgrad.adversarial_dataset(batches, digits_cnn, PGD(eps=0.1, steps=1)))
    assert len(_unbounded(caught)) == 1


def test_one_filter_silences_evaluate_and_the_attacks(digits, digits_cnn):
    from advgrad.report import FlaggedWarning as ReportWarning

    assert ReportWarning is FlaggedWarning
    x, y = digits.x_test[:8], digits.y_test[:8]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=FlaggedWarning)
        PGD(eps=0.1, steps=1)(digits_cnn, x, y)
        advgrad.evaluate(digits_cnn, (x, y), suite=[FGSM()], eps=[0.1], sanity=False)
    assert not _unbounded(caught)


def test_evaluate_warns_once_not_its_attacks(digits, digits_cnn):
    x, y = digits.x_test[:8], digits.y_test[:8]
    suite = [FGSM(), PGD(steps=1)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = advgrad.evaluate(digits_cnn, (x, y), suite=suite, eps=[0.1], sanity=False)
    (record,) = _unbounded(caught)
    assert "attacks 'fgsm', 'pgd' are unbounded" in str(record.message)
    assert [f["code"] for f in report.flags].count("unbounded_attack_on_bounded_data") == 1
    assert not [f for f in report.flags if f["code"] == "run_warning"]


# ------------------------------------------------- generate on [0, 1] data, unbounded
def test_generate_on_unit_data_without_bounds_warns_once(digits, digits_cnn, tmp_path):
    """`generate` warns as a direct call does (the attack's one warning, shared by the
    copies it attacks each batch with), pointing at the caller, and only when unbounded."""
    x, y = digits.x_test[:12], digits.y_test[:12]
    for number, attack in enumerate([PGD(eps=0.1, steps=1), advgrad.attacks.EOT(FGSM(eps=0.1))]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            generate(digits_cnn, (x, y), attack, tmp_path / str(number), shard_size=8, batch_size=4)
        (record,) = _unbounded(caught)  # three batches, one warning
        assert record.category is FlaggedWarning and record.filename == __file__
        assert f"attack '{attack.name}' is unbounded" in str(record.message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bounded = FGSM(eps=0.1, bounds=digits.bounds)
        generate(digits_cnn, (x, y), bounded, tmp_path / "bounded", shard_size=8, batch_size=4)
    assert not _unbounded(caught)


def test_the_generate_command_warns_when_left_unbounded(tmp_path, capsys, digits_cnn):
    from advgrad.cli import main

    config = tmp_path / "generate.yaml"
    config.write_text(
        "model: digits-cnn\ndata: {name: digits, split: test, limit: 8}\nattack: fgsm\n"
        "eps: 0.1\nbounds: null\nshard_size: 8\nformat: npz\n"
    )
    assert main(["generate", str(config), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err.count(UNBOUNDED) == 1, err
