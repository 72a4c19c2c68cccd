"""Saliency benchmark: speed against the forward+backward floor, completeness, deletion and
model-randomisation checks of `advgrad.saliency`.

    python benchmarks/saliency.py                 # the recorded run (~3 min on 2 CPUs)
    python benchmarks/saliency.py --repeats 3     # quicker
    PYTHONPATH=/path/to/tf-keras-vis python benchmarks/saliency.py   # side by side

Measured on the zoo's `digits-cnn` and the 450 test images of `advgrad.data.digits()` (and
the zoo's two-input tabular model on its 143 test samples, for completeness):

- Speed. Integrated gradients with 64 steps (`integrated_gradients(model, x)`, numpy in and
  out, end to end) against the floor of 64 forward+backward passes of the same model on the
  same 450 images inside ONE `tf.function` (`benchmarks/speed.py`'s `make_floor`); SmoothGrad
  with 50 samples against 50 passes; the vanilla gradient against 1 pass. Protocol of
  `speed.py`: warm-up calls first, then rounds in which each timed call is bracketed by
  floor runs (F a F b F ...); the ratio is the median over rounds of time / mean of the
  bracketing floors. A per-step Python loop of engine calls (64 `output_gradients` calls
  on interpolated inputs, what one writes without batching) and tf-keras-vis (when
  importable; it has no integrated gradients) are timed the same way.
- Completeness of integrated gradients: per sample, |sum(attributions) - (f(x) - f(0))| /
  |f(x) - f(0)|, for each quadrature rule at 64 steps (and 256).
- Deletion test: per method, the k pixels ranked highest (|attribution|), inverted within the
  data's bounds (v -> low + high - v), vs k random pixels (5 draws): mean |change| of the
  target logit over the 450 images, k = 4, 8, 16.
- Model randomisation (Adebayo et al. 2018): Spearman rank correlation of each method's maps
  (absolute, and signed), trained vs re-initialised weights, mean over the 450 images.

Writes `<out>/saliency.json` (strict JSON: an undefined correlation or ratio, or any
non-finite number, is null) and `<out>/saliency.md` ("undefined" where a figure is).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# _common puts the repository and benchmarks/ on sys.path.
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import ROOT, write_results  # noqa: E402
from speed import _paired, machine_info, make_floor, time_bracketed  # noqa: E402

import advgrad  # noqa: E402
from advgrad import data, saliency, zoo  # noqa: E402
from advgrad._io import json_text  # noqa: E402

STEPS = 64
SMOOTH_SAMPLES = 50
IG_TARGET = 1.2
KS = (4, 8, 16)


def _runner(fn):
    def run():
        out = fn()
        np.asarray(out)

    return run


def _floor_runner(fn, x, y):
    xt, yt = tf.constant(x), tf.constant(y)

    def run():
        fn(xt, yt).numpy()

    return run


def _python_loop_ig(model, x, targets, steps: int):
    """Integrated gradients as a per-step Python loop of engine calls (no batching)."""
    points = (np.arange(steps) + 0.5) / steps
    total = np.zeros_like(x)
    for a in points:
        total += advgrad.output_gradients(model, (a * x).astype(x.dtype), output_index=targets)
    return x * total / steps


def speed(model, x, targets, repeats: int, warmup: int) -> dict:
    y = targets.astype(np.int64)
    shape = x.shape[1:]
    floors = {n: _floor_runner(make_floor(model, shape, n), x, y) for n in (1, STEPS, 50)}
    members = {
        "integrated_gradients": [
            (
                f"IG {STEPS} steps (riemann_middle, default)",
                _runner(lambda: saliency.integrated_gradients(model, x, targets, steps=STEPS)),
            ),
            (
                f"IG {STEPS} steps, riemann_middle, batch_size=4096 rows",
                _runner(
                    lambda: saliency.integrated_gradients(
                        model, x, targets, steps=STEPS, batch_size=4096
                    )
                ),
            ),
            (
                f"IG {STEPS} steps (gausslegendre)",
                _runner(
                    lambda: saliency.integrated_gradients(
                        model, x, targets, steps=STEPS, method="gausslegendre"
                    )
                ),
            ),
            (
                f"IG {STEPS} steps, per-step Python loop of output_gradients",
                _runner(lambda: _python_loop_ig(model, x, targets, STEPS)),
            ),
        ],
        "smoothgrad": [
            (
                f"SmoothGrad {SMOOTH_SAMPLES} samples",
                _runner(lambda: saliency.smoothgrad(model, x, targets)),
            )
        ],
        "vanilla": [("vanilla gradient", _runner(lambda: saliency.vanilla(model, x, targets)))],
    }
    notes = {}
    if importlib.util.find_spec("tf_keras_vis") is not None:
        import tf_keras_vis
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.utils.scores import CategoricalScore

        vis = Saliency(model, clone=True)
        score = CategoricalScore(list(targets))
        members["smoothgrad"].append(
            (
                f"tf-keras-vis SmoothGrad {SMOOTH_SAMPLES} samples",
                _runner(
                    lambda: vis(
                        score,
                        x,
                        smooth_samples=SMOOTH_SAMPLES,
                        smooth_noise=0.15,
                        keepdims=True,
                        normalize_map=False,
                    )
                ),
            )
        )
        members["vanilla"].append(
            (
                "tf-keras-vis vanilla gradient",
                _runner(lambda: vis(score, x, keepdims=True, normalize_map=False)),
            )
        )
        notes["tf-keras-vis"] = getattr(tf_keras_vis, "__version__", "installed")
    else:
        notes["tf-keras-vis"] = "not installed (pip install tf-keras-vis): not timed"
    notes["captum"] = "PyTorch only: not run here (no PyTorch model of the same weights)"
    notes["tf-explain"] = "not installed here: not timed"
    passes = {"integrated_gradients": STEPS, "smoothgrad": 50, "vanilla": 1}
    for group in members.values():
        for _, fn in group:
            for _ in range(warmup):
                fn()
    for fn in floors.values():
        for _ in range(warmup):
            fn()
    groups = [(f"floor_{passes[k]}", floors[passes[k]], v) for k, v in members.items()]
    timed, floor_times = time_bracketed(groups, repeats)
    rows = []
    for kind, group in members.items():
        for name, _ in group:
            rec = timed[name]
            rows.append(
                {
                    "name": name,
                    "passes": passes[kind],
                    "seconds": statistics.median(rec["wall"]),
                    "floor_seconds": statistics.median(rec["floor_wall"]),
                    "ratio": _paired(rec["wall"], rec["floor_wall"]),
                    "best_round_ratio": min(rec["wall"]) / min(rec["floor_wall"]),
                    "cpu_ratio": _paired(rec["cpu"], rec["floor_cpu"]),
                    "target": IG_TARGET if name.startswith(f"IG {STEPS} steps (") else None,
                }
            )
    floor_one = statistics.median(floor_times["floor_1"]["wall"])
    floor_n = statistics.median(floor_times[f"floor_{STEPS}"]["wall"])
    return {"rows": rows, "notes": notes, "floor_linearity": floor_n / (STEPS * floor_one)}


def completeness(model, x, baseline, rules=saliency.RULES, steps=(STEPS, 256)) -> list[dict]:
    targets = saliency.predicted_targets(model, x)
    gap = saliency.scores(model, x, targets) - saliency.scores(model, baseline, targets)
    out = []
    for rule in rules:
        # exactly n steps per sample (tolerance None), then the default: 64 steps, and the
        # samples over 1% of their score change integrated again with more
        for n, tolerance in [*((n, None) for n in steps), (STEPS, 0.01)]:
            _, delta = saliency.integrated_gradients(
                model, x, targets, steps=n, method=rule, return_delta=True, tolerance=tolerance
            )
            rel = np.abs(delta) / np.abs(gap)
            out.append(
                {
                    "rule": rule,
                    "steps": n if tolerance is None else f"{n}, tolerance {tolerance:g}",
                    "max": float(rel.max()),
                    "p95": float(np.quantile(rel, 0.95)),
                    "median": float(np.median(rel)),
                    "within_1pct": float((rel < 0.01).mean()),
                    "aggregate": float(np.abs(delta).sum() / np.abs(gap).sum()),
                    "max_abs": float(np.abs(delta).max()),
                    "smallest_gap": float(np.abs(gap).min()),
                }
            )
    return out


def deletion(model, x, bounds) -> list[dict]:
    targets = saliency.predicted_targets(model, x)
    rows = []
    for method in saliency.METHODS:
        maps = saliency.attribute(model, x, method, targets)
        for r in saliency.deletion_test(model, x, maps, k=KS, target=targets, bounds=bounds):
            rows.append(
                {
                    "method": method,
                    "k": r.k,
                    "ranked_change": r.ranked_change,
                    "random_change": r.random_change,
                    "ratio": r.ratio,
                    "ranked_drop": r.ranked_drop,
                    "random_drop": r.random_drop,
                }
            )
    return rows


def sanity(model, x) -> list[dict]:
    result = saliency.sanity_check(model, x)
    return [
        {
            "method": m,
            "rank_correlation_abs": r.correlation,
            "rank_correlation_signed": r.signed_correlation,
            "flagged": r.flagged,
        }
        for m, r in result.items()
    ]


def _fixed(v: float | None, digits: int = 3) -> str:
    """A figure with `digits` decimals; "undefined" for None (a correlation or ratio with no
    value: `advgrad.saliency.sanity_check`, `deletion_test`) or NaN; inf stays inf."""
    if v is None or math.isnan(v):
        return "undefined"
    return f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "undefined" if v is None or math.isnan(v) else f"{100 * v:.2f}%"


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# advgrad saliency: speed, completeness, deletion, model randomisation",
        "",
        f"- Date: {m['date']}",
        f"- Machine: {m['cpu_model']}, {m['cpu_count']} CPUs ({m['cpus_usable']} usable), "
        f"GPUs: {', '.join(m['gpus']) or 'none'}",
        f"- TensorFlow {m['tensorflow']}, Keras {m['keras']}, NumPy {m['numpy']}, "
        f"advgrad {m['advgrad']}",
        f"- Load average (1/5/15 min) at start: {m['loadavg_start']}, at end: "
        f"{result['loadavg_end']} (a shared machine: other jobs ran at the same time; the "
        "bracketed ratios cancel slow drift, not bursts)",
        f"- Settings: {result['settings']}",
        "",
        "## Speed (digits-cnn, 450 test images, one batch)",
        "",
        "time = median wall time (numpy in and out); floor = median of the same number of "
        "forward+backward passes in one `tf.function` (`benchmarks/speed.py`'s `make_floor`); "
        "ratio = median over rounds of time / mean of the floor runs just before and after.",
        "",
        "| method | passes | time | floor | ratio | target | ok | best-round ratio | "
        "CPU-time ratio |",
        "|---|---:|---:|---:|---:|---:|:---:|---:|---:|",
    ]
    for row in result["speed"]["rows"]:
        target = row["target"]
        ok = "-" if target is None else ("yes" if row["ratio"] <= target else "no")
        lines.append(
            f"| {row['name']} | {row['passes']} | {row['seconds'] * 1000:.1f} ms | "
            f"{row['floor_seconds'] * 1000:.1f} ms | {row['ratio']:.3f} | "
            f"{'-' if target is None else f'<= {target}'} | {ok} | "
            f"{row['best_round_ratio']:.3f} | {row['cpu_ratio']:.3f} |"
        )
    lines += [
        "",
        f"Floor linearity (floor of {STEPS} passes / ({STEPS} x floor of 1)): "
        f"{result['speed']['floor_linearity']:.3f}. Others: "
        + "; ".join(f"{k}: {v}" for k, v in result["speed"]["notes"].items())
        + ".",
        "",
        "## Completeness of integrated gradients",
        "",
        "Per sample: |sum(attributions) - (f(x) - f(baseline))| / |f(x) - f(baseline)|, "
        "baseline zeros, target the predicted class's logit. aggregate = sum of |gaps| / sum "
        "of |f(x) - f(baseline)|. steps N: exactly N per sample (tolerance=None); "
        "'64, tolerance 0.01' (the default): the samples over 1% at 64 steps integrated "
        "again with twice the steps, up to max_steps.",
        "",
        "| model | rule | steps | max | p95 | median | samples within 1% | aggregate | "
        "max abs gap | smallest score gap |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, rows in result["completeness"].items():
        for r in rows:
            lines.append(
                f"| {model} | {r['rule']} | {r['steps']} | {_pct(r['max'])} | {_pct(r['p95'])} "
                f"| {_pct(r['median'])} | {_pct(r['within_1pct'])} | {_pct(r['aggregate'])} | "
                f"{_fixed(r['max_abs'], 4)} | {_fixed(r['smallest_gap'], 4)} |"
            )
    lines += [
        "",
        "## Deletion test (digits-cnn, 450 test images)",
        "",
        "The k pixels a map ranks highest (|attribution|) inverted within the bounds "
        "(v -> 1 - v), against k random pixels (5 draws); mean |change| of the target logit.",
        "",
        "| method | k | ranked: mean abs change | random: mean abs change | ratio | "
        "ranked: mean drop | random: mean drop |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["deletion"]:
        lines.append(
            f"| {r['method']} | {r['k']} | {_fixed(r['ranked_change'])} | "
            f"{_fixed(r['random_change'])} | {_fixed(r['ratio'], 2)} | "
            f"{_fixed(r['ranked_drop'])} | {_fixed(r['random_drop'])} |"
        )
    lines += [
        "",
        "## Model randomisation (digits-cnn, 450 test images)",
        "",
        "Spearman rank correlation of each method's maps, trained vs re-initialised weights "
        "(`advgrad.saliency.sanity_check`, default settings), mean over images. Flagged: >= "
        "0.5 on the absolute maps (the map barely depends on the weights).",
        "",
        "| method | rank correlation (abs) | rank correlation (signed) | flagged |",
        "|---|---:|---:|:---:|",
    ]
    for r in result["sanity"]:
        lines.append(
            f"| {r['method']} | {_fixed(r['rank_correlation_abs'])} | "
            f"{_fixed(r['rank_correlation_signed'])} | {'yes' if r['flagged'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    machine = machine_info()
    model = zoo.load("digits-cnn")
    digits = data.digits()
    x = np.asarray(digits.x_test)
    targets = saliency.predicted_targets(model, x)
    start = time.perf_counter()
    result = {
        "machine": machine,
        "settings": f"steps={STEPS}, SmoothGrad samples={SMOOTH_SAMPLES} noise=0.15, "
        f"repeats={args.repeats}, warm-up={args.warmup}, k={list(KS)}",
        "speed": speed(model, x, targets, args.repeats, args.warmup),
    }
    tabular_model = zoo.load("tabular-two-input")
    tabular = data.breast_cancer_two_input().x_test
    result["completeness"] = {
        "digits-cnn": completeness(model, x, np.zeros_like(x)),
        "tabular-two-input": completeness(
            tabular_model, tabular, {k: np.zeros_like(v) for k, v in tabular.items()}
        ),
    }
    result["deletion"] = deletion(model, x, digits.bounds)
    result["sanity"] = sanity(model, x)
    result["seconds"] = time.perf_counter() - start
    try:
        result["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        result["loadavg_end"] = None
    print(write(result, pathlib.Path(args.out)))
    return 0


def write(result: dict, out: pathlib.Path) -> str:
    """Write `out`/saliency.json (strict JSON: None and non-finite numbers as null) and
    `out`/saliency.md; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    write_results(out, "saliency", result, text, dumps=json_text)
    return text


if __name__ == "__main__":
    raise SystemExit(main())
