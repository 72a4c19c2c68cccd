"""Reading and validating a benchmark config: the "parse" half of parse, then build.

Pure: this module imports no TensorFlow, no Keras and no advgrad module that does. What a
config may name (attacks and their settings, norms, data sets, zoo models) comes in as a
`Catalog` (`advgrad.config.load_config` passes the registries' own,
`advgrad.config.registries.default_catalog`). The YAML schema is described in
`advgrad.config`.

>>> catalog = Catalog(
...     attacks={"pgd": {"name": "pgd", "eps": 0.0, "norm": "linf", "steps": 10}},
...     norms=("linf", "l2"),
...     datasets=("digits",),
...     models=("digits-cnn",),
... )
>>> document = {"model": "digits-cnn", "data": {"name": "digits"}, "suite": "pgd", "eps": 0.1}
>>> config = parse(document, catalog)
>>> config.suite, config.eps
((AttackConfig(name='pgd', settings={}),), (0.1,))
>>> try:
...     parse({**document, "suite": {"name": "pgd", "steps": "ten"}}, catalog)
... except ConfigError as err:
...     print(err)
suite[0].steps: expected an int, received 'ten'
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from advgrad._validation import (
    SEED_LIMIT,
    ArgumentError,
    check_bool,
    check_eps,
    check_int,
)
from advgrad.schema.catalog import Catalog
from advgrad.schema.distribute import DistributeConfig, parse_distribute
from advgrad.schema.problems import ConfigError, Problems, check_keys
from advgrad.schema.sections import (
    BOOL,
    FROZEN,
    AttackConfig,
    DataConfig,
    module_name_problem,
    parse_bounds,
    parse_data,
    parse_eps,
    parse_imports,
    parse_inputs,
    parse_int,
    parse_model,
    parse_norm,
    parse_output,
    parse_suite,
    parse_targets,
)
from advgrad.schema.yamlfile import load_with

__all__ = [
    "FROZEN",
    "AttackConfig",
    "BenchConfig",
    "BenchRun",
    "Catalog",
    "ConfigError",
    "DataConfig",
    "load",
    "parse",
]

_TOP_KEYS = (
    "model",
    "data",
    "suite",
    "eps",
    "norm",
    "bounds",
    "inputs",
    "batch_size",
    "plot_examples",
    "seed",
    "targets",
    "individual",
    "output",
    "imports",
    "distribute",
)
_REQUIRED = ("model", "data", "suite", "eps")


CURVE = "curve"
"""The eps entry that asks for the whole robustness curve (`advgrad.evaluate`)."""


def _parse_eps_or_curve(value: Any, problems: Problems) -> tuple[float | str, ...]:
    """`parse_eps`, with ``curve`` allowed alone or among the radii (kept last).

    >>> from advgrad.schema.problems import Problems
    >>> _parse_eps_or_curve([0.5, "curve"], Problems()), _parse_eps_or_curve("curve", Problems())
    ((0.5, 'curve'), ('curve',))
    """
    items = value if isinstance(value, list) else [value]
    curve = any(isinstance(v, str) and v == CURVE for v in items)
    if not curve:
        return parse_eps(value, problems)
    result: list[float | str] = []
    for index, item in enumerate(items):
        if isinstance(item, str) and item == CURVE:
            continue
        path = f"eps[{index}]" if isinstance(value, list) else "eps"
        eps = problems.check(path, item, lambda p, v: check_eps(v, p))
        if eps is not None:
            result.append(eps)
    return (*result, CURVE)


# ------------------------------------------------------------------------------ dataclasses
class BenchRun(NamedTuple):
    """What `advgrad.config.build_run` returns: everything `advgrad.evaluate` needs.

    Attributes:
        model: The compiled ``keras.Model``.
        data: ``(x, y)``: inputs (array, or dict of arrays for several inputs) and int labels.
        suite: The attacks, as ``Attack`` objects with norm, bounds and frozen inputs applied.
        eps: The radii to sweep, a list of floats.
        bounds: The resolved valid range: None, ``(low, high)`` or a dict input name -> those.
    """

    model: Any
    data: tuple[Any, np.ndarray]
    suite: list[Any]
    eps: list[float]
    bounds: Any


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """A validated benchmark config (see `advgrad.config` for the YAML schema).

    Build it with `load_config` (a file) or `parse_config` (a mapping), never by hand: those
    validate everything. `advgrad.config.build_run` then loads the model and the data and
    makes the attacks.

    Attributes:
        model: The zoo model name, or the absolute path of a ``.keras`` file.
        data: The `DataConfig`.
        suite: The attacks, a tuple of `AttackConfig`.
        eps: The radii, a tuple of finite floats >= 0; ``"curve"`` among them (``eps:
            curve`` or ``eps: [0.5, curve]``) asks for the whole robustness curve too
            (`advgrad.evaluate`'s ``eps="curve"``), and is kept last.
        norm: Norm for attacks that do not set theirs, or None (each attack's default).
        bounds: ``"data"``, None, ``(low, high)`` or a dict input name -> one of those.
        inputs: None (every input perturbed), or a dict input name -> None (frozen) or a
            dict of per-input settings (``bounds``).
        batch_size: Samples per batch.
        plot_examples: Keep adversarial examples for the plots (``return_adversarial``).
        seed: Seed of the evaluation.
        targets: What the targeted attacks aim at (`advgrad.evaluate`'s ``targets``): None
            (the default rule, the most likely wrong class), a rule name
            (``most-likely-wrong``, ``least-likely``, ``random``) or a class id (int >= 0).
        individual: Run every attack alone on every clean-correct sample too (per-attack
            rows); False: each only on the samples still robust. Default: False for a named
            suite (``suite: standard``), else True.
        suite_name: The suite's name when the config names one (``suite: adaptive``), so
            that its rules reach `advgrad.evaluate` (`advgrad.attacks.Suite`); else None.
        output: The output folder (absolute), or None when the config names none.
        source: The YAML file it was read from, or None.
        imports: The config's ``imports``: modules `build_run` imports before it loads the
            model (custom layers and losses registered with
            ``@keras.saving.register_keras_serializable()``).
        extra_imports: More such modules, imported after those: the CLI's ``--import``
            (`with_overrides`).
        folder: The folder relative paths were resolved against (the config file's), searched
            first for `imports`; None: only ``sys.path``.
        distribute: The ``distribute:`` section (`advgrad.schema.distribute`): the
            `tf.distribute` strategy the attacks run under (default: none).
    """

    model: str
    data: DataConfig
    suite: tuple[AttackConfig, ...]
    eps: tuple[float | str, ...]
    norm: str | None = None
    bounds: Any = "data"
    inputs: dict[str, dict[str, Any] | None] | None = None
    batch_size: int = 128
    plot_examples: bool = True
    seed: int = 0
    output: pathlib.Path | None = None
    source: pathlib.Path | None = None
    imports: tuple[str, ...] = ()
    extra_imports: tuple[str, ...] = ()
    folder: pathlib.Path | None = None
    targets: str | int | None = None
    individual: bool = True
    suite_name: str | None = None
    distribute: DistributeConfig = DistributeConfig()

    @property
    def is_zoo_model(self) -> bool:
        """True when ``model`` is a zoo name rather than a file."""
        return not os.path.isabs(self.model)

    def with_overrides(
        self,
        *,
        limit: int | None = None,
        output: str | os.PathLike | None = None,
        imports: Sequence[str] = (),
    ) -> BenchConfig:
        """A copy with the CLI's ``--limit``, ``--out`` and ``--import`` applied (None and
        ``()`` keep the value).

        Args:
            limit: Use only the first ``limit`` samples (int >= 1).
            output: Output folder, relative to the current folder.
            imports: More modules to import before the model loads, after the config's own
                (names the config already lists are not repeated).

        Returns:
            The new `BenchConfig`.

        Raises:
            ValueError: If ``limit`` is not an int >= 1 or a name of ``imports`` is not a
                dotted module name (an ``ArgumentError`` naming it).
        """
        changes: dict[str, Any] = {}
        if isinstance(imports, str):
            imports = [imports]
        extra = []
        for name in imports:
            problem = module_name_problem(name)
            if problem is not None:
                raise ArgumentError("import", problem)
            known = (*self.imports, *self.extra_imports, *extra)
            if name not in known:
                extra.append(name)
        if extra:
            changes["extra_imports"] = (*self.extra_imports, *extra)
        if limit is not None:
            changes["data"] = dataclasses.replace(self.data, limit=check_int("limit", limit, low=1))
        if output is not None:
            changes["output"] = pathlib.Path(output).expanduser().absolute()
        return dataclasses.replace(self, **changes)


def load(path: str | os.PathLike, catalog: Catalog) -> BenchConfig:
    """Read and validate a benchmark YAML file (see `advgrad.config` for the schema).

    Args:
        path: The ``.yaml`` file.
        catalog: What the config may name (`advgrad.config.registries.default_catalog`).

    Returns:
        A fully validated `BenchConfig`, with paths to read resolved against the file's folder.

    Raises:
        ConfigError: If the file is missing, is not safe YAML (``!!python/...`` tags are
            refused), or any value is invalid; the error lists every problem by its path.
        ValueError: If ``path`` is not a path.
    """
    return load_with(parse, path, catalog)


def parse(
    document: Any,
    catalog: Catalog,
    *,
    base: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
) -> BenchConfig:
    """Validate a config given as a mapping (what ``yaml.safe_load`` returns).

    Args:
        document: The config mapping.
        base: Folder that relative ``model``/``data.npz`` paths are resolved against.
            Defaults to the current folder.
        source: Where the mapping came from, for error messages.
        catalog: What the config may name (`advgrad.config.registries.default_catalog`).

    Returns:
        A `BenchConfig`.

    Raises:
        ConfigError: Listing every problem found, by path.
    """
    base_dir = pathlib.Path(base if base is not None else os.getcwd()).expanduser().absolute()
    source_path = None if source is None else pathlib.Path(source).expanduser().absolute()
    problems = Problems()
    if not isinstance(document, Mapping):
        problems.expected("", "a mapping of keys (model, data, suite, eps, ...)", document)
        problems.raise_if_any(source)
    check_keys(document, _TOP_KEYS, "", problems)
    for key in _REQUIRED:
        if key not in document:
            problems.add("", f"missing key {key!r}")

    get = document.get
    model = parse_model(get("model"), base_dir, catalog, problems) if "model" in document else ""
    data = parse_data(get("data"), base_dir, catalog, problems) if "data" in document else None
    norm = parse_norm(get("norm"), "norm", catalog, problems)
    suite = parse_suite(get("suite"), norm, catalog, problems) if "suite" in document else ()
    eps = _parse_eps_or_curve(get("eps"), problems) if "eps" in document else ()
    bounds = parse_bounds(get("bounds", "data"), "bounds", problems, per_input=True)
    inputs = parse_inputs(get("inputs"), problems)
    batch_size = parse_int(get("batch_size", 128), "batch_size", 1, problems)
    seed = parse_int(get("seed", 0), "seed", 0, problems, high=SEED_LIMIT)
    targets = parse_targets(get("targets"), problems)
    individual = get("individual")
    if individual is None:  # default: the cascade alone for a named suite (AutoAttack's way)
        individual = not (isinstance(get("suite"), str) and get("suite") in catalog.suites)
    named = isinstance(get("suite"), str) and get("suite") in catalog.suites
    individual = problems.check("individual", individual, check_bool, expected=BOOL)
    plot_examples = problems.check(
        "plot_examples", get("plot_examples", True), check_bool, expected=BOOL
    )
    output = parse_output(get("output"), problems)
    imports = parse_imports(get("imports"), problems)
    distribute = parse_distribute(get("distribute"), problems)
    problems.raise_if_any(source)
    return BenchConfig(
        model=model,
        data=data,
        suite=suite,
        suite_name=get("suite") if named else None,
        eps=eps,
        norm=norm,
        bounds=bounds,
        inputs=inputs,
        batch_size=batch_size,
        plot_examples=bool(plot_examples),
        seed=seed,
        targets=targets,
        individual=bool(individual),
        output=output,
        source=source_path,
        imports=imports,
        folder=base_dir,
        distribute=distribute,
    )
