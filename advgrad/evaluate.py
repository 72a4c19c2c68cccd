"""Robust accuracy of a model under a suite of attacks: worst case per sample, resumable.

`evaluate` streams the data batch by batch. For every batch and every eps it predicts the
clean inputs first (misclassified samples are non-robust at every eps and no attack runs on
them), then runs the attacks of the suite; a sample is robust only if every attack failed on
it (the AutoAttack cascade, Croce & Hein 2020). Whether an attack fooled a sample is decided
by the model's own prediction on the returned input, after checking that the input lies in
the attack's threat model (its eps ball and bounds; frozen inputs unchanged).

With ``state="runs/x.json"`` the per-sample outcomes and counters are written atomically
after each batch, so a run killed at any point resumes at the first unfinished batch and
gives exactly the result of an uninterrupted run: every (batch, attack, eps) has its own
seed derived from ``seed``.

>>> from advgrad import data, zoo
>>> from advgrad.attacks import get_attack
>>> from advgrad.evaluate import evaluate
>>> ds = data.digits()
>>> report = evaluate(
...     zoo.load("digits-cnn"), (ds.x_test[:32], ds.y_test[:32]),
...     suite=[get_attack("fgsm", bounds=ds.bounds)], eps=[0.0, 0.3], sanity=False)
>>> report.robust_accuracy[0.0] == report.clean_accuracy, report.robust_accuracy[0.3] < 0.5
(True, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import numbers
import os
import pathlib
import platform
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from advgrad._validation import invalid
from advgrad.gradients import compile_once
from advgrad.models import ModelAdapter
from advgrad.nest import Structure
from advgrad.report import CLEAN_MISCLASSIFIED, ROBUST, Report

if TYPE_CHECKING:
    from advgrad.attacks import Attack

__all__ = ["evaluate", "predict", "predicted_classes", "class_ids"]

STATE_FORMAT = "advgrad.evaluate.state"
STATE_VERSION = 1
SANITY_SAMPLES = 64
"""How many of the first samples the sanity checks of `advgrad.sanity` look at."""


# ---------------------------------------------------------------- predictions
def predict(model: Any, x: Any) -> np.ndarray:
    """The model's output on `x` (inference mode), as numpy: logits or probabilities.

    Runs in a `tf.function` cached per model (one trace serves every batch size).

    Args:
        model: A keras.Model or a callable on tensors with one classification output.
        x: An array, or a list or dict of arrays, matching the model's inputs.

    Returns:
        Array of shape ``[batch, classes]`` (or ``[batch, 1]`` for a binary output).

    Raises:
        ValueError: If the model has several outputs.

    >>> from advgrad import data, zoo
    >>> predict(zoo.load("digits-mlp"), data.digits(flat=True).x_test[:3]).shape
    (3, 10)
    """
    adapter = ModelAdapter.of(model)
    given, leaves = adapter.split_inputs(x)
    tensors = [tf.convert_to_tensor(v) for v in leaves.values()]
    specs = tuple(tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in tensors)
    key = ("advgrad.evaluate.forward", given, tuple(leaves), specs)
    fn = adapter.cache.get(key)
    if fn is None:  # one trace per input signature, whatever the batch size
        names = tuple(leaves)

        def forward(*values):
            return adapter(adapter.pack_inputs(dict(zip(names, values, strict=True)), given))

        fn = compile_once(forward, specs)
        adapter.cache[key] = fn
    outputs = tf.nest.flatten(fn(*tensors))
    if len(outputs) != 1:
        raise invalid("model", "a model with a single classification output", model)
    return np.asarray(outputs[0])


def predicted_classes(model: Any, x: Any, outputs: np.ndarray | None = None) -> np.ndarray:
    """Predicted class ids: argmax over the last axis (a threshold for one binary unit).

    Args:
        model: As for `predict`.
        x: Inputs, as for `predict`.
        outputs: The model's outputs on `x` when already computed. Defaults to None.

    Returns:
        int64 array ``[batch]``.

    >>> from advgrad import data, zoo
    >>> predicted_classes(zoo.load("digits-mlp"), data.digits(flat=True).x_test[:3]).dtype
    dtype('int64')
    """
    out = predict(model, x) if outputs is None else np.asarray(outputs)
    if out.ndim == 1 or out.shape[-1] == 1:
        sigmoid = ModelAdapter.of(model).final_activation() == "sigmoid"
        return (out.reshape(len(out)) > (0.5 if sigmoid else 0.0)).astype(np.int64)
    return np.argmax(out, axis=-1).astype(np.int64)


def class_ids(y: Any) -> np.ndarray:
    """Integer class ids from labels given as ids (``[B]`` or ``[B, 1]``) or one-hot rows.

    >>> class_ids([[0, 1], [1, 0]]).tolist(), class_ids([3, 1]).tolist()
    ([1, 0], [3, 1])
    """
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] > 1:
        return np.argmax(array, axis=1).astype(np.int64)
    return array.reshape(len(array)).astype(np.int64)


# ----------------------------------------------------------------- arguments
def _resolve_suite(suite: Any) -> list[Attack]:
    from advgrad import attacks as attacks_lib

    if isinstance(suite, (str, Mapping)) or not isinstance(suite, Sequence) or not suite:
        raise invalid("suite", "a non-empty list of attack names, Attack objects or dicts", suite)
    resolved = []
    for item in suite:
        if isinstance(item, attacks_lib.Attack):
            resolved.append(item)
        elif isinstance(item, str):
            if item not in attacks_lib.list_attacks():
                raise invalid("suite", f"attack names among {attacks_lib.list_attacks()}", item)
            resolved.append(attacks_lib.get_attack(item))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            resolved.append(attacks_lib.from_config(dict(item)))
        else:
            raise invalid("suite", "attack names, Attack objects or {'name': ...} dicts", item)
    return resolved


def _resolve_eps(eps: Any) -> list[float]:
    values = list(eps) if isinstance(eps, (list, tuple, np.ndarray)) else [eps]
    if not values:
        raise invalid("eps", "a finite number >= 0 or a non-empty list of them", eps)
    for value in values:
        if (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value))
            or float(value) < 0
        ):
            raise invalid("eps", "a finite number >= 0 or a list of them", value)
    return sorted({float(v) for v in values})


def _labels(attacks: Sequence[Attack]) -> list[str]:
    """Unique row labels: the attack names, with #2, #3... for repeats."""
    counts: dict[str, int] = {}
    labels = []
    for attack in attacks:
        name = getattr(attack, "name", "") or type(attack).__name__.lower()
        counts[name] = counts.get(name, 0) + 1
        labels.append(name if counts[name] == 1 else f"{name}#{counts[name]}")
    return labels


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise invalid(name, "True or False", value)
    return bool(value)


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise invalid(name, f"an int >= {low}", value)
    if value < low:
        raise invalid(name, f"an int >= {low}", value)
    return int(value)


# -------------------------------------------------------------------- data
class _Stream:
    """Batches of exactly `batch_size` samples (the last one shorter) from arrays or tf.data."""

    def __init__(self, data: Any, batch_size: int):
        self.batch_size = batch_size
        self.total: int | None = None
        if isinstance(data, tf.data.Dataset):
            self.dataset = data
            self.arrays = None
            return
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise invalid("data", "an (x, y) pair of arrays or a tf.data.Dataset of them", data)
        x, y = data
        if x is None or y is None:
            raise invalid("data", "an (x, y) pair of arrays or a tf.data.Dataset of them", data)
        structure = Structure.of(x)
        leaves = [_as_array(v) for v in structure.leaves(x)]
        labels = _as_array(y)
        if labels.ndim == 0 or len(labels) == 0:
            raise invalid("data", "labels y with one entry per sample (at least one)", y)
        for leaf in leaves:
            if leaf.ndim == 0 or len(leaf) != len(labels):
                raise invalid("data", f"inputs with {len(labels)} samples (one per label)", leaf)
        self.dataset = None
        self.arrays = (structure, leaves, labels)
        self.total = -(-len(labels) // batch_size)

    def __iter__(self) -> Iterator[tuple[Any, np.ndarray]]:
        if self.arrays is not None:
            structure, leaves, labels = self.arrays
            for start in range(0, len(labels), self.batch_size):
                stop = start + self.batch_size
                yield structure.pack([v[start:stop] for v in leaves]), labels[start:stop]
            return
        yield from self._rebatched()

    def _rebatched(self) -> Iterator[tuple[Any, np.ndarray]]:
        structure = None
        pending: list[tuple[list[np.ndarray], np.ndarray]] = []
        count = 0
        for element in self.dataset.as_numpy_iterator():
            if not isinstance(element, tuple) or len(element) != 2:
                raise invalid("data", "a tf.data.Dataset of (x, y) batches", self.dataset)
            x, y = element
            y = np.asarray(y)
            if y.ndim == 0:
                raise invalid(
                    "data", "a batched tf.data.Dataset of (x, y) (call .batch(n))", self.dataset
                )
            if structure is None:
                structure = Structure.of(x)
            leaves = [np.asarray(v) for v in structure.leaves(x)]
            pending.append((leaves, y))
            count += len(y)
            while count >= self.batch_size:
                batch, pending, count = _split(pending, self.batch_size)
                yield structure.pack(batch[0]), batch[1]
        if count:
            batch, pending, count = _split(pending, count)
            yield structure.pack(batch[0]), batch[1]


def _split(pending, size):
    """Take `size` samples off the front of the pending chunks."""
    leaves = [np.concatenate([c[0][i] for c in pending]) for i in range(len(pending[0][0]))]
    labels = np.concatenate([c[1] for c in pending])
    head = ([v[:size] for v in leaves], labels[:size])
    rest = labels[size:]
    remaining = [([v[size:] for v in leaves], rest)] if len(rest) else []
    return head, remaining, len(rest)


def _as_array(value: Any) -> np.ndarray:
    return value.numpy() if tf.is_tensor(value) else np.asarray(value)


def _take(x: Any, index: np.ndarray) -> Any:
    """Rows `index` of every array of the nest `x`."""
    return tf.nest.map_structure(lambda v: np.asarray(v)[index], x)


def _concat(parts: list[Any]) -> Any:
    return tf.nest.map_structure(lambda *v: np.concatenate(v), *parts)


# --------------------------------------------------------------- fingerprint
def _sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


def _array_digest(h: Any, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())


def _batch_digest(x: Any, y: np.ndarray) -> str:
    h = hashlib.sha256()
    structure = Structure.of(x)
    for name, leaf in zip(structure.names, structure.leaves(x), strict=True):
        h.update(name.encode())
        _array_digest(h, np.asarray(leaf))
    _array_digest(h, np.asarray(y))
    return h.hexdigest()


def _model_digest(model: Any) -> str:
    get_weights = getattr(model, "get_weights", None)
    if get_weights is None:
        return _sha("callable", f"{type(model).__module__}.{type(model).__qualname__}")
    h = hashlib.sha256()
    for weight in get_weights():
        _array_digest(h, np.asarray(weight))
    return h.hexdigest()


def _suite_fingerprint(configs: list[dict]) -> list[dict]:
    """Configs without the settings `evaluate` overrides or that change nothing (progress)."""
    return [{k: v for k, v in c.items() if k not in ("eps", "progress")} for c in configs]


def _versions() -> dict[str, str]:
    import keras

    from advgrad._version import __version__

    return {
        "advgrad": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _describe_model(model: Any, digest: str) -> dict[str, Any]:
    description: dict[str, Any] = {
        "name": getattr(model, "name", None) or type(model).__name__,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "weights_sha256": digest,
    }
    count = getattr(model, "count_params", None)
    if count is not None:
        with contextlib.suppress(Exception):  # an unbuilt model: no parameter count
            description["parameters"] = int(count())
    return description


def _seed(seed: int, attack_seed: Any, batch: int, attack: int, eps: int) -> int:
    """The seed of one (batch, attack, eps): independent of every other batch."""
    own = attack_seed if isinstance(attack_seed, numbers.Integral) else 0
    entropy = [int(seed), int(own), int(batch), int(attack), int(eps)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % (2**31 - 1))


# --------------------------------------------------------------------- tally
@dataclasses.dataclass
class _Tally:
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

    def outcomes(self, e: int) -> np.ndarray:
        parts = self.codes[e]
        return np.concatenate(parts).astype(np.int8) if parts else np.zeros(0, np.int8)

    def robust_alone(self, label: str, e: int) -> np.ndarray:
        parts = self.alone[label][e]
        return np.concatenate(parts).astype(bool) if parts else np.zeros(0, bool)

    def to_state(self) -> dict[str, Any]:
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
            "batch_sizes": [len(c) for c in self.codes[0]],
            "gradients": self.gradients,
            "queries": self.queries,
            "timings": self.timings,
            "gradients_per_sample": self.per_sample,
            "loss": self.loss,
        }

    @classmethod
    def from_state(cls, labels: list[str], eps: list[float], state: Mapping) -> _Tally:
        tally = cls(labels, eps)
        sizes = state["batch_sizes"]
        bounds = np.cumsum([0, *sizes])
        keys = [repr(e) for e in eps]

        def split(values: list, dtype: Any) -> list[np.ndarray]:
            array = np.asarray(values, dtype)
            return [array[bounds[i] : bounds[i + 1]] for i in range(len(sizes))]

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
        return tally


# --------------------------------------------------------------------- state
class _StateFile:
    """The resumable state: read and checked once, written atomically after each batch."""

    def __init__(self, path: Any, fingerprint: dict[str, Any]):
        if not isinstance(path, (str, os.PathLike)):
            raise invalid("state", "None or a file path (str or os.PathLike)", path)
        self.path = pathlib.Path(path)
        self.fingerprint = fingerprint
        self.saved: dict[str, Any] | None = None
        if self.path.exists():
            self.saved = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(
                f"Invalid value for argument `state`: expected a state file written by "
                f"advgrad.evaluate, received state={str(self.path)!r}, which cannot be read "
                f"({err}). Remove it to start afresh."
            ) from None
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise ValueError(
                f"Invalid value for argument `state`: expected a state file written by "
                f"advgrad.evaluate, received state={str(self.path)!r}, which is not one."
            )
        old = saved.get("fingerprint", {})
        differs = [k for k in self.fingerprint if old.get(k) != self.fingerprint[k]]
        if saved.get("version") != STATE_VERSION:
            differs.insert(0, "state version")
        if differs:
            raise self.mismatch(", ".join(differs))
        return saved

    def mismatch(self, what: str) -> ValueError:
        return ValueError(
            f"Invalid value for argument `state`: the state file {str(self.path)!r} was "
            f"written for a different model/data/suite (differs in: {what}). Its results "
            f"cannot be mixed with this run's: pass another `state` path, or delete the "
            f"file to start afresh."
        )

    @property
    def batches_done(self) -> int:
        return 0 if self.saved is None else len(self.saved["tally"]["batch_hashes"])

    @property
    def complete(self) -> bool:
        return bool(self.saved and self.saved.get("complete"))

    def write(self, tally: _Tally, complete: bool) -> None:
        payload = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "complete": complete,
            "batches_done": len(tally.batch_hashes),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tally": tally.to_state(),
        }
        text = json.dumps(payload, separators=(",", ":"))
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        _fsync_dir(folder)


def _fsync_dir(folder: pathlib.Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------- threat model
def _threat(attack: Attack, names: tuple[str, ...], eps: float):
    """One Budget (or None = frozen) per input, as the attack resolves them; None if unknown."""
    try:
        return attack.budgets(names, eps=eps)
    except (ValueError, TypeError):
        return None


def _outside(adapter: ModelAdapter, x: Any, x_adv: Any, budgets: Mapping | None) -> np.ndarray:
    """Per sample: True where `x_adv` leaves the threat model (ball, bounds, frozen inputs)."""
    _, clean = adapter.split_inputs(x)
    _, adv = adapter.split_inputs(x_adv, "x_adv")
    batch = len(next(iter(clean.values())))
    outside = np.zeros(batch, bool)
    if budgets is None:
        return outside
    for name, budget in budgets.items():
        a = np.asarray(adv[name])
        c = np.asarray(clean[name])
        if budget is None:
            outside |= np.any((a != c).reshape(batch, -1), axis=1)
            continue
        if not np.issubdtype(a.dtype, np.floating):
            continue
        delta = (a.astype(np.float64) - c.astype(np.float64)).reshape(batch, -1)
        features = max(delta.shape[1], 1)
        ulp = float(np.finfo(a.dtype).eps) * max(1.0, float(np.max(np.abs(c), initial=0)))
        p = budget.norm.p
        if math.isinf(p):
            size, slack = np.max(np.abs(delta), axis=1, initial=0), 1.0
        elif p == 2:
            size, slack = np.sqrt(np.sum(delta**2, axis=1)), math.sqrt(features)
        else:
            size, slack = np.sum(np.abs(delta), axis=1), float(features)
        outside |= size > budget.eps * (1 + 1e-4) + 4 * ulp * slack
        if not budget.bounds.is_unbounded:
            low = np.asarray(budget.bounds.low, np.float64)
            high = np.asarray(budget.bounds.high, np.float64)
            atol = 4 * ulp * max(1.0, float(np.max(np.abs(np.where(np.isfinite(high), high, 0)))))
            wide = a.astype(np.float64)
            bad = (wide < low - atol) | (wide > high + atol)
            outside |= np.any(bad.reshape(batch, -1), axis=1)
    return outside


def _targets(outputs: np.ndarray, truth: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Targets for targeted attacks: the most likely wrong class, laid out like `y`."""
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        ids = 1 - truth
        classes = 2
    else:
        scores = np.array(outputs, np.float64)
        scores[np.arange(len(truth)), truth] = -np.inf
        ids = np.argmax(scores, axis=1)
        classes = outputs.shape[-1]
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.eye(classes, dtype=y.dtype)[ids]
    return ids.astype(y.dtype).reshape(y.shape)


# ------------------------------------------------------------------ evaluate
def evaluate(
    model: Any,
    data: Any,
    *,
    suite: Sequence[Any],
    eps: float | Sequence[float],
    batch_size: int = 128,
    state: str | os.PathLike | None = None,
    seed: int = 0,
    return_adversarial: bool = False,
    progress: bool = False,
    sanity: bool = True,
    individual: bool = True,
) -> Report:
    """Robust accuracy under the worst case of an attack suite, per eps (AutoAttack-style).

    For each batch and eps: the clean prediction comes first (misclassified samples are
    non-robust at every eps; no attack runs on them); then the attacks, in suite order. A
    sample is robust only if every attack failed on it. An attack "fooled" a sample when the
    model's own prediction on the returned input differs from the label *and* the input lies
    in the attack's threat model (eps ball of its norm, bounds, frozen inputs unchanged);
    anything else is not counted, with a warning. Targeted attacks (``targeted=True``) aim at
    the most likely wrong class of the clean input. Croce & Hein, "Reliable evaluation of
    adversarial robustness with an ensemble of diverse parameter-free attacks", ICML 2020.

    Each attack runs as ``attack.replace(eps=e, seed=s)``, where ``s`` is derived from
    `seed`, the attack's own seed and the (batch, attack, eps) indices. An attack with a
    ``budget`` setting (per-input `advgrad.Budget`, ``None`` = frozen input) gets every
    non-frozen input's eps replaced by ``e``.

    Args:
        model: A keras.Model (or callable on tensors) whose single output gives logits or
            probabilities (predicted class: argmax on the last axis).
        data: An ``(x, y)`` pair (``x``: an array, list or dict of arrays matching the
            model's inputs; ``y``: class ids or one-hot rows), or a `tf.data.Dataset`
            yielding ``(x, y)`` batches; it is re-batched to `batch_size`, so both give the
            same result. Data are streamed: memory does not grow with the data set (apart
            from a few bytes of outcome per sample).
        suite: Attacks, in cascade order: registry names (``"pgd"``: default settings),
            configured `advgrad.attacks.Attack` objects, or ``{"name": ..., **settings}``
            dicts. Set their ``bounds``: the default is unbounded (no clipping).
        eps: A number or a list of numbers, each finite and >= 0 (sorted, duplicates
            dropped).
        batch_size: Samples per batch. Defaults to 128.
        state: Path of a JSON state file, or None (default: nothing saved). Written
            atomically after every batch; if it exists, the run resumes after its last
            finished batch and gives exactly the uninterrupted result. A state written for
            another model, data, suite, eps, batch size, seed or `individual` is an error.
        seed: Seed from which each (batch, attack, eps) seed is derived. Defaults to 0.
        return_adversarial: Keep the adversarial input that first fooled each sample, in
            ``report.adversarial`` (memory grows with the data; not kept for batches done
            by an earlier, interrupted run). Defaults to False.
        progress: Show a tqdm bar over batches with the running accuracies. Defaults to
            False.
        sanity: Run the checks of `advgrad.sanity` on the first samples and put their flags
            in ``report.flags`` (also warned). Defaults to True.
        individual: Also run every attack alone on every clean-correct sample, for the
            per-attack rows (``report.per_attack``); the cascade is then read off those
            runs at no extra cost. False runs each attack only on the samples still robust
            (cheaper; no per-attack rows). Defaults to True.

    Returns:
        A `advgrad.report.Report`.

    Raises:
        ValueError: On an invalid argument (named), before any work; if `state` was written
            for a different model/data/suite (the file is left unchanged).

    >>> from advgrad import data, zoo
    >>> from advgrad.attacks import get_attack
    >>> ds = data.digits()
    >>> fgsm = get_attack("fgsm", bounds=ds.bounds)
    >>> r = evaluate(zoo.load("digits-cnn"), ds.test, suite=[fgsm], eps=0.1, batch_size=450)
    >>> r.n_samples, r.robust_accuracy[0.1] <= r.clean_accuracy
    (450, True)
    """
    attacks = _resolve_suite(suite)
    eps_list = _resolve_eps(eps)
    batch_size = _check_int("batch_size", batch_size, 1)
    seed = _check_int("seed", seed, 0)
    return_adversarial = _check_flag("return_adversarial", return_adversarial)
    progress = _check_flag("progress", progress)
    sanity = _check_flag("sanity", sanity)
    individual = _check_flag("individual", individual)
    stream = _Stream(data, batch_size)
    ModelAdapter.of(model)  # validates `model`
    labels = _labels(attacks)
    configs = [a.get_config() for a in attacks]
    model_digest = _model_digest(model)
    fingerprint = {
        "model": model_digest,
        "suite": _sha(json.dumps(_suite_fingerprint(configs), sort_keys=True, default=repr)),
        "eps": [repr(e) for e in eps_list],
        "batch_size": batch_size,
        "seed": seed,
        "individual": individual,
    }
    store = _StateFile(state, fingerprint) if state is not None else None
    if store is not None and store.saved is not None:
        tally = _Tally.from_state(labels, eps_list, store.saved["tally"])
        done = store.batches_done
        if return_adversarial and done:
            warnings.warn(
                f"Resuming from {str(store.path)!r} after {done} finished batch(es): their "
                "adversarial examples were not saved and are missing from report.adversarial.",
                stacklevel=2,
            )
    else:
        tally = _Tally(labels, eps_list)
        done = 0

    runner = _Runner(model, attacks, labels, eps_list, seed, individual, return_adversarial)
    sample_x: list[Any] = []
    sample_y: list[np.ndarray] = []
    sampled = 0
    started = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=stream.total, disable=not progress, unit="batch", desc="evaluate")
    try:
        index = -1
        offset = 0
        for index, (x_b, y_b) in enumerate(stream):
            digest = _batch_digest(x_b, y_b)
            size = len(y_b)
            if sampled < SANITY_SAMPLES:
                take = np.arange(min(size, SANITY_SAMPLES - sampled))
                sample_x.append(_take(x_b, take))
                sample_y.append(np.array(np.asarray(y_b)[take]))
                sampled += len(take)
            if index < done:
                if digest != tally.batch_hashes[index]:
                    raise store.mismatch(f"data (batch {index})")
            else:
                if store is not None and store.complete:
                    raise store.mismatch("data (more samples)")
                runner.run_batch(tally, index, offset, x_b, y_b)
                tally.batch_hashes.append(digest)
                if store is not None:
                    store.write(tally, complete=False)
            offset += size
            bar.update(1)
            if progress:
                bar.set_postfix_str(_postfix(tally), refresh=False)
        if index + 1 < done:
            raise store.mismatch("data (fewer samples)")
        if tally.n_samples == 0:
            raise invalid("data", "at least one sample", data)
        if store is not None and not store.complete:
            store.write(tally, complete=True)
    finally:
        bar.close()

    report = _report(
        tally,
        runner,
        model,
        configs,
        seed,
        batch_size,
        individual,
        model_digest,
        time.perf_counter() - started,
    )
    if sanity:
        from advgrad import sanity as sanity_lib

        x_s = _concat(sample_x)
        y_s = np.concatenate(sample_y)
        flags = sanity_lib.run_all(model, x_s, y_s, report, seed=seed)
        report.flags = [f.to_dict() for f in flags]
        if flags:
            codes = ", ".join(f.code for f in flags)
            warnings.warn(
                f"advgrad.evaluate raised {len(flags)} sanity flag(s): {codes}. The robust "
                "accuracy may be overestimated; see report.flags for what to try.",
                stacklevel=2,
            )
    return report


def _postfix(tally: _Tally) -> str:
    n = max(tally.n_samples, 1)
    robust = ", ".join(
        f"{e:.4g}: {np.sum(tally.outcomes(i) == ROBUST) / n:.1%}" for i, e in enumerate(tally.eps)
    )
    return f"clean {tally.clean_correct / n:.1%} | robust {robust}"


class _Runner:
    """Runs the suite on one batch and records the outcomes into a `_Tally`."""

    def __init__(self, model, attacks, labels, eps, seed, individual, keep_adversarial):
        self.model = model
        self.adapter = ModelAdapter.of(model)
        self.attacks = attacks
        self.labels = labels
        self.eps = eps
        self.seed = seed
        self.individual = individual
        self.keep = keep_adversarial
        self.adversarial: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(eps))}
        self.warned: set[str] = set()

    def run_batch(self, tally: _Tally, batch: int, offset: int, x: Any, y: np.ndarray) -> None:
        truth = class_ids(y)
        outputs = predict(self.model, x)
        correct = predicted_classes(self.model, x, outputs) == truth
        tally.n_samples += len(truth)
        tally.clean_correct += int(np.sum(correct))
        for e_index in range(len(self.eps)):
            codes = np.where(correct, ROBUST, CLEAN_MISCLASSIFIED).astype(np.int8)
            remaining = correct.copy()
            for k, label in enumerate(self.labels):
                chosen = np.flatnonzero(correct if self.individual else remaining)
                fooled = np.zeros(len(truth), bool)
                if chosen.size:
                    hit, x_adv, predicted = self._attack(
                        tally,
                        k,
                        batch,
                        e_index,
                        _take(x, chosen),
                        y[chosen],
                        truth[chosen],
                        outputs[chosen],
                    )
                    fooled[chosen] = hit
                    new = hit & (codes[chosen] == ROBUST)
                    if self.keep and np.any(new):
                        rows = chosen[new]
                        self.adversarial[e_index].append(
                            {
                                "index": offset + rows,
                                "x": _take(x, rows),
                                "x_adv": _take(x_adv, np.flatnonzero(new)),
                                "attack": np.full(len(rows), k, np.int64),
                                "label": truth[rows],
                                "predicted": predicted[new],
                            }
                        )
                codes[fooled & (codes == ROBUST)] = k
                remaining &= ~fooled
                if self.individual:
                    tally.alone[label][e_index].append(correct & ~fooled)
            tally.codes[e_index].append(codes)

    def _attack(self, tally, k, batch, e_index, x, y, truth, outputs):
        attack, label = self.attacks[k], self.labels[k]
        e = self.eps[e_index]
        changes: dict[str, Any] = {
            "eps": e,
            "seed": _seed(self.seed, getattr(attack, "seed", 0), batch, k, e_index),
        }
        configured = attack.replace(**changes)
        targeted = bool(getattr(attack, "targeted", False))
        target = _targets(outputs, truth, y) if targeted else y
        start = time.perf_counter()
        result = configured.run(self.model, x, target, eps=e)  # eps in every budget too
        predicted = predicted_classes(self.model, result.x_adv)
        hit = predicted != truth
        names = tuple(self.adapter.split_inputs(x)[1])
        threat = _threat(configured, names, e)
        outside = _outside(self.adapter, x, result.x_adv, threat)
        if np.any(outside & hit):
            hit &= ~outside
            if label not in self.warned:
                self.warned.add(label)
                warnings.warn(
                    f"Attack {label!r} returned {int(np.sum(outside))} input(s) outside its "
                    f"threat model at eps={e:g} (eps ball, bounds or frozen inputs); they are "
                    "not counted as adversarial.",
                    stacklevel=4,
                )
        tally.timings[label] += time.perf_counter() - start
        n = len(truth)
        per_sample = int(result.gradients)
        queries = getattr(result, "queries", None)
        queries = (
            per_sample * n
            if queries is None
            else int(np.sum(queries)) * (1 if np.ndim(queries) else n)
        )
        tally.gradients[label] += per_sample * n
        tally.queries[label] += queries + n
        tally.per_sample[label] = max(tally.per_sample[label], per_sample)
        trace = result.loss_trace
        if trace is not None and len(trace) >= 2 and np.all(np.isfinite(trace[[0, -1]])):
            row = tally.loss[label][e_index]
            row[0] += float(trace[0]) * n
            row[1] += float(trace[-1]) * n
            row[2] += n
        return hit, result.x_adv, predicted


def _report(tally, runner, model, configs, seed, batch_size, individual, digest, seconds):
    n = tally.n_samples
    eps = tally.eps
    outcomes = {e: tally.outcomes(i) for i, e in enumerate(eps)}
    robust = {e: float(np.sum(outcomes[e] == ROBUST) / n) for e in eps}
    per_attack: dict[str, dict[float, float]] = {}
    attack_outcomes: dict[str, dict[float, np.ndarray]] = {}
    if individual:
        for label in tally.labels:
            arrays = {e: tally.robust_alone(label, i) for i, e in enumerate(eps)}
            attack_outcomes[label] = arrays
            per_attack[label] = {e: float(np.sum(arrays[e]) / n) for e in eps}
    loss_trend = {
        label: {
            e: [row[0] / row[2], row[1] / row[2]]
            for e, row in zip(eps, tally.loss[label], strict=True)
            if row[2] > 0
        }
        for label in tally.labels
    }
    adversarial = None
    if runner.keep:
        adversarial = {}
        for i, e in enumerate(eps):
            parts = runner.adversarial[i]
            if parts:
                adversarial[e] = {key: _concat([p[key] for p in parts]) for key in parts[0]}
    return Report(
        clean_accuracy=float(tally.clean_correct / n),
        robust_accuracy=robust,
        per_attack=per_attack,
        outcomes=outcomes,
        n_samples=n,
        attacks=list(tally.labels),
        attack_outcomes=attack_outcomes,
        suite=configs,
        eps=list(eps),
        gradients=dict(tally.gradients),
        queries=dict(tally.queries),
        timings={k: round(v, 6) for k, v in tally.timings.items()},
        gradients_per_sample=dict(tally.per_sample),
        loss_trend=loss_trend,
        seed=seed,
        batch_size=batch_size,
        individual=individual,
        seconds=round(seconds, 6),
        versions=_versions(),
        flags=[],
        model=_describe_model(model, digest),
        data={"n_samples": n, "sha256": _sha(*tally.batch_hashes)},
        adversarial=adversarial,
    )
