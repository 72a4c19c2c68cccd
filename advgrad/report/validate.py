"""Reading a report back: every field checked, every stored figure derived again.

`build` turns what `Report.to_dict` wrote (JSON, read back) into a `Report` only if each
field has the right type and range (accuracies in [0, 1], outcome codes of the suite's
attacks, eps keys among ``eps``...) and every figure the report stores (accuracies,
targeted counts, the curve's zeros, the ``non_finite_outputs`` flag) is what its per-sample
outcomes give. Anything else is one ``ArgumentError`` naming the field, what was expected,
what it holds, and the fix.

>>> curve_non_finite_problem({"clean": [0], "attacked": [1]}, [0.0, 0.5]) is None
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from advgrad._validation import (
    ArgumentError,
    check_bool,
    check_eps,
    check_int,
    check_number,
    describe,
)
from advgrad.outcomes import (
    CLEAN_MISCLASSIFIED,
    CLEAN_NON_FINITE,
    ROBUST,
    clean_correct,
    first_attack,
)
from advgrad.report.stats import eps_key

if TYPE_CHECKING:
    from advgrad.report.core import Report

__all__ = ["build", "curve_non_finite_problem"]


def build(cls: type[Report], data: Any, argument: str, origin: str | None = None) -> Report:
    """``cls(**fields)`` of the report `data` (what `Report.to_dict` writes), checked: every
    field of the right type and range, every stored figure what the outcomes give.

    Raises:
        ValueError: An ``ArgumentError`` for `argument` saying what is wrong, where (in the
            file `origin` when given).
    """
    try:
        report = cls(**_validated(data))
        _derived(report)
    except _Invalid as err:
        where = f" ({origin})" if origin else ""
        raise ArgumentError(
            argument,
            f"not a valid report{where}: {err}.",
            expected="a report (from Report.to_dict)",
            received=str(err),
        ) from None
    return report


class _Invalid(Exception):
    """One thing wrong with a report's data, as ``where: expected ..., received ...``."""


def _bad(where: str, expected: str, value: Any) -> _Invalid:
    return _Invalid(f"{where}: expected {expected}, received {describe(value)}")


def _checked(where: str, check: Callable[[str, Any], Any], value: Any) -> Any:
    """``check(where, value)`` (a shared check), its ArgumentError as an `_Invalid`."""
    try:
        return check(where, value)
    except ArgumentError as err:
        raise _bad(where, err.expected or "a valid value", value) from None


def _fraction(where: str, value: Any) -> float:
    return _checked(where, lambda w, v: check_number(w, v, low=0.0, high=1.0), value)


def _count(where: str, value: Any) -> int:
    return _checked(where, lambda w, v: check_int(w, v, low=0), value)


def _nonnegative(where: str, value: Any) -> float:
    return _checked(where, lambda w, v: check_number(w, v, low=0.0), value)


def _mapping(where: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise _bad(where, "a mapping", value)
    return value


def _strings(where: str, value: Any) -> dict[str, str]:
    ok = isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )
    if not ok:
        raise _bad(where, "a mapping of strings", value)
    return dict(value)


def _sub(where: str, key: Any) -> str:
    return f"{where}[{describe(key)}]"


def _eps_of(where: str, key: Any) -> float:
    """An eps key: a finite number >= 0, or its text (JSON keys are strings)."""
    value = key
    if isinstance(key, str):
        try:
            value = float(key)
        except ValueError:
            value = None
    try:
        return check_eps(value, where)
    except ArgumentError:
        raise _bad(where, "eps keys (finite numbers >= 0)", key) from None


def _by_eps(
    where: str, value: Any, item: Callable[[str, Any], Any], eps: set[float] | None
) -> dict[float, Any]:
    """``{eps: item}``: eps keys among `eps` (when given), each item checked by `item`."""
    result: dict[float, Any] = {}
    for key, entry in _mapping(where, value).items():
        e = _eps_of(where, key)
        if e in result:
            raise _Invalid(f"{where}: duplicate eps {e!r}")
        if eps is not None and e not in eps:
            raise _Invalid(f"{where}: eps {e!r} not in eps {describe(sorted(eps))}")
        result[e] = item(_sub(where, key), entry)
    return result


def _by_attack(
    where: str, value: Any, item: Callable[[str, Any], Any], attacks: list[str]
) -> dict[str, Any]:
    """``{attack label: item}``: labels among `attacks`, each item checked by `item`."""
    result = {}
    for key, entry in _mapping(where, value).items():
        if key not in attacks:
            raise _Invalid(
                f"{where}: unknown attack {describe(key)} (attacks: {describe(attacks)})"
            )
        result[key] = item(_sub(where, key), entry)
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _codes(n: int, attacks: int) -> Callable[[str, Any], np.ndarray]:
    """Checker of an outcomes array: `n` int codes from ``-3 - attacks`` to ``attacks - 1``."""
    lowest = CLEAN_NON_FINITE - attacks
    expected = f"{n} codes from {lowest} to {attacks - 1} (ints)"

    def check(where: str, value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray):
            ok = value.ndim == 1 and value.dtype.kind in "iu" and len(value) == n
            low, high = (value.min(), value.max()) if ok and n else (0, 0)
        else:
            ok = isinstance(value, list) and len(value) == n and all(map(_is_int, value))
            low, high = (min(value), max(value)) if ok and n else (0, 0)
        ok = ok and (n == 0 or (low >= lowest and high < attacks))
        if not ok:
            raise _bad(where, expected, value)
        return np.asarray(value, np.int8)

    return check


def _bools(n: int) -> Callable[[str, Any], np.ndarray]:
    """Checker of a per-attack outcomes array: `n` bools."""

    def check(where: str, value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray):
            ok = value.ndim == 1 and value.dtype == bool and len(value) == n
        else:
            ok = isinstance(value, list) and len(value) == n
            ok = ok and all(isinstance(v, (bool, np.bool_)) for v in value)
        if not ok:
            raise _bad(where, f"{n} bools", value)
        return np.asarray(value, bool)

    return check


def _labels(n: int, value: Any) -> list[int] | None:
    """Per-sample class ids: None (not recorded), or `n` ints >= 0."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        ok = value.ndim == 1 and value.dtype.kind in "iu" and len(value) == n
    else:
        ok = isinstance(value, list) and len(value) == n and all(map(_is_int, value))
    if not (ok and (n == 0 or min(value) >= 0)):
        raise _bad("labels", f"None or {n} class ids (ints >= 0)", value)
    return [int(v) for v in value]


def _loss_pair(where: str, value: Any) -> list[float]:
    """[mean loss at the start, mean final loss]: two real numbers (losses may overflow), or
    None (a non-finite loss, written as null: read as NaN)."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    ok = ok and all(
        v is None or (isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)))
        for v in value
    )
    if not ok:
        raise _bad(where, "[start loss, final loss] (two numbers)", value)
    return [math.nan if v is None else float(v) for v in value]


def _reached(n: int) -> Callable[[str, Any], list[int]]:
    """Checker of a targeted-success pair: [reached, attacked], 0 <= reached <= attacked <= n."""

    def check(where: str, value: Any) -> list[int]:
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_int, value))
        if not (ok and 0 <= value[0] <= value[1] <= n):
            raise _bad(where, f"[reached, attacked] with 0 <= reached <= attacked <= {n}", value)
        return [int(v) for v in value]

    return check


def _validated(data: Any) -> dict[str, Any]:
    """The `Report` fields of `data` (what `Report.to_dict` writes), checked and converted.

    Raises:
        _Invalid: Naming the first field found wrong, where, and what it holds.
    """
    if not isinstance(data, Mapping):
        raise _bad("report", "a mapping (from Report.to_dict)", data)
    version = data.get("version", 1)
    if not (_is_int(version) and version == 1):
        raise _bad("version", "1", version)
    for key in ("clean_accuracy", "robust_accuracy", "per_attack", "outcomes", "n_samples"):
        if key not in data:
            raise _Invalid(f"missing key {key!r}")
    get = data.get
    n = _count("n_samples", data["n_samples"])
    attacks = get("attacks", [])
    if not (
        isinstance(attacks, list)
        and all(isinstance(a, str) for a in attacks)
        and len(set(attacks)) == len(attacks)
    ):
        raise _bad("attacks", "a list of distinct strings (attack labels)", attacks)
    eps_list = get("eps", [])
    if not isinstance(eps_list, list):
        raise _bad("eps", "a list of finite numbers >= 0", eps_list)
    eps = [_checked(f"eps[{i}]", lambda w, v: check_eps(v, w), e) for i, e in enumerate(eps_list)]
    if len(set(eps)) != len(eps):
        raise _bad("eps", "distinct eps values", eps_list)
    robust = _by_eps("robust_accuracy", data["robust_accuracy"], _fraction, set(eps) or None)
    known = set(eps or robust)

    def by_eps(item: Callable[[str, Any], Any]) -> Callable[[str, Any], dict[float, Any]]:
        return lambda where, value: _by_eps(where, value, item, known)

    values: dict[str, Any] = {
        "clean_accuracy": _fraction("clean_accuracy", data["clean_accuracy"]),
        "robust_accuracy": robust,
        "per_attack": _by_attack("per_attack", data["per_attack"], by_eps(_fraction), attacks),
        "outcomes": _by_eps("outcomes", data["outcomes"], _codes(n, len(attacks)), known),
        "n_samples": n,
        "attacks": list(attacks),
        "attack_outcomes": _by_attack(
            "attack_outcomes", get("attack_outcomes", {}), by_eps(_bools(n)), attacks
        ),
        "eps": eps,
        "gradients": _by_attack("gradients", get("gradients", {}), _count, attacks),
        "queries": _by_attack("queries", get("queries", {}), _count, attacks),
        "gradients_per_sample": _by_attack(
            "gradients_per_sample", get("gradients_per_sample", {}), _count, attacks
        ),
        "timings": _by_attack("timings", get("timings", {}), _nonnegative, attacks),
        "loss_trend": _by_attack("loss_trend", get("loss_trend", {}), by_eps(_loss_pair), attacks),
        "targeted_success": _by_attack(
            "targeted_success", get("targeted_success", {}), by_eps(_reached(n)), attacks
        ),
        "seed": _count("seed", get("seed", 0)),
        "batch_size": _checked(
            "batch_size", lambda w, v: check_int(w, v, low=1, optional=True), get("batch_size")
        ),
        "individual": _checked("individual", check_bool, get("individual", True)),
        "seconds": _nonnegative("seconds", get("seconds", 0.0)),
        "versions": _strings("versions", get("versions", {})),
        "model": dict(_mapping("model", get("model", {}))),
        "data": dict(_mapping("data", get("data", {}))),
        "labels": _labels(n, get("labels")),
        "curve": _curve(n, get("curve")),
        "distribute": _distribute(get("distribute")),
    }
    suite = get("suite", [])
    if not isinstance(suite, list) or not all(isinstance(c, Mapping) for c in suite):
        raise _bad("suite", "a list of mappings (the attacks' get_config())", suite)
    values["suite"] = [_bounds_back(c) for c in suite]
    flags = get("flags", [])
    if not isinstance(flags, list):
        raise _bad("flags", "a list of mappings of strings", flags)
    values["flags"] = [_strings(f"flags[{i}]", f) for i, f in enumerate(flags)]
    return values


_FIX = "restore the file, or run the evaluation again"


def _derived(report: Report) -> None:
    """Every figure `report` stores is what its per-sample outcomes give: the outcomes agree
    with each other first, then each figure with them.

    Raises:
        _Invalid: Naming the first field that disagrees, and the fix.
    """
    n, eps = report.n_samples, report.eps
    for e in eps:
        if e not in report.outcomes:
            raise _Invalid(
                f"robust_accuracy[{eps_key(e)!r}]: no per-sample outcomes (outcomes"
                f"[{eps_key(e)!r}]) to derive it from; {_FIX}"
            )
        if e not in report.robust_accuracy:
            raise _Invalid(f"robust_accuracy: no figure for eps {eps_key(e)}; {_FIX}")
    codes = {e: np.asarray(report.outcomes[e], np.int64) for e in eps}
    correct = _samples_agree(report, codes)

    def differs(where: str, stored: float, count: int, what: str) -> None:
        derived = count / n if n else math.nan
        if not math.isclose(stored, derived, rel_tol=0.0, abs_tol=1e-9):
            raise _Invalid(
                f"{where} is {describe(stored)}, but the per-sample outcomes give "
                f"{derived!r} ({count} of {n} samples {what}); {_FIX}"
            )

    differs("clean_accuracy", report.clean_accuracy, int(np.sum(correct)), "clean-correct")
    for e in eps:
        key = eps_key(e)
        robust = int(np.sum(codes[e] == ROBUST))
        differs(
            f"robust_accuracy[{key!r}]", report.robust_accuracy[e], robust, f"robust at eps={key}"
        )
    for label in report.attacks:
        alone = report.attack_outcomes.get(label, {})
        for e, stored in report.per_attack.get(label, {}).items():
            where = f"per_attack[{label!r}][{eps_key(e)!r}]"
            if e not in alone:
                raise _Invalid(
                    f"{where}: no per-sample outcomes (attack_outcomes[{label!r}]"
                    f"[{eps_key(e)!r}]) to derive it from; {_FIX}"
                )
            differs(where, stored, int(np.sum(alone[e])), f"robust against {label} alone")
        for e, (reached, attacked) in report.targeted_success.get(label, {}).items():
            fooled = correct & (codes[e] != ROBUST)
            if e in alone:
                fooled &= ~np.asarray(alone[e], bool)
            if reached > int(np.sum(fooled)) or attacked > int(np.sum(correct)):
                raise _Invalid(
                    f"targeted_success[{label!r}][{eps_key(e)!r}] is "
                    f"{describe([reached, attacked])}, but the per-sample outcomes give at most "
                    f"{int(np.sum(fooled))} samples fooled by {label} of "
                    f"{int(np.sum(correct))} clean-correct; {_FIX}"
                )
    stored_n = report.data.get("n_samples", n)
    if stored_n != n:
        raise _Invalid(
            f"data['n_samples'] is {describe(stored_n)}, but the per-sample outcomes hold {n} "
            f"samples; {_FIX}"
        )
    _flag_agrees(report)


def _samples_agree(report: Report, codes: dict[float, np.ndarray]) -> np.ndarray:
    """Check that the per-sample outcomes agree with each other (every eps, each attack
    alone, the curve's zeros); returns which samples are clean-correct."""
    eps = report.eps
    if not eps:
        if report.curve is None:
            raise _Invalid(f"clean_accuracy: no per-sample outcomes to derive it from; {_FIX}")
        return np.asarray(report.curve["norms"], np.float64) > 0
    first = codes[eps[0]]
    for e in eps[1:]:
        for code in (CLEAN_MISCLASSIFIED, CLEAN_NON_FINITE):
            if not np.array_equal(codes[e] == code, first == code):
                raise _Invalid(
                    f"outcomes[{eps_key(e)!r}] differs from outcomes[{eps_key(eps[0])!r}] "
                    f"in which samples have outcome {code} (fixed before any attack); {_FIX}"
                )
    for k, label in enumerate(report.attacks):
        for e, robust in report.attack_outcomes.get(label, {}).items():
            _alone_agrees(label, k, e, codes[e], np.asarray(robust, bool))
    correct = clean_correct(first)
    found = (report.curve or {}).get("non_finite")
    if found is not None and found["clean"] != np.flatnonzero(first == CLEAN_NON_FINITE).tolist():
        raise _Invalid(
            f"curve.non_finite['clean'] is {describe(found['clean'])}, but the per-sample "
            f"outcomes give other samples with outcome {CLEAN_NON_FINITE}; {_FIX}"
        )
    if report.curve is not None:
        norms = np.asarray(report.curve["norms"], np.float64)
        wrong = np.flatnonzero(~correct & (norms != 0))
        if wrong.size:
            i = int(wrong[0])
            raise _Invalid(
                f"curve.norms[{i}] is {float(norms[i])!r}, but the per-sample outcomes say "
                f"sample {i} is not clean-correct (its minimal norm is 0); {_FIX}"
            )
    return correct


def _alone_agrees(label: str, k: int, e: float, codes: np.ndarray, robust: np.ndarray) -> None:
    """Attack `k` alone is robust where the cascade is, or where a later attack first broke
    the sample, and not robust where it first did or the clean prediction failed."""
    first = first_attack(codes)
    must = (codes == ROBUST) | (first > k)
    never = ~clean_correct(codes) | (first == k)
    wrong = np.flatnonzero((must & ~robust) | (never & robust))
    if wrong.size:
        i = int(wrong[0])
        raise _Invalid(
            f"outcomes[{eps_key(e)!r}] disagrees with attack_outcomes[{label!r}]"
            f"[{eps_key(e)!r}] at sample {i} (outcome {int(codes[i])}; robust against "
            f"{label} alone: {bool(robust[i])}); these per-sample outcomes were changed: {_FIX}"
        )


def _flag_agrees(report: Report) -> None:
    """The ``non_finite_outputs`` flag says what the outcomes give, and is there when they
    hold non-finite outputs."""
    message = report.non_finite_message()
    found = [i for i, f in enumerate(report.flags) if f.get("code") == "non_finite_outputs"]
    if message is not None and not found:
        raise _Invalid(
            "flags: no non_finite_outputs flag, but the per-sample outcomes hold non-finite "
            f"model outputs; {_FIX}"
        )
    for i in found:
        stored = report.flags[i].get("message")
        if stored != message:
            raise _Invalid(
                f"flags[{i}].message is {describe(stored)}, but the per-sample outcomes give "
                f"{describe(message)}; {_FIX}"
            )


def _curve(n: int, value: Any) -> dict[str, Any] | None:
    """A report's ``curve``: None, or the minimal norms of `n` samples (each >= 0 or inf),
    their norm's name and the attacks that found them."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _bad("curve", "None or a mapping (norm, attacks, norms)", value)
    norms = value.get("norms")
    ok = isinstance(norms, list) and len(norms) == n
    if ok:  # null: none found (inf, which JSON cannot hold)
        norms = [math.inf if v is None else v for v in norms]
    ok = ok and all(_is_real(v) and not math.isnan(v) and v >= 0 for v in norms)
    if not ok:
        raise _bad("curve.norms", f"{n} numbers >= 0 (null or inf where none was found)", norms)
    if not isinstance(value.get("norm"), str):
        raise _bad("curve.norm", "a norm name", value.get("norm"))
    attacks = value.get("attacks", [])
    if not isinstance(attacks, list) or not all(isinstance(a, str) for a in attacks):
        raise _bad("curve.attacks", "a list of attack labels", attacks)
    result = {**value, "norms": [float(v) for v in norms], "attacks": list(attacks)}
    if "non_finite" in value:  # absent from reports written before it was recorded
        problem = curve_non_finite_problem(value["non_finite"], result["norms"])
        if problem is not None:
            raise _Invalid(f"curve.non_finite{problem}")
    return result


def curve_non_finite_problem(value: Any, norms: list[float]) -> str | None:
    """What is wrong with a curve's ``non_finite`` record, given its minimal `norms`, or
    None: ``{"clean": [...], "attacked": [...]}``, ascending distinct sample indices; a
    clean non-finite output has minimal norm 0, an attacked one a finite norm > 0.

    >>> curve_non_finite_problem({"clean": [0], "attacked": [1]}, [0.0, 0.5]) is None
    True
    >>> curve_non_finite_problem({"clean": [1], "attacked": []}, [0.0, 0.5])
    "['clean'][0] is sample 1, whose minimal norm is 0.5, expected 0"
    """
    if not isinstance(value, Mapping) or set(value) != {"clean", "attacked"}:
        return f" is {describe(value)}, expected {{'clean': [...], 'attacked': [...]}}"
    n = len(norms)
    for key, wanted, ok in (
        ("clean", "0", lambda v: v == 0),
        ("attacked", "finite and > 0", lambda v: 0 < v < math.inf),
    ):
        indices = value[key]
        fine = isinstance(indices, list) and all(map(_is_int, indices))
        if not (fine and all(0 <= i < n for i in indices) and indices == sorted(set(indices))):
            return (
                f"[{key!r}] is {describe(indices)}, expected ascending sample indices in [0, {n})"
            )
        for j, i in enumerate(indices):
            if not ok(norms[i]):
                return (
                    f"[{key!r}][{j}] is sample {i}, whose minimal norm is {norms[i]!r}, "
                    f"expected {wanted}"
                )
    return None


def _distribute(value: Any) -> dict[str, Any] | None:
    """A report's ``distribute``: None, or the strategy's name, replicas and devices."""
    if value is None:
        return None
    expected = "None or {'strategy': name, 'replicas': int >= 1, 'devices': [names]}"
    if not isinstance(value, Mapping) or not isinstance(value.get("strategy"), str):
        raise _bad("distribute", expected, value)
    replicas = value.get("replicas", 1)
    devices = value.get("devices", [])
    ok = _is_int(replicas) and replicas >= 1 and isinstance(devices, list)
    if not (ok and all(isinstance(d, str) for d in devices)):
        raise _bad("distribute", expected, value)
    return dict(value)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bounds_back(value: Any) -> Any:
    """A suite config as written, with each bound's None (written for inf) back to -inf for
    a low bound and inf for a high one."""
    if isinstance(value, list):
        return [_bounds_back(v) for v in value]
    if not isinstance(value, Mapping):
        return value
    result = {k: _bounds_back(v) for k, v in value.items()}
    bounds = result.get("bounds")
    pair = None
    if isinstance(bounds, list) and len(bounds) == 2:
        pair = bounds
    elif isinstance(bounds, Mapping) and set(bounds) == {"low", "high"}:
        pair = [bounds["low"], bounds["high"]]
    if pair is not None:
        low, high = (_none_to(v, sign) for v, sign in zip(pair, (-1, 1), strict=True))
        result["bounds"] = [low, high] if isinstance(bounds, list) else {"low": low, "high": high}
    return result


def _none_to(value: Any, sign: int) -> Any:
    if value is None:
        return sign * math.inf
    if isinstance(value, list):
        return [_none_to(v, sign) for v in value]
    return value
