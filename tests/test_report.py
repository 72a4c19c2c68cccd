"""advgrad.report: JSON round trip, Markdown table, PNG plots."""

import json
import os
import sys

import numpy as np
import pytest

from advgrad.attacks import get_attack
from advgrad.evaluation import evaluate
from advgrad.report import CASCADE, Report, plots

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
    assert lines[:2] == ["# Robustness of digits_cnn on 64 samples", ""]  # a title
    assert lines.pop(4) == "- Distribution: none (one device)"  # how it ran
    lines = lines[2:]
    # It opens with what was measured: model, data, threat model, attacks with their settings.
    assert lines[0].startswith("- Model: digits_cnn (") and "weights sha256 " in lines[0]
    assert lines[1].startswith("- Data: 64 samples (sha256 ")
    assert lines[2] == (
        "- Threat model: norm Linf; bounds [0, 1]; frozen inputs: none; eps swept: 0.1, 0.3"
    )
    assert lines[3].startswith("- Attacks, in cascade order: fgsm (") and "; pgd (" in lines[3]
    assert "steps=3" in lines[3] and ", eps=" not in lines[3] and "(eps=" not in lines[3]
    clean = lines.index(f"Clean accuracy: **{100 * report.clean_accuracy:.1f}%** on 64 samples.")
    assert clean == 5 and lines[4] == ""
    assert lines[-1].startswith("Per-sample outcomes in report.json")
    header = lines.index("| attack | eps=0.1 | eps=0.3 |")
    assert lines[header + 1] == "|---|---:|---:|"
    rows = lines[header + 2 : header + 5]
    pgd = report.per_attack["pgd"]

    def ci(e, attack=None):
        low, high = report.interval(e, attack)
        return f"[{100 * low:.1f}, {100 * high:.1f}]"

    assert rows[0].startswith("| fgsm | ")
    assert rows[1] == (
        f"| pgd | {100 * pgd[0.1]:.1f}% {ci(0.1, 'pgd')} | {100 * pgd[0.3]:.1f}% {ci(0.3, 'pgd')} |"
    )
    worst = report.robust_accuracy
    assert rows[2] == (
        f"| **{CASCADE}** | **{100 * worst[0.1]:.1f}%** {ci(0.1)} "
        f"| **{100 * worst[0.3]:.1f}%** {ci(0.3)} |"
    )
    assert "95% confidence interval (Wilson score)" in text
    plain = report.to_markdown(intervals=False).splitlines()
    assert plain[plain.index(lines[header]) + 4] == (
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


# ------------------------------------------------------------------------ hostile input
def small_report():
    return Report(
        clean_accuracy=0.75,
        robust_accuracy={0.1: 0.25},
        per_attack={"fgsm": {0.1: 0.5}, "pgd": {0.1: 0.25}},
        outcomes={0.1: np.array([-1, 0, 1, -2], np.int8)},
        n_samples=4,
        attacks=["fgsm", "pgd"],
        attack_outcomes={"pgd": {0.1: np.array([True, False, False, False])}},
        gradients={"fgsm": 3, "pgd": 30},
        timings={"pgd": 0.5},
        loss_trend={"pgd": {0.1: [0.5, 2.0]}},
        batch_size=4,
        seconds=1.0,
    )


def loadable_report():
    """`small_report` with the outcomes of fgsm alone: every stored figure derivable."""
    r = small_report()
    r.attack_outcomes["fgsm"] = {0.1: np.array([True, False, True, False])}
    return r


def refused(document, match):
    with pytest.raises(ValueError) as info:
        Report.from_json(json.dumps(document))
    assert info.value.argument == "source", info.value
    assert match in str(info.value), str(info.value)
    assert len(str(info.value)) < 400


def test_from_json_validates_types_and_ranges():
    good = loadable_report().to_dict()
    assert Report.from_dict(good) == loadable_report()

    def changed(key, value):
        return {**good, key: value}

    refused(changed("clean_accuracy", float("inf")), "clean_accuracy: expected a finite number")
    refused(changed("clean_accuracy", None), "clean_accuracy: expected a finite number")
    refused(changed("clean_accuracy", True), "clean_accuracy: expected a finite number")
    refused(changed("robust_accuracy", {"0.1": -0.5}), "robust_accuracy['0.1']")
    refused(changed("robust_accuracy", {"0.1": 1.5}), ">= 0 and <= 1")
    refused(changed("robust_accuracy", {"abc": 0.5}), "robust_accuracy: expected eps keys")
    refused(changed("robust_accuracy", {"inf": 0.5}), "robust_accuracy: expected eps keys")
    refused(changed("robust_accuracy", [0.5]), "robust_accuracy: expected a mapping")
    refused(changed("per_attack", {"cw": {"0.1": 0.5}}), "per_attack: unknown attack 'cw'")
    refused(changed("per_attack", {"pgd": {"0.1": None}}), "per_attack['pgd']['0.1']")
    refused(changed("n_samples", -4), "n_samples: expected an int >= 0")
    refused(changed("n_samples", 4.5), "n_samples: expected an int >= 0")
    refused(changed("outcomes", {"0.1": [-1, 0, 1]}), "outcomes['0.1']: expected 4 codes")
    refused(changed("outcomes", {"0.1": [-1, 0, 2, -2]}), "codes from -5 to 1")
    refused(changed("outcomes", {"0.1": [-1, 0, 300, -2]}), "codes from -5 to 1")
    refused(changed("outcomes", {"0.1": [-1, 0, 0.5, -2]}), "codes from -5 to 1")
    refused(changed("outcomes", {"0.3": [-1, 0, 1, -2]}), "outcomes: eps 0.3 not in eps")
    refused(changed("attack_outcomes", {"pgd": {"0.1": [1, 0, 0, 0]}}), "4 bools")
    refused(changed("eps", [0.1, float("nan")]), "eps[1]: expected a finite number >= 0")
    refused(changed("eps", [-0.1]), "eps[0]: expected a finite number >= 0")
    refused(changed("attacks", ["pgd", 3]), "attacks: expected a list of distinct strings")
    refused(changed("gradients", {"pgd": -1}), "gradients['pgd']: expected an int >= 0")
    refused(changed("timings", {"pgd": float("inf")}), "timings['pgd']")
    refused(changed("loss_trend", {"pgd": {"0.1": [1.0]}}), "loss_trend['pgd']['0.1']")
    refused(changed("batch_size", 0), "batch_size: expected an int >= 1 or None")
    refused(changed("individual", "yes"), "individual: expected True or False")
    refused(changed("flags", [{"code": 3}]), "flags[0]: expected a mapping of strings")
    refused(changed("versions", "1.0"), "versions: expected a mapping of strings")
    refused(changed("model", None), "model: expected a mapping")
    refused(changed("version", 2), "version: expected 1")
    refused({k: v for k, v in good.items() if k != "n_samples"}, "missing key 'n_samples'")
    with pytest.raises(ValueError, match="argument `data`"):
        Report.from_dict(changed("clean_accuracy", float("nan")))


def test_from_json_refuses_deep_json(tmp_path):
    with pytest.raises(ValueError, match="argument `source`"):
        Report.from_json('{"format": "advgrad.report", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")


def test_report_cli_never_renders_invalid_numbers(tmp_path, capsys):
    from advgrad.cli import main

    document = small_report().to_dict()
    document["robust_accuracy"] = {"0.1": float("inf")}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(document))
    assert main(["report", str(path)]) != 0
    captured = capsys.readouterr()
    assert "inf%" not in captured.out and "robust_accuracy" in captured.err


@pytest.mark.timeout(60)
def test_from_json_reads_only_regular_files_under_the_limit(tmp_path, monkeypatch):
    import advgrad.report

    def refused_source(source, match):
        with pytest.raises(ValueError) as info:
            Report.from_json(source)
        assert info.value.argument == "source" and match in str(info.value), str(info.value)

    refused_source(tmp_path, f"not a regular file: {tmp_path}")
    path = tmp_path / "run.json"
    loadable_report().to_json(path)
    monkeypatch.setattr(advgrad.report.files, "MAX_REPORT_BYTES", 100)
    refused_source(path, f"report file too large: {path.stat().st_size} bytes")
    monkeypatch.undo()
    assert Report.from_json(path) == loadable_report()
    if sys.platform == "win32":
        return
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # nobody writes to it: the read must fail at once, not block
    for source in (fifo, "/dev/zero"):
        refused_source(source, f"not a regular file: {source}")


# ------------------------------------------------------------------ uncertainty, breakdowns
def outcomes_report(robust, n, eps=0.1):
    codes = np.array([-1] * robust + [0] * (n - robust), np.int8)
    return Report(1.0, {eps: robust / n if n else 0.0}, {}, {eps: codes}, n, ["pgd"])


@pytest.mark.parametrize(
    "robust, n, confidence, expected",
    [
        (45, 100, 0.95, (0.3561, 0.5476)),  # Wilson 1927, as in e.g. statsmodels
        (81, 263, 0.95, (0.2553, 0.3662)),
        (45, 100, 0.99, (0.329, 0.5772)),
    ],
)
def test_interval_matches_known_wilson_values(robust, n, confidence, expected):
    low, high = outcomes_report(robust, n).interval(0.1, confidence=confidence)
    assert (round(low, 4), round(high, 4)) == expected


def test_interval_contains_the_estimate_shrinks_with_n_and_handles_the_edges():
    widths = []
    for n in (10, 100, 1000, 10000):
        robust = int(0.3 * n)
        low, high = outcomes_report(robust, n).interval(0.1)
        assert 0 <= low < robust / n < high <= 1
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True) and widths[-1] < 0.02
    low, high = outcomes_report(0, 20).interval(0.1)
    assert low == 0.0 and 0 < high < 0.2
    low, high = outcomes_report(20, 20).interval(0.1)
    assert high == 1.0 and 0.8 < low < 1
    assert all(np.isnan(outcomes_report(0, 0).interval(0.1)))
    narrow, wide = (outcomes_report(45, 100).interval(0.1, confidence=c) for c in (0.9, 0.99))
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_interval_of_each_attack_and_refusals():
    r = small_report()
    assert r.interval(0.1) == outcomes_report(1, 4).interval(0.1)  # 1 robust of 4
    assert r.interval(0.1, "pgd") == outcomes_report(1, 4).interval(0.1)
    with pytest.raises(ValueError, match="argument `attack`"):
        r.interval(0.1, "fgsm")  # no per-sample outcomes of fgsm alone
    with pytest.raises(ValueError, match="argument `eps`"):
        r.interval(0.3)
    for confidence in (0.0, 1.0, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="argument `confidence`"):
            r.interval(0.1, confidence=confidence)


def labelled_report():
    r = small_report()
    r.labels = [2, 0, 2, 2]
    return r


def test_per_class_and_its_markdown_table():
    r = labelled_report()
    assert r.per_class(0.1) == {0: (0, 1), 2: (1, 3)}
    assert r.per_class(0.1, "pgd") == {0: (0, 1), 2: (1, 3)}
    text = r.to_markdown()
    assert "| fgsm | 50.0% |" in text  # no per-sample outcomes of fgsm alone: no interval
    assert "| **worst case (cascade)** | **25.0%** [4.6, 69.9] |" in text
    assert "| pgd | 25.0% [4.6, 69.9] |" in text
    lines = text.splitlines()
    start = lines.index("Worst-case robust accuracy per class:")
    assert lines[start + 2 : start + 6] == [
        "| class | n | eps=0.1 |",
        "|---:|---:|---:|",
        "| 0 | 1 | 0.0% |",
        "| 2 | 3 | 33.3% |",
    ]
    assert "per class" not in small_report().to_markdown()
    with pytest.raises(ValueError, match="argument `labels`"):
        small_report().per_class(0.1)
    # numpy labels are kept as a list of ints
    r = Report(1.0, {0.1: 1.0}, {}, {0.1: np.array([-1, -1])}, 2, ["a"], labels=np.array([3, 1]))
    assert r.labels == [3, 1] and r.per_class(0.1) == {1: (1, 1), 3: (1, 1)}


def test_labels_round_trip_and_old_reports_still_load():
    r = loadable_report()
    r.labels = [2, 0, 2, 2]
    document = r.to_dict()
    assert document["labels"] == [2, 0, 2, 2]
    back = Report.from_json(r.to_json())
    assert back == r and back.labels == [2, 0, 2, 2]
    old = loadable_report().to_dict()
    assert "labels" not in old  # reports without labels are written as before
    assert Report.from_dict(old).labels is None
    assert Report.from_dict({**old, "labels": None}).labels is None
    for bad in ([2, 0, 2], [2, 0, -1, 2], [2, 0, 1.0, 2], [2, 0, True, 2], "0022", {"0": 1}):
        refused({**document, "labels": bad}, "labels: expected None or 4 class ids (ints >= 0)")


def test_csv_export(tmp_path):
    r = labelled_report()
    r.eps = [0.1, 0.3]
    r.robust_accuracy[0.3] = 0.0
    r.outcomes[0.3] = np.array([1, 0, -2, 0], np.int8)
    r.attack_outcomes["pgd"][0.3] = np.array([False, True, False, False])
    expected = (
        "index,label,eps=0.1,eps=0.1/pgd,eps=0.3,eps=0.3/pgd\n"
        "0,2,robust,1,pgd,0\n"
        "1,0,fgsm,0,fgsm,1\n"
        "2,2,pgd,0,clean_misclassified,0\n"
        "3,2,clean_misclassified,0,fgsm,0\n"
    )
    path = tmp_path / "out" / "outcomes.csv"
    assert r.to_csv(path) == expected
    assert path.read_text() == expected
    assert small_report().to_csv().splitlines()[:2] == ["index,eps=0.1,eps=0.1/pgd", "0,robust,1"]
    eps = 8 / 255
    odd = Report(1.0, {eps: 1.0}, {}, {eps: np.array([-1])}, 1, ["a,b"])
    assert odd.to_csv() == f"index,eps={eps!r}\n0,robust\n"
    odd.outcomes[eps] = np.array([0])
    assert odd.to_csv().splitlines()[1] == '0,"a,b"'


def test_plot_draws_the_interval_band(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    bands = []
    original = matplotlib.axes.Axes.fill_between

    def spy(self, x, low, high, **kwargs):
        bands.append((list(x), list(low), list(high)))
        return original(self, x, low, high, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", spy)
    r = small_report()
    (path,) = r.save_plots(tmp_path)
    with open(path, "rb") as f:
        assert f.read().startswith(PNG)
    assert len(bands) == 1
    xs, low, high = bands[0]
    assert xs == [0.0, 0.1]
    assert (low[0], high[0]) == outcomes_report(3, 4).interval(0.1)  # clean: 3 of 4 correct
    assert (low[1], high[1]) == r.interval(0.1)
    bands.clear()
    Report(0.9, {0.1: 0.4}, {}, {}, 10, ["pgd"]).save_plots(tmp_path / "none")
    assert bands == []  # no per-sample outcomes: no band


# ------------------------------------------------------------------ plots, by their objects
def plotted_report(norms=("linf", "linf"), attacks=("fgsm", "pgd")):
    """A hand-made report: pgd's curve equals the worst case; 2 fooled 4x4 images at 0.1."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 4, 4, 1))
    x_adv = np.clip(x + rng.uniform(-0.1, 0.1, x.shape), 0, 1)
    per_attack = {attacks[0]: {0.1: 0.5}}
    if len(attacks) > 1:
        per_attack[attacks[1]] = {0.1: 0.25}
    return Report(
        clean_accuracy=0.75,
        robust_accuracy={0.1: 0.25},
        per_attack=per_attack,
        outcomes={0.1: np.array([-1, 0, len(attacks) - 1, -2], np.int8)},
        n_samples=4,
        attacks=list(attacks),
        suite=[{"name": a, "norm": n} for a, n in zip(attacks, norms, strict=True)],
        model={"name": "tiny"},
        adversarial={
            0.1: {
                "index": np.array([1, 2]),
                "x": x,
                "x_adv": x_adv,
                "attack": np.array([0, len(attacks) - 1]),
                "label": np.array([3, 5]),
                "predicted": np.array([8, 6]),
            }
        },
    )


@pytest.fixture
def plt():
    pytest.importorskip("matplotlib")
    from advgrad.report.plots import pyplot as load_pyplot

    pyplot = load_pyplot()
    before = set(pyplot.get_fignums())
    yield pyplot
    assert set(pyplot.get_fignums()) == before  # every figure closed


def test_curve_axis_names_the_norm(plt):
    cases = [
        (("linf", "linf"), "eps (Linf)"),
        (("l2", "L2"), "eps (L2)"),
        (("linf", "l2"), "eps (mixed norms)"),
        ((None, None), "eps"),
    ]
    for norms, expected in cases:
        r = plotted_report(norms)
        if norms[0] is None:
            r.suite = []
        fig = plots.curves_figure(r, plt)
        try:
            assert fig.axes[0].get_xlabel() == expected
        finally:
            plt.close(fig)


def test_curve_worst_case_lies_under_each_attack_and_the_legend_names_them(plt):
    fig = plots.curves_figure(plotted_report(), plt)
    try:
        ax = fig.axes[0]
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines) == [CASCADE, "fgsm (alone)", "pgd (alone)"]
        worst = lines[CASCADE]
        for attack in ("fgsm (alone)", "pgd (alone)"):
            line = lines[attack]
            assert line.get_zorder() > worst.get_zorder()
            assert line.get_linewidth() < worst.get_linewidth()
            assert line.get_marker() == "o"
        assert 0 < worst.get_alpha() < 1
        # pgd equals the worst case, yet is drawn on top of it
        np.testing.assert_array_equal(lines["pgd (alone)"].get_ydata(), worst.get_ydata())
        assert list(worst.get_xdata()) == [0.0, 0.1]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [CASCADE, "95% interval (worst case)", "fgsm (alone)", "pgd (alone)"]
    finally:
        plt.close(fig)
    # one attack: its line is still drawn above the (identical) worst case
    single = plotted_report(("l2",), ("pgd",))
    single.per_attack = {"pgd": {0.1: 0.25}}
    fig = plots.curves_figure(single, plt)
    try:
        labels = [line.get_label() for line in fig.axes[0].get_lines()]
        assert labels == [CASCADE, "pgd (alone)"]
        z = [line.get_zorder() for line in fig.axes[0].get_lines()]
        assert z[1] > z[0]
        assert fig.axes[0].get_xlabel() == "eps (L2)"
    finally:
        plt.close(fig)


def test_perturbation_panels_have_a_colour_bar_and_say_truth_and_prediction(plt):
    r = plotted_report()
    fig = plots.images_figure(r, plt, 0.1, r.adversarial[0.1])
    try:
        panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(panels) == 6 and len(bars) == 1
        titles = [ax.get_title() for ax in panels]  # row by row
        assert titles == [
            "clean: true 3",
            "clean: true 5",
            "true 3 → predicted 8",
            "true 5 → predicted 6",
            "perturbation (fgsm)",
            "perturbation (pgd)",
        ]
        (colorbar,) = [
            ax.get_images()[0].colorbar for ax in panels[4:] if ax.get_images()[0].colorbar
        ]
        assert colorbar.ax is bars[0] and colorbar.ax.get_ylabel() == "x_adv - x"
        low, high = colorbar.mappable.get_clim()
        assert low == -high and 0 < high <= 0.1  # symmetric: the largest perturbation at the ends
        # every perturbation panel uses the colour bar's scale
        assert all(ax.get_images()[0].get_clim() == (low, high) for ax in panels[4:])
        assert all(ax.get_images()[0].get_cmap().name == "RdBu" for ax in panels[4:])
        assert "clean / adversarial / perturbation" in fig.get_suptitle()
    finally:
        plt.close(fig)


def test_save_plots_writes_both_figures_and_closes_them(plt, tmp_path):
    paths = plotted_report().save_plots(tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in paths] == [
        "robust_accuracy.png",
        "adversarial_eps=0.1.png",
    ]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read().startswith(PNG)


# ------------------------------------------------------------ the whole curve
def _curve_report():
    codes = np.array([-1, 0, -2, -1], np.int8)
    return Report(
        0.75,
        {0.5: 0.5},
        {},
        {0.5: codes},
        4,
        ["fmn"],
        suite=[{"name": "fmn", "norm": "l2"}],
        curve={"norm": "l2", "attacks": ["fmn"], "norms": [0.7, 0.3, 0.0, float("inf")]},
    )


def test_curve_round_trips_and_reads_at_any_eps(tmp_path):
    report = _curve_report()
    back = Report.from_json(report.to_json())
    assert back == report and back.curve["norms"][-1] == float("inf")
    assert report.curve_accuracy() == {0.5: 0.5}
    assert report.curve_accuracy([0.0, 0.3, 0.69, 0.7, 1e9]) == {
        0.0: 0.75,
        0.3: 0.5,
        0.69: 0.5,
        0.7: 0.25,
        1e9: 0.25,
    }
    assert report.curve_points() == ([0.0, 0.3, 0.7], [0.75, 0.5, 0.25])
    paths = report.save_plots(tmp_path)
    with open(paths[0], "rb") as f:
        assert f.read(8) == PNG
    assert "median smallest adversarial perturbation 0.5" in report.to_markdown()
    # A report without a curve says so, naming the field.
    with pytest.raises(ValueError, match="`curve`"):
        Report(1.0, {0.1: 1.0}, {}, {}, 1, []).curve_accuracy(0.1)


@pytest.mark.parametrize(
    "curve",
    [
        {"norm": "l2", "norms": [0.1, -1.0, 0.0, 0.0]},
        {"norm": "l2", "norms": [0.1]},
        {"norms": [0.1, 0.1, 0.1, 0.1]},
        [0.1],
    ],
)
def test_damaged_curve_refused(curve):
    data = _curve_report().to_dict()
    data["curve"] = curve
    with pytest.raises(ValueError, match="curve"):
        Report.from_dict(data)


# ------------------------------------------------- stored figures are derived, or refused
def _consistent():
    """A report whose every stored figure is what its per-sample outcomes give."""
    r = loadable_report()
    r.labels = [2, 0, 2, 2]
    r.targeted_success = {"pgd": {0.1: [1, 3]}}
    r.data = {"n_samples": 4, "sha256": "ab" * 32}
    return r


def _set_path(document, path, value):
    *keys, last = path
    target = document
    for key in keys:
        target = target[key]
    target[last] = value


TAMPERED = {
    "robust_accuracy": (("robust_accuracy", "0.1"), 0.99, "robust_accuracy['0.1'] is 0.99"),
    "clean_accuracy": (("clean_accuracy",), 0.9, "clean_accuracy is 0.9"),
    "per_attack": (("per_attack", "pgd", "0.1"), 0.5, "per_attack['pgd']['0.1'] is 0.5"),
    "cascade vs attack alone": (
        ("outcomes", "0.1"),
        [-1, 0, -1, -2],  # sample 2: robust in the cascade, fooled by pgd alone
        "outcomes['0.1'] disagrees with attack_outcomes['pgd']['0.1'] at sample 2",
    ),
    "targeted over fooled": (
        ("targeted_success", "pgd", "0.1"),
        [3, 3],
        "targeted_success['pgd']['0.1'] is [3, 3]",
    ),
    "data n_samples": (("data", "n_samples"), 5, "data['n_samples'] is 5"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_stored_figure_that_disagrees_with_the_outcomes_is_refused(case, tmp_path):
    """Issue 24 A: an edited figure is refused, naming the file, the field and the fix."""
    document = _consistent().to_dict()
    assert Report.from_dict(document) == _consistent()  # the untouched report loads
    path_in_document, value, match = TAMPERED[case]
    _set_path(document, path_in_document, value)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError) as info:
        Report.from_json(path)
    text = str(info.value)
    assert info.value.argument == "source" and str(path) in text, text
    assert match in text and "per-sample outcomes" in text and "\n" not in text, text
    assert "restore" in text  # the fix


def test_a_figure_without_its_outcomes_is_refused():
    document = _consistent().to_dict()
    document["eps"] = [0.1, 0.3]
    document["robust_accuracy"]["0.3"] = 0.0
    refused(document, "robust_accuracy['0.3']: no per-sample outcomes")
    document = _consistent().to_dict()
    del document["attack_outcomes"]["fgsm"]
    refused(document, "per_attack['fgsm']['0.1']: no per-sample outcomes")


def test_a_curve_whose_zero_norms_disagree_with_the_outcomes_is_refused():
    document = _curve_report().to_dict()
    document["curve"]["norms"][2] = 0.4  # a clean-misclassified sample needs no perturbation
    refused(document, "curve.norms[2] is 0.4")
    curve_only = Report(0.75, {}, {}, {}, 4, ["fmn"], curve=_curve_report().curve).to_dict()
    assert Report.from_dict(curve_only).clean_accuracy == 0.75
    curve_only["clean_accuracy"] = 1.0
    refused(curve_only, "clean_accuracy is 1.0")


def test_report_cli_refuses_an_edited_figure_and_prints_no_number(tmp_path, capsys):
    from advgrad.cli import main

    document = _consistent().to_dict()
    document["robust_accuracy"]["0.1"] = 0.99
    path = tmp_path / "report.json"
    path.write_text(json.dumps(document))
    assert main(["report", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "99.0%" not in captured.err
    assert captured.err.count("\n") == 1 and "robust_accuracy['0.1'] is 0.99" in captured.err


def test_markdown_reads_its_numbers_off_the_outcomes():
    r = _consistent()
    r.robust_accuracy[0.1] = 0.99  # an in-memory edit: the table still shows the outcomes
    r.clean_accuracy = 0.9
    text = r.to_markdown()
    assert "99.0%" not in text and "**25.0%** [4.6, 69.9]" in text
    assert "Clean accuracy: **75.0%** on 4 samples." in text


# ---------------------------------------------------------- strict JSON, never NaN
def _no_constants(name):
    raise AssertionError(f"{name} in JSON")


def test_report_json_is_strict_json(tmp_path):
    """Issue 24 C: no bare NaN/Infinity; inf norms and bounds come back."""
    r = _curve_report()
    r.loss_trend = {"fmn": {0.5: [float("nan"), float("inf")]}}
    r.suite = [{"name": "fmn", "norm": "l2", "bounds": [0.0, float("inf")]}]
    r.model = {"name": "m", "score": float("nan")}
    text = r.to_json(tmp_path / "report.json")
    document = json.loads(text, parse_constant=_no_constants)
    assert document["curve"]["norms"][-1] is None
    back = Report.from_json(tmp_path / "report.json")
    assert back.curve["norms"][-1] == float("inf")
    assert back.suite[0]["bounds"] == [0.0, float("inf")]
    assert all(np.isnan(v) for v in back.loss_trend["fmn"][0.5])  # a loss unknown: null
    assert back == r
