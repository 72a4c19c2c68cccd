"""The argument checks of advgrad, and the structured error they raise (one copy of each).

Every public function and every attack setting is checked here, before any work starts, with
one rule per concept:

- numbers are real numbers (never bools), never NaN, finite unless a check says otherwise;
- ``eps`` is a finite number >= 0 everywhere (attacks, budgets, evaluate, configs): an
  infinite radius is not a threat model, and its steps would overflow to NaN;
- ints are integral (never bools; ``coordinates=True`` is refused), bools are bools;
- a seed is an int in ``[0, 2**63)`` (`SEED_LIMIT`, `check_seed`), a size or count
  (``batch_size``) an int below ``2**31`` (`SIZE_LIMIT`) and a ``shard_size`` one below
  ``2**40`` (`SHARD_LIMIT`): configs check the same ranges.

The error is an `ArgumentError` (a ``ValueError``) that carries the argument, what was
expected and what was received, so that a config can map it to a YAML path without reading
the message back. A finding that does not stop the work is a `FlaggedWarning`.

>>> str(invalid("eps", "a finite number >= 0", -0.1))
'Invalid value for argument `eps`: expected a finite number >= 0, received eps=-0.1.'
>>> check_int("steps", 10, low=1), check_eps(0.1)
(10, 0.1)
>>> try:
...     check_int("coordinates", True, low=1)
... except ArgumentError as err:
...     print(err.argument, "|", err.reason)
coordinates | expected an int >= 1, received coordinates=True.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from typing import Any

import numpy as np

__all__ = [
    "SEED_LIMIT",
    "SHARD_LIMIT",
    "SIZE_LIMIT",
    "ArgumentError",
    "ArgumentTypeError",
    "FlaggedWarning",
    "check_bool",
    "check_eps",
    "check_int",
    "check_number",
    "check_seed",
    "describe",
    "invalid",
]

SEED_LIMIT = 2**63
"""Seeds are ints in ``[0, SEED_LIMIT)``: an int64 seed tensor holds every one."""
SIZE_LIMIT = 2**31
"""Sizes and counts (``batch_size``) are ints below ``SIZE_LIMIT``: int32 holds them."""
SHARD_LIMIT = 2**40
"""Samples per shard (``shard_size`` of `advgrad.generate` and of a generation config) are
ints below ``SHARD_LIMIT``."""

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


class ArgumentError(ValueError):
    """An invalid argument, named: ``argument``, ``reason`` (and ``expected``/``received``).

    ``str(error)`` is ``"Invalid value for argument `x`: <reason>"``, Keras style.

    >>> err = ArgumentError("steps", "expected an int >= 1, received steps=0.", expected="an int")
    >>> err.argument, str(err)
    ('steps', 'Invalid value for argument `steps`: expected an int >= 1, received steps=0.')
    """

    def __init__(
        self,
        argument: str,
        reason: str,
        *,
        expected: str | None = None,
        received: str | None = None,
    ):
        self.argument = argument
        self.reason = reason
        self.expected = expected
        self.received = received
        super().__init__(f"Invalid value for argument `{argument}`: {reason}")

    def __reduce__(self):  # picklable like a plain exception (multiprocessing, pytest-xdist)
        return (_rebuild, (type(self), self.argument, self.reason, self.expected, self.received))


class ArgumentTypeError(ArgumentError, TypeError):
    """An `ArgumentError` of the wrong type (also a ``TypeError``)."""


class FlaggedWarning(UserWarning):
    """A finding advgrad reports as a flag of its own (a report carries it, so
    `advgrad.evaluate` does not add it again as a ``run_warning`` flag); also raised by
    direct attack calls for the same finding, so one filter silences both.

    >>> import warnings
    >>> with warnings.catch_warnings():  # silences evaluate's and the attacks' alike
    ...     warnings.filterwarnings("ignore", category=FlaggedWarning)
    ...     warnings.warn("a finding", FlaggedWarning)
    """


def _rebuild(cls, argument, reason, expected, received):
    return cls(argument, reason, expected=expected, received=received)


def describe(value: Any) -> str:
    """Short description of a received value: arrays by shape and dtype, others by a bounded
    repr (never the whole of a large or deeply nested value)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(shape, "__len__", None) is not None and len(shape) > 0:
        return f"{type(value).__name__}(shape={tuple(shape)}, dtype={dtype})"
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def invalid(
    argument: str, expected: str, received: Any, *, cls: type = ArgumentError
) -> ArgumentError:
    """The error for `argument`: what was expected and what was received.

    Args:
        argument: The argument's name as the caller wrote it (``x['image']``, ``eps``).
        expected: What would have been accepted, e.g. ``"an int >= 1"``.
        received: The value received (described briefly, never in full).
        cls: `ArgumentError` (default) or `ArgumentTypeError` (also a TypeError).
    """
    if cls is TypeError:
        cls = ArgumentTypeError
    elif cls is ValueError:
        cls = ArgumentError
    text = describe(received)
    reason = f"expected {expected}, received {argument}={text}."
    return cls(argument, reason, expected=expected, received=text)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_number(
    argument: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """`value` as a float: a real number (not a bool, not NaN), finite unless ``finite=False``,
    ``>= low`` (``> low`` with `low_open`) and ``<= high`` (``< high`` with `high_open`)
    where given.

    >>> check_number("decay", 1, low=0)
    1.0
    """
    ok = _is_real(value) and not math.isnan(value) and (math.isfinite(value) or not finite)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        raise invalid(argument, _number_text(low, high, low_open, high_open, finite), value)
    return float(value)


def _number_text(low, high, low_open, high_open, finite) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return ("a finite number" if finite else "a number") + (
        " " + " and ".join(parts) if parts else ""
    )


def check_eps(value: Any, argument: str = "eps") -> float:
    """A radius: a finite number >= 0 (the one rule for eps everywhere).

    >>> check_eps(8 / 255) == 8 / 255
    True
    """
    return check_number(argument, value, low=0.0)


def check_int(
    argument: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    optional: bool = False,
) -> int | None:
    """`value` as an int: integral (not a bool, not a float), ``>= low`` and ``< high``
    (exclusive, as in ``range``) where given; None is accepted when `optional`.

    >>> check_int("batch_size", None, low=1, optional=True) is None
    True
    >>> try:
    ...     check_int("seed", 2**63, low=0, high=2**63)
    ... except ArgumentError as err:
    ...     print(err.reason)
    expected an int in [0, 2**63), received seed=9223372036854775808.
    """
    if value is None and optional:
        return None
    integral = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not integral or (low is not None and value < low) or (high is not None and value >= high):
        if low is not None and high is not None:
            expected = f"an int in [{_int_text(low)}, {_int_text(high)})"
        elif high is not None:
            expected = f"an int < {_int_text(high)}"
        else:
            expected = "an int" + (f" >= {low}" if low is not None else "")
        raise invalid(argument, expected + (" or None" if optional else ""), value)
    return int(value)


def check_seed(value: Any, argument: str = "seed") -> int:
    """A seed: an int in ``[0, 2**63)`` (the one rule for seeds of attacks, evaluate, configs).

    >>> check_seed(2**63 - 1) == 2**63 - 1
    True
    """
    return check_int(argument, value, low=0, high=SEED_LIMIT)


def _int_text(value: int) -> str:
    """A bound as people write it: large powers of two as ``2**k``."""
    value = int(value)
    if value >= 2**16 and value & (value - 1) == 0:
        return f"2**{value.bit_length() - 1}"
    return str(value)


def check_progress(argument: str, value: Any) -> bool:
    """Whether to show a progress bar: `value` (True or False), or, for None, whether a person
    is watching (stderr is a terminal, or a Jupyter notebook runs the code): quiet in pipes,
    logs and tests.

    >>> check_progress("progress", False), check_progress("progress", None)  # under pytest
    (False, False)
    """
    return watched() if value is None else check_bool(argument, value)


def watched() -> bool:
    """Whether a person is watching this process: stderr is a terminal, or it runs in a
    Jupyter kernel (a notebook)."""
    import sys

    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, OSError, ValueError):  # a replaced or closed stderr
        pass
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    return any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


def check_bool(argument: str, value: Any) -> bool:
    """`value` as a bool: True or False (numpy bools too, never 0/1 or strings).

    >>> check_bool("progress", False)
    False
    """
    if not isinstance(value, (bool, np.bool_)):
        raise invalid(argument, "True or False", value)
    return bool(value)
