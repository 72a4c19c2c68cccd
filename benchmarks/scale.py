"""Cost at CIFAR scale: a CIFAR-shaped ResNet-18 and the zoo's MNIST CNN (issue 27, part 4).

Models: a ResNet-18 of CIFAR shape (32x32x3 inputs, 3x3 stem, 4 stages x 2 basic blocks of
64/128/256/512 channels, global pooling, Dense(10); 11.2 M parameters; random weights, seeded:
the cost of a pass does not depend on the weights) on seeded uniform images in [0, 1],
labelled with the model's own predictions (every sample is clean-correct, so every attack
runs on all of them: the worst case of cost); and `mnist-cnn` (the zoo's, trained) on the
real MNIST test images (`pip install "advgrad[mnist]"`). Linf eps 8/255 (ResNet) and 0.3
(MNIST), bounds (0, 1).

For each model:

- **PGD-10 over its floor**: `attack(model, x, y)` with PGD-10 on `--pgd-batch` images,
  against 10 forward+backward passes of the same model and batch in one `tf.function`
  (`benchmarks/speed.py`'s floor and bracketed timing, measured in the same run): the median
  over `--repeats` rounds of attack time / paired floor time.
- **The standard suite's seconds per image** at each of `--batch-sizes` (64, 128, 256):
  `advgrad.evaluate(model, (x, y), suite=get_suite("standard", ...), batch_size=b)` on `b`
  images, after an untimed call on 8 images (tracing); seconds / b.
- **Peak memory by batch size**: each batch size runs in a fresh process that evaluates
  `b` images, then `2 b` images; the peak (GPU: `tf.config.experimental.get_memory_info`;
  CPU: the process's peak resident set) after each. Flat in the number of images: the
  second peak is no larger than the first (a few % of slack).

`--suite-steps`, `--suite-targets` and `--suite-queries` scale the suite down where a full
one does not fit the time (a CPU); the settings that ran are recorded. The same command runs
unchanged on a GPU.

    python benchmarks/scale.py                                   # the full run (a GPU)
    python benchmarks/scale.py --suite-steps 10 --suite-targets 3 --suite-queries 100 \
        --batch-sizes 16,32 --pgd-batch 16 --repeats 3           # a 2-core CPU

Writes `<out>/scale.json` and `<out>/scale.md` (default `benchmarks/results/`).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# _common puts the repository and benchmarks/ on sys.path.
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import ROOT, write_results  # noqa: E402
from speed import (  # noqa: E402
    _loadavg,
    _paired,
    floor_runner,
    machine_info,
    make_floor,
    time_bracketed,
)

import advgrad  # noqa: E402

MODELS = ("resnet18", "mnist-cnn")
EPS = {"resnet18": 8 / 255, "mnist-cnn": 0.3}
WARMUP_IMAGES = 8
SLACK = 1.05  # "flat": the peak with 2 b images at most 5 % above the peak with b


def resnet18(seed: int = 0):
    """ResNet-18 for 32x32x3 inputs (He et al. 2016, the CIFAR variant: 3x3 stem, no
    max-pool), 10 logits, random weights."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)

    def conv_bn(h, channels, kernel, stride):
        h = layers.Conv2D(channels, kernel, stride, padding="same", use_bias=False)(h)
        return layers.BatchNormalization()(h)

    def block(h, channels, stride):
        out = layers.ReLU()(conv_bn(h, channels, 3, stride))
        out = conv_bn(out, channels, 3, 1)
        if stride != 1 or h.shape[-1] != channels:
            h = conv_bn(h, channels, 1, stride)
        return layers.ReLU()(layers.Add()([out, h]))

    x = keras.Input((32, 32, 3))
    h = layers.ReLU()(conv_bn(x, 64, 3, 1))
    for channels, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        h = block(h, channels, stride)
        h = block(h, channels, 1)
    logits = layers.Dense(10)(layers.GlobalAveragePooling2D()(h))
    model = keras.Model(x, logits, name="resnet18_cifar")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def model_and_data(name: str, n: int):
    """The model and n images with labels it gets right (ResNet) or the true ones (MNIST)."""
    if name == "resnet18":
        model = resnet18()
        x = np.random.default_rng(0).uniform(0, 1, (n, 32, 32, 3)).astype(np.float32)
        y = np.argmax(model.predict(x, batch_size=64, verbose=0), -1).astype(np.int64)
        return model, x, y
    from advgrad import data, zoo

    ds = data.mnist()
    reps = -(-n // len(ds.y_test))  # more images than the test split: repeat it
    x = np.concatenate([ds.x_test] * reps)[:n]
    y = np.concatenate([ds.y_test] * reps)[:n]
    return zoo.load(name), x, y


def the_suite(name: str, args):
    return advgrad.get_suite(
        "standard",
        eps=EPS[name],
        bounds=(0.0, 1.0),
        steps=args.suite_steps,
        n_target_classes=args.suite_targets,
        queries=args.suite_queries,
    )


def evaluate_seconds(model, x, y, suite, batch_size: int) -> tuple[float, float]:
    start = time.perf_counter()
    report = advgrad.evaluate(
        model, (x, y), suite=suite, eps=suite[0].eps, batch_size=batch_size, sanity=False
    )
    return time.perf_counter() - start, float(report.robust_accuracy[suite[0].eps])


def peak_bytes(gpu: bool) -> int:
    if gpu:
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def child(args) -> dict:
    """One model and batch size in this fresh process: suite time per image, peak memory."""
    name, b = args.child_model, args.child_batch
    gpu = bool(tf.config.list_physical_devices("GPU"))
    model, x, y = model_and_data(name, 2 * b)
    suite = the_suite(name, args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluate_seconds(model, x[:WARMUP_IMAGES], y[:WARMUP_IMAGES], suite, WARMUP_IMAGES)
        if gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
        before = peak_bytes(gpu)
        seconds, robust = evaluate_seconds(model, x[:b], y[:b], suite, b)
        peak_b = peak_bytes(gpu)
        seconds_2b, _ = evaluate_seconds(model, x, y, suite, b)
        peak_2b = peak_bytes(gpu)
    return {
        "model": name,
        "batch_size": b,
        "seconds_per_image": seconds / b,
        "seconds_per_image_2b": seconds_2b / (2 * b),
        "robust_accuracy": robust,
        "memory": "GPU peak (get_memory_info)" if gpu else "CPU peak resident set",
        "peak_before_mib": before / 2**20,
        "peak_b_mib": peak_b / 2**20,
        "peak_2b_mib": peak_2b / 2**20,
        "flat": peak_2b <= SLACK * peak_b,
    }


def pgd_over_floor(name: str, args) -> dict:
    model, x, y = model_and_data(name, args.pgd_batch)
    steps = 10
    floor = floor_runner(make_floor(model, x.shape[1:], steps), x, y, args.pgd_batch)
    pgd = advgrad.attacks.PGD(eps=EPS[name], steps=steps, bounds=(0.0, 1.0))
    xt, yt = tf.constant(x), tf.constant(y)

    def attack():
        np.asarray(pgd(model, xt, yt))

    floor(), attack()  # tracing, untimed
    members, floors = time_bracketed([("floor", floor, [("PGD-10", attack)])], args.repeats)
    record = members["PGD-10"]
    return {
        "model": name,
        "parameters": int(model.count_params()),
        "input_shape": list(x.shape[1:]),
        "batch": args.pgd_batch,
        "pgd10_seconds_median": float(np.median(record["wall"])),
        "floor_seconds_median": float(np.median(floors["floor"]["wall"])),
        "ratio": _paired(record["wall"], record["floor_wall"]),
    }


def markdown(result: dict) -> str:
    machine, s = result["machine"], result["settings"]
    lines = [
        "# Cost at CIFAR scale: ResNet-18 (32x32x3) and the MNIST CNN",
        "",
        f"- Date: {machine['date']}",
        f"- Machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs "
        f"({machine['cpus_usable']} usable), GPUs: {machine['gpus'] or 'none'}",
        f"- TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"advgrad {machine['advgrad']}",
        f"- Load average at start: {machine['loadavg_start']}, at end: "
        f"{machine.get('loadavg_end')} (shared machine: seconds move with it)",
        f"- Standard suite as run: APGD-CE {s['suite_steps']} steps, APGD-T and FAB-T "
        f"{s['suite_targets']} targets x {s['suite_steps']} steps, Square {s['suite_queries']} "
        f"queries; Linf eps 8/255 (ResNet-18), 0.3 (MNIST CNN)",
        f"- Command: `{s['command']}`",
        "",
        "| model | parameters | PGD-10 batch | PGD-10 s | floor s (10 fwd+bwd) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["pgd"]:
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {r['batch']} | "
            f"{r['pgd10_seconds_median']:.3f} | {r['floor_seconds_median']:.3f} | "
            f"{r['ratio']:.3f} |"
        )
    lines += [
        "",
        "| model | batch | suite s / image (b images) | (2 b images) | memory | peak MiB, "
        "b images | 2 b images | flat |",
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in result["suite"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['batch_size']} | failed: {r['error']} |")
            continue
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['seconds_per_image']:.3f} | "
            f"{r['seconds_per_image_2b']:.3f} | {r['memory']} | {r['peak_b_mib']:,.0f} | "
            f"{r['peak_2b_mib']:,.0f} | {'yes' if r['flat'] else 'no'} |"
        )
    lines += [
        "",
        "ResNet-18 with random weights, labelled with its own predictions: timing only (its "
        "robust accuracy means nothing). ART's AutoAttack on the ResNet-18 is not run here.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--batch-sizes", default="64,128,256")
    parser.add_argument("--pgd-batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--suite-steps", type=int, default=100)
    parser.add_argument("--suite-targets", type=int, default=9)
    parser.add_argument("--suite-queries", type=int, default=5000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    parser.add_argument("--child-batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    for name in args.models:
        if name not in MODELS:
            parser.error(f"--models: unknown model {name!r}; use {', '.join(MODELS)}")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child_model:
        print(json.dumps(child(args)))
        return 0
    machine = machine_info()
    settings = {k: getattr(args, k) for k in ("suite_steps", "suite_targets", "suite_queries")}
    settings["command"] = "python benchmarks/scale.py " + " ".join(argv)
    result = {"machine": machine, "settings": settings, "pgd": [], "suite": []}
    for name in args.models:
        print(f"[{name}] PGD-10 over its floor ...", flush=True)
        result["pgd"].append(pgd_over_floor(name, args))
        for b in args.batch_sizes:
            print(f"[{name}] standard suite, batch {b}, fresh process ...", flush=True)
            done = subprocess.run(
                [sys.executable, __file__, *argv, "--child-model", name, "--child-batch", str(b)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                error = (done.stderr.strip().splitlines() or ["?"])[-1]
                result["suite"].append({"model": name, "batch_size": b, "error": error})
            else:
                result["suite"].append(json.loads(done.stdout.strip().splitlines()[-1]))
    machine["loadavg_end"] = _loadavg()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    write_results(out, "scale", result, text, default=str)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
