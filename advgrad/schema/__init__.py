"""What every config shares: the safe YAML loader, problems by YAML path, sections, bounds,
the catalog, and the benchmark keys every workflow's config builds on.

Pure: nothing here imports TensorFlow or Keras (the import contract ``pure-config`` keeps
it so), so a config is checked whole before any model is loaded. Each workflow's schema
lives beside the workflow (`advgrad.training.config`, `advgrad.generation.config`,
`advgrad.saliency.config`) and is built from these pieces; `advgrad.config` reads a config
with advgrad's registries as the catalog and builds the run.

- `advgrad.schema.yamlfile`: `read_yaml` (bounded, ``yaml.SafeLoader``, no aliases or
  duplicate keys) and `load_with` (read, then a workflow's parser);
- `advgrad.schema.problems`: `ConfigError`, `Problems` (every problem, by its YAML path,
  with a did-you-mean), `check_document`;
- `advgrad.schema.sections`, `advgrad.schema.bounds`, `advgrad.schema.distribute`: one
  section each (``model``, ``data``, ``suite``, ``eps``, ``bounds``, ``inputs``, ...);
- `advgrad.schema.catalog`: `Catalog`, what a config may name;
- `advgrad.schema.bench`: the benchmark config (`BenchConfig`); `advgrad.schema.single`:
  one attack at one radius on the benchmark keys (generation and training).

>>> from advgrad.schema import Catalog, ConfigError, bench
>>> catalog = Catalog(attacks={"fgsm": {"name": "fgsm", "eps": 0.0}}, datasets=("digits",),
...                   models=("digits-cnn",))
>>> try:
...     bench.parse({"modle": "digits-cnn"}, catalog)
... except ConfigError as err:
...     print(err.problems[0])
unknown key 'modle' (did you mean 'model'?)
"""

from advgrad.schema.catalog import Catalog
from advgrad.schema.problems import ConfigError, Problems

__all__ = ["Catalog", "ConfigError", "Problems"]
