"""The `advgrad` command, run in-process through `main([...])` (one subprocess test)."""

import fcntl
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import _custom_objects as custom_objects
import keras
import numpy as np
import pytest

from advgrad import __version__
from advgrad.cli import main
from advgrad.report import Report

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMALL = """\
model: digits-cnn
data: {name: digits, limit: 64}
suite:
  - fgsm
  - {name: pgd, steps: 3}
eps: [0.1, 0.3]
bounds: data
batch_size: 32
"""
# a fast run: 16 samples in two batches, one attack, one radius
TINY = """\
model: digits-cnn
data: {name: digits, limit: 16}
suite: [fgsm]
eps: [0.1]
bounds: data
batch_size: 8
"""


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(folder, text, name="bench.yaml"):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One small benchmark run shared by the tests that read its output."""
    folder = tmp_path_factory.mktemp("bench")
    config = write(folder, SMALL)
    out = folder / "out"
    code = main(["bench", str(config), "--out", str(out)])
    return code, config, out


# --------------------------------------------------------------------- bad configs: exit 2
def _lambda_model(folder):
    inputs = keras.Input((4,))
    hidden = keras.layers.Lambda(lambda t: t + 1.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    model.compile(loss="sparse_categorical_crossentropy")
    model.save(folder / "lambda.keras")
    np.savez(folder / "d.npz", x=np.zeros((4, 4), "float32"), y=np.zeros(4, "int64"))
    return "model: lambda.keras\ndata: {npz: d.npz, x: x, y: y}\nsuite: [fgsm]\neps: 0.1\n"


def _npz_mismatch(folder):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(folder / "tiny.keras")
    np.savez(folder / "d.npz", x=np.zeros((10, 4), "float32"), y=np.zeros(8, "int64"))
    return "model: tiny.keras\ndata: {npz: d.npz, x: x, y: y}\nsuite: [fgsm]\neps: 0.1\n"


def _shape_mismatch(folder):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(folder / "tiny.keras")
    np.savez(folder / "d.npz", x=np.zeros((10, 5), "float32"), y=np.zeros(10, "int64"))
    return (
        "model: tiny.keras\ndata: {npz: d.npz, x: x, y: y}\nsuite: [fgsm]\neps: 0.1\nbounds: null\n"
    )


BAD = {
    "unknown key": (
        lambda folder: SMALL.replace("model:", "modle:"),
        "unknown key 'modle' (did you mean 'model'?)",
    ),
    "wrong type": (
        lambda folder: SMALL.replace("steps: 3", "steps: ten"),
        "suite[1].steps: expected an int, received 'ten'",
    ),
    "unknown attack": (
        lambda folder: SMALL.replace("- fgsm", "- fgsmm"),
        "suite[0]: unknown attack 'fgsmm' (did you mean 'fgsm'?); registered attacks: ",
    ),
    "negative eps": (
        lambda folder: SMALL.replace("eps: [0.1, 0.3]", "eps: [-0.1, 0.3]"),
        "eps[0]: expected a finite number >= 0, received -0.1",
    ),
    "unsafe yaml": (
        lambda folder: "model: !!python/object/apply:os.system ['touch pwned']\n",
        "refused unsafe YAML (line 1): could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    "missing model file": (
        lambda folder: SMALL.replace("digits-cnn", "nowhere/model.keras"),
        "model: model file not found: ",
    ),
    "lambda layer": (_lambda_model, "model: Keras safe mode refused to load "),
    "npz labels": (_npz_mismatch, "data.y: 8 labels for 10 input samples: the lengths must match"),
    "input shape": (
        _shape_mismatch,
        "data.x: does not fit the model: expected shape (batch, 4) for model input",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exit_2_one_line_nothing_written(case, tmp_path, capsys, monkeypatch):
    make, message = BAD[case]
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, make(tmp_path))
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "bench", config, "--out", out)
    assert code == 2
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"advgrad: error: {config}: ")
    assert message in lines[0]
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not (tmp_path / "pwned").exists()


def test_bad_config_debug_raises(tmp_path, capsys):
    from advgrad.config import ConfigError

    config = write(tmp_path, SMALL.replace("eps: [0.1, 0.3]", "eps: -1"))
    with pytest.raises(ConfigError, match=r"eps: expected a finite number >= 0, received -1"):
        main(["bench", str(config), "--out", str(tmp_path / "out"), "--debug"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench"], "the following arguments are required: CONFIG.yaml"),
        (["bench", "x.yaml", "--limit", "0"], "argument --limit: expected an int >= 1"),
        (["bench", "missing.yaml"], "config file not found: missing.yaml"),
        (["report", "missing.json"], "RUN.json: file not found: missing.json"),
        (
            ["gradients", "--model", "resnet"],
            "--model: expected one of digits-cnn, digits-cnn-pgd, digits-mlp",
        ),
        (["zoo"], "zoo: expected a command: list"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2
    assert len(stderr.splitlines()) == 1 and stderr.startswith("advgrad: error: ")
    assert message in stderr


# ---------------------------------------------------------------------------- bench
def test_bench_writes_report_markdown_and_plots(bench_run):
    code, _, out = bench_run
    assert code == 0
    assert {"report.json", "report.md", "state.json", "robust_accuracy.png"} <= {
        p.name for p in out.iterdir()
    }
    assert any(p.name.startswith("adversarial_eps=") for p in out.iterdir())
    report = Report.from_json(out / "report.json")
    assert report.n_samples == 64 and report.eps == [0.1, 0.3]
    assert report.attacks == ["fgsm", "pgd"]
    assert report.clean_accuracy > 0.9
    # stronger eps, lower robust accuracy; at 0.3 the digits CNN is mostly broken
    assert report.robust_accuracy[0.3] <= report.robust_accuracy[0.1] < report.clean_accuracy
    assert report.robust_accuracy[0.3] < 0.3
    assert report.suite[1]["steps"] == 3 and report.suite[1]["bounds"] == [0.0, 1.0]
    markdown = (out / "report.md").read_text()
    assert "| **worst case (cascade)** |" in markdown
    assert f"{100 * report.robust_accuracy[0.1]:.1f}%" in markdown


def _snapshot(folder):
    files = [p for p in folder.iterdir() if p.is_file() and p.name != ".advgrad.lock"]
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def test_bench_again_on_its_finished_run_says_so_and_exits_0(bench_run, capsys):
    """The README's first command, run twice: the second says the run is complete, exit 0,
    nothing rewritten; --resume on a finished run changes nothing either."""
    _, config, out = bench_run
    before = _snapshot(out)
    for extra in ([], ["--resume"]):
        code, stdout, stderr = run(capsys, "bench", config, "--out", out, *extra)
        assert code == 0 and stderr == "", stderr
        assert f"{out} holds this bench run of the same config, complete" in stdout
        assert f"its result: {out / 'report.md'}" in stdout and "--force" in stdout
        assert _snapshot(out) == before


def test_bench_with_another_config_on_a_finished_run_is_refused(bench_run, capsys, tmp_path):
    _, _, out = bench_run
    before = _snapshot(out)
    other = write(tmp_path, SMALL.replace("limit: 64", "limit: 32"))
    for extra in ([], ["--resume"]):
        code, stdout, stderr = run(capsys, "bench", other, "--out", out, *extra)
        assert code == 2 and stdout == ""
        assert stderr.strip() == (
            f"advgrad: error: {out} holds a bench run of another config; pass --force to write "
            "into it anyway (replacing only advgrad's own files), or a different --out"
        )
    assert _snapshot(out) == before


def test_bench_resume_continues_an_interrupted_run(bench_run, tmp_path, capsys, monkeypatch):
    from advgrad.evaluation.cascade import Runner

    _, config, full_out = bench_run
    full = Report.from_json(full_out / "report.json")
    out = tmp_path / "out"
    original = Runner.run_batch
    calls = []

    def interrupted(self, tally, batch, *args, **kwargs):
        calls.append(batch)
        if batch == 1:
            raise KeyboardInterrupt
        return original(self, tally, batch, *args, **kwargs)

    monkeypatch.setattr(Runner, "run_batch", interrupted)
    code, _, stderr = run(capsys, "bench", config, "--out", out)
    assert code == 1
    assert stderr.strip().endswith("advgrad: error: interrupted; continue with --resume")
    assert (out / "state.json").exists() and not (out / "report.json").exists()

    code, _, stderr = run(capsys, "bench", config, "--out", out)
    assert code == 2 and stderr.strip() == (
        f"advgrad: error: {out} holds an unfinished bench run of this config: pass --resume "
        "to continue it, or --force to start it again"
    )

    monkeypatch.setattr(Runner, "run_batch", original)
    calls.clear()
    monkeypatch.setattr(
        Runner,
        "run_batch",
        lambda self, tally, batch, *a, **k: (
            calls.append(batch) or original(self, tally, batch, *a, **k)
        ),
    )
    code, stdout, _ = run(capsys, "bench", config, "--out", out, "--resume")
    assert code == 0
    assert calls == [1]  # batch 0 came from the state
    resumed = Report.from_json(out / "report.json")
    assert resumed.n_samples == 64
    assert resumed.robust_accuracy == full.robust_accuracy
    assert resumed.per_attack == full.per_attack


def test_bench_limit_and_default_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, SMALL.replace("steps: 3", "steps: 1"), name="mini.yaml")
    code, stdout, _ = run(capsys, "bench", config, "--limit", 16)
    assert code == 0
    report = Report.from_json(tmp_path / "runs" / "mini" / "report.json")
    assert report.n_samples == 16
    assert "wrote report.json, report.md, robust_accuracy.png" in stdout


# ------------------------------------------------ the output folder: only new, empty or ours
def _victim(folder, *names):
    """A folder of the user's own, holding `names` (default: a report.md of their own)."""
    folder.mkdir(parents=True)
    for name in names or ("report.md",):
        (folder / name).write_text(f"my own {name}\n")
    return {p.name: p.read_text() for p in folder.iterdir()}


def _contents(folder):
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_bench_refuses_a_folder_of_other_files_via_config_output(tmp_path, capsys, monkeypatch):
    victim = tmp_path / "victim"
    before = _victim(victim)
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    config = write(work, TINY + "output: ../../victim\n")
    code, stdout, stderr = run(capsys, "bench", config)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1, stderr
    named, _, rest = stderr.removeprefix("advgrad: error: ").partition(" holds ")
    assert pathlib.Path(named).resolve() == victim.resolve()
    assert rest.strip() == (
        "report.md, which advgrad did not write and would replace: move them away, or pass "
        "a different --out"
    )
    assert _contents(victim) == before  # untouched: not even a lock file


def test_bench_refuses_a_folder_of_other_files_via_out(tmp_path, capsys):
    victim = tmp_path / "victim"
    before = _victim(victim, "a.txt", "b.txt", "c.txt", "d.txt", "e.txt")
    config = write(tmp_path, TINY)
    for argv in (["--out", victim], ["--out", victim, "--resume"]):
        code, stdout, stderr = run(capsys, "bench", config, *argv)
        assert code == 2 and stdout == ""
        assert stderr.count("\n") == 1, stderr
        assert "is not empty (a.txt, b.txt, c.txt and 2 more)" in stderr
        assert "pass --force" in stderr
        assert _contents(victim) == before


def test_bench_never_replaces_a_users_file_of_its_own_name_even_with_force(tmp_path, capsys):
    victim = tmp_path / "victim"
    before = _victim(victim, "report.md", "notes.txt")
    config = write(tmp_path, TINY)
    code, stdout, stderr = run(capsys, "bench", config, "--out", victim, "--force")
    assert code == 2 and stdout == ""
    assert "holds report.md, which advgrad did not write and would replace" in stderr
    assert _contents(victim) == before


def test_bench_force_writes_into_the_folder_replacing_only_its_own_files(tmp_path, capsys):
    victim = tmp_path / "victim"
    _victim(victim, "notes.txt")
    config = write(tmp_path, TINY)
    code, stdout, stderr = run(capsys, "bench", config, "--out", victim, "--force")
    assert code == 0, stderr
    assert (victim / "notes.txt").read_text() == "my own notes.txt\n"
    assert "\n- Model: digits_cnn" in (victim / "report.md").read_text()
    # advgrad's own run now: the same command again is complete, --force runs it again
    code, stdout, _ = run(capsys, "bench", config, "--out", victim)
    assert code == 0 and "complete" in stdout
    assert Report.from_json(victim / "report.json").n_samples == 16
    # --force over an existing run starts a fresh run (its state.json is replaced)
    code, _, stderr = run(capsys, "bench", config, "--out", victim, "--force", "--limit", 8)
    assert code == 0, stderr
    assert Report.from_json(victim / "report.json").n_samples == 8
    assert (victim / "notes.txt").read_text() == "my own notes.txt\n"


def test_bench_help_states_force(capsys):
    import advgrad.cli

    code, stdout, _ = run(capsys, "bench", "--help")
    assert code == 0
    text = " ".join(stdout.split())
    assert "--force" in stdout and "advgrad's own files there are replaced" in text
    assert "on its finished run the command says so and exits 0" in text
    assert "--force" in advgrad.cli.__doc__


def test_bench_empty_output_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, TINY)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, stderr = run(capsys, "bench", config, "--out", "")
    assert code == 2 and stdout == ""
    assert stderr.strip() == "advgrad: error: --out: expected a folder path, received ''"
    config = write(tmp_path, TINY + 'output: ""\n', name="empty.yaml")
    code, stdout, stderr = run(capsys, "bench", config)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "output: expected a folder path, received ''" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "empty.yaml"])


def test_bench_writes_into_an_empty_folder_and_a_lock_file_is_no_obstacle(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".advgrad.lock").write_text("")  # left by an earlier run
    config = write(tmp_path, TINY)
    code, _, stderr = run(capsys, "bench", config, "--out", out)
    assert code == 0, stderr
    assert (out / "report.json").exists()


# ------------------------------------------------------------ one run per folder at a time
def test_bench_refuses_a_folder_locked_by_another_run(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    config = write(tmp_path, TINY)
    with open(out / ".advgrad.lock", "w") as holder:
        holder.write(json.dumps({"pid": 1234, "started": "2030-01-02T03:04:05+00:00"}))
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, stdout, stderr = run(capsys, "bench", config, "--out", out)
        assert code == 2 and stdout == ""
        assert stderr.strip() == (
            "advgrad: error: another advgrad run (pid 1234, started 2030-01-02T03:04:05+00:00) "
            f"is writing to {out}: wait for it to finish (or stop it), or pass a different --out"
        )
        assert sorted(p.name for p in out.iterdir()) == [".advgrad.lock"]
    # released: the folder is usable again
    code, _, stderr = run(capsys, "bench", config, "--out", out)
    assert code == 0, stderr


def test_bench_holds_the_lock_while_it_runs(tmp_path, capsys, monkeypatch):
    from advgrad.evaluation.cascade import Runner

    out = tmp_path / "out"
    config = write(tmp_path, TINY)
    original = Runner.run_batch
    seen = []

    def probe(self, tally, batch, *args, **kwargs):
        with open(out / ".advgrad.lock") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append(json.loads(other.read()))
        return original(self, tally, batch, *args, **kwargs)

    monkeypatch.setattr(Runner, "run_batch", probe)
    code, _, stderr = run(capsys, "bench", config, "--out", out)
    assert code == 0, stderr
    assert len(seen) == 2 and seen[0]["pid"] == os.getpid() and seen[0]["started"]
    with open(out / ".advgrad.lock") as after:  # released at the end
        fcntl.flock(after, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_two_benches_into_one_fresh_folder_one_is_refused(tmp_path):
    """Two processes at once: exactly one writes the run, the other exits 2."""
    out = tmp_path / "out"
    config = write(tmp_path, TINY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "advgrad.cli", "bench", str(config), "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 2], [0, 0]), results  # refused, or run after the other finished
    if codes == [0, 2]:
        refused = next(err for code, err in results if code == 2)
        assert refused.count("\n") == 1, refused
        assert f"is writing to {out}" in refused, refused
    assert Report.from_json(out / "report.json").n_samples == 16


# ---------------------------------------------------- a failed run leaves no empty folder
def test_bench_failing_at_run_time_removes_the_folder_it_created(tmp_path, capsys, monkeypatch):
    from advgrad.evaluation.cascade import Runner

    def boom(self, tally, batch, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Runner, "run_batch", boom)
    config = write(tmp_path, TINY)
    out = tmp_path / "new" / "deeper" / "out"
    code, _, stderr = run(capsys, "bench", config, "--out", out)
    assert code == 1 and stderr.strip().splitlines()[-1] == "advgrad: error: RuntimeError: boom"
    assert not (tmp_path / "new").exists()
    # a folder that was there before is kept (empty but for the lock file)
    kept = tmp_path / "kept"
    kept.mkdir()
    code, _, _ = run(capsys, "bench", config, "--out", kept)
    assert code == 1 and kept.is_dir()
    assert [p.name for p in kept.iterdir()] == []


# ------------------------------------------------------ every output file has one mode
def test_output_files_take_the_users_umask(tmp_path, capsys):
    config = write(tmp_path, TINY)
    out = tmp_path / "out"
    plots = tmp_path / "plots"
    previous = os.umask(0o077)
    try:
        code, _, stderr = run(capsys, "bench", config, "--out", out)
        assert code == 0, stderr
        code, _, stderr = run(capsys, "report", out / "report.json", "--out", plots)
        assert code == 0, stderr
    finally:
        os.umask(previous)
    files = [*out.iterdir(), *plots.iterdir()]
    names = {p.name for p in files}
    assert {"report.json", "report.md", "state.json", "robust_accuracy.png"} <= names
    assert any(name.startswith("adversarial_eps=") for name in names)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {"0o600"}, modes  # umask 077: nobody else reads them


# ---------------------------------------------------------------------------- report
def test_report_prints_table_and_writes_plots(bench_run, capsys, tmp_path):
    _, _, out = bench_run
    code, stdout, _ = run(capsys, "report", out / "report.json")
    assert code == 0
    assert stdout.startswith("# Robustness of digits-cnn on digits (test split)")
    assert "\n- Model: digits_cnn" in stdout and "\nClean accuracy: **" in stdout
    assert "| attack | eps=0.1 | eps=0.3 |" in stdout
    plots = tmp_path / "plots"
    code, stdout, _ = run(capsys, "report", out / "report.json", "--out", plots)
    assert code == 0
    assert (plots / "robust_accuracy.png").stat().st_size > 1000
    assert (plots / "report.md").read_text().startswith("# Robustness of digits-cnn on")


def test_report_writes_the_per_sample_csv(bench_run, capsys, tmp_path):
    _, _, out = bench_run
    target = tmp_path / "outcomes.csv"
    code, stdout, _ = run(capsys, "report", out / "report.json", "--csv", target)
    assert code == 0 and f"wrote {target}" in stdout
    rows = target.read_text().splitlines()
    assert (
        rows[0] == "index,label,eps=0.1,eps=0.1/fgsm,eps=0.1/pgd,eps=0.3,eps=0.3/fgsm,eps=0.3/pgd"
    )
    assert len(rows) == 1 + 64  # SMALL evaluates 64 samples
    code, _, stderr = run(capsys, "report", out / "report.json", "--csv", tmp_path)
    assert code == 2 and "is a folder" in stderr


@pytest.mark.parametrize("content", ["{not json", '{"format": "other"}', "[1, 2]", ""])
def test_report_of_a_malformed_file_exits_2(content, tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(content)
    code, stdout, stderr = run(capsys, "report", path)
    assert code == 2 and stdout == ""
    assert stderr.startswith("advgrad: error: Invalid value for argument `source`")
    assert len(stderr.splitlines()) == 1


def test_report_of_a_folder_exits_2(tmp_path, capsys):
    code, stdout, stderr = run(capsys, "report", tmp_path)
    assert code == 2 and stdout == ""
    assert stderr.strip() == f"advgrad: error: RUN.json: not a regular file: {tmp_path}"


def test_report_empty_out_is_refused(bench_run, capsys, monkeypatch, tmp_path):
    _, _, out = bench_run
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run(capsys, "report", out / "report.json", "--out", "")
    assert code == 2 and stdout == ""
    assert stderr.strip() == "advgrad: error: --out: expected a folder path, received ''"
    assert list(tmp_path.iterdir()) == []


def test_report_other_failures_still_exit_1(bench_run, capsys, monkeypatch):
    from advgrad.report import Report as ReportClass

    _, _, out = bench_run

    def broken(self, **kwargs):
        raise RuntimeError("no table")

    monkeypatch.setattr(ReportClass, "to_markdown", broken)
    code, _, stderr = run(capsys, "report", out / "report.json")
    assert code == 1
    assert stderr.strip() == "advgrad: error: RuntimeError: no table"


# --------------------------------------------------------------------- attacks and zoo
def test_attacks_lists_defaults(capsys):
    code, stdout, _ = run(capsys, "attacks")
    assert code == 0
    lines = stdout.splitlines()
    names = [line.split(" ")[0] for line in lines if not line.startswith(" ")]
    assert {"fgsm", "pgd", "mifgsm", "bim"} <= set(names)
    pgd = lines[lines.index(next(line for line in lines if line.startswith("pgd "))) + 1]
    assert "steps=40" in pgd and "random_start=True" in pgd and "norm='linf'" in pgd
    assert "  standard: apgd loss=ce -> apgd-t -> fab-t -> square" in lines
    assert "  fast: apgd loss=ce -> apgd-t" in lines


def test_zoo_list_shows_cards(capsys):
    from advgrad import zoo

    zoo.load("digits-cnn")
    code, stdout, _ = run(capsys, "zoo", "list")
    assert code == 0
    rows = {line.split()[0]: line for line in stdout.splitlines()[1:] if line.strip()}
    assert {"digits-cnn", "digits-mlp", "tabular-two-input"} <= set(rows)
    accuracy = zoo.card("digits-cnn").clean_accuracy
    assert f"{accuracy:.4f}" in rows["digits-cnn"] and accuracy > 0.95
    assert "advgrad.data.digits()" in rows["digits-cnn"]


# ------------------------------------------------------------------------- gradients
def test_gradients_demo(capsys):
    code, stdout, _ = run(capsys, "gradients", "--samples", 8)
    assert "input gradients of digits-cnn on 8 digits test samples (seed 0)" in stdout
    assert "gradient shape (8, 8, 8, 1), dtype float32" in stdout
    numbers = {}
    for line in stdout.splitlines():
        match = re.match(r"\s+(loss per sample|L1|L2|Linf)\b.*?((?:\s+\S+e[-+]\d+){3})$", line)
        if match:
            numbers[match.group(1)] = [float(v) for v in match.group(2).split()]
    assert set(numbers) == {"loss per sample", "L1", "L2", "Linf"}
    for mean, low, high in numbers.values():
        assert 0 <= low <= mean <= high
    # norms of one vector: Linf <= L2 <= L1
    assert numbers["Linf"][2] <= numbers["L2"][2] <= numbers["L1"][2]
    assert numbers["Linf"][1] > 0  # no all-zero gradient
    assert "all-zero gradients: 0 of 8 samples (0.0%)" in stdout
    check = next(line for line in stdout.splitlines() if line.startswith("finite-difference"))
    assert check.startswith("finite-difference check PASSED"), stdout
    assert code == 0


# --------------------------------------------------------------------------- version
def test_version_subprocess():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "advgrad.cli", "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"advgrad {__version__}"


def test_version_in_process(capsys):
    code, stdout, _ = run(capsys, "--version")
    assert code == 0 and stdout.strip() == f"advgrad {__version__}"


# ------------------------------------------------------------- a quiet command line
def _command(*argv, tmp_path, debug=False):
    """`advgrad ...` in a fresh process, as a user starts it (no TF_CPP_MIN_LOG_LEVEL set)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    args = [sys.executable, "-m", "advgrad.cli", *(["--debug"] if debug else []), *argv]
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )


def test_unsafe_yaml_is_one_line_exit_2_and_nothing_runs(tmp_path):
    marker = tmp_path / "executed"
    config = tmp_path / "evil.yaml"
    config.write_text(
        f'model: !!python/object/apply:os.system ["touch {marker}"]\n'
        "data: {name: digits}\nsuite: [fgsm]\neps: 0.1\n"
    )
    result = _command("bench", config, tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("advgrad: error: ") and "refused unsafe YAML" in result.stderr
    assert result.stdout == "" and not marker.exists()


def test_commands_print_nothing_from_tensorflow(tmp_path):
    """TensorFlow is imported (the attack registry needs it), yet stderr stays empty."""
    result = _command("attacks", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "pgd (PGD)" in result.stdout


def test_importing_the_cli_changes_nothing_in_the_process():
    code = (
        "import os, sys; import advgrad.cli; "
        "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), 'tensorflow' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.stdout.split() == ["None", "False"], result.stderr


# ----------------------------------------------------- custom objects: imports, --import
def _custom_model(folder):
    """tests/_custom_objects.py's model and config, in batches of 4."""
    module, text = custom_objects.custom_model(folder)
    return module, text + "batch_size: 4\n"


def test_bench_config_imports_load_custom_objects(tmp_path, capsys):
    module, text = _custom_model(tmp_path)
    config = write(tmp_path, text + f"imports: [{module}]\n")
    code, out, err = run(capsys, "bench", config, "--out", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "report.json").is_file()


def test_bench_unknown_custom_class_is_one_short_line(tmp_path, capsys):
    _, text = _custom_model(tmp_path)
    config = write(tmp_path, text)
    code, out, err = run(capsys, "bench", config, "--out", tmp_path / "out")
    assert code == 2
    assert err.count("\n") == 1, err
    unknown = "model: cannot load custom.keras: unknown class 'ScaledDense'"
    assert f"{unknown} {custom_objects.UNKNOWN_HINT}\n" in err
    assert len(err) < 300 + len(str(config))
    assert not (tmp_path / "out").exists()


def test_bench_bad_import_names_exit_2(tmp_path, capsys):
    config = write(tmp_path, TINY + "imports: [my_layers.py]\n")
    code, _, err = run(capsys, "bench", config, "--out", tmp_path / "out")
    assert code == 2
    assert "imports[0]: expected a module name, not a file: 'my_layers'" in err
    missing = "missing_" + re.sub(r"\W", "_", tmp_path.name)
    config = write(tmp_path, TINY + f"imports: [{missing}]\n")
    code, _, err = run(capsys, "bench", config, "--out", tmp_path / "out")
    assert code == 2
    assert (
        f"imports[0]: cannot import '{missing}': ModuleNotFoundError: No module named '{missing}'\n"
    ) in err
    config = write(tmp_path, TINY)
    code, _, err = run(capsys, "bench", config, "--out", tmp_path / "out", "--import", "a/b.py")
    assert code == 2
    assert "argument --import: expected a module name, not a file: 'b'" in err
    code, _, err = run(capsys, "bench", config, "--out", tmp_path / "out", "--import", missing)
    assert code == 2
    assert f"--import {missing}: cannot import '{missing}': ModuleNotFoundError" in err
    assert not (tmp_path / "out").exists()


def test_bench_import_option_in_a_fresh_process(tmp_path):
    """A fresh process has nothing registered: only ``--import`` makes the model load."""
    module, text = _custom_model(tmp_path)
    config = write(tmp_path, text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "advgrad.cli", "bench", str(config)]
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "out"), "--import", module],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,  # not the config's folder: the module is found next to the config
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "report.json").is_file()


def _init_files(folder):
    """A tiny .keras model and an .npz with x, y, as the example config of `init` names."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save(folder / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", x=rng.random((8, 4)), y=rng.integers(0, 3, 8))


def test_init_writes_a_config_that_parses(tmp_path, capsys, monkeypatch):
    import yaml

    from advgrad.config import ConfigError, parse_config
    from advgrad.config.registries import default_catalog

    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "init")
    assert code == 0, err
    path = tmp_path / "advgrad.yaml"
    assert "wrote advgrad.yaml" in out
    text = path.read_text()
    for key in ("model:", "imports:", "data:", "npz:", "suite:", "eps:", "norm:", "bounds: data"):
        assert key in text
    assert "# targets:" in text
    for key in ("batch_size:", "seed:", "output:"):
        assert key in text
    keys = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert all("#" in line for line in keys)  # every key has its comment
    document = yaml.safe_load(text)
    with pytest.raises(ConfigError) as caught:  # only the two files are missing
        parse_config(document, base=tmp_path, catalog=default_catalog())
    assert len(caught.value.problems) == 2
    assert all("not found" in problem for problem in caught.value.problems)
    _init_files(tmp_path)
    config = parse_config(document, base=tmp_path, catalog=default_catalog())
    assert [a.name for a in config.suite] == ["fgsm", "pgd"]
    assert config.model == str(tmp_path / "model.keras")


def test_init_refuses_an_existing_file_unless_force(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("keep me\n")
    code, out, err = run(capsys, "init", path)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("advgrad: error: ") and "--force" in err
    assert path.read_text() == "keep me\n"
    code, out, err = run(capsys, "init", path, "--force")
    assert code == 0, err
    assert path.read_text().startswith("# advgrad benchmark config")


def test_bench_help_shows_the_config_schema(capsys):
    code, out, _ = run(capsys, "bench", "--help")
    assert code == 0
    for key in ("model:", "data:", "suite:", "eps:", "imports:", "targets:", "npz:"):
        assert key in out
    assert "advgrad init" in out


def test_warnings_are_printed_apart_from_progress_bars(capsys):
    """A warning during a run gets a line of its own, never glued to a tqdm bar."""
    import re
    import warnings

    from tqdm import tqdm

    from advgrad.cli import _clean_output

    with _clean_output(debug=False):
        bar = tqdm(total=3, file=sys.stderr, desc="evaluate")
        bar.update(1)
        warnings.warn("boom", UserWarning, stacklevel=1)
        bar.update(1)
        bar.close()
    stderr = capsys.readouterr().err
    pieces = [p.strip() for p in re.split(r"[\r\n]", stderr)]
    assert "advgrad: warning: boom" in pieces, stderr


# ------------------------------------------------------------------ generate and verify
GENERATE = """\
model: digits-cnn
data: {name: digits, split: test, limit: 50}
attack: fgsm
eps: 0.1
bounds: data
shard_size: 20
format: npz
batch_size: 16
"""


def test_generate_then_verify_then_resume_a_corrupt_shard(tmp_path, capsys):
    config = write(tmp_path, GENERATE, "generate.yaml")
    out = tmp_path / "data"
    code, stdout, err = run(capsys, "generate", config, "--out", out)
    assert code == 0, err
    assert f"wrote 50 samples in 3 shard(s) to {out}" in stdout
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith(".advgrad"))
    assert names == ["manifest.json", "shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    first = {name: (out / name).read_bytes() for name in names}

    code, stdout, _ = run(capsys, "verify", out)
    assert code == 0 and "3 shard(s), 50 samples, run complete" in stdout

    shard = out / "shard-00001.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    code, stdout, _ = run(capsys, "verify", out)
    assert code == 1 and "shard 1 (shard-00001.npz)" in stdout and "[1] again" in stdout

    code, stdout, err = run(capsys, "generate", config, "--out", out)  # its finished run
    assert code == 0 and err == "" and "complete" in stdout and "verify" in stdout
    assert (out / "shard-00001.npz").read_bytes() == bytes(data)  # changed nothing
    code, _, err = run(capsys, "generate", config, "--out", out, "--resume")
    assert code == 0, err
    assert {name: (out / name).read_bytes() for name in names} == first  # the same bytes
    assert run(capsys, "verify", out)[0] == 0


def test_generate_bad_config_exit_2_nothing_written(tmp_path, capsys):
    config = write(tmp_path, GENERATE.replace("format: npz", "format: parquet"), "g.yaml")
    out = tmp_path / "data"
    code, stdout, err = run(capsys, "generate", config, "--out", out)
    assert code == 2 and stdout == ""
    assert "format: expected one of tfrecord, npz, received 'parquet'" in err
    assert err.count("\n") == 1 and not out.exists()
    code, _, err = run(capsys, "verify", tmp_path / "nowhere")
    assert code == 2 and "out_dir" in err


def test_shipped_generation_config_is_valid():
    from advgrad.config import load_generate

    config = load_generate(ROOT / "configs" / "generate-digits.yaml")
    assert config.attack.name == "pgd" and config.bench.data.split == "train"
    assert config.shard_size == 500 and config.format == "tfrecord"
