"""Square: a score-based random search, no gradients, with the query count per sample.

Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020. Each iteration proposes a change of the
best point found so far on one random square window, keeps it when the attack loss (the
margin by default) improves or the sample is fooled, and stops on a sample once it is fooled.

- Linf: the start is vertical stripes of +-eps (one sign per column and channel); a proposal
  sets a window to x +- eps (one sign per channel).
- L2: the start is a grid of squares of side ~H/5 each carrying the paper's centred pattern
  (two halves of opposite sign, nested squares weighted 1/(k+1)^2) with a random sign; a
  proposal moves the perturbation's mass of a second window into the first, with a fresh
  pattern, keeping the total norm eps.
- The window covers a fraction `p` of the features: `p_schedule`, from `p_init` halved at
  fixed fractions of the budget (the paper's schedule for 10,000 queries, rescaled to
  `queries`).

Inputs of any rank: an NHWC input (rank 4) is searched with square windows over H x W, one
sign per channel, as in the paper; any other input (tabular ``(B, F)``, sequences, ...) is
searched as a 1-D "image" of its flattened features (windows are runs of consecutive
features of length ~p x features, one channel). A model with several perturbed inputs gets a
proposal on every perturbed input in each iteration (each in its own budget and bounds,
accepted or rejected together); frozen inputs are never changed. The whole search runs in
one compiled `tf.function` (a `tf.while_loop` over iterations; each iteration queries the
model on the samples not yet fooled only), with eps and the seed as tensors.

>>> import advgrad
>>> attack = advgrad.attacks.Square(eps=0.1, queries=1000)
>>> attack.loss, attack.NORMS
('margin', ('linf', 'l2'))
>>> [round(float(p_schedule(i, attack.queries)), 4) for i in (0, 2, 10, 900)]
[0.8, 0.4, 0.2, 0.0016]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from advgrad._compile import count_trace
from advgrad._validation import check_int, check_number
from advgrad.attacks.base import Attack, Plan, setting
from advgrad.attacks.plan import Chunk, ChunkResult, select_rows
from advgrad.attacks.registry import register_attack
from advgrad.gradients import label_specs
from advgrad.predictions import Classes

__all__ = ["Square", "p_schedule"]

# The paper's schedule (for 10,000 queries): p is halved after each of these iterations.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_LOW_PRECISION = (tf.float16, tf.bfloat16)


def p_schedule(iteration: Any, queries: Any, p_init: float = 0.8) -> tf.Tensor:
    """The fraction of the features a window covers at `iteration` (0-based) of `queries`.

    The paper's piecewise-constant schedule, rescaled from 10,000 queries to `queries`:
    ``p_init`` halved once the rescaled iteration ``iteration * 10000 // queries`` passes
    each of 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 (at most ``p_init / 512``).

    Args:
        iteration: The iteration (int or int tensor, >= 0).
        queries: The budget the schedule is spread over (int or int tensor, >= 1).
        p_init: The fraction at the start, in (0, 1].

    Returns:
        A float32 scalar tensor.

    >>> float(p_schedule(0, 5000)), float(p_schedule(26, 5000)), float(p_schedule(4999, 5000))
    (0.800000011920929, 0.20000000298023224, 0.0015625000232830644)
    """
    rescaled = tf.cast(iteration, tf.int64) * 10000 // tf.cast(queries, tf.int64)
    halvings = tf.reduce_sum(tf.cast(rescaled > tf.constant(_HALVINGS, tf.int64), tf.float32))
    return tf.cast(p_init, tf.float32) * tf.pow(tf.constant(0.5, tf.float32), halvings)


def _check_p_init(value):
    return check_number("p_init", value, low=0.0, high=1.0, low_open=True)


@register_attack("square")
class Square(Attack):
    """Square attack (Andriushchenko et al., ECCV 2020): score-based, Linf and L2.

    Settings (besides `Attack`'s): ``queries`` (default 5000), the model evaluations per
    sample at most (the start counts as one, so ``queries - 1`` iterations), and ``p_init``
    (default 0.8), the window's share of the features at the start (see `p_schedule`).
    ``loss`` defaults to "margin" (on logits); with ``targeted=True`` `y` are the targets
    and the loss is descended. ``AttackResult.queries`` is the per-sample count (a sample
    fooled early stops counting), ``gradients`` is 0, and ``loss_trace`` holds the mean best
    loss at the start and at the end.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {"queries": 5000, "p_init": 0.8, "loss": "margin"}
    CHECKS: ClassVar[dict[str, Any]] = {
        "queries": setting(check_int, "queries", low=1, high=2**31 - 1),
        "p_init": _check_p_init,
    }
    NORMS: ClassVar[tuple[str, ...]] = ("linf", "l2")

    def attack_chunks(self, plan: Plan, *, judge: bool) -> Callable[[Chunk], ChunkResult]:
        """The compiled search on one chunk."""
        search = self.compiled(plan, lambda: _Search(self, plan, judge), judge)
        eps = tf.constant([plan.budgets[n].eps for n in plan.perturbed], tf.float64)

        def attack_chunk(chunk: Chunk) -> ChunkResult:
            best, fooled, count, trace = search(chunk.xs, chunk.labels, eps, chunk.seed)
            count = count.numpy()
            return ChunkResult(
                best, fooled.numpy(), count, gradients=np.zeros_like(count), loss_trace=trace
            )

        return attack_chunk


class _Grid:
    """One input's features as the search sees them: ``(H, W, C)``, windows over H x W.

    Rank 4 (NHWC): the image itself. Any other rank: a 1-D image ``(1, features, 1)``.
    """

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.image = len(shape) == 3
        if self.image:
            self.h, self.w, self.c = shape
        else:
            self.h, self.w, self.c = 1, int(np.prod(shape, dtype=np.int64)), 1

    def to_grid(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reshape(x, [-1, self.h, self.w, self.c])

    def from_grid(self, g: tf.Tensor) -> tf.Tensor:
        return tf.reshape(g, [-1, *self.shape])

    def side(self, p: tf.Tensor, l2: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """Window (rows, columns) covering a fraction `p` of H x W: a square of side
        ~sqrt(p H W) (1-D: a run of ~p W features); L2 windows are odd and >= 3."""
        if self.image:
            size, limit = tf.sqrt(p * float(self.h * self.w)), min(self.h, self.w)
        else:
            size, limit = p * float(self.w), self.w
        s = tf.maximum(tf.cast(tf.round(size), tf.int32), 3 if l2 else 1)
        if l2:
            s = s + 1 - s % 2
        s = tf.minimum(s, limit)
        return (s, s) if self.image else (tf.constant(1), s)


def _harmonic_table(size: int) -> tf.Tensor:
    """``H[n] = sum_{k=1..n} 1 / k^2`` for n in [0, size]."""
    return tf.constant(np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, size + 1) ** 2)]))


def _eta(a, b, rows, cols, table: tf.Tensor, dtype) -> tuple[tf.Tensor, tf.Tensor]:
    """The paper's L2 pattern at window coordinates (a, b) of a rows x cols window.

    The window is cut along `a` into two halves of opposite sign; in each, the value at a
    point is ``sum_{k >= d} 1 / (k + 1)^2`` over the nested squares around the half's centre
    (d: the point's Chebyshev distance to it), i.e. ``H[K] - H[d]``. Returns the values and
    whether each point is in the first half (each half is normalised by the caller).
    """
    a, b = tf.cast(a, tf.int32), tf.cast(b, tf.int32)
    half = rows // 2
    top = a < half
    a_in = tf.where(top, a, a - half)
    extent = tf.where(top, half, rows - half)
    d = tf.maximum(tf.abs(a_in - extent // 2), tf.abs(b - cols // 2))
    k = tf.maximum(extent // 2 + 1, cols // 2 + 1)
    value = tf.cast(tf.gather(table, k) - tf.gather(table, d), dtype)
    return tf.where(top, value, -value), top


def _sum_hw(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(x, axis=[1, 2], keepdims=True)


def _sum_all(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(x, axis=[1, 2, 3], keepdims=True)


def _normalise_halves(value, top, inside) -> tf.Tensor:
    """Each half to unit L2 norm (per sample), then the whole to unit norm."""
    inside = tf.cast(inside, value.dtype)
    top = tf.cast(top, value.dtype) * inside
    bottom = inside - top
    value = value * inside
    norm_top = tf.sqrt(_sum_hw(tf.square(value * top)))
    norm_bottom = tf.sqrt(_sum_hw(tf.square(value * bottom)))
    value = tf.math.divide_no_nan(value * top, norm_top) + tf.math.divide_no_nan(
        value * bottom, norm_bottom
    )
    return tf.math.divide_no_nan(value, tf.sqrt(_sum_hw(tf.square(value))))


def _signs(shape, seed, dtype) -> tf.Tensor:
    """Random +-1 of `shape`."""
    draw = tf.random.stateless_uniform(shape, seed, dtype=tf.float32)
    return tf.cast(tf.where(draw < 0.5, -1.0, 1.0), dtype)


class _Search:
    """The compiled body of one `Square` for one plan signature: `run` is traced."""

    def __init__(self, attack: Square, plan: Plan, judge: bool):
        self.inputs, self.objective = plan.inputs, plan.objective
        self.names, self.perturbed = plan.inputs.names, plan.perturbed
        self.budgets = [plan.budgets[n] for n in self.perturbed]
        self.l2 = [b.norm.get_config()["name"] == "l2" for b in self.budgets]
        specs = dict(zip(self.names, plan.inputs.specs(), strict=True))
        self.grids = [_Grid(tuple(specs[n].shape[1:])) for n in self.perturbed]
        self.classes, self.targeted = plan.classes, attack.targeted
        self.queries, self.p_init = attack.queries, attack.p_init
        self.judge = judge
        self.table = _harmonic_table(max(max(g.h, g.w) for g in self.grids) + 2)

    def signature(self, labels: Any) -> list:
        """xs, labels, eps per perturbed input, seed."""
        return [
            list(self.inputs.specs()),
            label_specs(labels),
            tf.TensorSpec([len(self.perturbed)], tf.float64),
            tf.TensorSpec([2], tf.int32),
        ]

    # ------------------------------------------------------------------ traced
    def run(self, xs, y, eps, seed):
        """The whole search on one batch: (best x_adv per input, fooled, queries, trace)."""
        count_trace("attack")
        clean = dict(zip(self.names, xs, strict=True))
        originals = [clean[n] for n in self.perturbed]
        radii = [tf.cast(eps[i], x.dtype) for i, x in enumerate(originals)]
        truth = None if self.classes is None else Classes.truth(self.classes.labels(y))
        size = tf.shape(xs[0])[0]
        best = [
            self._start(i, x, r, tf.random.experimental.stateless_fold_in(seed, i))
            for i, (x, r) in enumerate(zip(originals, radii, strict=True))
        ]
        score, fooled = self._evaluate(clean, best, y, truth)
        first = tf.reduce_mean(score)
        count = tf.ones([size], tf.int32)

        def body(i, best, score, fooled, count):
            active = tf.where(~fooled)[:, 0]
            take = functools.partial(tf.gather, indices=active)
            step_seed = tf.random.experimental.stateless_fold_in(seed, i + len(best))
            p = p_schedule(i, self.queries, self.p_init)
            candidates = [
                self._propose(
                    j,
                    take(originals[j]),
                    take(best[j]),
                    radii[j],
                    p,
                    size,
                    active,
                    tf.random.experimental.stateless_fold_in(step_seed, j),
                )  # fmt: skip
                for j in range(len(best))
            ]
            sub_clean = {n: take(v) for n, v in clean.items()}
            sub_y = tf.nest.map_structure(take, y)
            sub_truth = None if truth is None else {k: take(v) for k, v in truth.items()}
            new_score, new_fooled = self._evaluate(sub_clean, candidates, sub_y, sub_truth)
            old_score = take(score)
            accept = new_fooled | (new_score > old_score)
            rows = active[:, None]
            best = [
                tf.tensor_scatter_nd_update(b, rows, select_rows(accept, c, take(b)))
                for b, c in zip(best, candidates, strict=True)
            ]
            score = tf.tensor_scatter_nd_update(score, rows, tf.where(accept, new_score, old_score))
            fooled = tf.tensor_scatter_nd_update(fooled, rows, new_fooled)
            count = tf.tensor_scatter_nd_add(count, rows, tf.ones_like(active, tf.int32))
            return i + 1, best, score, fooled, count

        _, best, score, fooled, count = tf.while_loop(
            lambda i, _b, _s, fooled, _c: (i < self.queries - 1) & tf.reduce_any(~fooled),
            body,
            (tf.constant(0), best, score, fooled, count),
        )
        trace = tf.stack([first, tf.reduce_mean(score)])
        if self.judge:  # the model's verdict on what is returned, in one batch
            _, fooled = self._evaluate(clean, best, y, truth)
        # (A model that overflows never gets a NaN input back: `Attack.enforce`.)
        return best, fooled, count, trace

    def _evaluate(self, clean, adv, y, truth):
        """Attack loss per sample (to maximise; -inf where not finite) and fooled."""
        leaves = {**clean, **dict(zip(self.perturbed, adv, strict=True))}
        outputs = self.objective.forward(self.inputs.pack(leaves))
        loss = tf.cast(self.objective.per_sample(y, outputs), tf.float32)
        loss = -loss if self.targeted else loss
        loss = tf.broadcast_to(loss, tf.shape(adv[0])[:1])
        finite = tf.math.is_finite(loss)
        loss = tf.where(finite, loss, -np.inf)
        if self.classes is None:  # no output with a classification loss: nothing to flip
            return loss, tf.zeros_like(finite)
        fooled = self.classes.fooled(self.classes.scores(outputs), truth, self.targeted)
        return loss, fooled & finite

    # --------------------------------------------------------------- geometry
    def _start(self, i: int, x: tf.Tensor, eps: tf.Tensor, seed) -> tf.Tensor:
        """Linf: vertical stripes of +-eps; L2: the grid of centred squares, norm eps."""
        grid, budget = self.grids[i], self.budgets[i]
        work = _work_dtype(x.dtype)
        batch = tf.shape(x)[0]
        if not self.l2[i]:
            signs = _signs(tf.stack([batch, 1, grid.w, grid.c]), seed, x.dtype)
            delta = grid.from_grid(tf.broadcast_to(signs, tf.stack([batch, *_hwc(grid)])))
            lower, upper = budget.bounds.clip(x - eps), budget.bounds.clip(x + eps)
            return tf.clip_by_value(x + eps * delta, lower, upper)
        # Tiles of side ~min(H, W) / 5 (1-D: W / 5), centred, one random sign per tile and
        # channel, each carrying the pattern of `_eta`.
        side = max((min(grid.h, grid.w) if grid.image else grid.w) // 5, 1)
        tile_h = side if grid.image else 1
        n_h, n_w = grid.h // tile_h, grid.w // side
        o_h, o_w = (grid.h - n_h * tile_h) // 2, (grid.w - n_w * side) // 2
        a, b = np.meshgrid(np.arange(tile_h), np.arange(side), indexing="ij")
        if grid.image:
            pattern, top = _eta(a, b, side, side, self.table, work)
        else:
            pattern, top = _eta(b, a, side, 1, self.table, work)
        inside = tf.ones_like(pattern, tf.bool)[None, :, :, None]
        pattern = _normalise_halves(pattern[None, :, :, None], top[None, :, :, None], inside)[0]
        rows, cols = np.arange(grid.h) - o_h, np.arange(grid.w) - o_w
        in_h, in_w = (rows >= 0) & (rows < n_h * tile_h), (cols >= 0) & (cols < n_w * side)
        tile_id = (rows[:, None] // tile_h) * n_w + cols[None, :] // side
        tile_id = np.where(in_h[:, None] & in_w[None, :], tile_id, n_h * n_w)  # n_h n_w: none
        cell = np.stack(np.broadcast_arrays(rows[:, None] % tile_h, cols[None, :] % side), -1)
        values = tf.gather_nd(pattern[:, :, 0], cell) * tf.cast(tile_id < n_h * n_w, work)
        signs = _signs(tf.stack([batch, n_h * n_w + 1, grid.c]), seed, work)
        delta = tf.gather(signs, tile_id, axis=1) * values[None, :, :, None]
        delta = grid.from_grid(_to_radius(delta, eps))
        return budget.bounds.clip(x + tf.cast(delta, x.dtype))

    def _propose(self, i, x, best, eps, p, size, active, seed) -> tf.Tensor:
        """A candidate for input `i`: `best` changed on a random window of share `p`."""
        grid, budget = self.grids[i], self.budgets[i]
        work = _work_dtype(x.dtype)
        rows, cols = grid.side(p, self.l2[i])
        seeds = tf.unstack(tf.random.split(tf.cast(seed, tf.int64), 6))

        def corner(seed_pair, extent, length):  # one per sample of the whole batch
            draw = tf.random.stateless_uniform([size], seed_pair, 0, extent - length + 1, tf.int32)
            return tf.gather(draw, active)

        def window(top, left):
            r = tf.range(grid.h)[None, :, None] - top[:, None, None]
            c = tf.range(grid.w)[None, None, :] - left[:, None, None]
            inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
            return r, c, inside[..., None]

        channel_signs = tf.gather(_signs(tf.stack([size, 1, 1, grid.c]), seeds[2], work), active)
        r1, c1, m1 = window(corner(seeds[0], grid.h, rows), corner(seeds[1], grid.w, cols))
        if not self.l2[i]:
            change = tf.cast(m1, work) * channel_signs * 2 * tf.cast(eps, work)
            stepped = best + tf.cast(grid.from_grid(change), x.dtype)
            return tf.clip_by_value(
                stepped, budget.bounds.clip(x - eps), budget.bounds.clip(x + eps)
            )
        _, _, m2 = window(corner(seeds[3], grid.h, rows), corner(seeds[4], grid.w, cols))
        if grid.image:  # the pattern's halves along rows or, for half the samples, columns
            flip = tf.gather(tf.random.stateless_uniform([size], seeds[5]) < 0.5, active)
            flip = flip[:, None, None]
            a, b = tf.where(flip, c1, r1), tf.where(flip, r1, c1)
            pattern, top = _eta(a, b, rows, cols, self.table, work)
        else:
            pattern, top = _eta(c1, r1, cols, rows, self.table, work)
        pattern = _normalise_halves(pattern[..., None], top[..., None], m1)
        delta = grid.to_grid(tf.cast(best - x, work))
        m1, m2 = tf.cast(m1, work), tf.cast(m2, work)
        union = tf.maximum(m1, m2)
        norm_window = tf.sqrt(_sum_hw(tf.square(delta * m1)))
        norm_union = tf.sqrt(_sum_hw(tf.square(delta * union)))
        norm_image = tf.sqrt(_sum_all(tf.square(delta)))
        radius = tf.cast(eps, work)
        new = m1 * (pattern * channel_signs + delta / (1e-12 + norm_window))
        new = new / (1e-12 + tf.sqrt(_sum_hw(tf.square(new))))
        spare = tf.maximum(tf.square(radius) - tf.square(norm_image), 0.0) / grid.c
        new = new * tf.sqrt(spare + tf.square(norm_union))
        delta = delta * (1 - union) + new
        stepped = x + tf.cast(grid.from_grid(_to_radius(delta, eps)), x.dtype)
        return budget.bounds.clip(stepped)


def _hwc(grid: _Grid) -> list[int]:
    return [grid.h, grid.w, grid.c]


def _work_dtype(dtype: tf.DType) -> tf.DType:
    return tf.float32 if dtype in _LOW_PRECISION else dtype


def _to_radius(delta: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
    """`delta` (grid layout) scaled to L2 norm `eps` per sample (zero stays zero)."""
    norm = tf.sqrt(_sum_all(tf.square(delta)))
    return tf.math.divide_no_nan(delta, norm) * tf.cast(eps, delta.dtype)
