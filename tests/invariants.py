"""The invariant every attack output keeps: within its budget, inside its bounds, finite,
with the input's dtype and shape; a frozen input comes back exactly.

One check, used by the numeric paths (tests/test_numeric_paths.py: mixed precision and
XLA, and tests/test_precision.py, tests/test_xla.py), the property-based tests
(tests/test_properties.py) and the registry's user attacks (tests/test_registry.py); the
attack contract (tests/test_attack_contract.py) is to use it too. Precision is an axis of the
check: the rounding slack follows the input's dtype.

>>> x = np.zeros((2, 3), np.float32)
>>> assert_within(x + 0.1, x, eps=0.1, norm="linf", bounds=(0.0, 1.0))
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Relative rounding slack of a projection computed in each input dtype.
SLACK = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def sizes(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-sample size of ``x_adv - x`` in `norm` ("linf", "l2" or "l1"), in float64."""
    delta = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(len(x), -1)
    order = {"linf": np.inf, "l2": 2, "l1": 1}[norm]
    return np.linalg.norm(delta, ord=order, axis=1)


def assert_within(
    x_adv: Any,
    x: np.ndarray,
    *,
    eps: float | None,
    norm: str,
    bounds: tuple[Any, Any] | None = None,
    atol: float = 1e-6,
    bounds_atol: float = 0.0,
) -> None:
    """Asserts the invariant for one input: `x_adv` has `x`'s dtype and shape, is finite,
    moved at most `eps` (within rounding) from `x` per sample in `norm`, and lies inside
    `bounds` (``(low, high)``, scalars or per-feature arrays, compared in `x`'s dtype, within
    `bounds_atol`; None: unbounded).

    ``eps=None`` skips the budget (minimal-norm attacks have none). The budget allows
    ``eps * (1 + slack) + atol``, with the slack of the input's dtype (`SLACK`).
    """
    x_adv, x = np.asarray(x_adv), np.asarray(x)
    assert x_adv.dtype == x.dtype and x_adv.shape == x.shape, (x_adv.dtype, x_adv.shape)
    assert np.all(np.isfinite(x_adv))
    if eps is not None:
        size = sizes(x_adv, x, norm)
        limit = eps * (1 + SLACK[x.dtype]) + atol
        assert np.all(size <= limit), (norm, float(size.max()), eps)
    if bounds is not None:
        low, high = (np.asarray(b, x.dtype) for b in bounds)
        assert np.all(x_adv >= low - bounds_atol), "below the lower bound"
        assert np.all(x_adv <= high + bounds_atol), "above the upper bound"


def assert_frozen(x_adv: Any, x: np.ndarray) -> None:
    """A frozen input (budget None) comes back exactly, dtype and shape included."""
    x_adv = np.asarray(x_adv)
    assert x_adv.dtype == x.dtype and x_adv.shape == x.shape
    np.testing.assert_array_equal(x_adv, x)
