"""The per-sample outcome codes of an evaluation: what the cascade records, what a report reads.

`advgrad.evaluate` runs the attacks of a suite in order (`advgrad.evaluation.cascade`) and
records, per sample and eps, one int8 code: the index of the attack that first fooled the
sample, or one of the negative codes below. The report (`advgrad.report`), its checks on
reading and the resumable state all read these codes through this module, which sits below
both (the report is a data class the evaluation builds, so the codes cannot live in either).

>>> codes = [ROBUST, 0, CLEAN_MISCLASSIFIED, CLEAN_NON_FINITE, non_finite(1)]
>>> first_attack(codes).tolist(), clean_correct(codes).tolist()
([-1, 0, -1, -1, 1], [True, True, False, False, True])
>>> [outcome_text(c, ["fgsm", "pgd"]) for c in codes]
['robust', 'fgsm', 'clean_misclassified', 'clean_non_finite', 'non_finite:pgd']
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "CLEAN_MISCLASSIFIED",
    "CLEAN_NON_FINITE",
    "MAX_ATTACKS",
    "OUTCOME_CODES",
    "ROBUST",
    "clean_correct",
    "first_attack",
    "non_finite",
    "outcome_text",
]

CLEAN_MISCLASSIFIED = -2
"""Outcome code: the clean input is already misclassified (no attack ran on it)."""

ROBUST = -1
"""Outcome code: every attack of the suite failed on this sample."""

CLEAN_NON_FINITE = -3
"""Outcome code: the model's output on the clean input is not finite (NaN or inf): never
correct, robust or fooled (no attack ran on it)."""

MAX_ATTACKS = 125
"""The most attacks a suite may hold: every outcome code fits an int8."""


def non_finite(attack: Any) -> Any:
    """Outcome code: attack number `attack` was the first to leave the sample non-robust, by an
    input on which the model's output is not finite (not robust, and not fooled).

    >>> non_finite(0), non_finite(2)
    (-4, -6)
    """
    return -4 - attack


def first_attack(codes: Any) -> np.ndarray:
    """Per sample, the attack that first left it non-robust (fooled it, or gave a non-finite
    output), else -1 (robust, or not clean-correct).

    >>> first_attack([-1, 0, -2, -3, non_finite(1)]).tolist()
    [-1, 0, -1, -1, 1]
    """
    codes = np.asarray(codes, np.int64)
    return np.where(codes >= 0, codes, np.where(codes <= -4, -4 - codes, -1))


def clean_correct(codes: Any) -> np.ndarray:
    """Per sample: the clean prediction is right (and finite): every code but
    `CLEAN_MISCLASSIFIED` and `CLEAN_NON_FINITE`.

    >>> clean_correct([-1, 0, -2, -3, -4]).tolist()
    [True, True, False, False, True]
    """
    codes = np.asarray(codes, np.int64)
    return (codes >= ROBUST) | (codes <= -4)


def outcome_text(code: int, attacks: list[str]) -> str:
    """A cascade outcome code as CSV text: robust, clean_misclassified, clean_non_finite,
    the attack, or non_finite:<attack>."""
    if code == ROBUST:
        return "robust"
    if code == CLEAN_MISCLASSIFIED:
        return "clean_misclassified"
    if code == CLEAN_NON_FINITE:
        return "clean_non_finite"
    k = int(first_attack(code))
    name = attacks[k] if 0 <= k < len(attacks) else str(k)
    return name if code >= 0 else f"non_finite:{name}"


OUTCOME_CODES = (
    "Per-sample outcomes in report.json (`outcomes`, per eps): -1 robust (no attack fooled it), "
    "-2 misclassified before any attack, -3 the model's output on the clean input is not "
    "finite (never correct, robust or fooled), k >= 0 first fooled by attack k of the suite "
    "(0: the first), -4 - k attack k's input first gave a non-finite output (not robust, not "
    "fooled); `attack_outcomes`: 1 where that attack alone left the sample robust."
)
