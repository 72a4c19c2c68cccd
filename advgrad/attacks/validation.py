"""The checks behind an attack's settings and calls, each raising an error that names the
argument (`advgrad._validation`): the shared settings' checks (`setting` binds any other),
the inputs an attack may perturb, the unbounded-[0, 1]-data context, and XLA errors named as
the `jit_compile` setting.

>>> check_norm("L2"), headroom("float16")
('l2', 4094.0)
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from advgrad import losses, norms
from advgrad._validation import ArgumentError, check_int, invalid
from advgrad.budget import Bounds, Budget

__all__ = [
    "UNTRACED",
    "XLAErrors",
    "check_bounds",
    "check_budget",
    "check_classifier",
    "check_loss",
    "check_norm",
    "check_perturbable",
    "check_within_bounds",
    "headroom",
    "setting",
    "unit_data_checked",
    "unit_data_was_checked",
]

UNTRACED = frozenset({"eps", "step_size", "seed", "batch_size", "progress", "budget", "bounds"})
"""Settings that reach a compiled attack as tensors or through the plan, so changing them
does not retrace it (`Attack.compiled` leaves them out of its cache key)."""


def check_loss(value):
    if value is not None:
        losses.get(value)  # raises naming `loss`
    return value


def check_norm(value):
    norm = norms.get(value)
    config = norm.get_config()
    return config["name"] if len(config) == 1 else value


def check_bounds(value):
    if isinstance(value, Mapping):
        return {
            k: None if v is None else _bounds_config(Bounds.from_value(v)) for k, v in value.items()
        }
    return None if value is None else _bounds_config(Bounds.from_value(value))


def _bounds_config(bounds: Bounds):
    low, high = bounds.low, bounds.high
    as_list = lambda v: v.tolist() if isinstance(v, np.ndarray) else float(v)  # noqa: E731
    return [as_list(low), as_list(high)]


def check_budget(value):
    if value is None:
        return None
    if isinstance(value, Budget):
        return value
    if isinstance(value, Mapping):
        return {
            k: v if v is None or isinstance(v, Budget) else Budget.from_config(v)
            for k, v in value.items()
        }
    raise invalid("budget", "None, a Budget or a dict input name -> Budget or None", value)


def check_classifier(value):
    if value is None or isinstance(value, str):
        return value
    return check_int("classifier", value, low=0)


def setting(check, argument: str, **options: Any):
    """A `CHECKS` entry: one of `advgrad._validation`'s checks, bound to a setting's name.

    >>> from advgrad._validation import check_int
    >>> setting(check_int, "steps", low=1)(10)
    10
    """
    return functools.partial(check, argument, **options)


class XLAErrors:
    """A ``jit_compile=True`` attack function whose XLA compilation errors name the
    setting: XLA compiles on the first call of each input shape, before any work is done, and
    an op it cannot compile (in the model, say) is reported as `ArgumentError` on
    `jit_compile` with the fix; any other error passes through unchanged."""

    def __init__(self, fn: Callable[..., Any], attack: Any):
        self._fn, self._name = fn, f"{type(attack).__name__} ({attack.name!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._fn(*args, **kwargs)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            message = str(error)
            if not any(mark in message for mark in _XLA_MARKS):
                raise
            first = next((line for line in message.splitlines() if line.strip()), message)
            expected = "jit_compile=False for an attack or a model that XLA cannot compile"
            reason = (
                f"expected {expected}, received jit_compile=True: XLA could not compile "
                f"{self._name} on this model ({first.strip()[:300]}). Pass "
                "jit_compile=False (the default)."
            )
            raise ArgumentError("jit_compile", reason, expected=expected) from error

    def __getattr__(self, key: str) -> Any:  # the tf.function's own attributes
        if key == "_fn":
            raise AttributeError(key)
        return getattr(self._fn, key)


_XLA_MARKS = ("XLA", "tf2xla", "compile-time constant", "XlaMustCompile")


def check_perturbable(label: str, name: str, value: Any, budget: Budget) -> None:
    """A perturbed input must be floating point, and its dtype must hold the radius."""
    dtype = tf.as_dtype(value.dtype)
    if not dtype.is_floating:
        reason = (
            f"expected a floating-point input to perturb, received dtype {dtype.name} for "
            f"input {name!r}. Integer inputs (such as embedding ids) cannot be perturbed: "
            f"freeze it with budget={{{name!r}: None, ...}} (a Budget for each input to "
            "perturb)."
        )
        raise ArgumentError(label, reason, expected="a floating-point input to perturb")
    limit = headroom(dtype)
    if budget.eps > limit:
        raise invalid(
            "eps", f"a radius that {dtype.name} inputs can hold (<= {limit:.3g})", budget.eps
        )


_UNIT_DATA_CHECKED = contextvars.ContextVar("advgrad_unit_data_checked", default=False)


@contextlib.contextmanager
def unit_data_checked() -> Iterator[None]:
    """Inside it, attack calls do not look for unbounded [0, 1] data: the caller (such as
    `advgrad.evaluate`) looked at the whole data and warned once itself.

    >>> with unit_data_checked():
    ...     _UNIT_DATA_CHECKED.get()
    True
    """
    token = _UNIT_DATA_CHECKED.set(True)
    try:
        yield
    finally:
        _UNIT_DATA_CHECKED.reset(token)


def check_within_bounds(label: str, value: Any, budget: Budget) -> None:
    """A perturbed input must start within its budget's bounds (to a rounding slack).

    Raises:
        ArgumentError: named `label` (the input's name in the call).
    """
    if budget.bounds.is_unbounded or budget.bounds.contains(value, atol=1e-6):
        return
    expected = f"values within the bounds [{_fmt(budget.bounds.low)}, {_fmt(budget.bounds.high)}]"
    received = f"values from {np.min(value):.4g} to {np.max(value):.4g}"
    raise ArgumentError(label, f"expected {expected}, received {received}.", expected=expected)


def unit_data_was_checked() -> bool:
    """Whether the caller is inside `unit_data_checked`."""
    return _UNIT_DATA_CHECKED.get()


def headroom(dtype: Any) -> float:
    """The largest radius or step size an input of `dtype` is attacked with: steps, random
    starts and boxes reach a few times it, so it stays a factor 16 below overflow."""
    return float(tf.as_dtype(dtype).max) / 16


def _fmt(value: Any) -> str:
    array = np.asarray(value)
    return f"{float(array):g}" if array.ndim == 0 else f"per-feature array {array.shape}"
