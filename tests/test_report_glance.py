"""The Python API at a glance (issue 25): a report prints as a short summary and shows in a
notebook, every public name resolves, evaluate shows progress only where someone watches,
the zoo says when it trains, and report.md says what ran."""

import logging
import re
import sys

import keras
import numpy as np
import pytest

import advgrad
from advgrad import zoo
from advgrad.attacks import get_attack
from advgrad.evaluation import evaluate
from advgrad.report import Report

N = 1000


@pytest.fixture(scope="module")
def big():
    """A report of 1,000 samples at 3 eps, with flags: its dataclass repr is huge."""
    rng = np.random.default_rng(0)
    outcomes = {e: rng.choice(np.array([-1, 0, 1, -2], np.int8), N) for e in (0.1, 0.2, 0.3)}
    first = outcomes[0.1] == -2
    for codes in outcomes.values():
        codes[first] = -2
        codes[~first & (codes == -2)] = -1
    robust = {e: float(np.mean(c == -1)) for e, c in outcomes.items()}
    config = {"norm": "linf", "bounds": [0.0, 1.0], "budget": None}
    return Report(
        clean_accuracy=float(np.mean(~first)),
        robust_accuracy=robust,
        per_attack={},
        outcomes=outcomes,
        n_samples=N,
        attacks=["apgd-ce", "square"],
        suite=[{"name": "apgd-ce", **config}, {"name": "square", **config}],
        flags=[{"code": "run_warning", "message": "m", "advice": "a"}] * 2
        + [{"code": "gradient_masking", "message": "<b>", "advice": "a"}],
        model={"name": "cnn <v2>"},
        data={"name": "digits"},
        labels=list(rng.integers(0, 10, N)),
        distribute={"strategy": "MirroredStrategy", "replicas": 2, "devices": ["/cpu:0", "/cpu:1"]},
    )


def test_print_is_a_short_summary(big):
    text = str(big)
    assert len(text) < 800 and len(repr(big)) < 300, text
    lines = text.splitlines()
    assert lines[0] == "Robustness of cnn <v2> on digits"
    low, high = (100 * v for v in big.interval(0.2))
    assert f"eps=0.2: {100 * big.robust_accuracy[0.2]:.1f}% [{low:.1f}, {high:.1f}]" in text
    assert re.search(r"clean accuracy +\d+\.\d% \[\d+\.\d, \d+\.\d\]", text)
    assert "norm Linf; bounds [0, 1]" in text and "worst case over apgd-ce, square" in text
    assert "flags            run_warning (x2), gradient_masking" in text
    assert "MirroredStrategy, 2 replicas" in text
    assert repr(big).startswith("<Report 'Robustness of cnn <v2> on digits': clean ")
    assert "flags: run_warning, gradient_masking>" in repr(big)


def test_a_notebook_shows_the_markdown_report_as_escaped_html(big):
    markdown = big._repr_markdown_()
    assert markdown == big.to_markdown() and markdown.startswith("# Robustness of cnn <v2>")
    html = big._repr_html_()
    assert "<h3>Robustness of cnn &lt;v2&gt; on digits</h3>" in html
    assert "<table>" in html and "<th>eps=0.1</th>" in html
    assert "&lt;b&gt;" in html and "<b>" not in html  # a flag's text is escaped
    assert "<li>Distribution: MirroredStrategy, 2 replicas (/cpu:0, /cpu:1)</li>" in html


def test_report_md_has_a_title_and_the_distribution(big):
    lines = big.to_markdown().splitlines()
    assert lines[0] == "# Robustness of cnn <v2> on digits"
    assert "- Distribution: MirroredStrategy, 2 replicas (/cpu:0, /cpu:1)" in lines
    assert Report.from_json(big.to_json()).distribute == big.distribute


def test_every_listed_name_resolves():
    for name in {*dir(advgrad), *advgrad.__all__}:
        assert getattr(advgrad, name) is not None, name
        if name != "__version__":  # the rest load on first use, whatever was imported
            assert advgrad.__getattr__(name) is not None, name
    assert advgrad.__getattr__("report").Report is advgrad.Report
    assert advgrad.__getattr__("gradients").input_gradients is advgrad.input_gradients
    for missing in ("not_a_thing", "_io", "report.Report"):
        with pytest.raises(AttributeError, match="has no attribute"):
            advgrad.__getattr__(missing)


@pytest.fixture(scope="module")
def tiny(digits):
    return digits.x_test[:16], digits.y_test[:16]


def _fgsm(digits):
    return [get_attack("fgsm", bounds=digits.bounds)]


def test_progress_only_where_someone_watches(digits, digits_cnn, tiny, capsys, monkeypatch):
    settings = {"suite": _fgsm(digits), "eps": 0.1, "sanity": False}
    report = evaluate(digits_cnn, tiny, **settings)  # pytest: stderr is no terminal
    assert "evaluate" not in capsys.readouterr().err
    assert report.distribute == {"strategy": "none", "replicas": 1, "devices": []}
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal
    evaluate(digits_cnn, tiny, **settings)
    assert "evaluate: 100%" in capsys.readouterr().err
    evaluate(digits_cnn, tiny, progress=False, **settings)  # an explicit choice wins
    assert capsys.readouterr().err == ""


def test_the_bench_command_shows_progress_only_in_a_terminal(tmp_path, capsys, monkeypatch):
    from advgrad.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text("model: digits-cnn\ndata: {name: digits, limit: 16}\nsuite: fgsm\neps: 0.1\n")
    assert main(["bench", str(config), "--out", str(tmp_path / "piped")]) == 0
    assert "evaluate:" not in capsys.readouterr().err  # a pipe or a log: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["bench", str(config), "--out", str(tmp_path / "watched")]) == 0
    assert "evaluate: 100%" in capsys.readouterr().err


def test_a_distributed_report_says_so(digits, digits_cnn, tiny, mirrored):
    report = evaluate(
        digits_cnn, tiny, suite=_fgsm(digits), eps=0.1, sanity=False, strategy=mirrored
    )
    assert report.distribute["strategy"] == "MirroredStrategy"
    assert report.distribute["replicas"] == 2 and len(report.distribute["devices"]) == 2
    assert "- Distribution: MirroredStrategy, 2 replicas (CPU:0, CPU:1)" in report.to_markdown()


def test_the_zoo_says_when_it_trains(tmp_path, monkeypatch, caplog, capsys):
    def train(name):  # a stand-in: the real training takes seconds
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        return model, {"name": name, "build_seconds": 1.25, "clean_accuracy": 0.5}

    monkeypatch.setattr(zoo, "_train", train)
    with caplog.at_level(logging.INFO, logger="advgrad.zoo"):
        zoo.load("digits-mlp", directory=tmp_path)
    said = [r.getMessage() for r in caplog.records if r.name == "advgrad.zoo"]
    assert said == [
        f"training 'digits-mlp' (first use; about 10 s on a 2-core CPU); cached in {tmp_path}",
        "trained 'digits-mlp' in 1.2 s (test accuracy 0.5000)",
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="advgrad.zoo"):
        zoo.load("digits-mlp", directory=tmp_path)  # a cache hit: quiet
    assert not [r for r in caplog.records if r.name == "advgrad.zoo"]
    monkeypatch.setattr(zoo._log, "hasHandlers", lambda: False)  # logging not configured
    zoo._say("hello")
    assert capsys.readouterr().err == "advgrad.zoo: hello\n"


def test_saliency_bars_name_the_features_of_the_npz_or_the_config(tmp_path):
    from advgrad.config import ConfigError
    from advgrad.config.saliency_build import feature_names_of
    from advgrad.saliency.config import parse_saliency
    from advgrad.schema.catalog import Catalog

    x = np.zeros((4, 3), np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(4, np.int64), feature_names=["a", "b", "c"])
    catalog = Catalog(attacks={}, norms=("linf",), datasets=(), models=("digits-mlp",))
    data = {"npz": "d.npz", "x": "x", "y": "y"}
    document = {"model": "digits-mlp", "data": data, "methods": ["vanilla"]}

    def names(**changes):
        config = parse_saliency({**document, **changes}, catalog, base=tmp_path)
        return feature_names_of(config, x)

    assert names() == ["a", "b", "c"]  # the npz's
    assert names(feature_names=["r", "s", "t"]) == ["r", "s", "t"]  # the config's first
    with pytest.raises(ConfigError, match="feature_names: 2 names for the input's 3 features"):
        names(feature_names=["r", "s"])
    with pytest.raises(ConfigError, match="feature_names: expected a list of feature names"):
        names(feature_names="abc")


def test_generate_shows_progress_only_where_someone_watches(
    digits, digits_cnn, tmp_path, capsys, monkeypatch
):
    x, y = digits.x_test[:16], digits.y_test[:16]
    attack = get_attack("fgsm", eps=0.1, bounds=digits.bounds)
    advgrad.generate(digits_cnn, (x, y), attack, tmp_path / "piped", shard_size=16)
    assert "generate" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    advgrad.generate(digits_cnn, (x, y), attack, tmp_path / "watched", shard_size=16)
    assert "generate: 100%" in capsys.readouterr().err
