"""Files that advgrad.generation reads back are checked, never trusted: shard names inside
the folder, shard lists that add up to the data, every manifest field present and typed, a
bounded number of workers, each shard's size and SHA-256 checked as `load_generated`
streams it, and manifests written as strict JSON."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from advgrad import ArgumentError
from advgrad.attacks import FGSM
from advgrad.cli import main
from advgrad.generation import generate, load_generated, verify, workers
from advgrad.generation.manifest import differences, read_manifest, write_manifest

N = 36  # samples: shards of 8, 8, 8, 8, 4
SHARD = 8
FORMATS = ("npz", "tfrecord")


def fgsm(bounds=(0.0, 1.0)):
    return FGSM(eps=0.1, bounds=bounds)


@pytest.fixture(scope="module")
def runs(digits, digits_cnn, tmp_path_factory):
    """One complete run per format."""
    found = {}
    for fmt in FORMATS:
        out = tmp_path_factory.mktemp(f"run-{fmt}")
        data = (digits.x_test[:N], digits.y_test[:N])
        generate(digits_cnn, data, fgsm(), out, shard_size=SHARD, format=fmt, batch_size=10)
        found[fmt] = out
    return found


def copy(runs, fmt: str, tmp_path: pathlib.Path) -> pathlib.Path:
    out = tmp_path / "run"
    shutil.copytree(runs[fmt], out)
    return out


def edit(out: pathlib.Path, change) -> None:
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def drain(dataset: tf.data.Dataset) -> int:
    return sum(int(tf.shape(y)[0]) for _, y in dataset)


# ------------------------------------------------------------------- shard names
@pytest.mark.parametrize(
    "name", ["../outside.npz", "/etc/passwd", "sub/shard-00000.npz", "shard-00001.npz", ""]
)
def test_a_shard_file_not_advgrads_own_name_is_refused(runs, tmp_path, name):
    out = copy(runs, "npz", tmp_path)
    (tmp_path / "outside.npz").write_bytes((out / "shard-00000.npz").read_bytes())  # same hash
    (out / "sub").mkdir()
    (out / "sub" / "shard-00000.npz").write_bytes((out / "shard-00000.npz").read_bytes())
    edit(out, lambda m: m["shards"][0].update(file=name))
    for check in (verify, load_generated):
        with pytest.raises(ArgumentError) as err:
            check(out)
        assert "manifest.json: shard 0: `file` is" in one_line(err)
        assert "'shard-00000.npz'" in str(err.value) and "--force" in str(err.value)


def test_a_link_out_of_the_folder_is_a_bad_shard(runs, tmp_path):
    out = copy(runs, "npz", tmp_path)
    outside = tmp_path / "outside.npz"
    outside.write_bytes((out / "shard-00002.npz").read_bytes())  # the very bytes: same hash
    (out / "shard-00002.npz").unlink()
    (out / "shard-00002.npz").symlink_to(outside)
    result = verify(out)
    assert not result.ok and result.bad == [2]
    assert "outside" in result.problems[0]
    with pytest.raises(tf.errors.OpError, match=r"shard-00002\.npz.*outside"):
        drain(load_generated(out, batch_size=SHARD))


def test_a_link_inside_the_folder_is_read(runs, tmp_path):
    out = copy(runs, "npz", tmp_path)
    (out / "kept.npz").write_bytes((out / "shard-00002.npz").read_bytes())
    (out / "shard-00002.npz").unlink()
    (out / "shard-00002.npz").symlink_to("kept.npz")
    assert verify(out).ok
    assert drain(load_generated(out)) == N


# ------------------------------------------------------------- the shards add up
def _drop_last_three(m):
    del m["shards"][2:]


def _no_shards(m):
    m["shards"] = []


def _more_samples(m):
    m["data"]["samples"] = 100


def _fewer_samples(m):
    m["data"]["samples"] = 20


def _last_count(m):
    m["shards"][4]["count"] = 8


def _count_over_shard_size(m):
    m["shards"][0]["count"] = 9


@pytest.mark.parametrize(
    "change",
    [
        _drop_last_three,
        _no_shards,
        _more_samples,
        _fewer_samples,
        _last_count,
        _count_over_shard_size,
    ],
)
def test_shards_that_do_not_add_up_to_the_samples_are_refused(runs, tmp_path, change):
    out = copy(runs, "npz", tmp_path)
    edit(out, change)
    for check in (verify, load_generated):
        with pytest.raises(ArgumentError, match=r"manifest\.json: .*--force") as err:
            check(out)
        one_line(err)


def test_an_unfinished_run_may_list_fewer_shards(runs, tmp_path):
    out = copy(runs, "npz", tmp_path)

    def unfinished(m):
        del m["shards"][2:]
        m.update(complete=False, data={"samples": None, "sha256": None})

    edit(out, unfinished)
    result = verify(out)
    assert not result.ok and not result.complete and result.shards == 2


# --------------------------------------------------------- every field, one line
def _delete(key):
    return lambda m: m["shards"][3].pop(key)


def _set(key, value):
    return lambda m: m["shards"][3].update({key: value})


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (_delete("file"), "shard 3: missing `file`"),
        (_delete("sha256"), "shard 3: missing `sha256`"),
        (_delete("count"), "shard 3: missing `count`"),
        (_delete("data_sha256"), "shard 3: missing `data_sha256`"),
        (_delete("first"), "shard 3: missing `first`"),
        (_set("count", "eight"), "shard 3: `count` is 'eight'"),
        (_set("count", True), "shard 3: `count` is True"),
        (_set("count", 0), "shard 3: `count` is 0"),
        (_set("sha256", "abc"), "shard 3: `sha256` is 'abc'"),
        (_set("first", 0), "shard 3: `first` is 0"),
        (lambda m: m["shards"].__setitem__(3, "shard"), "shard 3: not an object"),
        (lambda m: m["config"].pop("shard_size"), "missing `config.shard_size`"),
        (lambda m: m["config"].update(format="zip"), "`config.format` is 'zip'"),
        (lambda m: m["data"].update(samples="36"), "`data.samples` is '36'"),
        (lambda m: m.update(complete="yes"), "`complete` is 'yes'"),
        (lambda m: m["columns"]["y"].update(dtype="object"), "`columns.y.dtype` is 'object'"),
        (lambda m: m["columns"]["y"].update(shape=[-1]), "`columns.y.shape` is [-1]"),
        (lambda m: m["columns"].pop("y"), "missing `columns.y`"),
        (lambda m: m["structure"].update(kind="set"), "`structure.kind` is 'set'"),
        (lambda m: m["columns"].pop("adv_class"), "missing `columns.adv_class`"),
        (
            lambda m: m["columns"]["clean_class"].update(dtype="<f4"),
            "`columns.clean_class.dtype` is '<f4', expected '<i8'",
        ),
        (
            lambda m: m["columns"]["adv_class"].update(shape=[2]),
            "`columns.adv_class.shape` is [2], expected []",
        ),
    ],
)
def test_a_damaged_manifest_is_one_line_naming_the_field(runs, tmp_path, capsys, change, said):
    out = copy(runs, "npz", tmp_path)
    edit(out, change)
    for check in (verify, load_generated):
        with pytest.raises(ArgumentError) as err:
            check(out)
        text = one_line(err)
        assert f"manifest.json: {said}" in text
        assert "the file was edited or damaged" in text and "--force" in text
    assert main(["verify", str(out)]) == 2
    stderr = capsys.readouterr().err.strip()
    assert said in stderr and "\n" not in stderr and "KeyError" not in stderr


# -------------------------------------------------------------------- workers
def test_the_number_of_workers_is_bounded():
    bound = workers.MAX_WORKERS
    assert bound == 1024
    assert workers.check_worker(f"{bound - 1}/{bound}").count == bound
    for worker in (f"0/{bound + 1}", "0/2147483648", (0, 2**31)):
        with pytest.raises(ArgumentError, match="1024") as err:
            workers.check_worker(worker)
        assert err.value.argument == "worker"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "name", ["manifest.worker-0-of-99999999999999.json", "manifest.worker-5-of-2.json"]
)
def test_a_worker_file_over_the_bound_is_refused_not_iterated(runs, tmp_path, name):
    out = copy(runs, "npz", tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").unlink()
    manifest.update(complete=False, worker={"index": 0, "count": 99999999999999, "shards": 5})
    (out / name).write_text(json.dumps(manifest))
    for check in (verify, load_generated):
        with pytest.raises(ArgumentError) as err:
            check(out)
        assert name in one_line(err) and "remove it" in str(err.value)


@pytest.mark.timeout(30)
def test_a_worker_file_with_a_huge_shard_total_is_not_iterated(runs, tmp_path):
    out = copy(runs, "npz", tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").unlink()
    manifest.update(complete=False, worker={"index": 0, "count": 2, "shards": 10**15})
    (out / "manifest.worker-0-of-2.json").write_text(json.dumps(manifest))
    with pytest.raises(ArgumentError, match="worker 1/2: not started") as err:
        verify(out)
    one_line(err)


# ------------------------------------------------------ load_generated checks
def _flip(out, fmt):
    shard = out / f"shard-00001.{fmt}"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))


def _swap(out, fmt):
    a, b = out / f"shard-00000.{fmt}", out / f"shard-00001.{fmt}"
    first, second = a.read_bytes(), b.read_bytes()
    a.write_bytes(second)
    b.write_bytes(first)


def _npz_dtype(out, fmt):
    shard = out / f"shard-00001.{fmt}"
    data = shard.read_bytes()
    assert data.count(b"'<f4'") >= 1
    shard.write_bytes(data.replace(b"'<f4'", b"'<i4'", 1))  # x_adv read as ints


def _grown(out, fmt):
    with open(out / f"shard-00001.{fmt}", "ab") as file:
        file.write(b"\0" * 4096)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("tamper", [_flip, _swap, _grown, _npz_dtype])
def test_load_generated_checks_each_shard_as_it_streams(runs, tmp_path, fmt, tamper):
    if tamper is _npz_dtype and fmt != "npz":
        pytest.skip("the dtype lives in the npz header")
    out = copy(runs, fmt, tmp_path)
    tamper(out, fmt)
    shard = "shard-00000" if tamper is _swap else "shard-00001"
    dataset = load_generated(out, batch_size=SHARD)  # refused as it is read, not before
    with pytest.raises(tf.errors.OpError, match=rf"{shard}\.{fmt}.*--resume"):
        drain(dataset)
    assert verify(out).bad == ([0, 1] if tamper is _swap else [1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_generated_refuses_columns_the_files_do_not_hold(runs, tmp_path, fmt):
    out = copy(runs, fmt, tmp_path)
    edit(out, lambda m: m["columns"]["x_adv/image"].update(dtype="<f8"))  # the shards: <f4
    with pytest.raises(tf.errors.OpError, match=rf"shard-00000\.{fmt}.*x_adv/image"):
        drain(load_generated(out))


@pytest.mark.parametrize("fmt", FORMATS)
def test_intact_shards_load_the_same_with_the_checks(runs, fmt):
    manifest = read_manifest(runs[fmt])
    x, y = zip(*load_generated(runs[fmt], batch_size=SHARD).as_numpy_iterator(), strict=True)
    assert [len(b) for b in y] == [s["count"] for s in manifest["shards"]]
    from advgrad.generation.shards import read_shard

    parts = [
        read_shard(runs[fmt] / s["file"], fmt, manifest["columns"]) for s in manifest["shards"]
    ]
    np.testing.assert_array_equal(
        np.concatenate(x), np.concatenate([p["x_adv/image"] for p in parts])
    )
    np.testing.assert_array_equal(np.concatenate(y), np.concatenate([p["y"] for p in parts]))


# ------------------------------------------------------------------ strict JSON
def _strict(text: str):
    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_manifests_are_strict_json_and_infinite_bounds_resume(digits, digits_cnn, tmp_path):
    data = (digits.x_test[:10], digits.y_test[:10])
    attack = fgsm(bounds=(-math.inf, math.inf))
    run = dict(shard_size=SHARD, format="npz")
    generate(digits_cnn, data, attack, tmp_path, **run)
    saved = _strict((tmp_path / "manifest.json").read_text())
    assert saved["config"]["attack"]["bounds"] == ["-inf", "inf"]
    assert differences(saved, {**saved["config"], "attack": attack.get_config()}, "") == ["model"]
    generate(digits_cnn, data, attack, tmp_path, resume=True, **run)  # the same config
    assert verify(tmp_path).ok
    write_manifest(tmp_path, {"nan": math.nan, "x": [1.0, -math.inf]}, "other.json")
    assert _strict((tmp_path / "other.json").read_text()) == {"nan": "nan", "x": [1.0, "-inf"]}
    os.remove(tmp_path / "other.json")


def test_the_manifest_hash_matches_the_file(runs):
    manifest = read_manifest(runs["tfrecord"])
    for entry in manifest["shards"]:
        data = (runs["tfrecord"] / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]


# ------------------------------------------------- a folder of an older advgrad (version 1)
def as_version_1(out: pathlib.Path) -> None:
    """`out` as advgrad wrote it before the predicted classes: no class columns, version 1."""
    from advgrad.generation.manifest import file_sha256
    from advgrad.generation.shards import read_shard, write_shard

    manifest = json.loads((out / "manifest.json").read_text())
    fmt, columns = manifest["config"]["format"], manifest["columns"]
    for entry in manifest["shards"]:
        path = out / entry["file"]
        arrays = read_shard(path, fmt, columns)
        kept = {k: v for k, v in arrays.items() if k not in ("clean_class", "adv_class")}
        write_shard(path, kept, entry["count"], fmt)
        entry["sha256"] = file_sha256(path)
    for key in ("clean_class", "adv_class"):
        del columns[key]
    manifest["version"] = 1
    write_manifest(out, manifest)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_version_1_folder_loads_without_the_classes_and_never_resumes(
    runs, tmp_path, fmt, digits, digits_cnn
):
    out = copy(runs, fmt, tmp_path)
    as_version_1(out)
    assert verify(out).ok
    (x_old, y_old, f_old), (x_new, y_new, f_new) = (
        next(iter(load_generated(folder, batch_size=N, fields=True))) for folder in (out, runs[fmt])
    )
    np.testing.assert_array_equal(x_old, x_new)
    np.testing.assert_array_equal(y_old, y_new)
    assert f_old.clean_class is None and f_old.adv_class is None
    np.testing.assert_array_equal(f_old.adv_correct, f_new.adv_correct)
    assert f_new.clean_class.dtype == tf.int64
    data = (digits.x_test[:N], digits.y_test[:N])
    run = dict(shard_size=SHARD, format=fmt, batch_size=10)
    edit(out, lambda m: m.update(complete=False, shards=m["shards"][:2]))  # unfinished
    for resume in (True, False):
        with pytest.raises(ArgumentError) as err:
            generate(digits_cnn, data, fgsm(), out, resume=resume, **run)
        assert err.value.argument == "out_dir"
        text = one_line(err)
        assert "manifest.json is of version 1" in text and "resumes version 2 only" in text
    for version in (True, 3):
        edit(out, lambda m, v=version: m.update(version=v))
        with pytest.raises(ArgumentError, match=f"has version {version}; this advgrad reads"):
            verify(out)
