"""Benchmark configs: a YAML file, loaded safely and validated whole, that `advgrad bench` runs.

A config names a model, a data set, a suite of attacks and the radii to sweep. It is read with
``yaml.safe_load`` only (a file with Python tags such as ``!!python/object`` is refused) and
checked completely before any work starts: every problem is reported at once, by its path
(``suite[1].steps: expected an int, received 'ten'``). Models given as files are loaded with
Keras' safe mode (``keras.models.load_model(path, safe_mode=True, compile=True)``), so a file
that would run arbitrary Python code (a ``Lambda`` layer, say) is refused too.

Schema (every key but ``model``, ``data``, ``suite`` and ``eps`` is optional)::

    model: digits-cnn            # a zoo name (`advgrad zoo list`), or a path to a .keras file
    data:                        # one of three forms:
      name: digits               #   an embedded data set: digits | breast-cancer-two-input
      split: test                #   optional: test (default) | train
      limit: 450                 #   optional: the first N samples only
      # flat: false              #   digits only: (N, 64) instead of (N, 8, 8, 1); default:
      #                          #   whatever fits the model's input shape
      # --- or a NumPy .npz file (read with allow_pickle=False): ---
      # npz: data/test.npz       #   path, relative to this YAML file
      # x: images                #   key of the inputs; a list of keys (several inputs, in the
      #                          #   model's order), or a mapping input name -> key
      # y: labels                #   key of the integer labels, shape (N,)
      # bounds: [0.0, 1.0]       #   optional: valid input range, for `bounds: data`; or
      #                          #   {low: KEY, high: KEY}: per-feature arrays in the .npz,
      #                          #   each of a shape that fits one sample of every input
    suite:                       # attacks, run in this order, worst case per sample kept
      - fgsm                     #   a registered name (`advgrad attacks`) with its defaults,
      - {name: pgd, steps: 20}   #   or a mapping: name plus settings (checked against the
                                 #   attack's get_config(): known keys, right types);
                                 #   or a suite name: `suite: standard` (APGD-CE, APGD-T,
                                 #   FAB-T, Square: AutoAttack's ensemble) | `suite: fast`
    eps: [0.05, 0.1, 0.2, 0.3, 1.0]   # a finite number >= 0 or a list of them, swept for every
                                 #   attack
    norm: linf                   # optional: linf | l2 | l1, for every attack that does not set
                                 #   its own `norm`
    bounds: data                 # data (default: the data set's valid range) | [low, high]
                                 #   (numbers, or per-feature lists) | null (no clipping) |
                                 #   a mapping input name -> any of these (several inputs)
    inputs:                      # optional, several inputs: which ones the attacks perturb
      measurements: {}           #   perturbed; may hold its own `bounds` (as above)
      errors: frozen             #   `frozen` (or null): never perturbed
    batch_size: 128              # samples per batch (int >= 1)
    plot_examples: true          # keep each fooled sample's first adversarial example, for the
                                 #   image panels of the plots (memory grows with the data set:
                                 #   set false for large ones)
    seed: 0                      # seed of the evaluation (int >= 0)
    targets: least-likely        # optional: what attacks with `targeted: true` aim at:
                                 #   most-likely-wrong (default) | least-likely | random
                                 #   (seeded from `seed`) | a class id (int >= 0, below the
                                 #   model's classes; a sample of that class is skipped by the
                                 #   targeted attacks and counts as robust against them).
                                 #   Untargeted attacks ignore it; per-sample arrays: Python
                                 #   only (`advgrad.evaluate(..., targets=array)`)
    individual: true             # optional: also run every attack alone on every sample
                                 #   (per-attack rows); default: true, false for a suite name
                                 #   (each attack then runs on the samples still robust)
    output: runs/digits          # default output folder of `advgrad bench` (--out overrides)
    imports: [my_layers]         # modules imported before the model loads (dotted names such
                                 #   as pkg.losses, not paths): custom layers and losses
                                 #   registered with @keras.saving.register_keras_serializable()
                                 #   then load in safe mode; `advgrad bench --import MODULE`
                                 #   adds more
    distribute:                  # optional: the tf.distribute strategy the attacks run under
      strategy: mirrored         #   none (default) | mirrored | multi-worker (TF_CONFIG)
      cpu_devices: 2             #   mirrored: split the CPU into N logical devices, or
      # devices: [/gpu:0, /gpu:1]  #   these devices (default: every GPU, else the CPU)
      # timeout: 60              #   multi-worker: seconds to wait for the other workers

Modules of ``imports`` are looked up in the YAML file's folder first (``my_layers.py`` next to
the config), then on ``sys.path``; the folder is on ``sys.path`` only while they are imported.
A module that cannot be imported is a problem at its path (``imports[0]: cannot import
'my_layers': ModuleNotFoundError: ...``), and a model naming a class or function nobody
registered is refused in one line naming it (``model: cannot load model.keras: unknown class
'MyDense' ...``).

Paths to read (``model``, ``data.npz``) are relative to the YAML file's folder, so a config
runs the same from anywhere; ``output`` is relative to the current folder (where you run
``advgrad``), so results land in your working tree, not next to the config. Without
``output`` the CLI writes to ``runs/<config file name without .yaml>``.

``eps`` and ``bounds`` are top-level keys, not attack settings: every attack of the suite is
run at every radius, within the same valid range. With ``inputs``, inputs that are not listed
are frozen too, as with ``advgrad.Budget`` dicts.

Parse, then build, in two places:

- `advgrad.schema` (what every config shares) reads the YAML safely and validates the
  document into a `BenchConfig` (pure: no TensorFlow, no Keras; `advgrad.schema.sections`
  parses each section and `advgrad.schema.problems` collects the problems by path). What a
  config may name (attacks and their settings, norms, data sets, zoo models) comes in as a
  `Catalog`; `load_config` and `parse_config` use the registries' own
  (`advgrad.config.registries.default_catalog`) unless given one. Each workflow's schema
  lives beside the workflow: `advgrad.generation.config`, `advgrad.training.config`,
  `advgrad.saliency.config`.
- This package builds: `advgrad.config.build.build_run` turns a `BenchConfig` into a
  `BenchRun` (it loads the model, a zoo name through `advgrad.zoo`, and the data, and makes
  the attacks, with Keras and TensorFlow); `training_build`, `saliency_build` and
  `distribute_build` build the other workflows' runs and the ``distribute:`` strategy.

Importing `advgrad.config` imports neither TensorFlow nor Keras.

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "bench.yaml").write_text('''
... model: digits-cnn
... data: {name: digits, limit: 64}
... suite: [fgsm, {name: pgd, steps: 5}]
... eps: [0.1, 0.3]
... ''')
>>> config = load_config(folder / "bench.yaml")
>>> config.model, config.data.limit, [a.name for a in config.suite], config.eps
('digits-cnn', 64, ['fgsm', 'pgd'], (0.1, 0.3))
>>> _ = (folder / "bad.yaml").write_text("modle: digits-cnn\\n" "eps: -0.1\\n")
>>> try:
...     load_config(folder / "bad.yaml")
... except ConfigError as err:
...     print("\\n".join(err.problems))
unknown key 'modle' (did you mean 'model'?)
missing key 'model'
missing key 'data'
missing key 'suite'
eps: expected a finite number >= 0, received -0.1
"""

from __future__ import annotations

import os
import textwrap
from typing import Any

from advgrad.config.build import build_generation, build_run
from advgrad.config.registries import default_catalog
from advgrad.generation.config import GenerateConfig, parse_generate
from advgrad.generation.config import load_generate as _load_generate
from advgrad.schema import bench
from advgrad.schema.bench import (
    AttackConfig,
    BenchConfig,
    BenchRun,
    ConfigError,
    DataConfig,
)
from advgrad.schema.catalog import Catalog

__all__ = [
    "EXAMPLE",
    "SCHEMA",
    "AttackConfig",
    "BenchConfig",
    "BenchRun",
    "Catalog",
    "ConfigError",
    "DataConfig",
    "GenerateConfig",
    "build_generation",
    "build_run",
    "load_generate",
    "parse_generate",
    "load_config",
    "parse_config",
]


def _schema_text(doc: str | None) -> str:
    """The schema block of this module's docstring, dedented (empty under ``python -OO``)."""
    if not doc or "Schema (" not in doc:
        return ""
    block = doc.split("::\n", 1)[1].split("\nModules of ``imports``", 1)[0]
    return textwrap.dedent(block).strip("\n") + "\n"


SCHEMA = _schema_text(__doc__)
"""Every key of a config, one commented example each: the schema above, as text."""

EXAMPLE = """\
# advgrad benchmark config for your own model and data: run it with `advgrad bench FILE`.
# Paths to read are relative to this file's folder; `output` to where you run advgrad.
model: model.keras           # a .keras file (loaded in safe mode), or a zoo name: digits-cnn
imports: []                  # modules with your custom layers/losses, e.g. [my_layers]
data:                        # a NumPy .npz file (read with allow_pickle=False)
  npz: data.npz              #   path to the file (np.savez(path, x=..., y=...))
  x: x                       #   key of the inputs, shape (N, ...) as the model takes them
  y: y                       #   key of the integer labels, shape (N,)
  bounds: [0.0, 1.0]         #   valid input range of x, used by `bounds: data`
  # limit: 1000              #   optional: the first N samples only
suite:                       # attacks, in this order; the worst case per sample is kept
  - fgsm                     #   a registered name (`advgrad attacks`) with its defaults
  - {name: pgd, steps: 20}   #   or a name plus settings (see `advgrad attacks`)
eps: [0.01, 0.03, 0.1]       # radii swept for every attack (numbers >= 0)
norm: linf                   # linf | l2 | l1, for attacks that do not set their own
bounds: data                 # clip to data.bounds; or [low, high], or null (no clipping)
# targets: least-likely      # for attacks with targeted: true: most-likely-wrong | random | ...
batch_size: 128              # samples per batch
seed: 0                      # seed of the evaluation (random starts, random targets)
output: runs/my-model        # output folder of `advgrad bench` (--out overrides)
"""
"""What ``advgrad init`` writes: a commented config for one's own model and data."""


def load_generate(path: str | os.PathLike, *, catalog: Catalog | None = None) -> GenerateConfig:
    """Read and validate a generation YAML file (`advgrad.generation.config`), with
    advgrad's registries as the catalog unless one is given.

    Raises:
        ConfigError: Every problem found, by its YAML path.
    """
    return _load_generate(path, catalog or default_catalog())


def load_config(path: str | os.PathLike, *, catalog: Catalog | None = None) -> BenchConfig:
    """Read and validate a benchmark YAML file: `advgrad.schema.bench.load`, with advgrad's
    registries as the catalog unless one is given (the schema is above).

    Raises:
        ConfigError: Every problem found, by its YAML path.
    """
    return bench.load(path, catalog or default_catalog())


def parse_config(
    document: Any,
    *,
    base: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    catalog: Catalog | None = None,
) -> BenchConfig:
    """Validate a config given as a mapping: `advgrad.schema.bench.parse`, with advgrad's
    registries as the catalog unless one is given.

    Raises:
        ConfigError: Every problem found, by its YAML path.
    """
    return bench.parse(document, catalog or default_catalog(), base=base, source=source)
