"""The `Report`: what an evaluation measured, and the statistics read off it.

Every figure is derived from the per-sample outcome codes (`advgrad.outcomes`): robust
accuracy (worst case or one attack alone), its Wilson interval, per class, after each
attack of the cascade, on the curve of minimal norms. The views live beside it: files
(`advgrad.report.files`, JSON and CSV; checked on reading by `advgrad.report.validate`),
text (`advgrad.report.markdown`) and plots (`advgrad.report.plots`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from advgrad._validation import check_eps, check_number, invalid
from advgrad.outcomes import CLEAN_NON_FINITE, ROBUST, clean_correct, first_attack, non_finite
from advgrad.report import files, markdown, plots, validate
from advgrad.report.stats import eps_label, wilson

__all__ = ["Report"]


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
        flags: Sanity flags, dicts ``{"code", "message", "advice"}`` (see `advgrad.flags`).
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
        counts = self.robust_counts(eps, attack)
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
        """What the ``non_finite_outputs`` flag says (`advgrad.flags.non_finite_outputs`),
        from the outcomes and the curve; None when every output was finite."""
        clean, attacked, curve = self.non_finite_counts()
        parts = []
        if clean:
            parts.append(
                f"{clean} of {self.n_samples} samples on their clean input (counted neither "
                "correct nor robust)"
            )
        counts = [f"{k} at eps={eps_label(e)}" for e, k in attacked.items() if k]
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
        counts = self.robust_counts(eps, attack)
        if counts is None:
            where = "eps" if attack is None else "attack"
            value = eps if attack is None else attack
            expected = "an eps (and attack) whose per-sample outcomes the report holds"
            raise invalid(where, expected, value)
        return wilson(*counts, confidence)

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

    def robust_counts(self, eps: float, attack: str | None = None) -> tuple[int, int] | None:
        """``(robust samples, n_samples)`` at `eps` (worst case, or `attack` alone) from the
        per-sample outcomes, or None if the report does not hold them.

        >>> import numpy as np
        >>> Report(1.0, {0.1: 0.5}, {}, {0.1: np.array([-1, 0])}, 2, ["a"]).robust_counts(0.1)
        (1, 2)
        """
        robust = self._robust(eps, attack)
        if robust is None or len(robust) != self.n_samples:
            return None
        return int(np.sum(robust)), self.n_samples

    # ------------------------------------------------------------------ JSON

    def clean_counts(self) -> tuple[int, int]:
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

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: eps keys as strings, arrays as lists, non-finite numbers as None
        (no ``adversarial``)."""
        return files.to_dict(self)

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
        return validate.build(cls, data, "data")

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
        return files.to_json(self, path, indent=indent)

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
        return files.from_json(cls, source)

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
        return files.to_csv(self, path)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Report):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    # ------------------------------------------------------------------- text

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
        return markdown.to_markdown(self, digits=digits, intervals=intervals)

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
        return markdown.summary(self)

    def __repr__(self) -> str:
        """One line: the model, the sample count, the accuracies and the flags' codes.

        >>> repr(Report(0.5, {0.1: 0.25}, {}, {}, 4, ["pgd"], model={"name": "cnn"}))
        "<Report 'Robustness of cnn on 4 samples': clean 50.0%, robust eps=0.1 25.0%, flags: none>"
        """
        return markdown.one_line(self)

    def _repr_markdown_(self) -> str:
        """The Markdown report (`to_markdown`), for notebooks."""
        return self.to_markdown()

    def _repr_html_(self) -> str:
        """The Markdown report (`to_markdown`) as HTML, for notebooks (text escaped)."""
        return markdown.html(self.to_markdown())

    # ------------------------------------------------------------------ plots

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
        return plots.save_plots(self, directory)
