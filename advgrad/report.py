"""Robustness reports: what `advgrad.evaluate` measured, as JSON, Markdown and plots.

A `Report` holds the clean accuracy, the worst-case (cascade) robust accuracy per eps, each
attack's own robust accuracy, the per-sample outcomes, gradient/query counts, timings, the
seeds and settings that produced them, library versions and the sanity flags. It is plain
data: `to_json` / `Report.from_json` round-trip it, `to_markdown` renders the table a paper
would print (with 95% Wilson intervals, `Report.interval`, and a per-class table,
`Report.per_class`, when the labels are known), `to_csv` exports the per-sample outcomes, and
`save_plots` draws robust accuracy against eps (matplotlib).

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

import csv
import dataclasses
import io
import json
import math
import numbers
import os
import pathlib
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from advgrad._io import FileTooLargeError, NotRegularFileError, atomic_write, read_regular
from advgrad._validation import (
    ArgumentError,
    FlaggedWarning,
    check_bool,
    check_eps,
    check_int,
    check_number,
    describe,
    invalid,
)

__all__ = [
    "CASCADE",
    "FlaggedWarning",  # defined in advgrad._validation: attacks raise it too
    "Report",
    "clean_correct",
    "curve_non_finite_problem",
    "first_attack",
    "non_finite",
]

CASCADE = "worst case (cascade)"
"""Row label of the worst case over the whole suite in tables and plots."""

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


_REPORT_LIMIT = 256 << 20
"""The largest report file `Report.from_json` reads, in bytes (256 MiB: reports hold
per-sample outcomes)."""

_EPS_KEYED = ("robust_accuracy", "outcomes")
_NESTED_EPS_KEYED = ("per_attack", "attack_outcomes", "loss_trend", "targeted_success")
_ARRAYS = ("outcomes", "attack_outcomes")
_NORM_NAMES = {"linf": "Linf", "inf": "Linf", "l2": "L2", "2": "L2", "l1": "L1", "1": "L1"}
"""How the eps axis of the plots names a norm of the suite's configs."""


@dataclasses.dataclass
class Report:
    """The result of a robustness evaluation (see `advgrad.evaluate`).

    Accuracies are fractions of all ``n_samples`` evaluated samples (clean-misclassified
    samples count as non-robust at every eps).

    Attributes:
        clean_accuracy: Accuracy on the clean inputs.
        robust_accuracy: ``{eps: accuracy}`` under the worst case over the suite: a sample
            counts as robust only if every attack failed on it.
        per_attack: ``{attack label: {eps: accuracy}}``: each attack run alone on every
            clean-correct sample (empty when evaluated with ``individual=False``).
            Tables and plots read accuracies off the outcomes (`robust_fraction`).
        outcomes: ``{eps: int8 array [n_samples]}``: for each sample the index (into
            ``attacks``) of the first attack that fooled it, ``-1`` if robust, ``-2`` if
            the clean input is misclassified, ``-3`` if the model's output on it is not
            finite, ``-4 - k`` (`non_finite`) if attack ``k`` first left it non-robust with
            an input whose output is not finite (`OUTCOME_CODES`).
        n_samples: Number of evaluated samples.
        attacks: Attack labels in suite order (the attack's name, with ``#2``, ``#3``... when
            a name repeats).
        attack_outcomes: ``{attack label: {eps: bool array [n_samples]}}``: True where the
            sample is robust against that attack alone (empty with ``individual=False``).
        suite: ``get_config()`` of every attack, in suite order.
        eps: The eps values, ascending.
        gradients: ``{attack label: gradient evaluations}``, summed over samples.
        queries: ``{attack label: forward passes}``, summed over samples: the attack's
            own (its ``AttackResult.queries``; one per gradient evaluation for a gradient
            attack) plus the one `evaluate` spends checking each returned adversarial.
        gradients_per_sample: ``{attack label: gradient evaluations per attacked sample}``
            as the attack reported them (1 for single-step attacks, 0 for gradient-free).
        timings: ``{attack label: seconds}`` spent in the attack and its check.
        loss_trend: ``{attack label: {eps: [mean loss at the start, mean final loss]}}``
            from the attacks' ``loss_trace`` (for the "loss does not increase" check).
        targeted_success: ``{attack label: {eps: [reached, attacked]}}`` for the targeted
            attacks: how many of the samples each was run on it moved to their target class
            (`targeted_rate` gives the fraction). Robust accuracy counts any misclassification.
        seed: The seed every per-batch attack seed was derived from.
        batch_size: Samples per batch.
        individual: Whether every attack also ran alone on every clean-correct sample.
        seconds: Wall-clock seconds of the whole evaluation (this process's share when it
            was resumed).
        versions: Library versions (advgrad, tensorflow, keras, numpy, python).
        flags: Sanity flags, dicts ``{"code", "message", "advice"}`` (see `advgrad.sanity`).
        model: Description of the model: name, class, parameter count, weights hash.
        data: Description of the data: sample count and content hash.
        labels: Each sample's class id (ints >= 0, ``n_samples`` of them), for `per_class`;
            None when unknown (reports written before labels were recorded). `evaluate`
            fills it with the true labels of the evaluated samples, in order.
        curve: With ``evaluate(..., eps="curve")``: the whole robustness curve from the
            minimal-norm attacks, ``{"norm", "attacks", "norms", "gradients", "seconds"}``:
            ``norms`` holds each sample's smallest adversarial perturbation found (0 for a
            clean-misclassified sample, inf where none was found), and ``non_finite``:
            ``{"clean": [...], "attacked": [...]}``, the samples whose model output was not
            finite on the clean input (norm 0) or on the input that set their minimal norm
            (`curve_non_finite_problem` states the rules); `curve_accuracy` reads the robust
            accuracy off it at any eps. None otherwise.
        distribute: How the attacks ran: ``{"strategy", "replicas", "devices"}``, the
            `tf.distribute` strategy's class name (``"none"``: the default device), its
            replicas in sync and their devices; None in reports written before it was
            recorded.
        adversarial: Only in memory, with ``evaluate(..., return_adversarial=True)``:
            ``{eps: {"index", "x", "x_adv", "attack", "label", "predicted"}}`` for the fooled
            samples (``x`` and ``x_adv`` laid out like the model's inputs). Not saved to JSON.
    """

    clean_accuracy: float
    robust_accuracy: dict[float, float]
    per_attack: dict[str, dict[float, float]]
    outcomes: dict[float, np.ndarray]
    n_samples: int
    attacks: list[str] = dataclasses.field(default_factory=list)
    attack_outcomes: dict[str, dict[float, np.ndarray]] = dataclasses.field(default_factory=dict)
    suite: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    eps: list[float] = dataclasses.field(default_factory=list)
    gradients: dict[str, int] = dataclasses.field(default_factory=dict)
    queries: dict[str, int] = dataclasses.field(default_factory=dict)
    gradients_per_sample: dict[str, int] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    loss_trend: dict[str, dict[float, list[float]]] = dataclasses.field(default_factory=dict)
    targeted_success: dict[str, dict[float, list[int]]] = dataclasses.field(default_factory=dict)
    seed: int = 0
    batch_size: int | None = None
    individual: bool = True
    seconds: float = 0.0
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    flags: list[dict[str, str]] = dataclasses.field(default_factory=list)
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    labels: list[int] | None = None
    curve: dict[str, Any] | None = None
    distribute: dict[str, Any] | None = None
    adversarial: dict[float, dict[str, Any]] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.eps:
            self.eps = sorted(self.robust_accuracy)
        if self.labels is not None:
            self.labels = [int(v) for v in np.asarray(self.labels).reshape(-1)]

    # --------------------------------------------------------------- queries
    def curve_accuracy(self, eps: Any = None) -> Any:
        """Robust accuracy read off the minimal norms of ``curve``: the share of samples
        whose smallest adversarial perturbation is larger than eps.

        Args:
            eps: A number (-> a float), a list of numbers (-> ``{eps: accuracy}``), or None
                (default): the fixed eps of the report (``{eps: accuracy}``).

        Raises:
            ValueError: An ``ArgumentError`` if the report has no curve.

        >>> r = Report(0.75, {}, {}, {}, 4, [], curve={"norm": "l2", "norms": [0.5, 1.0, 2.0, 0.0]})
        >>> r.curve_accuracy(0.5), r.curve_accuracy([0.0, 1.5])
        (0.5, {0.0: 0.75, 1.5: 0.25})
        """
        if not self.curve:
            raise invalid("curve", "a report from evaluate(..., eps='curve')", None)
        norms = np.asarray(self.curve["norms"], np.float64)

        def at(e: float) -> float:
            return float(np.mean(norms > check_eps(e))) if norms.size else math.nan

        if eps is None:
            return {e: at(e) for e in self.eps}
        if isinstance(eps, (list, tuple, np.ndarray)):
            return {float(e): at(e) for e in eps}
        return at(eps)

    def curve_points(self) -> tuple[list[float], list[float]]:
        """The curve as a step function: eps values (0, then each distinct finite minimal
        norm) and the robust accuracy from each on (until the next).

        >>> r = Report(1.0, {}, {}, {}, 2, [], curve={"norm": "l2", "norms": [0.5, 1.0]})
        >>> r.curve_points()
        ([0.0, 0.5, 1.0], [1.0, 0.5, 0.0])
        """
        norms = np.asarray((self.curve or {}).get("norms", []), np.float64)
        xs = sorted({0.0, *norms[np.isfinite(norms)].tolist()})
        return xs, [float(np.mean(norms > e)) if norms.size else math.nan for e in xs]

    def cumulative(self) -> dict[str, dict[float, float]]:
        """Robust accuracy after each attack of the cascade (AutoAttack's running numbers).

        Returns:
            ``{attack label: {eps: accuracy}}``: the fraction of samples no attack up to and
            including that one fooled; the last entry equals ``robust_accuracy``.

        >>> import numpy as np
        >>> r = Report(0.75, {0.1: 0.25}, {}, {0.1: np.array([0, 1, -1, -2])}, 4, ["a", "b"])
        >>> r.cumulative()
        {'a': {0.1: 0.5}, 'b': {0.1: 0.25}}
        """
        result: dict[str, dict[float, float]] = {}
        for index, label in enumerate(self.attacks):
            result[label] = {}
            for e in self.eps:
                codes = np.asarray(self.outcomes[e])
                alive = (codes == ROBUST) | (first_attack(codes) > index)
                result[label][e] = float(np.mean(alive)) if codes.size else math.nan
        return result

    def robust_fraction(self, eps: float, attack: str | None = None) -> float | None:
        """Robust accuracy at `eps` (worst case, or `attack` alone), read off the per-sample
        outcomes when the report holds them, else the stored figure; None if neither.

        >>> import numpy as np
        >>> Report(1.0, {0.1: 0.99}, {}, {0.1: np.array([-1, 0])}, 2, ["a"]).robust_fraction(0.1)
        0.5
        """
        counts = self._counts(eps, attack)
        if counts is not None:
            return counts[0] / counts[1] if counts[1] else math.nan
        table = self.robust_accuracy if attack is None else self.per_attack.get(attack, {})
        return table.get(eps)

    def clean_fraction(self) -> float:
        """Clean accuracy, read off the per-sample outcomes when the report holds them (those
        of every eps agree), else the stored figure."""
        for e in self.eps:
            codes = self.outcomes.get(e)
            if codes is not None and len(codes) == self.n_samples and self.n_samples:
                return int(np.sum(clean_correct(codes))) / self.n_samples
        return self.clean_accuracy

    def non_finite_counts(self) -> tuple[int, dict[float, int], int]:
        """Samples whose model output was not finite: on the clean input; per eps on an
        attack's input before any attack fooled them (from the outcomes); and on the curve
        attacks' input that set their minimal norm (from ``curve["non_finite"]``).

        >>> r = Report(0.5, {}, {}, {}, 2, [], curve={"norm": "l2", "norms": [0.0, 0.3],
        ...            "non_finite": {"clean": [0], "attacked": [1]}})
        >>> r.non_finite_counts()
        (1, {}, 1)
        """
        found = (self.curve or {}).get("non_finite", {})
        clean = len(found.get("clean", []))
        attacked: dict[float, int] = {}
        for e in self.eps:
            codes = np.asarray(self.outcomes.get(e, np.zeros(0, np.int8)))
            clean = max(clean, int(np.sum(codes == CLEAN_NON_FINITE)))
            attacked[e] = int(np.sum(codes <= non_finite(0)))
        return clean, attacked, len(found.get("attacked", []))

    def non_finite_message(self) -> str | None:
        """What the ``non_finite_outputs`` flag says (`advgrad.sanity.non_finite_outputs`),
        from the outcomes and the curve; None when every output was finite."""
        clean, attacked, curve = self.non_finite_counts()
        parts = []
        if clean:
            parts.append(
                f"{clean} of {self.n_samples} samples on their clean input (counted neither "
                "correct nor robust)"
            )
        counts = [f"{k} at eps={_eps_label(e)}" for e, k in attacked.items() if k]
        if counts:
            parts.append(
                "on an attack's input, before any attack fooled the sample: "
                + ", ".join(counts)
                + " (counted neither robust nor fooled)"
            )
        if curve:
            parts.append(
                f"{curve} on the curve attacks' input (the minimal norm of a non-finite "
                "output, not of a misclassification)"
            )
        if not parts:
            return None
        return "Non-finite model outputs (NaN or inf): " + "; ".join(parts) + "."

    def interval(
        self, eps: float, attack: str | None = None, confidence: float = 0.95
    ) -> tuple[float, float]:
        """Wilson score confidence interval (Wilson 1927) of a robust accuracy.

        Computed from the per-sample outcomes: the robust samples among all ``n_samples``
        (the worst case from ``outcomes``, one attack alone from ``attack_outcomes``).

        Args:
            eps: The eps (a key of ``outcomes``).
            attack: An attack label for that attack's own row, or None (default) for the
                worst case over the suite.
            confidence: Confidence level, in (0, 1). Defaults to 0.95.

        Returns:
            ``(low, high)``, fractions in [0, 1]; ``(nan, nan)`` when ``n_samples`` is 0.

        Raises:
            ValueError: An ``ArgumentError`` if the outcomes of `eps` (and `attack`) are not
                in the report, or `confidence` is not in (0, 1).

        >>> import numpy as np
        >>> r = Report(1.0, {0.1: 0.45}, {}, {0.1: np.array([-1] * 45 + [0] * 55)}, 100, ["a"])
        >>> [round(v, 4) for v in r.interval(0.1)]
        [0.3561, 0.5476]
        """
        confidence = check_number(
            "confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True
        )
        counts = self._counts(eps, attack)
        if counts is None:
            where = "eps" if attack is None else "attack"
            value = eps if attack is None else attack
            expected = "an eps (and attack) whose per-sample outcomes the report holds"
            raise invalid(where, expected, value)
        return _wilson(*counts, confidence)

    def per_class(self, eps: float, attack: str | None = None) -> dict[int, tuple[int, int]]:
        """Robust samples per true class: ``{class id: (robust, n)}``, class ids ascending.

        Needs ``labels`` (see `evaluate`); `attack` as in `interval` (None: worst case).

        Raises:
            ValueError: An ``ArgumentError`` if the report has no ``labels`` or no
                per-sample outcomes for `eps` (and `attack`).

        >>> import numpy as np
        >>> r = Report(0.75, {0.1: 0.5}, {}, {0.1: np.array([-1, 0, -1, -2])}, 4, ["a"],
        ...            labels=[0, 1, 1, 1])
        >>> r.per_class(0.1)
        {0: (1, 1), 1: (1, 3)}
        """
        if self.labels is None:
            raise invalid("labels", "per-sample labels in the report (from evaluate)", None)
        robust = self._robust(eps, attack)
        if robust is None or len(robust) != len(self.labels):
            where = "eps" if attack is None else "attack"
            expected = "an eps (and attack) whose per-sample outcomes the report holds"
            raise invalid(where, expected, eps if attack is None else attack)
        labels = np.asarray(self.labels, np.int64)
        return {
            int(c): (int(np.sum(robust[labels == c])), int(np.sum(labels == c)))
            for c in np.unique(labels)
        }

    def _robust(self, eps: float, attack: str | None) -> np.ndarray | None:
        """Per-sample robust flags of the worst case (or `attack` alone) at `eps`, or None."""
        if attack is None:
            codes = self.outcomes.get(eps)
            return None if codes is None else np.asarray(codes) == ROBUST
        flags = self.attack_outcomes.get(attack, {}).get(eps)
        return None if flags is None else np.asarray(flags, bool)

    def _counts(self, eps: float, attack: str | None = None) -> tuple[int, int] | None:
        """``(robust samples, n_samples)`` from the per-sample outcomes, or None if absent."""
        robust = self._robust(eps, attack)
        if robust is None or len(robust) != self.n_samples:
            return None
        return int(np.sum(robust)), self.n_samples

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: eps keys as strings, arrays as lists, non-finite numbers as None
        (no ``adversarial``)."""
        out: dict[str, Any] = {"format": "advgrad.report", "version": 1}
        for f in dataclasses.fields(self):
            if f.name == "adversarial" or (
                f.name in ("labels", "curve", "distribute") and getattr(self, f.name) is None
            ):
                continue  # no labels: written as reports were before they existed
            value = getattr(self, f.name)
            if f.name in _EPS_KEYED:
                value = {_eps_key(e): v for e, v in value.items()}
            elif f.name in _NESTED_EPS_KEYED:
                value = {k: {_eps_key(e): v for e, v in d.items()} for k, d in value.items()}
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Inverse of `to_dict`, validated: every field of the right type and range.

        Accuracies are finite numbers in [0, 1], ``n_samples`` an int >= 0, eps finite
        numbers >= 0 (and every eps key among ``eps``), outcomes ``n_samples`` codes from -2
        to ``len(attacks) - 1``, per-attack rows keyed by the labels of ``attacks``. Keys
        other than the fields are ignored.

        Raises:
            ValueError: An ``ArgumentError`` for `data` saying what is wrong, where.
        """
        return cls._from_dict(data, "data")

    @classmethod
    def _from_dict(cls, data: Any, argument: str, origin: str | None = None) -> Report:
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

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int | None = 1) -> str:
        """The report as JSON text; also written to `path` (atomically) when given.

        Args:
            path: File to write (parent folders are created). Defaults to None (no file).
            indent: JSON indentation. Defaults to 1.

        Returns:
            The JSON text.

        >>> import numpy as np
        >>> r = Report(1.0, {0.0: 1.0}, {}, {0.0: np.array([-1], np.int8)}, 1, ["fgsm"])
        >>> '"robust_accuracy": {"0.0": 1.0}' in r.to_json(indent=None)
        True
        """
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            atomic_write(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> Report:
        """Read a report written by `to_json`: a path, or the JSON text itself.

        Args:
            source: Path of a JSON file, or JSON text (starting with ``{``).

        Returns:
            The `Report` (without ``adversarial``, which is never saved).

        Raises:
            ValueError: An ``ArgumentError`` for `source` if it is neither report JSON nor a
                regular file of at most 256 MiB holding it (a device, a FIFO or a folder is
                refused before anything is read), or if the report is not valid (see
                `from_dict`).

        >>> import numpy as np
        >>> r = Report(1.0, {0.1: 1.0}, {}, {0.1: np.array([-1], np.int8)}, 1, ["pgd"])
        >>> Report.from_json(r.to_json()) == r
        True
        """
        if isinstance(source, str) and source.lstrip().startswith("{"):
            text, origin = source, None
        else:
            text = _read_report(source)
            origin = os.fspath(source)
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise invalid("source", "report JSON (from Report.to_json)", source) from None
        if not isinstance(data, dict) or data.get("format") != "advgrad.report":
            raise invalid("source", "report JSON (from Report.to_json)", source)
        return cls._from_dict(data, "source", origin)

    # ------------------------------------------------------------------- CSV
    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The per-sample outcomes as CSV text; also written to `path` (atomically) when given.

        One row per sample. Columns: ``index``; ``label`` when the report has ``labels``;
        for each eps ``eps=<eps>``, the cascade's outcome: ``robust``,
        ``clean_misclassified`` or the label of the attack that fooled the sample first;
        then, for each attack with its own outcomes, ``eps=<eps>/<attack>``: 1 if the sample
        is robust against that attack alone, else 0. Eps are written exactly
        (``repr(float)``). Cells are empty where the report lacks the outcomes.

        Args:
            path: File to write (parent folders are created). Defaults to None (no file).

        Returns:
            The CSV text (``\\n`` line ends).

        >>> import numpy as np
        >>> r = Report(0.5, {0.1: 0.25}, {}, {0.1: np.array([-1, 0, -2, 0])}, 4, ["pgd"])
        >>> print(r.to_csv(), end="")
        index,eps=0.1
        0,robust
        1,pgd
        2,clean_misclassified
        3,pgd
        """
        header = ["index"] + (["label"] if self.labels is not None else [])
        columns: list[list[str]] = []
        for e in self.eps:
            header.append(f"eps={_eps_key(e)}")
            codes = self.outcomes.get(e)
            columns.append(
                [_outcome_text(int(c), self.attacks) for c in np.asarray(codes)]
                if codes is not None
                else []
            )
            for label in self.attacks:
                flags = self.attack_outcomes.get(label, {}).get(e)
                if flags is not None:
                    header.append(f"eps={_eps_key(e)}/{label}")
                    columns.append(["1" if f else "0" for f in np.asarray(flags, bool)])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for i in range(self.n_samples):
            row = [str(i)]
            if self.labels is not None:
                row.append(str(self.labels[i]) if i < len(self.labels) else "")
            row += [column[i] if i < len(column) else "" for column in columns]
            writer.writerow(row)
        text = buffer.getvalue()
        if path is not None:
            atomic_write(path, text)
        return text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Report):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    # -------------------------------------------------------------- Markdown
    def to_markdown(self, *, digits: int = 1, intervals: bool = True) -> str:
        """A Markdown summary: the robust-accuracy table (attacks x eps), then the flags.

        Rows are the attacks of the suite (each alone, when measured) and the worst case
        over the suite; columns are the eps values; cells are robust accuracy in percent,
        followed by its 95% Wilson interval in brackets (``47.6% [43.0, 52.2]``) where the
        report holds the per-sample outcomes. With ``labels``, a per-class table follows
        (worst-case robust accuracy of each true class).

        Args:
            digits: Decimals of the percentages. Defaults to 1.
            intervals: Show the confidence intervals. Defaults to True.

        Returns:
            The Markdown text.

        >>> import numpy as np
        >>> r = Report(0.9, {0.1: 0.4}, {"pgd": {0.1: 0.4}}, {}, 10, ["pgd"])
        >>> print(r.to_markdown())  # doctest: +NORMALIZE_WHITESPACE
        # Robustness of a model on 10 samples
        <BLANKLINE>
        Clean accuracy: **90.0%** on 10 samples.
        <BLANKLINE>
        | attack | eps=0.1 |
        |---|---:|
        | pgd | 40.0% |
        | **worst case (cascade)** | **40.0%** |
        <BLANKLINE>
        No sanity flags.
        """

        def pct(value: float | None) -> str:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return "n/a"
            return f"{100 * value:.{digits}f}%"

        shown = []

        def ci(e: float, attack: str | None) -> str:
            counts = self._counts(e, attack) if intervals else None
            if counts is None or counts[1] == 0:
                return ""
            shown.append(True)
            low, high = _wilson(*counts, 0.95)
            return f" [{100 * low:.{digits}f}, {100 * high:.{digits}f}]"

        lines = [
            f"# {self.title()}",
            "",
            *self._header(),
            f"Clean accuracy: **{pct(self.clean_fraction())}** on {self.n_samples} samples.",
            "",
        ]
        if self.eps:  # a curve-only report (eps="curve") has no fixed-eps table
            lines += [
                "| attack | " + " | ".join(f"eps={_eps_label(e)}" for e in self.eps) + " |",
                "|---|" + "---:|" * len(self.eps),
            ]
            for label in self.attacks:
                if label in self.per_attack:
                    cells = [pct(self.robust_fraction(e, label)) + ci(e, label) for e in self.eps]
                    lines.append(f"| {label} | " + " | ".join(cells) + " |")
            cascade = [f"**{pct(self.robust_fraction(e))}**{ci(e, None)}" for e in self.eps]
            lines.append(f"| **{CASCADE}** | " + " | ".join(cascade) + " |")
            if shown:
                lines += ["", "In brackets: 95% confidence interval (Wilson score), in percent."]
            lines.append("")
        if self.curve:
            lines += [*self._curve_lines(pct), ""]
        if self.targeted_success:
            lines += [*self._targeted_lines(pct), ""]
        classes = self._class_table(pct) if self.labels is not None else []
        if classes:
            lines += [*classes, ""]
        if self.flags:
            lines.append("Sanity flags:")
            lines.append("")
            for flag in self.flags:
                text = f"{flag.get('message', '')} {flag.get('advice', '')}".strip()
                lines.append(f"- **{flag.get('code')}**: {text}")
        else:
            lines.append("No sanity flags.")
        details = []
        if self.gradients:
            counts = ", ".join(
                f"{label} {self.gradients.get(label, 0):,}" for label in self.attacks
            )
            details.append(f"Gradient evaluations: {counts}.")
        if self.versions:
            versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
            details.append(f"Seed {self.seed}, batch size {self.batch_size}; {versions}.")
        if details:
            lines += ["", *details]
        if self.outcomes:
            lines += ["", OUTCOME_CODES]
        return "\n".join(lines)

    def _curve_lines(self, pct: Callable[[float | None], str]) -> list[str]:
        """The curve's summary: the minimal norms' median and the accuracy at the fixed eps
        (or at the quartiles of the norms found)."""
        curve = self.curve or {}
        norms = np.asarray(curve.get("norms", []), np.float64)
        name = _NORM_NAMES.get(str(curve.get("norm")), str(curve.get("norm")))
        attacks = ", ".join(curve.get("attacks", []))
        found = norms[np.isfinite(norms)]
        median = float(np.median(norms)) if norms.size else math.nan
        lines = [
            f"Robustness curve ({name}, minimal norms from {attacks}): median smallest "
            f"adversarial perturbation {median:.4g}; none found for "
            f"{int(np.sum(np.isinf(norms)))} of {norms.size} samples.",
            "",
        ]
        points = list(self.eps) or sorted(
            {float(np.quantile(found, q)) for q in (0.25, 0.5, 0.75)} if found.size else set()
        )
        if points:
            lines.append("| eps | " + " | ".join(_eps_label(e) for e in points) + " |")
            lines.append("|---|" + "---:|" * len(points))
            cells = [pct(self.curve_accuracy(e)) for e in points]
            lines.append("| robust accuracy (curve) | " + " | ".join(cells) + " |")
        return lines

    def targeted_rate(self, attack: str, eps: float) -> float | None:
        """The fraction of the samples targeted attack `attack` ran on at `eps` that it moved
        to their target class; None when not recorded (or no sample was attacked).

        >>> counts = {"pgd": {0.1: [3, 4]}}
        >>> r = Report(0.9, {0.1: 0.4}, {}, {}, 10, ["pgd"], targeted_success=counts)
        >>> r.targeted_rate("pgd", 0.1)
        0.75
        """
        reached, attacked = self.targeted_success.get(attack, {}).get(eps, (0, 0))
        return reached / attacked if attacked else None

    def _targeted_lines(self, pct: Callable[[float | None], str]) -> list[str]:
        lines = ["Targeted success (samples moved to their target class, of those attacked):", ""]
        for label in self.attacks:
            counts = self.targeted_success.get(label)
            if counts:
                cells = [
                    f"eps={_eps_label(e)} {pct(self.targeted_rate(label, e))} "
                    f"({counts[e][0]}/{counts[e][1]})"
                    for e in self.eps
                    if e in counts
                ]
                lines.append(f"- {label}: " + ", ".join(cells))
        return lines

    def _header(self) -> list[str]:
        """What was measured, before any number: model, data, threat model, attacks."""
        lines = []
        if self.model:
            name, digest = self.model.get("name", "?"), str(self.model.get("weights_sha256", ""))
            size = self.model.get("parameters")
            count = f", {size:,} parameters" if isinstance(size, int) else ""
            source = self.model.get("source")
            origin = f" from {source}" if source and source != name else ""
            lines.append(
                f"- Model: {name}{origin} ({self.model.get('class', '?')}{count}; weights "
                f"sha256 {digest[:12]})"
            )
        if self.data:
            named = f"{self.data['name']}, " if self.data.get("name") else ""
            lines.append(
                f"- Data: {named}{self.data.get('n_samples', self.n_samples)} samples "
                f"(sha256 {str(self.data.get('sha256', ''))[:12]})"
            )
        if self.distribute:
            lines.append(f"- Distribution: {_distribute_text(self.distribute)}")
        if self.suite:
            lines.append(f"- Threat model: {self._threat_model()}")
            hidden = {"name", "eps", "norm", "bounds", "budget", "progress", "batch_size"}
            attacks = []
            for label, config in zip(self.attacks, self.suite, strict=False):
                settings = ", ".join(
                    f"{k}={v!r}"
                    for k, v in config.items()
                    if k not in hidden and v is not None and (k, v) != ("jit_compile", False)
                )
                attacks.append(f"{label} ({settings})" if settings else label)
            lines.append(f"- Attacks, in cascade order: {'; '.join(attacks)}")
        return [*lines, ""] if lines else []

    def _threat_model(self) -> str:
        """Norm, bounds, frozen inputs and the eps swept, as text."""
        eps = [*(_eps_label(e) for e in self.eps), *(["curve"] if self.curve else [])]
        return f"{_threat_text(self.suite)}; eps swept: {', '.join(eps)}"

    def title(self) -> str:
        """What the report is about: ``Robustness of <model> on <data>``, from what it knows.

        >>> Report(1.0, {}, {}, {}, 8, model={"name": "cnn"}, data={"name": "digits"}).title()
        'Robustness of cnn on digits'
        >>> Report(1.0, {}, {}, {}, 8).title()
        'Robustness of a model on 8 samples'
        """
        model = self.model.get("source") or self.model.get("name") or "a model"
        data = self.data.get("name") or f"{self.n_samples} samples"
        return f"Robustness of {model} on {data}"

    # ------------------------------------------------------------ at a glance
    def __str__(self) -> str:
        """A short summary: accuracies with their 95% intervals, the threat model, the flags.

        >>> import numpy as np
        >>> r = Report(0.75, {0.1: 0.5}, {}, {0.1: np.array([-1, -1, 0, -2])}, 4, ["pgd"],
        ...            suite=[{"name": "pgd", "norm": "linf", "bounds": [0.0, 1.0]}])
        >>> print(r)
        Robustness of a model on 4 samples
          clean accuracy   75.0% [30.1, 95.4]
          robust accuracy  eps=0.1: 50.0% [15.0, 85.0] (worst case over pgd)
          threat model     norm Linf; bounds [0, 1]; frozen inputs: none; eps swept: 0.1
          flags            none
        """

        def pct(counts: tuple[int, int]) -> str:
            if not counts[1]:
                return "n/a"
            low, high = _wilson(*counts, 0.95)
            return f"{100 * counts[0] / counts[1]:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"

        lines = [self.title(), f"  clean accuracy   {pct(self._clean_counts())}"]
        rows = []
        for e in self.eps:
            counts = self._counts(e)
            if counts is None:  # no outcomes: the stored figure
                value = self.robust_accuracy.get(e, math.nan)
                counts = (round(value * self.n_samples), self.n_samples)
            rows.append(f"eps={_eps_label(e)}: {pct(counts)}")
        over = f" (worst case over {', '.join(self.attacks)})" if self.attacks else ""
        for i, row in enumerate(rows):
            head = "  robust accuracy  " if i == 0 else " " * 19
            lines.append(head + row + (over if i == 0 else ""))
        if self.curve:
            norms = np.asarray(self.curve.get("norms", []), np.float64)
            name = _NORM_NAMES.get(str(self.curve.get("norm")), str(self.curve.get("norm")))
            median = float(np.median(norms)) if norms.size else math.nan
            lines.append(
                f"  curve            {name} minimal norms from "
                f"{', '.join(self.curve.get('attacks', []))}: median {median:.4g}, none "
                f"found for {int(np.sum(np.isinf(norms)))} of {norms.size}"
            )
        if self.suite:
            lines.append(f"  threat model     {self._threat_model()}")
        if self.distribute and self.distribute.get("strategy") != "none":
            lines.append(f"  distribution     {_distribute_text(self.distribute)}")
        codes: dict[str, int] = {}
        for flag in self.flags:
            codes[str(flag.get("code"))] = codes.get(str(flag.get("code")), 0) + 1
        flags = ", ".join(f"{c} (x{k})" if k > 1 else c for c, k in codes.items()) or "none"
        lines.append(f"  flags            {flags}")
        if codes:
            lines.append(" " * 19 + "(report.flags: what each means and what to try)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        """One line: the model, the sample count, the accuracies and the flags' codes.

        >>> repr(Report(0.5, {0.1: 0.25}, {}, {}, 4, ["pgd"], model={"name": "cnn"}))
        "<Report 'Robustness of cnn on 4 samples': clean 50.0%, robust eps=0.1 25.0%, flags: none>"
        """
        robust = ", ".join(
            f"eps={_eps_label(e)} {100 * v:.1f}%"
            for e in self.eps
            if (v := self.robust_fraction(e)) is not None and not math.isnan(v)
        )
        flags = ", ".join(dict.fromkeys(str(f.get("code")) for f in self.flags)) or "none"
        clean = 100 * self.clean_fraction()
        robust = f", robust {robust}" if robust else ""
        return f"<Report {self.title()!r}: clean {clean:.1f}%{robust}, flags: {flags}>"

    def _repr_markdown_(self) -> str:
        """The Markdown report (`to_markdown`), for notebooks."""
        return self.to_markdown()

    def _repr_html_(self) -> str:
        """The Markdown report (`to_markdown`) as HTML, for notebooks (text escaped)."""
        return _markdown_html(self.to_markdown())

    def _clean_counts(self) -> tuple[int, int]:
        """``(clean-correct samples, n_samples)``: from the outcomes, else the curve's
        nonzero minimal norms, else the stored accuracy."""
        n = self.n_samples
        for e in self.eps:
            codes = self.outcomes.get(e)
            if codes is not None and len(codes) == n:
                return int(np.sum(clean_correct(codes))), n
        if self.curve and len(self.curve.get("norms", [])) == n:
            return int(np.sum(np.asarray(self.curve["norms"], np.float64) > 0)), n
        return round(self.clean_accuracy * n), n

    def _class_table(self, pct: Callable[[float | None], str]) -> list[str]:
        """Markdown lines of the per-class table (worst case), or [] without outcomes."""
        per_eps = {}
        for e in self.eps:
            try:
                per_eps[e] = self.per_class(e)
            except ValueError:
                continue
        if not per_eps:
            return []
        classes = sorted({c for table in per_eps.values() for c in table})
        any_table = next(iter(per_eps.values()))
        lines = [
            "Worst-case robust accuracy per class:",
            "",
            "| class | n | " + " | ".join(f"eps={_eps_label(e)}" for e in per_eps) + " |",
            "|---:|---:|" + "---:|" * len(per_eps),
        ]
        for c in classes:
            n = any_table[c][1]
            cells = [pct(table[c][0] / n if n else None) for table in per_eps.values()]
            lines.append(f"| {c} | {n} | " + " | ".join(cells) + " |")
        return lines

    # ----------------------------------------------------------------- plots
    def save_plots(self, directory: str | os.PathLike) -> list[str]:
        """Write PNG plots into `directory` (created if needed).

        Always ``robust_accuracy.png``: robust accuracy against eps (the x axis names the
        suite's norm) for each attack alone and for the worst case. For a single rank-4
        image input whose adversarial examples were kept (``return_adversarial=True``), also
        ``adversarial_eps=<eps>.png`` for each eps: clean image, adversarial image and
        perturbation (with its colour bar) for a few fooled samples.

        Args:
            directory: Output folder.

        Returns:
            Paths of the written files.

        Raises:
            ImportError: If matplotlib (a dependency of advgrad) is not installed.
        """
        plt = _pyplot()
        folder = pathlib.Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        figures = [("robust_accuracy.png", lambda: self._curves_figure(plt))]
        for e, adv in (self.adversarial or {}).items():
            x_adv = adv.get("x_adv")
            if isinstance(x_adv, np.ndarray) and x_adv.ndim == 4 and len(x_adv):
                name = f"adversarial_eps={_eps_label(e)}.png"
                figures.append((name, lambda e=e, adv=adv: self._images_figure(plt, e, adv)))
        paths = []
        for name, build in figures:
            fig = build()
            try:
                fig.savefig(folder / name, dpi=110)
            finally:
                plt.close(fig)
            paths.append(str(folder / name))
        return paths

    def _eps_axis_label(self) -> str:
        """``eps (Linf)``, ``eps (L2)``...: the norm of the suite's attacks; ``eps (mixed
        norms)`` when they differ, plain ``eps`` when the suite does not say."""
        names = set()
        if self.curve and self.curve.get("norm"):
            names.add(_NORM_NAMES.get(str(self.curve["norm"]), str(self.curve["norm"])))
        for config in self.suite:
            norm = config.get("norm") if isinstance(config, Mapping) else None
            if isinstance(norm, Mapping):  # a custom norm's config
                norm = norm.get("name")
            if norm is not None:
                names.add(_NORM_NAMES.get(str(norm).lower(), str(norm)))
        if not names:
            return "eps"
        return f"eps ({names.pop()})" if len(names) == 1 else "eps (mixed norms)"

    def _curves_figure(self, plt: Any) -> Any:
        """Robust accuracy against eps, as a matplotlib ``Figure`` (the caller closes it).

        The worst case is a thick, semi-transparent black line drawn underneath; each attack
        alone a thin dashed line with markers on top, so an attack whose curve equals the
        worst case (always so for a single attack) stays visible.
        """
        fig, ax = plt.subplots(figsize=(5.5, 4))
        xs = [0.0, *self.eps] if self.eps and self.eps[0] > 0 else list(self.eps)

        def with_clean(attack: str | None) -> list[float]:
            start = [self.clean_fraction()] if len(xs) > len(self.eps) else []
            values = [self.robust_fraction(e, attack) for e in self.eps]
            return start + [math.nan if v is None else v for v in values]

        band = self._band(len(xs) > len(self.eps))
        handles = []
        if band is not None:
            interval = ax.fill_between(
                xs,
                band[0],
                band[1],
                color="black",
                alpha=0.12,
                lw=0,
                label="95% interval (worst case)",
                zorder=1,
            )
            handles.append(interval)
        (worst,) = ax.plot(
            xs,
            with_clean(None),
            color="black",
            lw=6,
            alpha=0.3,
            solid_capstyle="round",
            label=CASCADE,
            zorder=2,
        )
        for label in self.attacks:
            if label in self.per_attack:
                line = ax.plot(
                    xs,
                    with_clean(label),
                    marker="o",
                    ms=5,
                    ls="--",
                    lw=1.5,
                    label=f"{label} (alone)",
                    zorder=3,
                )
                handles.extend(line)
        if self.curve:
            steps_x, steps_y = self.curve_points()
            right = max([*self.eps, *steps_x[-1:]], default=0.0) * 1.05 or 1.0
            (line,) = ax.step(
                [*steps_x, right],
                [*steps_y, steps_y[-1]],
                where="post",
                color="tab:red",
                lw=1.8,
                label=f"curve: minimal norms ({', '.join(self.curve.get('attacks', []))})",
                zorder=4,
            )
            handles.append(line)
        ax.set_xlabel(self._eps_axis_label())
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        shown = [worst, *handles] if self.eps else handles[-1:]  # curve only: its line
        ax.legend(handles=shown, fontsize="small")  # worst case, its band, attacks
        name = self.model.get("name")
        ax.set_title(f"{name}: {self.n_samples} samples" if name else f"{self.n_samples} samples")
        fig.tight_layout()
        return fig

    def _band(self, with_clean: bool) -> tuple[list[float], list[float]] | None:
        """Lows and highs of the worst case's 95% Wilson intervals (the clean accuracy's
        first when `with_clean`), or None without per-sample outcomes."""
        counts = [self._counts(e) for e in self.eps]
        if not counts or self.n_samples == 0 or any(c is None for c in counts):
            return None
        if with_clean:
            counts.insert(0, self._clean_counts())
        pairs = [_wilson(*c, 0.95) for c in counts]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def _images_figure(self, plt: Any, e: float, adv: dict) -> Any:
        """Clean, adversarial and perturbation images of a few fooled samples at `e`, as a
        matplotlib ``Figure`` (the caller closes it), with a colour bar for the perturbation."""
        count = min(6, len(adv["x_adv"]))
        clean = np.asarray(adv["x"][:count], np.float64)
        x_adv = np.asarray(adv["x_adv"][:count], np.float64)
        delta = x_adv - clean
        low, high = float(np.min(clean)), float(np.max(clean))
        span = float(np.max(np.abs(delta))) or 1.0
        fig, axes = plt.subplots(
            3, count, figsize=(1.7 * count + 1.2, 5.4), squeeze=False, layout="constrained"
        )
        shown = None
        for j in range(count):
            label, predicted = adv["label"][j], adv["predicted"][j]
            attack = self.attacks[adv["attack"][j]] if self.attacks else adv["attack"][j]
            axes[0][j].imshow(_image(clean[j], low, high), cmap="gray", vmin=0, vmax=1)
            axes[0][j].set_title(f"clean: true {label}", fontsize=8)
            axes[1][j].imshow(_image(x_adv[j], low, high), cmap="gray", vmin=0, vmax=1)
            axes[1][j].set_title(f"true {label} → predicted {predicted}", fontsize=8)
            image = delta[j] if delta.shape[-1] != 1 else delta[j][..., 0]
            if image.ndim == 3:  # colour perturbation: mean over channels for one colormap
                image = image.mean(axis=-1)
            shown = axes[2][j].imshow(image, cmap="RdBu", vmin=-span, vmax=span)
            axes[2][j].set_title(f"perturbation ({attack})", fontsize=8)
            for i in range(3):
                axes[i][j].axis("off")
        colour = delta.ndim == 4 and delta.shape[-1] != 1
        bar = fig.colorbar(shown, ax=[axes[2][j] for j in range(count)], shrink=0.9)
        bar.set_label("x_adv - x" + (" (channel mean)" if colour else ""), fontsize=8)
        bar.ax.tick_params(labelsize=7)
        fig.suptitle(f"eps={_eps_label(e)}: clean / adversarial / perturbation", fontsize=9)
        return fig


# ---------------------------------------------------------------------------- statistics
def _wilson(robust: int, n: int, confidence: float) -> tuple[float, float]:
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


# ---------------------------------------------------------------------------- reading back
def _read_report(source: Any) -> str:
    """The text of the report file `source`: a regular file under `_REPORT_LIMIT`."""
    if not isinstance(source, (str, os.PathLike)):
        raise invalid("source", "a report JSON file or JSON text", source)
    expected = "a report JSON file or JSON text"
    try:
        raw = read_regular(source, _REPORT_LIMIT)
    except NotRegularFileError:
        reason = f"not a regular file: {os.fspath(source)}."
        raise ArgumentError("source", reason, expected=expected) from None
    except FileTooLargeError as err:
        reason = f"report file too large: {err.size} bytes (limit {_size_text(_REPORT_LIMIT)})."
        raise ArgumentError("source", reason, expected=expected) from None
    except (OSError, ValueError):
        raise invalid("source", expected, source) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("source", "report JSON (from Report.to_json)", source) from None


def _size_text(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 and not size % (1 << 20) else f"{size} bytes"


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
                f"robust_accuracy[{_eps_key(e)!r}]: no per-sample outcomes (outcomes"
                f"[{_eps_key(e)!r}]) to derive it from; {_FIX}"
            )
        if e not in report.robust_accuracy:
            raise _Invalid(f"robust_accuracy: no figure for eps {_eps_key(e)}; {_FIX}")
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
        key = _eps_key(e)
        robust = int(np.sum(codes[e] == ROBUST))
        differs(
            f"robust_accuracy[{key!r}]", report.robust_accuracy[e], robust, f"robust at eps={key}"
        )
    for label in report.attacks:
        alone = report.attack_outcomes.get(label, {})
        for e, stored in report.per_attack.get(label, {}).items():
            where = f"per_attack[{label!r}][{_eps_key(e)!r}]"
            if e not in alone:
                raise _Invalid(
                    f"{where}: no per-sample outcomes (attack_outcomes[{label!r}]"
                    f"[{_eps_key(e)!r}]) to derive it from; {_FIX}"
                )
            differs(where, stored, int(np.sum(alone[e])), f"robust against {label} alone")
        for e, (reached, attacked) in report.targeted_success.get(label, {}).items():
            fooled = correct & (codes[e] != ROBUST)
            if e in alone:
                fooled &= ~np.asarray(alone[e], bool)
            if reached > int(np.sum(fooled)) or attacked > int(np.sum(correct)):
                raise _Invalid(
                    f"targeted_success[{label!r}][{_eps_key(e)!r}] is "
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
                    f"outcomes[{_eps_key(e)!r}] differs from outcomes[{_eps_key(eps[0])!r}] "
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
            f"outcomes[{_eps_key(e)!r}] disagrees with attack_outcomes[{label!r}]"
            f"[{_eps_key(e)!r}] at sample {i} (outcome {int(codes[i])}; robust against "
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


def _image(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale an HxWxC image to [0, 1] for imshow (grayscale when C == 1)."""
    scaled = (array - low) / (high - low) if high > low else array * 0
    scaled = np.clip(scaled, 0, 1)
    return scaled[..., 0] if scaled.shape[-1] == 1 else scaled


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "Report.save_plots needs matplotlib (a dependency of advgrad), which is not "
            "installed. Install it with `pip install matplotlib` (or `pip install advgrad[plots]`)."
        ) from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _outcome_text(code: int, attacks: list[str]) -> str:
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


def _threat_text(suite: list[Mapping[str, Any]]) -> str:
    """Norm, bounds and frozen inputs of the suite, or "differs per attack"."""

    def one(key: str, describe: Callable[[Any], str]) -> str:
        values = {describe(c.get(key)) for c in suite}
        return values.pop() if len(values) == 1 else "differs per attack"

    def norm(value: Any) -> str:
        name = value.get("name") if isinstance(value, Mapping) else value
        return {"linf": "Linf", "l2": "L2", "l1": "L1"}.get(str(name), str(name))

    def bounds(value: Any) -> str:
        if value is None:
            return "none (unbounded)"
        if isinstance(value, Mapping):
            return "per input: " + ", ".join(f"{k} {bounds(v)}" for k, v in value.items())
        low, high = value
        if np.ndim(low) == 0 and np.ndim(high) == 0:
            return f"[{float(low):g}, {float(high):g}]"
        low, high = np.asarray(low, float), np.asarray(high, float)
        return f"per feature ({max(low.size, high.size)} values in [{low.min():g}, {high.max():g}])"

    def frozen(value: Any) -> str:
        if isinstance(value, Mapping) and not {"eps", "norm"} <= set(value):
            names = [k for k, v in value.items() if v is None]
            return ", ".join(names) if names else "none"
        return "none"

    return (
        f"norm {one('norm', norm)}; bounds {one('bounds', bounds)}; "
        f"frozen inputs: {one('budget', frozen)}"
    )


def _distribute_text(distribute: Mapping[str, Any]) -> str:
    """``MirroredStrategy, 2 replicas (CPU:0, CPU:1)``, or ``none (one device)``."""
    if distribute.get("strategy") == "none":
        return "none (one device)"
    devices = ", ".join(str(d).rsplit("device:", 1)[-1] for d in distribute.get("devices", []))
    replicas = int(distribute.get("replicas", 1))
    return f"{distribute['strategy']}, {replicas} replica{'s' if replicas != 1 else ''}" + (
        f" ({devices})" if devices else ""
    )


def _markdown_html(text: str) -> str:
    """The Markdown `Report.to_markdown` writes (headings, lists, tables, paragraphs, bold
    and code spans) as HTML, every text escaped.

    >>> print(_markdown_html("# A <b>" + chr(10) * 2 + "- **x**: `1`"))
    <h3>A &lt;b&gt;</h3>
    <ul><li><strong>x</strong>: <code>1</code></li></ul>
    """
    import html
    import re

    def inline(value: str) -> str:
        value = html.escape(value)
        value = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", value)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", value)

    def cells(line: str, tag: str) -> str:
        parts = line.strip().strip("|").split("|")
        return "<tr>" + "".join(f"<{tag}>{inline(p.strip())}</{tag}>" for p in parts) + "</tr>"

    out: list[str] = []
    blocks = re.split(r"\n\s*\n", text.strip())
    for block in blocks:
        rows = block.splitlines()
        if rows[0].startswith("#"):
            out.append(f"<h3>{inline(rows[0].lstrip('#').strip())}</h3>")
        elif all(r.startswith("|") for r in rows):
            body = [cells(r, "td") for r in rows[2:]]
            out.append("\n".join(["<table>", cells(rows[0], "th"), *body, "</table>"]))
        elif all(r.startswith("- ") for r in rows):
            items = "".join(f"<li>{inline(r[2:])}</li>" for r in rows)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append(f"<p>{inline(' '.join(rows))}</p>")
    return "\n".join(out)


def _eps_key(eps: float) -> str:
    return repr(float(eps))


def _eps_label(eps: float) -> str:
    """Short eps text for tables: 0.1, 0.0313 (8/255), 1e-05."""
    return f"{float(eps):.4g}"


def _plain(value: Any) -> Any:
    """Recursively turn numpy values into JSON-ready Python values; a non-finite number
    becomes None (JSON has no NaN or Infinity)."""
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f" or np.all(np.isfinite(value)):
            return value.tolist()
        return np.where(np.isfinite(value), value, None).tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


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
