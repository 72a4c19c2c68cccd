"""Scaling benchmark: `advgrad.evaluate` throughput with 1, 2 and 4 replicas (issue 18).

The CPU is split into N logical devices (`tf.config.set_logical_device_configuration`) and
`evaluate` runs under `tf.distribute.MirroredStrategy` over them, so each attack chunk is
split into N sub-batches run side by side (`advgrad.replicas`). Devices must be configured
before TensorFlow starts: each replica count runs in its own process. Throughput is
samples per second of the whole `evaluate` call (clean predictions, attacks, bookkeeping),
the median over `--repeats` timed calls after one warm-up call; it is reported as a ratio to
1 replica (MirroredStrategy over one device), and the run without a strategy is recorded
too. Every process also records a digest of the per-sample outcomes: they must be the same
for every replica count.

Logical CPU devices share the machine's cores and thread pools: they show the overhead of
splitting and gathering, and how much parallel work the cores leave room for; on GPUs (one
replica per GPU, `devices=`) the same code scales with the devices.

    python benchmarks/scaling.py                     # PGD (10 steps), 1, 2, 4 replicas
    python benchmarks/scaling.py --suite pgd,apgd --steps 20 --repeats 5

Writes `benchmarks/results/scaling.json` and `.md` (or `--out`), and prints the table.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# _common puts the repository and benchmarks/ on sys.path.
from _common import RESULTS, ROOT, write_results  # noqa: E402

EPS = 0.1


def child(args: argparse.Namespace) -> dict:
    """One replica count, in this fresh process: split the CPU, time evaluate."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    count = args.child
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count
    )
    import advgrad
    from advgrad import data, zoo

    ds = data.digits()
    x, y = ds.x_test[: args.samples], ds.y_test[: args.samples]
    model = zoo.load("digits-cnn")
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(count)])
    settings = {"steps": args.steps, "bounds": ds.bounds}
    makers = {
        "pgd": lambda: advgrad.attacks.PGD(random_start=True, **settings),
        "apgd": lambda: advgrad.attacks.APGD(**settings),
    }
    suite = [makers[name]() for name in args.suite.split(",")]
    variants = {"strategy": strategy}
    if count == 1:
        variants["no strategy"] = None
    result = {"replicas": count, "samples": len(y)}
    for label, chosen in variants.items():
        run = lambda chosen=chosen: advgrad.evaluate(  # noqa: E731
            model,
            (x, y),
            suite=suite,
            eps=EPS,
            batch_size=args.batch_size,
            sanity=False,
            strategy=chosen,
        )
        report = run()  # warm-up: tracing
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            report = run()
            times.append(time.perf_counter() - start)
        outcomes = np.asarray(report.outcomes[EPS])
        result[label] = {
            "seconds": times,
            "median_s": statistics.median(times),
            "samples_per_s": len(y) / statistics.median(times),
            "robust_accuracy": report.robust_accuracy[EPS],
            "outcomes_sha256": hashlib.sha256(outcomes.tobytes()).hexdigest()[:16],
        }
    return result


def _merge(runs: list[dict]) -> dict:
    """One replica count over its rounds: every timing kept, the median of the medians."""
    row = {"replicas": runs[0]["replicas"], "samples": runs[0]["samples"]}
    for label in ("strategy", "no strategy"):
        if label not in runs[0]:
            continue
        medians = [run[label]["median_s"] for run in runs]
        median = statistics.median(medians)
        row[label] = {
            "seconds": [t for run in runs for t in run[label]["seconds"]],
            "round_medians_s": medians,
            "median_s": median,
            "samples_per_s": row["samples"] / median,
            "robust_accuracy": runs[0][label]["robust_accuracy"],
            "outcomes_sha256": sorted({run[label]["outcomes_sha256"] for run in runs}),
        }
    return row


def _machine_info() -> dict:
    spec = importlib.util.spec_from_file_location("speed", ROOT / "benchmarks" / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    return speed.machine_info()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", default="1,2,4", help="replica counts, comma-separated")
    parser.add_argument("--suite", default="pgd", help="attacks: pgd, apgd (comma-separated)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--samples", type=int, default=450)
    parser.add_argument("--batch-size", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per replica count")
    parser.add_argument("--out", default=str(RESULTS / "scaling"))
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0

    counts = [int(c) for c in args.replicas.split(",")]
    forwarded = [
        f"--suite={args.suite}",
        f"--steps={args.steps}",
        f"--samples={args.samples}",
        f"--batch-size={args.batch_size}",
        f"--repeats={args.repeats}",
    ]
    machine = _machine_info()
    rounds: dict[int, list[dict]] = {count: [] for count in counts}
    for _ in range(args.rounds):  # the replica counts interleaved: drift in load spreads
        for count in counts:
            command = [sys.executable, __file__, f"--child={count}", *forwarded]
            done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                sys.stderr.write(done.stderr[-4000:])
                return 1
            rounds[count].append(json.loads(lines[-1][len("RESULT ") :]))
    rows = [_merge(rounds[count]) for count in counts]
    base = rows[0]["strategy"]["samples_per_s"]
    for row in rows:
        row["ratio_to_1_replica"] = row["strategy"]["samples_per_s"] / base
    digests = {d for row in rows for d in row["strategy"]["outcomes_sha256"]}
    if "no strategy" in rows[0]:
        digests.update(rows[0]["no strategy"]["outcomes_sha256"])
    machine["loadavg_end"] = os.getloadavg()
    result = {
        "what": "evaluate throughput under MirroredStrategy over N logical CPU devices",
        "settings": {
            "model": "digits-cnn",
            "suite": args.suite,
            "steps": args.steps,
            "eps": EPS,
            "samples": args.samples,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "rounds": args.rounds,
        },
        "command": " ".join(["python", "benchmarks/scaling.py", *(argv or sys.argv[1:])]),
        "same_outcomes_everywhere": len(digests) == 1,
        "rows": rows,
        "machine": machine,
    }
    out = pathlib.Path(args.out)
    markdown = _markdown(result)
    write_results(out.parent, out.stem, result, markdown)  # <out>.json and <out>.md
    print(markdown)
    return 0


def _markdown(result: dict) -> str:
    s, m = result["settings"], result["machine"]
    lines = [
        "# Scaling: evaluate with N replicas (logical CPU devices)",
        "",
        f"`{result['command']}`: suite {s['suite']}, {s['steps']} steps, eps {s['eps']}, "
        f"{s['samples']} digits, batch {s['batch_size']}; per process {s['repeats']} timed "
        f"calls after a warm-up, {s['rounds']} processes per replica count (interleaved): "
        "the median of their medians.",
        "",
        "| replicas | samples/s | ratio to 1 replica | median s | robust accuracy |",
        "|---:|---:|---:|---:|---:|",
    ]
    first = result["rows"][0]
    if "no strategy" in first:
        r = first["no strategy"]
        lines.append(
            f"| no strategy | {r['samples_per_s']:.1f} | "
            f"{r['samples_per_s'] / first['strategy']['samples_per_s']:.2f} | "
            f"{r['median_s']:.2f} | {r['robust_accuracy']:.4f} |"
        )
    for row in result["rows"]:
        r = row["strategy"]
        lines.append(
            f"| {row['replicas']} | {r['samples_per_s']:.1f} | {row['ratio_to_1_replica']:.2f} | "
            f"{r['median_s']:.2f} | {r['robust_accuracy']:.4f} |"
        )
    lines += [
        "",
        f"Same per-sample outcomes for every replica count: {result['same_outcomes_everywhere']}.",
        "",
        f"Machine: {m.get('cpu_model')}, {m.get('cpus_usable')} usable CPUs, TensorFlow "
        f"{m.get('tensorflow')}; load average at start {m.get('loadavg_start')}, at end "
        f"{[round(v, 2) for v in m.get('loadavg_end', [])]}. Logical CPU devices share the "
        "same cores: the ratios show the cost of splitting and gathering and the parallel "
        "room the cores leave, not the scaling of separate devices.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
