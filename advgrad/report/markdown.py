"""The report as text: the Markdown report, the summary ``print(report)`` shows, its HTML.

`to_markdown` is what ``report.md`` holds (`advgrad.report.Report.to_markdown`): what was
measured, the robust-accuracy table with Wilson intervals, the curve, the targeted success,
the per-class table and the flags. `summary` and `one_line` are ``str`` and ``repr`` of a
report; `html` renders the Markdown for notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from advgrad.outcomes import OUTCOME_CODES
from advgrad.report.stats import CASCADE, NORM_NAMES, eps_label, wilson

if TYPE_CHECKING:
    from advgrad.report.core import Report

__all__ = ["html", "one_line", "summary", "threat_model", "to_markdown"]


def to_markdown(report: Report, *, digits: int = 1, intervals: bool = True) -> str:
    """The Markdown text of `Report.to_markdown`."""

    def pct(value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        return f"{100 * value:.{digits}f}%"

    shown = []

    def ci(e: float, attack: str | None) -> str:
        counts = report.robust_counts(e, attack) if intervals else None
        if counts is None or counts[1] == 0:
            return ""
        shown.append(True)
        low, high = wilson(*counts, 0.95)
        return f" [{100 * low:.{digits}f}, {100 * high:.{digits}f}]"

    lines = [
        f"# {report.title()}",
        "",
        *_header(report),
        f"Clean accuracy: **{pct(report.clean_fraction())}** on {report.n_samples} samples.",
        "",
    ]
    if report.eps:  # a curve-only report (eps="curve") has no fixed-eps table
        lines += [
            "| attack | " + " | ".join(f"eps={eps_label(e)}" for e in report.eps) + " |",
            "|---|" + "---:|" * len(report.eps),
        ]
        for label in report.attacks:
            if label in report.per_attack:
                cells = [pct(report.robust_fraction(e, label)) + ci(e, label) for e in report.eps]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        cascade = [f"**{pct(report.robust_fraction(e))}**{ci(e, None)}" for e in report.eps]
        lines.append(f"| **{CASCADE}** | " + " | ".join(cascade) + " |")
        if shown:
            lines += ["", "In brackets: 95% confidence interval (Wilson score), in percent."]
        lines.append("")
    if report.curve:
        lines += [*_curve_lines(report, pct), ""]
    if report.targeted_success:
        lines += [*_targeted_lines(report, pct), ""]
    classes = _class_table(report, pct) if report.labels is not None else []
    if classes:
        lines += [*classes, ""]
    if report.flags:
        lines.append("Sanity flags:")
        lines.append("")
        for flag in report.flags:
            text = f"{flag.get('message', '')} {flag.get('advice', '')}".strip()
            lines.append(f"- **{flag.get('code')}**: {text}")
    else:
        lines.append("No sanity flags.")
    details = []
    if report.gradients:
        counts = ", ".join(
            f"{label} {report.gradients.get(label, 0):,}" for label in report.attacks
        )
        details.append(f"Gradient evaluations: {counts}.")
    if report.versions:
        versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
        details.append(f"Seed {report.seed}, batch size {report.batch_size}; {versions}.")
    if details:
        lines += ["", *details]
    if report.outcomes:
        lines += ["", OUTCOME_CODES]
    return "\n".join(lines)


def _curve_lines(report: Report, pct: Callable[[float | None], str]) -> list[str]:
    """The curve's summary: the minimal norms' median and the accuracy at the fixed eps
    (or at the quartiles of the norms found)."""
    curve = report.curve or {}
    norms = np.asarray(curve.get("norms", []), np.float64)
    name = NORM_NAMES.get(str(curve.get("norm")), str(curve.get("norm")))
    attacks = ", ".join(curve.get("attacks", []))
    found = norms[np.isfinite(norms)]
    median = float(np.median(norms)) if norms.size else math.nan
    lines = [
        f"Robustness curve ({name}, minimal norms from {attacks}): median smallest "
        f"adversarial perturbation {median:.4g}; none found for "
        f"{int(np.sum(np.isinf(norms)))} of {norms.size} samples.",
        "",
    ]
    points = list(report.eps) or sorted(
        {float(np.quantile(found, q)) for q in (0.25, 0.5, 0.75)} if found.size else set()
    )
    if points:
        lines.append("| eps | " + " | ".join(eps_label(e) for e in points) + " |")
        lines.append("|---|" + "---:|" * len(points))
        cells = [pct(report.curve_accuracy(e)) for e in points]
        lines.append("| robust accuracy (curve) | " + " | ".join(cells) + " |")
    return lines


def _targeted_lines(report: Report, pct: Callable[[float | None], str]) -> list[str]:
    lines = ["Targeted success (samples moved to their target class, of those attacked):", ""]
    for label in report.attacks:
        counts = report.targeted_success.get(label)
        if counts:
            cells = [
                f"eps={eps_label(e)} {pct(report.targeted_rate(label, e))} "
                f"({counts[e][0]}/{counts[e][1]})"
                for e in report.eps
                if e in counts
            ]
            lines.append(f"- {label}: " + ", ".join(cells))
    return lines


def _header(report: Report) -> list[str]:
    """What was measured, before any number: model, data, threat model, attacks."""
    lines = []
    if report.model:
        name, digest = report.model.get("name", "?"), str(report.model.get("weights_sha256", ""))
        size = report.model.get("parameters")
        count = f", {size:,} parameters" if isinstance(size, int) else ""
        source = report.model.get("source")
        origin = f" from {source}" if source and source != name else ""
        lines.append(
            f"- Model: {name}{origin} ({report.model.get('class', '?')}{count}; weights "
            f"sha256 {digest[:12]})"
        )
    if report.data:
        named = f"{report.data['name']}, " if report.data.get("name") else ""
        lines.append(
            f"- Data: {named}{report.data.get('n_samples', report.n_samples)} samples "
            f"(sha256 {str(report.data.get('sha256', ''))[:12]})"
        )
    if report.distribute:
        lines.append(f"- Distribution: {_distribute_text(report.distribute)}")
    if report.suite:
        lines.append(f"- Threat model: {threat_model(report)}")
        hidden = {"name", "eps", "norm", "bounds", "budget", "progress", "batch_size"}
        attacks = []
        for label, config in zip(report.attacks, report.suite, strict=False):
            settings = ", ".join(
                f"{k}={v!r}"
                for k, v in config.items()
                if k not in hidden and v is not None and (k, v) != ("jit_compile", False)
            )
            attacks.append(f"{label} ({settings})" if settings else label)
        lines.append(f"- Attacks, in cascade order: {'; '.join(attacks)}")
    return [*lines, ""] if lines else []


def threat_model(report: Report) -> str:
    """Norm, bounds, frozen inputs and the eps swept, as text."""
    eps = [*(eps_label(e) for e in report.eps), *(["curve"] if report.curve else [])]
    return f"{_threat_text(report.suite)}; eps swept: {', '.join(eps)}"


def summary(report: Report) -> str:
    """`str(report)`: accuracies with their 95% intervals, the threat model, the flags."""

    def pct(counts: tuple[int, int]) -> str:
        if not counts[1]:
            return "n/a"
        low, high = wilson(*counts, 0.95)
        return f"{100 * counts[0] / counts[1]:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"

    lines = [report.title(), f"  clean accuracy   {pct(report.clean_counts())}"]
    rows = []
    for e in report.eps:
        counts = report.robust_counts(e)
        if counts is None:  # no outcomes: the stored figure
            value = report.robust_accuracy.get(e, math.nan)
            counts = (round(value * report.n_samples), report.n_samples)
        rows.append(f"eps={eps_label(e)}: {pct(counts)}")
    over = f" (worst case over {', '.join(report.attacks)})" if report.attacks else ""
    for i, row in enumerate(rows):
        head = "  robust accuracy  " if i == 0 else " " * 19
        lines.append(head + row + (over if i == 0 else ""))
    if report.curve:
        norms = np.asarray(report.curve.get("norms", []), np.float64)
        name = NORM_NAMES.get(str(report.curve.get("norm")), str(report.curve.get("norm")))
        median = float(np.median(norms)) if norms.size else math.nan
        lines.append(
            f"  curve            {name} minimal norms from "
            f"{', '.join(report.curve.get('attacks', []))}: median {median:.4g}, none "
            f"found for {int(np.sum(np.isinf(norms)))} of {norms.size}"
        )
    if report.suite:
        lines.append(f"  threat model     {threat_model(report)}")
    if report.distribute and report.distribute.get("strategy") != "none":
        lines.append(f"  distribution     {_distribute_text(report.distribute)}")
    codes: dict[str, int] = {}
    for flag in report.flags:
        codes[str(flag.get("code"))] = codes.get(str(flag.get("code")), 0) + 1
    flags = ", ".join(f"{c} (x{k})" if k > 1 else c for c, k in codes.items()) or "none"
    lines.append(f"  flags            {flags}")
    if codes:
        lines.append(" " * 19 + "(report.flags: what each means and what to try)")
    return "\n".join(lines)


def one_line(report: Report) -> str:
    """`repr(report)`: the model, the sample count, the accuracies and the flags' codes."""
    robust = ", ".join(
        f"eps={eps_label(e)} {100 * v:.1f}%"
        for e in report.eps
        if (v := report.robust_fraction(e)) is not None and not math.isnan(v)
    )
    flags = ", ".join(dict.fromkeys(str(f.get("code")) for f in report.flags)) or "none"
    clean = 100 * report.clean_fraction()
    robust = f", robust {robust}" if robust else ""
    return f"<Report {report.title()!r}: clean {clean:.1f}%{robust}, flags: {flags}>"


def _class_table(report: Report, pct: Callable[[float | None], str]) -> list[str]:
    """Markdown lines of the per-class table (worst case), or [] without outcomes."""
    per_eps = {}
    for e in report.eps:
        try:
            per_eps[e] = report.per_class(e)
        except ValueError:
            continue
    if not per_eps:
        return []
    classes = sorted({c for table in per_eps.values() for c in table})
    any_table = next(iter(per_eps.values()))
    lines = [
        "Worst-case robust accuracy per class:",
        "",
        "| class | n | " + " | ".join(f"eps={eps_label(e)}" for e in per_eps) + " |",
        "|---:|---:|" + "---:|" * len(per_eps),
    ]
    for c in classes:
        n = any_table[c][1]
        cells = [pct(table[c][0] / n if n else None) for table in per_eps.values()]
        lines.append(f"| {c} | {n} | " + " | ".join(cells) + " |")
    return lines


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


def html(text: str) -> str:
    """The Markdown `Report.to_markdown` writes (headings, lists, tables, paragraphs, bold
    and code spans) as HTML, every text escaped.

    >>> print(html("# A <b>" + chr(10) * 2 + "- **x**: `1`"))
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
