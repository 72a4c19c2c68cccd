"""Robustness reports: what `advgrad.evaluate` measured, as JSON, Markdown and plots.

A `Report` holds the clean accuracy, the worst-case (cascade) robust accuracy per eps, each
attack's own robust accuracy, the per-sample outcomes, gradient/query counts, timings, the
seeds and settings that produced them, library versions and the sanity flags. It is plain
data: `to_json` / `Report.from_json` round-trip it, `to_markdown` renders the table a paper
would print (with 95% Wilson intervals, `Report.interval`, and a per-class table,
`Report.per_class`, when the labels are known), `to_csv` exports the per-sample outcomes, and
`save_plots` draws robust accuracy against eps (matplotlib).

The package: `core` (the `Report` and its statistics), `files` (JSON and CSV out, JSON in),
`validate` (checks of a report read back), `markdown` (``report.md``, ``str``, ``repr``),
`plots`, and `stats` (the Wilson interval and how eps are written, which they share). The
outcome codes are the evaluation's (`advgrad.outcomes`), re-exported here; so is
`FlaggedWarning` (`advgrad._validation`: attacks raise it too).

Every figure a user reads is derived from the per-sample outcomes: the tables, plots and
`advgrad.compare` read them off ``outcomes`` and ``attack_outcomes``, and `Report.from_json`
refuses a report whose stored figures (accuracies, targeted counts, the curve's zeros, the
``non_finite_outputs`` flag) disagree with its outcomes, naming the field. JSON is written
strictly: a non-finite number is written as null (an inf minimal norm or bound is read back
as inf, a loss as NaN).

>>> import numpy as np
>>> report = Report(
...     clean_accuracy=0.75, robust_accuracy={0.1: 0.5}, per_attack={"pgd": {0.1: 0.5}},
...     outcomes={0.1: np.array([-1, 0, -2, -1], np.int8)}, n_samples=4, attacks=["pgd"],
...     attack_outcomes={"pgd": {0.1: np.array([True, False, False, True])}})
>>> Report.from_json(report.to_json()).robust_accuracy
{0.1: 0.5}
>>> print(report.to_markdown().splitlines()[4])
| attack | eps=0.1 |
"""

from __future__ import annotations

from advgrad._validation import FlaggedWarning
from advgrad.outcomes import (
    CLEAN_MISCLASSIFIED,
    CLEAN_NON_FINITE,
    MAX_ATTACKS,
    OUTCOME_CODES,
    ROBUST,
    clean_correct,
    first_attack,
    non_finite,
)
from advgrad.report.core import Report
from advgrad.report.stats import CASCADE
from advgrad.report.validate import curve_non_finite_problem

__all__ = [
    "CASCADE",
    "CLEAN_MISCLASSIFIED",
    "CLEAN_NON_FINITE",
    "MAX_ATTACKS",
    "OUTCOME_CODES",
    "ROBUST",
    "FlaggedWarning",
    "Report",
    "clean_correct",
    "curve_non_finite_problem",
    "first_attack",
    "non_finite",
]
