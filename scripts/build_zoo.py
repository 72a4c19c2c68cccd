"""Build every advgrad zoo model into a folder and print its card with the clean accuracy.

Usage::

    python scripts/build_zoo.py                 # into $ADVGRAD_CACHE or ~/.cache/advgrad/models
    python scripts/build_zoo.py --out zoo/      # into zoo/
    python scripts/build_zoo.py --only digits-mlp --keep
"""

from __future__ import annotations

import argparse
import sys
import time

from advgrad import zoo


def _format_card(c: zoo.ModelCard) -> str:
    accuracy = "n/a" if c.clean_accuracy is None else f"{c.clean_accuracy:.4f}"
    built = c.built_with or {}
    lines = [
        f"{c.name}: {c.description}",
        f"  data:           advgrad.data.{c.data}",
        f"  inputs:         {c.input_shape} -> {c.num_classes} {c.output}",
        f"  recipe:         {c.recipe}",
        f"  parameters:     {c.parameters}",
        f"  clean accuracy: {accuracy} (expected >= {c.min_accuracy})",
        f"  built with:     keras {built.get('keras')}, tensorflow {built.get('tensorflow')}, "
        f"{built.get('build_seconds')} s of training",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build the zoo; returns 1 if a model falls below its expected accuracy, else 0."""
    names = [c.name for c in zoo.list_models()]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        default=str(zoo.cache_dir()),
        help="folder to write <name>.keras and <name>.json into (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"build only this model (repeatable); one of {names}",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep models already in --out instead of retraining them",
    )
    args = parser.parse_args(argv)

    status = 0
    for name in args.only or names:
        start = time.perf_counter()
        zoo.load(name, retrain=not args.keep, directory=args.out)
        seconds = time.perf_counter() - start
        c = zoo.card(name, directory=args.out)
        print(_format_card(c))
        print(f"  wall time:      {seconds:.1f} s\n", flush=True)
        if c.clean_accuracy is not None and c.clean_accuracy < c.min_accuracy:
            status = 1
    print(f"wrote {len(args.only or names)} model(s) to {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
