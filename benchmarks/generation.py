"""Generation benchmark: peak memory against data size, and throughput against the attack alone.

Two questions of issue 14, on the zoo's `digits-cnn` and the digits (train and test, 1,797
images, repeated to the sizes asked for, streamed through `tf.data` so the data themselves
take no memory):

1. Memory flat in the data size: `advgrad.generate` (PGD-10) of N samples, each size in a
   fresh subprocess, which reports its peak RSS (``ru_maxrss``); the largest size must peak no
   higher than the smallest (within a 5% allowance for allocator noise).
2. Throughput: generation (PGD-10, attacking, predicting the clean and adversarial inputs,
   the norms, writing the shards on the background thread) against the attack alone
   (``attack.replace(seed=s)(model, x, y)`` per batch, with the same batches and seeds),
   both timed end to end on the same in-memory arrays, in `--repeats` rounds (the order
   rotated each round); the ratio is the median over rounds of attack-alone time /
   generation time (paired in the round, which cancels drift in the load of a shared
   machine). Target: generation >= 0.9 x the attack alone's samples/s.

3. With ``--data mnist`` (issue 27; ``pip install "advgrad[mnist]"``): the same two on the
   zoo's `mnist-cnn` at Linf eps 0.3 over the 4,000 real MNIST training images (no
   repetition: memory at 1,000 / 2,000 / 4,000 of them), and training on the result: one
   Keras ``fit`` epoch of a fresh `mnist-cnn` fed by `advgrad.load_generated` (shards read,
   their SHA-256 checked, shuffled) against the same epoch fed by the same adversarial
   images from memory (`training.py`'s shuffled ``tf.data`` pipeline), paired in rounds as
   above. Each memory subprocess also fits one epoch on what it generated and reports its
   peak RSS after that.

    python benchmarks/generation.py                         # the recorded digits run
    python benchmarks/generation.py --sizes 2000,20000 --samples 4000 --repeats 1   # quick
    python benchmarks/generation.py --data mnist --repeats 5   # MNIST at eps 0.3

Writes ``<out>/generation.json`` and ``<out>/generation.md`` (``mnist-generation.*`` with
``--data mnist``), and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# _common puts the repository and benchmarks/ on sys.path.
from _common import ROOT, write_results  # noqa: E402

BOUNDS = (0.0, 1.0)
TARGET_RATIO = 0.9
MEMORY_SLACK = 1.05


@dataclasses.dataclass(frozen=True)
class Setup:
    """What `--data` picks: the data set, the zoo model attacked, eps and the defaults."""

    data: str  # an `advgrad.data` name
    source: str  # "train+test" (repeated to the sizes asked for) or "train"
    model: str  # a zoo name
    eps: float
    sizes: str  # default `--sizes`
    samples: int  # default `--samples`
    shard_size: int  # default `--shard-size`
    fit: bool  # time load_generated -> fit (and fit in the memory runs)
    stem: str  # result files: <stem>.json, <stem>.md


SETUPS = {
    "digits": Setup("digits", "train+test", "digits-cnn", 0.1, "5000,50000", 10000, 2500, False,
                    "generation"),
    "mnist": Setup("mnist", "train", "mnist-cnn", 0.3, "1000,2000,4000", 4000, 1000, True,
                   "mnist-generation"),
}  # fmt: skip


def source_arrays(setup: Setup):
    """The images the benchmark attacks, in data order: digits' train and test splits, or
    MNIST's 4,000 training images."""
    import numpy as np

    from advgrad import data

    ds = data.get(setup.data)
    if setup.source == "train":
        return np.asarray(ds.x_train), np.asarray(ds.y_train)
    return np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])


def data_stream(setup: Setup, samples: int, batch_size: int):
    """The source images repeated (or cut) to `samples`, as a batched tf.data stream."""
    import tensorflow as tf

    x, y = source_arrays(setup)
    repeats = -(-samples // len(y))
    return (
        tf.data.Dataset.from_tensor_slices((x, y)).repeat(repeats).take(samples).batch(batch_size)
    )


def data_arrays(setup: Setup, samples: int):
    import numpy as np

    x, y = source_arrays(setup)
    index = np.arange(samples) % len(y)
    return np.ascontiguousarray(x[index]), np.ascontiguousarray(y[index])


def attack_of(setup: Setup, steps: int):
    from advgrad.attacks import PGD

    return PGD(eps=setup.eps, steps=steps, bounds=BOUNDS)


def fresh_learner(setup: Setup, seed: int = 0, steps_per_execution: int = 1):
    """An untrained model of the attacked model's architecture, compiled as `training.py`'s
    epoch-cost runs are (Adam 1e-3, sparse CE on logits, accuracy)."""
    import keras

    from advgrad import zoo

    keras.utils.set_random_seed(seed)
    model = zoo._spec(setup.model).architecture()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        keras.optimizers.Adam(1e-3),
        loss,
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


# ---------------------------------------------------------------------- memory
def memory_child(args: argparse.Namespace) -> None:
    """Run in a subprocess: generate `args.child` samples, print peak RSS as JSON (and, where
    the setup trains, the peak after one `fit` epoch on `load_generated` of them)."""
    from advgrad import zoo
    from advgrad.generation import generate, load_generated

    setup = SETUPS[args.data]
    model = zoo.load(setup.model)
    out = tempfile.mkdtemp(prefix="advgrad-gen-bench-")
    row: dict = {}
    try:
        started = time.perf_counter()
        manifest = generate(
            model,
            data_stream(setup, args.child, args.batch_size),
            attack_of(setup, args.steps),
            out,
            shard_size=args.shard_size,
            format=args.format,
            batch_size=args.batch_size,
        )
        seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in pathlib.Path(out).iterdir())
        row["samples"] = manifest["data"]["samples"]
        row["shards"] = len(manifest["shards"])
        row["seconds"] = round(seconds, 2)
        row["bytes_written"] = size
        row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if setup.fit:
            learner = fresh_learner(setup)
            batches = load_generated(out, batch_size=args.fit_batch_size, shuffle=True, seed=0)
            started = time.perf_counter()
            learner.fit(batches, epochs=1, shuffle=False, verbose=0)  # shuffled by it
            row["fit_seconds"] = round(time.perf_counter() - started, 2)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            row["peak_rss_after_fit_mib"] = round(peak, 1)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(row))


def measure_memory(args: argparse.Namespace, sizes: list[int]) -> list[dict]:
    rows = []
    for samples in sizes:
        command = [sys.executable, __file__, "--child", str(samples), "--data", args.data]
        command += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
        command += ["--shard-size", str(args.shard_size), "--format", args.format]
        command += ["--fit-batch-size", str(args.fit_batch_size)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:  # the child's own error, not a bare exit status
            sys.exit(f"memory run of {samples} samples failed:\n{result.stderr[-3000:]}")
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(row)
        after = row.get("peak_rss_after_fit_mib")
        fit = "" if after is None else f", {after} MiB after fit"
        print(f"memory: {samples} samples -> peak RSS {row['peak_rss_mib']} MiB{fit}", flush=True)
    return rows


# ------------------------------------------------------------------ throughput
def timed_rounds(runs: dict, repeats: int, samples: int, label: str) -> dict:
    """Warm every run up once, then time them in `repeats` rounds (the order rotated each
    round); the first run is the baseline: each other's ratio is the median over rounds of
    baseline time / its time (paired in the round), the ratio of the median times beside."""
    for run in runs.values():  # warm-up: traces, caches
        run()
    times: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    base = names[0]
    for round_ in range(repeats):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
        print(f"{label} round {round_ + 1}/{repeats} done", flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: samples / v for k, v in median.items()}
    paired = {  # per round: baseline time / this run's time, timed back to back
        k: statistics.median(a / g for a, g in zip(times[base], v, strict=True))
        for k, v in times.items()
        if k != base
    }
    return {
        "samples": samples,
        "baseline": base,
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "samples_per_second": {k: round(v, 1) for k, v in rate.items()},
        "ratio_to_baseline": {k: round(v, 3) for k, v in paired.items()},
        "ratio_of_medians": {k: round(rate[k] / rate[base], 3) for k in rate if k != base},
    }


def measure_throughput(args: argparse.Namespace) -> dict:
    from advgrad import zoo
    from advgrad.batching import seed_of
    from advgrad.generation import generate

    setup = SETUPS[args.data]
    model = zoo.load(setup.model)
    attack = attack_of(setup, args.steps)
    x, y = data_arrays(setup, args.samples)
    size = args.batch_size

    def attack_alone() -> None:
        for number, start in enumerate(range(0, len(y), size)):
            seeded = attack.replace(seed=seed_of(0, attack.seed, number, 0, 0))
            seeded(model, x[start : start + size], y[start : start + size])

    def generation(fmt: str) -> None:
        out = tempfile.mkdtemp(prefix="advgrad-gen-bench-")
        try:
            generate(
                model, (x, y), attack, out, shard_size=args.shard_size, format=fmt,
                batch_size=size,
            )  # fmt: skip
        finally:
            shutil.rmtree(out, ignore_errors=True)

    runs = {"attack alone": attack_alone}
    for fmt in ("tfrecord", "npz"):
        runs[f"generate ({fmt})"] = lambda fmt=fmt: generation(fmt)
    result = timed_rounds(runs, args.repeats, args.samples, "throughput")
    result["ratio_to_attack_alone"] = result.pop("ratio_to_baseline")  # the recorded key
    return result


# ------------------------------------------------------------------------- fit
def measure_fit(args: argparse.Namespace) -> dict:
    """One `fit` epoch of a fresh model on `load_generated` of a `generate` run, against the
    same epoch on the same adversarial images from memory (`training.py`'s shuffled
    `tf.data` pipeline), both compiled with one `steps_per_execution` per epoch."""
    import numpy as np

    from advgrad import zoo
    from advgrad.generation import generate, load_generated

    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    from training import _pipeline  # the in-memory pipeline of training.py's epoch cost

    setup = SETUPS[args.data]
    x, y = data_arrays(setup, args.samples)
    out = tempfile.mkdtemp(prefix="advgrad-gen-bench-")
    try:
        generate(
            zoo.load(setup.model), (x, y), attack_of(setup, args.steps), out,
            shard_size=args.shard_size, format=args.format, batch_size=args.batch_size,
        )  # fmt: skip
        stored = load_generated(out, batch_size=len(y))  # in data order: one batch
        x_adv, y_adv = (np.asarray(t) for t in next(iter(stored)))
        batch = args.fit_batch_size
        memory_fit, per_execution = _pipeline("tf.data", x_adv, y_adv, batch, seed=0)
        loaded_fit = {
            "x": load_generated(out, batch_size=batch, shuffle=True, seed=0),
            "shuffle": False,
        }
        runs = {}
        for name, fit_args in (("fit, in memory", memory_fit), ("fit, load_generated", loaded_fit)):
            learner = fresh_learner(setup, steps_per_execution=per_execution)
            runs[name] = lambda m=learner, a=fit_args: m.fit(**a, epochs=1, verbose=0)
        result = timed_rounds(runs, args.repeats, len(y), "fit")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    result["batch_size"] = batch
    result["steps_per_execution"] = per_execution
    return result


# ----------------------------------------------------------------------- report
def machine() -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from advgrad import __version__

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "advgrad": __version__,
        "loadavg": list(os.getloadavg()),
    }


def _rate_rows(t: dict, ratios: str, target: float | None) -> list[str]:
    """Table rows of a `timed_rounds` result: time, samples/s, the two ratios, the target."""
    lines = []
    for name, seconds in t["median_seconds"].items():
        ratio = t[ratios].get(name)
        mark = "-" if ratio is None else f"{ratio:.3f}"
        plain = t["ratio_of_medians"].get(name)
        plain = "-" if plain is None else f"{plain:.3f}"
        bar = "-"
        if ratio is not None and target is not None:
            bar = f">= {target} ({'yes' if ratio >= target else 'NO'})"
        rate = t["samples_per_second"][name]
        lines.append(f"| {name} | {seconds:.2f} s | {rate:,.0f} | {mark} | {plain} | {bar} |")
    return lines


def markdown(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    gpus = m.get("gpus")
    device = "" if gpus is None else (", no GPU" if gpus == 0 else f", {gpus} GPU(s)")
    fit = any("peak_rss_after_fit_mib" in row for row in result["memory"])
    lines = [
        "# advgrad.generate: memory and throughput"
        + ("" if s.get("data", "digits") == "digits" else f" ({s['data']})"),
        "",
        f"- Date: {m['date']}; {m['cpus_usable']} usable CPUs{device}, {m['platform']}",
        f"- TensorFlow {m['tensorflow']}, Keras {m['keras']}, NumPy {m['numpy']}, "
        f"advgrad {m['advgrad']}; load average at the end {m['loadavg']}",
        f"- Model `{s.get('model', 'digits-cnn')}`; attack PGD-{s['steps']} (Linf "
        f"eps={s['eps']}, bounds {list(BOUNDS)}); batch {s['batch_size']}, shard "
        f"{s['shard_size']} samples",
        "",
        f"## Peak memory (format {s['format']}, data streamed through tf.data, one subprocess "
        "per size)",
        "",
        "| samples | shards | seconds | written | peak RSS |"
        + (" fit epoch on load_generated | peak RSS after it |" if fit else ""),
        "|---:|---:|---:|---:|---:|" + ("---:|---:|" if fit else ""),
    ]
    for row in result["memory"]:
        lines.append(
            f"| {row['samples']:,} | {row['shards']} | {row['seconds']} | "
            f"{row['bytes_written'] / 2**20:.1f} MiB | {row['peak_rss_mib']} MiB |"
            + (
                f" {row['fit_seconds']} s | {row['peak_rss_after_fit_mib']} MiB |"
                if "fit_seconds" in row
                else ""
            )
        )
    ok = "yes" if result["memory_flat"] else "NO"
    lines += [
        "",
        f"Flat (largest <= {MEMORY_SLACK} x smallest): **{ok}** (ratio {result['memory_ratio']}"
        + (f"; after fit {result['memory_ratio_after_fit']}" if fit else "")
        + ").",
        "",
        f"## Throughput ({result['throughput']['samples']:,} samples in memory, "
        f"{s['repeats']} rounds after a warm-up)",
        "",
        "samples/s from the median time; ratio: median over rounds of the paired ratio "
        "(attack-alone time / generation time); ratio of medians beside it.",
        "",
        "| run | median time | samples/s | ratio to the attack alone | ratio of medians | target |",
        "|---|---:|---:|---:|---:|---:|",
        *_rate_rows(result["throughput"], "ratio_to_attack_alone", TARGET_RATIO),
        "",
        "Generation includes what the attack alone does not: the clean and adversarial "
        "predictions (the correctness flags), the norms, the data digest, and the writing "
        "(on a background thread, overlapping the next batches' attack).",
        "",
    ]
    if result.get("fit"):
        f = result["fit"]
        lines += [
            f"## Training on the result ({f['samples']:,} adversarial images, one `fit` epoch "
            f"of a fresh `{s['model']}`, batch {f['batch_size']}, steps_per_execution "
            f"{f['steps_per_execution']}, {s['repeats']} rounds after a warm-up)",
            "",
            "*in memory*: the adversarial images as arrays in a shuffled, batched, prefetched "
            "`tf.data` pipeline; *load_generated*: `advgrad.load_generated(out, shuffle=True, "
            "seed=0)` over the shards (each read once, its SHA-256 checked). Ratio: median "
            "over rounds of in-memory time / load_generated time.",
            "",
            "| run | median time | samples/s | ratio to in memory | ratio of medians | - |",
            "|---|---:|---:|---:|---:|---:|",
            *_rate_rows(f, "ratio_to_baseline", None),
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", choices=list(SETUPS))
    parser.add_argument("--sizes", default=None, help="samples per memory run (per --data)")
    parser.add_argument("--samples", type=int, default=None, help="samples per throughput run")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=None)
    parser.add_argument("--format", default="tfrecord", choices=["tfrecord", "npz"])
    parser.add_argument("--fit-batch-size", type=int, default=32, help="batch of the fit runs")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup = SETUPS[args.data]
    args.sizes = args.sizes or setup.sizes
    args.samples = args.samples or setup.samples
    args.shard_size = args.shard_size or setup.shard_size
    if args.child is not None:
        memory_child(args)
        return
    sizes = [int(v) for v in args.sizes.split(",")]
    memory = measure_memory(args, sizes)
    throughput = measure_throughput(args)
    fit = measure_fit(args) if setup.fit else None
    peaks = [row["peak_rss_mib"] for row in memory]
    result = {
        "machine": machine(),
        "settings": {
            "data": setup.data,
            "model": setup.model,
            "sizes": sizes,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "shard_size": args.shard_size,
            "format": args.format,
            "repeats": args.repeats,
            "eps": setup.eps,
            "bounds": list(BOUNDS),
        },
        "memory": memory,
        "memory_ratio": round(max(peaks) / peaks[0], 3),
        "memory_flat": max(peaks) <= MEMORY_SLACK * peaks[0],
        "throughput": throughput,
        "throughput_ok": all(
            v >= TARGET_RATIO for v in throughput["ratio_to_attack_alone"].values()
        ),
    }
    if fit is not None:
        after = [row["peak_rss_after_fit_mib"] for row in memory]
        result["memory_ratio_after_fit"] = round(max(after) / after[0], 3)
        result["memory_flat"] = result["memory_flat"] and max(after) <= MEMORY_SLACK * after[0]
        result["fit"] = fit
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    write_results(out, setup.stem, result, text)
    print(text)


if __name__ == "__main__":
    main()
