"""Compare robustness runs: several reports' worst-case robust accuracy, side by side.

`compare` lines up the worst-case (cascade) robust accuracy of several `Report` objects
against eps (the union of their eps) with 95% Wilson intervals; `Comparison.to_markdown`
prints one row per run and `Comparison.save_plot` draws one curve per run with its interval
band; every number is read off the reports' per-sample outcomes (`Report.robust_fraction`),
never a stored figure. Different models and different attack suites are what a comparison
is for; a different threat model is not: `threat_model_differences` lists what differs (the
attacks' norm, bounds and budget, the data's content hash and sample count), and `compare`
refuses such runs unless ``force=True``. Settings that do not change what the adversary may
do or what counts as fooled are no difference: the batching, seeds, an attack's strategy
(``targeted``: in `advgrad.evaluate` every attack fools a sample by any misclassification).

>>> import numpy as np
>>> from advgrad.report import Report
>>> a = Report(1.0, {0.1: 0.5}, {}, {0.1: np.array([-1, 0], np.int8)}, 2, ["pgd"])
>>> b = Report(1.0, {0.2: 0.0}, {}, {0.2: np.array([0, 0], np.int8)}, 2, ["pgd"])
>>> print(compare([a, b], ["a", "b"]).to_markdown().splitlines()[0])
| run | model | attacks | eps=0.1 | eps=0.2 |
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Sequence
from typing import Any

from advgrad._io import atomic_write
from advgrad._validation import invalid
from advgrad.report import Report

__all__ = ["Comparison", "ThreatModelError", "compare", "threat_model_differences"]

THREAT_MODEL_KEYS = ("norm", "bounds", "budget")
"""Attack settings that define the threat model (what the adversary may do). ``eps`` is
compared, not matched; ``targeted`` is an attack's strategy: `advgrad.evaluate` counts a
sample as fooled by any misclassification, whatever the attack aimed at."""

CONTENT = "content"
"""``data["sha256_of"]`` of a report whose ``sha256`` digests the data's content
(`advgrad.evaluation.state.DataDigest.SCHEME`); reports written before have none: theirs
digests the batches, and so depends on ``batch_size``."""


class ThreatModelError(ValueError):
    """The runs of a comparison differ in threat model (``differences``: what, one each)."""

    def __init__(self, differences: Sequence[str]):
        self.differences = list(differences)
        super().__init__("runs differ in threat model: " + "; ".join(self.differences))


def _text(value: Any) -> str:
    """A setting as short text: strings bare, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def _model_name(report: Report) -> str | None:
    """The model as the run's config named it (file or zoo name), else its Keras name."""
    return report.model.get("source") or report.model.get("name")


def _threat_model(report: Report) -> dict[str, str]:
    """``{what: value}`` of one report's threat model, values as text."""
    model: dict[str, str] = {}
    for key in THREAT_MODEL_KEYS:
        values: list[str] = []
        for config in report.suite:
            text = _text(config[key]) if key in config else None  # an attack without it
            if text is not None and text not in values:
                values.append(text)
        model[key] = ", ".join(values) if values else "-"
    sha = report.data.get("sha256")
    if sha is None:
        model["data sha256"] = "unknown"
    elif report.data.get("sha256_of") == CONTENT:
        model["data sha256"] = str(sha)[:12]
    else:  # an older report: the digest of its batches
        batches = "its batches" if report.batch_size is None else f"batches of {report.batch_size}"
        model["data sha256"] = f"{str(sha)[:12]} (of {batches})"
    model["n_samples"] = str(report.n_samples)
    return model


def threat_model_differences(reports: Sequence[Report], names: Sequence[str]) -> list[str]:
    """What differs in threat model between each run and the first, one text each.

    The threat model is each attack's ``norm``, ``bounds`` and ``budget`` (frozen inputs)
    settings (the distinct values over its suite, in suite order; every other setting is
    not part of it: ``eps`` is compared, ``targeted``, ``seed``, ``batch_size`` are how an
    attack searches), the data's content sha256 and ``n_samples``. Models and attack lists
    may differ. A report written before data hashes were of the content (its ``sha256``
    digests its batches) matches another only with the same digest; otherwise the
    difference says to run it again.

    Args:
        reports: The reports.
        names: One name per report, used in the texts.

    Returns:
        Texts like ``"norm linf (a) vs l2 (b)"``; empty when every run has the first's
        threat model.

    >>> import numpy as np
    >>> a = Report(1.0, {0.1: 1.0}, {}, {}, 2, ["pgd"], suite=[{"name": "pgd", "norm": "linf"}])
    >>> b = Report(1.0, {0.1: 1.0}, {}, {}, 2, ["pgd"], suite=[{"name": "pgd", "norm": "l2"}])
    >>> threat_model_differences([a, b], ["a", "b"])
    ['norm linf (a) vs l2 (b)']
    """
    _check_names(reports, names)
    models = [_threat_model(r) for r in reports]
    differences = []
    for name, model in zip(names[1:], models[1:], strict=True):
        for key, value in model.items():
            if value != models[0][key]:
                differences.append(f"{key} {models[0][key]} ({names[0]}) vs {value} ({name})")
    older = [n for n, r in zip(names, reports, strict=True) if _batch_hashed(r)]
    if older and any(d.startswith("data sha256") for d in differences):
        differences.append(
            f"{', '.join(older)}: written by an older advgrad, whose data sha256 depends on "
            "batch_size; run it again with this version to compare by content"
        )
    return differences


def _batch_hashed(report: Report) -> bool:
    """Whether the report's data sha256 digests its batches (written by an older advgrad)."""
    return "sha256" in report.data and report.data.get("sha256_of") != CONTENT


def _check_names(reports: Sequence[Report], names: Sequence[str]) -> None:
    if not reports or not all(isinstance(r, Report) for r in reports):
        raise invalid("reports", "a non-empty list of Report objects", reports)
    if len(names) != len(reports) or not all(isinstance(n, str) and n for n in names):
        raise invalid("names", f"{len(reports)} non-empty strings (one per report)", names)
    if len(set(names)) != len(names):
        raise invalid("names", "distinct names", names)


@dataclasses.dataclass
class Comparison:
    """Worst-case robust accuracy of several runs against the union of their eps.

    Attributes:
        reports: The reports, in the order given.
        names: One name per report (a run's folder name, say).
        eps: The union of the reports' eps, ascending.
        differences: Threat-model differences that were overridden (``force=True``).
    """

    reports: list[Report]
    names: list[str]
    eps: list[float]
    differences: list[str] = dataclasses.field(default_factory=list)

    def cell(self, index: int, eps: float, digits: int = 1) -> str:
        """Run `index`'s robust accuracy at `eps` as text, with its interval; ``-`` if absent."""
        report = self.reports[index]
        value = report.robust_fraction(eps)
        if value is None:
            return "-"
        if math.isnan(value):
            return "n/a"
        text = f"{100 * value:.{digits}f}%"
        try:
            low, high = report.interval(eps)
        except ValueError:  # no per-sample outcomes: no interval
            return text
        if math.isnan(low):
            return text
        return f"{text} [{100 * low:.{digits}f}, {100 * high:.{digits}f}]"

    def to_markdown(self, *, digits: int = 1) -> str:
        """The comparison table: one row per run (name, model, attacks), one column per eps.

        Cells are worst-case robust accuracy in percent with the 95% Wilson interval in
        brackets (where the report holds per-sample outcomes); ``-`` where a run lacks the eps.
        """
        lines = [
            "| run | model | attacks | " + " | ".join(f"eps={e:.4g}" for e in self.eps) + " |",
            "|---|---|---|" + "---:|" * len(self.eps),
        ]
        for i, (name, report) in enumerate(zip(self.names, self.reports, strict=True)):
            model = _escape(str(_model_name(report) or "-"))
            attacks = _escape(", ".join(report.attacks) or "-")
            cells = [self.cell(i, e, digits) for e in self.eps]
            lines.append(f"| {_escape(name)} | {model} | {attacks} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Worst-case (cascade) robust accuracy; in brackets: 95% confidence interval "
            "(Wilson score), in percent; - where a run has no such eps.",
        ]
        samples = sorted({r.n_samples for r in self.reports})
        lines.append(f"Samples per run: {', '.join(map(str, samples))}.")
        if self.differences:
            lines.append(
                "Threat models differ (compared anyway): " + "; ".join(self.differences) + "."
            )
        return "\n".join(lines) + "\n"

    def save_plot(self, path: str | pathlib.Path) -> str:
        """Write a PNG of robust accuracy against eps, one line per run with its 95% band.

        Returns:
            The path written.

        Raises:
            ImportError: If matplotlib is not installed.
        """
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for name, report in zip(self.names, self.reports, strict=True):
            xs = [e for e in report.eps if report.robust_fraction(e) is not None]
            ys = [report.robust_fraction(e) for e in xs]
            model = _model_name(report)
            label = f"{name} ({model})" if model and model != name else name
            (line,) = ax.plot(xs, ys, marker="o", lw=2, label=label)
            band = _band(report, xs)
            if band is not None:
                ax.fill_between(xs, band[0], band[1], color=line.get_color(), alpha=0.15, lw=0)
        ax.set_xlabel("eps")
        ax.set_ylabel("robust accuracy (worst case)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title("robust accuracy, 95% intervals shaded")
        fig.tight_layout()
        target = pathlib.Path(path)
        try:
            atomic_write(target, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
        finally:
            plt.close(fig)
        return str(target)


def compare(reports: Sequence[Report], names: Sequence[str], *, force: bool = False) -> Comparison:
    """Line up several runs' worst-case robust accuracy against the union of their eps.

    Args:
        reports: The reports (from `Report.from_json`).
        names: One distinct, non-empty name per report.
        force: Compare runs whose threat models differ (the differences are noted in the
            table). Defaults to False.

    Returns:
        The `Comparison`.

    Raises:
        ThreatModelError: A ``ValueError`` naming what differs, if the threat models differ
            and `force` is False.
        ValueError: An ``ArgumentError`` for bad `reports` or `names`.
    """
    _check_names(reports, names)
    differences = threat_model_differences(reports, names)
    if differences and not force:
        raise ThreatModelError(differences)
    eps = sorted({float(e) for r in reports for e in (r.eps or r.robust_accuracy)})
    return Comparison(list(reports), list(names), eps, differences)


def _band(report: Report, xs: list[float]) -> tuple[list[float], list[float]] | None:
    """Lows and highs of the worst case's 95% intervals at `xs`, or None if any is missing."""
    lows, highs = [], []
    for e in xs:
        try:
            low, high = report.interval(e)
        except ValueError:
            return None
        if math.isnan(low):
            return None
        lows.append(low)
        highs.append(high)
    return (lows, highs) if xs else None


def _escape(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "Comparison.save_plot needs matplotlib, which is not installed. Install it with "
            "`pip install advgrad[plots]` (or `pip install matplotlib`)."
        ) from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt
