"""FAB-T: the targeted Fast Adaptive Boundary attack, a minimal-norm attack (Linf, L2).

Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive boundary
attack", ICML 2020; its targeted version is the third member of AutoAttack (Croce & Hein,
"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", ICML 2020).

For each target t among the top `n_target_classes` classes at the clean point (other than
the true class y), and on the samples not yet fooled within the budget, every step:

1. linearises the decision boundary between t and y at the iterate x_k: the hyperplane
   ``g(x_k) + <grad g(x_k), z - x_k> = 0`` of ``g = z_t - z_y`` (logits), one gradient from
   `advgrad.gradients.output_value_and_grad`;
2. projects both x_k and the original point x onto that hyperplane intersected with the
   input bounds, in the threat model's norm (`project_on_hyperplane`): steps d_k and d_0;
3. moves to ``(1 - a) (x_k + eta d_k) + a (x + eta d_0)``, clipped to the bounds: the
   extrapolation `eta` overshoots the boundary, and the bias ``a = min(|d_k| / (|d_k| +
   |d_0|), alpha_max)`` pulls towards the original point;
4. if the new point is misclassified, keeps it when it is the smallest perturbation found
   inside the budget, and steps back towards x: ``x + beta (x_k - x)``.

A final search bisects the segment from x to the best point found (a few forward passes) to
shrink the norm further. The result per sample is the smallest adversarial found if its norm
is <= eps, else the clean input; `AttackResult.norms` is the norm of the returned
perturbation (inf where the attack failed, 0 for a sample misclassified to begin with).

Several perturbed inputs are treated as one vector, their concatenation: the hyperplane, the
projection, the bounds and the reported norm (for Linf the largest of the inputs' norms, for
L2 the root of the sum of their squares) are those of the concatenation, and a point counts
as inside the budget only when each input lies in its own ball (its own eps). The perturbed
inputs must share one norm.

>>> import numpy as np, advgrad
>>> from advgrad import data, zoo
>>> model, digits = zoo.load("digits-mlp"), data.digits(flat=True)
>>> attack = advgrad.attacks.FABTargeted(eps=0.3, bounds=(0, 1), steps=10, n_target_classes=2)
>>> result = attack.run(model, digits.x_test[:8], digits.y_test[:8])
>>> fooled, sizes = result.fooled, result.norms
>>> bool(np.all(sizes[fooled] <= 0.3)), bool(np.all(np.isinf(sizes[~fooled])))
(True, True)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from advgrad._compile import count_trace
from advgrad._validation import check_int, check_number, invalid
from advgrad.attacks.base import Attack, Plan, setting
from advgrad.attacks.plan import Chunk, ChunkResult
from advgrad.attacks.registry import register_attack
from advgrad.attacks.rows import JointRows, check_joint, joint_chunks
from advgrad.gradients import label_specs, output_value_and_grad
from advgrad.predictions import Classes

__all__ = ["FABTargeted", "project_on_hyperplane"]

#: Bisection steps of the final search between the clean point and the best one found.
SEARCH_STEPS = 10


@register_attack("fab-t")
class FABTargeted(Attack):
    """Targeted FAB (Croce & Hein, ICML 2020), as AutoAttack runs it: a minimal-norm attack.

    `y` are the true labels (the attack picks its targets), so a sample is fooled when the
    prediction differs from `y` at a point inside the budget. See the module docstring for
    the algorithm and the rule for several perturbed inputs.

    Settings (besides `Attack`'s; `targeted` and `loss` are not settings: the attack is
    untargeted in outcome and reads the logits, through the objective's logits path for a
    model ending in softmax):
        steps: iterations per target and restart (default 100).
        restarts: runs per target; all but the first start at a random point at half the
            radius from x (default 1).
        n_target_classes: targets, the top classes at the clean point other than the true
            one, one at a time on the samples still robust (default 9; at most classes - 1).
        alpha_max: largest bias towards the original point, in [0, 1] (default 0.1).
        eta: extrapolation beyond the linearised boundary, >= 1 (default 1.05).
        beta: backward step towards x after a success, in (0, 1) (default 0.9).

    `AttackResult.gradients` is the mean number of gradients per sample (rounded up; a sample
    fooled by an early target is not attacked further), `queries` the exact count of model
    evaluations per sample (a forward+backward counting as one).

    >>> import advgrad
    >>> advgrad.get_attack("fab-t", norm="l2").n_target_classes
    9
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "steps": 100,
        "restarts": 1,
        "n_target_classes": 9,
        "alpha_max": 0.1,
        "eta": 1.05,
        "beta": 0.9,
    }
    CHECKS: ClassVar[dict[str, Any]] = {
        "steps": setting(check_int, "steps", low=1, high=2**31 - 1),
        "restarts": setting(check_int, "restarts", low=1, high=2**31 - 1),
        "n_target_classes": setting(check_int, "n_target_classes", low=1, high=2**31 - 1),
        "alpha_max": setting(check_number, "alpha_max", low=0.0, high=1.0),
        "eta": setting(check_number, "eta", low=1.0),
        "beta": setting(check_number, "beta", low=0.0, high=1.0, low_open=True, high_open=True),
    }
    FIXED: ClassVar[dict[str, Any]] = {"targeted": False, "loss": "ce"}
    NORMS: ClassVar[tuple[str, ...]] = ("linf", "l2")

    MINIMAL_NORMS: ClassVar[bool] = True
    GRADIENTS_ROUNDING: ClassVar[str] = "up"

    def attack_chunks(self, plan: Plan, *, judge: bool) -> Callable[[Chunk], ChunkResult]:
        """The compiled attack on one chunk (it always judges what it returns)."""
        check_joint(plan, "FAB projects their concatenation")
        run = self.compiled(plan, lambda: _FAB(self, plan))
        eps = tf.constant([plan.budgets[n].eps for n in plan.perturbed], tf.float64)
        return joint_chunks(run, lambda chunk: (eps, tf.cast(chunk.seed, tf.int64)))


def project_on_hyperplane(
    point: tf.Tensor,
    w: tf.Tensor,
    c: tf.Tensor,
    low: tf.Tensor,
    high: tf.Tensor,
    p: float,
) -> tf.Tensor:
    """The smallest step onto a hyperplane within a box: FAB's projection (Linf and L2).

    Solves, per row, ``min ||d||_p  s.t.  <w, d> = c,  low <= point + d <= high`` for
    ``p`` = inf or 2 (Croce & Hein 2020, Sec. 3.1). Both reduce to one search: with
    ``cap_i`` the room coordinate i has in the direction ``sign(w_i c)``, the largest reach
    ``h(s) = sum_i a_i min(s, r_i)`` is piecewise linear and increasing in ``s``, with
    ``a = |w|, r = cap`` (Linf: ``d_i = sign(w_i c) min(s, cap_i)``) or
    ``a = w^2, r = cap / |w|`` (L2: ``d_i = sign(c) w_i min(s, r_i)``); the smallest ``s``
    with ``h(s) = |c|`` is found from the sorted breakpoints in one pass (no loop over
    coordinates). When the box cannot reach the hyperplane, the step goes as far as it can
    (to the box's corner nearest to it).

    Args:
        point: ``[B, D]`` points inside the box.
        w: ``[B, D]`` normals of the hyperplanes.
        c: ``[B]`` offsets: the hyperplane is ``<w, d> = c`` in the step ``d``.
        low: ``[D]`` lower bounds (``-inf``: none).
        high: ``[D]`` upper bounds (``inf``: none).
        p: ``math.inf`` or 2.

    Returns:
        ``[B, D]`` steps ``d``.

    >>> import math, tensorflow as tf
    >>> d = project_on_hyperplane(tf.constant([[0.5, 0.5]]), tf.constant([[1.0, 1.0]]),
    ...                           tf.constant([0.6]), tf.constant([0.0, 0.0]),
    ...                           tf.constant([1.0, 0.7]), math.inf)
    >>> [round(v, 4) for v in d.numpy()[0].tolist()]
    [0.4, 0.2]
    """
    sign = tf.where(c < 0, -tf.ones_like(c), tf.ones_like(c))
    w = w * sign[:, None]
    target = tf.abs(c)
    room = tf.where(w > 0, high - point, tf.where(w < 0, point - low, tf.zeros_like(point)))
    room = tf.maximum(room, 0)
    magnitude = tf.abs(w)
    zero = tf.zeros_like(w)
    if p == math.inf:
        weight, rate = magnitude, room
    else:
        weight = tf.square(magnitude)
        rate = room / tf.where(magnitude > 0, magnitude, 1 + zero)
    rate = tf.where(weight > 0, rate, zero)
    reach = _reach(weight, rate, target)
    move = tf.minimum(reach[:, None], rate)
    return tf.sign(w) * move if p == math.inf else w * move


def _reach(weight: tf.Tensor, rate: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Per row, the smallest s >= 0 with ``sum_i weight_i min(s, rate_i) = target`` (or the
    largest rate, where no s reaches it)."""
    order = tf.argsort(rate, axis=1)
    r = tf.gather(rate, order, batch_dims=1)
    a = tf.gather(weight, order, batch_dims=1)
    zero = tf.zeros_like(r)
    below = tf.cumsum(tf.where(a > 0, a * r, zero), axis=1)  # sum over j <= k of a_j r_j
    above = tf.cumsum(a, axis=1, reverse=True, exclusive=True)  # sum over j > k of a_j
    level = below + tf.where(above > 0, r * above, zero)  # h(r_k), nondecreasing in k
    first = tf.reduce_sum(tf.cast(level < target[:, None], tf.int32), axis=1)
    columns = tf.shape(r)[1]
    feasible = first < columns
    previous = tf.maximum(first - 1, 0)
    below_prev = tf.where(
        first > 0, tf.gather(below, previous, batch_dims=1), tf.zeros_like(target)
    )
    above_prev = tf.where(
        first > 0, tf.gather(above, previous, batch_dims=1), tf.reduce_sum(a, axis=1)
    )
    reach = tf.maximum(tf.math.divide_no_nan(target - below_prev, above_prev), 0)
    return tf.where(feasible, reach, r[:, -1])


# ------------------------------------------------------------------------------ the attack
class _FAB(JointRows):
    """One attack's compiled body for one plan signature: `run` is what gets traced.

    The perturbed inputs are flattened into one joint row per sample (`flat`/`leaves`);
    `run` picks the targets, loops over (target, restart) pairs on the samples still robust
    (`attack_pair`, `step`), searches back towards x (`search`) and judges the result.
    """

    def __init__(self, attack: FABTargeted, plan: Plan):
        super().__init__(plan)
        self.inputs, self.objective, self.classes = plan.inputs, plan.objective, plan.classes
        self.norm = self.budgets[0].norm
        self.p = math.inf if self.norm.name == "linf" else 2.0
        self.steps, self.restarts = attack.steps, attack.restarts
        self.n_targets = attack.n_target_classes
        self.alpha_max, self.eta, self.beta = attack.alpha_max, attack.eta, attack.beta

    def signature(self, labels: Any) -> list:
        """xs, labels, eps per perturbed input, seed."""
        return [
            list(self.inputs.specs()),
            label_specs(labels),
            tf.TensorSpec([len(self.perturbed)], tf.float64),
            tf.TensorSpec([2], tf.int64),
        ]

    def sizes_of(self, delta: tf.Tensor, eps: tf.Tensor):
        """Joint norm per sample, and whether every input lies in its own ball."""
        parts = tf.split(delta, self.sizes, axis=1)
        each = tf.stack([self.norm.norm(part) for part in parts], axis=1)
        inside = tf.reduce_all(each <= eps[None, :], axis=1)
        joint = tf.reduce_max(each, axis=1) if self.p == math.inf else tf.norm(each, axis=1)
        return joint, inside

    # ------------------------------------------------------------------ model
    def scores(self, clean: dict[str, tf.Tensor], row: tf.Tensor) -> tf.Tensor:
        outputs = self.objective.forward(self.inputs.pack({**clean, **self.split(row)}))
        return tf.convert_to_tensor(self.classes.scores(outputs))

    def difference(self, clean, row, truth, target):
        """``z_t - z_y`` per sample and its gradient wrt the joint row."""
        leaves = {**clean, **self.split(row)}

        def margin(outputs):
            scores = tf.convert_to_tensor(self.classes.scores(outputs))
            picked = tf.gather(scores, tf.stack([target, truth], axis=1), batch_dims=1)
            return picked[:, 0] - picked[:, 1]

        value, _, grads = output_value_and_grad(
            self.objective, self.inputs, leaves, margin, wrt=self.perturbed
        )
        grad = tf.concat(
            [
                tf.reshape(tf.cast(g, self.dtype), [-1, size])
                for g, size in zip(grads, self.sizes, strict=True)
            ],
            axis=1,
        )
        return tf.cast(value, self.dtype), grad

    # ---------------------------------------------------------------- traced
    def run(self, xs, y, eps, seed):
        """The whole attack on one batch: (x_adv per perturbed input, fooled, norms,
        gradients per sample, queries per sample)."""
        count_trace("attack")
        clean = dict(zip(self.names, xs, strict=True))
        x0 = self.flat(clean)
        eps = tf.cast(eps, self.dtype)
        truth = tf.cast(Classes.truth(self.classes.labels(y))["classes"], tf.int32)
        size = tf.shape(x0)[0]
        scores = self.scores(clean, x0)
        classes = scores.shape[-1]
        if classes is None or classes < 2:
            raise invalid("model", "a classifier with at least 2 class scores", classes)
        count = min(self.n_targets, classes - 1)
        correct = tf.equal(tf.cast(self.classes.predicted(scores), tf.int32), truth)
        others = tf.where(tf.one_hot(truth, classes) > 0, tf.cast(-np.inf, scores.dtype), scores)
        targets = tf.cast(tf.math.top_k(others, k=count).indices, tf.int32)  # [B, count]
        # A sample misclassified from the start is fooled at x itself (norm 0).
        best = x0
        best_norm = tf.where(correct, tf.cast(np.inf, self.dtype), tf.zeros([size], self.dtype))
        grads = tf.zeros([size], tf.int32)
        queries = tf.ones([size], tf.int32)
        pairs = count * self.restarts
        state = (tf.constant(0), best, best_norm, grads, queries)
        _, best, best_norm, grads, queries = tf.while_loop(
            lambda k, _b, norm, *_: (k < pairs) & tf.reduce_any(tf.math.is_inf(norm)),
            functools.partial(self.attack_pair, clean, x0, truth, targets, eps, seed),
            state,
        )
        best, best_norm, queries = self.search(clean, x0, truth, eps, best, best_norm, queries)
        # The verdict on exactly what is returned.
        fooled = tf.not_equal(
            tf.cast(self.classes.predicted(self.scores(clean, best)), tf.int32), truth
        )
        joint, inside = self.sizes_of(best - x0, eps)
        fooled = fooled & inside & tf.math.is_finite(best_norm)
        x_adv = tf.where(fooled[:, None], best, x0)
        norms_out = tf.where(fooled, joint, tf.cast(np.inf, self.dtype))
        adv = self.split(x_adv)
        return [adv[n] for n in self.perturbed], fooled, norms_out, grads, queries + 1

    def attack_pair(self, clean, x0, truth, targets, eps, seed, k, best, best_norm, grads, queries):
        """One (target, restart) pair on the samples not yet fooled inside the budget."""
        target_index, restart = k // self.restarts, k % self.restarts
        index = tf.where(tf.math.is_inf(best_norm))[:, 0]
        sub_clean = {n: tf.gather(v, index) for n, v in clean.items()}
        sub_x0 = tf.gather(x0, index)
        sub_truth = tf.gather(truth, index)
        sub_target = tf.gather(targets[:, target_index], index)
        start = self.start(sub_x0, eps, tf.random.experimental.stateless_fold_in(seed, k), restart)
        sub_norm = tf.fill(tf.shape(index), tf.cast(np.inf, self.dtype))
        body = functools.partial(self.step, sub_clean, sub_x0, sub_truth, sub_target, eps)
        _, _, found, found_norm = tf.while_loop(
            lambda t, *_: t < self.steps,
            body,
            (tf.constant(0), start, sub_x0, sub_norm),
        )
        rows = index[:, None]
        improved = found_norm < tf.gather(best_norm, index)
        best = tf.tensor_scatter_nd_update(
            best, rows, tf.where(improved[:, None], found, tf.gather(best, index))
        )
        best_norm = tf.tensor_scatter_nd_min(best_norm, rows, found_norm)
        ones = tf.ones_like(index, tf.int32)
        grads = tf.tensor_scatter_nd_add(grads, rows, ones * self.steps)
        queries = tf.tensor_scatter_nd_add(queries, rows, ones * (2 * self.steps))
        return k + 1, best, best_norm, grads, queries

    def start(self, x0, eps, seed, restart):
        """x for the first restart, else a random point at half the radius, clipped."""
        radius = 0.5 * tf.reduce_min(eps)
        noise = (
            tf.random.stateless_uniform(tf.shape(x0), seed, -1.0, 1.0, dtype=self.dtype)
            if self.p == math.inf
            else tf.random.stateless_normal(tf.shape(x0), seed, dtype=self.dtype)
        )
        peak = self.norm.norm(noise)
        unit = tf.math.divide_no_nan(noise, peak[:, None])
        moved = self.representable(self.clip(x0 + radius * unit))
        return tf.where(restart > 0, moved, x0)

    def step(self, clean, x0, truth, target, eps, t, x, found, found_norm):
        """One FAB step from `x`: project, extrapolate, bias to x0; keep and step back on a
        success."""
        value, w = self.difference(clean, x, truth, target)
        low, high = tf.constant(self.low, self.dtype), tf.constant(self.high, self.dtype)
        # The linearised boundary: value + <w, z - x> = 0, in the step from x and from x0.
        to_x = project_on_hyperplane(x, w, -value, low, high, self.p)
        shift = tf.reduce_sum(w * (x0 - x), axis=1)
        to_x0 = project_on_hyperplane(x0, w, -value - shift, low, high, self.p)
        floor = tf.constant(1e-8, self.dtype)
        near = tf.maximum(self.norm.norm(to_x), floor)
        far = tf.maximum(self.norm.norm(to_x0), floor)
        alpha = tf.clip_by_value(near / (near + far), 0.0, self.alpha_max)[:, None]
        moved = (1 - alpha) * (x + self.eta * to_x) + alpha * (x0 + self.eta * to_x0)
        x = self.representable(self.clip(moved))
        predicted = tf.cast(self.classes.predicted(self.scores(clean, x)), tf.int32)
        adversarial = tf.not_equal(predicted, truth)
        joint, inside = self.sizes_of(x - x0, eps)
        better = adversarial & inside & (joint < found_norm)
        found = tf.where(better[:, None], x, found)
        found_norm = tf.where(better, joint, found_norm)
        back = self.representable(x0 + self.beta * (x - x0))
        x = tf.where(adversarial[:, None], back, x)
        return t + 1, x, found, found_norm

    def search(self, clean, x0, truth, eps, best, best_norm, queries):
        """Bisect the segment from x0 to each best point: keep the closest misclassified."""
        eligible = tf.math.is_finite(best_norm) & (best_norm > 0)
        low = tf.zeros_like(best_norm)
        high = tf.ones_like(best_norm)
        direction = best - x0

        def bisect(i, low, high, best, best_norm):
            middle = (low + high) / 2
            point = self.representable(x0 + middle[:, None] * direction)
            predicted = tf.cast(self.classes.predicted(self.scores(clean, point)), tf.int32)
            adversarial = tf.not_equal(predicted, truth) & eligible
            joint, inside = self.sizes_of(point - x0, eps)
            better = adversarial & inside & (joint < best_norm)
            best = tf.where(better[:, None], point, best)
            best_norm = tf.where(better, joint, best_norm)
            return (
                i + 1,
                tf.where(adversarial, low, middle),
                tf.where(adversarial, middle, high),
                best,
                best_norm,
            )

        _, _, _, best, best_norm = tf.while_loop(
            lambda i, *_: i < SEARCH_STEPS,
            bisect,
            (tf.constant(0), low, high, best, best_norm),
        )
        return best, best_norm, queries + tf.cast(eligible, tf.int32) * SEARCH_STEPS
