"""The resumable state of an evaluation: what was done, for which run, saved after each batch.

A `Tally` holds everything a resumed run needs (per-sample outcomes and counters, per
finished batch). A `StateFile` writes it as JSON after every batch with
`advgrad._io.atomic_write` (a crash leaves the previous file or the new one, never a part),
together with the run's *fingerprint*: digests of the model's weights and the suite's
settings, the eps values, batch size, seed, `individual` and (unless the default) the
targets rule. After each finished batch it
also holds the digest of the data so far (`DataDigest`: of the samples' content, whatever
the batching), so a resumed run is refused unless it evaluates exactly what the file was
written for. A saved state is checked, not trusted: it is read
only if it is a regular file of at most `MAX_STATE_BYTES`, and resumed only if it holds
exactly what `StateFile.write` writes (`check_saved`); anything else is an `ArgumentError`
naming `state`, and the file is left as it was.

>>> fingerprint("abc", [{"name": "fgsm", "eps": 0.1, "progress": True}], [0.1], 8, 0, True)[
...     "eps"]
['0.1']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from advgrad._io import FileTooLargeError, NotRegularFileError, atomic_write, read_regular
from advgrad._validation import ArgumentError, describe, invalid
from advgrad.evaluation.saved import Damaged, check_saved
from advgrad.nest import Structure
from advgrad.provenance import sha

__all__ = [
    "MAX_STATE_BYTES",
    "STATE_FORMAT",
    "STATE_VERSION",
    "Damaged",
    "DataDigest",
    "StateFile",
    "Tally",
    "check_saved",
    "fingerprint",
]

STATE_FORMAT = "advgrad.evaluate.state"
STATE_VERSION = 2  # 2: batch_hashes are `DataDigest`s of the samples so far


# --------------------------------------------------------------- fingerprint
class DataDigest:
    """The data's identity: SHA-256 of its samples' content, in order, whatever the batching.

    `update` takes the batches in turn. Each input (by name) and the labels are one stream
    of rows each, so the batches ``[0:4]`` and ``[4:6]`` digest like ``[0:6]``: runs of the
    same data at two batch sizes, or from arrays and from a `tf.data.Dataset`, have the same
    digest. An input's dtype and per-sample shape are part of its stream; labels count as
    class ids (any integer dtype, ``[n, 1]`` or exact one-hot rows alike; other rows: their
    float64 values). `update` returns the digest of every sample so far: `evaluate` stores
    it after each batch (``batch_hashes``), a resumed run checks the batches it skips
    against it as the data streams again, and the last one is the report's data sha256
    (`describe`).

    >>> x, y = np.arange(12, dtype="float32").reshape(6, 2), np.arange(6) % 2
    >>> whole, parts = DataDigest(), DataDigest()
    >>> done = whole.update(x, y)
    >>> _ = parts.update(x[:4], y[:4]), parts.update(x[4:], np.eye(2)[y[4:]])
    >>> parts.hexdigest() == done
    True
    """

    SCHEME = "content"
    """``data["sha256_of"]`` in a report: what its ``sha256`` digests (absent from reports
    written before: the digests of the batches, which depend on ``batch_size``)."""

    def __init__(self) -> None:
        # per stream ("x/<name>", "y"): [(spec, finished hash), ...], the open spec and hash
        self._done: dict[str, list[tuple[str, str]]] = {}
        self._open: dict[str, tuple[str, Any]] = {}

    def update(self, x: Any, y: Any) -> str:
        """Add one batch (inputs `x`, labels `y`); the digest of every sample so far."""
        structure = Structure.of(x)
        rows = [
            (f"x/{name}", np.asarray(leaf))
            for name, leaf in zip(structure.names, structure.leaves(x), strict=True)
        ]
        for key, array in [*rows, ("y", _label_rows(y))]:
            array = np.ascontiguousarray(array)
            spec = f"{array.dtype.str}{array.shape[1:]}"
            current = self._open.get(key)
            if current is None or current[0] != spec:  # a new stream, or a new dtype/shape
                if current is not None:
                    self._done.setdefault(key, []).append((current[0], current[1].hexdigest()))
                current = self._open[key] = (spec, hashlib.sha256())
            current[1].update(array.tobytes())
        return self.hexdigest()

    def hexdigest(self) -> str:
        """The digest of every sample so far."""
        parts: list[str] = []
        for key in sorted(self._open):
            spec, stream = self._open[key]
            for piece in [*self._done.get(key, []), (spec, stream.hexdigest())]:
                parts += [key, *piece]
        return sha(self.SCHEME, *parts)

    def describe(self) -> dict[str, str]:
        """The report's entries: ``{"sha256": ..., "sha256_of": "content"}``."""
        return {"sha256": self.hexdigest(), "sha256_of": self.SCHEME}


def _label_rows(y: Any) -> np.ndarray:
    """Labels as `DataDigest` hashes them: class ids (int64), or float64 rows of scores."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        one_hot = np.all((y == 0) | (y == 1)) and np.all(np.sum(y == 1, axis=1) == 1)
        return np.argmax(y, axis=1).astype(np.int64) if one_hot else y.astype(np.float64)
    return y.reshape(len(y)).astype(np.int64)


def _suite_fingerprint(configs: list[dict]) -> list[dict]:
    """Configs without the settings `evaluate` overrides or that change nothing (progress)."""
    return [{k: v for k, v in c.items() if k not in ("eps", "progress")} for c in configs]


def fingerprint(
    model_sha: str,
    configs: list[dict],
    eps: list[float],
    batch_size: int,
    seed: int,
    individual: bool,
    targets: str | None = None,
) -> dict[str, Any]:
    """What a state file must have been written for to be resumed by this run.

    `targets` is the targets rule's entry (`advgrad.evaluation.targeting.TargetRule.fingerprint`:
    ``"class 3"``, a rule name, or an array's SHA-256); None for the default rule, which
    adds no key, so a state written before the ``targets`` argument existed still resumes.
    """
    suite = json.dumps(_suite_fingerprint(configs), sort_keys=True, default=repr)
    result = {
        "model": model_sha,
        "suite": sha(suite),
        "eps": [repr(e) for e in eps],
        "batch_size": batch_size,
        "seed": seed,
        "individual": individual,
    }
    if targets is not None:
        result["targets"] = targets
    return result


# --------------------------------------------------------------------- tally
@dataclasses.dataclass
class Tally:
    """Everything a resumed run needs: per-sample outcomes and counters, per finished batch."""

    labels: list[str]
    eps: list[float]
    n_samples: int = 0
    clean_correct: int = 0
    batch_hashes: list[str] = dataclasses.field(default_factory=list)
    codes: list[list[np.ndarray]] = dataclasses.field(default_factory=list)
    alone: dict[str, list[list[np.ndarray]]] = dataclasses.field(default_factory=dict)
    gradients: dict[str, int] = dataclasses.field(default_factory=dict)
    queries: dict[str, int] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    per_sample: dict[str, int] = dataclasses.field(default_factory=dict)
    loss: dict[str, list[list[float]]] = dataclasses.field(default_factory=dict)
    # Targeted attacks: [samples moved to their target class, samples attacked] per eps;
    # None where a resumed state predates the count (the rate is then unknown).
    targeted: dict[str, list[list[int]] | None] = dataclasses.field(default_factory=dict)
    # eps="curve": {"labels", "parts" (each batch's minimal norms), "gradients", "seconds"}
    curve: dict[str, Any] | None = None
    # A suite with rules: its `advgrad.evaluation.adaptive.Record` (decisions and spend)
    adaptive: Any = None
    sizes: list[int] = dataclasses.field(default_factory=list)  # samples per finished batch
    # The data so far, fed every batch as it streams (resumed ones too); not saved: its
    # digest after each finished batch is, in batch_hashes.
    digest: DataDigest = dataclasses.field(default_factory=DataDigest, repr=False)

    def __post_init__(self) -> None:
        if not self.codes:
            self.codes = [[] for _ in self.eps]
        for label in self.labels:
            self.alone.setdefault(label, [[] for _ in self.eps])
            self.gradients.setdefault(label, 0)
            self.queries.setdefault(label, 0)
            self.timings.setdefault(label, 0.0)
            self.per_sample.setdefault(label, 0)
            self.loss.setdefault(label, [[0.0, 0.0, 0.0] for _ in self.eps])
            self.targeted.setdefault(label, [[0, 0] for _ in self.eps])

    def outcomes(self, e: int) -> np.ndarray:
        """The cascade's outcome codes of every finished sample at eps number `e`."""
        parts = self.codes[e]
        return np.concatenate(parts).astype(np.int8) if parts else np.zeros(0, np.int8)

    def robust_alone(self, label: str, e: int) -> np.ndarray:
        """Per finished sample: robust against attack `label` alone at eps number `e`."""
        parts = self.alone[label][e]
        return np.concatenate(parts).astype(bool) if parts else np.zeros(0, bool)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON data; `from_state` reads it back."""
        keys = [repr(e) for e in self.eps]
        return {
            "n_samples": self.n_samples,
            "clean_correct": self.clean_correct,
            "batch_hashes": self.batch_hashes,
            "outcomes": {k: self.outcomes(i).tolist() for i, k in enumerate(keys)},
            "attack_outcomes": {
                label: {
                    k: self.robust_alone(label, i).astype(int).tolist()
                    for i, k in enumerate(keys)
                    if self.alone[label][i]
                }
                for label in self.labels
            },
            "batch_sizes": list(self.sizes),
            "gradients": self.gradients,
            "queries": self.queries,
            "timings": self.timings,
            "gradients_per_sample": self.per_sample,
            "loss": self.loss,
            "targeted": self.targeted,
            **({} if self.curve is None else {"curve": self.curve_state()}),
            **({} if self.adaptive is None else {"adaptive": self.adaptive.to_state()}),
        }

    def start_curve(self, labels: list[str]) -> None:
        """Record minimal norms too (``evaluate(..., eps="curve")``)."""
        self.curve = {
            "labels": list(labels),
            "parts": [],
            "gradients": dict.fromkeys(labels, 0),
            "seconds": dict.fromkeys(labels, 0.0),
            "non_finite": {"clean": [], "attacked": []},  # sample indices (curve.Curve)
        }

    def curve_norms(self) -> np.ndarray:
        """Every finished sample's minimal norm (inf: none found; 0: misclassified)."""
        parts = (self.curve or {}).get("parts", [])
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)

    def curve_state(self) -> dict[str, Any]:
        """The curve's part of `to_state`: an inf norm (none found) as None (JSON null)."""
        curve = self.curve or {}
        norms = self.curve_norms()
        return {
            "norms": [None if math.isinf(v) else v for v in norms.tolist()],
            "gradients": dict(curve["gradients"]),
            "seconds": dict(curve["seconds"]),
            "non_finite": {k: list(v) for k, v in curve["non_finite"].items()},
        }

    @classmethod
    def from_state(cls, labels: list[str], eps: list[float], state: Mapping) -> Tally:
        """The tally `to_state` saved, for the attack `labels` and `eps` of this run."""
        tally = cls(labels, eps)
        sizes = state["batch_sizes"]
        bounds = np.cumsum([0, *sizes])
        keys = [repr(e) for e in eps]

        def split(values: list, dtype: Any) -> list[np.ndarray]:
            array = np.asarray(values, dtype)
            return [array[bounds[i] : bounds[i + 1]] for i in range(len(sizes))]

        tally.sizes = [int(v) for v in sizes]
        tally.n_samples = int(state["n_samples"])
        tally.clean_correct = int(state["clean_correct"])
        tally.batch_hashes = list(state["batch_hashes"])
        tally.codes = [split(state["outcomes"][k], np.int8) for k in keys]
        for label in labels:
            saved = state["attack_outcomes"].get(label, {})
            tally.alone[label] = [split(saved[k], bool) if k in saved else [] for k in keys]
        tally.gradients.update({k: int(v) for k, v in state["gradients"].items()})
        tally.queries.update({k: int(v) for k, v in state["queries"].items()})
        tally.timings.update({k: float(v) for k, v in state["timings"].items()})
        tally.per_sample.update({k: int(v) for k, v in state["gradients_per_sample"].items()})
        tally.loss.update({k: [list(map(float, r)) for r in v] for k, v in state["loss"].items()})
        saved = state.get("targeted")  # absent from states written before it was counted
        for label in labels:
            rows = None if saved is None else saved.get(label)
            tally.targeted[label] = None if rows is None else [list(map(int, r)) for r in rows]
        return tally

    def resume_curve(self, state: Mapping) -> None:
        """The minimal norms and counters `to_state` saved (after `start_curve`)."""
        saved = state["curve"]
        bounds = np.cumsum([0, *self.sizes])
        norms = np.asarray([np.inf if v is None else v for v in saved["norms"]], np.float64)
        self.curve["parts"] = [norms[bounds[i] : bounds[i + 1]] for i in range(len(self.sizes))]
        self.curve["gradients"].update({k: int(v) for k, v in saved["gradients"].items()})
        self.curve["seconds"].update({k: float(v) for k, v in saved["seconds"].items()})
        for key, indices in saved.get("non_finite", {}).items():  # absent: states before it
            self.curve["non_finite"][key] = [int(i) for i in indices]


MAX_STATE_BYTES = 1 << 30
"""The largest state file `StateFile` reads: 1 GiB (the outcomes of some 100 million samples)."""


class StateFile:
    """The resumable state: read and checked once, written atomically after each batch.

    A saved state is checked, not trusted: before a run resumes it, the file must be a
    regular file of at most `MAX_STATE_BYTES`, parse as JSON, carry this run's fingerprint,
    and hold exactly what `write` writes (`check_saved`: every key with its JSON type,
    bounded counters, outcomes consistent with the batches and with each other).

    Args:
        path: The JSON file (str or os.PathLike); it need not exist.
        fingerprint: This run's `fingerprint`.
        labels: This run's attack labels, in suite order.

    Raises:
        ArgumentError: Naming `state`, if `path` is not a path, or the file exists but is
            not a regular file, is too large, cannot be read or parsed, is not an advgrad
            state, has another state version or another fingerprint, or is damaged (the
            file is left unchanged).
    """

    def __init__(self, path: Any, fingerprint: dict[str, Any], labels: list[str]):
        if not isinstance(path, (str, os.PathLike)):
            raise invalid("state", "None or a file path (str or os.PathLike)", path)
        self.path = pathlib.Path(path)
        self.fingerprint = fingerprint
        self.labels = list(labels)
        self.saved: dict[str, Any] | None = None
        if self.path.exists():
            self.saved = self._read()

    def refuse(self, why: str) -> ArgumentError:
        """The error naming `state`: this file is not a state to resume, `why`."""
        expected = "a state file written by advgrad.evaluate"
        received = repr(str(self.path))
        return ArgumentError(
            "state",
            f"expected {expected}, received state={received}, {why}",
            expected=expected,
            received=received,
        )

    def _read(self) -> dict[str, Any]:
        afresh = "Delete it to start afresh, or pass another `state` path."
        try:
            data = read_regular(self.path, MAX_STATE_BYTES)  # never a FIFO or a device
        except NotRegularFileError:
            raise self.refuse(f"which is not a regular file. {afresh}") from None
        except FileTooLargeError as err:
            raise self.refuse(
                f"which is {err.size} bytes, more than a state file may hold "
                f"({MAX_STATE_BYTES} bytes). {afresh}"
            ) from None
        except OSError as err:
            raise self.refuse(f"which cannot be read ({err}). {afresh}") from None
        try:
            saved = json.loads(data.decode("utf-8"))
        except RecursionError:
            raise self.refuse(f"which cannot be read (JSON nested too deeply). {afresh}") from None
        except (OverflowError, ValueError) as err:
            text = str(err)
            text = text if len(text) <= 200 else text[:197] + "..."
            raise self.refuse(f"which cannot be read ({text}). {afresh}") from None
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise self.refuse("which is not one.")
        version = saved.get("version")
        if type(version) is not int or version != STATE_VERSION:
            raise self.refuse(
                f"which has state version {describe(version)}; this version of advgrad "
                f"reads version {STATE_VERSION} only. Pass another `state` path, or delete "
                "the file to start afresh."
            )
        old = saved.get("fingerprint")
        if type(old) is not dict:
            raise self.refuse(
                f"which is damaged: fingerprint is {describe(old)}, not an object. {afresh}"
            )
        differs = [
            k
            for k, v in self.fingerprint.items()
            if k not in old or type(old[k]) is not type(v) or old[k] != v
        ]
        differs += [k for k in old if k not in self.fingerprint]
        if differs:
            raise self.mismatch(", ".join(differs))
        try:
            check_saved(saved, self.fingerprint, self.labels)
        except Damaged as err:
            raise self.refuse(f"which is damaged: {err}. {afresh}") from None
        return saved

    def mismatch(self, what: str) -> ArgumentError:
        """The error for a state written for another run (`what` differs)."""
        return ArgumentError(
            "state",
            f"the state file {str(self.path)!r} was written for a different model/data/suite "
            f"(differs in: {what}). Its results cannot be mixed with this run's: pass another "
            "`state` path, or delete the file to start afresh.",
        )

    @property
    def batches_done(self) -> int:
        """Batches finished by the run that wrote the file (0 without a file)."""
        return 0 if self.saved is None else len(self.saved["tally"]["batch_hashes"])

    @property
    def complete(self) -> bool:
        """Whether that run finished every batch."""
        return bool(self.saved and self.saved["complete"])

    def write(self, tally: Tally, complete: bool) -> None:
        """Save `tally` (atomically: the old file or the new one, never a part) as strict
        JSON: no NaN or Infinity (a ValueError rather than an invalid file)."""
        payload = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "complete": complete,
            "batches_done": len(tally.batch_hashes),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tally": tally.to_state(),
        }
        atomic_write(self.path, json.dumps(payload, separators=(",", ":"), allow_nan=False))
