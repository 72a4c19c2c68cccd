"""The whole robustness curve from one run: each sample's smallest adversarial perturbation.

With ``eps="curve"`` (or ``"curve"`` among the eps), `advgrad.evaluate` runs the suite's
minimal-norm attacks (those that declare ``MINIMAL_NORMS``: CW-L2, DeepFool, FMN, FAB-T)
once per batch with no budget, on the clean-correct samples, and keeps per sample the
smallest perturbation norm any of them found (0 for a clean-misclassified sample, inf where
none found one). The robust accuracy at eps is then the share of samples whose minimal norm
exceeds eps: the curve at every eps at once (`advgrad.report.Report.curve_accuracy`). A
suite without a minimal-norm attack gets FMN, in the norm and bounds of its first attack.

Each norm is checked, not trusted: it is recomputed from the returned input (all the model's
floating inputs joined, frozen ones unchanged), and a sample counts only where the model's
own prediction on that input differs from the label, or its output is not finite (not
robust: `advgrad.predictions.judge`). A sample whose clean output is not finite is never
correct: its minimal norm is 0. The curve records both (``non_finite``: the samples whose
clean output was not finite, and those whose minimal norm is a non-finite output's), so the
``non_finite_outputs`` flag is raised from them in a curve-only run too.

>>> from advgrad.attacks import get_attack
>>> suite = [get_attack("pgd", norm="l2"), get_attack("deepfool", norm="l2")]
>>> [a.name for a in curve_attacks(suite)]
['deepfool']
>>> [a.name for a in curve_attacks([get_attack("pgd", norm="l2", bounds=(0, 1))])]
['fmn']
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from advgrad._validation import invalid
from advgrad.attacks.base import headroom
from advgrad.batching import take
from advgrad.models import ModelAdapter
from advgrad.predictions import class_ids, judge

if TYPE_CHECKING:
    from advgrad.attacks import Attack

__all__ = ["CURVE", "Curve", "curve_attacks", "is_minimal_norm"]

CURVE = "curve"
"""The eps value that asks `evaluate` for the whole curve."""

_ORDERS = {"linf": np.inf, "l2": 2.0, "l1": 1.0}


def is_minimal_norm(attack: Attack) -> bool:
    """Whether `attack` reports per-sample minimal norms (`AttackResult.norms`): it declares
    ``MINIMAL_NORMS``."""
    return bool(getattr(type(attack), "MINIMAL_NORMS", False))


def _norm_name(attack: Attack) -> str:
    from advgrad import norms

    return norms.get(attack.norm).get_config()["name"]


def curve_attacks(attacks: Sequence[Attack]) -> list[Attack]:
    """The suite's minimal-norm attacks, or FMN in its first attack's norm and bounds.

    Raises:
        ArgumentError: the minimal-norm attacks of the suite attack in different norms, or
            the first attack's norm is one FMN lacks.
    """
    from advgrad.attacks import FMN

    chosen = [a for a in attacks if is_minimal_norm(a)]
    if not chosen:
        first = attacks[0]
        settings = {"norm": first.norm, "bounds": first.bounds, "budget": first.budget}
        chosen = [FMN(**settings)]
    names = sorted({_norm_name(a) for a in chosen})
    if len(names) > 1:
        expected = "minimal-norm attacks that share one norm for eps='curve'"
        raise invalid("suite", expected, names)
    return chosen


class Curve:
    """Runs the curve attacks on each batch and records every sample's minimal norm into the
    `advgrad.evaluation.state.Tally` (``tally.curve``: saved with it, so a run resumes)."""

    def __init__(self, model: Any, attacks: Sequence[Attack], labels: Sequence[str], seed: int):
        self.model = model
        self.adapter = ModelAdapter.of(model)
        self.attacks = list(attacks)
        self.labels = list(labels)
        self.seed = seed
        self.norm = _norm_name(self.attacks[0])

    def run_batch(self, tally: Any, batch: int, offset: int, x: Any, y: np.ndarray) -> None:
        """The minimal norm of every sample of batch number `batch` (its first sample is
        number `offset` of the data) into `tally`, and which samples' outputs were not
        finite: on the clean input (norm 0), or on the input that set the minimal norm."""
        from advgrad.batching import seed_of

        curve = tally.curve
        truth = class_ids(y)
        _, correct, finite = judge(self.model, x, truth)
        sizes = np.where(correct, np.inf, 0.0)
        broken = np.zeros(len(truth), bool)  # the minimal norm is a non-finite output's
        chosen = np.flatnonzero(correct)
        if chosen.size:
            x_sub, y_sub, t_sub = take(x, chosen), np.asarray(y)[chosen], truth[chosen]
            _, clean = self.adapter.split_inputs(x_sub)
            radius = min(
                headroom(v.dtype) for v in clean.values() if tf.as_dtype(v.dtype).is_floating
            )
            for k, (attack, label) in enumerate(zip(self.attacks, self.labels, strict=True)):
                start = time.perf_counter()
                configured = attack.replace(seed=seed_of(self.seed, attack.seed, batch, k, 0))
                result = configured.run(self.model, x_sub, y_sub, eps=radius)
                found, bad = self._checked(clean, result.x_adv, t_sub)
                smaller = found < sizes[chosen]
                sizes[chosen[smaller]] = found[smaller]
                broken[chosen[smaller]] = bad[smaller]
                curve["gradients"][label] += int(result.gradients) * len(chosen)
                curve["seconds"][label] += time.perf_counter() - start
        curve["parts"].append(sizes)
        curve["non_finite"]["clean"] += (offset + np.flatnonzero(~finite)).tolist()
        curve["non_finite"]["attacked"] += (offset + np.flatnonzero(broken)).tolist()

    def _checked(self, clean: dict, x_adv: Any, truth: np.ndarray) -> tuple[np.ndarray, ...]:
        """The norm of each returned perturbation where the sample is no longer robust (fooled,
        or a non-finite output), else inf; and where the output is not finite."""
        _, adv = self.adapter.split_inputs(x_adv, "x_adv")
        deltas = [
            (np.asarray(adv[n], np.float64) - np.asarray(v, np.float64)).reshape(len(truth), -1)
            for n, v in clean.items()
            if np.issubdtype(np.asarray(v).dtype, np.floating)
        ]
        delta = np.concatenate(deltas, axis=1)
        sizes = np.linalg.norm(delta, ord=_ORDERS[self.norm], axis=1)
        _, correct, finite = judge(self.model, x_adv, truth)  # fooled, or a non-finite output
        counted = ~correct & np.isfinite(sizes)
        return np.where(counted, sizes, np.inf), counted & ~finite

    def result(self, tally: Any) -> dict[str, Any]:
        """What `advgrad.report.Report.curve` holds."""
        curve = tally.curve
        return {
            "norm": self.norm,
            "attacks": self.labels,
            "norms": [float(v) for v in tally.curve_norms()],
            "non_finite": {k: list(v) for k, v in curve["non_finite"].items()},
            "gradients": dict(curve["gradients"]),
            "seconds": {k: round(float(v), 6) for k, v in curve["seconds"].items()},
        }
