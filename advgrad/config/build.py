"""Building a benchmark run from a validated config: the "build" half of parse, then build.

`build_run` loads the model (a zoo name, or a ``.keras`` file in Keras' safe mode) and the
data, checks that they fit each other, resolves the ``bounds`` and ``inputs`` sections against
the data and makes the suite's attacks. This module imports Keras and TensorFlow when
`build_run` is called, not when it is imported.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import re
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from advgrad._validation import ArgumentError
from advgrad.config.registries import default_catalog
from advgrad.generation.config import GenerateConfig
from advgrad.schema.bench import BenchConfig, BenchRun, DataConfig
from advgrad.schema.problems import Problems, join_path, one_line, suggest
from advgrad.schema.sections import is_keras_archive, not_keras_archive

__all__ = ["build_run"]


def build_run(config: BenchConfig) -> BenchRun:
    """Load the model and the data, resolve the bounds and make the attacks.

    Args:
        config: A validated `BenchConfig` (from `load_config` or `parse_config`).

    Returns:
        A `BenchRun` ``(model, (x, y), suite, eps, bounds)``.

    Raises:
        ConfigError: If a module of ``imports`` (or ``extra_imports``) cannot be imported,
            the model file cannot be loaded safely, the data does not fit the
            model (input names, labels out of range), or the bounds do not fit the data.
    """
    problems = Problems()
    _import_modules(config, problems)
    problems.raise_if_any(config.source)
    model = _load_model(config.model, problems)
    problems.raise_if_any(config.source)
    x, y, data_bounds = load_data(config.data, model)
    problems.raise_if_any(config.source)
    input_names = model_input_names(model)
    check_data_fits(x, y, model, input_names, problems)
    _check_targets(config.targets, model, problems)
    problems.raise_if_any(config.source)
    _check_inputs_fit(x, model, problems)
    problems.raise_if_any(config.source)
    samples = _leaves_by_name(x, input_names)
    if config.data.bounds_keys is not None:
        _check_npz_bounds(data_bounds, config.data.bounds_keys, samples, problems)
        problems.raise_if_any(config.source)
    bounds, frozen = _resolve_bounds(config, data_bounds, samples, input_names, problems)
    problems.raise_if_any(config.source)
    suite = _make_suite(config, bounds, frozen, input_names, problems)
    if config.suite_name is not None:  # a named suite: its rules too (adaptive)
        from advgrad.attacks import Suite

        suite = Suite.named(config.suite_name, suite)
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
    problems.raise_if_any(config.source)
    return BenchRun(model, (x, y), suite, list(config.eps), bounds)


def build_generation(config: GenerateConfig) -> tuple[Any, tuple[Any, np.ndarray], Any]:
    """Load the model and data of a generation config and make its attack at its eps.

    The shared part is built by `build_run` (same checks, same errors); the attack's radius
    is the config's ``eps``, in every budget it holds too.

    Returns:
        ``(model, (x, y), attack)``.

    Raises:
        ConfigError: As `build_run`.
    """
    run = build_run(config.bench)
    attack = run.suite[0]
    budget = attack.budget
    if isinstance(budget, Mapping):
        budget = {k: None if v is None else v.replace(eps=config.eps) for k, v in budget.items()}
    elif budget is not None:
        budget = budget.replace(eps=config.eps)
    return run.model, run.data, attack.replace(eps=config.eps, budget=budget)


def _import_modules(config: BenchConfig, problems: Problems) -> None:
    """Import the config's ``imports``, then its ``extra_imports`` (the CLI's ``--import``),
    with the config's folder first on ``sys.path`` while they are imported."""
    names = [(f"imports[{i}]", name) for i, name in enumerate(config.imports)]
    names += [(f"--import {name}", name) for name in config.extra_imports]
    if not names:
        return
    folder = None if config.folder is None else str(config.folder)
    added = folder is not None and (not sys.path or sys.path[0] != folder)
    if added:
        sys.path.insert(0, folder)
    try:
        for path, name in names:
            try:
                importlib.import_module(name)
            except Exception as err:
                reason = one_line(err)
                if len(reason) > 200:
                    reason = reason[:197] + "..."
                problems.add(path, f"cannot import {name!r}: {type(err).__name__}: {reason}")
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


_UNKNOWN = re.compile(r"Could not locate (class|function) '([^'\s]{1,100})'")
"""What Keras says of a class or function that is not registered (``probe>my_loss``)."""


def _load_model(model: str, problems: Problems) -> Any:
    if not os.path.isabs(model):
        from advgrad import zoo

        return zoo.load(model)
    import keras

    path = pathlib.Path(model)
    if not path.is_file():
        problems.add("model", f"model file not found: {path}")
        return None
    if not is_keras_archive(path):  # else Keras says "file not found" of a file that exists
        problems.add("model", not_keras_archive(path))
        return None
    try:
        with warnings.catch_warnings():
            # The optimizer's state does not matter for attacks; Keras warns when it differs.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.models.load_model(path, safe_mode=True, compile=True)
    except Exception as err:
        reason = one_line(err)
        unknown = _UNKNOWN.search(reason)
        if unknown:
            kind, name = unknown.groups()
            problems.add(
                "model",
                f"cannot load {path.name}: unknown {kind} {name!r} (register it with "
                "@keras.saving.register_keras_serializable() in a module listed under "
                "`imports:`, or pass --import MODULE)",
            )
        elif "safe_mode" in reason or "unsafe" in reason.lower():
            # Keras explains at length; keep the first sentence, which names the cause.
            first = reason.split(". ")[0].rstrip(".")
            problems.add("model", f"Keras safe mode refused to load {path}: {first}")
        else:
            problems.add("model", f"cannot load {path}: {type(err).__name__}: {reason}")
        return None


def model_input_names(model: Any) -> list[str]:
    """The model's input names, in its input order."""
    from advgrad.models import ModelAdapter

    structure = ModelAdapter.of(model).input_structure
    if structure is None:
        return ["x"]
    return list(structure.names)


def _model_input_shapes(model: Any) -> list[tuple]:
    inputs = getattr(model, "inputs", None) or []
    return [tuple(t.shape[1:]) for t in inputs]


def load_data(data: DataConfig, model: Any) -> tuple[Any, np.ndarray, Any]:
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
            if data.bounds_keys is not None:
                bounds = tuple(np.asarray(archive[key]) for key in data.bounds_keys)
    else:
        from advgrad import data as data_lib

        kwargs = {}
        if data.name in default_catalog().flattenable:
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


def _check_npz_bounds(
    pair: tuple[np.ndarray, np.ndarray],
    keys: tuple[str, str],
    samples: dict[str, np.ndarray],
    problems: Problems,
) -> None:
    """``data.bounds: {low: KEY, high: KEY}``: numeric arrays, low <= high, each of a shape
    that broadcasts to every input's per-sample shape."""
    low, high = pair
    for side, key in zip(pair, keys, strict=True):
        if not (np.issubdtype(side.dtype, np.number) or np.issubdtype(side.dtype, np.bool_)):
            problems.add("data.bounds", f"array {key!r} has dtype {side.dtype}, not numbers")
            return
        if np.isnan(side.astype(np.float64)).any():
            problems.add("data.bounds", f"array {key!r} holds NaN")
            return
    for name, x in samples.items():
        shape = tuple(np.shape(x)[1:])
        try:
            fits = all(np.broadcast_shapes(side.shape, shape) == shape for side in pair)
        except ValueError:
            fits = False
        if not fits:
            problems.add(
                "data.bounds",
                f"arrays {keys[0]!r} {low.shape} and {keys[1]!r} {high.shape} do not fit "
                f"input {name!r} (one sample has shape {shape})",
            )
            return
    if np.any(np.greater(low, high)):
        problems.add("data.bounds", f"expected {keys[0]!r} <= {keys[1]!r} everywhere")


def _take(x: Any, limit: int) -> Any:
    if isinstance(x, Mapping):
        return {k: v[:limit] for k, v in x.items()}
    if isinstance(x, list):
        return [v[:limit] for v in x]
    return x[:limit]


def _num_classes(model: Any) -> int | None:
    """The model's classes as `advgrad.evaluate` counts them (one unit: 2); None when its
    output shape does not say."""
    from advgrad.batching import output_classes

    return output_classes(model)


def check_data_fits(
    x: Any, y: np.ndarray, model: Any, input_names: list[str], problems: Problems
) -> None:
    """Problems where the samples or labels do not fit the model."""
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


def _check_targets(targets: Any, model: Any, problems: Problems) -> None:
    """A class id under ``targets`` is one of the model's classes."""
    classes = _num_classes(model)
    if isinstance(targets, int) and classes is not None and targets >= classes:
        problems.add(
            "targets", f"class {targets}, but the model has {classes} classes (0..{classes - 1})"
        )


def _check_inputs_fit(x: Any, model: Any, problems: Problems) -> None:
    """Each input array's per-sample shape and dtype against the model's input (what
    the attacks would refuse at their first batch), named by its config key."""
    from advgrad.models import ModelAdapter

    try:
        ModelAdapter.of(model).split_inputs(x)
    except ArgumentError as err:
        received = err.received if err.received is not None else "another shape"
        problems.add(
            f"data.{err.argument}",
            f"does not fit the model: expected {err.expected}, received {received}",
        )
    except ValueError as err:  # pragma: no cover - counts and names are checked before
        problems.add("data.x", f"does not fit the model: {err}")


def _leaves_by_name(x: Any, input_names: list[str]) -> dict[str, np.ndarray]:
    if isinstance(x, Mapping):
        return {name: np.asarray(x[name]) for name in input_names if name in x}
    leaves = x if isinstance(x, list) else [x]
    return {name: np.asarray(leaf) for name, leaf in zip(input_names, leaves, strict=False)}


def _not_an_input(path: str, key: Any, input_names: list[str], problems: Problems) -> None:
    problems.add(
        path,
        f"{key!r} is not an input of the model ({', '.join(input_names)})"
        f"{suggest(key, input_names)}",
    )


def _resolve_bounds(
    config: BenchConfig,
    data_bounds: Any,
    samples: dict[str, np.ndarray],
    input_names: list[str],
    problems: Problems,
) -> tuple[Any, list[str]]:
    """The attacks' ``bounds`` setting and the frozen inputs, from ``bounds`` and ``inputs``.

    ``"data"`` becomes the data's range: an npz file's ``data.bounds`` must hold every
    evaluated sample, as explicit bounds must; an embedded data set's range (its training
    data's) is widened, with a warning, where an evaluated sample lies outside it.
    """
    value = config.bounds
    wanted: dict[str, tuple[Any, str]] = {}  # input -> (bounds value, path)
    if isinstance(value, Mapping):
        for key in value:
            if key not in input_names:
                _not_an_input(join_path("bounds", key), key, input_names, problems)
        for name in input_names:
            wanted[name] = (value.get(name), join_path("bounds", name))
    else:
        for name in input_names:
            wanted[name] = (value, "bounds")
    frozen: list[str] = []
    if config.inputs is not None:
        for key in config.inputs:
            if key not in input_names:
                _not_an_input(join_path("inputs", key), key, input_names, problems)
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
        if bounds == "data" and config.data.npz is not None:  # the user's: never widened
            if data_bounds is None:
                _data_bounds(data_bounds, name, None, path, problems)  # says what to give
            else:
                fix = "give data.bounds that hold every sample, or set `bounds: null` (no clipping)"
                keys = config.data.bounds_keys
                where = None
                if keys is not None:
                    where = f"the range of {keys[0]!r} and {keys[1]!r} in {config.data.npz.name}"
                _check_within(
                    data_bounds, samples.get(name), name, "data.bounds", problems, fix, where
                )
            resolved[name] = data_bounds
        elif bounds == "data":
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
    data_bounds: Any, name: str, x: np.ndarray | None, path: str, problems: Problems
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
    bounds: Any,
    x: np.ndarray | None,
    name: str,
    path: str,
    problems: Problems,
    fix: str = "",
    where: str | None = None,
) -> None:
    """Every sample of input `name` within `bounds` (`where` says them), else a problem."""
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
            f"outside {where or f'[{_fmt_bound(low)}, {_fmt_bound(high)}]'} (values from "
            f"{x.min():.4g} to {x.max():.4g})" + (f": {fix}" if fix else ""),
        )


def _fmt_bound(value: np.ndarray) -> str:
    return f"{float(value):g}" if value.ndim == 0 else f"per-feature array {value.shape}"


def _make_suite(
    config: BenchConfig,
    bounds: Any,
    frozen: list[str],
    input_names: list[str],
    problems: Problems,
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
                radius = next((e for e in config.eps if not isinstance(e, str)), 0.0)  # "curve"
                settings["budget"] = {
                    name: None if name in frozen else Budget(radius, norm, _pair(bounds.get(name)))
                    for name in input_names
                }
            elif "bounds" in defaults:
                settings["bounds"] = bounds
            elif bounds is not None:
                problems.add(path, f"attack {entry.name!r} has no `bounds` setting")
                continue
            suite.append(get_attack(entry.name, **settings))
        except ArgumentError as err:
            if err.argument == "bounds":  # the bounds are the config's, not the attack's
                problems.add("bounds", err.reason.rstrip("."))
            else:
                problems.argument_error(path, err)
        except ValueError as err:
            problems.add(path, one_line(err))
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
