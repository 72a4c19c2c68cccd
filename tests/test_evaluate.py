"""advgrad.evaluate: worst case over a suite, per-attack rows, streaming, resumable state."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad._validation import ArgumentError
from advgrad.attacks import get_attack
from advgrad.budget import Budget
from advgrad.evaluation import evaluate
from advgrad.evaluation.cascade import Runner
from advgrad.evaluation.state import STATE_VERSION
from advgrad.report import CLEAN_MISCLASSIFIED, ROBUST

HERE = pathlib.Path(__file__).resolve().parent
FGSM01 = {"name": "fgsm", "bounds": [0.0, 1.0]}  # digits lie in [0, 1]: bounded, no warning
EPS = [0.05, 0.1, 0.3]


# `digits`, `digits_cnn`, `tabular` and `tabular_model` come from conftest.py.


def _suite(bounds, steps=5):
    return [get_attack("fgsm", bounds=bounds), get_attack("pgd", bounds=bounds, steps=steps)]


@pytest.fixture(scope="module")
def report(digits_cnn, digits):
    return evaluate(
        digits_cnn,
        (digits.x_test[:128], digits.y_test[:128]),
        suite=_suite(digits.bounds),
        eps=EPS,
        batch_size=64,
        return_adversarial=True,
    )


# --------------------------------------------------------------- the numbers
def test_clean_accuracy_and_worst_case_below_every_attack(report):
    assert report.n_samples == 128
    assert report.clean_accuracy >= 0.95
    assert report.attacks == ["fgsm", "pgd"]
    for e in EPS:
        cascade = report.robust_accuracy[e]
        assert cascade <= report.per_attack["fgsm"][e]
        assert cascade <= report.per_attack["pgd"][e]
        assert cascade <= report.clean_accuracy
    # the attacks really work on this undefended model
    assert report.robust_accuracy[0.3] <= 0.1
    assert report.robust_accuracy[0.05] > report.robust_accuracy[0.3]


def test_robust_accuracy_does_not_increase_with_eps(report):
    for curve in [report.robust_accuracy, *report.per_attack.values()]:
        values = [curve[e] for e in EPS]
        assert values == sorted(values, reverse=True)


def test_outcomes_are_consistent_with_the_accuracies(report):
    for e in EPS:
        codes = report.outcomes[e]
        assert codes.dtype == np.int8 and codes.shape == (128,)
        assert set(np.unique(codes)) <= {CLEAN_MISCLASSIFIED, ROBUST, 0, 1}
        assert np.mean(codes == ROBUST) == report.robust_accuracy[e]
        assert np.mean(codes != CLEAN_MISCLASSIFIED) == report.clean_accuracy
        # robust in the cascade <=> robust against every attack alone
        alone = [report.attack_outcomes[a][e] for a in report.attacks]
        np.testing.assert_array_equal(codes == ROBUST, np.logical_and.reduce(alone))
        # the first attack that fooled a sample is recorded
        fooled_by_fgsm = ~report.attack_outcomes["fgsm"][e] & (codes != CLEAN_MISCLASSIFIED)
        np.testing.assert_array_equal(codes == 0, fooled_by_fgsm)


def test_counts_timings_and_metadata(report):
    clean_correct = round(report.clean_accuracy * 128)
    assert report.gradients_per_sample == {"fgsm": 1, "pgd": 5}
    assert report.gradients["fgsm"] == clean_correct * len(EPS)
    assert report.gradients["pgd"] == 5 * clean_correct * len(EPS)
    # one forward per gradient evaluation, plus evaluate's own check of each adversarial
    assert report.queries["pgd"] == report.gradients["pgd"] + clean_correct * len(EPS)
    assert all(t > 0 for t in report.timings.values())
    assert set(report.versions) == {"advgrad", "tensorflow", "keras", "numpy", "python"}
    assert report.model["name"] == "digits_cnn" and len(report.model["weights_sha256"]) == 64
    assert [c["name"] for c in report.suite] == ["fgsm", "pgd"]
    assert report.eps == EPS and report.seed == 0 and report.batch_size == 64
    for e in EPS:  # the attack loss goes up
        start, final = report.loss_trend["pgd"][e]
        assert final > start


def test_report_knows_each_samples_class(report, digits):
    """The labels make per-class rows and the CSV's label column possible."""
    assert report.labels == [int(v) for v in digits.y_test[:128]]
    for e in EPS:
        rows = report.per_class(e)
        assert sum(n for _, n in rows.values()) == 128
        robust = sum(r for r, _ in rows.values())
        assert robust == int(np.sum(report.outcomes[e] == ROBUST))
    assert report.to_csv().splitlines()[0].startswith("index,label,")


def test_no_gradient_flags_on_a_normal_model(report):
    codes = {f["code"] for f in report.flags}
    assert not codes & {"zero_gradients", "nan_gradients", "tiny_gradients"}
    assert "non_monotone" not in codes and "noise_stronger" not in codes


def test_adversarial_examples_fool_the_model_within_the_ball(report, digits_cnn, digits):
    for e in EPS:
        adv = report.adversarial[e]
        codes = report.outcomes[e]
        fooled = np.flatnonzero(codes >= 0)
        np.testing.assert_array_equal(np.sort(adv["index"]), fooled)
        np.testing.assert_array_equal(adv["x"], digits.x_test[adv["index"]])
        np.testing.assert_array_equal(adv["attack"], codes[adv["index"]])
        delta = np.abs(adv["x_adv"] - adv["x"]).reshape(len(fooled), -1).max(axis=1)
        assert np.all(delta <= e + 1e-6)
        assert adv["x_adv"].min() >= 0.0 and adv["x_adv"].max() <= 1.0
        predicted = np.argmax(digits_cnn.predict(adv["x_adv"], verbose=0), axis=-1)
        np.testing.assert_array_equal(predicted, adv["predicted"])
        assert np.all(predicted != digits.y_test[adv["index"]])


def test_cascade_only_runs_later_attacks_on_survivors(digits_cnn, digits, report):
    cascade = evaluate(
        digits_cnn,
        (digits.x_test[:128], digits.y_test[:128]),
        suite=_suite(digits.bounds),
        eps=EPS,
        batch_size=64,
        individual=False,
        sanity=False,
    )
    assert cascade.per_attack == {} and cascade.attack_outcomes == {}
    assert cascade.clean_accuracy == report.clean_accuracy
    # fgsm runs on the same samples with the same seeds: identical first column
    survivors = 0
    for e in EPS:
        np.testing.assert_array_equal(cascade.outcomes[e] == 0, report.outcomes[e] == 0)
        # pgd ran on the clean-correct samples fgsm did not fool, and on no other
        survivors += int(np.sum(cascade.outcomes[e] != CLEAN_MISCLASSIFIED)) - int(
            np.sum(cascade.outcomes[e] == 0)
        )
        assert cascade.cumulative()["pgd"][e] == cascade.robust_accuracy[e]
        assert cascade.robust_accuracy[e] <= cascade.cumulative()["fgsm"][e]
    assert 0 < survivors < round(report.clean_accuracy * 128) * len(EPS)
    assert cascade.gradients["pgd"] == cascade.gradients_per_sample["pgd"] * survivors
    assert cascade.gradients["fgsm"] == report.gradients["fgsm"]
    assert cascade.gradients["pgd"] < report.gradients["pgd"]


# ----------------------------------------------------------- inputs and data
def test_tf_data_gives_the_same_result_as_arrays(digits_cnn, digits):
    x, y = digits.x_test[:40], digits.y_test[:40]
    kwargs = dict(suite=_suite(digits.bounds, steps=3), eps=[0.1], batch_size=16, sanity=False)
    from_arrays = evaluate(digits_cnn, (x, y), **kwargs)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)  # re-batched to 16
    from_dataset = evaluate(digits_cnn, dataset, progress=True, **kwargs)
    assert from_dataset.n_samples == 40
    np.testing.assert_array_equal(from_dataset.outcomes[0.1], from_arrays.outcomes[0.1])
    assert from_dataset.per_attack == from_arrays.per_attack
    assert from_dataset.gradients == from_arrays.gradients
    assert from_dataset.data == from_arrays.data


def test_dict_inputs_with_a_frozen_input(tabular, tabular_model):
    # test points may lie slightly outside the training range: clip them into the bounds
    x = {k: np.clip(v, *tabular.bounds[k]) for k, v in tabular.x_test.items()}
    low, high = tabular.bounds["measurements"]
    attack = get_attack(
        "pgd",
        steps=10,
        budget={"measurements": Budget(1.0, bounds=(low, high)), "errors": None},
    )
    report = evaluate(
        tabular_model,
        (x, tabular.y_test),
        suite=[attack],
        eps=[0.0, 0.5, 2.0],
        batch_size=64,
        return_adversarial=True,
        sanity=False,
    )
    assert report.n_samples == len(tabular.y_test)
    assert report.clean_accuracy >= 0.9
    assert report.robust_accuracy[0.0] == report.clean_accuracy
    assert report.robust_accuracy[2.0] < report.robust_accuracy[0.5] < report.clean_accuracy
    for e in (0.5, 2.0):
        adv = report.adversarial[e]
        np.testing.assert_array_equal(adv["x_adv"]["errors"], adv["x"]["errors"])  # frozen
        moved = np.abs(adv["x_adv"]["measurements"] - adv["x"]["measurements"])
        assert moved.max() <= e + 1e-5 and moved.max() > 0
        assert np.all(adv["x_adv"]["measurements"] >= low - 1e-6)
    # configs are plain data (YAML/JSON-ready)
    json.dumps(report.suite)


def test_importing_the_package_keeps_evaluate_the_function(tmp_path):
    """`import advgrad.evaluation` (the package) leaves `advgrad.evaluate` the function."""
    script = (
        "import advgrad.evaluation\n"
        "import advgrad\n"
        "from advgrad import data, zoo\n"
        "ds = data.digits()\n"
        "r = advgrad.evaluate(zoo.load('digits-cnn'), (ds.x_test[:8], ds.y_test[:8]),\n"
        "                     suite=['fgsm'], eps=0.0, sanity=False)\n"
        "assert advgrad.evaluate is advgrad.evaluation.evaluate\n"
        "print('n_samples', r.n_samples, r.robust_accuracy[0.0] == r.clean_accuracy)\n"
    )
    paths = [str(HERE.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "n_samples 8 True" in done.stdout


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"eps": -0.1}, "eps"),
        ({"eps": [0.1, float("nan")]}, "eps"),
        ({"eps": [0.1, float("inf")]}, "eps"),
        ({"eps": []}, "eps"),
        ({"suite": []}, "suite"),
        ({"suite": ["no-such-attack"]}, "suite"),
        ({"suite": [3]}, "suite"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),  # crashed in the sanity checks, after all the work
        ({"seed": True}, "seed"),
        ({"individual": "yes"}, "individual"),
        ({"state": 3}, "state"),
    ],
)
def test_invalid_arguments_are_named(digits_cnn, digits, kwargs, argument):
    arguments = {"suite": ["fgsm"], "eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        evaluate(digits_cnn, (digits.x_test[:8], digits.y_test[:8]), **arguments)


def test_invalid_data_is_named(digits_cnn, digits):
    with pytest.raises(ValueError, match="argument `data`"):
        evaluate(digits_cnn, (digits.x_test[:8], digits.y_test[:7]), suite=[FGSM01], eps=0.1)
    with pytest.raises(ValueError, match="argument `data`"):
        evaluate(digits_cnn, digits.x_test[:8], suite=[FGSM01], eps=0.1)
    unbatched = tf.data.Dataset.from_tensor_slices((digits.x_test[:8], digits.y_test[:8]))
    with pytest.raises(ValueError, match="argument `data`"):
        evaluate(digits_cnn, unbatched, suite=[FGSM01], eps=0.1, sanity=False)


def test_seed_range_is_named_up_front(digits_cnn, digits):
    with pytest.raises(ArgumentError, match=r"expected an int in \[0, 2\*\*63\), received seed="):
        evaluate(
            digits_cnn, (digits.x_test[:8], digits.y_test[:8]), suite=[FGSM01], eps=0.1, seed=2**63
        )
    # the largest seed works end to end, sanity checks included
    report = evaluate(
        digits_cnn,
        (digits.x_test[:8], digits.y_test[:8]),
        suite=[FGSM01],
        eps=0.1,
        seed=2**63 - 1,
    )
    assert report.seed == 2**63 - 1 and report.n_samples == 8


# ------------------------------------- data checked as the attacks check it, before work
@pytest.fixture
def batches_run(monkeypatch):
    """The batch indices `Runner.run_batch` was called with (the batches attacked)."""
    calls = []
    original = Runner.run_batch

    def spy(self, tally, batch, *args, **kwargs):
        calls.append(batch)
        return original(self, tally, batch, *args, **kwargs)

    monkeypatch.setattr(Runner, "run_batch", spy)
    return calls


def _refused_data(run, match):
    with pytest.raises(ArgumentError, match=match) as info:
        run()
    assert info.value.argument == "data"
    return info.value


def _ds(x, y, batch):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


@pytest.mark.parametrize("bad", [10, -1, 99])
def test_labels_out_of_range_are_refused_before_work(digits_cnn, digits, batches_run, bad):
    x, y = digits.x_test[:24], digits.y_test[:24].copy()
    y[13] = bad
    low, high = min(bad, int(y.min())), max(bad, int(y.max()))
    match = rf"expected class ids in \[0, 10\), received values from {low} to {high}"
    _refused_data(
        lambda: evaluate(digits_cnn, (x, y), suite=[FGSM01], eps=0.1, batch_size=8), match
    )
    assert batches_run == []
    # streamed: checked per batch as it arrives, before it is attacked
    err = _refused_data(
        lambda: evaluate(digits_cnn, _ds(x, y, 5), suite=[FGSM01], eps=0.1, batch_size=8),
        match.replace(f"from {low} to {high}", "from"),
    )
    assert "sample 13" in str(err)
    assert batches_run == [0]


def test_labels_must_be_integer_ids_or_one_hot_rows_of_the_model(digits_cnn, digits, batches_run):
    x, y = digits.x_test[:16], digits.y_test[:16]

    def run(labels):
        return lambda: evaluate(digits_cnn, (x, labels), suite=[FGSM01], eps=0.1, sanity=False)

    _refused_data(run(y + 0.5), "expected integer class ids")
    _refused_data(run(np.eye(9)[y % 9]), r"one-hot labels of shape \(16, 10\)")
    _refused_data(run(np.zeros((16, 0))), r"one-hot labels of shape \(16, 10\)")
    _refused_data(run(np.zeros((16, 2, 5))), "class ids")
    assert batches_run == []
    # what the cascade reads as class ids is accepted: ids, float ids, [n, 1], one-hot rows
    # (these for an attack whose loss takes them)
    ids = evaluate(digits_cnn, (x, y), suite=[FGSM01], eps=0.1, sanity=False)
    for labels in (y.astype(np.float32), y[:, None]):
        other = run(labels)()
        np.testing.assert_array_equal(other.outcomes[0.1], ids.outcomes[0.1])
    categorical = get_attack(
        "fgsm", loss=keras.losses.CategoricalCrossentropy(from_logits=True), bounds=(0.0, 1.0)
    )
    other = evaluate(digits_cnn, (x, np.eye(10)[y]), suite=[categorical], eps=0.1, sanity=False)
    np.testing.assert_array_equal(other.outcomes[0.1], ids.outcomes[0.1])


@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite_inputs_are_refused_before_work(digits_cnn, digits, batches_run, value, word):
    x, y = digits.x_test[:24].copy(), digits.y_test[:24]
    x[19, 2, 3, 0] = value  # batch 2 of 3: the attacks would refuse it there, after batches 0, 1
    match = rf"expected finite values \(no {word}\), received x=ndarray\(shape=\(24, 8, 8, 1\)"
    err = _refused_data(
        lambda: evaluate(digits_cnn, (x, y), suite=[FGSM01], eps=0.1, batch_size=8), match
    )
    assert "sample 19" in str(err)
    assert batches_run == []
    err = _refused_data(
        lambda: evaluate(digits_cnn, _ds(x, y, 3), suite=[FGSM01], eps=0.1, batch_size=8),
        rf"expected finite values \(no {word}\), received x=ndarray\(shape=\(8, 8, 8, 1\)",
    )
    assert "sample 19" in str(err)
    assert batches_run == [0, 1]


def test_non_finite_dict_input_is_named(tabular, tabular_model, batches_run):
    x = {k: np.array(v[:32]) for k, v in tabular.x_test.items()}
    x["errors"][5, 0] = np.nan  # a frozen input: no attack would ever look at it
    _refused_data(
        lambda: evaluate(tabular_model, (x, tabular.y_test[:32]), suite=["fgsm"], eps=0.1),
        r"expected finite values \(no NaN\), received x\['errors'\]=",
    )
    assert batches_run == []


def test_empty_or_ragged_batches_are_named(digits_cnn, digits, batches_run):
    x, y = digits.x_test[:16], digits.y_test[:16]
    kwargs = dict(suite=[FGSM01], eps=0.1, sanity=False)
    _refused_data(lambda: evaluate(digits_cnn, (x[:0], y[:0]), **kwargs), "at least one")
    empty = tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(4)
    _refused_data(lambda: evaluate(digits_cnn, empty, **kwargs), "at least one sample")

    def gen():
        yield x[:8], y[:8]
        yield x[:0], y[:0]
        yield x[8:], y[8:]

    spec = (tf.TensorSpec((None, 8, 8, 1), tf.float32), tf.TensorSpec((None,), y.dtype))
    with_empty = tf.data.Dataset.from_generator(gen, output_signature=spec)
    _refused_data(lambda: evaluate(digits_cnn, with_empty, **kwargs), "empty batch")
    ragged = tf.data.Dataset.from_tensors((x, y[:4]))  # 16 inputs, 4 labels
    _refused_data(lambda: evaluate(digits_cnn, ragged, **kwargs), "16 inputs and 4 labels")
    assert batches_run == []


# ------------------------------------------------------------------- state
def _state_run(cnn, digits, state, **changes):
    kwargs = dict(
        suite=_suite(digits.bounds, steps=3),
        eps=[0.1, 0.3],
        batch_size=8,
        seed=3,
        state=state,
        sanity=False,
    )
    kwargs.update(changes)
    return evaluate(cnn, (digits.x_test[:24], digits.y_test[:24]), **kwargs)


def test_complete_state_is_reused_and_mismatches_are_refused(digits_cnn, digits, tmp_path):
    state = tmp_path / "runs" / "digits.json"
    first = _state_run(digits_cnn, digits, state)
    saved = json.loads(state.read_text())
    assert saved["complete"] and saved["batches_done"] == 3
    before = state.read_bytes()
    again = _state_run(digits_cnn, digits, state)  # nothing left to do: read back, not re-run
    assert again.outcomes.keys() == first.outcomes.keys()
    for e in first.eps:
        np.testing.assert_array_equal(again.outcomes[e], first.outcomes[e])
    assert again.timings == first.timings and again.gradients == first.gradients
    assert state.read_bytes() == before

    other_model = keras.models.clone_model(digits_cnn)
    other_model.set_weights([w * 1.01 for w in digits_cnn.get_weights()])
    changes = [
        ({"suite": _suite(digits.bounds, steps=4)}, "suite"),
        ({"eps": [0.1, 0.2]}, "eps"),
        ({"seed": 4}, "seed"),
        ({"batch_size": 12}, "batch_size"),
        ({"individual": False}, "individual"),
    ]
    for change, what in changes:
        with pytest.raises(ValueError, match=f"argument `state`.*differs in: {what}"):
            _state_run(digits_cnn, digits, state, **change)
        assert state.read_bytes() == before
    with pytest.raises(ValueError, match="argument `state`.*written for a different.*: model"):
        _state_run(other_model, digits, state)
    with pytest.raises(ValueError, match="argument `state`.*differs in: data"):
        evaluate(
            digits_cnn,
            (digits.x_test[1:25], digits.y_test[1:25]),
            suite=_suite(digits.bounds, steps=3),
            eps=[0.1, 0.3],
            batch_size=8,
            seed=3,
            state=state,
            sanity=False,
        )
    with pytest.raises(ValueError, match="argument `state`.*differs in: data"):
        evaluate(
            digits_cnn,
            (digits.x_test[:32], digits.y_test[:32]),
            suite=_suite(digits.bounds, steps=3),
            eps=[0.1, 0.3],
            batch_size=8,
            seed=3,
            state=state,
            sanity=False,
        )
    assert state.read_bytes() == before
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="argument `state`"):
        _state_run(digits_cnn, digits, tmp_path / "broken.json")
    future = json.loads(before)
    future["version"] = 99
    (tmp_path / "future.json").write_text(json.dumps(future))
    with pytest.raises(
        ValueError, match=f"state version 99; .* reads version {STATE_VERSION} only"
    ):
        _state_run(digits_cnn, digits, tmp_path / "future.json")


def _wait(predicate, process, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"helper exited early: {process.communicate()}")
        time.sleep(0.005)
    raise AssertionError("timed out waiting for the helper")


def _batches_done(state):
    try:
        return json.loads(state.read_text())["batches_done"]
    except (OSError, ValueError, KeyError):
        return 0


def test_killed_run_resumes_to_exactly_the_uninterrupted_result(digits_cnn, tmp_path):
    """SIGKILL a run (in a subprocess) after 1, then 3 finished batches; resume; compare."""
    sys.path.insert(0, str(HERE))
    try:
        import _evaluate_run as helper
    finally:
        sys.path.remove(str(HERE))
    n_batches = -(-helper.SAMPLES // helper.BATCH_SIZE)
    state, out = tmp_path / "state.json", tmp_path / "report.json"
    helper.save_arrays(str(tmp_path / "data.npz"))
    paths = [str(HERE.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}

    def start(gate):
        script = str(HERE / "_evaluate_run.py")
        arguments = [str(tmp_path / "data.npz"), str(state), str(out), str(gate)]
        return subprocess.Popen([sys.executable, script, *arguments], env=env)

    # Both helpers import TensorFlow now; each starts evaluating once its gate file exists
    # and may then read the data of batches 0..gate. Each is killed once the state shows
    # `kill_after` finished batches (it is then busy with, or waiting for, the next one).
    kill_points = (1, 3)
    gates = [tmp_path / f"gate{k}" for k in kill_points]
    processes = [start(gate) for gate in gates]
    x, y, bounds = helper.arrays()
    kwargs = dict(
        suite=helper.suite(bounds),
        eps=helper.EPS,
        batch_size=helper.BATCH_SIZE,
        seed=helper.SEED,
        sanity=False,
    )
    try:
        reference = evaluate(digits_cnn, (x, y), **kwargs)  # uninterrupted, in this process
        history = []
        for process, gate, kill_after in zip(processes, gates, kill_points, strict=True):
            gate.write_text(str(kill_after))
            _wait(lambda k=kill_after: _batches_done(state) >= k, process)
            process.send_signal(signal.SIGKILL)
            process.wait()
            saved = json.loads(state.read_text())  # always a whole file: written atomically
            assert not saved["complete"] and kill_after <= saved["batches_done"] < n_batches
            history.append(saved["batches_done"])
            assert not out.exists()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
    assert history[0] < history[1]

    resumed = evaluate(digits_cnn, (x, y), state=state, **kwargs)  # arrays: the same batches
    assert json.loads(state.read_text())["complete"]
    assert resumed.n_samples == reference.n_samples == helper.SAMPLES
    assert resumed.attacks == reference.attacks == ["pgd", "pgd#2"]
    for e in reference.eps:
        np.testing.assert_array_equal(resumed.outcomes[e], reference.outcomes[e])
        for label in reference.attacks:
            np.testing.assert_array_equal(
                resumed.attack_outcomes[label][e], reference.attack_outcomes[label][e]
            )
    assert resumed.robust_accuracy == reference.robust_accuracy
    assert resumed.per_attack == reference.per_attack
    assert resumed.gradients == reference.gradients  # no batch counted twice
    assert resumed.queries == reference.queries
    assert resumed.loss_trend == reference.loss_trend
    assert resumed.data == reference.data


class _Cheat(advgrad.attacks.Attack):
    """Returns NaN for half the samples and a far-away input for the rest: never adversarial
    under its own threat model, yet the model predicts some class for each."""

    name = "cheat"

    def execute(self, plan, *, judge=True):
        (x,) = [t.numpy() for t in plan.inputs.tensors.values()]
        bad = np.where(np.arange(len(x))[:, None, None, None] % 2 == 0, np.nan, x + 10.0)
        bad = bad.astype(x.dtype)
        n = len(x)
        return advgrad.attacks.AttackResult(
            x_adv=bad,
            fooled=np.ones(n, bool),
            gradients=0,
            queries=np.zeros(n, np.int64),
        )


def test_inputs_outside_the_threat_model_are_never_counted_and_flagged(digits, digits_cnn):
    """A NaN input is predicted as some class; it was counted as fooled (issue 11, item 1)."""
    x, y = digits.x_test[:16], digits.y_test[:16]
    with pytest.warns(UserWarning, match="outside its threat model"):
        report = evaluate(
            digits_cnn,
            (x, y),
            suite=[_Cheat(eps=0.1, bounds=digits.bounds)],
            eps=0.1,
            sanity=False,
        )
    assert report.robust_accuracy[0.1] == report.clean_accuracy
    (flag,) = [f for f in report.flags if f["code"] == "outside_threat_model"]
    assert "cheat: " in flag["message"] and "not counted" in flag["message"]


# ------------------------------------------------------------------- targets
def _targeted_run(cnn, digits, targets=None, n=32, **changes):
    kwargs = dict(
        suite=[
            get_attack("pgd", bounds=digits.bounds, targeted=True, steps=5),
            get_attack("fgsm", bounds=digits.bounds),
        ],
        eps=[0.3],
        batch_size=16,
        seed=5,
        sanity=False,
        targets=targets,
        return_adversarial="state" not in changes,  # a resume keeps no earlier examples
    )
    kwargs.update(changes)
    return evaluate(cnn, (digits.x_test[:n], digits.y_test[:n]), **kwargs)


def _targeted_hits(report):
    """(sample index, predicted class) of the samples the targeted PGD (attack 0) fooled."""
    adv = report.adversarial[0.3]
    first = adv["attack"] == 0
    return adv["index"][first], adv["predicted"][first], adv["label"][first]


def _clean_scores(cnn, digits, n=32):
    return np.array(cnn(digits.x_test[:n]))


def test_default_targets_are_the_most_likely_wrong_class(digits_cnn, digits):
    default = _targeted_run(digits_cnn, digits)
    named = _targeted_run(digits_cnn, digits, "most-likely-wrong")
    np.testing.assert_array_equal(default.outcomes[0.3], named.outcomes[0.3])
    assert "targets" not in default.suite[0] and "targets" not in named.suite[0]
    scores = _clean_scores(digits_cnn, digits)
    index, predicted, label = _targeted_hits(default)
    assert len(index) > 0
    scores[np.arange(len(scores)), digits.y_test[:32]] = -np.inf
    hit = predicted == np.argmax(scores, axis=1)[index]
    assert np.mean(hit) >= 0.8  # a targeted attack lands (almost always) on its target


def test_least_likely_and_fixed_and_array_targets_are_used(digits_cnn, digits):
    scores = _clean_scores(digits_cnn, digits)
    least = _targeted_run(digits_cnn, digits, "least-likely")
    assert least.suite[0]["targets"] == "least-likely" and "targets" not in least.suite[1]
    index, predicted, _ = _targeted_hits(least)
    assert len(index) > 0
    assert np.mean(predicted == np.argmin(scores, axis=1)[index]) >= 0.8

    fixed = _targeted_run(digits_cnn, digits, 3, sanity=True)
    assert fixed.suite[0]["targets"] == 3
    assert advgrad.Report.from_json(fixed.to_json()).suite[0]["targets"] == 3  # accepted
    index, predicted, label = _targeted_hits(fixed)
    assert len(index) > 0 and np.mean(predicted == 3) >= 0.8
    # samples of class 3 cannot be fooled into class 3: skipped, robust against the PGD
    own = digits.y_test[:32] == 3
    assert np.any(own)
    assert not np.any(np.isin(index, np.flatnonzero(own)))
    assert np.all(
        fixed.attack_outcomes["pgd"][0.3][own] == (fixed.outcomes[0.3][own] != CLEAN_MISCLASSIFIED)
    )

    wanted = (digits.y_test[:32] + 1) % 10
    array = _targeted_run(digits_cnn, digits, wanted)
    assert array.suite[0]["targets"].startswith("array sha256:")
    index, predicted, _ = _targeted_hits(array)
    assert len(index) > 0 and np.mean(predicted == wanted[index]) >= 0.8


def test_the_report_gives_the_targeted_success_rate(digits_cnn, digits, tmp_path):
    fixed = _targeted_run(digits_cnn, digits, 3)
    assert set(fixed.targeted_success) == {"pgd"}  # the untargeted FGSM has none
    reached, attacked = fixed.targeted_success["pgd"][0.3]
    # counted by hand: the PGD runs on the clean-correct samples whose label is not 3
    truth = digits.y_test[:32]
    correct = np.argmax(_clean_scores(digits_cnn, digits), axis=1) == truth
    assert attacked == int(np.sum(correct & (truth != 3)))
    adv = fixed.adversarial[0.3]
    first = adv["attack"] == 0
    assert reached >= int(np.sum(adv["predicted"][first] == 3)) and reached <= attacked
    assert fixed.targeted_rate("pgd", 0.3) == reached / attacked
    assert fixed.targeted_rate("fgsm", 0.3) is None
    text = fixed.to_markdown()
    assert f"- pgd: eps=0.3 {100 * reached / attacked:.1f}% ({reached}/{attacked})" in text
    back = advgrad.Report.from_json(fixed.to_json())
    assert back.targeted_success == {"pgd": {0.3: [reached, attacked]}}
    bad = json.loads(fixed.to_json())
    bad["targeted_success"]["pgd"]["0.3"] = [attacked + 1, attacked]
    with pytest.raises(ValueError, match="targeted_success"):
        advgrad.Report.from_dict(bad)

    # resumed: the same counts; a state written before the count existed: not reported
    state = tmp_path / "targeted.json"
    _targeted_run(digits_cnn, digits, 3, n=16, state=state)
    saved = json.loads(state.read_text())
    saved["complete"] = False
    state.write_text(json.dumps(saved))
    resumed = _targeted_run(digits_cnn, digits, 3, state=state)
    assert resumed.targeted_success == fixed.targeted_success
    del saved["tally"]["targeted"]
    state.write_text(json.dumps(saved))
    old = _targeted_run(digits_cnn, digits, 3, state=state)
    assert old.targeted_success == {}
    np.testing.assert_array_equal(old.outcomes[0.3], fixed.outcomes[0.3])


def test_random_targets_are_seeded_wrong_classes_and_survive_a_resume(digits_cnn, digits, tmp_path):
    first = _targeted_run(digits_cnn, digits, "random")
    again = _targeted_run(digits_cnn, digits, "random")
    np.testing.assert_array_equal(first.outcomes[0.3], again.outcomes[0.3])
    np.testing.assert_array_equal(_targeted_hits(first)[1], _targeted_hits(again)[1])
    index, predicted, label = _targeted_hits(first)
    assert len(index) > 0 and np.all(predicted != label)
    other = _targeted_run(digits_cnn, digits, "random", seed=6)
    assert first.suite[0]["targets"] == "random"
    # the targets depend on the seed: not every fooled sample lands on the same class
    assert not np.array_equal(_targeted_hits(first)[1], _targeted_hits(other)[1])

    # a run stopped after its first batch resumes to exactly the uninterrupted result
    state = tmp_path / "random.json"
    _targeted_run(digits_cnn, digits, "random", n=16, state=state)
    saved = json.loads(state.read_text())
    assert saved["fingerprint"]["targets"] == "random"
    with pytest.raises(ValueError, match="argument `state`.*differs in: data"):
        _targeted_run(digits_cnn, digits, "random", state=state)  # complete: more data refused
    saved["complete"] = False
    state.write_text(json.dumps(saved))
    resumed = _targeted_run(digits_cnn, digits, "random", state=state)
    np.testing.assert_array_equal(resumed.outcomes[0.3], first.outcomes[0.3])
    for targets in (None, "least-likely", 3):
        with pytest.raises(ValueError, match="argument `state`.*differs in: targets"):
            _targeted_run(digits_cnn, digits, targets, state=state)


def test_a_state_without_targets_resumes_with_the_default_rule(digits_cnn, digits, tmp_path):
    state = tmp_path / "old.json"
    first = _targeted_run(digits_cnn, digits, state=state)
    saved = json.loads(state.read_text())
    assert "targets" not in saved["fingerprint"]  # as written before `targets` existed
    again = _targeted_run(digits_cnn, digits, "most-likely-wrong", state=state)
    np.testing.assert_array_equal(again.outcomes[0.3], first.outcomes[0.3])
    with pytest.raises(ValueError, match="argument `state`.*differs in: targets"):
        _targeted_run(digits_cnn, digits, "random", state=state)


@pytest.mark.parametrize(
    "targets, match",
    [
        ("most-likely", "targets"),
        (-1, "targets"),
        (10, r"targets.*\[0, 10\)"),
        (True, "targets"),
        (1.5, "targets"),
        (np.zeros(31, int), "targets.*32 class ids"),
        (np.full(32, 10), r"targets.*targets\[0\] is 10"),
        (np.zeros(32), "targets.*integer"),
    ],
)
def test_invalid_targets_are_named_before_work(digits_cnn, digits, batches_run, targets, match):
    with pytest.raises(ArgumentError, match=match) as info:
        _targeted_run(digits_cnn, digits, targets)
    assert info.value.argument == "targets"
    assert batches_run == []


def test_target_arrays_are_refused_for_a_dataset(digits_cnn, digits, batches_run):
    ds = _ds(digits.x_test[:32], digits.y_test[:32], 16)
    for targets, match in [(np.zeros(32, int), "tf.data.Dataset"), (10, r"\[0, 10\)")]:
        with pytest.raises(ArgumentError, match=match) as info:
            evaluate(digits_cnn, ds, suite=[FGSM01], eps=0.1, sanity=False, targets=targets)
        assert info.value.argument == "targets"
    assert batches_run == []


def test_unbounded_attack_on_unit_data_warns_once_and_flags(digits_cnn, digits):
    data = (digits.x_test[:16], digits.y_test[:16])
    assert digits.x_test.min() >= 0 and digits.x_test.max() <= 1
    with pytest.warns(UserWarning, match=r"attack 'fgsm' is unbounded.*bounds=\(0, 1\)") as seen:
        report = evaluate(digits_cnn, data, suite=["fgsm"], eps=[0.1], batch_size=8, sanity=False)
    assert sum("unbounded" in str(w.message) for w in seen) == 1
    (flag,) = [f for f in report.flags if f["code"] == "unbounded_attack_on_bounded_data"]
    assert "data lies in [0, 1]" in flag["message"] and flag["advice"]
    ds = _ds(*data, 8)
    with pytest.warns(UserWarning, match="unbounded") as seen:
        report = evaluate(digits_cnn, ds, suite=["fgsm"], eps=[0.1], batch_size=8, sanity=False)
    assert sum("unbounded" in str(w.message) for w in seen) == 1
    assert any(f["code"] == "unbounded_attack_on_bounded_data" for f in report.flags)


def test_bounded_attack_on_unit_data_does_not_warn(digits_cnn, digits, recwarn):
    fgsm = get_attack("fgsm", bounds=(0, 1))
    data = (digits.x_test[:16], digits.y_test[:16])
    report = evaluate(digits_cnn, data, suite=[fgsm], eps=[0.1], sanity=False)
    assert not [w for w in recwarn if "unbounded" in str(w.message)]
    assert all(f["code"] != "unbounded_attack_on_bounded_data" for f in report.flags)


def test_warnings_raised_during_a_run_become_report_flags(digits, digits_cnn, recwarn):
    """A softmax model whose loss says from_logits=True: warned (once) and flagged."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(digits.x_test.shape[1:]),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = (digits.x_test[:16], digits.y_test[:16])
    report = evaluate(model, data, suite=[FGSM01], eps=[0.1], batch_size=8, sanity=False)
    ours = [w for w in recwarn if str(w.message).startswith("The model ends in softmax")]
    assert len(ours) == 1 and ours[0].filename == __file__  # once, from the caller's line
    flags = [f for f in report.flags if f["code"] == "run_warning"]
    messages = [f["message"] for f in flags]  # ours, and Keras' own from its loss
    assert len(set(messages)) == len(messages) == len({str(w.message) for w in recwarn})
    (flag,) = [f for f in flags if f["message"].startswith("UserWarning: The model ends in")]
    assert "from_logits=True" in flag["message"] and flag["advice"]
    assert advgrad.Report.from_json(report.to_json()).flags == report.flags
    assert "**run_warning**: UserWarning: The model ends in softmax" in report.to_markdown()

    # a warning with a flag of its own is not flagged twice; the caller's filters still apply
    with pytest.warns(UserWarning, match="unbounded"):
        unbounded = evaluate(digits_cnn, data, suite=["fgsm"], eps=[0.1], sanity=False)
    codes = [f["code"] for f in unbounded.flags]
    assert codes.count("unbounded_attack_on_bounded_data") == 1 and "run_warning" not in codes
    with pytest.raises(UserWarning, match="unbounded"), warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(digits_cnn, data, suite=["fgsm"], eps=[0.1], sanity=False)


# ------------------------------------------------------------ the whole curve
@pytest.fixture(scope="module")
def curve_report(digits_cnn, digits):
    suite = [
        get_attack("pgd", norm="l2", bounds=digits.bounds, steps=5),
        get_attack("fmn", norm="l2", bounds=digits.bounds, steps=20),
    ]
    data = (digits.x_test[:64], digits.y_test[:64])
    return evaluate(digits_cnn, data, suite=suite, eps=[0.4, 0.6, "curve"], batch_size=32)


def test_curve_agrees_with_the_fixed_eps_run_of_its_attack(curve_report, digits_cnn, digits):
    """FMN is deterministic and eps only filters its result, so its fixed-eps row is the
    curve read at that eps, exactly; the cascade (with PGD) is at most the curve."""
    report = curve_report
    curve = report.curve
    assert curve["norm"] == "l2" and curve["attacks"] == ["fmn"]
    norms = np.asarray(curve["norms"])
    assert norms.shape == (64,) and np.all(norms >= 0)
    assert report.curve_accuracy() == report.per_attack["fmn"]
    for e in report.eps:
        assert report.robust_accuracy[e] <= report.curve_accuracy(e)
    # Clean-misclassified samples: norm 0; the curve starts at the clean accuracy.
    wrong = np.asarray(report.outcomes[0.4]) == CLEAN_MISCLASSIFIED
    assert np.all(norms[wrong] == 0) and np.all(norms[~wrong] > 0)
    assert report.curve_accuracy(0.0) == report.clean_accuracy
    assert curve["gradients"]["fmn"] == 20 * int(np.sum(~wrong))
    assert "Robustness curve (L2, minimal norms from fmn)" in report.to_markdown()


def test_curve_alone_gets_fmn_when_the_suite_has_no_minimal_norm_attack(digits_cnn, digits):
    data = (digits.x_test[:16], digits.y_test[:16])
    suite = [get_attack("pgd", norm="linf", bounds=digits.bounds)]
    report = evaluate(digits_cnn, data, suite=suite, eps="curve", sanity=False)
    assert report.eps == [] and report.robust_accuracy == {}
    assert report.curve["attacks"] == ["fmn"] and report.curve["norm"] == "linf"
    norms = np.asarray(report.curve["norms"])
    assert np.all(np.isfinite(norms)) and 0.02 < np.median(norms) < 0.3
    assert "eps swept: curve" in report.to_markdown()


@pytest.mark.parametrize("eps", ["curves", [0.1, "x"]])
def test_curve_bad_eps(eps, digits_cnn, digits):
    data = (digits.x_test[:4], digits.y_test[:4])
    with pytest.raises(ArgumentError, match="`eps`"):
        evaluate(digits_cnn, data, suite=[FGSM01], eps=eps)


def test_curve_resumes_from_its_state(digits_cnn, digits, tmp_path):
    """A curve run killed after its first batch resumes to the uninterrupted result; a
    state without the curve is not resumed by a curve run (nor the other way round)."""
    data = (digits.x_test[:48], digits.y_test[:48])
    suite = [get_attack("deepfool", norm="l2", bounds=digits.bounds)]
    settings = {"suite": suite, "eps": [0.5, "curve"], "batch_size": 16, "sanity": False}
    whole = evaluate(digits_cnn, data, **settings)
    path = tmp_path / "curve.json"
    evaluate(digits_cnn, (data[0][:16], data[1][:16]), state=path, **settings)
    saved = json.loads(path.read_text())
    assert saved["batches_done"] == 1 and len(saved["tally"]["curve"]["norms"]) == 16
    path.write_text(json.dumps({**saved, "complete": False}))  # as if killed after batch 1
    resumed = evaluate(digits_cnn, data, state=path, **settings)
    assert resumed.curve["norms"] == whole.curve["norms"]
    assert resumed.curve["gradients"] == whole.curve["gradients"]
    assert resumed.robust_accuracy == whole.robust_accuracy
    with pytest.raises(ArgumentError, match="curve"):
        evaluate(digits_cnn, data, state=path, **{**settings, "eps": [0.5]})
    saved["tally"]["curve"]["norms"][0] = -1.0
    path.write_text(json.dumps(saved))
    with pytest.raises(ArgumentError, match="tally.curve.norms"):
        evaluate(digits_cnn, data, state=path, **settings)
