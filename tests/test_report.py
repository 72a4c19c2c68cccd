"""advgrad.report: JSON round trip, Markdown table, PNG plots."""

import json
import sys

import numpy as np
import pytest

from advgrad.attacks import get_attack
from advgrad.evaluate import evaluate
from advgrad.report import CASCADE, Report

EPS = [0.1, 0.3]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(digits, digits_cnn):
    bounds = digits.bounds
    suite = [get_attack("fgsm", bounds=bounds), get_attack("pgd", bounds=bounds, steps=3)]
    return evaluate(
        digits_cnn,
        (digits.x_test[:64], digits.y_test[:64]),
        suite=suite,
        eps=EPS,
        batch_size=64,
        return_adversarial=True,
        sanity=False,
    )


def test_json_round_trip_through_a_file_and_text(report, tmp_path):
    path = tmp_path / "out" / "report.json"
    text = report.to_json(path)
    assert path.read_text() == text + "\n"
    for source in (path, str(path), text):
        back = Report.from_json(source)
        assert back == report
        assert back.robust_accuracy == report.robust_accuracy
        assert list(back.robust_accuracy) == EPS  # float keys again
        assert back.per_attack == report.per_attack
        for e in EPS:
            assert back.outcomes[e].dtype == np.int8
            np.testing.assert_array_equal(back.outcomes[e], report.outcomes[e])
            np.testing.assert_array_equal(
                back.attack_outcomes["pgd"][e], report.attack_outcomes["pgd"][e]
            )
        assert back.adversarial is None  # kept in memory only
        assert back.suite == report.suite and back.versions == report.versions
    plain = json.loads(text)
    assert plain["format"] == "advgrad.report"
    assert plain["robust_accuracy"] == {
        "0.1": report.robust_accuracy[0.1],
        "0.3": report.robust_accuracy[0.3],
    }
    assert "adversarial" not in plain


def test_from_json_refuses_other_input(tmp_path):
    with pytest.raises(ValueError, match="argument `source`"):
        Report.from_json(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="argument `source`"):
        Report.from_json(tmp_path / "other.json")
    with pytest.raises(ValueError, match="argument `source`"):
        Report.from_json("{broken")


def test_markdown_table(report):
    text = report.to_markdown()
    lines = text.splitlines()
    assert lines[0] == f"Clean accuracy: **{100 * report.clean_accuracy:.1f}%** on 64 samples."
    header = lines.index("| attack | eps=0.1 | eps=0.3 |")
    assert lines[header + 1] == "|---|---:|---:|"
    rows = lines[header + 2 : header + 5]
    pgd = report.per_attack["pgd"]
    assert rows[0].startswith("| fgsm | ")
    assert rows[1] == f"| pgd | {100 * pgd[0.1]:.1f}% | {100 * pgd[0.3]:.1f}% |"
    worst = report.robust_accuracy
    assert rows[2] == (
        f"| **{CASCADE}** | **{100 * worst[0.1]:.1f}%** | **{100 * worst[0.3]:.1f}%** |"
    )
    assert "No sanity flags." in text
    assert "tensorflow" in text


def test_markdown_lists_flags():
    flags = [{"code": "zero_gradients", "message": "Seen.", "advice": "Try X."}]
    r = Report(0.5, {0.1: 0.25}, {}, {0.1: np.array([-1, 0, -2, 0])}, 4, ["pgd"], flags=flags)
    text = r.to_markdown()
    assert "- **zero_gradients**: Seen. Try X." in text
    assert r.cumulative() == {"pgd": {0.1: 0.25}}


def test_plots_are_written(report, tmp_path):
    paths = report.save_plots(tmp_path / "plots")
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    expected = ["robust_accuracy.png"] + [
        f"adversarial_eps={e:g}.png" for e in EPS if e in report.adversarial
    ]
    assert names == sorted(expected) and len(names) == 3
    for path in paths:
        with open(path, "rb") as f:
            content = f.read()
        assert content.startswith(PNG) and len(content) > 1000
    # a report read back from JSON has no adversarial examples: the curve only
    back = Report.from_json(report.to_json())
    assert [p.rsplit("/", 1)[-1] for p in back.save_plots(tmp_path / "b")] == [
        "robust_accuracy.png"
    ]


def test_plots_without_matplotlib_say_what_to_install(report, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install advgrad\[plots\]"):
        report.save_plots(tmp_path)
