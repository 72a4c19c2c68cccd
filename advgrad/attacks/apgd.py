"""APGD and APGD-T: the shared gradient loop plus a step-size schedule that sees the loss.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 (Auto-PGD); the L1 ball as in Croce & Hein, "Mind the box:
l1-APGD for sparse adversarial attacks on image classifiers", ICML 2021.

APGD is `IterativeAttack`'s loop (`advgrad.attacks.loop.Loop`: start, evaluate, keep the
best, project, clip) with a different step: every sample has its own step size, which starts
at 2 x eps and halves at checkpoints (`checkpoints`) when the loss rose in too few steps of
the last window (fewer than rho = 0.75 of them) or when the best loss did not improve since
the last checkpoint and the step was not halved there; a sample whose step halves restarts
from its highest-loss point (`StepSizeSchedule`). Steps use momentum 0.75:
``z = P(x + eta * dir(grad))``, ``x_new = P(x + 0.75 (z - x) + 0.25 (x - x_prev))`` (the
first step plain). The output is the best iterate per sample (fooled, else highest loss).

L1 (every perturbed input with an L1 budget) is l1-APGD of "Mind the box", as AutoAttack
implements it: the step is ``eta`` times the sign of the gradient on its top ``k``
coordinates, spread over them (`advgrad.norms.sparse_sign_direction`; coordinates the bounds
block are left out), with no momentum; ``P`` is the exact projection onto the L1 ball
intersected with the bounds (`advgrad.norms.project_l1_box`), the random start too; ``eta``
starts at eps and ``k`` at 0.2 x d, and both adapt every 0.04 x steps to the sparsity of the
highest-loss point (`SparseSchedule`). A model with L1 and other norms on different inputs
keeps the Linf/L2 loop, with `advgrad.norms.L1`'s fixed top-1% direction for its L1 inputs.

`APGDTargeted` runs APGD on the targeted DLR loss (`advgrad.losses.targeted_dlr`) once per
target class (the 2nd, 3rd, ... highest scoring classes at the clean input), each run on the
samples no earlier run fooled. Restarts of APGD run only on the samples still robust, too.
The whole attack (targets, restarts, steps and schedule) is one compiled `tf.function`.
On fewer than 4 classes it runs on the targeted DLR's numerator, the targeted margin
(`APGDTargeted.for_classes` says what runs on a given model).

Differences from AutoAttack's code: l1-APGD starts from a uniform draw in the L1 ball
projected onto ball x bounds (AutoAttack: a standard normal draw projected), and runs one
phase at radius eps (AutoAttack's evaluation runs it at 3 x eps, 2 x eps, then eps,
`use_largereps`: no stronger on the digits CNN, measured).

>>> import advgrad
>>> attack = advgrad.attacks.APGD(eps=0.1, loss="dlr")
>>> attack.steps, attack.restarts, checkpoints(100)
(100, 1, [0, 22, 41, 57, 70, 80, 87, 93, 99])
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple

import numpy as np
import tensorflow as tf

from advgrad import losses, norms
from advgrad._compile import count_trace
from advgrad._validation import check_int, invalid
from advgrad.attacks.base import Plan, setting
from advgrad.attacks.loop import Batch, IterativeAttack, Loop, record_loss
from advgrad.attacks.plan import select_rows
from advgrad.attacks.registry import register_attack
from advgrad.objective import Objective

__all__ = [
    "APGD",
    "APGDTargeted",
    "SparseSchedule",
    "StepSizeSchedule",
    "TARGETED_LOSSES",
    "checkpoints",
]

RHO = 0.75  # fraction of a window's steps that must raise the loss
MOMENTUM = 0.75  # alpha: weight of the new step against the last one

# The losses of APGD-T (its `loss` setting). Labels are [B, 2] (true class, target); named
# like the built-in losses so they are read off logits.
TARGETED_LOSSES = {
    "dlr": losses.LossSpec(losses.targeted_dlr, "dlr", "sparse", True),
    "margin": losses.LossSpec(losses.targeted_margin, "margin", "sparse", True),
}
DLR_CLASSES = 4  # the targeted DLR's scale needs the 4th-largest logit


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step size (0 included).

    The first window is 0.22 x steps, each next one 0.03 x steps shorter, down to a floor of
    0.06 x steps (integer parts, at least 1): ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03,
    0.06)`` of Croce & Hein (2020), as AutoAttack rounds it. A checkpoint ``w`` is checked
    after the loss at iterate ``w`` is known, before the step from it.

    >>> checkpoints(10)
    [0, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    steps = check_int("steps", steps, low=1)
    window = max(int(0.22 * steps), 1)
    shrink, floor = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    points = [0]
    while points[-1] + window < steps:
        points.append(points[-1] + window)
        window = max(window - shrink, floor)
    return points


class ScheduleState(NamedTuple):
    """Per-sample state of `StepSizeSchedule`, every field of shape ``[B]``.

    Attributes:
        scale: Step size as a fraction of the initial one (1, 1/2, 1/4, ...).
        best_loss: Highest loss so far.
        last_loss: Loss at the point the last step left from (+inf before the first).
        increases: Steps that raised the loss since the last checkpoint (int32).
        best_at_check: `best_loss` at the last checkpoint.
        reduced: Whether the step halved at the last checkpoint (True before the first).
    """

    scale: tf.Tensor
    best_loss: tf.Tensor
    last_loss: tf.Tensor
    increases: tf.Tensor
    best_at_check: tf.Tensor
    reduced: tf.Tensor


class StepSizeSchedule:
    """APGD's per-sample step-size schedule: `init`, then `update` with each iterate's loss.

    At a checkpoint (`checkpoints`) a sample's step size halves when either
    1. the loss rose in fewer than ``rho`` x (window length) of the window's steps, or
    2. its best loss did not improve since the last checkpoint and the step size was not
       halved there.
    `update` also says which samples improved their best loss (keep that point) and which
    halved (restart from the best point).

    Args:
        steps: Iterations of the attack.
        rho: The fraction of condition 1 (0.75 in the paper).

    >>> schedule = StepSizeSchedule(10)
    >>> state = schedule.init(2)
    >>> for t, loss in enumerate([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]):
    ...     state, improved, halved = schedule.update(state, t, tf.constant(loss))
    >>> state.scale.numpy().tolist()  # at checkpoint 2 the flat sample's step halved
    [1.0, 0.5]
    """

    def __init__(self, steps: int, rho: float = RHO):
        self.steps, self.rho = steps, rho
        self.points = checkpoints(steps)
        windows = np.zeros(steps, np.float32)  # at a checkpoint: its window's length
        for before, at in zip(self.points, self.points[1:], strict=False):
            windows[at] = at - before
        self.windows = windows

    def init(self, size: Any) -> ScheduleState:
        """The state before the first iterate, for `size` samples."""
        zeros = tf.zeros(tf.reshape(size, [1]), tf.float32)
        return ScheduleState(
            scale=zeros + 1.0,
            best_loss=zeros - np.inf,
            last_loss=zeros + np.inf,
            increases=tf.zeros_like(zeros, tf.int32),
            best_at_check=zeros - np.inf,
            reduced=tf.ones_like(zeros, tf.bool),
        )

    def update(
        self, state: ScheduleState, t: Any, loss: tf.Tensor
    ) -> tuple[ScheduleState, tf.Tensor, tf.Tensor]:
        """Take the loss at iterate `t`: (new state, improved ``[B]``, halved ``[B]``)."""
        loss = tf.cast(loss, tf.float32)
        improved = loss > state.best_loss
        best = tf.where(improved, loss, state.best_loss)
        increases = state.increases + tf.cast(loss > state.last_loss, tf.int32)
        window = tf.gather(tf.constant(self.windows), t)  # 0: not a checkpoint
        check = window > 0
        too_few = tf.cast(increases, tf.float32) < self.rho * window
        stalled = ~state.reduced & (best <= state.best_at_check)
        halved = check & (too_few | stalled)
        state = ScheduleState(
            scale=tf.where(halved, 0.5 * state.scale, state.scale),
            best_loss=best,
            last_loss=tf.where(halved, best, loss),  # a halved sample steps from its best
            increases=tf.where(check, tf.zeros_like(increases), increases),
            best_at_check=tf.where(check, best, state.best_at_check),
            reduced=tf.where(check, halved, state.reduced),
        )
        return state, improved, halved


class SparseState(NamedTuple):
    """Per-sample state of `SparseSchedule`, every field of shape ``[B]`` (float32).

    Attributes:
        scale: Step size as a fraction of eps (1 at the start, within [0.1, 1]).
        best_loss: Highest loss so far.
        best_support: Non-zero coordinates of the highest-loss point's perturbation.
        last_support: `best_support` at the last checkpoint (the feature count before).
        fraction: Share of coordinates the next steps move (0.2 at the start).
    """

    scale: tf.Tensor
    best_loss: tf.Tensor
    best_support: tf.Tensor
    last_support: tf.Tensor
    fraction: tf.Tensor


class SparseSchedule:
    """l1-APGD's per-sample schedule of step size and sparsity (Croce & Hein 2021).

    "Mind the box: l1-APGD for sparse adversarial attacks on image classifiers", ICML 2021,
    as AutoAttack implements it: checkpoints every ``max(int(0.04 steps), 1)``
    iterations; at each, with ``s`` the support (number of non-zero coordinates) of the
    highest-loss point's perturbation,
    1. the step moves the top ``s / 1.5`` coordinates of the gradient from then on
       (``fraction = s / (1.5 d)``; 0.2 x d before the first checkpoint);
    2. if ``s`` fell below 0.95 x its value at the last checkpoint (d before the first), the
       step size goes back to eps and the sample restarts from its highest-loss point; else
       the step size is divided by 1.5, never below eps / 10.

    Args:
        steps: Iterations of the attack.
        features: Coordinates of a sample (all its L1 inputs together).

    >>> schedule = SparseSchedule(100, features=10)
    >>> state = schedule.init(1)
    >>> for t in range(5):
    ...     state, improved, restart = schedule.update(state, t, tf.constant([float(t)]),
    ...                                               tf.constant([8.0]))
    >>> schedule.every, bool(restart[0])  # at t = 4: 8 < 0.95 x 10 coordinates, restart
    (4, True)
    >>> round(float(state.fraction[0]), 3), float(state.scale[0])  # 8 / 15; step back to eps
    (0.533, 1.0)
    """

    START_FRACTION = 0.2  # the share of coordinates moved before the first checkpoint
    SHRINK = 1.5  # step size divisor at a checkpoint; support divisor for the fraction
    MIN_SCALE = 0.1  # the step size never falls below eps / 10
    SPARSER = 0.95  # the support must shrink below 0.95 x its last value to restart

    def __init__(self, steps: int, features: Any):
        self.steps, self.features = steps, features
        self.every = max(int(0.04 * steps), 1)

    def init(self, size: Any) -> SparseState:
        """The state before the first iterate, for `size` samples."""
        zeros = tf.zeros(tf.reshape(size, [1]), tf.float32)
        return SparseState(
            scale=zeros + 1.0,
            best_loss=zeros - np.inf,
            best_support=zeros,
            last_support=zeros + tf.cast(self.features, tf.float32),
            fraction=zeros + self.START_FRACTION,
        )

    def update(
        self, state: SparseState, t: Any, loss: tf.Tensor, support: tf.Tensor
    ) -> tuple[SparseState, tf.Tensor, tf.Tensor]:
        """Take iterate `t`'s loss and support: (new state, improved ``[B]``, restart ``[B]``)."""
        loss = tf.cast(loss, tf.float32)
        improved = loss > state.best_loss
        best_support = tf.where(improved, tf.cast(support, tf.float32), state.best_support)
        check = (t > 0) & tf.equal(t % self.every, 0)
        sparser = check & (best_support < self.SPARSER * state.last_support)
        scale = tf.where(sparser, 1.0, state.scale / self.SHRINK)
        scale = tf.where(check, tf.clip_by_value(scale, self.MIN_SCALE, 1.0), state.scale)
        fraction = best_support / (self.SHRINK * tf.cast(self.features, tf.float32))
        state = SparseState(
            scale=scale,
            best_loss=tf.where(improved, loss, state.best_loss),
            best_support=best_support,
            last_support=tf.where(check, best_support, state.last_support),
            fraction=tf.where(check, fraction, state.fraction),
        )
        return state, improved, sparser


class _APGDLoop(Loop):
    """`Loop` with APGD's step (schedule, momentum, restart from the best point), run once
    per restart (and per target class) on the samples that are not fooled yet."""

    def __init__(self, attack: APGD, plan: Plan, judge: bool, targets: int = 0):
        super().__init__(attack, plan, judge)
        self.schedule = StepSizeSchedule(self.steps)
        self.targets = targets  # 0: `y` is what the loss takes; k: one run per target class
        self.runs = self.restarts * max(targets, 1)
        self.judge = judge or self.runs > 1  # the runs need to know what is fooled
        self.initial = [1.0 if b.norm.name == "l1" else 2.0 for b in self.budgets]
        # l1-APGD ("Mind the box") when every perturbed input has an L1 budget.
        self.sparse = all(b.norm.name == "l1" for b in self.budgets)

    # ------------------------------------------------------------------ traced
    def run(self, xs, y, eps, step_sizes, seed, rows=None):
        count_trace("attack")
        whole = Batch(self, xs, y, eps, step_sizes, rows)
        order = self.target_order(whole)
        best = list(whole.originals)
        best_score = tf.fill([whole.size], tf.constant(-np.inf, tf.float32))
        counts = tf.zeros([whole.size], tf.int64)
        trace = tf.zeros([self.steps + 1], tf.float32)

        def more(r, best, best_score, counts, trace):
            return (r < self.runs) & tf.reduce_any(best_score < np.inf)

        def body(r, best, best_score, counts, trace):
            index = tf.where(best_score < np.inf)[:, 0]  # the samples not fooled yet
            part = Batch(
                self,
                [tf.gather(x, index) for x in xs],
                tf.nest.map_structure(lambda v: tf.gather(v, index), y),
                eps,
                step_sizes,
            )
            # Its random starts: the rows of these samples in the whole chunk's draw.
            part.positions, part.total = tf.gather(whole.positions, index), whole.total
            if order is not None:
                target = tf.gather(tf.gather(order, index), 1 + r // self.restarts, axis=1)
                target = tf.cast(target, tf.int64)
                truth = tf.reshape(tf.cast(part.y, tf.int64), [-1])
                part.y = tf.stack([truth, target], axis=1)  # what the targeted loss takes
            adv, score, trace = self.attempt(
                part, tf.random.experimental.stateless_fold_in(seed, r)
            )
            held = tf.gather(best_score, index)
            better = score > held
            rows = index[:, None]
            best = [
                tf.tensor_scatter_nd_update(b, rows, select_rows(better, a, tf.gather(b, index)))
                for a, b in zip(adv, best, strict=True)
            ]
            best_score = tf.tensor_scatter_nd_update(
                best_score, rows, tf.where(better, score, held)
            )
            steps = tf.fill(tf.shape(index), tf.constant(self.steps, tf.int64))
            counts = tf.tensor_scatter_nd_add(counts, rows, steps)
            return r + 1, best, best_score, counts, trace

        _, best, best_score, counts, trace = tf.while_loop(
            more, body, (tf.constant(0), best, best_score, counts, trace)
        )
        return best, tf.equal(best_score, np.inf), trace, counts

    def target_order(self, batch: Batch) -> tf.Tensor | None:
        """Classes by decreasing score at the clean inputs (``[B, C]``), or None."""
        if not self.targets:
            return None
        outputs = self.objective.forward(self.inputs.pack(batch.leaves(batch.originals)))
        scores = self.classes.scores(outputs)
        return tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True, name="targets")

    def attempt(self, batch: Batch, seed) -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
        """One APGD run: (best iterate per input, its score, the loss trace)."""
        # The shared start: clipping a point of the L1 ball into bounds that hold x keeps
        # it in the ball, so it is already the projection onto their intersection.
        adv = self.start(batch, seed)
        if self.sparse:  # l1-APGD
            schedule = SparseSchedule(self.steps, sum(_features(x) for x in batch.originals))
            step = functools.partial(self.sparse_step, batch, schedule)
        else:
            schedule = self.schedule
            step = functools.partial(self.apgd_step, batch)
        best_score = tf.fill([batch.size], tf.constant(-np.inf, tf.float32))
        trace = tf.TensorArray(tf.float32, size=self.steps + 1, element_shape=[])
        state = (
            tf.constant(0),
            adv,
            list(adv),  # the previous iterate (momentum; unused in L1)
            list(adv),  # the highest-loss iterate (restarts)
            [tf.zeros_like(a) for a in adv],  # its gradient
            schedule.init(batch.size),
            list(adv),  # the best iterate (output)
            best_score,
            trace,
        )
        _, adv, _, top, _, _, best, best_score, trace = tf.while_loop(
            lambda t, *_: t < self.steps, step, state
        )
        if not self.judge:  # `__call__`, one run: a fooled iterate, else the highest loss
            fooled = tf.equal(best_score, np.inf)
            adv = [select_rows(fooled, b, a) for a, b in zip(top, best, strict=True)]
            return adv, tf.zeros_like(best_score), trace.stack()
        loss, outputs = self.loss(batch, adv)
        trace = record_loss(trace, self.steps, loss)
        best, best_score = self.keep_best(adv, loss, self.fooled(batch, outputs), best, best_score)
        return best, best_score, trace.stack()

    def apgd_step(self, batch: Batch, t, adv, prev, top, top_grads, schedule, best, score, trace):
        """Evaluate, schedule (maybe restart from the best point), step with momentum."""
        loss, fooled, grads = self.evaluate(batch, adv)
        trace = record_loss(trace, t, loss)
        best, score = self.keep_best(adv, loss, fooled, best, score)
        schedule, improved, halved = self.schedule.update(schedule, t, loss)
        top = [select_rows(improved, a, b) for a, b in zip(adv, top, strict=True)]
        top_grads = [select_rows(improved, g, h) for g, h in zip(grads, top_grads, strict=True)]
        adv = [select_rows(halved, b, a) for a, b in zip(adv, top, strict=True)]
        grads = [select_rows(halved, h, g) for g, h in zip(grads, top_grads, strict=True)]
        alpha = tf.where(t > 0, MOMENTUM, 1.0)
        new_adv = []
        for i, x in enumerate(adv):
            shape = [-1] + [1] * (x.shape.rank - 1)
            size = tf.reshape(tf.cast(schedule.scale, x.dtype), shape) * batch.eps[i]
            grad = self.masked_gradient(batch, i, grads[i], x)
            direction = tf.cast(self.budgets[i].norm.direction(grad), x.dtype)
            z = self.project(batch, i, x + (self.initial[i] * size) * direction)
            a = tf.cast(alpha, x.dtype)
            new_adv.append(self.project(batch, i, x + a * (z - x) + (1 - a) * (x - prev[i])))
        return t + 1, new_adv, adv, top, top_grads, schedule, best, score, trace

    # ------------------------------------------------------- l1-APGD (Mind the box)
    def sparse_project(self, batch: Batch, i: int, point: tf.Tensor) -> tf.Tensor:
        """`point` (input `i`) onto its L1 ball intersected with the bounds, exactly
        (`advgrad.norms.project_l1_box`), then clipped (a no-op but for rounding)."""
        x, bounds = batch.originals[i], self.budgets[i].bounds
        low = tf.constant(bounds.low, x.dtype) - x
        high = tf.constant(bounds.high, x.dtype) - x
        delta = norms.project_l1_box(point - x, batch.eps[i], low, high)
        return bounds.clip(x + delta)

    @staticmethod
    def support(batch: Batch, adv: list[tf.Tensor]) -> tf.Tensor:
        """Per sample (``[B]``, float32): the non-zero coordinates of the perturbation."""
        counts = [
            tf.reduce_sum(tf.cast(tf.reshape(a - x, [batch.size, -1]) != 0, tf.float32), 1)
            for a, x in zip(adv, batch.originals, strict=True)
        ]
        return tf.add_n(counts)

    def sparse_step(
        self,
        batch: Batch,
        rule: SparseSchedule,
        t,
        adv,
        prev,
        top,
        top_grads,
        sched,
        best,
        score,
        trace,
    ):
        """l1-APGD's step: evaluate, schedule (maybe restart from the highest-loss point),
        then ``P(x + scale * eps * sparse_sign_direction(grad, fraction))``, no momentum."""
        loss, fooled, grads = self.evaluate(batch, adv)
        trace = record_loss(trace, t, loss)
        best, score = self.keep_best(adv, loss, fooled, best, score)
        sched, improved, restart = rule.update(sched, t, loss, self.support(batch, adv))
        top = [select_rows(improved, a, b) for a, b in zip(adv, top, strict=True)]
        top_grads = [select_rows(improved, g, h) for g, h in zip(grads, top_grads, strict=True)]
        adv = [select_rows(restart, b, a) for a, b in zip(adv, top, strict=True)]
        grads = [select_rows(restart, h, g) for g, h in zip(grads, top_grads, strict=True)]
        new_adv = []
        for i, x in enumerate(adv):
            shape = [-1] + [1] * (x.shape.rank - 1)
            size = tf.reshape(tf.cast(sched.scale, x.dtype), shape) * batch.eps[i]
            grad = self.masked_gradient(batch, i, grads[i], x)  # blocked coordinates: 0
            direction = norms.sparse_sign_direction(grad, sched.fraction)
            new_adv.append(self.sparse_project(batch, i, x + size * direction))
        return t + 1, new_adv, adv, top, top_grads, sched, best, score, trace


def _features(x: tf.Tensor) -> Any:
    """Coordinates per sample of `x`: a Python int when its shape is static."""
    shape = x.shape[1:]
    if shape.is_fully_defined():
        return int(np.prod(shape.as_list(), dtype=np.int64))
    return tf.reduce_prod(tf.shape(x)[1:])


def _check_loss(value: Any) -> str:
    if isinstance(value, str) and value.lower() in ("ce", "dlr"):
        return value.lower()
    raise invalid("loss", "'ce' or 'dlr' (the losses of APGD)", value)


def _class_count(plan: Plan) -> int | None:
    """The number of classes of the output that decides "fooled" (None: no such output)."""
    if plan.classes is None:
        return None
    objective = plan.objective
    count = objective.class_count(plan.classes.key)
    if count is not None:
        return count
    one = {n: t[:1] for n, t in plan.inputs.tensors.items()}
    scores = plan.classes.scores(objective.forward(plan.inputs.pack(one)))
    return int(tf.convert_to_tensor(scores).shape[-1] or 1)


@register_attack("apgd")
class APGD(IterativeAttack):
    """Auto-PGD (Croce & Hein 2020): PGD with a per-sample step-size schedule and momentum.

    Settings: eps, norm ("linf", "l2", "l1"), loss ("ce", the default, or "dlr": the
    difference of logits ratio, needs 3 classes), steps (100), restarts (1; each after the
    first runs on the samples still robust), random_start (True), bounds, budget, targeted,
    seed, batch_size, progress. There is no step size to set: it starts at 2 x eps (L1: eps)
    and adapts per sample. With ``norm="l1"`` it is l1-APGD ("Mind the box", Croce & Hein,
    ICML 2021: adaptive sparsity, exact projection onto the L1 ball and the bounds; see the
    module docstring); `advgrad.norms.L1`'s `sparsity` is not used there.

    >>> import numpy as np, keras, advgrad
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.default_rng(0).random((8, 4)).astype("float32")
    >>> result = advgrad.attacks.APGD(eps=0.1, steps=10, bounds=(0, 1)).run(model, x)
    >>> bool(np.abs(result.x_adv - x).max() <= 0.1 + 1e-6), result.gradients
    (True, 10)
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "steps": 100,
        "restarts": 1,
        "random_start": True,
        "loss": "ce",
    }
    CHECKS: ClassVar[dict[str, Any]] = {"loss": _check_loss}
    FIXED: ClassVar[dict[str, Any]] = {"step_size": None}

    def relative_step(self) -> float:
        """The initial step as a fraction of eps (2; the loop uses 1 for L1)."""
        return 2.0

    def plan(
        self,
        model: Any,
        x: Any,
        y: Any = None,
        *,
        budget: Any = None,
        eps: float | None = None,
        strategy: Any = None,
    ) -> Plan:
        """`Attack.plan`, and a check that the model has the classes the loss needs.

        Raises:
            ArgumentError: `loss` is "dlr" and the model has fewer than 3 classes.
        """
        plan = super().plan(model, x, y, budget=budget, eps=eps, strategy=strategy)
        return self._check_classes(plan)

    def _check_classes(self, plan: Plan) -> Plan:
        classes = _class_count(plan)
        if self.loss == "dlr" and (classes is None or classes < 3):
            expected = f"'ce' for a model with {classes} classes (DLR needs 3 or more)"
            raise invalid("loss", expected, self.loss)
        return plan

    def make_loop(self, plan: Plan, judge: bool) -> Loop:
        return _APGDLoop(self, plan, judge)


def _check_targeted_loss(value: Any) -> str:
    if isinstance(value, str) and value.lower() in TARGETED_LOSSES:
        return value.lower()
    raise invalid("loss", f"one of {sorted(TARGETED_LOSSES)} (the losses of APGD-T)", value)


@register_attack("apgd-t")
class APGDTargeted(APGD):
    """APGD-T (Croce & Hein 2020): APGD on the targeted DLR loss, one target class at a time.

    `y` are the TRUE labels (None: the predictions): the attack picks its targets, the
    classes with the 2nd to (n_target_classes + 1)-th highest score at the clean input, and a
    sample is fooled when the prediction differs from `y`. Each target's run (and restart)
    covers only the samples no earlier run fooled; `AttackResult.queries` counts each
    sample's gradient evaluations.

    Settings: eps, norm, n_target_classes (9; at most classes - 1 are used), loss ("dlr",
    the default: the targeted DLR ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``, or
    "margin": ``z_t - z_y``), steps (100), restarts (1 per target), random_start, bounds,
    budget, seed, batch_size, progress.

    Few classes, by design: the targeted DLR's scale needs the 4th-largest logit, so on a
    model with 2 or 3 classes "dlr" runs its numerator, the targeted margin ``z_t - z_y``
    (`advgrad.losses.targeted_margin`; AutoAttack's reference has no such case: its
    `check_n_classes` warns and the loss fails to index), and every one of the classes - 1
    other classes is a target. `for_classes` gives the attack with the settings that
    actually run on a model (`advgrad.evaluate` records those). A model with one output unit
    is two classes (0, z); fewer is an error.

    >>> import numpy as np, keras, advgrad
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)])
    >>> x = np.random.default_rng(0).random((8, 4)).astype("float32")
    >>> attack = advgrad.attacks.APGDTargeted(eps=0.1, steps=5, n_target_classes=2, bounds=(0, 1))
    >>> result = attack.run(model, x)
    >>> int(result.queries.max()) <= 10, "targeted" in attack.get_config()
    (True, False)
    >>> used = attack.for_classes(3)  # what runs on a 3-class model
    >>> used.n_target_classes, used.loss
    (2, 'margin')
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {"n_target_classes": 9, "loss": "dlr"}
    CHECKS: ClassVar[dict[str, Any]] = {
        "n_target_classes": setting(check_int, "n_target_classes", low=1, high=2**31 - 1),
        "loss": _check_targeted_loss,
    }
    FIXED: ClassVar[dict[str, Any]] = {**APGD.FIXED, "targeted": False}

    def for_classes(self, classes: int) -> APGDTargeted:
        """This attack with the settings it runs with on a model of `classes` classes: at
        most classes - 1 targets, and below 4 classes the targeted margin loss."""
        attack = super().for_classes(classes)
        if classes < DLR_CLASSES and attack.loss != "margin":
            return attack.replace(loss="margin")
        return attack

    def _check_classes(self, plan: Plan) -> Plan:
        classes = _class_count(plan)
        if classes is None or classes < 2:
            expected = "a classifier with 2 or more classes (APGD-T picks target classes)"
            raise invalid("model", expected, f"a model with {classes} output classes")
        spec = TARGETED_LOSSES[self.for_classes(classes).loss]
        objective = Objective.resolve(plan.inputs.adapter, spec, None)
        return dataclasses.replace(plan, objective=objective)

    def make_loop(self, plan: Plan, judge: bool) -> Loop:
        targets = self.for_classes(_class_count(plan)).n_target_classes
        return _APGDLoop(self, plan, judge, targets=targets)
