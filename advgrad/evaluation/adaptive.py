"""The adaptive suite's decisions: which samples each member runs on, on what evidence.

A named suite whose members carry rules (`advgrad.attacks.suites.RULES`; ``"adaptive"``)
runs as a cascade whose budget follows the evidence, per sample. The evidence is the
model's *margin* on each sample (its output for the true class minus the largest other
one; for one unit, the output's distance from its threshold, signed), read off the
outputs `evaluate` computes anyway: on the clean input, and on what each member returns
(its own check of the adversarial input: no extra query). Rules:

- ``"all"``: every sample still robust (the plain cascade).
- ``"near"``: the samples still robust whose best margin so far is below `NEAR` times
  their clean margin: the earlier members came close to the boundary, so a stronger attack
  may cross it. The others stop there ("far").
- ``"stalled"``: the samples on which the first member (the gradient stage) removed less
  than ``1 - STALLED`` of the clean margin: the gradients made no progress, the sign of
  gradient masking, where a score-based search (Square) sees through; and every sample
  still robust in a batch where at least `MASKED_SHARE` of the samples still robust
  stalled (the model masks its gradients: margins say nothing there). The others stop
  ("informative": the gradients moved the margin and the gradient members failed).

Measured on the digits CNN (450 test images, Linf 0.1): APGD-CE breaks the same 227
samples in 25 steps as in 100 (in 8, the first member's steps: the same robust accuracy
on the panel's models); after 25 steps the samples that APGD-T still broke kept at most
0.31 of their clean margin, while a quarter of those it never broke kept more than 0.35;
on the gradient-masked CNN the median sample kept 0.96 of its margin (the unmasked CNN:
0.22) and Square broke every sample it breaks with 5,000 queries within 900. The panel:
`benchmarks/strength.py --panel only`.

`Policy` applies the rules batch by batch for `advgrad.evaluation.cascade.Runner` and keeps
the record (`Record`): per eps, per sample, the clean margin, the margin after the first
member, what each member spent on it (gradients, queries) and each member's decision
(`DECISIONS`), and which batches were judged masked. It is saved in the resumable state
with the tally, and written into the report's ``suite`` entries (``"adaptive"``).

>>> import numpy as np
>>> margins(np.array([[2.0, 0.5, 1.0], [0.0, 3.0, 1.0]]), np.array([0, 0])).tolist()
[1.0, -3.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DECISIONS", "MASKED_SHARE", "NEAR", "STALLED", "Policy", "Record", "margins"]

NEAR = 0.35
"""A sample is near the boundary when its best margin is below this share of its clean one."""

STALLED = 0.9
"""The gradient stage stalled on a sample that kept at least this share of its clean margin."""

MASKED_SHARE = 0.5
"""A batch is masked when at least this share of its samples still robust stalled."""

DECISIONS = {0: "not attacked", 1: "ran", 2: "stopped: far", 3: "stopped: informative"}
"""Per member and sample: 0 fooled earlier, not clean-correct (or a target equal to its
label); 1 the member ran; 2 its rule ("near") left it out, the margin far from the
boundary; 3 its rule ("stalled") left it out, the gradients informative."""

RULE_NAMES = ("all", "near", "stalled")


def margins(outputs: np.ndarray, truth: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Per sample, the output for the true class minus the largest other (one unit: the
    output's distance from `threshold`, positive on the true side); NaN where not finite."""
    out = np.asarray(outputs, np.float64).reshape(len(truth), -1)
    truth = np.asarray(truth, np.int64)
    if out.shape[1] == 1:
        side = out[:, 0] - threshold
        value = np.where(truth == 1, side, -side)
    else:
        rows = np.arange(len(truth))
        own = out[rows, truth]
        other = out.copy()
        other[rows, truth] = -np.inf
        value = own - np.max(other, axis=1)
    return np.where(np.isfinite(value), value, np.nan)


def _plain(values: np.ndarray) -> list:
    """Floats for JSON: NaN as None."""
    return [None if not np.isfinite(v) else round(float(v), 6) for v in values]


class Record:
    """What the adaptive cascade decided and spent, per eps and sample, batch after batch.

    Saved in the state (`to_state`, `resume`) and written into the report (`entries`).
    """

    def __init__(self, labels: Sequence[str], rules: Sequence[str], eps: Sequence[float]):
        self.labels = list(labels)
        self.rules = list(rules)
        self.eps = list(eps)
        e = len(self.eps)
        self.clean: list[list[np.ndarray]] = [[] for _ in range(e)]
        self.first: list[list[np.ndarray]] = [[] for _ in range(e)]
        self.decision = {k: [[] for _ in range(e)] for k in self.labels}
        self.gradients = {k: [[] for _ in range(e)] for k in self.labels}
        self.queries = {k: [[] for _ in range(e)] for k in self.labels}
        self.masked: list[list[int]] = [[] for _ in range(e)]

    @staticmethod
    def _join(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    def per_eps(self, e: int) -> dict[str, Any]:
        """The record at eps number `e`, as plain JSON data."""
        return {
            "margin_clean": _plain(self._join(self.clean[e], np.float64)),
            "margin_first": _plain(self._join(self.first[e], np.float64)),
            "masked_batches": list(self.masked[e]),
            "decision": {k: self._join(self.decision[k][e], np.int8).tolist() for k in self.labels},
            "gradients": {
                k: self._join(self.gradients[k][e], np.int64).tolist() for k in self.labels
            },
            "queries": {k: self._join(self.queries[k][e], np.int64).tolist() for k in self.labels},
        }

    def to_state(self) -> dict[str, Any]:
        """Plain JSON data, keyed by ``repr(eps)``; `resume` reads it back."""
        return {repr(e): self.per_eps(i) for i, e in enumerate(self.eps)}

    def resume(self, saved: Any, n_samples: int) -> None:
        """The record `to_state` saved for `n_samples` finished samples (checked, not
        trusted: a `ValueError` naming what is wrong)."""
        if not isinstance(saved, Mapping) or sorted(saved) != sorted(map(repr, self.eps)):
            raise ValueError("tally.adaptive is not one entry per eps")
        for i, e in enumerate(self.eps):
            entry = saved[repr(e)]
            where = f"tally.adaptive[{e!r}]"
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where} is not an object")
            self.clean[i] = [_floats(entry.get("margin_clean"), n_samples, where)]
            self.first[i] = [_floats(entry.get("margin_first"), n_samples, where)]
            masked = entry.get("masked_batches")
            if not isinstance(masked, list) or not all(type(b) is int for b in masked):
                raise ValueError(f"{where}.masked_batches is not a list of batch indices")
            self.masked[i] = list(masked)
            for key, store, dtype in (
                ("decision", self.decision, np.int8),
                ("gradients", self.gradients, np.int64),
                ("queries", self.queries, np.int64),
            ):
                rows = entry.get(key)
                if not isinstance(rows, Mapping) or sorted(rows) != sorted(self.labels):
                    raise ValueError(f"{where}.{key} is not one entry per attack")
                for label in self.labels:
                    store[label][i] = [_ints(rows[label], n_samples, f"{where}.{key}", dtype)]

    def entries(self) -> dict[str, dict[str, Any]]:
        """Per attack label, what the report's ``suite`` entry carries as ``"adaptive"``:
        its rule, and per eps its decision, gradients and queries per sample, with the
        margins and masked batches in every entry's ``"evidence"``."""
        out = {}
        for k, (label, rule) in enumerate(zip(self.labels, self.rules, strict=True)):
            per = {}
            for i, e in enumerate(self.eps):
                record = self.per_eps(i)
                per[repr(e)] = {
                    "decision": record["decision"][label],
                    "gradients": record["gradients"][label],
                    "queries": record["queries"][label],
                    **(
                        {}
                        if k
                        else {
                            "margin_clean": record["margin_clean"],
                            "margin_first": record["margin_first"],
                            "masked_batches": record["masked_batches"],
                        }
                    ),
                }
            out[label] = {
                "rule": rule,
                "thresholds": {"near": NEAR, "stalled": STALLED, "masked_share": MASKED_SHARE},
                "decisions": {str(c): text for c, text in DECISIONS.items()},
                "eps": per,
            }
        return out


def _floats(values: Any, n: int, where: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(f"{where} margins are not one per sample")
    if not all(v is None or type(v) in (int, float) for v in values):
        raise ValueError(f"{where} margins are not numbers")
    return np.array([np.nan if v is None else v for v in values], np.float64)


def _ints(values: Any, n: int, where: str, dtype: Any) -> np.ndarray:
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(f"{where} is not one entry per sample")
    if not all(type(v) is int and v >= 0 for v in values):
        raise ValueError(f"{where} holds other than integers >= 0")
    return np.array(values, dtype)


class Policy:
    """The rules of a suite's members, applied batch by batch (see the module docstring).

    Args:
        rules: One rule per member, in cascade order (`RULE_NAMES`).
        labels: The members' row labels.
        eps: The eps values.
        threshold: The model's one-unit threshold (0.5 after a sigmoid, else 0).
    """

    def __init__(
        self, rules: Sequence[str], labels: Sequence[str], eps: Sequence[float], threshold=0.0
    ):
        unknown = [r for r in rules if r not in RULE_NAMES]
        if unknown:
            raise ValueError(f"unknown suite rules {unknown}; known: {list(RULE_NAMES)}")
        self.rules = list(rules)
        self.labels = list(labels)
        self.threshold = float(threshold)
        self.record = Record(labels, rules, eps)
        self._first = next(k for k, r in enumerate(self.rules) if r == "all")

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed state must have been written with: the rules and thresholds."""
        return {
            "rules": list(self.rules),
            "near": repr(NEAR),
            "stalled": repr(STALLED),
            "masked_share": repr(MASKED_SHARE),
        }

    # ------------------------------------------------------------ one batch
    def begin(self, batch: int, outputs: np.ndarray, truth: np.ndarray, correct: np.ndarray):
        """A new batch: its clean outputs and which samples are clean-correct."""
        self.batch = batch
        self.clean = np.where(correct, margins(outputs, truth, self.threshold), np.nan)
        self.truth = truth

    def begin_eps(self, e: int) -> None:
        """A new eps on this batch: nothing attacked yet."""
        n = len(self.truth)
        self.best = self.clean.copy()
        self.after_first = np.full(n, np.nan)
        self.decision = {k: np.zeros(n, np.int8) for k in self.labels}
        self.gradients = {k: np.zeros(n, np.int64) for k in self.labels}
        self.queries = {k: np.zeros(n, np.int64) for k in self.labels}
        self.masked = False

    def _kept(self, margin: np.ndarray) -> np.ndarray:
        """The share of the clean margin a sample keeps (NaN: not clean-correct)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return margin / self.clean

    def select(self, k: int, e: int, pool: np.ndarray) -> np.ndarray:
        """Of `pool` (the samples still robust the cascade would give member `k`), those
        its rule keeps; the others get their decision."""
        rule, label = self.rules[k], self.labels[k]
        chosen = pool.copy()
        if rule == "near":
            chosen &= self._kept(self.best) < NEAR
            self.decision[label][pool & ~chosen] = 2
        elif rule == "stalled":
            stalled = pool & (self._kept(self.after_first) >= STALLED)
            # where the first stage never ran on a sample (e.g. its target rule), no evidence
            self.masked = bool(pool.any()) and stalled.sum() >= MASKED_SHARE * pool.sum()
            chosen = pool.copy() if self.masked else stalled
            self.decision[label][pool & ~chosen] = 3
        self.decision[label][chosen] = 1
        return chosen

    def observe(self, k: int, chosen: np.ndarray, adv_outputs: np.ndarray, result: Any) -> None:
        """Member `k` ran on the samples `chosen` (indices) and returned `result` (its
        `AttackResult`), on which the model gave `adv_outputs`."""
        label = self.labels[k]
        found = margins(adv_outputs, self.truth[chosen], self.threshold)
        found = np.where(np.isnan(found), np.inf, found)
        self.best[chosen] = np.fmin(self.best[chosen], found)
        if k == self._first:
            self.after_first[chosen] = found
        queries = np.asarray(result.queries, np.int64)
        self.queries[label][chosen] = queries + 1  # + evaluate's check of the result
        self.gradients[label][chosen] = queries if int(result.gradients) > 0 else 0

    def end_eps(self, e: int) -> None:
        """This batch is done at eps number `e`: into the record."""
        record = self.record
        record.clean[e].append(self.clean)
        first = np.where(np.isinf(self.after_first), np.nan, self.after_first)
        record.first[e].append(first)
        for label in self.labels:
            record.decision[label][e].append(self.decision[label])
            record.gradients[label][e].append(self.gradients[label])
            record.queries[label][e].append(self.queries[label])
        if self.masked:
            record.masked[e].append(int(self.batch))
