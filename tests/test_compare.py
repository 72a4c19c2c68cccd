"""advgrad.compare and `advgrad compare`: runs side by side, threat models checked."""

import json

import numpy as np
import pytest

from advgrad.cli import main
from advgrad.compare import ThreatModelError, compare, threat_model_differences
from advgrad.report import Report

PNG = b"\x89PNG\r\n\x1a\n"
SHA = "ab" * 32


def make_report(eps, robust, *, model="cnn", norm="linf", attacks=("pgd",), n=10, sha=SHA):
    """A report whose worst case keeps `robust[i]` of `n` samples robust at `eps[i]`."""
    outcomes = {
        e: np.array([-1] * r + [0] * (n - r), np.int8) for e, r in zip(eps, robust, strict=True)
    }
    suite = [
        {"name": a, "eps": eps[0], "norm": norm, "bounds": [0.0, 1.0], "budget": None,
         "targeted": False, "seed": i, "progress": False, "batch_size": 8, "steps": 5}
        for i, a in enumerate(attacks)
    ]  # fmt: skip
    return Report(
        clean_accuracy=1.0,
        robust_accuracy={e: r / n for e, r in zip(eps, robust, strict=True)},
        per_attack={},
        outcomes=outcomes,
        n_samples=n,
        attacks=list(attacks),
        suite=suite,
        eps=list(eps),
        model={"name": model},
        data={"n_samples": n, "sha256": sha, "sha256_of": "content"},
    )


def write(tmp_path, name, report):
    path = tmp_path / name / "report.json"
    report.to_json(path)
    return str(path)


def ci(report, e):
    low, high = report.interval(e)
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def test_table_rows_and_union_of_eps():
    a = make_report([0.1, 0.3], [6, 2], model="cnn")
    b = make_report([0.2, 0.3], [5, 1], model="resnet", attacks=("fgsm", "pgd"))
    comparison = compare([a, b], ["a", "b"])
    assert comparison.eps == [0.1, 0.2, 0.3]
    lines = comparison.to_markdown().splitlines()
    assert lines[0] == "| run | model | attacks | eps=0.1 | eps=0.2 | eps=0.3 |"
    assert lines[1] == "|---|---|---|---:|---:|---:|"
    assert lines[2] == f"| a | cnn | pgd | 60.0% {ci(a, 0.1)} | - | 20.0% {ci(a, 0.3)} |"
    assert lines[3] == f"| b | resnet | fgsm, pgd | - | 50.0% {ci(b, 0.2)} | 10.0% {ci(b, 0.3)} |"
    assert "Wilson" in comparison.to_markdown()


def test_differences_name_what_differs():
    a, b = make_report([0.1], [5]), make_report([0.1], [5], norm="l2")
    assert threat_model_differences([a, b], ["a", "b"]) == ["norm linf (a) vs l2 (b)"]
    with pytest.raises(ThreatModelError, match=r"runs differ in threat model: norm linf \(a\)"):
        compare([a, b], ["a", "b"])
    c = make_report([0.1], [5], n=20, sha="cd" * 32)
    assert threat_model_differences([a, c], ["a", "c"]) == [
        f"data sha256 {SHA[:12]} (a) vs {'cd' * 6} (c)",
        "n_samples 10 (a) vs 20 (c)",
    ]
    # eps, seed, progress, batch_size, the model and the attack list are not the threat model
    d = make_report([0.3], [1], model="other", attacks=("fgsm", "pgd"))
    d.suite[1]["batch_size"] = 99
    assert threat_model_differences([a, d], ["a", "d"]) == []


def test_force_compares_anyway_and_notes_the_difference():
    a, b = make_report([0.1], [5]), make_report([0.1], [5], norm="l2")
    text = compare([a, b], ["a", "b"], force=True).to_markdown()
    assert "Threat models differ (compared anyway): norm linf (a) vs l2 (b)." in text


def test_names_are_checked():
    a = make_report([0.1], [5])
    with pytest.raises(ValueError, match="names"):
        compare([a, a], ["a"])
    with pytest.raises(ValueError, match="names"):
        compare([a, a], ["a", "a"])


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    a = make_report([0.1, 0.3], [6, 2])
    b = make_report([0.1, 0.2], [5, 1], model="resnet")
    path = compare([a, b], ["a", "b"]).save_plot(tmp_path / "compare.png")
    content = (tmp_path / "compare.png").read_bytes()
    assert path == str(tmp_path / "compare.png")
    assert content.startswith(PNG) and len(content) > 1000


def test_cli_prints_and_writes(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    a = write(tmp_path, "run-a", make_report([0.1, 0.3], [6, 2]))
    b = write(tmp_path, "run-b", make_report([0.2], [3], model="resnet"))
    out = tmp_path / "cmp"
    assert main(["compare", a, b, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| run-a | cnn | pgd | 60.0%" in printed
    assert "| run-b | resnet | pgd | - | 30.0%" in printed
    assert f"wrote compare.md, compare.png to {out}" in printed
    assert (out / "compare.md").read_text().startswith("| run | model | attacks |")
    png = (out / "compare.png").read_bytes()
    assert png.startswith(PNG) and len(png) > 1000
    assert (out / "compare.png").stat().st_mode & 0o777 == 0o644


def test_cli_names_plain_files_by_stem(tmp_path, capsys):
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    make_report([0.1], [5]).to_json(first)
    make_report([0.1], [4]).to_json(second)
    assert main(["compare", str(first), str(second)]) == 0
    printed = capsys.readouterr().out
    assert "| first | cnn |" in printed and "| second | cnn |" in printed


def test_cli_refuses_other_threat_models_unless_forced(tmp_path, capsys):
    a = write(tmp_path, "a", make_report([0.1], [5]))
    b = write(tmp_path, "b", make_report([0.1], [5], norm="l2"))
    assert main(["compare", a, b]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("advgrad: error: runs differ in threat model: norm linf (a) vs l2 (b)")
    assert "\n" not in err and "--force" in err and captured.out == ""
    assert main(["compare", a, b, "--force"]) == 0
    assert "compared anyway" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing", "folder", "bad", "one"])
def test_cli_bad_files_exit_2(tmp_path, capsys, case):
    good = write(tmp_path, "good", make_report([0.1], [5]))
    other = {
        "missing": str(tmp_path / "missing.json"),
        "folder": str(tmp_path),
        "bad": str(tmp_path / "bad.json"),
        "one": None,
    }[case]
    (tmp_path / "bad.json").write_text('{"format": "advgrad.report"}')
    argv = ["compare", good] + ([other] if other else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("advgrad: error: ") and err.count("\n") == 1
    expected = {
        "missing": "file not found",
        "folder": "not a regular file",
        "bad": "not a valid report",
        "one": "two or more",
    }[case]
    assert expected in err


def test_cells_and_plot_use_the_outcomes_not_a_stored_figure(tmp_path):
    """Issue 24 A: compare reads every number off the per-sample outcomes."""
    a = make_report([0.1], [6])
    a.robust_accuracy[0.1] = 0.99  # edited in memory: the outcomes say 6 of 10
    b = make_report([0.1], [5])
    comparison = compare([a, b], ["a", "b"])
    assert comparison.cell(0, 0.1) == f"60.0% {ci(a, 0.1)}"
    assert "99.0%" not in comparison.to_markdown()


def test_cli_refuses_an_edited_report_naming_the_field(tmp_path, capsys):
    good = write(tmp_path, "good", make_report([0.1], [5]))
    edited = make_report([0.1], [2]).to_dict()
    edited["robust_accuracy"]["0.1"] = 0.99
    path = tmp_path / "edited" / "report.json"
    path.parent.mkdir()
    path.write_text(json.dumps(edited))
    assert main(["compare", good, str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert str(path) in captured.err and "robust_accuracy['0.1'] is 0.99" in captured.err
