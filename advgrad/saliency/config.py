"""Saliency configs: what `advgrad saliency` runs, parsed like a benchmark config.

A saliency config names a model and data as a benchmark config does, and the saliency
methods to run instead of a suite. The keys the two share (``model``, ``imports``,
``data``, ``batch_size``, ``seed``, ``output``) are checked by the same section parsers
(`advgrad.schema.sections`) with the same messages; problems are named by their YAML path
(``methods[2].steps: ...``). Pure: no TensorFlow.

Schema (``model``, ``data`` and ``methods`` are required)::

    model: digits-cnn            # as in a benchmark config (a zoo name or a .keras file)
    data: {name: digits, split: test, limit: 8}   # as in a benchmark config
    indices: [0, 1, 2]           # optional: only these samples (after `limit`)
    methods:                     # one or more of the five, a name or a mapping:
      - vanilla                  #   the gradient of the target's logit
      - gradient_x_input
      - {name: smoothgrad, samples: 50, noise: 0.15}   # noise: relative to each
                                 #   sample's range
      - {name: integrated_gradients, steps: 64, method: riemann_middle, baseline: 0.0}
                                 #   method: riemann_middle | gausslegendre | trapezoid
      - {name: grad_cam, layer: conv2}   # layer: optional (the last convolution)
    target: predicted            # predicted (default) | label (the data's labels) |
                                 #   a class id (int >= 0) for every sample
    samples: 8                   # samples drawn per figure (all are explained)
    batch_size: 1024             # rows (path points x samples) per gradient pass
    seed: 0                      # seed of SmoothGrad's noise
    output: runs/saliency        # default output folder (--out overrides)
    feature_names: [radius, texture]   # optional, tabular inputs: the bar charts' names (a
                                 #   list, or {input: [names]}; default: the npz's
                                 #   `feature_names` array or the embedded data set's,
                                 #   else x[0], x[1]...)
    imports: [my_layers]         # as in a benchmark config

>>> from advgrad.schema.catalog import Catalog
>>> catalog = Catalog(attacks={}, norms=("linf",), datasets=("digits",),
...                   models=("digits-cnn",))
>>> document = {"model": "digits-cnn", "data": {"name": "digits", "limit": 4},
...             "methods": ["vanilla", {"name": "integrated_gradients", "steps": 32}]}
>>> config = parse_saliency(document, catalog)
>>> [m.name for m in config.methods], config.settings["integrated_gradients"]["steps"]
(['vanilla', 'integrated_gradients'], 32)
>>> parse_saliency({**document, "methods": [{"name": "smoothgrad", "samples": 0}]}, catalog)
Traceback (most recent call last):
...
advgrad.schema.problems.ConfigError: methods[0].samples: expected an int in [1, 2**16), received 0
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import textwrap
from collections.abc import Mapping
from typing import Any

from advgrad._validation import check_int, check_number
from advgrad.schema.bench import BenchConfig
from advgrad.schema.catalog import Catalog
from advgrad.schema.problems import Problems, check_document, check_keys
from advgrad.schema.sections import (
    parse_data,
    parse_imports,
    parse_int,
    parse_model,
    parse_output,
)
from advgrad.schema.yamlfile import load_with

__all__ = [
    "MAX_STEPS",
    "METHODS",
    "METHOD_SETTINGS",
    "SCHEMA",
    "MethodConfig",
    "SaliencyConfig",
    "load_saliency",
    "parse_saliency",
]

SCHEMA = (
    textwrap.dedent(__doc__.split("::\n", 1)[1].split("\n>>>", 1)[0]).strip("\n") + "\n"
    if __doc__
    else ""
)
"""Every key of a saliency config, one commented example each (the schema above)."""

METHODS = ("vanilla", "gradient_x_input", "smoothgrad", "integrated_gradients", "grad_cam")
"""The methods of `advgrad.saliency` (kept equal to ``advgrad.saliency.METHODS`` by a test)."""

RULES = ("riemann_middle", "gausslegendre", "trapezoid")
"""Integrated gradients' quadrature rules (``advgrad.saliency.RULES``)."""

MAX_STEPS = 2**16
"""``steps`` and ``samples`` are ints in [1, MAX_STEPS) (``advgrad.saliency.MAX_STEPS``)."""

METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "vanilla": {},
    "gradient_x_input": {},
    "smoothgrad": {"samples": 50, "noise": 0.15},
    "integrated_gradients": {"steps": 64, "method": "riemann_middle", "baseline": None},
    "grad_cam": {"layer": None},
}
"""Each method's settings a config may give, with the functions' defaults."""

TARGETS = ("predicted", "label")

_KEYS = (
    "model",
    "imports",
    "data",
    "indices",
    "methods",
    "target",
    "samples",
    "batch_size",
    "seed",
    "output",
    "feature_names",
)
_REQUIRED = ("model", "data", "methods")
_MAX_INDICES = 1024


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """One entry of ``methods``: the name and the settings given (defaults not filled in)."""

    name: str
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SaliencyConfig:
    """A validated saliency config.

    Attributes:
        bench: The shared part (model, data, imports, batch size, seed, output, source,
            folder) as a `BenchConfig` with no suite and no radius, so that
            `advgrad.config.build_run` loads the model and the data with its checks.
        methods: The methods, in order.
        indices: Only these samples (after ``data.limit``), or None for all.
        target: ``"predicted"``, ``"label"`` or a class id.
        samples: Samples drawn per figure.
        feature_names: Names of a tabular input's features (a tuple), or per input (a
            dict of tuples); None: the npz's ``feature_names`` or the embedded data
            set's (`advgrad.data.Dataset.feature_names`), else ``x[i]``.
    """

    bench: BenchConfig
    methods: tuple[MethodConfig, ...]
    indices: tuple[int, ...] | None = None
    target: str | int = "predicted"
    samples: int = 8
    feature_names: tuple[str, ...] | dict[str, tuple[str, ...]] | None = None

    @property
    def settings(self) -> dict[str, dict[str, Any]]:
        """``{method: settings}`` as the config gives them."""
        return {m.name: dict(m.settings) for m in self.methods}

    def run_settings(self) -> dict[str, dict[str, Any]]:
        """``{method: settings}`` as `advgrad.saliency.write_saliency` takes them: the
        config's, with ``batch_size`` for every method and ``seed`` for SmoothGrad.

        >>> from advgrad.schema.bench import BenchConfig
        >>> bench = BenchConfig(model="m", data=None, suite=(), eps=(), seed=3)
        >>> config = SaliencyConfig(bench, (MethodConfig("smoothgrad", {"samples": 5}),))
        >>> config.run_settings()
        {'smoothgrad': {'samples': 5, 'batch_size': 128, 'seed': 3}}
        """
        out = {}
        for method in self.methods:
            settings = {**method.settings, "batch_size": self.bench.batch_size}
            if method.name == "smoothgrad":
                settings["seed"] = self.bench.seed
            out[method.name] = settings
        return out


def load_saliency(path: str | os.PathLike, catalog: Catalog) -> SaliencyConfig:
    """Read and validate a saliency YAML file (the schema above), read safely.

    Raises:
        ConfigError: Every problem found, by its YAML path.
    """
    return load_with(parse_saliency, path, catalog)


def parse_saliency(
    document: Any,
    catalog: Catalog,
    *,
    base: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
) -> SaliencyConfig:
    """Validate a saliency config given as a mapping (what ``yaml.safe_load`` returns).

    Raises:
        ConfigError: Every problem found, by path.
    """
    base_dir = pathlib.Path(base if base is not None else os.getcwd()).expanduser().absolute()
    source_path = None if source is None else pathlib.Path(source).expanduser().absolute()
    problems = Problems()
    expected = "a mapping of keys (model, data, methods, ...)"
    check_document(document, _KEYS, _REQUIRED, expected, problems, source)
    get = document.get
    model = parse_model(get("model"), base_dir, catalog, problems) if "model" in document else ""
    data = parse_data(get("data"), base_dir, catalog, problems) if "data" in document else None
    methods = _parse_methods(get("methods"), problems) if "methods" in document else ()
    indices = _parse_indices(get("indices"), problems)
    target = _parse_target(get("target", "predicted"), problems)
    samples = parse_int(get("samples", 8), "samples", 1, problems)
    batch_size = parse_int(get("batch_size", 1024), "batch_size", 1, problems)
    seed = parse_int(get("seed", 0), "seed", 0, problems)
    output = parse_output(get("output"), problems)
    imports = parse_imports(get("imports"), problems)
    feature_names = _parse_feature_names(get("feature_names"), problems)
    problems.raise_if_any(source)
    bench = BenchConfig(
        model=model,
        data=data,
        suite=(),
        eps=(),
        bounds=None,
        batch_size=batch_size,
        plot_examples=False,
        seed=seed,
        output=output,
        source=source_path,
        imports=imports,
        folder=base_dir,
    )
    return SaliencyConfig(bench, methods, indices, target, samples, feature_names)


def _parse_feature_names(value: Any, problems: Problems) -> Any:
    """None, a list of names (one input) or ``{input: [names]}``, names non-empty strings."""

    def names(item: Any, path: str) -> tuple[str, ...] | None:
        if isinstance(item, list) and item and all(isinstance(n, str) and n for n in item):
            return tuple(item)
        problems.expected(path, "a list of feature names (non-empty strings)", item)
        return None

    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): names(v, f"feature_names.{k}") for k, v in value.items()}
    return names(value, "feature_names")


def _parse_methods(value: Any, problems: Problems) -> tuple[MethodConfig, ...]:
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.expected("methods", f"a list of methods among {', '.join(METHODS)}", value)
        return ()
    methods = []
    seen = set()
    for index, item in enumerate(value):
        path = f"methods[{index}]"
        if isinstance(item, Mapping):
            name, settings = item.get("name"), {k: v for k, v in item.items() if k != "name"}
            if "name" not in item:
                problems.add(path, "missing key 'name'")
                continue
        else:
            name, settings = item, {}
        name = name.replace("-", "_") if isinstance(name, str) else name
        if name not in METHODS:
            problems.expected(
                f"{path}.name" if isinstance(item, Mapping) else path,
                f"one of {', '.join(METHODS)}",
                name,
                METHODS,
            )
            continue
        if name in seen:
            problems.add(path, f"{name} is listed twice")
            continue
        seen.add(name)
        check_keys(settings, tuple(METHOD_SETTINGS[name]), path, problems)
        checked = {}
        for key, setting in settings.items():
            if key in METHOD_SETTINGS[name]:
                checked[key] = _parse_setting(name, key, setting, f"{path}.{key}", problems)
        methods.append(MethodConfig(name, checked))
    return tuple(methods)


def _parse_setting(method: str, key: str, value: Any, path: str, problems: Problems) -> Any:
    if key == "samples" or key == "steps":
        return problems.check(path, value, lambda p, v: check_int(p, v, low=1, high=MAX_STEPS))
    if key == "noise":
        return problems.check(path, value, lambda p, v: check_number(p, v, low=0.0))
    if key == "baseline":
        if value is None:
            return None
        return problems.check(path, value, lambda p, v: check_number(p, v))
    if key == "method":
        if value not in RULES:
            problems.expected(path, f"one of {', '.join(RULES)}", value, RULES)
        return value
    if key == "layer":
        if value is not None and (not isinstance(value, str) or not value):
            problems.expected(path, "a layer name", value)
        return value
    return value


def _parse_indices(value: Any, problems: Problems) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > _MAX_INDICES:
        problems.expected("indices", f"a list of 1 to {_MAX_INDICES} sample indices", value)
        return None
    out = []
    for index, item in enumerate(value):
        checked = problems.check(f"indices[{index}]", item, lambda p, v: check_int(p, v, low=0))
        if checked is not None:
            out.append(checked)
    return tuple(out)


def _parse_target(value: Any, problems: Problems) -> str | int:
    if isinstance(value, str) and value in TARGETS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problems.expected("target", "predicted, label or a class id (an int >= 0)", value, TARGETS)
    return "predicted"
