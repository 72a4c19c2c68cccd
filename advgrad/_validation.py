"""Keras-style argument errors, raised before any work starts.

>>> from advgrad._validation import invalid
>>> str(invalid("eps", "a number >= 0", -0.1))
'Invalid value for argument `eps`: expected a number >= 0, received eps=-0.1.'
"""

from __future__ import annotations

from typing import Any


def describe(value: Any) -> str:
    """Short description of a received value (arrays by shape and dtype, not contents)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(shape, "__len__", None) is not None and len(shape) > 0:
        return f"{type(value).__name__}(shape={tuple(shape)}, dtype={dtype})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def invalid(argument: str, expected: str, received: Any, *, cls: type = ValueError) -> Exception:
    """Build the error for `argument`: what was expected and what was received."""
    return cls(
        f"Invalid value for argument `{argument}`: expected {expected}, "
        f"received {argument}={describe(received)}."
    )
