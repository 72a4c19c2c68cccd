"""Runs on the same data compare: the data's identity is its content, whatever the batching,
and settings that do not change the threat model (targeted, batch_size) are no difference."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from advgrad import ArgumentError
from advgrad.attacks import get_attack
from advgrad.cli import main
from advgrad.compare import CONTENT, compare, threat_model_differences
from advgrad.evaluation import evaluate
from advgrad.evaluation.state import STATE_VERSION, DataDigest
from advgrad.report import Report

LIMIT = 24  # digits images per run


def _digest(*batches) -> str:
    digest = DataDigest()
    for x, y in batches:
        last = digest.update(x, y)
    assert last == digest.hexdigest()
    return last


def test_digest_is_of_the_content_not_the_batching(rng):
    x = {"image": rng.random((10, 3, 2), dtype=np.float32), "extra": rng.random((10, 1))}
    y = rng.integers(0, 4, 10)
    whole = _digest((x, y))
    split = [({k: v[a:b] for k, v in x.items()}, y[a:b]) for a, b in [(0, 3), (3, 4), (4, 10)]]
    assert _digest(*split) == whole
    # labels count as class ids, however they are given
    assert _digest((x, y.astype(np.int32).reshape(10, 1))) == whole
    assert _digest((x, np.eye(4, dtype=np.float32)[y])) == whole
    # other content is other data: a value, the order, a dtype, a label
    changed = {**x, "extra": x["extra"].copy()}
    changed["extra"][9, 0] += 1.0
    swapped = {k: v[::-1] for k, v in x.items()}
    others = [
        (changed, y),
        (swapped, y[::-1]),
        ({**x, "image": x["image"].astype(np.float64)}, y),
        (x, (y + 1) % 4),
        ({k: v[:9] for k, v in x.items()}, y[:9]),
    ]
    assert len({whole, *(_digest(other) for other in others)}) == len(others) + 1
    assert DataDigest.SCHEME == CONTENT  # what compare reads


def test_evaluate_reports_the_same_data_at_any_batch_size(digits, digits_cnn, tmp_path):
    x, y = digits.x_test[:LIMIT], digits.y_test[:LIMIT]
    suite = [get_attack("fgsm", bounds=digits.bounds)]
    run = lambda data, size, **kw: evaluate(  # noqa: E731
        digits_cnn, data, suite=suite, eps=0.1, batch_size=size, sanity=False, **kw
    )
    a, b = run((x, y), 5), run((x, y), LIMIT)
    streamed = run(tf.data.Dataset.from_tensor_slices((x, y)).batch(7), 10)
    assert a.data == b.data == streamed.data
    assert a.data["sha256_of"] == "content" and a.data["n_samples"] == LIMIT
    compare([a, b, streamed], ["a", "b", "streamed"])  # not refused
    # a resumed run streams the data again and checks it against the state's digests
    state = tmp_path / "state.json"
    first = run((x, y), 5, state=state)
    assert json.loads(state.read_text())["version"] == STATE_VERSION
    assert run((x, y), 5, state=state).data == first.data == a.data
    other = x.copy()
    other[7] = 1.0 - other[7]
    with pytest.raises(ArgumentError, match=r"differs in: data \(batch 1\)"):
        run((other, y), 5, state=state)


def test_a_state_of_the_older_digests_is_refused_by_name(digits, digits_cnn, tmp_path):
    x, y = digits.x_test[:4], digits.y_test[:4]
    fgsm = get_attack("fgsm", bounds=digits.bounds)
    state = tmp_path / "state.json"
    run = lambda: evaluate(  # noqa: E731
        digits_cnn, (x, y), suite=[fgsm], eps=0.0, state=state, sanity=False
    )
    run()
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "version": 1}))
    with pytest.raises(ArgumentError, match="state version 1.*reads version 2 only"):
        run()


def _report(sha: str, *, content: bool, batch_size: int, targeted: bool | None) -> Report:
    config = {"name": "pgd", "norm": "linf", "bounds": [0.0, 1.0], "budget": None}
    if targeted is not None:
        config["targeted"] = targeted
    data = {"n_samples": 2, "sha256": sha, **({"sha256_of": CONTENT} if content else {})}
    outcomes = {0.1: np.array([-1, 0], np.int8)}
    return Report(
        1.0, {0.1: 0.5}, {}, outcomes, 2, ["pgd"], suite=[config], data=data,
        batch_size=batch_size,
    )  # fmt: skip


def test_only_threat_model_settings_differ():
    new = _report("ab" * 32, content=True, batch_size=8, targeted=False)
    assert threat_model_differences([new, _report("ab" * 32, content=True, batch_size=2,
                                                  targeted=None)], ["a", "b"]) == []  # fmt: skip
    # reports written before: their digest is of their batches
    old = _report("ab" * 32, content=False, batch_size=8, targeted=False)
    assert threat_model_differences([old, old], ["a", "b"]) == []
    differences = threat_model_differences([new, old], ["new", "old"])
    assert differences[0] == f"data sha256 {'ab' * 6} (new) vs {'ab' * 6} (of batches of 8) (old)"
    assert differences[1] == (
        "old: written by an older advgrad, whose data sha256 depends on batch_size; run it "
        "again with this version to compare by content"
    )


BASE = """\
    model: digits-cnn
    data: {{name: digits, limit: {limit}}}
    norm: linf
    bounds: data
    seed: 0
    batch_size: {batch_size}
    plot_examples: false
"""
DIGITS = """\
    suite:
      - fgsm
      - {name: pgd, steps: 3}
    eps: [0.05, 0.1, 0.2]
"""  # configs/digits.yaml, smaller
STANDARD = """\
    suite:
      - {name: apgd, loss: ce, steps: 3}
      - {name: apgd-t, steps: 3, n_target_classes: 2}
    eps: [0.05, 0.1]
"""  # configs/digits-standard.yaml's first members, smaller


def _bench(folder, name, suite, batch_size):
    config = folder / f"{name}.yaml"
    text = BASE.format(limit=LIMIT, batch_size=batch_size) + suite
    config.write_text(textwrap.dedent(text))
    out = folder / name
    assert main(["bench", str(config), "--out", str(out)]) == 0
    return str(out / "report.json")


def test_readme_runs_compare_at_any_batch_size(digits_cnn, tmp_path, capsys):
    """README's two digits runs (configs/digits.yaml, configs/digits-standard.yaml) and one
    config at two batch sizes: `advgrad compare` lines them up, no --force needed."""
    small = _bench(tmp_path, "digits", DIGITS, batch_size=5)
    large = _bench(tmp_path, "digits-large", DIGITS, batch_size=LIMIT)
    standard = _bench(tmp_path, "digits-standard", STANDARD, batch_size=LIMIT)
    capsys.readouterr()
    assert main(["compare", small, large, standard]) == 0
    table = capsys.readouterr().out
    assert "| digits-standard | digits-cnn | apgd, apgd-t |" in table
    assert "Threat models differ" not in table
