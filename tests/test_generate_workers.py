"""advgrad.generate as N independent workers: the same shards, byte for byte, and the same
manifest as one run; one after the other, at once (threads), streamed; resume; the folder
refused while unfinished; bad `worker` values; mixing; the CLI's --worker."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from advgrad import ArgumentError
from advgrad._io import folder_lock, path_lock
from advgrad.attacks import PGD
from advgrad.cli import main
from advgrad.generation import generate, load_generated, verify
from advgrad.generation import writer as writer_module

N = 40  # samples: shards of 8 (five), batches of 5 straddle them (batch 1: samples 5-9)
SHARD = 8
BATCH = 5
RUN = dict(shard_size=SHARD, batch_size=BATCH)


def pgd():
    return PGD(eps=0.1, steps=2, bounds=(0.0, 1.0))


def arrays(digits):
    return digits.x_test[:N], digits.y_test[:N]


def shards(out: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*"))}


def manifest_of(out: pathlib.Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def loaded(out: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    parts = list(load_generated(out, batch_size=N).as_numpy_iterator())
    return tuple(np.concatenate([p[k] for p in parts]) for k in (0, 1))


@pytest.fixture(scope="module")
def reference(digits, digits_cnn, tmp_path_factory):
    """One run per format: its manifest and shard files."""
    runs = {}
    for fmt in ("npz", "tfrecord"):
        out = tmp_path_factory.mktemp(f"one-{fmt}")
        manifest = generate(digits_cnn, arrays(digits), pgd(), out, format=fmt, **RUN)
        runs[fmt] = (out, manifest, shards(out))
    return runs


def same_as_one_run(out: pathlib.Path, reference, fmt: str, workers: int = 2) -> None:
    one_out, one, one_shards = reference[fmt]
    assert shards(out) == one_shards  # the same files, byte for byte
    merged = manifest_of(out)
    assert merged.pop("workers") == workers
    assert merged == one  # the same shards, checksums, data digest, config
    assert verify(out).ok and verify(out).shards == 5
    for mine, theirs in zip(loaded(out), loaded(one_out), strict=True):
        np.testing.assert_array_equal(mine, theirs)


# ----------------------------------------------------------------- the same bytes
@pytest.mark.parametrize("fmt", ["npz", "tfrecord"])
def test_two_workers_one_after_the_other_write_the_one_run_bytes(
    reference, digits, digits_cnn, tmp_path, fmt
):
    first = generate(digits_cnn, arrays(digits), pgd(), tmp_path, format=fmt, worker="0/2", **RUN)
    assert [s["index"] for s in first["shards"]] == [0, 2, 4] and first["complete"]
    assert first["worker"] == {"index": 0, "count": 2, "shards": 5}
    assert not (tmp_path / "manifest.json").exists()  # until the last worker finishes
    for check in (verify, load_generated):
        with pytest.raises(ArgumentError, match=r"worker 1/2: not started \(shards 1, 3\)") as err:
            check(tmp_path)
        assert err.value.argument == "out_dir"
    last = generate(digits_cnn, arrays(digits), pgd(), tmp_path, format=fmt, worker=(1, 2), **RUN)
    assert last["workers"] == 2 and [s["index"] for s in last["shards"]] == [0, 1, 2, 3, 4]
    same_as_one_run(tmp_path, reference, fmt)
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert names == sorted(
        [*reference[fmt][2], "manifest.json"] + [f"manifest.worker-{i}-of-2.json" for i in range(2)]
    )


@pytest.mark.parametrize("fmt", ["npz", "tfrecord"])
def test_two_workers_at_once_write_the_one_run_bytes(reference, digits, digits_cnn, tmp_path, fmt):
    errors, results = [], {}
    start = threading.Barrier(2)

    def work(i):
        try:
            start.wait()
            results[i] = generate(
                digits_cnn, arrays(digits), pgd(), tmp_path, format=fmt, worker=f"{i}/2", **RUN
            )
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum("workers" in r for r in results.values()) >= 1  # the last one merged
    same_as_one_run(tmp_path, reference, fmt)


def test_a_streamed_dataset_with_two_workers(reference, digits, digits_cnn, tmp_path, monkeypatch):
    streamed = tf.data.Dataset.from_tensor_slices(arrays(digits)).batch(7)  # re-batched to 5
    claims = []
    original = writer_module.write_manifest

    def spy(folder, manifest, name="manifest.json"):
        claims.append(json.loads(json.dumps(manifest)))
        original(folder, manifest, name)

    monkeypatch.setattr(writer_module, "write_manifest", spy)
    first = generate(digits_cnn, streamed, pgd(), tmp_path, format="npz", worker="1/2", **RUN)
    monkeypatch.setattr(writer_module, "write_manifest", original)
    assert claims[0]["worker"]["shards"] is None  # a stream's length: known at its end
    assert first["worker"]["shards"] == 5 and [s["index"] for s in first["shards"]] == [1, 3]
    with pytest.raises(ArgumentError, match=r"worker 0/2: not started \(shards 0, 2, 4\)"):
        verify(tmp_path)
    generate(digits_cnn, streamed, pgd(), tmp_path, format="npz", worker="0/2", **RUN)
    same_as_one_run(tmp_path, reference, "npz")


def test_five_workers_more_than_some_have_shards(reference, digits, digits_cnn, tmp_path):
    for i in (5, 3, 1, 0, 4, 2):  # six workers, five shards: worker 5 writes none
        generate(digits_cnn, arrays(digits), pgd(), tmp_path, format="npz", worker=f"{i}/6", **RUN)
    same_as_one_run(tmp_path, reference, "npz", workers=6)


# ------------------------------------------------------------------------ resume
def test_a_killed_worker_resumes_and_a_corrupt_shard_is_rewritten(
    reference, digits, digits_cnn, tmp_path, monkeypatch
):
    original = writer_module.write_shard

    def failing(path, columns, count, fmt):
        if ".shard-00002." in str(path):
            raise RuntimeError("interrupted")
        original(path, columns, count, fmt)

    monkeypatch.setattr(writer_module, "write_shard", failing)
    run = dict(format="tfrecord", **RUN)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate(digits_cnn, arrays(digits), pgd(), tmp_path, worker="0/2", **run)
    monkeypatch.setattr(writer_module, "write_shard", original)
    saved = json.loads((tmp_path / "manifest.worker-0-of-2.json").read_text())
    assert [s["index"] for s in saved["shards"]] == [0] and not saved["complete"]
    with pytest.raises(ArgumentError, match="shards 2, 4 to write") as err:
        load_generated(tmp_path)
    assert "worker 0/2: unfinished, 1 shard(s) written" in str(err.value)
    assert "worker 1/2: not started" in str(err.value)
    with pytest.raises(ArgumentError, match="resume=True") as err:  # its file: resume it
        generate(digits_cnn, arrays(digits), pgd(), tmp_path, worker="0/2", **run)
    assert err.value.argument == "out_dir"
    generate(digits_cnn, arrays(digits), pgd(), tmp_path, worker="1/2", **run)
    assert not (tmp_path / "manifest.json").exists()  # worker 0 is not finished
    generate(digits_cnn, arrays(digits), pgd(), tmp_path, worker="0/2", resume=True, **run)
    same_as_one_run(tmp_path, reference, "tfrecord")

    shard = tmp_path / "shard-00003.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    assert verify(tmp_path).corrupt == [3]
    generate(digits_cnn, arrays(digits), pgd(), tmp_path, worker="1/2", resume=True, **run)
    same_as_one_run(tmp_path, reference, "tfrecord")


_CHILD = """
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from advgrad import data, zoo
from advgrad.attacks import PGD
from advgrad.generation import generate, writer

out, worker, target = sys.argv[1:4]
ds, model = data.digits(), zoo.load("digits-cnn")
write_shard = writer.write_shard

def slow_shard(path, columns, count, fmt):
    write_shard(path, columns, count, fmt)
    if target in str(path):  # written under its temporary name, not yet renamed
        print("KILLME", flush=True)
        time.sleep(120)

writer.write_shard = slow_shard
print("READY", flush=True)
sys.stdin.readline()
manifest = generate(model, (ds.x_test[:N], ds.y_test[:N]), PGD(eps=0.1, steps=2, bounds=(0.0, 1.0)),
                    out, shard_size=SHARD, batch_size=BATCH, format="npz", worker=worker)
print("DONE", "workers" in manifest, flush=True)
"""


def test_two_processes_at_once_one_killed_then_resumed(reference, digits, digits_cnn, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(f"N, SHARD, BATCH = {N}, {SHARD}, {BATCH}\n" + _CHILD)
    out = tmp_path / "out"
    children = [
        subprocess.Popen(
            [sys.executable, str(script), str(out), worker, target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1])},
        )
        for worker, target in (("0/2", ".shard-00002."), ("1/2", "no shard"))
    ]
    deadline = time.monotonic() + 240  # a hang guard, not a speed check
    try:
        for child in children:
            assert child.stdout.readline().strip() == "READY"
        for child in children:  # both start at once
            child.stdin.write("go\n")
            child.stdin.flush()
        killed, finished = children
        assert killed.stdout.readline().strip() == "KILLME"
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        assert finished.stdout.readline().strip() == "DONE False"  # worker 0 unfinished
        assert finished.wait(timeout=10) == 0 and time.monotonic() < deadline
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    left = sorted(p.name for p in out.iterdir())
    assert any(n.startswith(".shard-00002.npz.") for n in left)  # killed mid-write
    assert "manifest.json" not in left and "shard-00002.npz" not in left
    with pytest.raises(ArgumentError, match="worker 0/2: unfinished, 1 shard"):
        verify(out)
    generate(digits_cnn, arrays(digits), pgd(), out, format="npz", worker="0/2", resume=True, **RUN)
    same_as_one_run(out, reference, "npz")
    assert not any(".tmp" in p.name for p in out.iterdir())


# ----------------------------------------------------------------- refusals
@pytest.mark.parametrize("worker", ["2/2", "-1/2", "a/b", (0, 0), "1/0", (True, 2), 1, "0/2/4"])
def test_bad_worker_values_are_named_before_any_work(digits, digits_cnn, tmp_path, worker):
    with pytest.raises(ArgumentError) as err:
        generate(digits_cnn, arrays(digits), pgd(), tmp_path / "out", worker=worker, **RUN)
    assert err.value.argument == "worker" and "i/N" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_mixing_numbers_of_workers_is_refused(reference, digits, digits_cnn, tmp_path):
    one_out, _, _ = reference["npz"]
    with pytest.raises(ArgumentError, match="without worker") as err:
        generate(digits_cnn, arrays(digits), pgd(), one_out, format="npz", worker="0/2",
                 resume=True, **RUN)  # fmt: skip
    assert err.value.argument == "worker"
    generate(digits_cnn, arrays(digits), pgd(), tmp_path, format="npz", worker="0/2", **RUN)
    for worker in ("0/3", None):
        with pytest.raises(ArgumentError, match=r"as 2 workers \(worker='i/2'\)") as err:
            generate(digits_cnn, arrays(digits), pgd(), tmp_path, format="npz", worker=worker,
                     resume=True, **RUN)  # fmt: skip
        assert err.value.argument == "worker"
    with pytest.raises(ArgumentError) as err:  # the other workers' run must be this one
        generate(digits_cnn, arrays(digits), pgd(), tmp_path, format="npz", worker="1/2",
                 seed=1, **RUN)  # fmt: skip
    assert err.value.argument == "seed"
    assert not (tmp_path / "manifest.worker-1-of-2.json").exists()
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == [
        f"shard-0000{i}.npz" for i in (0, 2, 4)
    ]


def test_one_run_per_folder_and_worker(digits, digits_cnn, tmp_path):
    run = dict(format="npz", **RUN)
    with path_lock(tmp_path / ".manifest.worker-0-of-2.lock"):  # worker 0/2 running elsewhere
        with pytest.raises(ArgumentError, match="another run right now") as err:
            generate(digits_cnn, arrays(digits), pgd(), tmp_path, worker="0/2", **run)
        assert err.value.argument == "worker"
        generate(digits_cnn, arrays(digits), pgd(), tmp_path, worker="1/2", **run)  # others run
    with folder_lock(tmp_path):  # a one-worker run holds the whole folder
        with pytest.raises(ArgumentError, match="another run right now") as err:
            generate(digits_cnn, arrays(digits), pgd(), tmp_path, worker="0/2", **run)
        assert err.value.argument == "out_dir"
    with path_lock(tmp_path, shared=True):  # a worker holds the folder shared
        with pytest.raises(ArgumentError, match="another run right now") as err:
            generate(digits_cnn, arrays(digits), pgd(), tmp_path, **run)
        assert err.value.argument == "out_dir"
    generate(digits_cnn, arrays(digits), pgd(), tmp_path, worker="0/2", **run)
    assert verify(tmp_path).ok


# ------------------------------------------------------------------------ CLI
GENERATE = """\
model: digits-cnn
data: {name: digits, split: test, limit: 40}
attack: {name: pgd, steps: 2}
eps: 0.1
bounds: data
shard_size: 8
format: npz
batch_size: 5
"""


def test_cli_worker(tmp_path, capsys):
    config = tmp_path / "generate.yaml"
    config.write_text(textwrap.dedent(GENERATE))
    out = tmp_path / "data"

    def run(*argv):
        code = main([str(a) for a in argv])
        stdout, stderr = capsys.readouterr()
        return code, stdout, stderr

    code, _, err = run("generate", config, "--out", out, "--worker", "2/2")
    assert code == 2 and "argument --worker: expected 'i/N'" in err and not out.exists()
    code, stdout, err = run("generate", config, "--out", out, "--worker", "0/2")
    assert code == 0, err
    assert "worker 0/2 wrote 24 samples in 3 shard(s)" in stdout
    code, _, err = run("verify", out)
    assert code == 2 and "worker 1/2: not started (shards 1, 3)" in err
    code, _, err = run("generate", config, "--out", out, "--resume")
    assert code == 2 and "--worker I/2" in err
    code, stdout, err = run("generate", config, "--out", out, "--worker", "1/2")
    assert code == 0, err
    assert "worker 1/2 finished last: the workers wrote 40 samples in 5 shard(s)" in stdout
    code, stdout, _ = run("verify", out)
    assert code == 0 and "5 shard(s), 40 samples, run complete" in stdout
