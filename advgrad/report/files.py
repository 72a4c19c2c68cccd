"""The report as files: JSON written and read back (bounded, then checked), CSV written.

JSON is written strictly: a non-finite number is written as null (an inf minimal norm or
bound is read back as inf, a loss as NaN), eps keys as ``repr(float)``. Reading refuses
anything but a regular file of at most 256 MiB before reading it, and hands what it parsed
to `advgrad.report.validate.build`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from advgrad._io import FileTooLargeError, NotRegularFileError, atomic_write, read_regular
from advgrad._validation import ArgumentError, invalid
from advgrad.outcomes import outcome_text
from advgrad.report.stats import eps_key
from advgrad.report.validate import build

if TYPE_CHECKING:
    from advgrad.report.core import Report

__all__ = ["MAX_REPORT_BYTES", "from_json", "read_text", "to_csv", "to_dict", "to_json"]

MAX_REPORT_BYTES = 256 << 20
"""The largest report file `Report.from_json` reads, in bytes (256 MiB: reports hold
per-sample outcomes)."""

_EPS_KEYED = ("robust_accuracy", "outcomes")
_NESTED_EPS_KEYED = ("per_attack", "attack_outcomes", "loss_trend", "targeted_success")


def to_dict(report: Report) -> dict[str, Any]:
    """A JSON-ready dict: eps keys as strings, arrays as lists, non-finite numbers as None
    (no ``adversarial``)."""
    out: dict[str, Any] = {"format": "advgrad.report", "version": 1}
    for f in dataclasses.fields(report):
        if f.name == "adversarial" or (
            f.name in ("labels", "curve", "distribute") and getattr(report, f.name) is None
        ):
            continue  # no labels: written as reports were before they existed
        value = getattr(report, f.name)
        if f.name in _EPS_KEYED:
            value = {eps_key(e): v for e, v in value.items()}
        elif f.name in _NESTED_EPS_KEYED:
            value = {k: {eps_key(e): v for e, v in d.items()} for k, d in value.items()}
        out[f.name] = _plain(value)
    return out


def to_json(
    report: Report, path: str | os.PathLike | None = None, *, indent: int | None = 1
) -> str:
    """The report as JSON text (`Report.to_json`); also written to `path` when given."""
    text = json.dumps(report.to_dict(), indent=indent, allow_nan=False)
    if path is not None:
        atomic_write(path, text + "\n")
    return text


def from_json(cls: type[Report], source: str | os.PathLike) -> Report:
    """`Report.from_json`: a report of class `cls` from a path or JSON text."""
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text, origin = source, None
    else:
        text = read_text(source)
        origin = os.fspath(source)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise invalid("source", "report JSON (from Report.to_json)", source) from None
    if not isinstance(data, dict) or data.get("format") != "advgrad.report":
        raise invalid("source", "report JSON (from Report.to_json)", source)
    return build(cls, data, "source", origin)


def to_csv(report: Report, path: str | os.PathLike | None = None) -> str:
    """The per-sample outcomes as CSV text (`Report.to_csv`); also written to `path`."""
    header = ["index"] + (["label"] if report.labels is not None else [])
    columns: list[list[str]] = []
    for e in report.eps:
        header.append(f"eps={eps_key(e)}")
        codes = report.outcomes.get(e)
        columns.append(
            [outcome_text(int(c), report.attacks) for c in np.asarray(codes)]
            if codes is not None
            else []
        )
        for label in report.attacks:
            flags = report.attack_outcomes.get(label, {}).get(e)
            if flags is not None:
                header.append(f"eps={eps_key(e)}/{label}")
                columns.append(["1" if f else "0" for f in np.asarray(flags, bool)])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for i in range(report.n_samples):
        row = [str(i)]
        if report.labels is not None:
            row.append(str(report.labels[i]) if i < len(report.labels) else "")
        row += [column[i] if i < len(column) else "" for column in columns]
        writer.writerow(row)
    text = buffer.getvalue()
    if path is not None:
        atomic_write(path, text)
    return text


def read_text(source: Any) -> str:
    """The text of the report file `source`: a regular file under `MAX_REPORT_BYTES`."""
    if not isinstance(source, (str, os.PathLike)):
        raise invalid("source", "a report JSON file or JSON text", source)
    expected = "a report JSON file or JSON text"
    try:
        raw = read_regular(source, MAX_REPORT_BYTES)
    except NotRegularFileError:
        reason = f"not a regular file: {os.fspath(source)}."
        raise ArgumentError("source", reason, expected=expected) from None
    except FileTooLargeError as err:
        reason = f"report file too large: {err.size} bytes (limit {_size_text(MAX_REPORT_BYTES)})."
        raise ArgumentError("source", reason, expected=expected) from None
    except (OSError, ValueError):
        raise invalid("source", expected, source) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("source", "report JSON (from Report.to_json)", source) from None


def _size_text(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 and not size % (1 << 20) else f"{size} bytes"


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
