"""The sections of a benchmark config, one parser each (pure: no TensorFlow).

Every parser takes the value found in the document, its YAML path and the `Problems`
collector, and returns the parsed value (or a placeholder, with a problem recorded):
`advgrad.schema.bench.parse_config` calls them in the document's order. What the document
may name comes from a `Catalog`.

>>> from advgrad.schema.problems import Problems
>>> problems = Problems()
>>> parse_eps([0.1, -1, float("inf")], problems)
(0.1,)
>>> print(*problems.items, sep="\\n")
eps[1]: expected a finite number >= 0, received -1
eps[2]: expected a finite number >= 0, received inf
"""

from __future__ import annotations

import dataclasses
import keyword
import numbers
import os
import pathlib
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from advgrad._validation import (
    SIZE_LIMIT,
    ArgumentError,
    check_bool,
    check_eps,
    check_int,
    check_number,
    describe,
)
from advgrad.schema.bounds import parse_bounds
from advgrad.schema.catalog import Catalog
from advgrad.schema.problems import Problems, check_keys, join_path, one_line, suggest

__all__ = ["FROZEN", "TARGET_RULES", "AttackConfig", "DataConfig"]

FROZEN = "frozen"
"""The value that freezes an input in the ``inputs`` section (``null`` works too)."""

_EMBEDDED_KEYS = ("name", "split", "limit", "flat")
_NPZ_KEYS = ("npz", "x", "y", "bounds", "limit")
_INPUT_KEYS = ("bounds",)
_SUITE_RESERVED = {
    "eps": "set `eps` at the top level of the config: it is swept for every attack",
    "bounds": "set `bounds` at the top level of the config (or per input under `inputs`)",
    "budget": "use the top-level `inputs` section to choose which inputs are perturbed",
    "progress": "the CLI shows progress bars itself",
}
BOOL = "a bool"  # YAML writes true/false: the config's word for check_bool's rule


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
        bounds_keys: npz only: the npz keys ``(low, high)`` of per-feature bound arrays
            (``bounds: {low: KEY, high: KEY}``), or None; `build_run` loads them.
    """

    name: str | None = None
    split: str = "test"
    limit: int | None = None
    flat: bool | None = None
    npz: pathlib.Path | None = None
    x: str | tuple[str, ...] | dict[str, str] | None = None
    y: str | None = None
    bounds: tuple[Any, Any] | None = None
    bounds_keys: tuple[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """One entry of the ``suite``: a registered attack name and the settings given for it."""

    name: str
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


def parse_int(
    value: Any, path: str, low: int, problems: Problems, high: int | None = SIZE_LIMIT
) -> int:
    """An int in ``[low, high)``; by default a size or count (`advgrad._validation.SIZE_LIMIT`)."""
    result = problems.check(path, value, lambda p, v: check_int(p, v, low=low, high=high))
    return low if result is None else result


TARGET_RULES = ("most-likely-wrong", "least-likely", "random")
"""The named rules of the top-level ``targets`` key (`advgrad.evaluate`'s ``targets``)."""


def parse_targets(value: Any, problems: Problems) -> str | int | None:
    """``targets``: None (the default rule), a rule name or a class id (an int >= 0); the
    class id is checked against the model's classes when `advgrad.evaluate` runs."""
    if value is None or (isinstance(value, str) and value in TARGET_RULES):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    rules = ", ".join(TARGET_RULES)
    problems.expected("targets", f"one of {rules} or a class id (an int >= 0)", value, TARGET_RULES)
    return None


def parse_norm(value: Any, path: str, catalog: Catalog, problems: Problems) -> str | None:
    """A norm name in the catalog's canonical spelling, or None (problems at `path`)."""
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in catalog.norms:
        problems.expected(path, f"one of {', '.join(catalog.norms)}", value, catalog.norms)
        return None
    return value.lower()


def parse_model(value: Any, base: pathlib.Path, catalog: Catalog, problems: Problems) -> str:
    """The ``model`` key: a zoo name, or a .keras path resolved against `base`."""
    if not isinstance(value, str) or not value.strip():
        problems.expected("model", "a zoo model name or a path to a .keras file", value)
        return ""
    names = catalog.models
    if value in names:
        return value
    looks_like_path = value.endswith(".keras") or "/" in value or os.sep in value
    if not looks_like_path:
        problems.add(
            "model",
            f"expected a zoo model name ({', '.join(names)}) or a path to a .keras file, "
            f"received {describe(value)}{suggest(value, names)}",
        )
        return ""
    path = (base / pathlib.Path(value).expanduser()).absolute()
    if not path.name.endswith(".keras"):
        problems.add(
            "model",
            "expected a .keras file (Keras 3 format, loaded in safe mode), "
            f"received {describe(value)}",
        )
    elif not path.is_file():
        problems.add("model", f"model file not found: {path}")
    elif not is_keras_archive(path):
        problems.add("model", not_keras_archive(path))
    return str(path)


def is_keras_archive(path: pathlib.Path) -> bool:
    """Whether `path` is a zip holding ``config.json`` (what ``model.save`` writes), read
    without loading or unpickling anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def not_keras_archive(path: pathlib.Path) -> str:
    """The problem of a ``model`` file that is not a Keras archive (a pickle, an npz...)."""
    return (
        f"{path} is not a Keras .keras archive (a zip with config.json, written by "
        "model.save); advgrad loads models in Keras' safe mode and never unpickles"
    )


def parse_data(
    value: Any, base: pathlib.Path, catalog: Catalog, problems: Problems
) -> DataConfig | None:
    """The ``data`` section: an embedded data set or an .npz file, as a `DataConfig`."""
    if not isinstance(value, Mapping):
        problems.expected(
            "data", "a mapping with `name` (an embedded data set) or `npz` (a file)", value
        )
        return None
    if "npz" in value:
        return _parse_npz(value, base, problems)
    if "name" not in value:
        problems.add("data", "missing key 'name' (an embedded data set) or 'npz' (a file)")
        check_keys(value, _EMBEDDED_KEYS, "data", problems)
        return None
    check_keys(value, _EMBEDDED_KEYS, "data", problems)
    name = value["name"]
    # Configs spell data set names with hyphens, `advgrad.data.get` with underscores: both
    # spellings are accepted, and the hyphenated one is shown.
    spelled = {_hyphens(canonical): canonical for canonical in catalog.datasets}
    canonical = spelled.get(_hyphens(name)) if isinstance(name, str) else None
    if canonical is None:
        choices = list(dict.fromkeys([*spelled, *spelled.values()]))
        problems.expected("data.name", f"one of {', '.join(spelled)}", name, choices)
    split = value.get("split", "test")
    if split not in ("test", "train"):
        problems.expected("data.split", "test or train", split)
    limit = _parse_limit(value.get("limit"), problems)
    flat = value.get("flat")
    if flat is not None:
        problems.check("data.flat", flat, check_bool, expected=BOOL)
        if canonical is not None and canonical not in catalog.flattenable:
            choices = " or ".join(_hyphens(n) for n in catalog.flattenable)
            message = f"only the {choices} data set" if choices else "no data set"
            problems.add("data.flat", f"{message} can be flattened")
    return DataConfig(name=canonical, split=split, limit=limit, flat=flat)


def _hyphens(name: str) -> str:
    return name.replace("_", "-")


def _parse_limit(value: Any, problems: Problems) -> int | None:
    if value is None:
        return None
    return parse_int(value, "data.limit", 1, problems, high=None)  # any limit slices


def _parse_npz(value: Mapping, base: pathlib.Path, problems: Problems) -> DataConfig | None:
    check_keys(value, _NPZ_KEYS, "data", problems)
    raw = value["npz"]
    if not isinstance(raw, str) or not raw:
        problems.expected("data.npz", "a path to a .npz file", raw)
        return None
    path = (base / pathlib.Path(raw).expanduser()).absolute()
    if not path.is_file():
        problems.add("data.npz", f"file not found: {path}")
        return None
    if not zipfile.is_zipfile(path):  # else NumPy calls any other file "pickled data"
        problems.add("data.npz", f"{path} is not a .npz file (a zip of .npy arrays, from np.savez)")
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
    except Exception as err:  # a damaged zip, an array of Python objects, ...
        problems.add("data.npz", f"cannot read {path} as a .npz file: {one_line(err)}")
        return None

    def key_of(item: Any, item_path: str) -> str | None:
        if not isinstance(item, str):
            problems.expected(item_path, "an array name in the .npz file", item)
            return None
        if item not in keys:
            problems.add(
                item_path,
                f"no array {describe(item)} in {path.name} (it holds {', '.join(keys)})"
                f"{suggest(item, keys)}",
            )
            return None
        if _holds_objects(path, item):  # NumPy would only say "allow_pickle=False"
            problems.add(
                item_path,
                f"array {item!r} in {path.name} holds Python objects (dtype object): expected "
                "a numeric array (advgrad reads .npz files with allow_pickle=False)",
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
    bounds = bounds_keys = None
    if isinstance(value.get("bounds"), Mapping):
        bounds_keys = _parse_bounds_keys(value["bounds"], key_of, problems)
    elif "bounds" in value:
        bounds = parse_bounds(value["bounds"], "data.bounds", problems, per_input=False)
        if bounds == "data" or bounds is None:
            problems.expected(
                "data.bounds", "[low, high] or {low: KEY, high: KEY}", value["bounds"]
            )
            bounds = None
    limit = _parse_limit(value.get("limit"), problems)
    return DataConfig(npz=path, x=x, y=y, bounds=bounds, bounds_keys=bounds_keys, limit=limit)


def _holds_objects(path: pathlib.Path, key: str) -> bool:
    """Whether array `key` of the npz file `path` has Python objects in its dtype, read from
    its .npy header alone (False where it is no .npy: the build says what it holds)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            with archive.open(key if key in names else f"{key}.npy") as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0
                if version != (1, 0):
                    read = np.lib.format.read_array_header_2_0
                _, _, dtype = read(member)
    except Exception:  # not a .npy member, a damaged header: numpy's load says so
        return False
    return bool(dtype.hasobject)


def _parse_bounds_keys(value: Mapping, key_of: Any, problems: Problems) -> tuple[str, str] | None:
    """``data.bounds: {low: KEY, high: KEY}``: the npz keys of per-feature bound arrays."""
    check_keys(value, ("low", "high"), "data.bounds", problems)
    sides = []
    for side in ("low", "high"):
        if side not in value:
            problems.add("data.bounds", f"missing key {side!r} (an array name in the .npz file)")
            sides.append(None)
        else:
            sides.append(key_of(value[side], f"data.bounds.{side}"))
    low, high = sides
    return None if low is None or high is None else (low, high)


def parse_suite(
    value: Any, norm: str | None, catalog: Catalog, problems: Problems
) -> tuple[AttackConfig, ...]:
    """The ``suite`` key: attack names, mappings or a suite name, as `AttackConfig` s."""
    if isinstance(value, str) and value in catalog.suites:  # a named suite: its members
        value = [dict(entry) for entry in catalog.suites[value][norm or "linf"]]
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, list) or not value:
        expected = "a non-empty list of attack names or mappings"
        if catalog.suites:
            expected += f", or a suite name ({', '.join(sorted(catalog.suites))})"
        problems.expected("suite", expected, value)
        return ()
    registered = list(catalog.attack_names)
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
            suites = sorted(catalog.suites) if len(value) == 1 else []
            problems.add(
                path,
                f"unknown attack {describe(name)}{suggest(name, registered + suites)}; "
                f"registered attacks: {', '.join(registered)}"
                + (f"; suites: {', '.join(suites)}" if suites else ""),
            )
            continue
        settings = _parse_settings(name, settings, catalog, path, problems)
        if settings is None:
            continue
        trial = dict(settings)
        if norm is not None and "norm" in catalog.attacks[name] and "norm" not in trial:
            trial["norm"] = norm
        try:
            catalog.check_attack(name, trial)
        except ArgumentError as err:
            problems.argument_error(path, err)
            continue
        except ValueError as err:
            problems.add(path, one_line(err))
            continue
        suite.append(AttackConfig(name=name, settings=settings))
    return tuple(suite)


def _parse_settings(
    name: str, settings: dict[str, Any], catalog: Catalog, path: str, problems: Problems
) -> dict[str, Any] | None:
    """The settings of one suite entry, checked against the attack's defaults (None if not)."""
    defaults = catalog.attacks[name]
    ok = True
    for key, setting in settings.items():
        key_path = join_path(path, key)
        if key in _SUITE_RESERVED and key in defaults:
            problems.add(key_path, _SUITE_RESERVED[key])
            ok = False
        elif key not in defaults:
            allowed = [k for k in defaults if k != "name" and k not in _SUITE_RESERVED]
            problems.add(
                path,
                f"unknown setting {describe(key)} for attack {name!r}{suggest(key, allowed)}; "
                f"its settings: {', '.join(allowed)}",
            )
            ok = False
        elif not _check_setting_type(setting, defaults[key], key_path, problems):
            ok = False
    if not ok:
        return None
    if settings.get("norm") is not None:
        norm = parse_norm(settings["norm"], join_path(path, "norm"), catalog, problems)
        if norm is None:  # reported: the attack would only report it again
            return None
        settings["norm"] = norm
    return settings


def _check_setting_type(value: Any, default: Any, path: str, problems: Problems) -> bool:
    """Check a setting's type against its default's (None defaults accept anything).

    Only the type: the attack checks the value (its range) when the suite is validated.
    """
    if default is None:
        return True
    if isinstance(default, (bool, np.bool_)):
        return problems.check(path, value, check_bool, expected=BOOL) is not None
    if _is_int(default):
        return problems.check(path, value, check_int) is not None
    if _is_number(default):
        return problems.check(path, value, _any_number) is not None
    if isinstance(default, str):
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


def _any_number(path: str, value: Any) -> float:
    return check_number(path, value, finite=False)  # the attack checks the range


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def parse_eps(value: Any, problems: Problems) -> tuple[float, ...]:
    """The ``eps`` key: one finite number >= 0 or a list of them, as a tuple."""
    items = value if isinstance(value, list) else [value]
    if not items:
        problems.expected("eps", "a finite number >= 0 or a non-empty list of them", value)
        return ()
    result = []
    for index, item in enumerate(items):
        path = f"eps[{index}]" if isinstance(value, list) else "eps"
        eps = problems.check(path, item, lambda p, v: check_eps(v, p))
        if eps is not None:
            result.append(eps)
    return tuple(result)


def parse_inputs(value: Any, problems: Problems) -> dict[str, dict[str, Any] | None] | None:
    """The ``inputs`` section: input name -> its settings (None: frozen), or None."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        problems.expected("inputs", "a mapping input name -> {} / {bounds: ...} / frozen", value)
        return None
    result: dict[str, dict[str, Any] | None] = {}
    for key, item in value.items():
        path = join_path("inputs", key)
        if item is None or item == FROZEN:
            result[str(key)] = None
        elif isinstance(item, Mapping):
            check_keys(item, _INPUT_KEYS, path, problems)
            settings = {}
            if "bounds" in item:
                settings["bounds"] = parse_bounds(
                    item["bounds"], join_path(path, "bounds"), problems, per_input=False
                )
            result[str(key)] = settings
        else:
            problems.expected(path, "frozen (or null), or a mapping such as {bounds: data}", item)
    if result and all(v is None for v in result.values()):
        problems.add("inputs", "every input is frozen: leave at least one to perturb")
    return result


_MAX_IMPORTS = 100
"""Most modules one config may name under ``imports``."""


def module_name_problem(name: Any) -> str | None:
    """Why `name` is not a dotted module name (``my_layers``, ``pkg.losses``), or None.

    A file name or path is refused (``my_layers.py``, ``lib/my_layers``): the config's folder
    is searched for modules, so ``my_layers`` finds ``my_layers.py`` next to the config.

    >>> module_name_problem("pkg.losses") is None
    True
    >>> print(module_name_problem("my_layers.py"))
    expected a module name, not a file: 'my_layers' finds my_layers.py next to the config
    >>> print(module_name_problem("my-layers"))
    expected a dotted module name such as my_layers or pkg.losses, received 'my-layers'
    """
    if isinstance(name, str) and 0 < len(name) <= 200:
        if name.endswith(".py") or "/" in name or "\\" in name:
            stem = name.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py")
            return (
                f"expected a module name, not a file: {stem!r} finds {stem}.py next to the config"
            )
        parts = name.split(".")
        if all(part.isidentifier() and not keyword.iskeyword(part) for part in parts):
            return None
    return (
        f"expected a dotted module name such as my_layers or pkg.losses, received {describe(name)}"
    )


def parse_imports(value: Any, problems: Problems) -> tuple[str, ...]:
    """The ``imports`` key: importable dotted module names, as a tuple."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        problems.expected("imports", "a list of module names", value)
        return ()
    if len(value) > _MAX_IMPORTS:
        problems.add("imports", f"{len(value)} modules (at most {_MAX_IMPORTS})")
        return ()
    names = []
    for index, name in enumerate(value):
        problem = module_name_problem(name)
        if problem is None:
            names.append(name)
        else:
            problems.add(f"imports[{index}]", problem)
    return tuple(names)


def parse_output(value: Any, problems: Problems) -> pathlib.Path | None:
    """The ``output`` key: a folder, absolute (from the current folder), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.expected("output", "a folder path", value)
        return None
    return pathlib.Path(value).expanduser().absolute()
