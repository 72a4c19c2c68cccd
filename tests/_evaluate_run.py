"""Helper for tests/test_evaluate.py: one resumable evaluation, run in a subprocess and killed.

Usage: python tests/_evaluate_run.py DATA STATE OUT GATE

Evaluates the zoo's digits-cnn (from $ADVGRAD_CACHE) on the arrays saved by `save_arrays` in
DATA (an .npz: the first `SAMPLES` digits test images) with the suite of `suite()`, resuming
from STATE, and writes the report JSON to OUT if it ends. The run starts (reads STATE) once
the file GATE holds an integer, so a process can import TensorFlow while another one runs.
The data come through a tf.data generator that yields batch i only once the integer in
GATE is >= i: the test lets the run go a known number of batches, then SIGKILLs it.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SAMPLES = 40
BATCH_SIZE = 4
EPS = [0.05, 0.2]
SEED = 7


def suite(bounds):
    """Two PGD configurations (a small fixed step, then the default): one compiled loop."""
    from advgrad.attacks import get_attack

    return [
        get_attack("pgd", bounds=bounds, steps=5, step_size=0.01),
        get_attack("pgd", bounds=bounds, steps=5),
    ]


def arrays():
    from advgrad import data

    ds = data.digits()
    return ds.x_test[:SAMPLES], ds.y_test[:SAMPLES], ds.bounds


def save_arrays(path: str) -> None:
    """Save `arrays()` for the subprocess (which then needs no scikit-learn import)."""
    import numpy as np

    x, y, (low, high) = arrays()
    np.savez(path, x=x, y=y, low=low, high=high)


def load_arrays(path: str):
    import numpy as np

    with np.load(path) as f:
        return f["x"], f["y"], (float(f["low"]), float(f["high"]))


def gated_dataset(x, y, gate: str):
    import tensorflow as tf

    def batches():
        for i, start in enumerate(range(0, len(y), BATCH_SIZE)):
            while _allowed(gate) < i:
                time.sleep(0.005)
            yield x[start : start + BATCH_SIZE], y[start : start + BATCH_SIZE]

    spec = (
        tf.TensorSpec((None, *x.shape[1:]), tf.float32),
        tf.TensorSpec((None,), tf.int64),
    )
    return tf.data.Dataset.from_generator(batches, output_signature=spec)


def _allowed(gate: str) -> int:
    try:
        with open(gate, encoding="utf-8") as f:
            return int(f.read().strip() or -1)
    except (OSError, ValueError):
        return -1


def main(arrays_path: str, state: str, out: str, gate: str) -> None:
    from advgrad import zoo
    from advgrad.evaluation import evaluate

    x, y, bounds = load_arrays(arrays_path)
    model = zoo.load("digits-cnn")
    while _allowed(gate) < 0:
        time.sleep(0.005)
    report = evaluate(
        model,
        gated_dataset(x, y, gate),
        suite=suite(bounds),
        eps=EPS,
        batch_size=BATCH_SIZE,
        seed=SEED,
        state=state,
        sanity=False,
    )
    report.to_json(out)


if __name__ == "__main__":
    main(*sys.argv[1:5])
