"""Benchmark configs: a YAML file, loaded safely and validated whole, that `advgrad bench` runs.

A config names a model, a data set, a suite of attacks and the radii to sweep. It is read with
``yaml.safe_load`` only (a file with Python tags such as ``!!python/object`` is refused) and
checked completely before any work starts: every problem is reported at once, by its path
(``suite[1].steps: expected int, received 'ten'``). Models given as files are loaded with
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
      # bounds: [0.0, 1.0]       #   optional: valid input range, for `bounds: data`
    suite:                       # attacks, run in this order, worst case per sample kept
      - fgsm                     #   a registered name (`advgrad attacks`) with its defaults,
      - {name: pgd, steps: 20}   #   or a mapping: name plus settings (checked against the
                                 #   attack's get_config(): known keys, right types)
    eps: [0.05, 0.1, 0.2, 0.3, 1.0]   # a number or a list of numbers >= 0, swept for every attack
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
    output: runs/digits          # default output folder of `advgrad bench` (--out overrides)

Paths to read (``model``, ``data.npz``) are relative to the YAML file's folder, so a config
runs the same from anywhere; ``output`` is relative to the current folder (where you run
``advgrad``), so results land in your working tree, not next to the config. Without
``output`` the CLI writes to ``runs/<config file name without .yaml>``.

``eps`` and ``bounds`` are top-level keys, not attack settings: every attack of the suite is
run at every radius, within the same valid range. With ``inputs``, inputs that are not listed
are frozen too, as with ``advgrad.Budget`` dicts.

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
eps: expected a number >= 0, received -0.1
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import pathlib
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import yaml

from advgrad._validation import describe, invalid

__all__ = [
    "AttackConfig",
    "BenchConfig",
    "BenchRun",
    "ConfigError",
    "DataConfig",
    "load_config",
    "parse_config",
]

NORMS = ("linf", "l2", "l1")
"""Norm names a config may give."""

DATASETS = {"digits": "digits", "breast-cancer-two-input": "breast_cancer_two_input"}
"""Embedded data set names in configs (hyphens or underscores) -> `advgrad.data.get` names."""

FROZEN = "frozen"
"""The value that freezes an input in the ``inputs`` section (``null`` works too)."""

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
    "output",
)
_REQUIRED = ("model", "data", "suite", "eps")
_EMBEDDED_KEYS = ("name", "split", "limit", "flat")
_NPZ_KEYS = ("npz", "x", "y", "bounds", "limit")
_INPUT_KEYS = ("bounds",)
_SUITE_RESERVED = {
    "eps": "set `eps` at the top level of the config: it is swept for every attack",
    "bounds": "set `bounds` at the top level of the config (or per input under `inputs`)",
    "budget": "use the top-level `inputs` section to choose which inputs are perturbed",
    "progress": "the CLI shows progress bars itself",
}


class ConfigError(ValueError):
    """A config that cannot run; ``problems`` lists every problem found, by path.

    ``str(error)`` is one line: the file, then the problems separated by ``"; "``.

    Attributes:
        problems: One message per problem, e.g. ``"suite[1].steps: expected int, received
            'ten'"``.
        source: The config file, or None for a config given as a mapping.

    >>> str(ConfigError(["eps: expected a number >= 0, received -1"], source="a.yaml"))
    'a.yaml: eps: expected a number >= 0, received -1'
    """

    def __init__(self, problems: Sequence[str], source: str | os.PathLike | None = None):
        self.problems = [" ".join(str(p).split()) for p in problems] or ["invalid config"]
        self.source = None if source is None else str(source)
        head = f"{self.source}: " if self.source else ""
        count = len(self.problems)
        lead = f"{count} problems: " if count > 1 else ""
        super().__init__(head + lead + "; ".join(self.problems))


# ------------------------------------------------------------------------------ dataclasses
@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The ``data`` section: an embedded data set or an ``.npz`` file.

    Attributes:
        name: Embedded data set name as `advgrad.data.get` spells it, or None for an npz.
        split: ``"test"`` or ``"train"`` (embedded data sets).
        limit: Use only the first ``limit`` samples; None for all.
        flat: Digits only: flattened images; None to follow the model's input shape.
        npz: Absolute path of the ``.npz`` file, or None.
        x: npz key(s) of the inputs: a key, a tuple of keys, or a dict input name -> key.
        y: npz key of the labels.
        bounds: npz only: the ``(low, high)`` valid range, or None when not given.
    """

    name: str | None = None
    split: str = "test"
    limit: int | None = None
    flat: bool | None = None
    npz: pathlib.Path | None = None
    x: str | tuple[str, ...] | dict[str, str] | None = None
    y: str | None = None
    bounds: tuple[Any, Any] | None = None


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """One entry of the ``suite``: a registered attack name and the settings given for it."""

    name: str
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


class BenchRun(NamedTuple):
    """What `BenchConfig.build` returns: everything `advgrad.evaluate` needs.

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
    """A validated benchmark config (see the module docstring for the YAML schema).

    Build it with `load_config` (a file) or `parse_config` (a mapping), never by hand: those
    validate everything. `build` then loads the model and the data and makes the attacks.

    Attributes:
        model: The zoo model name, or the absolute path of a ``.keras`` file.
        data: The `DataConfig`.
        suite: The attacks, a tuple of `AttackConfig`.
        eps: The radii, a tuple of floats >= 0.
        norm: Norm for attacks that do not set theirs, or None (each attack's default).
        bounds: ``"data"``, None, ``(low, high)`` or a dict input name -> one of those.
        inputs: None (every input perturbed), or a dict input name -> None (frozen) or a
            dict of per-input settings (``bounds``).
        batch_size: Samples per batch.
        plot_examples: Keep adversarial examples for the plots (``return_adversarial``).
        seed: Seed of the evaluation.
        output: The output folder (absolute), or None when the config names none.
        source: The YAML file it was read from, or None.
    """

    model: str
    data: DataConfig
    suite: tuple[AttackConfig, ...]
    eps: tuple[float, ...]
    norm: str | None = None
    bounds: Any = "data"
    inputs: dict[str, dict[str, Any] | None] | None = None
    batch_size: int = 128
    plot_examples: bool = True
    seed: int = 0
    output: pathlib.Path | None = None
    source: pathlib.Path | None = None

    @property
    def is_zoo_model(self) -> bool:
        """True when ``model`` is a zoo name rather than a file."""
        return not os.path.isabs(self.model)

    def with_overrides(
        self, *, limit: int | None = None, output: str | os.PathLike | None = None
    ) -> BenchConfig:
        """A copy with the CLI's ``--limit`` and ``--out`` applied (None keeps the value).

        Args:
            limit: Use only the first ``limit`` samples (int >= 1).
            output: Output folder, relative to the current folder.

        Returns:
            The new `BenchConfig`.

        Raises:
            ValueError: If ``limit`` is not an int >= 1.
        """
        changes: dict[str, Any] = {}
        if limit is not None:
            if not _is_int(limit) or limit < 1:
                raise invalid("limit", "an int >= 1", limit)
            changes["data"] = dataclasses.replace(self.data, limit=int(limit))
        if output is not None:
            changes["output"] = pathlib.Path(output).expanduser().absolute()
        return dataclasses.replace(self, **changes)

    def build(self) -> BenchRun:
        """Load the model and the data, resolve the bounds and make the attacks.

        Returns:
            A `BenchRun` ``(model, (x, y), suite, eps, bounds)``.

        Raises:
            ConfigError: If the model file cannot be loaded safely, the data does not fit the
                model (input names, labels out of range), or the bounds do not fit the data.
        """
        problems = _Problems()
        model = _load_model(self.model, problems)
        problems.raise_if_any(self.source)
        x, y, data_bounds = _load_data(self.data, model)
        problems.raise_if_any(self.source)
        input_names = _model_input_names(model)
        _check_data_fits(x, y, model, input_names, problems)
        problems.raise_if_any(self.source)
        samples = _leaves_by_name(x, input_names)
        bounds, frozen = _resolve_bounds(self, data_bounds, samples, input_names, problems)
        problems.raise_if_any(self.source)
        suite = _make_suite(self, bounds, frozen, input_names, problems)
        if getattr(model, "loss", None) is None:
            for index, attack in enumerate(suite):
                if getattr(attack, "loss", None) is None:
                    problems.add(
                        "model",
                        f"the model has no compiled loss and suite[{index}] ({attack.name}) "
                        "sets none: compile the model before saving it, or give the attack "
                        "a `loss` (ce, margin, dlr)",
                    )
                    break
        problems.raise_if_any(self.source)
        return BenchRun(model, (x, y), suite, list(self.eps), bounds)


# ------------------------------------------------------------------------------- loading
def load_config(path: str | os.PathLike) -> BenchConfig:
    """Read and validate a benchmark YAML file (see the module docstring for the schema).

    Args:
        path: The ``.yaml`` file.

    Returns:
        A fully validated `BenchConfig`, with paths to read resolved against the file's folder.

    Raises:
        ConfigError: If the file is missing, is not safe YAML (``!!python/...`` tags are
            refused), or any value is invalid; the error lists every problem by its path.
        ValueError: If ``path`` is not a path.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise invalid("path", "a path to a YAML file", path)
    path = pathlib.Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"config file not found: {path}"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"cannot read the config file: {err}"], source=path) from None
    try:
        document = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as err:
        tag = getattr(err, "problem", "") or str(err)
        mark = err.problem_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(
            [f"refused unsafe YAML{where}: {tag}; configs are loaded with yaml.safe_load"],
            source=path,
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError([f"invalid YAML{where}: {problem}"], source=path) from None
    return parse_config(document, base=path.parent, source=path)


def parse_config(
    document: Any,
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

    Returns:
        A `BenchConfig`.

    Raises:
        ConfigError: Listing every problem found, by path.
    """
    base_dir = pathlib.Path(base if base is not None else os.getcwd()).expanduser().absolute()
    source_path = None if source is None else pathlib.Path(source).expanduser().absolute()
    problems = _Problems()
    if not isinstance(document, Mapping):
        expected = "a mapping of keys (model, data, suite, eps, ...)"
        problems.add("", f"expected {expected}, received {_received(document)}")
        problems.raise_if_any(source)
    _check_keys(document, _TOP_KEYS, "", problems)
    for key in _REQUIRED:
        if key not in document:
            problems.add("", f"missing key {key!r}")

    model = _parse_model(document.get("model"), base_dir, problems) if "model" in document else ""
    data = _parse_data(document.get("data"), base_dir, problems) if "data" in document else None
    norm = _parse_norm(document.get("norm"), "norm", problems)
    suite = _parse_suite(document.get("suite"), norm, problems) if "suite" in document else ()
    eps = _parse_eps(document.get("eps"), problems) if "eps" in document else ()
    bounds = _parse_bounds(document.get("bounds", "data"), "bounds", problems, per_input=True)
    inputs = _parse_inputs(document.get("inputs"), problems)
    batch_size = _parse_int(document.get("batch_size", 128), "batch_size", 1, problems)
    seed = _parse_int(document.get("seed", 0), "seed", 0, problems)
    plot_examples = document.get("plot_examples", True)
    if not isinstance(plot_examples, bool):
        problems.expected("plot_examples", "a bool", plot_examples)
    output = _parse_output(document.get("output"), problems)
    problems.raise_if_any(source)
    return BenchConfig(
        model=model,
        data=data,
        suite=suite,
        eps=eps,
        norm=norm,
        bounds=bounds,
        inputs=inputs,
        batch_size=batch_size,
        plot_examples=plot_examples is not False,
        seed=seed,
        output=output,
        source=source_path,
    )


# ------------------------------------------------------------------------------ problems
class _Problems:
    """Collects problems by path; raises them all at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def expected(self, path: str, expected: str, value: Any) -> None:
        self.add(path, f"expected {expected}, received {_received(value)}")

    def raise_if_any(self, source: Any = None) -> None:
        if self.items:
            raise ConfigError(self.items, source=source)


def _received(value: Any) -> str:
    return describe(value)


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _suggest(word: Any, choices: Sequence[str]) -> str:
    if not isinstance(word, str):
        return ""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check_keys(mapping: Mapping, allowed: Sequence[str], path: str, problems: _Problems) -> None:
    for key in mapping:
        if key not in allowed:
            problems.add(path, f"unknown key {key!r}{_suggest(key, allowed)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


# ------------------------------------------------------------------------------- parsing
def _parse_int(value: Any, path: str, low: int, problems: _Problems) -> int:
    if not _is_int(value):
        problems.expected(path, "int", value)
        return low
    if value < low:
        problems.expected(path, f"an int >= {low}", value)
        return low
    return int(value)


def _parse_norm(value: Any, path: str, problems: _Problems) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in NORMS:
        problems.add(
            path,
            f"expected one of {', '.join(NORMS)}, received {_received(value)}"
            f"{_suggest(value, NORMS)}",
        )
        return None
    return value.lower()


def _zoo_names() -> list[str]:
    from advgrad import zoo

    return [card.name for card in zoo.list_models()]


def _parse_model(value: Any, base: pathlib.Path, problems: _Problems) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.expected("model", "a zoo model name or a path to a .keras file", value)
        return ""
    names = _zoo_names()
    if value in names:
        return value
    looks_like_path = value.endswith(".keras") or "/" in value or os.sep in value
    if not looks_like_path:
        problems.add(
            "model",
            f"expected a zoo model name ({', '.join(names)}) or a path to a .keras file, "
            f"received {value!r}{_suggest(value, names)}",
        )
        return ""
    path = (base / pathlib.Path(value).expanduser()).absolute()
    if not path.name.endswith(".keras"):
        problems.add(
            "model",
            f"expected a .keras file (Keras 3 format, loaded in safe mode), received {value!r}",
        )
    elif not path.is_file():
        problems.add("model", f"model file not found: {path}")
    return str(path)


def _parse_data(value: Any, base: pathlib.Path, problems: _Problems) -> DataConfig | None:
    if not isinstance(value, Mapping):
        problems.expected(
            "data", "a mapping with `name` (an embedded data set) or `npz` (a file)", value
        )
        return None
    if "npz" in value:
        return _parse_npz(value, base, problems)
    if "name" not in value:
        problems.add("data", "missing key 'name' (an embedded data set) or 'npz' (a file)")
        _check_keys(value, _EMBEDDED_KEYS, "data", problems)
        return None
    _check_keys(value, _EMBEDDED_KEYS, "data", problems)
    name = value["name"]
    canonical = DATASETS.get(name.replace("_", "-")) if isinstance(name, str) else None
    if canonical is None:
        problems.add(
            "data.name",
            f"expected one of {', '.join(DATASETS)}, received {_received(name)}"
            f"{_suggest(name, list(DATASETS))}",
        )
    split = value.get("split", "test")
    if split not in ("test", "train"):
        problems.expected("data.split", "test or train", split)
    limit = _parse_limit(value.get("limit"), problems)
    flat = value.get("flat")
    if flat is not None and not isinstance(flat, bool):
        problems.expected("data.flat", "a bool", flat)
    if flat is not None and canonical is not None and canonical != "digits":
        problems.add("data.flat", "only the digits data set can be flattened")
    return DataConfig(name=canonical, split=split, limit=limit, flat=flat)


def _parse_limit(value: Any, problems: _Problems) -> int | None:
    if value is None:
        return None
    return _parse_int(value, "data.limit", 1, problems)


def _parse_npz(value: Mapping, base: pathlib.Path, problems: _Problems) -> DataConfig | None:
    _check_keys(value, _NPZ_KEYS, "data", problems)
    raw = value["npz"]
    if not isinstance(raw, str) or not raw:
        problems.expected("data.npz", "a path to a .npz file", raw)
        return None
    path = (base / pathlib.Path(raw).expanduser()).absolute()
    if not path.is_file():
        problems.add("data.npz", f"file not found: {path}")
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
    except Exception as err:  # zip errors, not an npz, ...
        problems.add("data.npz", f"cannot read {path} as a .npz file: {_one_line(err)}")
        return None

    def key_of(item: Any, item_path: str) -> str | None:
        if not isinstance(item, str):
            problems.expected(item_path, "an array name in the .npz file", item)
            return None
        if item not in keys:
            problems.add(
                item_path,
                f"no array {item!r} in {path.name} (it holds {', '.join(keys)})"
                f"{_suggest(item, keys)}",
            )
            return None
        return item

    x_value = value.get("x")
    if x_value is None:
        problems.add("data", "missing key 'x' (the name of the inputs in the .npz file)")
        x = None
    elif isinstance(x_value, str):
        x = key_of(x_value, "data.x")
    elif isinstance(x_value, list) and x_value:
        x = tuple(key_of(item, f"data.x[{i}]") for i, item in enumerate(x_value))
    elif isinstance(x_value, Mapping) and x_value:
        x = {str(k): key_of(item, f"data.x.{k}") for k, item in x_value.items()}
    else:
        problems.expected("data.x", "a key, a list of keys or a mapping input -> key", x_value)
        x = None
    y_value = value.get("y")
    y = None
    if y_value is None:
        problems.add("data", "missing key 'y' (the name of the labels in the .npz file)")
    else:
        y = key_of(y_value, "data.y")
    bounds = None
    if "bounds" in value:
        bounds = _parse_bounds(value["bounds"], "data.bounds", problems, per_input=False)
        if bounds == "data" or bounds is None:
            problems.expected("data.bounds", "[low, high]", value["bounds"])
            bounds = None
    limit = _parse_limit(value.get("limit"), problems)
    return DataConfig(npz=path, x=x, y=y, bounds=bounds, limit=limit)


def _parse_suite(value: Any, norm: str | None, problems: _Problems) -> tuple[AttackConfig, ...]:
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.expected("suite", "a non-empty list of attack names or mappings", value)
        return ()
    from advgrad.attacks import get_attack, list_attacks

    registered = list(list_attacks())
    suite = []
    for index, entry in enumerate(value):
        path = f"suite[{index}]"
        if isinstance(entry, str):
            name, settings = entry, {}
        elif isinstance(entry, Mapping):
            if "name" not in entry:
                problems.add(path, "missing key 'name' (the attack)")
                continue
            name = entry["name"]
            settings = {k: v for k, v in entry.items() if k != "name"}
        else:
            problems.expected(path, "an attack name or a mapping with `name`", entry)
            continue
        if not isinstance(name, str) or name not in registered:
            problems.add(
                path,
                f"unknown attack {_received(name)}{_suggest(name, registered)}; "
                f"registered attacks: {', '.join(registered)}",
            )
            continue
        defaults = get_attack(name).get_config()
        ok = True
        for key, setting in settings.items():
            key_path = _join(path, key)
            if key in _SUITE_RESERVED and key in defaults:
                problems.add(key_path, _SUITE_RESERVED[key])
                ok = False
            elif key not in defaults:
                allowed = [k for k in defaults if k != "name" and k not in _SUITE_RESERVED]
                problems.add(
                    path,
                    f"unknown setting {key!r} for attack {name!r}{_suggest(key, allowed)}; "
                    f"its settings: {', '.join(allowed)}",
                )
                ok = False
            elif not _check_setting_type(setting, defaults[key], key_path, problems):
                ok = False
        if not ok:
            continue
        if "norm" in settings:
            settings["norm"] = _parse_norm(settings["norm"], _join(path, "norm"), problems)
        trial = dict(settings)
        if norm is not None and "norm" in defaults and "norm" not in trial:
            trial["norm"] = norm
        try:
            get_attack(name, **trial)
        except ValueError as err:
            _add_attack_error(problems, path, err)
            continue
        suite.append(AttackConfig(name=name, settings=settings))
    return tuple(suite)


def _check_setting_type(value: Any, default: Any, path: str, problems: _Problems) -> bool:
    """Check a setting's type against its default's (None defaults accept anything)."""
    if default is None:
        return True
    if isinstance(default, bool):
        expected, ok = "a bool", isinstance(value, bool)
    elif _is_int(default):
        expected, ok = "int", _is_int(value)
    elif _is_number(default):
        expected, ok = "a number", _is_number(value)
    elif isinstance(default, str):
        expected, ok = "a string", isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        expected, ok = "a list", isinstance(value, list)
    elif isinstance(default, Mapping):
        expected, ok = "a mapping", isinstance(value, Mapping)
    else:
        return True
    if not ok:
        problems.expected(path, expected, value)
    return ok


_INVALID = re.compile(r"Invalid value for argument `([^`]+)`: (.*)", re.DOTALL)


def _add_attack_error(problems: _Problems, path: str, err: Exception) -> None:
    """Turn an attack's Keras-style argument error into a problem at `path.argument`."""
    message = _one_line(err)
    match = _INVALID.match(message)
    if match:
        argument, rest = match.groups()
        problems.add(_join(path, argument), rest.rstrip("."))
    else:
        problems.add(path, message)


def _parse_eps(value: Any, problems: _Problems) -> tuple[float, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        problems.expected("eps", "a number >= 0 or a non-empty list of them", value)
        return ()
    result = []
    for index, item in enumerate(items):
        path = f"eps[{index}]" if isinstance(value, list) else "eps"
        if not _is_number(item) or not math.isfinite(item) or item < 0:
            problems.expected(path, "a number >= 0", item)
            continue
        result.append(float(item))
    return tuple(result)


def _parse_bound_side(value: Any, path: str, problems: _Problems) -> Any:
    """A bound: a number, or a (nested) list of numbers (per feature)."""
    if _is_number(value):
        if math.isnan(value):
            problems.expected(path, "a number or a list of numbers", value)
            return None
        return float(value)
    if isinstance(value, list) and value:
        try:
            array = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            array = None
        flat = [v for v in _flatten(value)]
        if array is None or array.dtype == object or not all(_is_number(v) for v in flat):
            problems.expected(path, "a number or a (nested) list of numbers", value)
            return None
        if np.isnan(array).any():
            problems.expected(path, "numbers without NaN", value)
            return None
        return value
    problems.expected(path, "a number or a list of numbers", value)
    return None


def _flatten(value: Any):
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _parse_bounds(value: Any, path: str, problems: _Problems, *, per_input: bool) -> Any:
    if value is None or value == "data":
        return value
    if isinstance(value, list):
        if len(value) != 2:
            problems.expected(path, "[low, high]", value)
            return None
        low = _parse_bound_side(value[0], f"{path}[0]", problems)
        high = _parse_bound_side(value[1], f"{path}[1]", problems)
        if low is None or high is None:
            return None
        try:
            greater = np.any(np.greater(np.asarray(low), np.asarray(high)))
        except ValueError:
            problems.add(path, "low and high do not have broadcastable shapes")
            return None
        if greater:
            problems.add(path, f"expected low <= high, received {_received(value)}")
            return None
        return (low, high)
    if per_input and isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            result[str(key)] = _parse_bounds(item, _join(path, key), problems, per_input=False)
        return result
    expected = "data, [low, high] or null" + (", or a mapping input -> those" if per_input else "")
    problems.expected(path, expected, value)
    return None


def _parse_inputs(value: Any, problems: _Problems) -> dict[str, dict[str, Any] | None] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        problems.expected("inputs", "a mapping input name -> {} / {bounds: ...} / frozen", value)
        return None
    result: dict[str, dict[str, Any] | None] = {}
    for key, item in value.items():
        path = _join("inputs", key)
        if item is None or item == FROZEN:
            result[str(key)] = None
        elif isinstance(item, Mapping):
            _check_keys(item, _INPUT_KEYS, path, problems)
            settings = {}
            if "bounds" in item:
                settings["bounds"] = _parse_bounds(
                    item["bounds"], _join(path, "bounds"), problems, per_input=False
                )
            result[str(key)] = settings
        else:
            problems.expected(path, "frozen (or null), or a mapping such as {bounds: data}", item)
    if result and all(v is None for v in result.values()):
        problems.add("inputs", "every input is frozen: leave at least one to perturb")
    return result


def _parse_output(value: Any, problems: _Problems) -> pathlib.Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.expected("output", "a folder path", value)
        return None
    return pathlib.Path(value).expanduser().absolute()


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


# -------------------------------------------------------------------------------- building
def _load_model(model: str, problems: _Problems) -> Any:
    if not os.path.isabs(model):
        from advgrad import zoo

        return zoo.load(model)
    import keras

    path = pathlib.Path(model)
    if not path.is_file():
        problems.add("model", f"model file not found: {path}")
        return None
    try:
        with warnings.catch_warnings():
            # The optimizer's state does not matter for attacks; Keras warns when it differs.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.models.load_model(path, safe_mode=True, compile=True)
    except Exception as err:
        reason = _one_line(err)
        if "safe_mode" in reason or "unsafe" in reason.lower():
            # Keras explains at length; keep the first sentence, which names the cause.
            first = reason.split(". ")[0].rstrip(".")
            problems.add("model", f"Keras safe mode refused to load {path}: {first}")
        else:
            problems.add("model", f"cannot load {path}: {type(err).__name__}: {reason}")
        return None


def _model_input_names(model: Any) -> list[str]:
    from advgrad.models import ModelAdapter

    structure = ModelAdapter.of(model).input_structure
    if structure is None:
        return ["x"]
    return list(structure.names)


def _model_input_shapes(model: Any) -> list[tuple]:
    inputs = getattr(model, "inputs", None) or []
    return [tuple(t.shape[1:]) for t in inputs]


def _load_data(data: DataConfig, model: Any) -> tuple[Any, np.ndarray, Any]:
    """(x, y, bounds of the data or None), with the limit applied."""
    if data.npz is not None:
        with np.load(data.npz, allow_pickle=False) as archive:
            if isinstance(data.x, str):
                x = np.asarray(archive[data.x])
            elif isinstance(data.x, tuple):
                x = [np.asarray(archive[key]) for key in data.x]
            else:
                x = {name: np.asarray(archive[key]) for name, key in data.x.items()}
            y = np.asarray(archive[data.y])
        bounds = data.bounds
    else:
        from advgrad import data as data_lib

        kwargs = {}
        if data.name == "digits":
            flat = data.flat
            if flat is None:
                shapes = _model_input_shapes(model)
                flat = len(shapes) == 1 and len(shapes[0]) == 1
            kwargs["flat"] = flat
        dataset = data_lib.get(data.name, **kwargs)
        x, y = dataset.test if data.split == "test" else dataset.train
        bounds = dataset.bounds
    if data.limit is not None:
        x = _take(x, data.limit)
        y = y[: data.limit]
    return x, y, bounds


def _take(x: Any, limit: int) -> Any:
    if isinstance(x, Mapping):
        return {k: v[:limit] for k, v in x.items()}
    if isinstance(x, list):
        return [v[:limit] for v in x]
    return x[:limit]


def _num_classes(model: Any) -> int | None:
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
        return max(shape[-1], 2)  # one sigmoid unit: labels 0 and 1
    return None


def _check_data_fits(
    x: Any, y: np.ndarray, model: Any, input_names: list[str], problems: _Problems
) -> None:
    leaves = list(x.values()) if isinstance(x, Mapping) else x if isinstance(x, list) else [x]
    if isinstance(x, Mapping):
        unknown = [k for k in x if k not in input_names]
        missing = [k for k in input_names if k not in x]
        if unknown or missing:
            problems.add(
                "data.x",
                f"the inputs {sorted(x)} do not match the model's inputs {input_names}",
            )
    elif len(leaves) != len(input_names):
        problems.add(
            "data.x",
            f"{len(leaves)} input array(s) for a model with {len(input_names)} inputs "
            f"({', '.join(input_names)})",
        )
    lengths = {len(leaf) for leaf in leaves}
    if len(lengths) > 1:
        problems.add("data.x", f"the input arrays have different lengths {sorted(lengths)}")
    if y.ndim != 1:
        problems.add("data.y", f"expected integer labels of shape (N,), received shape {y.shape}")
        return
    if lengths and len(y) not in lengths:
        problems.add(
            "data.y",
            f"{len(y)} labels for {max(lengths)} input samples: the lengths must match",
        )
    integral = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)
    whole = np.issubdtype(y.dtype, np.floating) and bool(np.all(np.mod(y, 1) == 0))
    if not (integral or whole):
        problems.add("data.y", f"expected integer class labels, received dtype {y.dtype}")
        return
    classes = _num_classes(model)
    if classes is not None and len(y) and (y.min() < 0 or y.max() >= classes):
        problems.add(
            "data.y",
            f"labels range from {int(y.min())} to {int(y.max())}, but the model has "
            f"{classes} classes (labels 0..{classes - 1})",
        )
    for leaf in leaves:
        if not np.issubdtype(np.asarray(leaf).dtype, np.floating):
            problems.add("data.x", f"expected float inputs, received dtype {leaf.dtype}")
            break


def _leaves_by_name(x: Any, input_names: list[str]) -> dict[str, np.ndarray]:
    if isinstance(x, Mapping):
        return {name: np.asarray(x[name]) for name in input_names if name in x}
    leaves = x if isinstance(x, list) else [x]
    return {name: np.asarray(leaf) for name, leaf in zip(input_names, leaves, strict=False)}


def _not_an_input(path: str, key: Any, input_names: list[str], problems: _Problems) -> None:
    problems.add(
        path,
        f"{key!r} is not an input of the model ({', '.join(input_names)})"
        f"{_suggest(key, input_names)}",
    )


def _resolve_bounds(
    config: BenchConfig,
    data_bounds: Any,
    samples: dict[str, np.ndarray],
    input_names: list[str],
    problems: _Problems,
) -> tuple[Any, list[str]]:
    """The attacks' ``bounds`` setting and the frozen inputs, from ``bounds`` and ``inputs``.

    ``"data"`` becomes the data set's range, widened (with a warning) where an evaluated
    sample lies outside it; explicit bounds must hold every evaluated sample.
    """
    value = config.bounds
    wanted: dict[str, tuple[Any, str]] = {}  # input -> (bounds value, path)
    if isinstance(value, Mapping):
        for key in value:
            if key not in input_names:
                _not_an_input(_join("bounds", key), key, input_names, problems)
        for name in input_names:
            wanted[name] = (value.get(name), _join("bounds", name))
    else:
        for name in input_names:
            wanted[name] = (value, "bounds")
    frozen: list[str] = []
    if config.inputs is not None:
        for key in config.inputs:
            if key not in input_names:
                _not_an_input(_join("inputs", key), key, input_names, problems)
        frozen = [name for name in input_names if config.inputs.get(name) is None]
        for name in input_names:
            settings = config.inputs.get(name)
            if settings and "bounds" in settings:
                wanted[name] = (settings["bounds"], f"inputs.{name}.bounds")

    resolved: dict[str, Any] = {}
    for name in input_names:
        if name in frozen:
            continue
        bounds, path = wanted[name]
        if bounds == "data":
            resolved[name] = _data_bounds(data_bounds, name, samples.get(name), path, problems)
        elif bounds is not None:
            _check_within(bounds, samples.get(name), name, path, problems)
            resolved[name] = bounds
        else:
            resolved[name] = None
    if len(input_names) == 1 and not isinstance(value, Mapping) and not frozen:
        return _as_setting(resolved[input_names[0]]), frozen
    return {name: _as_setting(pair) for name, pair in resolved.items()}, frozen


def _data_bounds(
    data_bounds: Any, name: str, x: np.ndarray | None, path: str, problems: _Problems
) -> Any:
    """The data set's bounds for input `name`, widened to hold the evaluated samples `x`."""
    if data_bounds is None:
        problems.add(
            path,
            "'data' needs a data set with a valid range: give `data.bounds` for an npz file, "
            "or [low, high], or null (no clipping)",
        )
        return None
    pair = data_bounds.get(name) if isinstance(data_bounds, Mapping) else data_bounds
    if pair is None:
        problems.add(path, f"the data set gives no valid range for input {name!r}")
        return None
    low, high = (np.asarray(side, np.float64) for side in pair)
    if x is None or x.size == 0:
        return (low, high)
    x = np.asarray(x, np.float64)
    try:
        below = x < low
        above = x > high
    except ValueError:
        problems.add(path, f"the data set's bounds do not fit input {name!r} of shape {x.shape}")
        return None
    outside = (below | above).reshape(len(x), -1).any(axis=1)
    if not outside.any():
        return pair
    gap = float(max(np.max(low - x), np.max(x - high)))
    warnings.warn(
        f"{path}: {int(outside.sum())} of {len(x)} evaluated samples of input {name!r} lie "
        f"outside the data set's range (by up to {gap:.3g}); the bounds are widened "
        "to hold them",
        stacklevel=4,
    )
    return (np.minimum(low, x.min(axis=0)), np.maximum(high, x.max(axis=0)))


def _check_within(
    bounds: Any, x: np.ndarray | None, name: str, path: str, problems: _Problems
) -> None:
    if x is None or x.size == 0:
        return
    low, high = (np.asarray(side, np.float64) for side in bounds)
    x = np.asarray(x, np.float64)
    try:
        outside = ((x < low) | (x > high)).reshape(len(x), -1).any(axis=1)
    except ValueError:
        problems.add(
            path,
            f"bounds of shapes {low.shape} and {high.shape} do not fit input {name!r} "
            f"(one sample has shape {x.shape[1:]})",
        )
        return
    if outside.any():
        problems.add(
            path,
            f"{int(outside.sum())} of {len(x)} evaluated samples of input {name!r} lie "
            f"outside [{_fmt_bound(low)}, {_fmt_bound(high)}] (values from {x.min():.4g} "
            f"to {x.max():.4g})",
        )


def _fmt_bound(value: np.ndarray) -> str:
    return f"{float(value):g}" if value.ndim == 0 else f"per-feature array {value.shape}"


def _make_suite(
    config: BenchConfig,
    bounds: Any,
    frozen: list[str],
    input_names: list[str],
    problems: _Problems,
) -> list[Any]:
    """The `Attack` objects: the suite's settings plus the config's norm, bounds and inputs.

    Without frozen inputs the bounds go into each attack's ``bounds`` setting. With frozen
    inputs each attack gets a ``budget`` setting instead: one `advgrad.Budget` per perturbed
    input (its norm and bounds) and ``None`` per frozen input; `advgrad.evaluate` replaces
    the budgets' eps with each eps of the sweep.
    """
    from advgrad.attacks import get_attack
    from advgrad.budget import Budget

    suite = []
    for index, entry in enumerate(config.suite):
        path = f"suite[{index}]"
        defaults = get_attack(entry.name).get_config()
        settings = dict(entry.settings)
        if config.norm is not None and "norm" in defaults and "norm" not in settings:
            settings["norm"] = config.norm
        try:
            if frozen:
                if "budget" not in defaults:
                    problems.add(
                        "inputs",
                        f"freezing inputs needs attacks with a `budget` setting; {path} "
                        f"({entry.name}) has none",
                    )
                    continue
                norm = settings.get("norm", defaults.get("norm", "linf"))
                settings["budget"] = {
                    name: None
                    if name in frozen
                    else Budget(config.eps[0], norm, _pair(bounds.get(name)))
                    for name in input_names
                }
            elif "bounds" in defaults:
                settings["bounds"] = bounds
            elif bounds is not None:
                problems.add(path, f"attack {entry.name!r} has no `bounds` setting")
                continue
            suite.append(get_attack(entry.name, **settings))
        except ValueError as err:
            message = _one_line(err)
            if "`bounds`" in message:
                problems.add("bounds", message)
            else:
                _add_attack_error(problems, path, err)
    return suite


def _pair(value: Any) -> tuple[Any, Any] | None:
    return None if value is None else (value[0], value[1])


def _as_setting(bounds: Any) -> Any:
    """Bounds as an attack setting: arrays as lists (YAML/JSON-serializable configs)."""

    def side(value: Any) -> Any:
        return np.asarray(value).tolist() if isinstance(value, np.ndarray) else value

    if bounds is None:
        return None
    return [side(bounds[0]), side(bounds[1])]
