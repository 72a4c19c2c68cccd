"""Compiling advgrad's functions: one `tf.function` per model and configuration, and a
count of how often they were traced (the "no retracing between batches" promise, testable).

>>> import tensorflow as tf
>>> before = trace_count("doctest")
>>> def double(x):
...     count_trace("doctest")
...     return 2 * x
>>> fn = compile_once(double, [tf.TensorSpec([None], tf.float32)])
>>> fn(tf.constant([1.0])).numpy().tolist(), fn(tf.constant([1.0, 2.0])).numpy().tolist()
([2.0], [2.0, 4.0])
>>> trace_count("doctest") - before
1
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = ["compile_once", "count_trace", "trace_count"]

_TRACES: collections.Counter = collections.Counter()


def trace_count(kind: str | None = None) -> int:
    """How many times advgrad's compiled functions were traced (all kinds, or one kind)."""
    return sum(_TRACES.values()) if kind is None else _TRACES[kind]


def count_trace(kind: str) -> None:
    """Record one trace of `kind` (call it in the Python body of a tf.function)."""
    _TRACES[kind] += 1


def compile_once(fn: Callable, signature: Any, **options: Any) -> Callable:
    """`tf.function(fn, input_signature=signature)` for a function advgrad builds per model
    and configuration, traced once per signature (`trace_count` keeps the count).

    TensorFlow's "N out of the last M calls triggered retracing" warning is keyed on the
    Python code object, so several such functions built from one closure (a suite of
    attacks, say) would look like one function retracing; a `functools.partial` gives each
    its own key, and the warning keeps its meaning.
    """
    return tf.function(functools.partial(fn), input_signature=signature, **options)
