"""A saved evaluation state, checked before it is trusted: `check_saved` compares it with
what `advgrad.evaluation.state.StateFile.write` writes for this run (every key with its JSON
type, counts within the sample count, outcome codes in range, batch sizes consistent) and
raises `Damaged`, naming the key path, for anything else.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from advgrad._validation import describe
from advgrad.outcomes import (
    CLEAN_MISCLASSIFIED,
    CLEAN_NON_FINITE,
    ROBUST,
    clean_correct,
    first_attack,
    non_finite,
)
from advgrad.report import curve_non_finite_problem

__all__ = ["MAX_COUNT", "Damaged", "check_saved"]

MAX_COUNT = 2**53
"""Counters in a state (samples, gradients, queries) are ints in [0, MAX_COUNT]: no run counts
further, and a float would no longer hold them exactly."""

_HEX = re.compile(r"[0-9a-f]{64}")
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "true or false",
    int: "an integer",
}


class Damaged(ValueError):
    """A saved state that is not what `StateFile.write` writes for this run: at key path
    `where` (``tally.outcomes['0.1']``), `what` is wrong."""

    def __init__(self, where: str, what: str):
        self.where = where
        self.what = what
        super().__init__(f"{where} {what}")


def _field(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _get(parent: dict, key: str, kind: type, where: str) -> Any:
    """``parent[key]``, which must be present and of JSON type `kind` (a bool is no int)."""
    path = _field(where, key)
    if key not in parent:
        raise Damaged(path, "is missing")
    value = parent[key]
    if type(value) is not kind:
        raise Damaged(path, f"is {describe(value)}, not {_JSON_TYPES[kind]}")
    return value


def _count(value: Any, path: str, high: int = MAX_COUNT, low: int = 0, why: str = "") -> int:
    """An int in [low, high] (`why`: the rule that bounds it, for the message)."""
    if type(value) is not int or not low <= value <= high:
        why = f" ({why})" if why else ""
        raise Damaged(path, f"is {describe(value)}, expected an integer in [{low}, {high}]{why}")
    return value


def _finite(value: Any) -> bool:
    """A finite JSON number (int or float, never a bool)."""
    if type(value) not in (int, float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _keyed(parent: dict, key: str, where: str, keys: list[str], what: str) -> dict:
    """``parent[key]``: an object with exactly the keys `keys` (`what` says what they are)."""
    value = _get(parent, key, dict, where)
    if sorted(value) != sorted(keys):
        path = _field(where, key)
        raise Damaged(path, f"has entries {describe(list(value))}, expected {what} {keys}")
    return value


def _codes(values: Any, path: str, n: int, low: int, high: int, meaning: str) -> np.ndarray:
    """A list of `n` ints in [low, high), as an int8 array."""
    if type(values) is not list:
        raise Damaged(path, f"is {describe(values)}, not an array")
    if len(values) != n:
        raise Damaged(path, f"has {len(values)} entries, expected one per sample (n_samples={n})")
    for value in values:
        if type(value) is not int or not low <= value < high:
            raise Damaged(path, f"holds {describe(value)}, expected {meaning}")
    return np.array(values, np.int8)


def check_saved(saved: dict, fingerprint: dict[str, Any], labels: list[str]) -> None:
    """Check that `saved` (format, version and fingerprint already checked) is what
    `StateFile.write` writes for a run with this `fingerprint` and these attack `labels`:
    every key present with its JSON type, counters bounded, and the outcomes, batches and
    counters consistent with each other.

    Raises:
        Damaged: Where and what is wrong.
    """
    complete = _get(saved, "complete", bool, "")
    done = _count(_get(saved, "batches_done", int, ""), "batches_done")
    _get(saved, "updated", str, "")
    tally = _get(saved, "tally", dict, "")

    n = _count(_get(tally, "n_samples", int, "tally"), "tally.n_samples")
    correct = _get(tally, "clean_correct", int, "tally")
    correct = _count(correct, "tally.clean_correct", high=n, why="at most n_samples")
    batch_size = fingerprint["batch_size"]
    sizes = _get(tally, "batch_sizes", list, "tally")
    for i, size in enumerate(sizes):
        path = f"tally.batch_sizes[{i}]"
        if i < len(sizes) - 1 and (type(size) is not int or size != batch_size):
            raise Damaged(
                path,
                f"is {describe(size)}, expected {batch_size} (every batch but "
                "the last holds batch_size samples)",
            )
        _count(size, path, batch_size, 1, "at most batch_size")
    if sum(sizes) != n:
        raise Damaged("tally.batch_sizes", f"add up to {sum(sizes)}, not n_samples={n}")
    hashes = _get(tally, "batch_hashes", list, "tally")
    if len(hashes) != len(sizes):
        raise Damaged(
            "tally.batch_hashes",
            f"has {len(hashes)} entries, expected one per batch ({len(sizes)} in batch_sizes)",
        )
    for i, digest in enumerate(hashes):
        if type(digest) is not str or not _HEX.fullmatch(digest):
            raise Damaged(f"tally.batch_hashes[{i}]", f"is {describe(digest)}, not 64 hex digits")
    if done != len(hashes):
        raise Damaged("batches_done", f"is {done}, but tally.batch_hashes has {len(hashes)}")
    if complete and not done:
        raise Damaged("complete", "is true, but no batch is finished")

    eps_keys = list(fingerprint["eps"])
    attacks = len(labels)
    outcomes = _keyed(tally, "outcomes", "tally", eps_keys, "one per eps")
    codes: dict[str, np.ndarray] = {}
    lowest = min(CLEAN_NON_FINITE, non_finite(attacks - 1))
    for key in eps_keys:
        path = f"tally.outcomes[{key!r}]"
        meaning = f"outcome codes in [{lowest}, {attacks}) ({attacks} attacks)"
        codes[key] = _codes(outcomes[key], path, n, lowest, attacks, meaning)
        misclassified = int(np.sum(~clean_correct(codes[key])))
        if misclassified != n - correct:
            raise Damaged(
                path,
                f"has {misclassified} clean-misclassified (or non-finite) samples, but "
                f"n_samples - clean_correct = {n - correct}",
            )
        for code in (CLEAN_MISCLASSIFIED, CLEAN_NON_FINITE):
            if not np.array_equal(codes[key] == code, codes[eps_keys[0]] == code):
                raise Damaged(
                    path,
                    f"differs from tally.outcomes[{eps_keys[0]!r}] in which "
                    f"samples have outcome {code} (fixed before any attack)",
                )

    # with individual=True, every finished batch records every attack alone at every eps
    individual = fingerprint["individual"] and done > 0
    alone = _keyed(tally, "attack_outcomes", "tally", labels, "one per attack")
    for label in labels:
        per_eps = alone[label]
        if type(per_eps) is not dict or sorted(per_eps) != (sorted(eps_keys) if individual else []):
            what = f"one entry per eps {eps_keys}" if individual else "no entries"
            path = f"tally.attack_outcomes[{label!r}]"
            raise Damaged(path, f"is {describe(per_eps)}, expected {what}")
    for key in eps_keys if individual else []:
        # the cascade is read off the attacks alone: the first attack that fooled a sample
        # (or gave a non-finite output)
        misclassified = ~clean_correct(codes[key])
        expected = np.full(n, ROBUST, np.int64)
        for k in reversed(range(attacks)):
            path = f"tally.attack_outcomes[{labels[k]!r}][{key!r}]"
            robust = _codes(alone[labels[k]][key], path, n, 0, 2, "0 (fooled) or 1 (robust)")
            robust = robust.astype(bool)
            if np.any(robust & misclassified):
                raise Damaged(path, "marks a clean-misclassified sample robust")
            expected[~robust & ~misclassified] = k
        given = np.where(misclassified, ROBUST, first_attack(codes[key]))
        if not np.array_equal(expected, given):
            i = int(np.flatnonzero(expected != given)[0])
            raise Damaged(
                f"tally.outcomes[{key!r}]",
                f"disagrees with tally.attack_outcomes at sample {i} (outcome {codes[key][i]}, "
                f"the attacks alone give {expected[i]})",
            )

    for name in ("gradients", "queries", "gradients_per_sample"):
        counters = _keyed(tally, name, "tally", labels, "one per attack")
        for label, value in counters.items():
            _count(value, f"tally.{name}[{label!r}]")
    timings = _keyed(tally, "timings", "tally", labels, "one per attack")
    for label, value in timings.items():
        if not _finite(value) or value < 0:
            path = f"tally.timings[{label!r}]"
            raise Damaged(path, f"is {describe(value)}, expected a finite number >= 0")
    loss = _keyed(tally, "loss", "tally", labels, "one per attack")
    for label, rows in loss.items():
        path = f"tally.loss[{label!r}]"
        if type(rows) is not list or len(rows) != len(eps_keys):
            raise Damaged(path, f"is {describe(rows)}, expected one row per eps ({len(eps_keys)})")
        for e, row in enumerate(rows):
            fine = type(row) is list and len(row) == 3 and all(_finite(v) for v in row)
            if not fine or not 0 <= row[2] <= n:
                raise Damaged(
                    f"{path}[{e}]",
                    f"is {describe(row)}, expected 3 finite numbers [start loss sum, final loss "
                    f"sum, samples in [0, {n}]]",
                )
    if "curve" in fingerprint:
        _check_curve(tally, fingerprint["curve"], n, correct)
    if "targeted" in tally:  # absent from states written before it was counted
        targeted = _keyed(tally, "targeted", "tally", labels, "one per attack")
        for label, rows in targeted.items():
            path = f"tally.targeted[{label!r}]"
            if rows is None:
                continue
            if type(rows) is not list or len(rows) != len(eps_keys):
                expected = f"None or one row per eps ({len(eps_keys)})"
                raise Damaged(path, f"is {describe(rows)}, expected {expected}")
            for e, row in enumerate(rows):
                fine = type(row) is list and len(row) == 2 and all(type(v) is int for v in row)
                if not fine or not 0 <= row[0] <= row[1] <= n:
                    raise Damaged(
                        f"{path}[{e}]",
                        f"is {describe(row)}, expected [samples that reached their target, "
                        f"samples attacked] with 0 <= reached <= attacked <= {n}",
                    )


def _check_curve(tally: dict, labels: list[str], n: int, correct: int) -> None:
    """``tally.curve`` of an ``eps="curve"`` run: n minimal norms (>= 0, inf where none was
    found, 0 exactly for the clean-misclassified samples) and counters per curve attack."""
    curve = _get(tally, "curve", dict, "tally")
    norms = _get(curve, "norms", list, "tally.curve")
    fine = len(norms) == n and all(
        v is None or (type(v) in (int, float) and not math.isnan(v) and v >= 0) for v in norms
    )
    if not fine:
        raise Damaged(
            "tally.curve.norms", f"is {describe(norms)}, expected {n} numbers >= 0 (null: inf)"
        )
    if sum(v == 0 for v in norms) < n - correct:
        raise Damaged("tally.curve.norms", "has fewer zeros than clean-misclassified samples")
    if "non_finite" in curve:  # absent from states written before it was recorded
        values = [math.inf if v is None else v for v in norms]
        problem = curve_non_finite_problem(curve["non_finite"], values)
        if problem is not None:
            raise Damaged("tally.curve.non_finite", problem.lstrip())
    for label, value in _keyed(curve, "gradients", "tally.curve", labels, "one per attack").items():
        _count(value, f"tally.curve.gradients[{label!r}]")
    for label, value in _keyed(curve, "seconds", "tally.curve", labels, "one per attack").items():
        if not _finite(value) or value < 0:
            path = f"tally.curve.seconds[{label!r}]"
            raise Damaged(path, f"is {describe(value)}, expected a finite number >= 0")


# --------------------------------------------------------------------- state
