"""What the report's views share: the Wilson interval and how eps and norms are written.

>>> [round(v, 4) for v in wilson(45, 100, 0.95)]
[0.3561, 0.5476]
>>> eps_key(0.1), eps_label(8 / 255), NORM_NAMES["inf"]
('0.1', '0.03137', 'Linf')
"""

from __future__ import annotations

import math
import statistics

__all__ = ["CASCADE", "NORM_NAMES", "eps_key", "eps_label", "wilson"]

CASCADE = "worst case (cascade)"
"""Row label of the worst case over the whole suite in tables and plots."""

NORM_NAMES = {"linf": "Linf", "inf": "Linf", "l2": "L2", "2": "L2", "l1": "L1", "1": "L1"}
"""How the tables and the plots' eps axis name a norm of the suite's configs."""


def wilson(robust: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of the proportion ``robust / n`` at `confidence`."""
    if n <= 0:
        return math.nan, math.nan
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = robust / n
    z2 = z * z
    denominator = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if robust <= 0 else max(0.0, center - half)
    high = 1.0 if robust >= n else min(1.0, center + half)
    return low, high


def eps_key(eps: float) -> str:
    """An eps as a JSON key and CSV column: exactly (``repr(float)``)."""
    return repr(float(eps))


def eps_label(eps: float) -> str:
    """Short eps text for tables: 0.1, 0.0313 (8/255), 1e-05."""
    return f"{float(eps):.4g}"
