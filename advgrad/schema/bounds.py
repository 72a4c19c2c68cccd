"""The ``bounds`` of a config: numbers, per-feature (nested) lists, ``data`` or null, per input.

A side is walked before numpy sees it, so an over-long or over-deep list (or one that holds
itself) is refused without building anything big.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from advgrad.schema.problems import Problems, join_path

_MAX_BOUND_NUMBERS = 1_000_000
"""Most numbers (and lists) one side of a per-feature bound may hold: counted, never built."""
_MAX_BOUND_DEPTH = 32
"""Deepest nesting of the lists of one bound side (numpy arrays have at most 64 dimensions)."""


def _parse_bound_side(value: Any, path: str, problems: Problems) -> Any:
    """A bound: a number, or a (nested) list of numbers (per feature).

    A list is walked first, without building anything and stopping early, so a list that is
    too long, too deep (or cyclic) or shared many times over is refused before numpy
    converts it.
    """
    if _is_number(value):
        if math.isnan(value):
            problems.expected(path, "a number or a list of numbers", value)
            return None
        return float(value)
    if isinstance(value, list) and value:
        trouble = _walk_bound(value)
        if trouble is not None and trouble is not _NOT_A_NUMBER:
            problems.add(path, trouble)
            return None
        array = None
        if trouble is None:
            try:
                array = np.array(value, dtype=np.float64)
            except (TypeError, ValueError):  # ragged
                array = None
        if array is None:
            problems.expected(path, "a number or a (nested) list of numbers", value)
            return None
        if np.isnan(array).any():
            problems.expected(path, "numbers without NaN", value)
            return None
        return value
    problems.expected(path, "a number or a list of numbers", value)
    return None


_END = object()
_NOT_A_NUMBER = "an item that is not a number or a list"


def _walk_bound(value: list) -> str | None:
    """What is wrong with the nested list `value` (None if nothing): more than
    `_MAX_BOUND_NUMBERS` items, lists nested deeper than `_MAX_BOUND_DEPTH`, or an item that
    is not a number or a list (`_NOT_A_NUMBER`). Iterative: at most the limits' worth of
    steps and memory."""
    stack = [iter(value)]
    count = 0
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        count += 1
        if count > _MAX_BOUND_NUMBERS:
            return f"expected at most {_MAX_BOUND_NUMBERS} numbers per bound side, received more"
        if isinstance(item, list):
            if len(stack) >= _MAX_BOUND_DEPTH:
                return (
                    f"expected lists nested at most {_MAX_BOUND_DEPTH} levels deep, "
                    "received deeper ones"
                )
            stack.append(iter(item))
        elif not _is_number(item):
            return _NOT_A_NUMBER
    return None


def parse_bounds(value: Any, path: str, problems: Problems, *, per_input: bool) -> Any:
    """A ``bounds`` value: ``data``, [low, high], null, or per input (`per_input`)."""
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
        low_array, high_array = np.asarray(low), np.asarray(high)
        try:
            shape = np.broadcast_shapes(low_array.shape, high_array.shape)
        except ValueError:
            problems.add(path, "low and high do not have broadcastable shapes")
            return None
        if math.prod(shape) > _MAX_BOUND_NUMBERS:
            problems.add(
                path, f"low and high broadcast to {shape}: over {_MAX_BOUND_NUMBERS} numbers"
            )
            return None
        greater = np.any(np.greater(low_array, high_array))
        if greater:
            problems.expected(path, "low <= high", value)
            return None
        return (low, high)
    if per_input and isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            result[str(key)] = parse_bounds(item, join_path(path, key), problems, per_input=False)
        return result
    expected = "data, [low, high] or null" + (", or a mapping input -> those" if per_input else "")
    problems.expected(path, expected, value)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
