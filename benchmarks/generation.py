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

    python benchmarks/generation.py                         # the recorded run
    python benchmarks/generation.py --sizes 2000,20000 --samples 4000 --repeats 1   # quick

Writes ``<out>/generation.json`` and ``<out>/generation.md``, and prints the table.
"""

from __future__ import annotations

import argparse
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

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EPS = 0.1
BOUNDS = (0.0, 1.0)
TARGET_RATIO = 0.9
MEMORY_SLACK = 1.05


def digits_stream(samples: int, batch_size: int):
    """The digits (train then test) repeated to `samples`, as a batched tf.data stream."""
    import numpy as np
    import tensorflow as tf

    from advgrad import data

    ds = data.digits()
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    repeats = -(-samples // len(y))
    return (
        tf.data.Dataset.from_tensor_slices((x, y)).repeat(repeats).take(samples).batch(batch_size)
    )


def digits_arrays(samples: int):
    import numpy as np

    from advgrad import data

    ds = data.digits()
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    index = np.arange(samples) % len(y)
    return np.ascontiguousarray(x[index]), np.ascontiguousarray(y[index])


def attack_of(steps: int):
    from advgrad.attacks import PGD

    return PGD(eps=EPS, steps=steps, bounds=BOUNDS)


# ---------------------------------------------------------------------- memory
def memory_child(args: argparse.Namespace) -> None:
    """Run in a subprocess: generate `args.child` samples, print peak RSS as JSON."""
    from advgrad import zoo
    from advgrad.generation import generate

    model = zoo.load("digits-cnn")
    out = tempfile.mkdtemp(prefix="advgrad-gen-bench-")
    try:
        started = time.perf_counter()
        manifest = generate(
            model,
            digits_stream(args.child, args.batch_size),
            attack_of(args.steps),
            out,
            shard_size=args.shard_size,
            format=args.format,
            batch_size=args.batch_size,
        )
        seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in pathlib.Path(out).iterdir())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "samples": manifest["data"]["samples"],
                "shards": len(manifest["shards"]),
                "seconds": round(seconds, 2),
                "bytes_written": size,
                "peak_rss_mib": round(peak_kib / 1024, 1),
            }
        )
    )


def measure_memory(args: argparse.Namespace, sizes: list[int]) -> list[dict]:
    rows = []
    for samples in sizes:
        command = [sys.executable, __file__, "--child", str(samples)]
        command += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
        command += ["--shard-size", str(args.shard_size), "--format", args.format]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"memory: {samples} samples -> peak RSS {row['peak_rss_mib']} MiB", flush=True)
    return rows


# ------------------------------------------------------------------ throughput
def measure_throughput(args: argparse.Namespace) -> dict:
    from advgrad import zoo
    from advgrad.batching import seed_of
    from advgrad.generation import generate

    model = zoo.load("digits-cnn")
    attack = attack_of(args.steps)
    x, y = digits_arrays(args.samples)
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
    for run in runs.values():  # warm-up: traces, caches
        run()
    times: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for round_ in range(args.repeats):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
        print(f"throughput round {round_ + 1}/{args.repeats} done", flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: args.samples / v for k, v in median.items()}
    alone = times["attack alone"]
    paired = {  # per round: attack-alone time / generation time, timed back to back
        k: statistics.median(a / g for a, g in zip(alone, v, strict=True))
        for k, v in times.items()
        if k != "attack alone"
    }
    return {
        "samples": args.samples,
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "samples_per_second": {k: round(v, 1) for k, v in rate.items()},
        "ratio_to_attack_alone": {k: round(v, 3) for k, v in paired.items()},
        "ratio_of_medians": {
            k: round(rate[k] / rate["attack alone"], 3) for k in rate if k != "attack alone"
        },
    }


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
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "advgrad": __version__,
        "loadavg": list(os.getloadavg()),
    }


def markdown(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    lines = [
        "# advgrad.generate: memory and throughput",
        "",
        f"- Date: {m['date']}; {m['cpus_usable']} usable CPUs, {m['platform']}",
        f"- TensorFlow {m['tensorflow']}, Keras {m['keras']}, NumPy {m['numpy']}, "
        f"advgrad {m['advgrad']}; load average at the end {m['loadavg']}",
        f"- Model `digits-cnn`; attack PGD-{s['steps']} (Linf eps={EPS}, bounds {list(BOUNDS)}); "
        f"batch {s['batch_size']}, shard {s['shard_size']} samples",
        "",
        f"## Peak memory (format {s['format']}, data streamed through tf.data, one subprocess "
        "per size)",
        "",
        "| samples | shards | seconds | written | peak RSS |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in result["memory"]:
        lines.append(
            f"| {row['samples']:,} | {row['shards']} | {row['seconds']} | "
            f"{row['bytes_written'] / 2**20:.1f} MiB | {row['peak_rss_mib']} MiB |"
        )
    ok = "yes" if result["memory_flat"] else "NO"
    lines += [
        "",
        f"Flat (largest <= {MEMORY_SLACK} x smallest): **{ok}** (ratio {result['memory_ratio']}).",
        "",
        f"## Throughput ({result['throughput']['samples']:,} samples in memory, "
        f"{s['repeats']} rounds after a warm-up)",
        "",
        "samples/s from the median time; ratio: median over rounds of the paired ratio "
        "(attack-alone time / generation time); ratio of medians beside it.",
        "",
        "| run | median time | samples/s | ratio to the attack alone | ratio of medians | target |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    t = result["throughput"]
    for name, seconds in t["median_seconds"].items():
        ratio = t["ratio_to_attack_alone"].get(name)
        mark = "-" if ratio is None else f"{ratio:.3f}"
        plain = t["ratio_of_medians"].get(name)
        plain = "-" if plain is None else f"{plain:.3f}"
        target = "-" if ratio is None else f">= {TARGET_RATIO} ({'yes' if ratio >= 0.9 else 'NO'})"
        rate = t["samples_per_second"][name]
        lines.append(f"| {name} | {seconds:.2f} s | {rate:,.0f} | {mark} | {plain} | {target} |")
    lines += [
        "",
        "Generation includes what the attack alone does not: the clean and adversarial "
        "predictions (the correctness flags), the norms, the data digest, and the writing "
        "(on a background thread, overlapping the next batches' attack).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,50000", help="samples per memory run")
    parser.add_argument("--samples", type=int, default=10000, help="samples per throughput run")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=2500)
    parser.add_argument("--format", default="tfrecord", choices=["tfrecord", "npz"])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        memory_child(args)
        return
    sizes = [int(v) for v in args.sizes.split(",")]
    memory = measure_memory(args, sizes)
    throughput = measure_throughput(args)
    peaks = [row["peak_rss_mib"] for row in memory]
    result = {
        "machine": machine(),
        "settings": {
            "sizes": sizes,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "shard_size": args.shard_size,
            "format": args.format,
            "repeats": args.repeats,
            "eps": EPS,
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
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "generation.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (out / "generation.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
