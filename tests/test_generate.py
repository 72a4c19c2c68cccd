"""advgrad.generation: shards, manifest, determinism, resume (in-process and after SIGKILL),
verify, loading back as tf.data, the on-the-fly dataset, and the bad inputs it refuses."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from advgrad import ArgumentError
from advgrad._io import folder_lock
from advgrad.attacks import FGSM, PGD
from advgrad.budget import Budget
from advgrad.generation import (
    adversarial_dataset,
    generate,
    load_generated,
    verify,
)
from advgrad.generation import writer as writer_module
from advgrad.generation.shards import read_shard
from advgrad.predictions import predicted_classes

N = 100  # samples: shards of 32, 32, 32, 4; batches of 24 straddle them
SHARD = 32
BATCH = 24
EPS = 0.1


def pgd(bounds=(0.0, 1.0)):
    return PGD(eps=EPS, steps=2, bounds=bounds)


def arrays(digits, n=N):
    return digits.x_test[:n], digits.y_test[:n]


def files(out: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def shard_columns(out: pathlib.Path) -> dict[str, np.ndarray]:
    manifest = json.loads((out / "manifest.json").read_text())
    fmt = manifest["config"]["format"]
    parts = [read_shard(out / s["file"], fmt, manifest["columns"]) for s in manifest["shards"]]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.fixture(scope="module")
def reference(digits, digits_cnn, tmp_path_factory):
    """An uninterrupted run per format, and its files."""
    runs = {}
    for fmt in ("npz", "tfrecord"):
        out = tmp_path_factory.mktemp(f"reference-{fmt}")
        manifest = generate(
            digits_cnn, arrays(digits), pgd(), out, shard_size=SHARD, format=fmt, batch_size=BATCH
        )
        runs[fmt] = (out, manifest, files(out))
    return runs


# ------------------------------------------------------------------- contents
@pytest.mark.parametrize("fmt", ["npz", "tfrecord"])
def test_shards_hold_every_sample_in_order_within_budget(reference, digits, digits_cnn, fmt):
    out, manifest, _ = reference[fmt]
    x, y = arrays(digits)
    assert [s["count"] for s in manifest["shards"]] == [32, 32, 32, 4]
    assert [s["first"] for s in manifest["shards"]] == [0, 32, 64, 96]
    assert manifest["complete"] and manifest["data"]["samples"] == N
    assert manifest["config"]["attack"] == pgd().get_config()
    assert manifest["config"]["shard_size"] == SHARD and manifest["config"]["format"] == fmt
    assert set(manifest["versions"]) >= {"advgrad", "tensorflow", "numpy"}
    for entry in manifest["shards"]:
        assert entry["sha256"] == hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest()
    cols = shard_columns(out)
    name = manifest["structure"]["names"][0]
    x_adv = cols[f"x_adv/{name}"]
    np.testing.assert_array_equal(cols["index"], np.arange(N))
    np.testing.assert_array_equal(cols["y"], y)
    assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
    assert np.all(x_adv >= 0.0) and np.all(x_adv <= 1.0)
    assert np.max(np.abs(x_adv - x)) <= EPS + 1e-6
    np.testing.assert_array_equal(cols["clean_correct"], predicted_classes(digits_cnn, x) == y)
    np.testing.assert_array_equal(cols["adv_correct"], predicted_classes(digits_cnn, x_adv) == y)
    assert cols["adv_correct"].sum() < cols["clean_correct"].sum()  # the attack did something
    real = np.abs(x_adv.astype(np.float64) - x).reshape(N, -1).max(axis=1)
    np.testing.assert_allclose(cols[f"norm/{name}"], real, rtol=1e-6)
    assert verify(out).ok


def test_same_seed_same_bytes_and_streamed_data_too(reference, digits, digits_cnn, tmp_path):
    for fmt, (_, _, expected) in reference.items():
        out = tmp_path / fmt
        generate(
            digits_cnn, arrays(digits), pgd(), out, shard_size=SHARD, format=fmt, batch_size=BATCH
        )
        assert files(out) == expected
    streamed = tf.data.Dataset.from_tensor_slices(arrays(digits)).batch(10)  # re-batched to 24
    out = tmp_path / "streamed"
    generate(digits_cnn, streamed, pgd(), out, shard_size=SHARD, format="npz", batch_size=BATCH)
    assert files(out) == reference["npz"][2]
    other = tmp_path / "other-seed"
    generate(
        digits_cnn, arrays(digits), pgd(), other, shard_size=SHARD, format="npz",
        batch_size=BATCH, seed=1,
    )  # fmt: skip
    assert files(other)["shard-00000.npz"] != reference["npz"][2]["shard-00000.npz"]


def test_named_data_set_split(digits, digits_cnn, tmp_path):
    manifest = generate(
        digits_cnn, "digits", FGSM(eps=EPS, bounds=(0, 1)), tmp_path, shard_size=200,
        format="npz", split="test", batch_size=450,
    )  # fmt: skip
    assert [s["count"] for s in manifest["shards"]] == [200, 200, 50]
    np.testing.assert_array_equal(shard_columns(tmp_path)["y"], digits.y_test)


def test_multi_input_every_input_stored_frozen_unchanged(tabular, tabular_model, tmp_path):
    x = {k: v[:50] for k, v in tabular.x_test.items()}
    y = tabular.y_test[:50]
    attack = PGD(steps=2, budget={"measurements": Budget(0.5, "l2")})
    manifest = generate(tabular_model, (x, y), attack, tmp_path, shard_size=16, format="tfrecord")
    cols = shard_columns(tmp_path)
    assert manifest["structure"] == {"kind": "dict", "names": ["measurements", "errors"]}
    assert "norm/errors" not in cols
    np.testing.assert_array_equal(cols["x_adv/errors"], x["errors"])
    delta = cols["x_adv/measurements"].astype(np.float64) - x["measurements"]
    np.testing.assert_allclose(
        cols["norm/measurements"], np.linalg.norm(delta, axis=1), rtol=1e-5, atol=1e-6
    )
    assert np.all(cols["norm/measurements"] <= 0.5 + 1e-5) and cols["norm/measurements"].max() > 0.1
    batch_x, batch_y = next(iter(load_generated(tmp_path, batch_size=50)))
    assert set(batch_x) == {"measurements", "errors"}
    np.testing.assert_array_equal(batch_x["measurements"], cols["x_adv/measurements"])
    np.testing.assert_array_equal(batch_y, y)


@pytest.mark.parametrize("graph", [True, False], ids=["one-compiled-call", "run"])
def test_each_batch_is_the_attack_with_its_seed(digits, digits_cnn, tmp_path, graph):
    """The shards hold what the attack returns called on each batch with that batch's seed,
    whether the batch runs as one compiled call (PGD) or through `run` (Square)."""
    from advgrad.attacks import Square
    from advgrad.batching import seed_of
    from advgrad.generation.step import BatchStep

    x, y = arrays(digits, 20)
    attack = pgd() if graph else Square(eps=EPS, queries=8, bounds=(0.0, 1.0), seed=5)
    generate(digits_cnn, (x, y), attack, tmp_path, shard_size=8, batch_size=8, seed=4)
    step = BatchStep(digits_cnn, attack, seed=4)
    step(0, x[:8], y[:8])
    assert step.compiled is graph
    x_adv = shard_columns(tmp_path)[f"x_adv/{_name(tmp_path)}"]
    for number, start in enumerate(range(0, 20, 8)):
        part = slice(start, start + 8)
        direct = attack.replace(seed=seed_of(4, attack.seed, number, 0, 0))(
            digits_cnn, x[part], y[part]
        )
        np.testing.assert_array_equal(x_adv[part], direct)


def test_a_second_run_of_the_same_attack_does_not_trace_again(digits, digits_cnn, tmp_path):
    """The batch step is compiled once per model, attack and signature (cached on the model,
    like the attack's own loop), whatever the batch size, the run or the seed."""
    from advgrad._compile import trace_count

    run = dict(shard_size=8, format="npz", batch_size=8)
    generate(digits_cnn, arrays(digits, 20), pgd(), tmp_path / "a", **run)  # 8, 8, 4
    before = trace_count("attack")
    generate(digits_cnn, arrays(digits, 12), pgd(), tmp_path / "b", seed=3, **run)
    assert trace_count("attack") == before
    generate(digits_cnn, arrays(digits, 12), pgd().replace(eps=0.05), tmp_path / "c", **run)
    assert trace_count("attack") == before + 1  # another radius: its own graph
    x_adv = shard_columns(tmp_path / "c")[f"x_adv/{_name(tmp_path / 'c')}"]
    assert np.abs(x_adv - arrays(digits, 12)[0]).max() <= 0.05 + 1e-6


# --------------------------------------------------------------------- resume
def test_resume_after_an_error_gives_the_uninterrupted_bytes(
    reference, digits, digits_cnn, tmp_path, monkeypatch
):
    original = writer_module.write_shard

    def failing(path, columns, count, fmt):
        if ".shard-00002." in str(path):
            raise RuntimeError("interrupted")
        original(path, columns, count, fmt)

    monkeypatch.setattr(writer_module, "write_shard", failing)
    run = dict(shard_size=SHARD, format="tfrecord", batch_size=BATCH)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate(digits_cnn, arrays(digits), pgd(), tmp_path, **run)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["manifest.json", "shard-00000.tfrecord", "shard-00001.tfrecord"]
    assert not verify(tmp_path).ok and not verify(tmp_path).complete
    with pytest.raises(ArgumentError, match="incomplete"):
        load_generated(tmp_path)
    monkeypatch.setattr(writer_module, "write_shard", original)
    generate(digits_cnn, arrays(digits), pgd(), tmp_path, resume=True, **run)
    assert files(tmp_path) == reference["tfrecord"][2]


def test_verify_finds_a_flipped_byte_and_a_missing_shard_resume_regenerates(
    reference, digits, digits_cnn, tmp_path
):
    for name, content in reference["npz"][2].items():
        (tmp_path / name).write_bytes(content)
    shard = tmp_path / "shard-00001.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    (tmp_path / "shard-00003.npz").unlink()
    result = verify(tmp_path)
    assert not result.ok and result.corrupt == [1] and result.missing == [3]
    assert "checksum" in result.problems[0]
    generate(
        digits_cnn, arrays(digits), pgd(), tmp_path, shard_size=SHARD, format="npz",
        batch_size=BATCH, resume=True,
    )  # fmt: skip
    assert verify(tmp_path).ok
    assert files(tmp_path) == reference["npz"][2]


_CHILD = """
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from advgrad import data, zoo
from advgrad.attacks import PGD
from advgrad.generation import generate, writer

out, target = sys.argv[1], sys.argv[2]
ds, model = data.digits(), zoo.load("digits-cnn")
write_shard, write_manifest = writer.write_shard, writer.write_manifest

def stop():
    print("KILLME", flush=True)
    time.sleep(120)

def slow_shard(path, columns, count, fmt):
    write_shard(path, columns, count, fmt)
    if target == "mid:" + os.path.basename(str(path)).split(".")[1]:
        with open(path, "r+b") as f:  # half a file under the temporary name
            f.truncate(os.path.getsize(path) // 2)
        stop()

def slow_manifest(folder, manifest):
    if target == "manifest:%d" % len(manifest["shards"]):
        stop()  # the shard is renamed into place, the manifest does not list it yet
    write_manifest(folder, manifest)

writer.write_shard, writer.write_manifest = slow_shard, slow_manifest
print("READY", flush=True)
sys.stdin.readline()
generate(model, (ds.x_test[:N], ds.y_test[:N]), PGD(eps=EPS, steps=2, bounds=(0.0, 1.0)),
         out, shard_size=SHARD, format="npz", batch_size=BATCH, resume=True)
"""


def test_killed_at_any_point_resumes_to_the_same_bytes(reference, digits, digits_cnn, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(f"N, EPS, SHARD, BATCH = {N}, {EPS}, {SHARD}, {BATCH}\n" + _CHILD)
    out = tmp_path / "out"
    targets = ["mid:shard-00001", "manifest:3"]
    children = [  # all import TensorFlow at once; each starts when told to
        subprocess.Popen(
            [sys.executable, str(script), str(out), t],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1])},
        )
        for t in targets
    ]
    deadline = time.monotonic() + 240  # a hang guard, not a speed check
    try:
        for child in children:
            assert child.stdout.readline().strip() == "READY"
        seen = []
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "KILLME"
            assert time.monotonic() < deadline
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            seen.append(sorted(p.name for p in out.iterdir()))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    # killed mid-write: a half-written temporary file, no shard 1 under its final name
    assert "shard-00001.npz" not in seen[0] and any(".tmp" in n for n in seen[0])
    assert "shard-00002.npz" in seen[1]  # renamed, not yet in the manifest
    listed = json.loads((out / "manifest.json").read_text())["shards"]
    assert [s["index"] for s in listed] == [0, 1]
    generate(
        digits_cnn,
        arrays(digits),
        pgd(),
        out,
        shard_size=SHARD,
        format="npz",
        batch_size=BATCH,
        resume=True,
    )  # fmt: skip  (the last resume runs here: one TensorFlow import fewer)
    assert files(out) == reference["npz"][2]
    assert verify(out).ok


# ----------------------------------------------------------------- bad input
def test_bad_arguments_are_named_before_any_work(digits, digits_cnn, tabular, tmp_path):
    run = dict(shard_size=8, format="npz")
    cases = [
        (dict(format="parquet"), "format"),
        (dict(shard_size=0), "shard_size"),
        (dict(batch_size=0), "batch_size"),
        (dict(seed=-1), "seed"),
        (dict(split="valid"), "split"),
    ]
    for change, argument in cases:
        with pytest.raises(ArgumentError) as err:
            generate(digits_cnn, arrays(digits, 8), pgd(), tmp_path / "a", **{**run, **change})
        assert err.value.argument == argument
    with pytest.raises(ArgumentError) as err:  # two dict inputs for a one-input model
        generate(digits_cnn, (tabular.x_test, tabular.y_test), pgd(), tmp_path / "b", **run)
    assert err.value.argument == "data"
    with pytest.raises(ArgumentError) as err:
        generate(digits_cnn, (digits.x_test[:8], np.full(8, 12)), pgd(), tmp_path / "c", **run)
    assert err.value.argument == "data"
    with pytest.raises(ArgumentError) as err:
        generate(digits_cnn, arrays(digits, 8), "no-such-attack", tmp_path / "d", **run)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ArgumentError, match="cannot be written") as err:
        generate(digits_cnn, arrays(digits, 8), pgd(), blocker / "out", **run)
    assert err.value.argument == "out_dir"
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_another_runs_folder_is_refused_and_a_changed_run_named(digits, digits_cnn, tmp_path):
    run = dict(shard_size=8, format="npz", batch_size=8)
    generate(digits_cnn, arrays(digits, 16), pgd(), tmp_path, **run)
    before = files(tmp_path)
    with pytest.raises(ArgumentError, match="resume=True") as err:
        generate(digits_cnn, arrays(digits, 16), pgd(), tmp_path, **run)
    assert err.value.argument == "out_dir"  # its own finished run: not "another run's"
    assert "holds this run's manifest.json (the same config and model, complete)" in str(err.value)
    with pytest.raises(ArgumentError, match="different seed") as err:  # another run's: named
        generate(digits_cnn, arrays(digits, 16), pgd(), tmp_path, **{**run, "seed": 3})
    assert err.value.argument == "seed"
    changes = [
        (dict(seed=3), pgd(), digits_cnn, "seed"),
        (dict(shard_size=4), pgd(), digits_cnn, "shard_size"),
        ({}, FGSM(eps=EPS, bounds=(0, 1)), digits_cnn, "attack"),
    ]
    changed = tf.keras.models.clone_model(digits_cnn)
    changed.set_weights([w * 1.01 for w in digits_cnn.get_weights()])
    changes.append(({}, pgd(), changed, "model"))
    for change, attack, model, argument in changes:
        with pytest.raises(ArgumentError) as err:
            generate(model, arrays(digits, 16), attack, tmp_path, resume=True, **{**run, **change})
        assert err.value.argument == argument
    x, y = digits.x_test[16:32], digits.y_test[16:32]
    with pytest.raises(ArgumentError, match="shard 0") as err:
        generate(digits_cnn, (x, y), pgd(), tmp_path, resume=True, **run)
    assert err.value.argument == "data"
    with pytest.raises(ArgumentError, match="more samples") as err:
        generate(digits_cnn, arrays(digits, 24), pgd(), tmp_path, resume=True, **run)
    assert files(tmp_path) == before
    generate(digits_cnn, arrays(digits, 16), pgd(), tmp_path, resume=True, **run)  # same: ok
    assert files(tmp_path) == before


def test_a_folder_another_run_is_writing_is_refused(digits, digits_cnn, tmp_path):
    run = dict(shard_size=8, format="npz", batch_size=8)
    with folder_lock(tmp_path):  # what a run in another process holds while it writes
        with pytest.raises(ArgumentError, match="another run right now") as err:
            generate(digits_cnn, arrays(digits, 16), pgd(), tmp_path, **run)
        assert err.value.argument == "out_dir"
        assert list(tmp_path.iterdir()) == []  # refused before any claim
    manifest = generate(digits_cnn, arrays(digits, 16), pgd(), tmp_path, **run)  # released
    assert manifest["complete"]


def test_a_full_disk_leaves_nothing_half_written(digits, digits_cnn, tmp_path, monkeypatch):
    def full(path, columns, count, fmt):
        with open(path, "wb") as file:
            file.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module, "write_shard", full)
    with pytest.raises(OSError, match="could not write shard 0.*No space left"):
        generate(digits_cnn, arrays(digits, 16), pgd(), tmp_path, shard_size=8, format="npz")
    assert list(tmp_path.iterdir()) == []  # no shard, no temporary file, no claim


# -------------------------------------------------------------------- loading
def test_load_generated_in_order_shuffled_and_mixed(digits, digits_cnn, tmp_path):
    x, y = arrays(digits, 40)
    generate(digits_cnn, (x, y), pgd(), tmp_path, shard_size=8, format="npz", keep_clean=True)
    cols = shard_columns(tmp_path)
    xs, ys = zip(*load_generated(tmp_path, batch_size=16), strict=True)
    np.testing.assert_array_equal(np.concatenate(ys), y)
    np.testing.assert_array_equal(np.concatenate(xs), cols["x_adv/" + _name(tmp_path)])

    def order(seed):
        return np.concatenate([b for _, b in load_generated(tmp_path, shuffle=True, seed=seed)])

    first = order(5)
    assert sorted(first.tolist()) == sorted(y.tolist()) and not np.array_equal(first, y)
    np.testing.assert_array_equal(order(5), first)
    mixed = np.concatenate([b for b, _ in load_generated(tmp_path, mix_clean=0.25)])
    clean = np.all(mixed == x, axis=(1, 2, 3))
    assert clean.sum() == 10 and clean[3] and not clean[0]
    with pytest.raises(ArgumentError) as err:
        load_generated(tmp_path, mix_clean=1.5)
    assert err.value.argument == "mix_clean"
    model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(10)])  # fmt: skip
    model.compile("sgd", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loaded = load_generated(tmp_path, shuffle=True, seed=0)
    history = model.fit(loaded, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])


def test_mix_clean_needs_stored_clean_inputs(reference):
    with pytest.raises(ArgumentError, match="keep_clean=True") as err:
        load_generated(reference["npz"][0], mix_clean=0.5)
    assert err.value.argument == "mix_clean"


def test_adversarial_dataset_attacks_each_batch_with_its_seed(digits, digits_cnn):
    x, y = arrays(digits, 12)
    clean = tf.data.Dataset.from_tensor_slices((x, y)).batch(6)
    attack = PGD(eps=EPS, steps=2, bounds=(0.0, 1.0), random_start=True)
    batches = list(adversarial_dataset(clean, digits_cnn, attack, seed=4))
    assert [tuple(b.shape) for b, _ in batches] == [(6, 8, 8, 1), (6, 8, 8, 1)]
    from advgrad.batching import seed_of

    for number, (x_adv, labels) in enumerate(batches):
        part = slice(6 * number, 6 * number + 6)
        direct = attack.replace(seed=seed_of(4, attack.seed, number, 0, 0))(
            digits_cnn, x[part], y[part]
        )
        np.testing.assert_allclose(x_adv, direct, atol=1e-6)
        np.testing.assert_array_equal(labels, y[part])
        assert np.max(np.abs(x_adv.numpy() - x[part])) <= EPS + 1e-6
    with pytest.raises(ArgumentError) as err:
        adversarial_dataset((x, y), digits_cnn, attack)
    assert err.value.argument == "dataset"


def _name(out: pathlib.Path) -> str:
    return json.loads((out / "manifest.json").read_text())["structure"]["names"][0]
