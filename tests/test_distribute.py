"""tf.distribute: attacks and evaluate split over replicas give the results of one device.

The replicas are 2 logical CPU devices (tests/conftest.py splits the CPU before TensorFlow
starts); the multi-worker tests start worker processes on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import advgrad
from advgrad._compile import trace_count
from advgrad._validation import ArgumentError
from advgrad.replicas import Replicas

pytestmark = pytest.mark.skipif(
    len(tf.config.list_logical_devices("CPU")) < 2, reason="needs 2 logical CPU devices"
)


@pytest.fixture(scope="module")
def strategy(mirrored):
    return mirrored


@pytest.fixture(scope="module")
def batch(digits):
    return digits.x_test[:24], digits.y_test[:24]


def _same_result(a, b, trace=True):
    np.testing.assert_array_equal(a.fooled, b.fooled)
    np.testing.assert_array_equal(a.queries, b.queries)
    for x, y in zip(tf.nest.flatten(a.x_adv), tf.nest.flatten(b.x_adv), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    if trace and a.loss_trace is not None:
        np.testing.assert_allclose(a.loss_trace, b.loss_trace, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------- replicas
def test_replicas_gather_every_row_once_in_order(strategy):
    replicas = Replicas.of(strategy)
    assert replicas.count == 2 and Replicas.of(strategy) is replicas

    def positions(x, scale, rows):  # each row's place in the whole batch, from `rows`
        n = tf.shape(x)[0]
        return tf.range(n) + rows[0], tf.fill([n], rows[1]), x * scale

    before = trace_count("replicas")
    for size in (7, 1, 2, 8):
        x = tf.range(size, dtype=tf.float32)
        place, total, doubled = replicas.run(positions, [x], [tf.constant(2.0)])
        assert place.numpy().tolist() == list(range(size))
        assert total.numpy().tolist() == [size] * size
        assert doubled.numpy().tolist() == [2.0 * i for i in range(size)]
    assert trace_count("replicas") - before == 1  # one trace for every batch size


def test_bad_strategy_is_named(digits_cnn, batch):
    x, y = batch
    with pytest.raises(ArgumentError) as error:
        advgrad.attacks.PGD(eps=0.1).run(digits_cnn, x, y, strategy="mirrored")
    assert error.value.argument == "strategy"
    with pytest.raises(ArgumentError) as error:
        advgrad.evaluate(digits_cnn, batch, suite=["fgsm"], eps=0.1, strategy=2)
    assert error.value.argument == "strategy"


# -------------------------------------------------------------------------------- attacks
@pytest.mark.parametrize("batch_size", [None, 7, 1])
def test_pgd_random_start_same_x_adv(strategy, digits, digits_cnn, batch, batch_size):
    x, y = batch
    attack = advgrad.attacks.PGD(
        eps=0.1, steps=4, restarts=2, bounds=digits.bounds, seed=5, batch_size=batch_size
    )
    _same_result(attack.run(digits_cnn, x, y, strategy=strategy), attack.run(digits_cnn, x, y))


@pytest.mark.slow
def test_apgd_targeted_restarts_same_result(strategy, digits, digits_cnn, batch):
    x, y = batch
    attack = advgrad.attacks.APGDTargeted(
        eps=0.05, steps=4, n_target_classes=3, bounds=digits.bounds, seed=2, batch_size=9
    )
    split, alone = attack.run(digits_cnn, x, y, strategy=strategy), attack.run(digits_cnn, x, y)
    # Its loss trace is the last run's, on each replica's samples still robust: not the
    # whole chunk's mean (documented); the samples' outcomes are the same.
    _same_result(split, alone, trace=False)


def test_dict_inputs_same_result(strategy, tabular, tabular_model):
    x = {k: v[:9] for k, v in tabular.x_test.items()}
    y = tabular.y_test[:9]
    attack = advgrad.attacks.PGD(eps=0.3, steps=3, random_start=True, seed=1)
    _same_result(
        attack.run(tabular_model, x, y, strategy=strategy), attack.run(tabular_model, x, y)
    )


def _contract_attacks() -> list[str]:
    from test_attack_contract import ATTACKS

    return list(ATTACKS)


@pytest.mark.slow  # a distributed trace per attack
@pytest.mark.parametrize("name", _contract_attacks())
def test_every_attack_accepts_a_strategy(strategy, digits, digits_cnn, name):
    from test_attack_contract import make_attack

    x, y = digits.x_test[:5], digits.y_test[:5]
    eps = 1.0 if name in ("cw-l2", "deepfool") else 0.1
    extra = {"queries": 10} if name == "square" else {}
    attack = make_attack(name, eps=eps, bounds=digits.bounds, steps=2, **extra)
    alone = attack.run(digits_cnn, x, y)
    split = attack.run(digits_cnn, x, y, strategy=strategy)
    np.testing.assert_array_equal(split.fooled, alone.fooled)
    for a, b in zip(tf.nest.flatten(split.x_adv), tf.nest.flatten(alone.x_adv), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------------------- evaluate
@pytest.mark.parametrize("batch_size", [7, 24])
def test_evaluate_same_report(strategy, digits, digits_cnn, batch, batch_size, tmp_path):
    suite = [
        advgrad.attacks.PGD(steps=4, restarts=2, random_start=True, bounds=digits.bounds),
        advgrad.attacks.APGD(steps=4, bounds=digits.bounds),
    ]
    options = dict(suite=suite, eps=[0.05, 0.1], batch_size=batch_size, seed=3, sanity=False)
    alone = advgrad.evaluate(digits_cnn, batch, state=tmp_path / "a.json", **options)
    split = advgrad.evaluate(
        digits_cnn, batch, strategy=strategy, state=tmp_path / "b.json", **options
    )
    assert split.robust_accuracy == alone.robust_accuracy
    assert split.per_attack == alone.per_attack
    for e in alone.eps:
        np.testing.assert_array_equal(split.outcomes[e], alone.outcomes[e])
    assert split.gradients == alone.gradients and split.queries == alone.queries
    for label, trend in alone.loss_trend.items():
        for e, pair in trend.items():
            np.testing.assert_allclose(split.loss_trend[label][e], pair, rtol=1e-5)
    # The state file does not depend on the strategy: one resumes the other's.
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved["fingerprint"] == json.loads((tmp_path / "b.json").read_text())["fingerprint"]
    again = advgrad.evaluate(
        digits_cnn, batch, strategy=strategy, state=tmp_path / "a.json", **options
    )
    assert again.robust_accuracy == alone.robust_accuracy


# ---------------------------------------------------------------------------- multi-worker
WORKER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from advgrad.replicas import multi_worker
    try:
        strategy = multi_worker(timeout=float(sys.argv[1]))
    except ValueError as error:
        print("ERROR", error, flush=True)
        os._exit(3)
    import advgrad
    from advgrad import data, zoo
    ds = data.digits()
    x, y = ds.x_test[:10], ds.y_test[:10]
    attack = advgrad.attacks.PGD(eps=0.1, steps=3, random_start=True, bounds=ds.bounds)
    model = zoo.load("digits-cnn")
    split = attack.run(model, x, y, strategy=strategy)
    alone = attack.run(model, x, y)
    same = bool((split.x_adv == alone.x_adv).all() and (split.fooled == alone.fooled).all())
    found = {"same": same, "fooled": split.fooled.tolist()}
    found["replicas"] = strategy.num_replicas_in_sync
    print("RESULT", json.dumps(found), flush=True)
    os._exit(0)  # no wait for the other worker at exit
    """
)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(ports, indices, timeout, limit):
    """Start a worker for each index of `indices` (cluster: every port), wait at most
    `limit` seconds, kill them all; their outputs."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    try:
        for index in indices:
            config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            env = {**os.environ, "TF_CONFIG": json.dumps(config), "CUDA_VISIBLE_DEVICES": ""}
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", WORKER, str(timeout)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        deadline = time.monotonic() + limit
        outputs = []
        for process in processes:
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                outputs.append(process.communicate(timeout=remaining)[0])
            except subprocess.TimeoutExpired:
                process.kill()
                outputs.append(process.communicate()[0] + "\nTIMED OUT")
        return outputs
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _result(output):
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, output[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.slow
def test_multi_worker_two_processes_agree(digits, digits_cnn):
    outputs = _workers(_free_ports(2), [0, 1], timeout=60, limit=150)
    first, second = (_result(o) for o in outputs)
    assert first["same"] and second["same"], outputs
    assert first["replicas"] == second["replicas"] == 2
    assert first["fooled"] == second["fooled"]
    attack = advgrad.attacks.PGD(eps=0.1, steps=3, random_start=True, bounds=digits.bounds)
    alone = attack.run(digits_cnn, digits.x_test[:10], digits.y_test[:10])
    assert first["fooled"] == alone.fooled.tolist()


@pytest.mark.slow
def test_multi_worker_unreachable_address_is_a_clear_error():
    ports = _free_ports(2)  # nobody listens on the second one
    started = time.monotonic()
    (output,) = _workers(ports, [0], timeout=3, limit=60)
    assert "ERROR" in output and "TIMED OUT" not in output, output[-3000:]
    assert f"127.0.0.1:{ports[1]}" in output and "TF_CONFIG" in output
    assert time.monotonic() - started < 60


def test_multi_worker_without_tf_config_is_named(monkeypatch):
    from advgrad.replicas import multi_worker

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ArgumentError) as error:
        multi_worker(timeout=1)
    assert error.value.argument == "TF_CONFIG"


# --------------------------------------------------------------------------------- config
CONFIG = """\
model: digits-cnn
data: {name: digits, limit: 12}
suite: [{name: pgd, steps: 2}]
eps: [0.1]
batch_size: 5
"""


def test_distribute_section_parsed():
    import yaml

    from advgrad.config import parse_config
    from advgrad.schema.distribute import DistributeConfig

    document = yaml.safe_load(CONFIG)
    assert parse_config(document).distribute == DistributeConfig()
    section = {"strategy": "mirrored", "cpu_devices": 2}
    config = parse_config({**document, "distribute": section})
    assert config.distribute == DistributeConfig("mirrored", None, 2, 60.0)
    section = {"strategy": "multi-worker", "timeout": 5}
    assert parse_config({**document, "distribute": section}).distribute.timeout == 5.0


def test_distribute_problems_named_by_path():
    import yaml

    from advgrad.config import ConfigError, parse_config

    document = yaml.safe_load(CONFIG)
    bad = {"strategy": "mirored", "cpu_devices": 0, "timeout": -1, "gpus": 2}
    with pytest.raises(ConfigError) as info:
        parse_config({**document, "distribute": bad})
    text = str(info.value)
    for path in ("distribute.strategy", "distribute.cpu_devices", "distribute.timeout"):
        assert path in text
    assert "did you mean 'mirrored'" in text and "unknown key 'gpus'" in text
    with pytest.raises(ConfigError, match="need strategy: mirrored"):
        parse_config({**document, "distribute": {"devices": ["/cpu:0"]}})


def test_make_strategy_after_tensorflow_started_is_a_config_error():
    from advgrad.config import ConfigError
    from advgrad.config.distribute_build import make_strategy
    from advgrad.schema.distribute import DistributeConfig

    assert make_strategy(DistributeConfig()) is None
    strategy = make_strategy(DistributeConfig("mirrored", cpu_devices=2))  # the split we have
    assert strategy.num_replicas_in_sync == 2
    with pytest.raises(ConfigError, match="distribute.cpu_devices: .*already started"):
        make_strategy(DistributeConfig("mirrored", cpu_devices=3))


@pytest.mark.slow
def test_bench_with_two_cpu_devices(tmp_path, digits_cnn):
    config = tmp_path / "bench.yaml"
    config.write_text(CONFIG + "distribute: {strategy: mirrored, cpu_devices: 2}\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "advgrad.cli", "bench", str(config), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    from advgrad.report import Report

    report = Report.from_json((out / "report.json").read_text())
    alone = advgrad.evaluate(
        digits_cnn,
        (advgrad.data.digits().x_test[:12], advgrad.data.digits().y_test[:12]),
        suite=[advgrad.attacks.PGD(steps=2, bounds=(0.0, 1.0))],
        eps=0.1,
        batch_size=5,
        sanity=False,
    )
    assert report.robust_accuracy == alone.robust_accuracy


@pytest.mark.slow
def test_generate_with_a_strategy_writes_the_same_bytes(strategy, digits, digits_cnn, tmp_path):
    """Each batch's compiled call split over 2 replicas (batches of 5 and a last one of 1):
    shard for shard the bytes of the run without a strategy; Square (no graph) runs unsplit."""
    data = (digits.x_test[:41], digits.y_test[:41])
    for attack in (
        advgrad.attacks.PGD(eps=0.1, steps=3, bounds=digits.bounds, restarts=2),
        advgrad.attacks.Square(eps=0.1, queries=20, bounds=digits.bounds),
    ):
        runs = {}
        for name, option in (("alone", None), ("split", strategy)):
            out = tmp_path / f"{attack.name}-{name}"
            options = {"shard_size": 16, "batch_size": 5, "format": "npz", "strategy": option}
            advgrad.generate(digits_cnn, data, attack, out, **options)
            runs[name] = {p.name: p.read_bytes() for p in sorted(out.glob("shard-*"))}
        assert len(runs["alone"]) == 3 and runs["alone"] == runs["split"]
    with pytest.raises(ValueError, match="strategy"):
        advgrad.generate(digits_cnn, data, "fgsm", tmp_path / "bad", shard_size=8, strategy=1)


# ------------------------------------------------- issue 24: devices the machine has
def test_cpu_devices_at_most_one_per_usable_cpu(monkeypatch):
    """1000 logical CPUs took gigabytes and ran for minutes: at most one per usable CPU
    (two on a one-CPU machine)."""
    import yaml

    from advgrad.config import ConfigError, parse_config
    from advgrad.schema import distribute

    document = yaml.safe_load(CONFIG)
    monkeypatch.setattr(distribute, "usable_cpus", lambda: 4)
    section = {"strategy": "mirrored", "cpu_devices": 4}
    assert parse_config({**document, "distribute": section}).distribute.cpu_devices == 4
    with pytest.raises(ConfigError) as info:
        parse_config({**document, "distribute": {**section, "cpu_devices": 1000}})
    assert info.value.problems == [
        "distribute.cpu_devices: expected an int from 1 to 4 (one logical device per CPU "
        "this process may use), received 1000"
    ]
    monkeypatch.setattr(distribute, "usable_cpus", lambda: 1)
    section = {"strategy": "mirrored", "cpu_devices": 2}
    assert parse_config({**document, "distribute": section}).distribute.cpu_devices == 2
    with pytest.raises(ConfigError, match="expected an int from 1 to 2 "):
        parse_config({**document, "distribute": {**section, "cpu_devices": 3}})


def test_usable_cpus_is_this_process_share():
    from advgrad.schema.distribute import usable_cpus

    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)


@pytest.mark.parametrize(
    "devices, problem",
    [
        (("/cpu:0", "/cpu:5"), "distribute.devices[1]: no device '/cpu:5' on this machine"),
        (("/gpu:7",), "distribute.devices[0]: no device '/gpu:7' on this machine"),
        (("banana",), "distribute.devices[0]: 'banana' is not a device name (such as /gpu:0)"),
        (("/cpu:0", "CPU:0"), "distribute.devices[1]: 'CPU:0' is '/cpu:0' again: give each"),
    ],
)
def test_devices_that_do_not_exist_are_refused(devices, problem):
    from advgrad.config import ConfigError
    from advgrad.config.distribute_build import make_strategy
    from advgrad.schema.distribute import DistributeConfig

    if "/gpu:7" in devices and len(tf.config.list_logical_devices("GPU")) > 7:
        pytest.skip("this machine has a GPU 7")
    with pytest.raises(ConfigError) as info:
        make_strategy(DistributeConfig("mirrored", devices=devices), "a.yaml")
    (found,) = info.value.problems
    assert found.startswith(problem), found
    if "no device" in problem:
        assert found.endswith("(it has /cpu:0, /cpu:1)") or "/gpu:0" in found
    assert str(info.value).startswith("a.yaml: distribute.devices[")


def test_device_names_checked_in_any_spelling():
    from advgrad.config.distribute_build import check_devices

    names = ("/cpu:1", "CPU:0", "/device:CPU:1", "/job:localhost/replica:0/task:0/device:CPU:0")
    for name in names:
        assert check_devices([name]) == [name]


def test_cli_missing_device_exits_2(tmp_path, capsys):
    from advgrad.cli import main

    config = tmp_path / "bench.yaml"
    config.write_text(CONFIG + "distribute: {strategy: mirrored, devices: [/cpu:0, /cpu:9]}\n")
    assert main(["bench", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"advgrad: error: {config}: distribute.devices[1]: no device '/cpu:9'")
    assert "\n" not in err and not (tmp_path / "out").exists()
