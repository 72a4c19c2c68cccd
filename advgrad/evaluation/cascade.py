"""The attack cascade on one batch: every eps, every attack, the first attack that fooled.

`Runner.run_batch` predicts the clean batch once, then for every eps runs the attacks of the
suite in order (each on the clean-correct samples with ``individual=True``, else on the
samples still robust) and records into a `Tally` which attack first fooled each sample. An
attack fooled a sample when the model's prediction on the returned input differs from the
label *and* the input lies in the attack's threat model (`advgrad.budget.outside`). A sample
whose model output is not finite (NaN or inf) is never correct, robust or fooled
(`advgrad.predictions.judge`): on the clean input it gets `CLEAN_NON_FINITE` and no attack
runs on it; on an attack's input (inside its threat model) it is not robust, and gets
``non_finite(k)`` unless an earlier attack fooled it. Such an input is no adversarial example:
it is not kept, nor counted as reaching a target.

>>> from advgrad.attacks import get_attack
>>> labels([get_attack("pgd"), get_attack("fgsm"), get_attack("pgd")])
['pgd', 'fgsm', 'pgd#2']
"""

from __future__ import annotations

import time
import types
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from advgrad._validation import FlaggedWarning
from advgrad.batching import output_classes, seed_of, take
from advgrad.budget import outside
from advgrad.evaluation.state import Tally
from advgrad.evaluation.targeting import TargetRule, layout, resolve
from advgrad.models import ModelAdapter
from advgrad.outcomes import CLEAN_MISCLASSIFIED, CLEAN_NON_FINITE, ROBUST, non_finite
from advgrad.predictions import class_ids, judge, predict

if TYPE_CHECKING:
    from advgrad.attacks import Attack

__all__ = [
    "Runner",
    "fit_classes",
    "labels",
    "postfix",
    "targets",
]


def labels(attacks: Sequence[Attack]) -> list[str]:
    """Unique row labels: the attack names, with #2, #3... for repeats."""
    counts: dict[str, int] = {}
    result = []
    for attack in attacks:
        name = attack.name or type(attack).__name__.lower()
        counts[name] = counts.get(name, 0) + 1
        result.append(name if counts[name] == 1 else f"{name}#{counts[name]}")
    return result


def fit_classes(attacks: Sequence[Attack], model: Any, classes: int | None) -> list[Attack]:
    """The attacks with the settings they run with on `model` (`Attack.for_classes`: e.g.
    APGD-T's targets and loss on 2 or 3 classes), so that the report records those.
    `classes`: the model's, when known; else its output's width; unknown (a model whose
    output shape only its data tells, streamed): the attacks as given.

    >>> from advgrad.attacks import get_attack
    >>> [a.n_target_classes for a in fit_classes([get_attack("apgd-t")], None, 3)]
    [2]
    """
    if classes is None:
        classes = output_classes(model)
    return list(attacks) if classes is None else [a.for_classes(classes) for a in attacks]


def targets(outputs: np.ndarray, truth: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Targets of the default rule: the most likely wrong class, laid out like `y` (the
    other rules: `advgrad.evaluation.targeting`)."""
    return layout(resolve(None).ids(outputs, truth, batch=0, offset=0), y)


def postfix(tally: Tally) -> str:
    """The progress bar's running accuracies."""
    n = max(tally.n_samples, 1)
    robust = ", ".join(
        f"{e:.4g}: {np.sum(tally.outcomes(i) == ROBUST) / n:.1%}" for i, e in enumerate(tally.eps)
    )
    return f"clean {tally.clean_correct / n:.1%} | robust {robust}"


def _threat(attack: Attack, names: tuple[str, ...], eps: float):
    """One Budget (or None = frozen) per input, as the attack resolves them; None if unknown."""
    try:
        return attack.budgets(names, eps=eps)
    except (ValueError, TypeError):
        return None


class Runner:
    """Runs the suite on one batch and records the outcomes into a `Tally`.

    Args:
        model: The model.
        attacks: The suite, in cascade order.
        labels: Their row labels (`labels`).
        eps: The eps values, ascending.
        seed: `evaluate`'s seed.
        individual: Run every attack on every clean-correct sample (per-attack rows), or
            only on the samples still robust.
        keep_adversarial: Keep the input that first fooled each sample, in `adversarial`.
        rule: The `TargetRule` of the targeted attacks (default: the most likely wrong
            class). A sample whose target is its own label is skipped by targeted attacks
            (robust against them).
        strategy: The `tf.distribute.Strategy` each attack's `run` gets, or None.
        policy: An `advgrad.evaluation.adaptive.Policy` that picks, of the samples still
            robust, those each attack runs on (a suite with rules), or None: all of them.
    """

    def __init__(
        self,
        model,
        attacks,
        labels,
        eps,
        seed,
        individual,
        keep_adversarial,
        rule=None,
        strategy=None,
        policy=None,
    ):
        self.model = model
        self.adapter = ModelAdapter.of(model)
        self.attacks = attacks
        self.labels = labels
        self.eps = eps
        self.seed = seed
        self.individual = individual
        self.keep = keep_adversarial
        self.rule: TargetRule = rule if rule is not None else resolve(None)
        self.adversarial: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(eps))}
        self.warned: set[str] = set()
        self.outside: dict[str, int] = {}  # label -> fooled inputs refused as outside
        self.strategy = strategy
        self.policy = policy

    def run_batch(self, tally: Tally, batch: int, offset: int, x: Any, y: np.ndarray) -> np.ndarray:
        """Attack batch number `batch` (its first sample is number `offset` of the data);
        returns which samples are clean-correct (finite and right)."""
        truth = class_ids(y)
        outputs = predict(self.model, x)
        _, correct, finite = judge(self.model, x, truth, outputs)
        tally.n_samples += len(truth)
        tally.clean_correct += int(np.sum(correct))
        goal = None  # target class ids, once per batch: the same for every eps and attack
        if any(a.targeted for a in self.attacks):
            goal = self.rule.ids(outputs, truth, batch=batch, offset=offset, seed=self.seed)
        policy = self.policy
        if policy is not None:
            policy.begin(batch, outputs, truth, correct)
        for e_index in range(len(self.eps)):
            if policy is not None:
                policy.begin_eps(e_index)
            codes = np.where(correct, ROBUST, CLEAN_MISCLASSIFIED).astype(np.int8)
            codes[~finite] = CLEAN_NON_FINITE
            remaining = correct.copy()
            for k, label in enumerate(self.labels):
                pool = correct if self.individual else remaining
                if self.attacks[k].targeted:  # a target equal to the label: nothing to fool
                    pool = pool & (goal != truth)
                if policy is not None:  # of the samples still robust, those its rule keeps
                    pool = policy.select(k, e_index, pool)
                chosen = np.flatnonzero(pool)
                fooled = np.zeros(len(truth), bool)
                broken = np.zeros(len(truth), bool)  # a non-finite output: not robust
                if chosen.size:
                    hit, bad, x_adv, predicted, result = self._attack(
                        tally,
                        k,
                        batch,
                        e_index,
                        take(x, chosen),
                        y[chosen],
                        truth[chosen],
                        None if goal is None else goal[chosen],
                    )
                    fooled[chosen] = hit
                    broken[chosen] = bad
                    if policy is not None:
                        policy.observe(k, chosen, result.outputs, result.result)
                    new = hit & (codes[chosen] == ROBUST)
                    if self.keep and np.any(new):
                        rows = chosen[new]
                        self.adversarial[e_index].append(
                            {
                                "index": offset + rows,
                                "x": take(x, rows),
                                "x_adv": take(x_adv, np.flatnonzero(new)),
                                "attack": np.full(len(rows), k, np.int64),
                                "label": truth[rows],
                                "predicted": predicted[new],
                            }
                        )
                codes[fooled & (codes == ROBUST)] = k
                codes[broken & (codes == ROBUST)] = non_finite(k)
                remaining &= ~(fooled | broken)
                if self.individual:
                    tally.alone[label][e_index].append(correct & ~fooled & ~broken)
            tally.codes[e_index].append(codes)
            if policy is not None:
                policy.end_eps(e_index)
        return correct

    def _attack(self, tally, k, batch, e_index, x, y, truth, goal):
        attack, label = self.attacks[k], self.labels[k]
        e = self.eps[e_index]
        seed = seed_of(self.seed, attack.seed, batch, k, e_index)
        configured = attack.replace(eps=e, seed=seed)
        target = layout(goal, y) if attack.targeted else y
        start = time.perf_counter()
        # eps in every budget too; the strategy's replicas split the attack's chunks
        result = configured.run(self.model, x, target, eps=e, strategy=self.strategy)
        outputs = predict(self.model, result.x_adv)
        predicted, correct, finite = judge(self.model, result.x_adv, truth, outputs)
        hit = ~correct & finite
        _, clean = self.adapter.split_inputs(x)
        _, adv = self.adapter.split_inputs(result.x_adv, "x_adv")
        threat = _threat(configured, tuple(clean), e)
        left = np.zeros(len(truth), bool) if threat is None else outside(threat, clean, adv)
        bad = ~finite & ~left  # outside the threat model, an input counts for nothing
        if np.any(left & hit):
            self.outside[label] = self.outside.get(label, 0) + int(np.sum(left & hit))
            hit &= ~left
            if label not in self.warned:
                self.warned.add(label)
                warnings.warn(
                    f"Attack {label!r} returned {int(np.sum(left))} input(s) outside its "
                    f"threat model at eps={e:g} (eps ball, bounds, frozen inputs or non-finite "
                    "values); they are not counted as adversarial.",
                    FlaggedWarning,
                    stacklevel=4,
                )
        tally.timings[label] += time.perf_counter() - start
        n = len(truth)
        counts = tally.targeted[label]
        if attack.targeted and counts is not None:  # None: resumed from a state without it
            counts[e_index][0] += int(np.sum((predicted == goal) & finite & ~left))
            counts[e_index][1] += n
        per_sample = int(result.gradients)
        tally.gradients[label] += per_sample * n
        tally.queries[label] += int(np.sum(result.queries)) + n  # + evaluate's own check
        tally.per_sample[label] = max(tally.per_sample[label], per_sample)
        trace = result.loss_trace
        if trace is not None and len(trace) >= 2 and np.all(np.isfinite(trace[[0, -1]])):
            row = tally.loss[label][e_index]
            sums = [row[0] + float(trace[0]) * n, row[1] + float(trace[-1]) * n]
            if all(np.isfinite(sums)):  # a sum that overflows is left out (JSON holds no inf)
                row[0], row[1] = sums
                row[2] += n
        ran = types.SimpleNamespace(outputs=outputs, result=result)  # for a policy
        return hit, bad, result.x_adv, predicted, ran
