"""advgrad.evaluate's resumable state: a saved state is checked before it is resumed, not
trusted. Anything but what a run writes is refused with an `ArgumentError` naming `state`,
and the file is left as it was."""

import json
import os
import sys

import numpy as np
import pytest

from advgrad._validation import ArgumentError
from advgrad.attacks import get_attack
from advgrad.evaluation import evaluate
from advgrad.evaluation import state as state_lib
from advgrad.evaluation.cascade import Runner
from advgrad.report import ROBUST

# `digits` and `digits_cnn` come from conftest.py.

SAMPLES, BATCH_SIZE, EPS = 24, 8, [0.1, 0.3]


def _run(model, digits, path, **changes):
    kwargs = dict(
        suite=[
            get_attack("fgsm", bounds=digits.bounds),
            get_attack("pgd", bounds=digits.bounds, steps=3),
        ],
        eps=EPS,
        batch_size=BATCH_SIZE,
        seed=3,
        state=path,
        sanity=False,
    )
    kwargs.update(changes)
    return evaluate(model, (digits.x_test[:SAMPLES], digits.y_test[:SAMPLES]), **kwargs)


@pytest.fixture(scope="module")
def written(digits_cnn, digits, tmp_path_factory):
    """A complete state written by a real run (individual=True), and that run's report."""
    path = tmp_path_factory.mktemp("state") / "state.json"
    report = _run(digits_cnn, digits, path)
    return path.read_bytes(), report


def _refused(run, path, match):
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(ArgumentError, match=match) as info:
        run(path)
    assert info.value.argument == "state"
    assert str(info.value).startswith("Invalid value for argument `state`: ")
    if before is not None:
        assert path.read_bytes() == before  # left untouched


# ------------------------------------------------------- tampered JSON content
def _first(codes, value):
    where = [i for i, c in enumerate(codes) if c == value]
    assert where, f"no sample with outcome {value} in {codes}"
    return where[0]


def _set(path, value):
    def change(saved):
        *keys, last = path
        target = saved
        for key in keys:
            target = target[key]
        target[last] = value

    return change


def _delete(*path):
    def change(saved):
        *keys, last = path
        target = saved
        for key in keys:
            target = target[key]
        del target[last]

    return change


def _extend_outcomes(saved):
    saved["tally"]["outcomes"]["0.1"] += [ROBUST] * 601


def _robust_to_fooled(saved):  # the cascade no longer agrees with the attacks alone
    codes = saved["tally"]["outcomes"]["0.1"]
    codes[_first(codes, ROBUST)] = 1


def _robust_to_misclassified(saved):  # clean-misclassified at one eps only
    codes = saved["tally"]["outcomes"]["0.1"]
    codes[_first(codes, ROBUST)] = -2


def _code_out_of_range(saved):  # two attacks: codes -2, -1, 0 and 1 only
    codes = saved["tally"]["outcomes"]["0.3"]
    codes[_first(codes, 1) if 1 in codes else _first(codes, 0)] = 2


def _code_bool(saved):
    codes = saved["tally"]["outcomes"]["0.1"]
    codes[_first(codes, ROBUST)] = True


def _alone_two(saved):
    saved["tally"]["attack_outcomes"]["fgsm"]["0.1"][0] = 2


def _alone_short(saved):
    saved["tally"]["attack_outcomes"]["pgd"]["0.3"].pop()


def _more_hashes(saved):
    tally = saved["tally"]
    tally["batch_hashes"].append(tally["batch_hashes"][0])
    saved["batches_done"] += 1


def _not_hex(saved):
    saved["tally"]["batch_hashes"][1] = "z" * 64


def _extra_attack(saved):
    saved["tally"]["gradients"]["cw"] = 5


def _damaged(where):
    """What the error says: the file is damaged, and where (a key of the state)."""
    return rf"damaged: (tally\.)?{where}"


TAMPERED = {
    # the reported symptoms: accuracies over 100 %, more outcomes than samples
    "clean_correct over n_samples": (
        _set(("tally", "clean_correct"), 2222764),
        _damaged("clean_correct"),
    ),
    "625 outcomes for 24 samples": (_extend_outcomes, _damaged(r"outcomes\['0.1'\]")),
    # wrong JSON types and missing keys (KeyError, TypeError, AttributeError before)
    "n_samples a string": (_set(("tally", "n_samples"), "24"), _damaged("n_samples")),
    "n_samples a float": (_set(("tally", "n_samples"), 24.0), _damaged("n_samples")),
    "n_samples negative": (_set(("tally", "n_samples"), -24), _damaged("n_samples")),
    "no loss": (_delete("tally", "loss"), _damaged("loss")),
    "no batch_sizes": (_delete("tally", "batch_sizes"), _damaged("batch_sizes")),
    "tally a list": (_set(("tally",), []), _damaged("tally")),
    "fingerprint a list": (_set(("fingerprint",), []), _damaged("fingerprint")),
    "complete a string": (_set(("complete",), "yes"), _damaged("complete")),
    "version True": (_set(("version",), True), "state version True"),
    "seed 3.0 in the fingerprint": (_set(("fingerprint", "seed"), 3.0), "differs in: seed"),
    # huge numbers (OverflowError before)
    "gradients huge": (_set(("tally", "gradients", "fgsm"), 10**30), _damaged("gradients")),
    "gradients negative": (_set(("tally", "gradients", "pgd"), -1), _damaged("gradients")),
    "queries a float": (_set(("tally", "queries", "pgd"), 1.5), _damaged("queries")),
    "timing negative": (_set(("tally", "timings", "pgd"), -1.0), _damaged("timings")),
    "timing NaN": (_set(("tally", "timings", "fgsm"), float("nan")), _damaged("timings")),
    "extra attack": (_extra_attack, _damaged("gradients")),
    "loss row of 2": (_set(("tally", "loss", "pgd", 0), [0.1, 0.2]), _damaged("loss")),
    "loss row NaN": (_set(("tally", "loss", "pgd", 1), [0.1, float("nan"), 8.0]), _damaged("loss")),
    "loss rows missing": (_set(("tally", "loss", "fgsm"), []), _damaged("loss")),
    # batches
    "batch_sizes sum": (_set(("tally", "batch_sizes"), [8, 8, 9]), _damaged("batch_sizes")),
    "batch_sizes zero": (_set(("tally", "batch_sizes"), [16, 0, 8]), _damaged("batch_sizes")),
    "batch_sizes regrouped": (_set(("tally", "batch_sizes"), [4, 12, 8]), _damaged("batch_sizes")),
    "hash not hex": (_not_hex, _damaged("batch_hashes")),
    "one hash too many": (_more_hashes, _damaged("batch_hashes")),
    "batches_done off": (_set(("batches_done",), 2), _damaged("batches_done")),
    # outcome codes
    "code out of range": (_code_out_of_range, _damaged("outcomes")),
    "code a bool": (_code_bool, _damaged("outcomes")),
    "cascade disagrees": (_robust_to_fooled, _damaged("outcomes")),
    "misclassified at one eps": (_robust_to_misclassified, _damaged("outcomes")),
    "attack outcome 2": (_alone_two, _damaged("attack_outcomes")),
    "attack outcomes short": (_alone_short, _damaged("attack_outcomes")),
    "attack outcomes missing": (
        _set(("tally", "attack_outcomes", "pgd"), {}),
        _damaged("attack_outcomes"),
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_state_is_refused_and_left_untouched(case, written, digits_cnn, digits, tmp_path):
    change, match = TAMPERED[case]
    saved = json.loads(written[0])
    change(saved)
    path = tmp_path / "state.json"
    path.write_text(json.dumps(saved))
    _refused(lambda p: _run(digits_cnn, digits, p), path, match)


# ------------------------------------------------- JSON that does not parse well
def _deeply_nested(text):
    return text.replace('"updated":', '"updated":' + "[" * 100_000 + "]" * 100_000 + ',"x":', 1)


RAW = {
    "deeply nested value": (_deeply_nested, "cannot be read"),
    "deeply nested document": (lambda text: "[" * 100_000 + "]" * 100_000, "cannot be read"),
    "float 1e400": (
        lambda text: text.replace('"gradients":{"fgsm":', '"gradients":{"fgsm":1e400,"x":', 1),
        _damaged("tally.gradients"),
    ),
    "int of 5000 digits": (
        lambda text: text.replace('"n_samples":', '"n_samples":' + "9" * 5000 + ',"x":', 1),
        "cannot be read",
    ),
    "not UTF-8": (lambda text: "\udcff" + text, "cannot be read"),
    "empty": (lambda text: "", "cannot be read"),
}


@pytest.mark.parametrize("case", list(RAW))
def test_unparsable_state_is_refused(case, written, digits_cnn, digits, tmp_path):
    change, match = RAW[case]
    text = change(written[0].decode())
    assert text != written[0].decode()
    path = tmp_path / "state.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    _refused(lambda p: _run(digits_cnn, digits, p), path, match)


# --------------------------------------------------------------- what is read
def test_a_folder_is_not_a_state_file(digits_cnn, digits, tmp_path):
    folder = tmp_path / "state.json"
    folder.mkdir()
    _refused(lambda p: _run(digits_cnn, digits, p), folder, "not a regular file")
    assert folder.is_dir() and not list(folder.iterdir())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX FIFOs")
@pytest.mark.timeout(120)
def test_a_fifo_is_refused_without_blocking(digits_cnn, digits, tmp_path):
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)  # nobody writes to it: opening it to read would block for ever
    _refused(lambda p: _run(digits_cnn, digits, p), fifo, "not a regular file")


def test_state_size_is_capped_before_reading(written, digits_cnn, digits, tmp_path, monkeypatch):
    assert state_lib.MAX_STATE_BYTES == 1 << 30
    path = tmp_path / "state.json"
    path.write_bytes(written[0])
    monkeypatch.setattr(state_lib, "MAX_STATE_BYTES", len(written[0]) - 1)
    _refused(lambda p: _run(digits_cnn, digits, p), path, f"{len(written[0])} bytes")
    monkeypatch.setattr(state_lib, "MAX_STATE_BYTES", len(written[0]))
    again = _run(digits_cnn, digits, path)  # at the limit: read
    assert again.robust_accuracy == written[1].robust_accuracy


# ------------------------------------------------- what a run writes is accepted
def test_a_partial_state_resumes_to_the_full_result(
    written, digits_cnn, digits, tmp_path, monkeypatch
):
    """What an interrupted run wrote passes the checks, and resumes to the full result."""
    original = Runner.run_batch

    def interrupted(self, tally, batch, *args, **kwargs):
        if batch == 2:
            raise KeyboardInterrupt
        return original(self, tally, batch, *args, **kwargs)

    path = tmp_path / "state.json"
    monkeypatch.setattr(Runner, "run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(digits_cnn, digits, path)
    monkeypatch.setattr(Runner, "run_batch", original)
    saved = json.loads(path.read_text())
    assert saved["batches_done"] == 2 and not saved["complete"]
    resumed = _run(digits_cnn, digits, path)
    full = written[1]
    assert json.loads(path.read_text())["complete"]
    assert resumed.clean_accuracy == full.clean_accuracy
    assert resumed.gradients == full.gradients and resumed.loss_trend == full.loss_trend
    for e in EPS:
        np.testing.assert_array_equal(resumed.outcomes[e], full.outcomes[e])
        for label in full.attacks:
            np.testing.assert_array_equal(
                resumed.attack_outcomes[label][e], full.attack_outcomes[label][e]
            )


def test_cascade_only_state_resumes(digits_cnn, digits, tmp_path):
    path = tmp_path / "state.json"
    first = _run(digits_cnn, digits, path, individual=False)
    saved = json.loads(path.read_text())
    assert all(v == {} for v in saved["tally"]["attack_outcomes"].values())
    before = path.read_bytes()
    again = _run(digits_cnn, digits, path, individual=False)
    assert again.robust_accuracy == first.robust_accuracy
    assert path.read_bytes() == before


def test_state_is_strict_json_and_inf_norms_resume(tmp_path):
    """Issue 24 C: a curve's inf (none found) is written as null, and read back as inf."""
    labels = ["fmn"]
    expected = state_lib.fingerprint("ab" * 32, [{"name": "fmn"}], [], 2, 0, True)
    expected["curve"] = labels
    tally = state_lib.Tally(labels, [])
    tally.start_curve(labels)
    tally.curve["parts"].append(np.array([0.5, np.inf]))
    tally.n_samples, tally.clean_correct, tally.sizes = 2, 2, [2]
    tally.batch_hashes.append("cd" * 32)
    path = tmp_path / "state.json"
    state_lib.StateFile(path, expected, labels).write(tally, complete=True)

    def refuse(name):
        raise AssertionError(f"{name} in JSON")

    saved = json.loads(path.read_text(), parse_constant=refuse)
    assert saved["tally"]["curve"]["norms"] == [0.5, None]
    store = state_lib.StateFile(path, expected, labels)  # checked, then resumed
    back = state_lib.Tally.from_state(labels, [], store.saved["tally"])
    back.start_curve(labels)
    back.resume_curve(store.saved["tally"])
    np.testing.assert_array_equal(back.curve_norms(), [0.5, np.inf])
