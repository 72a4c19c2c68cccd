"""Loading benchmark: what checking every shard costs `advgrad.load_generated`.

`load_generated` reads each shard file once, compares its size and SHA-256 with the manifest,
then parses the arrays from those bytes (issue 24: files read back are checked, never
trusted). This times `--epochs` full passes over one ``load_generated(out, batch_size=128)``
dataset (every batch pulled, as ``fit`` does) with the check and without it (the same
pipeline with the hash comparison switched off: ``advgrad.generation.loading._CHECK_HASH``),
in `--repeats` rounds, the order alternated each round. On a machine shared with other work
a single timing moves by tens of percent, so the cost is taken from the best (least
disturbed) timing of each: best checked / best unchecked - 1, with the median of the paired
rounds' ratios beside it. Both scatter by about 10 % on a 2-CPU machine shared with other
work, more than the effect, so the figure judged against the target (at most 5 %) is the
check's own work: SHA-256 of the same bytes (in memory, best of the rounds) against the
best unchecked time.

Folders (written once by `advgrad.generate`, FGSM, shards of 500, in both formats, into a
temporary folder; the files are in the page cache when timed, as in every epoch after the
first):

- ``digits``: the digits (train then test) repeated to `--samples` (8x8x1 float32: 256
  bytes of input a sample, about 330 bytes a sample in all);
- ``rgb32``: uniform random 32x32x3 float32 inputs (12 KiB a sample, CIFAR-sized) against a
  small dense model: the case where the bytes hashed weigh most against the work per sample.

    python benchmarks/loading.py                   # the recorded run
    python benchmarks/loading.py --samples 2000 --repeats 3   # quick

Writes ``<out>/loading.json`` and ``<out>/loading.md``, and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# _common puts the repository and benchmarks/ on sys.path.
from _common import ROOT, write_results  # noqa: E402

TARGET = 0.05
SHARD = 500
BATCH = 128


def _data(kind: str, samples: int):
    import keras
    import numpy as np

    from advgrad import data, zoo

    if kind == "digits":
        ds = data.digits()
        x = np.concatenate([ds.x_train, ds.x_test])
        y = np.concatenate([ds.y_train, ds.y_test])
        reps = -(-samples // len(y))
        x, y = np.tile(x, (reps, 1, 1, 1))[:samples], np.tile(y, reps)[:samples]
        return zoo.load("digits-cnn"), x, y
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (samples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, samples)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, x, y


def write_folders(root: pathlib.Path, samples: int) -> dict[str, pathlib.Path]:
    from advgrad.attacks import FGSM
    from advgrad.generation import generate

    folders = {}
    for kind in ("digits", "rgb32"):
        model, x, y = _data(kind, samples)
        for fmt in ("npz", "tfrecord"):
            out = root / f"{kind}-{fmt}"
            generate(
                model, (x, y), FGSM(eps=0.1, bounds=(0.0, 1.0)), out,
                shard_size=SHARD, format=fmt, batch_size=500,
            )  # fmt: skip
            folders[f"{kind}-{fmt}"] = out
    return folders


def timed(out: pathlib.Path, check: bool, epochs: int) -> float:
    """Seconds of `epochs` full passes over one `load_generated` dataset (as `fit` does)."""
    from advgrad.generation import loading

    loading._CHECK_HASH = check
    try:
        dataset = loading.load_generated(out, batch_size=BATCH)
        start = time.perf_counter()
        for _ in range(epochs):
            for _, y in dataset:
                assert y.shape[0] > 0
        return time.perf_counter() - start
    finally:
        loading._CHECK_HASH = True


def hash_only(out: pathlib.Path, epochs: int) -> tuple[float, int]:
    """Seconds to SHA-256 every shard's bytes (already in memory) `epochs` times, and the
    bytes of one epoch."""
    blobs = [p.read_bytes() for p in sorted(out.glob("shard-*"))]
    start = time.perf_counter()
    for _ in range(epochs):
        for blob in blobs:
            hashlib.sha256(blob).hexdigest()
    return time.perf_counter() - start, sum(len(b) for b in blobs)


def measure(folders: dict[str, pathlib.Path], repeats: int, epochs: int) -> list[dict]:
    rows = []
    for name, out in folders.items():
        for check in (True, False):  # warm-up: trace, page cache
            timed(out, check, 1)
        times: dict[bool, list[float]] = {True: [], False: []}
        hashes = []
        for r in range(repeats):
            for check in (True, False) if r % 2 == 0 else (False, True):
                times[check].append(timed(out, check, epochs))
            hashes.append(hash_only(out, epochs))
        paired = [c / u for c, u in zip(times[True], times[False], strict=True)]
        best = {check: min(t) for check, t in times.items()}
        rows.append(
            {
                "folder": name,
                "bytes": hashes[0][1],
                "epochs": epochs,
                "checked_s": best[True],
                "unchecked_s": best[False],
                "cost_best": best[True] / best[False] - 1.0,
                "cost_paired_median": statistics.median(paired) - 1.0,
                "hash_s": min(h[0] for h in hashes),
                "hash_share": min(h[0] for h in hashes) / best[False],
                "rounds": repeats,
            }
        )
        print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict) -> str:
    return (
        f"| {row['folder']} | {row['bytes'] / 2**20:.1f} | {row['unchecked_s']:.3f} | "
        f"{row['checked_s']:.3f} | {100 * row['cost_best']:+.1f} % | "
        f"{100 * row['cost_paired_median']:+.1f} % | {row['hash_s'] * 1e3:.1f} ms "
        f"({100 * row['hash_share']:.1f} %) |"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=3, help="passes per timing")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        folders = write_folders(pathlib.Path(tmp), args.samples)
        header = (
            "| folder | shards, MiB | unchecked, s | checked, s | cost (best of each) | "
            "cost (median of paired rounds) | SHA-256 alone (share of unchecked) |\n"
            "|---|---|---|---|---|---|---|"
        )
        print(header)
        rows = measure(folders, args.repeats, args.epochs)
    worst = max(row["hash_share"] for row in rows)
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs (shared)",
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "samples": args.samples,
        "shard_size": SHARD,
        "batch_size": BATCH,
        "repeats": args.repeats,
        "epochs": args.epochs,
        "target": TARGET,
        "worst_hash_share": worst,
        "ok": worst <= TARGET,
    }
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Loading: the cost of checking every shard",
        "",
        "`python benchmarks/loading.py` "
        f"({meta['date']}, {meta['machine']}, Python {meta['python']}, TensorFlow "
        f"{meta['tensorflow']}): {args.epochs} full passes of one `load_generated(out, "
        f"batch_size={BATCH})` dataset over {args.samples} samples in shards of {SHARD}, with "
        "each shard's size and SHA-256 checked as it is read and without (the hash comparison "
        f"switched off), best of {args.repeats} rounds each (order alternated); files in the "
        "page cache. SHA-256 alone: hashing the same bytes in memory, against the best "
        "unchecked time.",
        "",
        header,
        *(_line(row) for row in rows),
        "",
        "The two A/B columns scatter by about 10 % here (other work on the same 2 CPUs); "
        "the SHA-256 column is the check's own work.",
        "",
        *(
            f"- {row['folder']}: SHA-256 {100 * row['hash_share']:.1f} % of a pass "
            + (
                "(target <= 5 %: met)"
                if row["hash_share"] <= TARGET
                else "(target <= 5 %: NOT met)"
            )
            for row in rows
        ),
        "",
        "Why large inputs miss it: a pass over CIFAR-sized float32 shards does little work a "
        "byte (the records are cut and copied: 100 to 200 MB/s end to end here), while SHA-256 "
        "runs at about 1 GB/s (SHA-NI) on this CPU: hashing every byte once is then about a "
        "tenth of the pass. Nothing cheaper checks the bytes against the manifest's SHA-256; "
        "in training the model's step, not the pass, sets the pace, and on a machine with a "
        "free core the hash of one shard could overlap the next's batches (it was not "
        "measurable here).",
        "",
    ]
    data = {"meta": meta, "rows": rows}
    write_results(out, "loading", data, "\n".join(lines), indent=1, allow_nan=False)
    print("\n".join(lines[len(rows) + 5 :]))
    return 0 if meta["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
