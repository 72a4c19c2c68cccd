"""`IterativeAttack`: the compiled gradient loop that FGSM, BIM, PGD, MI-FGSM and APGD share.

A concrete attack only picks its pieces: a step rule (`step_rule`), its default step size
(`relative_step`), whether it starts at random, how many restarts. One step is

    grad -> step rule -> delta + step_size * direction -> project onto the ball -> clip

and the whole attack (restarts x steps, and the best-so-far adversarial per sample) runs in
one `tf.function` built by `Loop`; eps, step sizes and the seed are tensors, so changing
them does not retrace. Loss and gradients come from the engine
(`advgrad.gradients.value_and_grad`), "fooled" from `advgrad.predictions.Classes`.

The extension point, for a family whose step is more than a step rule (APGD's schedule that
sees the loss and restarts a sample from its best point): subclass `Loop`, override the
hooks it documents (`run`, `restart`, `start`, `step`, `project`, `masked_gradient`,
`evaluate`, `loss`, `fooled`, `keep_best`), working on a `Batch`, and return the subclass
from `IterativeAttack.make_loop`. Rows are picked with `advgrad.attacks.plan.select_rows`.

>>> import advgrad
>>> attack = advgrad.attacks.PGD(eps=0.1, steps=10)
>>> attack.relative_step(), attack.random_start
(0.25, True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from advgrad import norms, steps
from advgrad._compile import count_trace
from advgrad._validation import check_bool, check_int, check_number, invalid
from advgrad.attacks.base import Attack, Plan, headroom, setting
from advgrad.attacks.plan import Chunk, ChunkResult, finite_rows, select_rows
from advgrad.budget import Bounds
from advgrad.gradients import label_specs, value_and_grad
from advgrad.predictions import Classes


def _check_step_size(value):
    return None if value is None else check_number("step_size", value, low=0.0, low_open=True)


class IterativeAttack(Attack):
    """The shared gradient loop; subclasses choose pieces, never copy the loop.

    Settings (besides `Attack`'s):
        steps: iterations per restart.
        step_size: absolute step size; None: `relative_step * eps` per input.
        random_start: start from a uniform sample in the ball.
        restarts: independent runs; the best adversarial per sample is kept.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "steps": 10,
        "step_size": None,
        "random_start": False,
        "restarts": 1,
    }
    CHECKS: ClassVar[dict[str, Any]] = {
        "steps": setting(check_int, "steps", low=1, high=2**31 - 1),  # int32 loop counters
        "step_size": _check_step_size,
        "random_start": setting(check_bool, "random_start"),
        "restarts": setting(check_int, "restarts", low=1, high=2**31),
    }
    KEEP_BEST: ClassVar[bool] = True  # return the best iterate per sample, not the last

    def relative_step(self) -> float:
        """Step size as a fraction of eps when `step_size` is None (Madry et al.: 2.5/steps)."""
        return 2.5 / self.steps

    def step_rule(self, norm: norms.Norm) -> steps.StepRule:
        """How a gradient becomes a direction; default: the norm's steepest ascent."""
        return steps.normalize(norm)

    ONE_GRAPH: ClassVar[bool] = True  # the whole run on a chunk is one graph: `graph_fn`

    # ------------------------------------------------------------ execution
    def attack_chunks(self, plan: Plan, *, judge: bool) -> Callable[[Chunk], ChunkResult]:
        """The compiled loop on one chunk; with a strategy on the plan, each chunk is split
        over its replicas (`advgrad.replicas.Replicas`) and gives the same result as
        without one."""
        eps, sizes = self._radii(plan)
        judge = judge or self.restarts > 1  # restarts are compared by their judged iterates
        loop = self.compiled(plan, lambda: self.make_loop(plan, judge), judge)
        replicas = plan.replicas
        radii = (tf.constant(eps, tf.float64), tf.constant(sizes, tf.float64))

        def attack_chunk(chunk: Chunk) -> ChunkResult:
            shared = (*radii, chunk.seed)
            if replicas is None:
                rows = tf.constant([0, chunk.size], tf.int32)
                x_adv, fooled, trace, counts = loop(chunk.xs, chunk.labels, *shared, rows)
                trace = trace.numpy()
            else:
                x_adv, fooled, trace, counts = replicas.run(
                    functools.partial(_per_sample_trace, loop),
                    [chunk.xs, chunk.labels],
                    shared,
                    key=loop,
                )
                trace = np.mean(trace.numpy(), axis=0)  # each sample's replica's mean
            return ChunkResult(x_adv, fooled.numpy(), counts.numpy(), loss_trace=trace)

        return attack_chunk

    def _radii(self, plan: Plan) -> tuple[list[float], list[float]]:
        """Each perturbed input's radius and step size, checked against its dtype."""
        inputs, perturbed = plan.inputs, plan.perturbed
        eps = [plan.budgets[n].eps for n in perturbed]
        sizes = [
            self.step_size if self.step_size is not None else self.relative_step() * e for e in eps
        ]
        for name, size in zip(perturbed, sizes, strict=True):
            limit, dtype = headroom(inputs.tensors[name].dtype), inputs.tensors[name].dtype.name
            if size > limit and self.step_size is not None:
                expected = f"a step size that {dtype} inputs can hold (<= {limit:.3g})"
                raise invalid("step_size", expected, size)
            if size > limit:  # eps fits, but its default step (relative_step x eps) does not
                ratio = self.relative_step()
                expected = f"a radius whose steps ({ratio:g} x eps) {dtype} inputs can hold"
                raise invalid("eps", f"{expected} (eps <= {limit / ratio:.3g})", size / ratio)
        return eps, sizes

    def graph_fn(self, plan: Plan) -> Callable[..., list[tf.Tensor]]:
        """The attack as a graph function to call inside another `tf.function`.

        ``perturb(xs, y, seed, rows=None)`` takes every input's tensor (the model's order, any
        batch size), labels in the plan's form, a ``[2]`` int seed of stateless random ops
        and, for a batch that is one replica's rows of a larger one (`advgrad.replicas`),
        those rows (``[offset, total]``: its random starts are the larger batch's), and
        returns the perturbed inputs' adversarial tensors (``plan.perturbed`` order). It is
        traced where it is called (a Keras ``train_step``, say) and reads the model's weights
        when it runs, so each call attacks the current weights. Like `__call__`, it returns
        the last iterate unless an earlier one fooled the model (restarts are judged).

        >>> import numpy as np, keras, tensorflow as tf, advgrad
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> attack = advgrad.attacks.PGD(eps=0.1, steps=3, bounds=(0, 1), loss="ce")
        >>> x = np.full((2, 4), 0.5, "float32")
        >>> perturb = attack.graph_fn(attack.plan(model, x))
        >>> step = tf.function(lambda x, y: perturb([x], y, tf.constant([0, 1]))[0])
        >>> float(tf.reduce_max(tf.abs(step(x, tf.constant([0, 1])) - x))) <= 0.1 + 1e-6
        True
        """
        eps, sizes = self._radii(plan)
        loop = self.make_loop(plan, self.restarts > 1)
        names, perturbed = plan.inputs.names, plan.perturbed

        def perturb(xs, y, seed, rows=None):
            eps_t = tf.constant(eps, tf.float64)
            sizes_t = tf.constant(sizes, tf.float64)
            best, *_ = loop.run(list(xs), y, eps_t, sizes_t, seed, rows)
            # A model that overflows far from the data (NaN logits) can lead the steps to
            # NaN: such a sample gets its clean input back (`Attack.enforce`, in a graph).
            clean = dict(zip(names, xs, strict=True))
            finite = tf.reduce_all(tf.stack([finite_rows(a) for a in best], axis=1), axis=1)
            best = [select_rows(finite, a, clean[n]) for a, n in zip(best, perturbed, strict=True)]
            return [tf.stop_gradient(x) for x in best]

        return perturb

    def make_loop(self, plan: Plan, judge: bool) -> Loop:
        """The traced body for this plan: `Loop`, or a subclass of it (APGD's schedule).

        Args:
            plan: The validated call.
            judge: Whether the loop judges its final iterate (`Attack.execute`).
        """
        return Loop(self, plan, judge)


def _per_sample_trace(loop, xs, labels, eps, sizes, seed, rows):
    """`loop` on one replica's sub-batch, its loss trace repeated per sample (a replica's
    trace is the mean over its rows: the mean over all rows weighs each replica by them)."""
    x_adv, fooled, trace, counts = loop(xs, labels, eps, sizes, seed, rows)
    return x_adv, fooled, tf.tile(trace[None], [tf.shape(fooled)[0], 1]), counts


class Batch:
    """What one traced call of a `Loop` knows about its batch.

    Attributes:
        clean: Every input's clean tensor by name (frozen ones too). ``originals``: the
            perturbed inputs' clean tensors, in ``plan.perturbed`` order.
        y: The labels. ``truth``: the classes "fooled" is judged against (None without a
            classifier).
        size: The number of rows (a scalar tensor).
        positions, total: Where the rows sit in the whole chunk (``positions`` among
            ``total`` rows: a replica's sub-batch, or the samples a restart runs on, is a
            part of it; random starts are drawn for the whole chunk).
        eps, step_sizes: Each perturbed input's radius and step size, in its dtype.
        boxes: For a coordinate-wise ball (Linf), the box ball x bounds ``(low, high)``
            per input; None for the others.
    """

    def __init__(self, loop: Loop, xs, y, eps, step_sizes, rows=None):
        self.perturbed = loop.perturbed
        self.clean = dict(zip(loop.names, xs, strict=True))
        self.y = y
        self.size = tf.shape(xs[0])[0]
        offset, self.total = (0, self.size) if rows is None else (rows[0], rows[1])
        self.positions = offset + tf.range(self.size)
        classes = loop.classes
        self.truth = None if classes is None else Classes.truth(classes.labels(y))
        self.originals = [self.clean[n] for n in loop.perturbed]
        self.eps = [tf.cast(eps[i], x.dtype) for i, x in enumerate(self.originals)]
        self.step_sizes = [tf.cast(step_sizes[i], x.dtype) for i, x in enumerate(self.originals)]
        # A coordinate-wise ball (Linf) meets the bounds in a box: computed once here, it
        # makes "project, then clip" a single clip per step.
        self.boxes = [
            (b.bounds.clip(x - e), b.bounds.clip(x + e)) if b.norm.coordinatewise else None
            for b, x, e in zip(loop.budgets, self.originals, self.eps, strict=True)
        ]

    def leaves(self, adv: list[tf.Tensor]) -> dict[str, tf.Tensor]:
        """All inputs at the iterate `adv` (frozen inputs clean)."""
        return {**self.clean, **dict(zip(self.perturbed, adv, strict=True))}


class Loop:
    """One attack's compiled body for one plan signature: `run` is what gets traced.

    `run` loops over restarts (`restart`), each from a start (`start`) through `steps` steps
    (`step`); every step evaluates the loss and gradients (`evaluate`) and keeps the best
    iterate per sample (`keep_best`): a fooled iterate beats any other, else the higher loss.
    These are the public hooks: a sibling loop (APGD's, in `advgrad/attacks/apgd.py`)
    subclasses it, overrides `run` and its step, and reuses the others;
    `IterativeAttack.make_loop` picks the class. Every hook is traced: it works on tensors
    and a `Batch`.
    """

    def __init__(self, attack: IterativeAttack, plan: Plan, judge: bool):
        self.inputs, self.objective = plan.inputs, plan.objective
        self.names, self.perturbed = plan.inputs.names, plan.perturbed
        self.budgets = [plan.budgets[n] for n in self.perturbed]
        self.rules = [attack.step_rule(b.norm) for b in self.budgets]
        self.steps, self.restarts = attack.steps, attack.restarts
        self.random_start, self.targeted = attack.random_start, attack.targeted
        self.keep_all, self.judge = attack.KEEP_BEST, judge
        self.classes = plan.classes

    def signature(self, labels: Any) -> list:
        """xs, labels, eps and step sizes per perturbed input, seed, rows (``[offset,
        total]``: the batch's first row in the whole chunk, the chunk's size)."""
        count = len(self.perturbed)
        return [
            list(self.inputs.specs()),
            label_specs(labels),
            tf.TensorSpec([count], tf.float64),
            tf.TensorSpec([count], tf.float64),
            tf.TensorSpec([2], tf.int32),
            tf.TensorSpec([2], tf.int32),
        ]

    # ------------------------------------------------------------------ traced
    def run(self, xs, y, eps, step_sizes, seed, rows=None):
        """The whole attack on one batch: (best x_adv per input, fooled, loss trace,
        gradient evaluations per sample). `rows`: ``[offset, total]`` when the batch is a
        part of a chunk (a replica's); None: the whole chunk."""
        count_trace("attack")
        batch = Batch(self, xs, y, eps, step_sizes, rows)
        best = list(batch.originals)
        best_score = tf.fill([batch.size], tf.constant(-np.inf, tf.float32))
        trace = tf.zeros([self.steps + 1], tf.float32)  # the last restart's, stacked
        _, best, best_score, trace = tf.while_loop(
            lambda r, *_: r < self.restarts,
            functools.partial(self.restart, batch, seed),
            (tf.constant(0), best, best_score, trace),
        )
        # Gradient evaluations per sample: every sample takes every step of every restart.
        # (A non-finite row gets its clean input back in `Attack.enforce`.)
        counts = tf.fill([batch.size], tf.constant(self.steps * self.restarts, tf.int64))
        return best, tf.math.is_inf(best_score), trace, counts

    def restart(self, batch: Batch, seed, r, best, best_score, trace):
        """One run from a (random) start through every step; judged unless `judge` is off."""
        adv = self.start(batch, tf.random.experimental.stateless_fold_in(seed, r))
        states = [rule.init(x) for rule, x in zip(self.rules, batch.originals, strict=True)]
        trace = tf.TensorArray(tf.float32, size=self.steps + 1, element_shape=[])
        _, adv, _, best, best_score, trace = tf.while_loop(
            lambda t, *_: t < self.steps,
            functools.partial(self.step, batch),
            (tf.constant(0), adv, states, best, best_score, trace),
        )
        if not self.judge:  # `__call__`: the last iterate, unless an earlier one fooled
            if self.keep_all:
                fooled = tf.math.is_inf(best_score)
                adv = [select_rows(fooled, b, a) for a, b in zip(adv, best, strict=True)]
            return r + 1, adv, tf.zeros_like(best_score), trace.stack()
        loss, outputs = self.loss(batch, adv)
        fooled = self.fooled(batch, outputs)
        trace = record_loss(trace, self.steps, loss)
        if self.keep_all:
            best, best_score = self.keep_best(adv, loss, fooled, best, best_score)
        else:  # the last iterate, whatever it scores
            best = adv
            best_score = tf.where(fooled, np.inf, tf.cast(loss, tf.float32))
        return r + 1, best, best_score, trace.stack()

    def start(self, batch: Batch, restart_seed) -> list[tf.Tensor]:
        """The first iterate: x, or a uniform draw in the ball, clipped.

        The draw is made for the whole chunk (``batch.total`` rows) and each sample takes
        its row (``batch.positions``): a sample gets the same start whether its chunk runs
        whole or split over replicas."""
        adv = []
        for i, x in enumerate(batch.originals):
            delta = tf.zeros_like(x)
            if self.random_start:
                shape = tf.concat([[batch.total], tf.shape(x)[1:]], 0)
                noise = self.budgets[i].norm.random_init(
                    shape,
                    batch.eps[i],
                    tf.random.experimental.stateless_fold_in(restart_seed, i),
                    x.dtype,
                )
                delta = tf.gather(noise, batch.positions)
            adv.append(self.budgets[i].bounds.clip(x + delta))
        return adv

    def step(self, batch: Batch, t, adv, states, best, best_score, trace):
        """grad -> step rule -> delta + size * direction -> project -> clip."""
        loss, fooled, grads = self.evaluate(batch, adv)
        trace = record_loss(trace, t, loss)
        if self.keep_all:
            best, best_score = self.keep_best(adv, loss, fooled, best, best_score)
        new_adv, new_states = [], []
        for i, (x, rule) in enumerate(zip(batch.originals, self.rules, strict=True)):
            grad = self.masked_gradient(batch, i, grads[i], adv[i])
            direction, state = rule.update(grad, states[i])
            stepped = adv[i] + batch.step_sizes[i] * tf.cast(direction, x.dtype)
            new_adv.append(self.project(batch, i, stepped))
            new_states.append(state)
        return t + 1, new_adv, new_states, best, best_score, trace

    def project(self, batch: Batch, i: int, point: tf.Tensor) -> tf.Tensor:
        """`point` (input `i`) back into its ball around the clean input, then the bounds."""
        box, x = batch.boxes[i], batch.originals[i]
        if box is not None:  # a coordinate-wise ball: one clip into ball and bounds at once
            return tf.clip_by_value(point, *box)
        budget = self.budgets[i]
        return budget.bounds.clip(x + budget.norm.project(point - x, batch.eps[i]))

    def masked_gradient(self, batch: Batch, i: int, grad: tf.Tensor, adv: tf.Tensor) -> tf.Tensor:
        """The raw gradient of input `i`, with blocked coordinates masked (non-coordinate-wise
        norms), as `step` feeds it to the step rule."""
        if batch.boxes[i] is None:
            return _mask_blocked(grad, adv, self.budgets[i].bounds)
        return grad

    def evaluate(self, batch: Batch, adv):
        """Attack loss per sample, whether each sample is fooled, gradients per input."""
        loss, outputs, grads = value_and_grad(
            self.objective,
            self.inputs,
            batch.leaves(adv),
            batch.y,
            wrt=self.perturbed,
            negate=self.targeted,
        )
        # The bookkeeping waits for the backward pass instead of running beside it: on a
        # few CPU cores, one small op next to a convolution delays all of it.
        with tf.control_dependencies(grads):
            loss = tf.identity(loss)
            fooled = self.fooled(batch, outputs)
        return loss, fooled, grads

    def loss(self, batch: Batch, adv):
        """Attack loss per sample (to maximise) and the outputs, without gradients."""
        outputs = self.objective.forward(self.inputs.pack(batch.leaves(adv)))
        per_sample = self.objective.per_sample(batch.y, outputs)
        return (-per_sample if self.targeted else per_sample), outputs

    def fooled(self, batch: Batch, outputs) -> tf.Tensor:
        """Per sample: the prediction on `outputs` is what the attack wants."""
        if self.classes is None:  # no output with a classification loss: nothing to flip
            return tf.zeros([tf.shape(tf.nest.flatten(outputs)[0])[0]], tf.bool)
        scores = self.classes.scores(outputs)
        return self.classes.fooled(scores, batch.truth, self.targeted)

    @staticmethod
    def keep_best(adv, loss, fooled, best, best_score):
        """Per sample, `adv` where it scores higher than `best_score` (a fooled iterate
        scores inf, any other its loss), else `best`: (new best, new best score)."""
        score = tf.where(fooled, tf.constant(np.inf, tf.float32), tf.cast(loss, tf.float32))
        better = score > best_score
        best = [select_rows(better, a, b) for a, b in zip(adv, best, strict=True)]
        return best, tf.where(better, score, best_score)


def record_loss(trace: tf.TensorArray, index: Any, loss: tf.Tensor) -> tf.TensorArray:
    """`trace` with the mean of `loss` (``[B]``) written at `index` (the loss trace)."""
    return trace.write(index, tf.reduce_mean(tf.cast(loss, tf.float32)))


def _mask_blocked(grad: tf.Tensor, adv: tf.Tensor, bounds: Bounds) -> tf.Tensor:
    """Zero the gradient where `adv` sits on a bound and ascent would push it outside.

    No step is spent on coordinates the clip would undo: the sparse L1 direction would
    otherwise keep choosing them and stall (Tramer & Boneh 2019; Foolbox's
    SparseL1DescentAttack does the same), and the L2 direction would waste norm on them.
    Not applied for coordinate-wise norms (Linf): there a blocked coordinate's step is clipped
    back and costs the others nothing, so the mask would only add work to every step.
    """
    if bounds.is_unbounded:
        return grad
    low = tf.constant(bounds.low, adv.dtype)
    high = tf.constant(bounds.high, adv.dtype)
    at_high, at_low = adv >= high, adv <= low
    return tf.where(at_high, tf.minimum(grad, 0), tf.where(at_low, tf.maximum(grad, 0), grad))


__all__ = ["Batch", "IterativeAttack", "Loop", "record_loss"]
