"""One output-folder policy for every command that writes (issue 24, items 2 and 3).

Each case below replaced a user's file, or refused the same command on its own finished run,
before `advgrad.run_folder` served every command.
"""

import json
import os
import pathlib

import pytest
from test_cli import TINY, run, write  # the CLI tests' tiny bench config and helpers

from advgrad.cli import main
from advgrad.run_folder import MARKER, RunFolder, RunFolderError

TRAIN = """\
model: digits-cnn
from_scratch: true
data: {name: digits, split: train, limit: 32}
attack: {name: fgsm}
eps: 0.1
bounds: data
epochs: 1
batch_size: 16
backup: true
"""
SALIENCY = """\
model: digits-cnn
data: {name: digits, split: test, limit: 2}
methods: [vanilla]
samples: 2
"""
GENERATE = """\
model: digits-cnn
data: {name: digits, split: test, limit: 20}
attack: {name: fgsm}
eps: 0.1
bounds: data
format: npz
shard_size: 10
batch_size: 10
"""


def mine(folder, **files):
    """A folder of the user's own files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return {name: (folder / name).read_text() for name in files}


def contents(folder, names):
    return {name: (folder / name).read_text() for name in names}


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    config = write(folder, TINY, "bench.yaml")
    assert main(["bench", str(config), "--out", str(folder / "run")]) == 0
    return folder / "run" / "report.json"


# ------------------------------------------------------------------ report --csv / --out
def test_report_csv_never_replaces_a_users_file_without_force(bench_report, tmp_path, capsys):
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own\nnotes,here\n")
    code, stdout, stderr = run(capsys, "report", bench_report, "--csv", notes)
    assert code == 2 and stdout == ""
    assert stderr.strip() == (
        f"advgrad: error: --csv: {notes} exists: choose another name, or pass --force to replace it"
    )
    assert notes.read_text() == "my,own\nnotes,here\n"
    code, _, stderr = run(capsys, "report", bench_report, "--csv", notes, "--force")
    assert code == 0, stderr
    assert notes.read_text().startswith("index,label,eps=0.1")


def test_report_csv_again_is_no_trap(bench_report, tmp_path, capsys):
    target = tmp_path / "outcomes.csv"
    assert run(capsys, "report", bench_report, "--csv", target)[0] == 0
    written = target.read_text()
    code, stdout, stderr = run(capsys, "report", bench_report, "--csv", target)
    assert code == 0, stderr
    assert "holds these outcomes already (16 samples)" in stdout
    assert target.read_text() == written


def test_report_out_never_replaces_a_users_report_md(bench_report, tmp_path, capsys):
    out = tmp_path / "mine"
    before = mine(out, **{"report.md": "# my own notes\n"})
    for extra in ([], ["--force"]):
        code, stdout, stderr = run(capsys, "report", bench_report, "--out", out, *extra)
        assert code == 2 and stdout == ""
        assert f"{out} holds report.md, which advgrad did not write" in stderr
        assert contents(out, before) == before
        assert sorted(os.listdir(out)) == ["report.md"]  # not even a lock file


def test_report_out_again_on_its_own_folder_is_no_trap(bench_report, tmp_path, capsys):
    out = tmp_path / "plots"
    assert run(capsys, "report", bench_report, "--out", out)[0] == 0
    code, stdout, stderr = run(capsys, "report", bench_report, "--out", out)
    assert code == 0, stderr
    assert "holds this report's files already" in stdout


# ------------------------------------------------------------------------- compare --out
def test_compare_out_never_replaces_a_users_file(bench_report, tmp_path, capsys):
    out = tmp_path / "cmp"
    before = mine(out, **{"compare.md": "mine\n", "index.md": "also mine\n"})
    code, stdout, stderr = run(
        capsys, "compare", bench_report, bench_report, "--out", out, "--force"
    )
    assert code == 2 and stdout == ""
    assert "holds compare.md, which advgrad did not write" in stderr
    assert contents(out, before) == before
    fresh = tmp_path / "fresh"
    assert run(capsys, "compare", bench_report, bench_report, "--out", fresh)[0] == 0
    code, stdout, _ = run(capsys, "compare", bench_report, bench_report, "--out", fresh)
    assert code == 0 and "holds this comparison already" in stdout


# ------------------------------------------------------------------------------- saliency
def test_saliency_never_replaces_a_users_index_and_its_finished_run_exits_0(tmp_path, capsys):
    config = write(tmp_path, SALIENCY, "saliency.yaml")
    out = tmp_path / "mine"
    before = mine(out, **{"index.md": "# my index\n"})
    code, stdout, stderr = run(capsys, "saliency", config, "--out", out, "--force")
    assert code == 2 and stdout == "", stdout
    assert "holds index.md, which advgrad did not write" in stderr
    assert contents(out, before) == before

    fresh = tmp_path / "maps"
    assert run(capsys, "saliency", config, "--out", fresh)[0] == 0
    index = (fresh / "index.md").read_text()
    code, stdout, stderr = run(capsys, "saliency", config, "--out", fresh)
    assert code == 0, stderr
    assert "complete" in stdout and f"its result: {fresh / 'index.md'}" in stdout
    assert (fresh / "index.md").read_text() == index
    other = write(tmp_path, SALIENCY.replace("limit: 2", "limit: 3"), "other.yaml")
    code, _, stderr = run(capsys, "saliency", other, "--out", fresh)
    assert code == 2 and "holds a saliency run of another config" in stderr


# ---------------------------------------------------------------------------------- train
def test_train_never_replaces_a_users_model_and_card(tmp_path, capsys):
    """`advgrad train` with ``output: mine/`` used to overwrite model.keras and card.json."""
    out = tmp_path / "mine"
    before = mine(out, **{"model.keras": "my model\n", "card.json": '{"mine": true}\n'})
    config = write(tmp_path, TRAIN + f"output: {out}\n", "train.yaml")
    for extra in ([], ["--force"], ["--resume"]):
        code, stdout, stderr = run(capsys, "train", config, *extra)
        assert code == 2 and stdout == "", stderr
        assert "holds card.json, model.keras, which advgrad did not write" in stderr
        assert contents(out, before) == before


@pytest.mark.slow
def test_train_again_on_its_finished_run_exits_0_and_files_take_the_umask(tmp_path, capsys):
    config = write(tmp_path, TRAIN, "train.yaml")
    out = tmp_path / "trained"
    previous = os.umask(0o077)
    try:
        code, _, stderr = run(capsys, "train", config, "--out", out)
    finally:
        os.umask(previous)
    assert code == 0, stderr
    card = (out / "card.json").read_bytes()
    assert oct((out / "model.keras").stat().st_mode & 0o777) == "0o600"
    assert oct((out / "card.json").stat().st_mode & 0o777) == "0o600"
    for extra in ([], ["--resume"]):
        code, stdout, stderr = run(capsys, "train", config, "--out", out, *extra)
        assert code == 0, stderr
        assert f"its result: {out / 'model.keras'}" in stdout
        assert (out / "card.json").read_bytes() == card


# ------------------------------------------------------------------------------- generate
def test_generate_on_its_finished_folder_is_the_same_run_and_force_reruns(tmp_path, capsys):
    config = write(tmp_path, GENERATE, "generate.yaml")
    out = tmp_path / "data"
    previous = os.umask(0o077)
    try:
        assert run(capsys, "generate", config, "--out", out)[0] == 0
    finally:
        os.umask(previous)
    shard = out / "shard-00000.npz"
    assert oct(shard.stat().st_mode & 0o777) == "0o600"
    first = shard.read_bytes()
    code, stdout, stderr = run(capsys, "generate", config, "--out", out)
    assert code == 0, stderr
    assert "complete" in stdout and "another run" not in stdout + stderr
    code, stdout, stderr = run(capsys, "generate", config, "--out", out, "--force")
    assert code == 0, stderr
    assert "wrote 20 samples in 2 shard(s)" in stdout and shard.read_bytes() == first


# ----------------------------------------------------------------------- the policy itself
def test_a_damaged_marker_is_named(tmp_path):
    (tmp_path / MARKER).write_text("not json")
    folder = RunFolder(tmp_path, "bench", "f", files=("report.md",))
    with pytest.raises(RunFolderError, match=r"\.advgrad-run\.json: not advgrad's run marker"):
        folder.check()


def test_another_commands_run_is_refused_and_force_keeps_the_users_files(tmp_path):
    with RunFolder(tmp_path, "saliency", "f", files=("index.md",)) as folder:
        folder.open()
        folder.write("index.md", "maps\n")
        folder.done()
    (tmp_path / "notes.txt").write_text("mine\n")
    folder = RunFolder(tmp_path, "bench", "f", files=("report.md",))
    with pytest.raises(RunFolderError, match="holds an `advgrad saliency` run; pass --force"):
        folder.check()
    with RunFolder(tmp_path, "bench", "f", files=("report.md",), force=True) as folder:
        folder.open()
        folder.write("report.md", "report\n")
        folder.done()
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    assert json.loads((tmp_path / MARKER).read_text())["command"] == "bench"


def test_write_refuses_a_name_the_command_does_not_declare(tmp_path):
    with RunFolder(tmp_path / "run", "bench", "f", files=("report.md",)) as folder:
        folder.open()
        with pytest.raises(ValueError, match="not among the files of `advgrad bench`"):
            folder.write("notes.csv", "x")
    assert not pathlib.Path(tmp_path / "run" / "notes.csv").exists()


# ------------------------------------------------------------------------------ a full disk
def test_a_full_disk_names_the_file_and_the_fix(tmp_path, capsys, monkeypatch):
    """``[Errno 28] No space left on device`` used to name no file and no way on."""
    import errno

    from advgrad import _io

    real_write = os.write

    def full(fd, data):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".state.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(_io.os, "write", full)
    config = write(tmp_path, TINY, "bench.yaml")
    out = tmp_path / "run"
    code, _, stderr = run(capsys, "bench", config, "--out", out)
    assert code == 1
    assert stderr.strip().splitlines()[-1] == (
        f"advgrad: error: no space left on the device writing {out / 'state.json'}: free some "
        "space, then continue with --resume"
    )
