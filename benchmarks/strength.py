"""Strength benchmark: robust accuracy, time and gradients/queries of each attack and suite.

On the digits models (the zoo's `digits-cnn`, 8x8x1 images, and `digits-mlp`, the same images
flattened) and the digits test split (450 images, `--n` to take fewer), Linf eps 0.1, bounds
(0, 1), a fixed seed, every attack runs on every test image as a user calls it:
`attack.run(model, x, y)` (numpy in, numpy out). Rows:

- PGD-40 (step 2.5 eps / 40, random start) and PGD-40 x 5 restarts, the usual baselines;
- APGD-CE (100 steps), APGD-T (targeted DLR, 9 targets x 100 steps), FAB-T (9 targets x 100
  steps) and Square (5,000 queries), the members of the "standard" suite, each alone;
- the suites "fast" (APGD-CE -> APGD-T) and "standard" (APGD-CE -> APGD-T -> FAB-T -> Square)
  through `advgrad.evaluate(..., individual=False, sanity=False)`: the worst-case cascade,
  each attack only on the samples still robust; seconds, gradients and queries come from
  the report (`report.seconds`, `report.gradients`, `report.queries`).

Robust accuracy of a single attack = the fraction of samples classified correctly both on the
clean input and on the returned x_adv. Every x_adv is checked against the threat model (within
eps of x in Linf, within the bounds, finite); a sample outside it would not count as fooled
(as in `advgrad.evaluate`), and the count of such samples is reported (0 expected).

Time: every attack (and suite) is first called untimed on the first 8 images with the same
settings (this traces the compiled loop; the trace is cached on the model and reused), then
the timed call covers all `--n` images in one batch. Gradients per sample are what the
attack reports (`AttackResult.gradients`; for the suites the report's total over the `--n`
samples, i.e. per evaluated sample); queries per sample are forward passes (one per gradient
for gradient attacks; the suites' count includes `evaluate`'s check of each x_adv).

With ART installed (the `bench` extra), ART's `AutoAttack` (its defaults: APGD-CE and
APGD-DLR with 5 random inits each, DeepFool, Square with 5 restarts; batch 32) and
`AutoProjectedGradientDescent` (CE, 100 steps, one random init like advgrad's APGD-CE) run
through `TensorFlowV2Classifier` (the logits model, sparse cross-entropy from logits,
clip_values (0, 1)) on the first `--art-n` images (ART is slow), next to advgrad's standard
suite and APGD-CE on the same images. The issue's must-hold: the standard suite's robust
accuracy is never above ART AutoAttack's, in at most a tenth of its time.

Gradient masking: the digits CNN behind an input quantiser to 1/32 steps whose gradient is
zero (`tf.stop_gradient(tf.round(32 x) / 32)`; the clean digits are multiples of 1/16, so
the clean accuracy is unchanged). PGD-40 then sees only zero gradients; Square, which needs
none, sees through it. Why 1/32 and not 1/16: a pixel moved by up to eps = 0.1 = 1.6/16
rounds to up to 2/16 = 0.125 away, so a 1/16 quantiser *enlarges* the threat model and
the masked model is far less robust than the unmasked one (Square 0.23 against PGD-40's
0.48 on the unmasked CNN, 1,000 queries, 450 images); with 1/32 steps a perturbation of 0.1
= 3.2/32 rounds to at most 3/32 < eps, so every input the masked model sees is one the
unmasked model could be attacked with, and its true robust accuracy is at least the
unmasked one's. Recorded: the robust accuracy of PGD-40 and of the standard suite on
the masked model against PGD-40 on the unmasked one, and the sanity flags that
`advgrad.evaluate(..., sanity=True)` raises on the masked model (with the standard suite,
and with PGD-40 alone).

Minimal-norm table (`--minimal-norm also|only|no`, default also; written to
`<out>/minimal-norm.json` and `.md`, plot in `<out>/minimal-norm/`): on digits-cnn in L2
without a budget, DeepFool, FMN and CW-L2 (9 x 100) on all `--n` images (median norm of
the returned perturbations, inf where failed; seconds; gradients; every reported norm
checked against the returned perturbation), ART's `CarliniL2Method` (9 x 100) and
`DeepFool` with advgrad's CW-L2 and DeepFool on the first `--art-n` images, and the FMN
curve (`evaluate(..., eps="curve")`) against the fixed-eps standard suite in L2 at eps
0.25, 0.5, 0.75, 1.0 on the first `--curve-n` images (default 200).

The panel (`--panel also|only|no`, default also; `--panel-models`, `--panel-n`, default 100
test images each; written to `<out>/strength-adaptive/adaptive-panel.json` and `.md`): the
suites standard, fast and adaptive in one run on digits-cnn (Linf 0.1), digits-cnn-pgd
(0.2), a TRADES digits CNN (0.2; trained on first use into `PANEL_CACHE`), the masked CNN
above (0.1), a 3-class MLP on scikit-learn's wine data (0.1) and the MNIST CNNs (0.3):
robust accuracy, the samples only one of a suite and standard breaks, gradients and queries
per sample, the cost ratio to standard, seconds, and what the adaptive suite decided. Must
hold (issue 28): adaptive leaves at most one sample robust that standard breaks, at most
1/10 of standard's gradients + queries (1/4 where it detected masking).

    python benchmarks/strength.py --panel only    # the panel alone
    python benchmarks/strength.py                 # the recorded run (see benchmarks/README.md)
    python benchmarks/strength.py --models digits-cnn --minimal-norm only --art-n 50
    python benchmarks/strength.py --quick         # 48 images, few steps: a smoke run
    python benchmarks/strength.py --models digits-cnn --n 200 --art-n 50

Writes `<out>/strength.json` and `<out>/strength.md`, and prints the tables. The load
average is recorded: on a shared machine the seconds move with it.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import pathlib
import platform
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# _common puts the repository and benchmarks/ on sys.path.
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import ROOT, write_results  # noqa: E402

import advgrad  # noqa: E402
from advgrad import attacks, data, zoo  # noqa: E402
from advgrad.gradients import trace_count  # noqa: E402

BOUNDS = (0.0, 1.0)
WARMUP_IMAGES = 8
QUANT_LEVELS = 32  # 1/32 steps: see the module docstring (1/16 would enlarge eps)
MODELS = ("digits-cnn", "digits-mlp")


# ----------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict:
    import keras

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "advgrad": advgrad.__version__,
        "art": None,
        "loadavg_start": _loadavg(),
    }
    if importlib.util.find_spec("art") is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import art

        info["art"] = art.__version__
    return info


# ------------------------------------------------------------------------------ models


def _quantiser_layer():
    """A Keras layer that rounds its input to 1/QUANT_LEVELS steps with a zero gradient."""
    import keras

    class ZeroGradientQuantise(keras.layers.Layer):
        def call(self, x):
            # stop_gradient around the whole output: d(output)/dx = 0 everywhere (not the
            # straight-through `x + stop_gradient(q(x) - x)`, whose gradient is 1).
            return tf.stop_gradient(tf.round(x * QUANT_LEVELS) / QUANT_LEVELS)

    return ZeroGradientQuantise(name="zero_gradient_quantise")


def masked(model):
    """`model` behind the zero-gradient quantiser (a new Keras model sharing its weights)."""
    import keras

    inputs = keras.Input(model.input_shape[1:], name="image")
    return keras.Model(inputs, model(_quantiser_layer()(inputs)), name="masked_" + model.name)


def load_models(names: list[str], n: int) -> list[dict]:
    entries = []
    for name in names:
        if name not in MODELS:
            raise SystemExit(f"unknown model {name!r}: use {', '.join(MODELS)}")
        ds = data.digits(flat=name == "digits-mlp")
        x, y = np.asarray(ds.x_test)[:n], np.asarray(ds.y_test)[:n]
        model = zoo.load(name)
        entries.append(
            {
                "name": name,
                "model": model,
                "x": x,
                "y": y,
                "info": {
                    "parameters": int(model.count_params()),
                    "input_shape": list(x.shape[1:]),
                    "images": int(len(y)),
                    "data": f"advgrad.data.digits(flat={name == 'digits-mlp'}).test[:{len(y)}]",
                    "clean_accuracy": round(_accuracy(model, x, y), 4),
                },
            }
        )
    return entries


# ------------------------------------------------------------------------------- panel

PANEL_CACHE = pathlib.Path(
    os.environ.get("ADVGRAD_BENCH_CACHE", "~/.cache/advgrad/bench")
).expanduser()
"""Where the panel's own models (not in the zoo) are kept once trained."""


def trades_model(seed: int = 0, epochs: int = 10):
    """The digits CNN trained with TRADES (beta 6, PGD-7 at Linf eps 0.2, `epochs` epochs,
    batch 32, Adam 3e-3 cosine, seed 0; `benchmarks/training.py`'s recipe, fewer epochs),
    cached in `PANEL_CACHE` (a `.keras` file, loaded with ``safe_mode``)."""
    import keras

    from advgrad import training

    path = PANEL_CACHE / f"digits-cnn-trades-{epochs}.keras"
    if path.exists():
        return keras.models.load_model(path, safe_mode=True)
    ds = data.digits()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model = zoo._digits_cnn()
    pgd = attacks.PGD(eps=0.2, steps=7, bounds=BOUNDS)
    robust = training.adversarial(model, pgd, objective="trades", beta=6.0, seed=seed)
    steps = epochs * int(np.ceil(len(ds.y_train) / 32))
    robust.compile(
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=training.STEPS_PER_EXECUTION,
    )
    batches = training.EpochBatches(ds.x_train, ds.y_train, batch_size=32, seed=seed)
    robust.fit(batches.dataset, epochs=epochs, callbacks=[batches], shuffle=False, verbose=0)
    PANEL_CACHE.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def wine_data(seed: int = 0):
    """scikit-learn's wine data (178 samples, 13 features, 3 classes), min-max scaled to
    [0, 1] on its training part, split 2:1 (stratified, `seed`): (x_train, y_train, x_test,
    y_test), float32 and int64."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    x, y = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=1 / 3, stratify=y, random_state=seed
    )
    low, high = x_train.min(0), x_train.max(0)
    scale = lambda v: np.clip((v - low) / (high - low), 0.0, 1.0).astype(np.float32)  # noqa: E731
    return scale(x_train), y_train.astype(np.int64), scale(x_test), y_test.astype(np.int64)


def wine_model(seed: int = 0):
    """Dense(32)-Dense(32)-Dense(3) on the scaled wine features (100 epochs, Adam 1e-2),
    cached in `PANEL_CACHE`."""
    import keras

    path = PANEL_CACHE / "wine-mlp.keras"
    if path.exists():
        return keras.models.load_model(path, safe_mode=True)
    x_train, y_train, _, _ = wine_data(seed)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((13,), name="features")
    h = keras.layers.Dense(32, activation="relu")(inputs)
    h = keras.layers.Dense(32, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h), name="wine_mlp")
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train, y_train, epochs=100, batch_size=32, verbose=0)
    PANEL_CACHE.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def _predict(model, x) -> np.ndarray:
    return np.argmax(model.predict(x, batch_size=450, verbose=0), -1)


def _accuracy(model, x, y) -> float:
    return float(np.mean(_predict(model, x) == y))


# ------------------------------------------------------------------------------ attacks


def attack_specs(args) -> list[tuple[str, attacks.Attack]]:
    """(row label, configured attack) for the single-attack rows."""
    common = {"eps": args.eps, "bounds": BOUNDS, "seed": args.seed}
    s = args.steps
    return [
        (f"PGD-{s['pgd']}", attacks.PGD(steps=s["pgd"], loss="ce", **common)),
        (
            f"PGD-{s['pgd']} x 5 restarts",
            attacks.PGD(steps=s["pgd"], restarts=5, loss="ce", **common),
        ),
        (f"APGD-CE ({s['apgd']} steps)", attacks.APGD(steps=s["apgd"], loss="ce", **common)),
        (
            f"APGD-T ({s['targets']} x {s['apgd']} steps)",
            attacks.APGDTargeted(steps=s["apgd"], n_target_classes=s["targets"], **common),
        ),
        (
            f"FAB-T ({s['targets']} x {s['apgd']} steps)",
            attacks.FABTargeted(steps=s["apgd"], n_target_classes=s["targets"], **common),
        ),
        (f"Square ({s['queries']} queries)", attacks.Square(queries=s["queries"], **common)),
    ]


def suite(name: str, args) -> list[attacks.Attack]:
    s = args.steps
    return advgrad.get_suite(
        name,
        eps=args.eps,
        bounds=BOUNDS,
        seed=args.seed,
        steps=s["apgd"],
        n_target_classes=s["targets"],
        queries=s["queries"],
    )


def check_threat(x, x_adv, eps) -> dict:
    """Per-sample: outside the Linf eps ball, the bounds, or non-finite (a small float slack)."""
    x = np.asarray(x, np.float64)
    x_adv = np.asarray(x_adv, np.float64)
    flat = (x_adv - x).reshape(len(x), -1)
    finite = np.all(np.isfinite(x_adv.reshape(len(x), -1)), axis=1)
    dist = np.max(np.abs(np.nan_to_num(flat)), axis=1)
    slack = 1e-6
    in_bounds = np.all(
        (x_adv.reshape(len(x), -1) >= BOUNDS[0] - slack)
        & (x_adv.reshape(len(x), -1) <= BOUNDS[1] + slack),
        axis=1,
    )
    outside = ~finite | (dist > eps + slack) | ~in_bounds
    return {"outside": outside, "max_linf": float(np.max(dist, initial=0.0))}


def robust_of(model, x, y, x_adv, eps) -> tuple[np.ndarray, dict]:
    """Robust per sample (correct on x and on a valid x_adv) and the threat-model check."""
    correct = _predict(model, x) == y
    threat = check_threat(x, x_adv, eps)
    fooled = (_predict(model, x_adv) != y) & ~threat["outside"]
    return correct & ~fooled, threat


def run_attack(label, attack, model, x, y, eps) -> dict:
    attack.run(model, x[:WARMUP_IMAGES], y[:WARMUP_IMAGES])  # untimed: traces, warms caches
    traces = trace_count()
    start = time.perf_counter()
    result = attack.run(model, x, y)
    seconds = time.perf_counter() - start
    robust, threat = robust_of(model, x, y, result.x_adv, eps)
    queries = np.asarray(result.queries, np.float64)
    return {
        "row": label,
        "kind": "attack",
        "config": attack.get_config(),
        "robust_accuracy": round(float(np.mean(robust)), 4),
        "robust": int(np.sum(robust)),
        "seconds": round(seconds, 3),
        "gradients_per_sample": float(result.gradients),
        "queries_per_sample": round(float(np.mean(queries)), 2),
        "queries_max": int(np.max(queries, initial=0)),
        "outside_threat_model": int(np.sum(threat["outside"])),
        "max_linf": round(threat["max_linf"], 6),
        "retraced_while_timing": trace_count() - traces,
        "loadavg_after": _loadavg(),
    }


def run_suite(label, members, model, x, y, args, *, sanity=False) -> tuple[dict, object]:
    kwargs = {"suite": members, "eps": args.eps, "seed": args.seed, "individual": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        advgrad.evaluate(
            model,
            (x[:WARMUP_IMAGES], y[:WARMUP_IMAGES]),
            batch_size=WARMUP_IMAGES,
            sanity=False,
            **kwargs,
        )
        traces = trace_count()
        report = advgrad.evaluate(model, (x, y), batch_size=len(y), sanity=sanity, **kwargs)
    n = report.n_samples
    outcome = np.asarray(report.outcomes[args.eps])
    broke = {a: int(np.sum(outcome == i)) for i, a in enumerate(report.attacks)}
    row = {
        "row": label,
        "kind": "suite",
        "members": list(report.attacks),
        "robust_accuracy": round(float(report.robust_accuracy[args.eps]), 4),
        "robust": int(np.sum(outcome == -1)),
        "seconds": round(float(report.seconds), 3),
        "gradients_per_sample": round(sum(report.gradients.values()) / n, 2),
        "queries_per_sample": round(sum(report.queries.values()) / n, 2),
        "per_member": {
            a: {
                "broke": broke[a],
                "seconds": round(float(report.timings[a]), 3),
                "gradients_per_sample": round(report.gradients[a] / n, 2),
                "queries_per_sample": round(report.queries[a] / n, 2),
            }
            for a in report.attacks
        },
        # evaluate checks every x_adv itself and flags (and does not count) any outside
        "outside_threat_model": sum(f["code"] == "outside_threat_model" for f in report.flags),
        "retraced_while_timing": trace_count() - traces,
        "loadavg_after": _loadavg(),
    }
    return row, report


# ---------------------------------------------------------------------------- the panel

PANEL = (
    "digits-cnn",
    "digits-cnn-pgd",
    "digits-cnn-trades",
    "digits-cnn-masked",
    "wine-mlp",
    "mnist-cnn",
    "mnist-cnn-pgd",
)
PANEL_SUITES = ("standard", "fast", "adaptive")


def panel_entry(name: str, n: int) -> dict:
    """One panel model with its test images and Linf eps."""
    if name == "wine-mlp":
        _, _, x, y = wine_data()
        return {"name": name, "model": wine_model(), "x": x[:n], "y": y[:n], "eps": 0.1}
    if name.startswith("mnist"):
        ds = data.mnist()
        model, eps = zoo.load(name), 0.3
    else:
        ds = data.digits()
        eps = {"digits-cnn-pgd": 0.2, "digits-cnn-trades": 0.2}.get(name, 0.1)
        if name == "digits-cnn-trades":
            model = trades_model()
        elif name == "digits-cnn-masked":
            model = masked(zoo.load("digits-cnn"))
        else:
            model = zoo.load(name)
    x, y = np.asarray(ds.x_test)[:n], np.asarray(ds.y_test)[:n]
    return {"name": name, "model": model, "x": x, "y": y, "eps": eps}


def panel(names: list[str], n: int, seed: int) -> dict:
    """Every panel model under the standard, fast and adaptive suites, in one run: robust
    accuracy, the samples only one of a suite and `standard` breaks, gradients and queries
    per sample, seconds, and the adaptive suite's record (masked batches, samples stopped
    early). Cost = (gradients + queries) / sample, the ratio to `standard`'s."""
    rows = []
    for name in names:
        entry = panel_entry(name, n)
        eps = entry["eps"]
        args = argparse.Namespace(eps=eps, seed=seed)
        x, y, model = entry["x"], entry["y"], entry["model"]
        print(f"[panel] {name}: {len(y)} images, Linf eps {eps}", flush=True)
        outcomes, cost = {}, {}
        for suite_name in PANEL_SUITES:
            members = advgrad.get_suite(suite_name, eps=eps, bounds=BOUNDS, seed=seed)
            row, report = run_suite(suite_name, members, model, x, y, args)
            outcomes[suite_name] = np.asarray(report.outcomes[eps])
            cost[suite_name] = row["gradients_per_sample"] + row["queries_per_sample"]
            row.update(
                model=name,
                eps=eps,
                images=int(len(y)),
                clean_accuracy=round(float(report.clean_accuracy), 4),
                cost_per_sample=round(cost[suite_name], 1),
            )
            if suite_name == "adaptive":
                row["adaptive"] = adaptive_summary(report, eps)
            rows.append(row)
            print(
                f"  {suite_name}: robust {row['robust_accuracy']:.3f}, cost/sample "
                f"{cost[suite_name]:,.0f}, {row['seconds']:.1f} s",
                flush=True,
            )
        robust_std = outcomes["standard"] == -1
        for row in rows[-len(PANEL_SUITES) :]:
            robust = outcomes[row["row"]] == -1
            row["robust_only_here"] = int(np.sum(robust & ~robust_std))  # standard broke
            row["broken_only_here"] = int(np.sum(~robust & robust_std))
            row["cost_ratio"] = round(row["cost_per_sample"] / cost["standard"], 4)
            row["seconds_ratio"] = round(row["seconds"] / max(rows[-3]["seconds"], 1e-9), 4)
        adaptive = rows[-1]
        masked_found = bool(adaptive["adaptive"]["masked_batches"])
        limit = 0.25 if masked_found else 0.1
        adaptive["must_hold"] = {
            "masking_detected": masked_found,
            "cost_limit": limit,
            "cost_within_limit": bool(adaptive["cost_ratio"] <= limit),
            "at_most_one_robust_that_standard_breaks": bool(adaptive["robust_only_here"] <= 1),
        }
    return {"rows": rows}


def adaptive_summary(report, eps: float) -> dict:
    """What the adaptive suite decided: per member how many samples it ran on and stopped,
    with the margins (share of the clean margin kept) of the stopped ones."""
    key = repr(eps)
    first = report.suite[0]["adaptive"]["eps"][key]
    clean = np.array([np.nan if v is None else v for v in first["margin_clean"]])
    after = np.array([np.nan if v is None else v for v in first["margin_first"]])
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = after / clean
    members = {}
    for entry, label in zip(report.suite, report.attacks, strict=True):
        record = entry["adaptive"]
        decision = np.asarray(record["eps"][key]["decision"])
        stopped = decision >= 2
        members[label] = {
            "rule": record["rule"],
            "ran": int(np.sum(decision == 1)),
            "stopped": int(np.sum(stopped)),
            "stopped_kept_margin_min": (
                round(float(np.nanmin(kept[stopped])), 3) if stopped.any() else None
            ),
            "spent_per_sample": round(
                float(
                    np.sum(record["eps"][key]["gradients"]) + np.sum(record["eps"][key]["queries"])
                )
                / len(decision),
                1,
            ),
        }
    return {"masked_batches": list(first["masked_batches"]), "members": members}


def panel_markdown(section: dict, machine: dict, settings: dict) -> str:
    lines = [
        "# The adaptive suite against standard and fast: the panel",
        "",
        f"- Date: {machine['date']}; machine: {machine['cpu_model']}, {machine['cpu_count']} "
        f"CPUs, GPUs: {machine['gpus'] or 'none'}; load average at start "
        f"{machine['loadavg_start']}, at end {machine.get('loadavg_end')} (shared machine)",
        f"- TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, advgrad "
        f"{machine['advgrad']}; seed {settings['seed']}; command: `{settings['command']}`",
        "",
        "Each suite through `advgrad.evaluate(model, (x, y), suite=get_suite(name, eps, "
        "bounds=(0, 1), seed), individual=False, sanity=False)`, one batch, timed after an "
        "untimed run on 8 images. Cost = (gradient evaluations + forward queries) per "
        "sample, from the report (`report.gradients`, `report.queries`). *Robust only here*: "
        "samples this suite leaves robust that `standard` breaks; *broken only here*: the "
        "reverse. Must hold: adaptive's robust-only <= 1, and its cost <= 1/10 of standard's "
        "(1/4 where it detected masking).",
        "",
        "| model | eps | images | suite | robust accuracy | robust only here | broken only "
        "here | gradients / sample | queries / sample | cost ratio | seconds |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in section["rows"]:
        lines.append(
            f"| {r['model']} | {r['eps']} | {r['images']} | {r['row']} | "
            f"{r['robust_accuracy']:.3f} | {r['robust_only_here']} | {r['broken_only_here']} | "
            f"{_num(r['gradients_per_sample'])} | {_num(r['queries_per_sample'])} | "
            f"{r['cost_ratio']:.3f} | {r['seconds']:.1f} |"
        )
    lines += ["", "## What adaptive decided, and the must-hold", ""]
    for r in section["rows"]:
        if r["row"] != "adaptive":
            continue
        a, h = r["adaptive"], r["must_hold"]
        parts = "; ".join(
            f"{label} ({m['rule']}): ran on {m['ran']}, stopped {m['stopped']}"
            + (
                f" (kept >= {m['stopped_kept_margin_min']} of the clean margin after APGD-CE)"
                if m["stopped"] and m["rule"] == "near"
                else ""
            )
            for label, m in a["members"].items()
        )
        lines.append(
            f"- {r['model']}: masking detected: {'yes' if h['masking_detected'] else 'no'}; "
            f"cost {r['cost_ratio']:.3f} of standard (limit {h['cost_limit']}: "
            f"{'yes' if h['cost_within_limit'] else '**no**'}); robust only here "
            f"{r['robust_only_here']} (<= 1: "
            f"{'yes' if h['at_most_one_robust_that_standard_breaks'] else '**no**'}); "
            f"seconds {r['seconds']:.1f} ({r['seconds_ratio']:.2f} x standard's). {parts}."
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- ART


def art_rows(entry, args) -> list[dict]:
    """ART's AutoAttack and APGD-CE on the first `--art-n` images, with advgrad's standard
    suite and APGD-CE on the same images."""
    import keras
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent
    from art.estimators.classification import TensorFlowV2Classifier

    model, n = entry["model"], args.art_n
    x, y = entry["x"][:n], entry["y"][:n]
    classifier = TensorFlowV2Classifier(
        model=model,
        nb_classes=10,
        input_shape=tuple(x.shape[1:]),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=BOUNDS,
    )
    # eps_step: ART's default is 0.1 (its APGD starts at 2 x eps_step); eps_step = eps keeps
    # the paper's 2 x eps start at any --eps and equals the default at eps 0.1.
    runs = [
        (
            "ART AutoAttack (defaults)",
            AutoAttack(classifier, norm=np.inf, eps=args.eps, eps_step=args.eps),
        ),
        (
            f"ART APGD-CE ({args.steps['apgd']} steps, 1 init)",
            AutoProjectedGradientDescent(
                classifier,
                norm=np.inf,
                eps=args.eps,
                eps_step=args.eps,
                max_iter=args.steps["apgd"],
                nb_random_init=1,
                loss_type="cross_entropy",
                verbose=False,
            ),
        ),
    ]
    rows = []
    for label, art_attack in runs:
        np.random.seed(args.seed)
        print(f"  [{entry['name']}] {label} on {n} images ...", flush=True)
        start = time.perf_counter()
        x_adv = art_attack.generate(x=x.astype(np.float32), y=y)
        seconds = time.perf_counter() - start
        robust, threat = robust_of(model, x, y, x_adv, args.eps)
        rows.append(
            {
                "row": label,
                "kind": "ART",
                "images": n,
                "robust_accuracy": round(float(np.mean(robust)), 4),
                "robust": int(np.sum(robust)),
                "seconds": round(seconds, 3),
                "outside_threat_model": int(np.sum(threat["outside"])),
                "max_linf": round(threat["max_linf"], 6),
                "loadavg_after": _loadavg(),
            }
        )
        print(f"    robust accuracy {rows[-1]['robust_accuracy']:.3f}, {seconds:.1f} s")
    apgd = attack_specs(args)[2]
    row = run_attack(apgd[0], apgd[1], model, x, y, args.eps)
    rows.append({**row, "row": "advgrad " + apgd[0], "images": n})
    row, _ = run_suite('advgrad "standard"', suite("standard", args), model, x, y, args)
    rows.append({**row, "images": n})
    return rows


def art_verdict(rows: list[dict]) -> dict:
    by = {r["row"]: r for r in rows}
    ours, theirs = by['advgrad "standard"'], by["ART AutoAttack (defaults)"]
    return {
        "standard_robust_accuracy": ours["robust_accuracy"],
        "art_autoattack_robust_accuracy": theirs["robust_accuracy"],
        "standard_seconds": ours["seconds"],
        "art_autoattack_seconds": theirs["seconds"],
        "time_fraction": round(ours["seconds"] / theirs["seconds"], 4),
        "robust_not_above_art": bool(ours["robust"] <= theirs["robust"]),
        "at_most_a_tenth_of_art_time": bool(ours["seconds"] <= 0.1 * theirs["seconds"]),
    }


# ------------------------------------------------------------------------------ masking


def masking(entry, rows: list[dict], args) -> dict:
    """The masked CNN: PGD and the standard suite against the unmasked PGD, and the flags."""
    model, x, y = entry["model"], entry["x"], entry["y"]
    wrapped = masked(model)
    common = {"eps": args.eps, "bounds": BOUNDS, "seed": args.seed}
    pgd_label, pgd = attack_specs(args)[0]
    square_label, square = attack_specs(args)[-1]
    unmasked_pgd = next(r for r in rows if r["row"] == pgd_label)
    grads = advgrad.input_gradients(wrapped, x[:64], y[:64], loss="ce")
    grads = np.asarray(grads[0] if isinstance(grads, (list, tuple)) else grads)
    print(f"  [{entry['name']}] masked: {pgd_label}, {square_label}, standard ...", flush=True)
    masked_pgd = run_attack(pgd_label, pgd, wrapped, x, y, args.eps)
    masked_square = run_attack(square_label, square, wrapped, x, y, args.eps)
    standard, report = run_suite(
        '"standard" (sanity=True)', suite("standard", args), wrapped, x, y, args, sanity=True
    )
    pgd_only = attacks.PGD(steps=args.steps["pgd"], loss="ce", **common)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pgd_report = advgrad.evaluate(
            wrapped, (x, y), suite=[pgd_only], eps=args.eps, seed=args.seed, batch_size=len(y)
        )
    return {
        "model": f"{entry['name']} behind tf.stop_gradient(tf.round({QUANT_LEVELS} x) / "
        f"{QUANT_LEVELS})",
        "clean_accuracy": round(_accuracy(wrapped, x, y), 4),
        "zero_gradient_fraction": round(
            float(np.mean(~np.any(grads.reshape(len(grads), -1) != 0, axis=1))), 4
        ),
        "unmasked_pgd_robust_accuracy": unmasked_pgd["robust_accuracy"],
        "masked_pgd_robust_accuracy": masked_pgd["robust_accuracy"],
        "masked_square_robust_accuracy": masked_square["robust_accuracy"],
        "masked_standard_robust_accuracy": standard["robust_accuracy"],
        "rows": [masked_pgd, masked_square, standard],
        "flags_standard": [f["code"] for f in report.flags],
        "flags_pgd": [f["code"] for f in pgd_report.flags],
        "flag_details": {"standard": report.flags, "pgd": pgd_report.flags},
    }


# ------------------------------------------------------------------------ minimal norm

MINIMAL_EPS = (0.25, 0.5, 0.75, 1.0)
"""L2 radii at which the FMN curve is compared with the fixed-eps standard suite."""


def _l2(x, x_adv) -> np.ndarray:
    delta = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(len(x), -1)
    return np.linalg.norm(delta, axis=1)


def _norm_row(label, kind, model, x, y, x_adv, seconds, gradients, reported=None) -> dict:
    """Median L2 norm of the successful perturbations (inf counted where it failed), with the
    checks: misclassified at the returned input, within the bounds, reported = measured."""
    correct = _predict(model, x) == y
    fooled = (_predict(model, x_adv) != y) & correct
    sizes = np.where(fooled, _l2(x, x_adv), np.inf)
    sizes = np.where(correct, sizes, 0.0)  # misclassified to begin with: norm 0
    in_bounds = bool(np.all((x_adv >= BOUNDS[0]) & (x_adv <= BOUNDS[1])))
    row = {
        "row": label,
        "kind": kind,
        "images": int(len(y)),
        "median_l2": round(float(np.median(sizes)), 4),
        "mean_l2_found": round(float(np.mean(sizes[fooled])), 4) if fooled.any() else None,
        "success_rate": round(float(np.mean(fooled | ~correct)), 4),
        "seconds": round(seconds, 3),
        "gradients_per_sample": gradients,
        "in_bounds": in_bounds,
        "loadavg_after": _loadavg(),
    }
    if reported is not None:  # advgrad: the reported norm must be the returned one's
        measured = np.where(np.isfinite(reported), _l2(x, x_adv), np.inf)
        finite = np.isfinite(reported)
        row["max_norm_error"] = float(np.max(np.abs(measured - reported)[finite], initial=0.0))
        row["reported_fooled_match"] = bool(
            np.array_equal(np.isfinite(reported), _predict(model, x_adv) != y)
        )
    return row


def minimal_norm_specs(args) -> list[tuple[str, attacks.Attack]]:
    common = {"norm": "l2", "bounds": BOUNDS, "seed": args.seed}
    quick = args.quick
    return [
        ("DeepFool (L2, 10 candidates)", attacks.DeepFool(steps=50, **common)),
        (
            f"FMN (L2, {20 if quick else 100} steps)",
            attacks.FMN(steps=20 if quick else 100, **common),
        ),
        (
            f"CW-L2 ({3 if quick else 9} x {20 if quick else 100})",
            attacks.CarliniWagnerL2(
                binary_search_steps=3 if quick else 9, steps=20 if quick else 100, **common
            ),
        ),
    ]


def run_minimal(label, attack, model, x, y) -> dict:
    attack.run(model, x[:WARMUP_IMAGES], y[:WARMUP_IMAGES])  # untimed: traces the loop
    traces = trace_count()
    start = time.perf_counter()
    result = attack.run(model, x, y)
    seconds = time.perf_counter() - start
    row = _norm_row(
        label, "advgrad", model, x, y, result.x_adv, seconds, result.gradients, result.norms
    )
    row["retraced_while_timing"] = trace_count() - traces
    row["config"] = attack.get_config()
    return row


def art_minimal_rows(entry, args) -> list[dict]:
    """ART's CarliniL2Method (9 x 100, its line-search optimiser) and DeepFool (L2, 10
    gradients, overshoot 0.02) on the first `--art-n` images, in one batch, with advgrad's
    CW-L2 and DeepFool on the same images."""
    import keras
    from art.attacks.evasion import CarliniL2Method, DeepFool
    from art.estimators.classification import TensorFlowV2Classifier

    model, n = entry["model"], args.art_n
    x, y = entry["x"][:n].astype(np.float32), entry["y"][:n]
    classifier = TensorFlowV2Classifier(
        model=model,
        nb_classes=10,
        input_shape=tuple(x.shape[1:]),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=BOUNDS,
    )
    searches, steps = (3, 20) if args.quick else (9, 100)
    runs = [
        (
            f"ART CarliniL2Method ({searches} x {steps})",
            CarliniL2Method(
                classifier,
                binary_search_steps=searches,
                max_iter=steps,
                initial_const=0.01,
                learning_rate=0.1,
                batch_size=n,
                verbose=False,
            ),
            searches * steps,
        ),
        (
            "ART DeepFool (L2, 10 gradients)",
            DeepFool(
                classifier, max_iter=50, epsilon=0.02, nb_grads=10, batch_size=n, verbose=False
            ),
            None,
        ),
    ]
    rows = []
    for label, art_attack, gradients in runs:
        print(f"  [{entry['name']}] {label} on {n} images ...", flush=True)
        start = time.perf_counter()
        x_adv = art_attack.generate(x=x, y=y)
        seconds = time.perf_counter() - start
        rows.append(_norm_row(label, "ART", model, x, y, x_adv, seconds, gradients))
        print(f"    median L2 {rows[-1]['median_l2']:.3f}, {seconds:.1f} s", flush=True)
    for label, attack in minimal_norm_specs(args):
        if not label.startswith("FMN"):
            row = run_minimal(label, attack, model, x, y)
            rows.append({**row, "row": "advgrad " + label})
    return rows


def curve_agreement(entry, args) -> dict:
    """The FMN curve (`evaluate(..., eps="curve")`) against the fixed-eps standard suite (L2,
    its defaults) at MINIMAL_EPS on the first `--curve-n` images."""
    model, n = entry["model"], args.curve_n
    x, y = entry["x"][:n], entry["y"][:n]
    fmn = minimal_norm_specs(args)[1][1]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curve = advgrad.evaluate(model, (x, y), suite=[fmn], eps="curve", sanity=False)
        curve_seconds = time.perf_counter() - start
        members = advgrad.get_suite(
            "standard",
            norm="l2",
            bounds=BOUNDS,
            seed=args.seed,
            steps=args.steps["apgd"],
            n_target_classes=args.steps["targets"],
            queries=args.steps["queries"],
        )
        start = time.perf_counter()
        fixed = advgrad.evaluate(
            model,
            (x, y),
            suite=members,
            eps=list(MINIMAL_EPS),
            individual=False,
            sanity=False,
            batch_size=len(y),
            seed=args.seed,
        )
        fixed_seconds = time.perf_counter() - start
    points = []
    for e in MINIMAL_EPS:
        ours, suite_value = curve.curve_accuracy(e), fixed.robust_accuracy[e]
        points.append(
            {
                "eps": e,
                "fmn_curve": round(ours, 4),
                "standard_suite": round(suite_value, 4),
                "difference_points": round(100 * (ours - suite_value), 2),
            }
        )
    if args.plots:
        curve.eps = list(MINIMAL_EPS)  # the suite's points next to the curve, one figure
        curve.robust_accuracy = dict(fixed.robust_accuracy)
        curve.outcomes = dict(fixed.outcomes)
        curve.attacks, curve.suite = list(fixed.attacks), list(fixed.suite)
        plot = curve.save_plots(args.plots)[0]
    else:
        plot = None
    return {
        "images": n,
        "points": points,
        "max_abs_difference_points": max(abs(p["difference_points"]) for p in points),
        "curve_seconds": round(curve_seconds, 3),
        "suite_seconds": round(fixed_seconds, 3),
        "suite": list(fixed.attacks),
        "plot": plot,
    }


def minimal_norm(entries, args) -> dict:
    cnn = next(e for e in entries if e["name"] == "digits-cnn")
    model, x, y = cnn["model"], cnn["x"], cnn["y"]
    print(f"[minimal norm] digits-cnn, L2, {len(y)} images", flush=True)
    rows = []
    for label, attack in minimal_norm_specs(args):
        rows.append(run_minimal(label, attack, model, x, y))
        print(f"  {label}: median L2 {rows[-1]['median_l2']:.3f}, {rows[-1]['seconds']:.2f} s")
    by = {r["row"].split(" (")[0]: r for r in rows}
    art = None
    if importlib.util.find_spec("art") is not None and "digits-cnn" in args.art_models:
        art = art_minimal_rows(cnn, args)
    agreement = curve_agreement(cnn, args)
    verdict = {
        "fmn_and_cw_at_most_deepfool": bool(
            by["FMN"]["median_l2"] <= by["DeepFool"]["median_l2"]
            and by["CW-L2"]["median_l2"] <= by["DeepFool"]["median_l2"]
        ),
        "deepfool_fastest": bool(
            by["DeepFool"]["seconds"] <= min(by["FMN"]["seconds"], by["CW-L2"]["seconds"])
        ),
        "curve_within_2_points": bool(agreement["max_abs_difference_points"] <= 2.0),
    }
    if art:
        a = {r["row"].split(" (")[0]: r for r in art}
        verdict["cw_speedup_over_art"] = round(
            a["ART CarliniL2Method"]["seconds"] / a["advgrad CW-L2"]["seconds"], 2
        )
        verdict["deepfool_speedup_over_art"] = round(
            a["ART DeepFool"]["seconds"] / a["advgrad DeepFool"]["seconds"], 2
        )
        verdict["cw_at_least_5x_faster_than_art"] = verdict["cw_speedup_over_art"] >= 5
    return {"rows": rows, "art": art, "curve": agreement, "verdict": verdict}


def minimal_norm_markdown(section: dict, machine: dict, settings: dict) -> str:
    def fmt(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "# Minimal-norm attacks (digits-cnn, L2, bounds [0, 1])",
        "",
        f"Command: `{settings['command']}`. Machine: {machine['cpu_model']}, "
        f"{machine['cpus_usable']} usable CPUs, shared with other jobs (load average "
        f"{machine['loadavg_start']} at the start, {machine.get('loadavg_end')} at the end): "
        "the seconds move with the load; ratios measured in one run are steadier.",
        "",
        "Median L2 norm over all images: the norm of the returned perturbation where the "
        "image is misclassified there, 0 where it was misclassified to begin with, inf where "
        "the attack failed. Checked: every advgrad norm equals the returned perturbation's "
        "(max error below), and a sample has a finite norm exactly where it is misclassified.",
        "",
        "| attack | images | median L2 | mean L2 (found) | success | seconds | gradients / "
        "sample | max norm error | in bounds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in section["rows"] + (section["art"] or []):
        lines.append(
            f"| {r['row']} | {r['images']} | {fmt(r['median_l2'])} | {fmt(r['mean_l2_found'])}"
            f" | {r['success_rate']:.1%} | {r['seconds']:.2f} | "
            f"{r['gradients_per_sample'] if r['gradients_per_sample'] is not None else '-'} | "
            f"{r.get('max_norm_error', '-')} | {'yes' if r['in_bounds'] else '**no**'} |"
        )
    c = section["curve"]
    lines += [
        "",
        f"## The FMN curve against the fixed-eps standard suite ({c['images']} images)",
        "",
        f'One `evaluate(..., eps="curve")` run with FMN ({c["curve_seconds"]:.1f} s) against '
        f'`evaluate(..., suite="standard" in L2, eps={list(MINIMAL_EPS)})` '
        f"({' -> '.join(c['suite'])}, cascade, {c['suite_seconds']:.1f} s).",
        "",
        "| eps (L2) | FMN curve | standard suite | difference (points) |",
        "|---:|---:|---:|---:|",
    ]
    for p in c["points"]:
        lines.append(
            f"| {p['eps']} | {p['fmn_curve']:.1%} | {p['standard_suite']:.1%} | "
            f"{p['difference_points']:+.1f} |"
        )
    lines += ["", "## Verdicts", ""]
    lines += [f"- {k}: {v}" for k, v in section["verdict"].items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- markdown


def _num(value, digits=1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if value != int(value) or digits == 0 else f"{int(value):,}"


def table(rows: list[dict], images_note=True) -> list[str]:
    lines = [
        "| model | row | images | robust accuracy | seconds | gradients / sample "
        "| queries / sample | outside threat model |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        grads = r.get("gradients_per_sample")
        lines.append(
            f"| {r['model']} | {r['row']} | {r.get('images', '-')} | "
            f"{r['robust_accuracy']:.3f} | {r['seconds']:.2f} | {_num(grads)} | "
            f"{_num(r.get('queries_per_sample'))} | {r.get('outside_threat_model', '-')} |"
        )
    return lines


def markdown(report: dict) -> str:
    machine, settings = report["machine"], report["settings"]
    lines = [
        "# advgrad attack strength: robust accuracy, time, gradients and queries",
        "",
        f"- Date: {machine['date']}",
        f"- Machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs "
        f"({machine['cpus_usable']} usable), GPUs: {machine['gpus'] or 'none'}",
        f"- Platform: {machine['platform']}, Python {machine['python']}",
        f"- TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"NumPy {machine['numpy']}, advgrad {machine['advgrad']}, ART {machine['art']}",
        f"- Load average (1/5/15 min) at start: {machine['loadavg_start']}, "
        f"at end: {machine.get('loadavg_end')} (the machine is shared: seconds move with it)",
        f"- Settings: Linf eps={settings['eps']}, bounds {settings['bounds']}, "
        f"seed={settings['seed']}, n={settings['n']}, art_n={settings['art_n']}, "
        f"steps={settings['steps']}, quick={settings['quick']}",
        f"- Command: `{settings['command']}`",
        "",
        "Models:",
        "",
    ]
    for name, info in report["models"].items():
        lines.append(
            f"- `{name}`: input {tuple(info['input_shape'])}, {info['parameters']:,} "
            f"parameters, clean accuracy {info['clean_accuracy']:.3f} on {info['images']} "
            f"test images (`{info['data']}`)"
        )
    lines += [
        "",
        "## advgrad: each attack alone, and the suites",
        "",
        "Robust accuracy = correct on the clean input and on x_adv. Attacks: `attack.run` on "
        "all images in one batch, timed after an untimed call on 8 images (tracing). Suites: "
        "`advgrad.evaluate(..., individual=False, sanity=False)`, the cascade (each member "
        "only on the samples still robust); seconds = `report.seconds`, gradients and "
        "queries = the report's totals / images. Gradients / sample of a single attack: as "
        "it reports them (APGD-T, FAB-T: the mean over samples, rounded up; 0 for Square); "
        "queries / sample: the mean forward passes. Outside threat model: x_adv outside the "
        "eps ball or the bounds (not counted as fooled); for suites, whether `evaluate`'s own "
        "check raised its `outside_threat_model` flag (0: no).",
        "",
        *table(report["results"]),
        "",
    ]
    if report["outside_total"] == 0:
        lines.append(
            "Every x_adv was checked: all lie within eps of x (Linf) and within the bounds "
            f"(largest Linf distance {report['max_linf']:.6f} <= eps {settings['eps']})."
        )
    else:
        lines.append(
            f"**{report['outside_total']} x_adv lie outside the threat model** (not counted "
            "as fooled): see `outside_threat_model`."
        )
    lines += ["", "Cascade members (which attack broke how many samples, its time):", ""]
    for r in report["results"]:
        if r["kind"] == "suite":
            parts = ", ".join(
                f"{a}: {m['broke']} broken, {m['seconds']:.2f} s"
                for a, m in r["per_member"].items()
            )
            lines.append(f"- {r['model']} {r['row']}: {parts}")
    lines += ["", "## Against ART", ""]
    if report["art"] is None:
        lines.append(f"ART: {report['art_note']}")
    else:
        lines += [
            "ART's `AutoAttack` (its defaults: APGD-CE and APGD-DLR with 5 random inits each, "
            "DeepFool, Square 5,000 queries x 5 restarts; batch 32) and "
            "`AutoProjectedGradientDescent` (CE, 100 steps, 1 random init, batch 32) through "
            "`TensorFlowV2Classifier` (logits, sparse CE from logits, clip_values (0, 1)); "
            "advgrad's APGD-CE and standard suite on the same first images.",
            "",
            *table(report["art"]["rows"]),
            "",
        ]
        for name, v in report["art"]["verdicts"].items():
            lines.append(
                f"- {name}: advgrad standard {v['standard_robust_accuracy']:.3f} in "
                f"{v['standard_seconds']:.2f} s vs ART AutoAttack "
                f"{v['art_autoattack_robust_accuracy']:.3f} in {v['art_autoattack_seconds']:.2f} s"
                f": robust accuracy not above ART's: "
                f"{'yes' if v['robust_not_above_art'] else '**no**'}; time "
                f"{v['time_fraction']:.3f} x ART's (<= 0.1: "
                f"{'yes' if v['at_most_a_tenth_of_art_time'] else '**no**'})"
            )
    m = report.get("masking")
    if m:
        lines += [
            "",
            "## Gradient masking",
            "",
            f"Model: {m['model']} (clean accuracy {m['clean_accuracy']:.3f}; "
            f"{m['zero_gradient_fraction']:.0%} of the first 64 samples have an all-zero "
            "input gradient of the CE loss).",
            "",
            "| model | attack | robust accuracy |",
            "|---|---|---:|",
            f"| unmasked | PGD | {m['unmasked_pgd_robust_accuracy']:.3f} |",
            f"| masked | PGD | {m['masked_pgd_robust_accuracy']:.3f} |",
            f"| masked | Square | {m['masked_square_robust_accuracy']:.3f} |",
            f"| masked | standard suite | {m['masked_standard_robust_accuracy']:.3f} |",
            "",
            *table(m["rows"]),
            "",
            "Sanity flags of `advgrad.evaluate(masked, ..., sanity=True)`: with the standard "
            f"suite {m['flags_standard'] or 'none'}; with PGD alone {m['flags_pgd'] or 'none'}.",
            "",
        ]
        for run, flags in m["flag_details"].items():
            for flag in flags:
                lines.append(
                    f"- {run}, `{flag['code']}`: {flag['message']} Advice: {flag['advice']}"
                )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="48 images, 8 for ART, PGD-10, 20 steps, 3 targets, 300 queries (a smoke run)",
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--n", type=int, default=None, help="test images (default 450)")
    parser.add_argument(
        "--art-n", type=int, default=None, help="images for the ART comparison (default 100)"
    )
    parser.add_argument(
        "--art-models",
        default="digits-cnn",
        help="models on which ART runs (default digits-cnn; 'none' to skip ART)",
    )
    parser.add_argument("--no-masking", action="store_true", help="skip the masking section")
    parser.add_argument(
        "--panel",
        choices=("also", "only", "no"),
        default="also",
        help="the adaptive-suite panel (results/strength-adaptive/): also, only it, or not",
    )
    parser.add_argument(
        "--panel-models", default=",".join(PANEL), help="comma-separated panel models"
    )
    parser.add_argument("--panel-n", type=int, default=100, help="test images per panel model")
    parser.add_argument(
        "--minimal-norm",
        choices=("also", "only", "no"),
        default="also",
        help="the minimal-norm table (results/minimal-norm.*): also, only it, or not",
    )
    parser.add_argument(
        "--curve-n", type=int, default=None, help="images for the curve check (default 200)"
    )
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        default=str(ROOT / "benchmarks" / "results"),
        help="folder for strength.json and strength.md",
    )
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 48 if args.quick else 450
    if args.art_n is None:
        args.art_n = 8 if args.quick else 100
    args.art_n = min(args.art_n, args.n)
    if args.curve_n is None:
        args.curve_n = 48 if args.quick else 200
    args.curve_n = min(args.curve_n, args.n)
    args.plots = None
    args.steps = (
        {"pgd": 10, "apgd": 20, "targets": 3, "queries": 300}
        if args.quick
        else {"pgd": 40, "apgd": 100, "targets": 9, "queries": 5000}
    )
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.art_models = [m.strip() for m in args.art_models.split(",") if m.strip() != "none"]
    if args.n < WARMUP_IMAGES or args.art_n < 1 or not args.eps > 0:
        parser.error(f"--n must be >= {WARMUP_IMAGES}, --art-n >= 1, --eps > 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    settings = {
        "quick": args.quick,
        "n": args.n,
        "art_n": args.art_n,
        "eps": args.eps,
        "norm": "linf",
        "bounds": list(BOUNDS),
        "seed": args.seed,
        "steps": args.steps,
        "models": args.models,
        "art_models": args.art_models,
        "command": "python benchmarks/strength.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    }
    out = pathlib.Path(args.out)
    if args.panel != "no":
        names = [m.strip() for m in args.panel_models.split(",") if m.strip()]
        section = panel(names, args.panel_n, args.seed)
        machine["loadavg_end"] = _loadavg()
        folder = out / "strength-adaptive"
        folder.mkdir(parents=True, exist_ok=True)
        payload = {"machine": machine, "settings": settings, **section}
        text = panel_markdown(section, machine, settings)
        write_results(folder, "adaptive-panel", payload, text)
        print(text)
        if args.panel == "only":
            return 0
    entries = load_models(args.models, args.n)
    if args.minimal_norm != "no" and any(e["name"] == "digits-cnn" for e in entries):
        args.plots = str(out / "minimal-norm")
        section = minimal_norm(entries, args)
        machine["loadavg_end"] = _loadavg()
        out.mkdir(parents=True, exist_ok=True)
        payload = {"machine": machine, "settings": settings, **section}
        text = minimal_norm_markdown(section, machine, settings)
        write_results(out, "minimal-norm", payload, text)
        print(text)
        if args.minimal_norm == "only":
            return 0
    rows: list[dict] = []
    for entry in entries:
        print(f"[{entry['name']}] {args.n} images", flush=True)
        for label, attack in attack_specs(args):
            row = run_attack(label, attack, entry["model"], entry["x"], entry["y"], args.eps)
            rows.append({"model": entry["name"], "images": args.n, **row})
            print(
                f"  {label}: robust {row['robust_accuracy']:.3f}, {row['seconds']:.2f} s",
                flush=True,
            )
        for name in ("fast", "standard"):
            row, _ = run_suite(
                f'suite "{name}"', suite(name, args), entry["model"], entry["x"], entry["y"], args
            )
            rows.append({"model": entry["name"], "images": args.n, **row})
            print(
                f"  suite {name}: robust {row['robust_accuracy']:.3f}, {row['seconds']:.2f} s",
                flush=True,
            )

    art_installed = importlib.util.find_spec("art") is not None
    art = None
    art_note = "not installed (`pip install '.[bench]'`): skipped"
    if art_installed and args.art_models:
        art = {"rows": [], "verdicts": {}}
        for entry in entries:
            if entry["name"] in args.art_models:
                these = [{"model": entry["name"], **r} for r in art_rows(entry, args)]
                art["rows"] += these
                art["verdicts"][entry["name"]] = art_verdict(these)
    elif art_installed:
        art_note = "installed, skipped (--art-models none)"

    mask = None
    cnn = next((e for e in entries if e["name"] == "digits-cnn"), None)
    if cnn is not None and not args.no_masking:
        mask = masking(cnn, rows, args)
        for r in mask["rows"]:
            r["model"] = "digits-cnn (masked)"
            r["images"] = args.n

    machine["loadavg_end"] = _loadavg()
    checked = [r for r in rows if "max_linf" in r]
    report = {
        "machine": machine,
        "settings": settings,
        "models": {e["name"]: e["info"] for e in entries},
        "results": rows,
        "outside_total": int(sum(r["outside_threat_model"] for r in rows)),
        "max_linf": max((r["max_linf"] for r in checked), default=0.0),
        "art": art,
        "art_note": art_note,
        "masking": mask,
    }
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    write_results(out, "strength", report, text)
    print()
    print(text)
    print(f"wrote {out / 'strength.json'} and {out / 'strength.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
