"""What the minimal-norm attacks share: settings, the batch loop, joint rows, the verdict.

A minimal-norm attack (`advgrad.attacks.CarliniWagnerL2`, `advgrad.attacks.DeepFool`,
`advgrad.attacks.FMN`) looks for the smallest perturbation that changes each sample's
prediction, and reports its size in `AttackResult.norms` (the norm of the returned
perturbation; inf where the attack failed; 0 for a sample misclassified to begin with).
`eps` is then only a filter: a perturbation larger than `eps` is not returned (the clean
input is, with norm inf). Its default, None, keeps every perturbation found: the result
behind a whole robustness curve (`advgrad.evaluate(..., eps="curve")`).

Several perturbed inputs are treated as one vector, their concatenation, as FAB does
(`advgrad.attacks.fab`): the optimisation, the bounds and the reported norm (Linf: the
largest of the inputs' norms, L2: the root of the sum of their squares, L1: the sum) are
those of the concatenation; a point is inside the budget when each input lies in its own
ball. The perturbed inputs must share one norm.

>>> import advgrad
>>> advgrad.attacks.DeepFool(norm="l2").eps is None
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from advgrad._compile import count_trace
from advgrad._validation import check_eps, invalid
from advgrad.attacks.base import Attack, Plan, headroom
from advgrad.attacks.plan import Chunk, ChunkResult
from advgrad.attacks.rows import JointRows, check_joint, joint_chunks
from advgrad.gradients import label_specs, output_value_and_grad
from advgrad.models import ModelAdapter
from advgrad.predictions import Classes

__all__ = ["MinimalNormAttack", "Rows", "margin"]


def _check_optional_eps(value: Any) -> float | None:
    return None if value is None else check_eps(value)


class MinimalNormAttack(Attack):
    """Base class of the minimal-norm attacks: `eps` None by default (no budget), the batch
    loop over a compiled body, and the per-sample norms in the result.

    A subclass sets `BODY`, a `Rows` subclass whose ``attack(clean, x0, truth, scores)``
    returns ``(best rows, gradients per sample, queries per sample)``; `Rows.run` judges
    what it found (prediction, budget, norm) on exactly what is returned.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {"eps": None}
    CHECKS: ClassVar[dict[str, Any]] = {"eps": _check_optional_eps}
    FIXED: ClassVar[dict[str, Any]] = {"targeted": False, "loss": "ce"}
    MINIMAL_NORMS: ClassVar[bool] = True
    GRADIENTS_ROUNDING: ClassVar[str] = "up"
    BODY: ClassVar[type]

    def _unlimited(self, budget: Any) -> bool:
        return self.eps is None and budget is None and self.budget is None

    def budgets(self, input_names: Any, *, budget: Any = None, eps: float | None = None):
        """As `Attack.budgets`; with no eps anywhere, a radius no perturbation reaches."""
        if eps is None and self._unlimited(budget):
            eps = headroom(tf.float16)  # any dtype holds it; `plan` widens it to the inputs'
        return super().budgets(input_names, budget=budget, eps=eps)

    def plan(
        self, model: Any, x: Any, y: Any = None, *, budget: Any = None, eps=None, strategy=None
    ) -> Plan:
        if eps is None and self._unlimited(budget):
            _, leaves = ModelAdapter.of(model).split_inputs(x)
            dtypes = [tf.as_dtype(v.dtype) for v in leaves.values()]
            floating = [headroom(d) for d in dtypes if d.is_floating]
            eps = min(floating) if floating else None
        return super().plan(model, x, y, budget=budget, eps=eps, strategy=strategy)

    def attack_chunks(self, plan: Plan, *, judge: bool) -> Callable[[Chunk], ChunkResult]:
        """The compiled body on one chunk (it always judges what it returns)."""
        check_joint(plan, "the attack works on their join")
        run = self.compiled(plan, lambda: self.BODY(self, plan))
        eps = tf.constant([plan.budgets[n].eps for n in plan.perturbed], tf.float64)
        step_size = tf.constant(float(self._settings.get("step_size", 0.0)), tf.float64)
        return joint_chunks(run, lambda chunk: (eps, step_size))


def margin(scores: tf.Tensor, truth: tf.Tensor) -> tf.Tensor:
    """``z_y - max_{j != y} z_j`` per sample: negative exactly where the prediction is not y.

    >>> import tensorflow as tf
    >>> margin(tf.constant([[1.0, 3.0, 2.0]]), tf.constant([1])).numpy().tolist()
    [1.0]
    """
    classes = tf.shape(scores)[-1]
    own = tf.gather(scores, truth, batch_dims=1)
    others = tf.where(tf.one_hot(truth, classes) > 0, tf.cast(-np.inf, scores.dtype), scores)
    return own - tf.reduce_max(others, axis=-1)


class Rows(JointRows):
    """One attack's compiled body for one plan signature: the perturbed inputs as one
    ``[B, D]`` row per sample (`flat`/`split`), their bounds, norms and scores; `run` is
    what gets traced."""

    def __init__(self, attack: MinimalNormAttack, plan: Plan):
        super().__init__(plan)
        self.attack = attack
        self.inputs, self.objective, self.classes = plan.inputs, plan.objective, plan.classes
        self.norm = self.budgets[0].norm
        self.p = self.norm.p

    def signature(self, labels: Any) -> list:
        """xs, labels, eps per perturbed input, step size (tensors: no retracing)."""
        return [
            list(self.inputs.specs()),
            label_specs(labels),
            tf.TensorSpec([len(self.perturbed)], tf.float64),
            tf.TensorSpec([], tf.float64),
        ]

    def size(self, delta: tf.Tensor) -> tf.Tensor:
        """The joint norm per sample (the norm of the concatenation)."""
        return self.norm.norm(delta)

    def inside(self, delta: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
        """Whether every input's part of `delta` lies in its own ball."""
        parts = tf.split(delta, self.sizes, axis=1)
        each = tf.stack([self.norm.norm(part) for part in parts], axis=1)
        return tf.reduce_all(each <= tf.cast(eps, self.dtype)[None, :], axis=1)

    def free(self, x: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
        """`g` ``[B, D]`` (or ``[B, K, D]``) without the coordinates the bounds block at `x`
        (at low going down, at high going up): a linear estimate of the distance to the
        boundary, and a step along `g`, then see only where the iterate can move."""
        if g.shape.rank == 3:
            x = x[:, None, :]
        blocked = ((x <= self.bound("low")) & (g < 0)) | ((x >= self.bound("high")) & (g > 0))
        return tf.where(blocked, tf.zeros_like(g), g)

    def dual(self, grad: tf.Tensor) -> tf.Tensor:
        """The dual norm of `grad` per sample (L1 for Linf, L2 for L2, Linf for L1)."""
        if self.p == math.inf:
            return tf.reduce_sum(tf.abs(grad), axis=1)
        if self.p == 2:
            return tf.norm(grad, axis=1)
        return tf.reduce_max(tf.abs(grad), axis=1)

    # ------------------------------------------------------------------ model
    def scores(self, clean: dict[str, tf.Tensor], row: tf.Tensor) -> tf.Tensor:
        outputs = self.objective.forward(self.inputs.pack({**clean, **self.split(row)}))
        return tf.convert_to_tensor(self.classes.scores(outputs))

    def value_and_grad(self, clean, row, fn):
        """``fn(scores)`` per sample at `row`, and its gradient wrt the joint row: one
        forward and backward pass (`advgrad.gradients.output_value_and_grad`)."""
        leaves = {**clean, **self.split(row)}
        value, outputs, grads = output_value_and_grad(
            self.objective,
            self.inputs,
            leaves,
            lambda outputs: fn(tf.convert_to_tensor(self.classes.scores(outputs))),
            wrt=self.perturbed,
        )
        grad = tf.concat(
            [
                tf.reshape(tf.cast(g, self.dtype), [-1, size])
                for g, size in zip(grads, self.sizes, strict=True)
            ],
            axis=1,
        )
        scores = tf.convert_to_tensor(self.classes.scores(outputs))
        return tf.cast(value, self.dtype), grad, scores

    def predicted(self, scores: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.classes.predicted(scores), tf.int32)

    # ---------------------------------------------------------------- traced
    def run(self, xs, y, eps, step_size):
        """The whole attack on one batch: (x_adv per perturbed input, fooled, norms,
        gradients per sample, queries per sample)."""
        count_trace("attack")
        clean = dict(zip(self.names, xs, strict=True))
        x0 = self.flat(clean)
        truth = tf.cast(Classes.truth(self.classes.labels(y))["classes"], tf.int32)
        scores = self.scores(clean, x0)
        classes = scores.shape[-1]
        if classes is None or classes < 2:
            raise invalid("model", "a classifier with at least 2 class scores", classes)
        step_size = tf.cast(step_size, self.dtype)
        best, grads, queries, known = self.attack_batch(clean, x0, truth, scores, step_size)
        best = self.representable(self.clip(best))
        if known is None:  # the verdict on exactly what is returned
            known = tf.not_equal(self.predicted(self.scores(clean, best)), truth)
            queries = queries + 1
        delta = best - x0
        fooled = known & self.inside(delta, eps) & tf.reduce_all(tf.math.is_finite(best), 1)
        x_adv = tf.where(fooled[:, None], best, x0)
        sizes = tf.where(fooled, self.size(x_adv - x0), tf.cast(np.inf, self.dtype))
        adv = self.split(x_adv)
        return [adv[n] for n in self.perturbed], fooled, sizes, grads, queries + 1

    def attack_batch(self, clean, x0, truth, scores, step_size):
        """The attack proper: ``(best rows, gradients, queries, verdict)`` per sample, with
        `step_size` the attack's setting as a tensor (0 for an attack without one). The rows
        must lie in the bounds and be representable in the inputs' dtypes. ``verdict``:
        whether the model misclassifies each returned row, when the attack computed it on
        exactly those rows (else None: `run` spends a forward pass on it). `run` counts the
        clean forward pass and that verdict in the queries."""
        raise NotImplementedError
