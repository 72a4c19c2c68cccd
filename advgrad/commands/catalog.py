"""The subcommands that show what advgrad holds: ``attacks`` (attacks and suites), ``zoo
list`` (reference models) and ``gradients`` (input gradients of a zoo model, checked).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from advgrad.commands.usage import UsageError

__all__ = ["attacks", "gradients", "zoo_list", "zoo_missing"]


# ----------------------------------------------------------------------------- attacks
def attacks(args: argparse.Namespace) -> int:
    from advgrad.attacks import get_attack, list_attacks

    for name in list_attacks():
        attack = get_attack(name)
        config = attack.get_config()
        summary = _first_line(type(attack).__doc__)
        print(f"{name} ({type(attack).__name__}): {summary}" if summary else name)
        settings = [f"{k}={_short(v)}" for k, v in config.items() if k != "name"]
        print("  " + ", ".join(settings))
    from advgrad.attacks.suites import SUITES

    print()
    print("suites (`suite: NAME` in a config; each attack only on the samples still robust):")
    for name, entries in sorted(SUITES.items()):
        members = [
            entry["name"] + "".join(f" {k}={v}" for k, v in entry.items() if k != "name")
            for entry in entries
        ]
        print(f"  {name}: {' -> '.join(members)}")
    return 0


def _first_line(doc: str | None) -> str:
    if not doc:
        return ""
    paragraph = doc.strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------- zoo
def zoo_missing(args: argparse.Namespace) -> int:
    raise UsageError("zoo: expected a command: list (see `advgrad zoo --help`)")


def zoo_list(args: argparse.Namespace) -> int:
    from advgrad import zoo

    cards = zoo.list_models()
    rows = [("name", "data", "clean accuracy", "description")]
    for card in cards:
        if card.clean_accuracy is None:
            accuracy = f"not built (>= {card.min_accuracy:g} expected)"
        else:
            accuracy = f"{card.clean_accuracy:.4f}"
        rows.append((card.name, f"advgrad.data.{card.data}", accuracy, card.description))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
    print()
    print(f"models are cached in {zoo.cache_dir()} (trained on first use)")
    return 0


# --------------------------------------------------------------------------- gradients
def gradients(args: argparse.Namespace) -> int:
    import numpy as np

    from advgrad import zoo

    names = [card.name for card in zoo.list_models()]
    if args.model not in names:
        raise UsageError(f"--model: expected one of {', '.join(names)}, received {args.model!r}")
    from advgrad import input_gradients
    from advgrad.gradcheck import check_gradients

    model = zoo.load(args.model)
    dataset = zoo.dataset(args.model)
    x_test, y_test = dataset.test
    count = min(args.samples, len(y_test))
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(len(y_test), size=count, replace=False))
    x = {k: v[rows] for k, v in x_test.items()} if isinstance(x_test, dict) else x_test[rows]
    y = y_test[rows]

    start = time.perf_counter()
    loss, grads = input_gradients(model, x, y, return_loss=True)
    seconds = time.perf_counter() - start
    leaves = list(grads.values()) if isinstance(grads, dict) else [grads]
    flat = np.concatenate([np.asarray(g, np.float64).reshape(count, -1) for g in leaves], axis=1)
    norms = {
        "L1": np.abs(flat).sum(axis=1),
        "L2": np.sqrt((flat**2).sum(axis=1)),
        "Linf": np.abs(flat).max(axis=1),
    }
    zero = int(np.sum(~np.any(flat != 0, axis=1)))
    loss = np.asarray(loss, np.float64)
    logits = model.predict(x, verbose=0, batch_size=256)
    correct = int(np.sum(np.argmax(logits, axis=-1) == y))
    shapes = {k: v.shape for k, v in grads.items()} if isinstance(grads, dict) else grads.shape
    loss_name = _loss_name(getattr(model, "loss", None))

    print(
        f"input gradients of {args.model} on {count} {dataset.name} test samples "
        f"(seed {args.seed}); loss from model.compile: {loss_name}"
    )
    print(f"  gradient shape {shapes}, dtype {leaves[0].dtype}, computed in {seconds:.2f} s")
    print(f"  clean accuracy on these samples: {correct}/{count}")
    print(f"  {'':26}{'mean':>11}{'min':>11}{'max':>11}")
    print(f"  {'loss per sample':26}" + _stats(loss))
    for name, values in norms.items():
        print(f"  {name + ' norm of the gradient':26}" + _stats(values))
    print(f"  all-zero gradients: {zero} of {count} samples ({zero / count:.1%})")

    check = check_gradients(model, x, y, coordinates=args.coordinates, seed=args.seed)
    print(str(check))
    return 0 if check.passed else 1


def _stats(values: Any) -> str:
    import numpy as np

    values = np.asarray(values, np.float64) + 0.0  # no "-0.000e+00"
    return "".join(f"{v:>11.3e}" for v in (values.mean(), values.min(), values.max()))


def _loss_name(loss: Any) -> str:
    if loss is None:
        return "none"
    if isinstance(loss, str):
        return loss
    name = type(loss).__name__
    from_logits = getattr(loss, "from_logits", None)
    return f"{name}(from_logits={from_logits})" if from_logits is not None else name
