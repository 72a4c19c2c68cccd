"""A researcher's path end to end, as a user runs it from the command line.

Their own `.keras` model with a registered custom layer and a custom loss on integer labels,
trained on standardised features; their own npz data holding the valid range of every
feature; a config with ``imports:``, per-feature bounds read from the file and a fixed target
class; then a second model, the reports, the per-sample CSV and the comparison.
"""

from __future__ import annotations

import csv
import json
import re

import _custom_objects as custom_objects
import keras
import numpy as np
import pytest

from advgrad.cli import main

TARGET = 3
EPS = [0.25, 0.75]  # L-inf radii in units of each feature's standard deviation


@pytest.fixture(scope="module")
def project(tmp_path_factory, digits):
    """A user's folder: their layer module, two trained models, standardised npz data."""
    folder = tmp_path_factory.mktemp("project")
    module, custom = custom_objects.write_module(folder, "user_layers")

    flat_train = digits.x_train.reshape(len(digits.x_train), -1)
    flat_test = digits.x_test.reshape(len(digits.x_test), -1)
    mean, std = flat_train.mean(0), flat_train.std(0) + 0.1
    standardise = lambda v: ((v - mean) / std).astype("float32")  # noqa: E731
    low, high = standardise(np.zeros(64, "float32")), standardise(np.ones(64, "float32"))
    x_test = standardise(flat_test)[:96]
    np.savez(
        folder / "digits_std.npz",
        features=x_test,
        labels=digits.y_test[:96],
        low=low,
        high=high,
    )
    for name, hidden, epochs in (("wide", 32, 30), ("narrow", 8, 10)):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((64,), name="features")
        h = keras.layers.Activation("relu")(custom.ScaledDense(hidden, scale=0.5)(inputs))
        model = keras.Model(inputs, custom.ScaledDense(10)(h))
        model.compile(optimizer="adam", loss=custom.smoothed_ce, metrics=["accuracy"])
        model.fit(standardise(flat_train), digits.y_train, epochs=epochs, batch_size=64, verbose=0)
        model.save(folder / f"{name}.keras")
    custom_objects.forget(module)
    return folder, module


def _config(folder, module, model):
    text = f"""\
model: {model}.keras
imports: [{module}]
data:
  npz: digits_std.npz
  x: features
  y: labels
  bounds: {{low: low, high: high}}
suite:
  - {{name: pgd, steps: 10, targeted: true}}
  - fgsm
eps: {EPS}
norm: linf
bounds: data
targets: {TARGET}
batch_size: 48
seed: 0
"""
    path = folder / f"{model}.yaml"
    path.write_text(text)
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_own_model_and_data_from_config_to_comparison(project, capsys):
    folder, module = project
    runs = {}
    for model in ("wide", "narrow"):
        code, out, err = _run(
            capsys, "bench", _config(folder, module, model), "--out", folder / f"run-{model}"
        )
        assert code == 0, err
        custom_objects.forget(module)  # the next run must import it again through `imports:`
        runs[model] = folder / f"run-{model}" / "report.json"
        assert "advgrad: warning" not in err  # bounded, logits, a loss that fits the labels

    report = json.loads(runs["wide"].read_text())
    assert report["n_samples"] == 96 and report["eps"] == EPS
    assert report["model"]["source"] == "wide.keras"
    assert report["data"]["name"] == "digits_std.npz (x: features, y: labels)"
    pgd, fgsm = report["suite"]
    assert pgd["targets"] == TARGET and pgd["eps"] == EPS and pgd["steps"] == 10
    assert "targets" not in fgsm
    assert len(pgd["bounds"][0]) == 64  # the per-feature range read from the npz
    assert report["clean_accuracy"] > 0.85  # a real model: it learned the digits
    robust = report["robust_accuracy"]
    assert robust[str(EPS[1])] < robust[str(EPS[0])] <= report["clean_accuracy"]
    reached, attacked = report["targeted_success"]["pgd"][str(EPS[1])]
    assert attacked > 0 and reached / attacked > 0.5  # the fixed target is reached

    markdown = (folder / "run-wide" / "report.md").read_text()
    assert "- Model: " in markdown and "from wide.keras" in markdown
    assert "- Data: digits_std.npz (x: features, y: labels), 96 samples" in markdown
    assert "- Threat model: norm Linf; bounds per feature (64 values in [" in markdown
    assert "pgd (" in markdown and "targets=3" in markdown
    assert re.search(r"\d+\.\d% \[\d+\.\d, \d+\.\d\]", markdown)  # Wilson intervals
    assert "Worst-case robust accuracy per class:" in markdown
    assert "Targeted success" in markdown
    assert (folder / "run-wide" / "robust_accuracy.png").stat().st_size > 0

    table = folder / "wide.csv"
    code, out, err = _run(capsys, "report", runs["wide"], "--csv", table)
    assert code == 0, err
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 96
    assert [int(r["label"]) for r in rows] == report["labels"]

    code, out, err = _run(capsys, "compare", runs["wide"], runs["narrow"], "--out", folder / "cmp")
    assert code == 0, err
    assert (folder / "cmp" / "compare.png").stat().st_size > 0
    assert "| run-wide | wide.keras |" in out and "| run-narrow | narrow.keras |" in out
    compared = (folder / "cmp" / "compare.md").read_text()
    assert "eps=0.75" in compared and "[" in compared  # intervals in the comparison too
