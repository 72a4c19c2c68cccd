"""Generation configs: what `advgrad generate` runs, parsed like a benchmark config.

A generation config is a benchmark config with one attack instead of a suite, one eps, and
where the shards go. Everything the two share (``model``, ``imports``, ``data``, ``norm``,
``bounds``, ``inputs``, ``batch_size``, ``seed``, ``output``, ``distribute``) is checked by
the same code (`advgrad.schema.bench.parse`), and problems are named by the generation
config's own paths (``attack.steps: ...``). Pure: no TensorFlow.

Schema (``model``, ``data``, ``attack``, ``eps`` and ``shard_size`` are required)::

    model: digits-cnn            # as in a benchmark config (a zoo name or a .keras file)
    data: {name: digits, split: train}   # as in a benchmark config
    attack: {name: pgd, steps: 10}       # one attack: a registered name or a mapping
    eps: 0.1                     # one radius (a finite number >= 0)
    norm: linf                   # optional, as in a benchmark config
    bounds: data                 # optional, as in a benchmark config
    shard_size: 1000             # samples per shard (an int in [1, 2**40))
    format: tfrecord             # tfrecord (default) | npz
    keep_clean: false            # also store the clean inputs (load_generated's mix_clean)
    batch_size: 256              # samples attacked at a time
    seed: 0                      # seed of the attack (the same seed: the same bytes)
    output: runs/digits-pgd-data # default output folder (--out overrides)
    distribute: {strategy: mirrored, cpu_devices: 2}  # optional: tf.distribute, as in bench

>>> from advgrad.schema.catalog import Catalog
>>> catalog = Catalog(attacks={"pgd": {"name": "pgd", "eps": 0.0, "norm": "linf", "steps": 40}},
...                   norms=("linf",), datasets=("digits",), models=("digits-cnn",))
>>> document = {"model": "digits-cnn", "data": {"name": "digits"}, "attack": "pgd",
...             "eps": 0.1, "shard_size": 100}
>>> config = parse_generate(document, catalog)
>>> config.attack.name, config.eps, config.shard_size, config.format, config.keep_clean
('pgd', 0.1, 100, 'tfrecord', False)
>>> parse_generate({**document, "attack": {"name": "pgd", "steps": "ten"}}, catalog)
Traceback (most recent call last):
...
advgrad.schema.problems.ConfigError: attack.steps: expected an int, received 'ten'
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from collections.abc import Mapping
from typing import Any

from advgrad._validation import SHARD_LIMIT, check_bool, check_int
from advgrad.schema.catalog import Catalog
from advgrad.schema.problems import Problems, check_document
from advgrad.schema.single import SHARED_KEYS, OneAttack, check_attack_and_eps, parse_shared
from advgrad.schema.yamlfile import load_with

__all__ = ["FORMATS", "SCHEMA", "GenerateConfig", "load_generate", "parse_generate"]

SCHEMA = (
    textwrap.dedent(__doc__.split("::\n", 1)[1].split("\n>>>", 1)[0]).strip("\n") + "\n"
    if __doc__
    else ""
)
"""Every key of a generation config, one commented example each (the schema above)."""

FORMATS = ("tfrecord", "npz")
"""The shard formats `advgrad.generate` writes."""

_OWN_KEYS = ("attack", "shard_size", "format", "keep_clean")
_REQUIRED = ("model", "data", "attack", "eps", "shard_size")


@dataclasses.dataclass(frozen=True)
class GenerateConfig(OneAttack):
    """A validated generation config (`OneAttack`: ``bench``, ``attack``, ``eps``).

    Attributes:
        shard_size: Samples per shard (below `advgrad._validation.SHARD_LIMIT`).
        format: ``"npz"`` or ``"tfrecord"``.
        keep_clean: Also store the clean inputs (`advgrad.generate`'s ``keep_clean``), which
            ``load_generated(..., mix_clean=...)`` needs.
    """

    shard_size: int = 1
    format: str = "tfrecord"
    keep_clean: bool = False


def load_generate(path: str | os.PathLike, catalog: Catalog) -> GenerateConfig:
    """Read and validate a generation YAML file (the schema above), read safely.

    Raises:
        ConfigError: Every problem found, by its YAML path.
    """
    return load_with(parse_generate, path, catalog)


def parse_generate(
    document: Any,
    catalog: Catalog,
    *,
    base: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
) -> GenerateConfig:
    """Validate a generation config given as a mapping (what ``yaml.safe_load`` returns).

    Raises:
        ConfigError: Every problem found, by path.
    """
    problems = Problems()
    expected = "a mapping of keys (model, data, attack, eps, shard_size, ...)"
    check_document(document, _OWN_KEYS + SHARED_KEYS, _REQUIRED, expected, problems, source)
    check_attack_and_eps(document, problems)
    shard_size = problems.check(
        "shard_size",
        document.get("shard_size", 1),
        lambda p, v: check_int(p, v, low=1, high=SHARD_LIMIT),  # as `advgrad.generate`
    )
    kind = document.get("format", "tfrecord")
    if kind not in FORMATS:
        problems.expected("format", f"one of {', '.join(FORMATS)}", kind, FORMATS)
    keep_clean = problems.check("keep_clean", document.get("keep_clean", False), check_bool)

    shared = {k: v for k, v in document.items() if k in SHARED_KEYS}
    if isinstance(document.get("attack"), (str, Mapping)):
        shared["suite"] = [document["attack"]]
    bench = parse_shared(shared, catalog, base, problems)
    problems.raise_if_any(source)
    return GenerateConfig(
        bench=bench, shard_size=int(shard_size), format=str(kind), keep_clean=bool(keep_clean)
    )
