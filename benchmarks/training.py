"""Training benchmark: adversarial training inside Keras fit (`advgrad.training`).

Measures, on the digits (`advgrad.data.digits()`: 1,347 training, 450 test images):

1. Epoch cost: one PGD-AT epoch with PGD-k (`fit`, one epoch, batch `--batch-size`) against a
   floor of (k + 1) forward+backward passes of the same model over the same batches, each
   floor batch one `tf.function` (`benchmarks/speed.py`'s `make_floor`). Every epoch is timed
   between two floor runs (F E F E F ...) and paired with their mean; the ratio reported is
   the median over rounds (the machine is shared: this cancels slow drift in its load).
   Target: <= 1.15.
2. The zoo's `digits-cnn-pgd` (PGD-AT at Linf eps 0.2, seed 0) against `digits-cnn`: clean
   accuracy, robust accuracy under PGD-40 x 5 restarts and under the "standard" suite
   (`advgrad.evaluate(model, data, suite="standard", eps=[0.2])`) at eps 0.2, and the
   training time. Targets: robust >= 0.5 and >= 30 points above digits-cnn, clean >= 0.90.
3. PGD-AT against TRADES (beta 6, and beta 1 for the direction within TRADES), the same
   recipe otherwise (digits CNN from scratch, PGD-7, 30 epochs, batch 32, Adam 3e-3 cosine,
   seed 0): clean and PGD-40 x 5 robust accuracy, and training time.

    python benchmarks/training.py                 # everything (~10 min on 2 busy cores)
    python benchmarks/training.py --quick         # epoch cost only, 3 rounds
    python benchmarks/training.py --skip-suite    # no standard-suite evaluation
    python benchmarks/training.py --only zoo      # one section; the others kept from the file

Writes `<out>/training.json` and `<out>/training.md` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# _common puts the repository and benchmarks/ on sys.path.
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import ROOT, write_results  # noqa: E402
from speed import _timed, floor_runner, machine_info, make_floor  # noqa: E402

import advgrad  # noqa: E402
from advgrad import attacks, data, training, zoo  # noqa: E402

EPS = 0.2
TARGET = 1.15
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _pgd_at_model(steps: int, seed: int, **options):
    keras.utils.set_random_seed(seed)
    model = zoo._digits_cnn()
    attack = attacks.PGD(eps=EPS, steps=steps, bounds=(0.0, 1.0))
    return model, training.adversarial(model, attack, seed=seed, **options)


# ------------------------------------------------------------------------------ epoch cost
def make_training_floor(model, sample_shape, steps: int):
    """`steps` forward+backward passes w.r.t. the inputs (chained, as `make_floor`'s) and
    then ONE forward+backward pass w.r.t. the weights (training mode, mean sparse CE on
    logits), in one `tf.function`: the passes an adversarial training step cannot avoid,
    without the optimiser's update, the metrics or Keras' step around them."""
    spec = [
        tf.TensorSpec((None, *sample_shape), tf.float32),
        tf.TensorSpec((None,), tf.int64),
    ]
    weights = model.trainable_weights

    @tf.function(input_signature=spec)
    def floor(x, y):
        ids = tf.cast(y, tf.int32)
        acc = tf.zeros([], tf.float32)
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits = model(x, training=False)
                loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits))
            total = tf.reduce_sum(tape.gradient(loss, x))
            acc += total
            x = x * (1.0 + 1e-30 * total)
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits))
        grads = tape.gradient(loss, weights)
        return acc + tf.add_n([tf.reduce_sum(g) for g in grads])

    return floor


def _pipeline(kind: str, x, y, batch_size: int, seed: int):
    """``fit``'s arguments and ``compile``'s ``steps_per_execution`` for a pipeline:
    "numpy" (arrays, Keras batches and shuffles them each epoch: its default), "numpy+spe"
    (the same with `advgrad.training.STEPS_PER_EXECUTION`), "advgrad" (`advgrad.training.
    EpochBatches` with `STEPS_PER_EXECUTION`: what `advgrad train` and the zoo run) or "tf.data"
    (a shuffled, batched, prefetched `tf.data.Dataset`, and one `steps_per_execution` per
    epoch: Keras' per-step Python runs once per epoch)."""
    if kind == "numpy":
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}, 1
    if kind == "advgrad":  # what `advgrad train` and the zoo's digits-cnn-pgd run
        batches = training.EpochBatches(x, y, batch_size=batch_size, seed=seed)
        per_epoch = int(np.ceil(len(y) / batch_size))
        fit = {"x": batches.dataset, "shuffle": False, "callbacks": [batches]}
        return fit, min(per_epoch, training.STEPS_PER_EXECUTION)
    if kind == "numpy+spe":  # what `advgrad train` ran before `EpochBatches`
        per_epoch = int(np.ceil(len(y) / batch_size))
        fit = {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}
        return fit, min(per_epoch, training.STEPS_PER_EXECUTION)
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return {"x": dataset, "shuffle": False}, int(np.ceil(len(y) / batch_size))


def epoch_cost(
    steps_list: list[int], batch_size: int, repeats: int, seed: int, pipelines: list[str]
) -> list[dict]:
    """One PGD-AT epoch (`fit`, batch `batch_size`) against three floors over the same
    batches, each timed in the same rounds: "input" = (k + 1) forward+backward passes w.r.t.
    the inputs (`speed.py`'s floor); "training" = k of those plus one forward+backward
    pass w.r.t. the weights; "keras" = k input passes plus one standard Keras `fit` epoch of
    the same model (the wrapper's own overhead over the `fit` it extends)."""
    ds = data.digits()
    x, y = np.asarray(ds.x_train), np.asarray(ds.y_train)
    rows = []
    for pipeline, steps in [(p, k) for p in pipelines for k in steps_list]:
        fit_args, per_execution = _pipeline(pipeline, x, y, batch_size, seed)
        model, robust = _pgd_at_model(steps, seed)
        robust.compile(
            keras.optimizers.Adam(1e-3),
            LOSS,
            metrics=["accuracy"],
            steps_per_execution=per_execution,
        )
        keras.utils.set_random_seed(seed)
        plain = zoo._digits_cnn()
        plain.compile(
            keras.optimizers.Adam(1e-3),
            LOSS,
            metrics=["accuracy"],
            steps_per_execution=per_execution,
        )

        def epoch(robust=robust, fit_args=fit_args):
            robust.fit(**fit_args, epochs=1, verbose=0)

        def standard(plain=plain, fit_args=fit_args):
            plain.fit(**fit_args, epochs=1, verbose=0)

        floors = {
            "input": floor_runner(make_floor(model, x.shape[1:], steps + 1), x, y, batch_size),
            "training": floor_runner(
                make_training_floor(model, x.shape[1:], steps), x, y, batch_size
            ),
            "attack": floor_runner(make_floor(model, x.shape[1:], steps), x, y, batch_size),
        }
        for fn in (epoch, standard, *floors.values()):
            fn()  # tracing and warm-up, not timed
        walls: dict[str, list[float]] = {k: [] for k in ("epoch", "standard", *floors)}
        ratios: dict[str, list[float]] = {"input": [], "training": [], "keras": []}
        for _ in range(repeats):
            before = {name: _timed(fn)[0] for name, fn in floors.items()}
            before["standard"] = _timed(standard)[0]
            wall = _timed(epoch)[0]
            after = {name: _timed(fn)[0] for name, fn in floors.items()}
            after["standard"] = _timed(standard)[0]
            paired = {k: (before[k] + after[k]) / 2 for k in before}
            walls["epoch"].append(wall)
            for k, v in paired.items():
                walls[k].append(v)
            ratios["input"].append(wall / paired["input"])
            ratios["training"].append(wall / paired["training"])
            ratios["keras"].append(wall / (paired["attack"] + paired["standard"]))
        med = {k: statistics.median(v) for k, v in walls.items()}
        row = {
            "attack": f"PGD-{steps}",
            "pipeline": pipeline,
            "steps_per_execution": per_execution,
            "batch_size": batch_size,
            "epoch_seconds_median": round(med["epoch"], 4),
            "floor_seconds_median": {k: round(med[k], 4) for k in (*floors, "standard")},
            "ratio_median": {k: round(statistics.median(v), 4) for k, v in ratios.items()},
            "ratios": {k: [round(r, 4) for r in v] for k, v in ratios.items()},
            "standard_epoch_in_input_passes": round(
                med["standard"] / (med["input"] / (steps + 1)), 2
            ),
            "target": TARGET,
        }
        row["meets_target"] = row["ratio_median"]["training"] <= TARGET
        rows.append(row)
        print(f"epoch cost PGD-{steps}, {pipeline}: {row['ratio_median']}", flush=True)
    return rows


# ------------------------------------------------------------------------------ accuracy
def _pgd_robust(model, ds) -> float:
    attack = attacks.PGD(eps=EPS, steps=40, restarts=5, bounds=ds.bounds, loss="ce", seed=0)
    result = attack.run(model, ds.x_test, ds.y_test)
    correct = np.argmax(model.predict(ds.x_test, verbose=0), -1) == ds.y_test
    return float(np.mean(correct & ~result.fooled))


def _clean(model, ds) -> float:
    return float(np.mean(np.argmax(model.predict(ds.x_test, verbose=0), -1) == ds.y_test))


def _suite_robust(model, ds) -> tuple[float, float]:
    start = time.perf_counter()
    suite = advgrad.get_suite("standard", bounds=ds.bounds)  # the threat model: [0, 1]
    report = advgrad.evaluate(model, ds.test, suite=suite, eps=[EPS], individual=False)
    return float(report.robust_accuracy[EPS]), time.perf_counter() - start


def zoo_models(suite: bool) -> dict:
    ds = data.digits()
    out = {}
    for name in ("digits-cnn", "digits-cnn-pgd"):
        start = time.perf_counter()
        model = zoo.load(name)
        card = zoo.card(name)
        row = {
            "load_or_train_seconds": round(time.perf_counter() - start, 2),
            "training_seconds": (card.built_with or {}).get("build_seconds"),
            "recipe": card.recipe,
            "clean_accuracy": round(_clean(model, ds), 4),
            "robust_pgd40x5": round(_pgd_robust(model, ds), 4),
        }
        if suite:
            value, seconds = _suite_robust(model, ds)
            row["robust_standard_suite"] = round(value, 4)
            row["standard_suite_seconds"] = round(seconds, 1)
        out[name] = row
        print(name, row, flush=True)
    return out


def objectives(seed: int, epochs: int, steps: int) -> dict:
    ds = data.digits()
    runs = {"pgd-at": {}, "trades beta 6": {"objective": "trades", "beta": 6.0}}
    runs["trades beta 1"] = {"objective": "trades", "beta": 1.0}
    out = {}
    for label, options in runs.items():
        tf.config.experimental.enable_op_determinism()
        model, robust = _pgd_at_model(steps, seed, **options)
        n = epochs * int(np.ceil(len(ds.y_train) / 32))
        schedule = keras.optimizers.schedules.CosineDecay(3e-3, n)
        robust.compile(
            keras.optimizers.Adam(schedule),
            LOSS,
            metrics=["accuracy"],
            steps_per_execution=training.STEPS_PER_EXECUTION,
        )
        batches = training.EpochBatches(ds.x_train, ds.y_train, batch_size=32, seed=seed)
        start = time.perf_counter()
        robust.fit(batches.dataset, epochs=epochs, callbacks=[batches], shuffle=False, verbose=0)
        seconds = time.perf_counter() - start
        out[label] = {
            "training_seconds": round(seconds, 1),
            "clean_accuracy": round(_clean(model, ds), 4),
            "robust_pgd40x5": round(_pgd_robust(model, ds), 4),
        }
        print(label, out[label], flush=True)
    return out


# ------------------------------------------------------------------------------ report
def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Adversarial training (`advgrad.training`)",
        "",
        f"Run {m['date']} on {m['cpu_model']} ({m['cpus_usable']} usable CPUs), TensorFlow "
        f"{m['tensorflow']}, Keras {m['keras']}. Load average at start {m['loadavg_start']}: "
        f"{result['note']}",
        "",
        *(
            [f"Sections measured in an earlier run (kept): {result['kept_from']}", ""]
            if result.get("kept_from")
            else []
        ),
        "## Epoch cost (one PGD-AT `fit` epoch vs the passes it cannot avoid)",
        "",
        "Floors, timed in the same rounds over the same batches: *input* = (k + 1) "
        "forward+backward passes w.r.t. the inputs; *training* = k of those + 1 "
        "forward+backward pass w.r.t. the weights (the target's floor); *keras* = k input "
        "passes + one standard Keras `fit` epoch of the same model.",
        "",
        "| attack | data | batch | epoch s | vs input | vs training | vs keras | standard "
        "epoch in input passes | target (training) | ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.get("epoch_cost", []):
        q = r["ratio_median"]
        lines.append(
            f"| {r['attack']} | {r['pipeline']} | {r['batch_size']} | "
            f"{r['epoch_seconds_median']} | "
            f"{q['input']} | {q['training']} | {q['keras']} | "
            f"{r['standard_epoch_in_input_passes']} | <= {r['target']} | "
            f"{'yes' if r['meets_target'] else 'NO'} |"
        )
    if result.get("zoo"):
        lines += [
            "",
            f"## Zoo: digits-cnn-pgd vs digits-cnn (digits test split, Linf eps {EPS})",
            "",
            "| model | clean | robust PGD-40 x 5 | robust standard suite | training s |",
            "|---|---|---|---|---|",
        ]
        for name, r in result["zoo"].items():
            lines.append(
                f"| {name} | {r['clean_accuracy']} | {r['robust_pgd40x5']} | "
                f"{r.get('robust_standard_suite', 'n/a')} | {r['training_seconds']} |"
            )
    if result.get("objectives"):
        lines += [
            "",
            f"## PGD-AT vs TRADES (digits CNN, PGD-7 at eps {EPS}, same recipe)",
            "",
            "| objective | clean | robust PGD-40 x 5 | training s |",
            "|---|---|---|---|",
        ]
        for name, r in result["objectives"].items():
            lines.append(
                f"| {name} | {r['clean_accuracy']} | {r['robust_pgd40x5']} | "
                f"{r['training_seconds']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="epoch cost only, 3 rounds")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated sections to measure (epoch_cost, zoo, objectives); the others "
        "are kept from an existing <out>/training.json",
    )
    parser.add_argument("--repeats", type=int, default=None, help="rounds (7; 3 with --quick)")
    parser.add_argument("--steps", default="7,10", help="PGD-k of the epoch cost rows")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--pipelines",
        default="advgrad,tf.data,numpy+spe,numpy",
        help="advgrad, tf.data, numpy+spe, numpy",
    )
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the objective runs")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--skip-objectives", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="a shared machine (other jobs running)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    steps = [int(s) for s in args.steps.split(",")]
    result = {"machine": machine_info(), "note": args.note}
    pipelines = args.pipelines.split(",")
    out = pathlib.Path(args.out)
    sections = ["epoch_cost"] if args.quick else ["epoch_cost", "zoo", "objectives"]
    if args.skip_objectives:
        sections.remove("objectives")
    if args.only:
        sections = args.only.split(",")
        previous = out / "training.json"
        kept = json.loads(previous.read_text()) if previous.exists() else {}
        for key in ("epoch_cost", "zoo", "objectives"):
            if key in kept and key not in sections:
                result[key] = kept[key]
                dated = kept.get("kept_from", {}).get(key, kept["machine"]["date"])
                result.setdefault("kept_from", {})[key] = dated
    if "epoch_cost" in sections:
        result["epoch_cost"] = epoch_cost(steps, args.batch_size, repeats, args.seed, pipelines)
    if "zoo" in sections:
        result["zoo"] = zoo_models(suite=not args.skip_suite)
    if "objectives" in sections:
        result["objectives"] = objectives(args.seed, args.epochs, 7)
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    write_results(out, "training", result, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
