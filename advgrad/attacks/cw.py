"""Carlini-Wagner L2: the minimal-norm attack that optimises distance plus c times a margin.

Carlini & Wagner, "Towards evaluating the robustness of neural networks", IEEE S&P 2017.
Per sample, it minimises ``||x' - x||_2^2 + c * max(z_y(x') - max_{j != y} z_j(x') +
confidence, 0)`` over ``x' = low + (high - low) (tanh(w) + 1) / 2`` (the change of variables
that keeps x' inside the bounds without clipping), with Adam on `w` for `steps` iterations,
from ``w`` at the clean point. A binary search over `c` (`binary_search_steps`, starting at
`initial_const`) halves the bracket around the smallest `c` that succeeded, and multiplies
`c` by 10 while none has. The result per sample is the smallest perturbation found,
over all iterations and constants, at which the sample is misclassified with a margin of
at least `confidence`. The whole search (both loops) runs in one compiled `tf.while_loop`.

A feature without a finite lower and upper bound is optimised as it is (no change of
variables; a one-sided bound is kept by clipping).

>>> import numpy as np, advgrad
>>> from advgrad import data, zoo
>>> model, digits = zoo.load("digits-mlp"), data.digits(flat=True)
>>> attack = advgrad.attacks.CarliniWagnerL2(bounds=(0, 1), binary_search_steps=3, steps=20)
>>> result = attack.run(model, digits.x_test[:8], digits.y_test[:8])
>>> bool(result.fooled.mean() > 0.5), bool(np.all(result.norms[result.fooled] < 3.0))
(True, True)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from advgrad._validation import check_int, check_number
from advgrad.attacks.base import setting
from advgrad.attacks.minimal import MinimalNormAttack, Rows, margin
from advgrad.attacks.registry import register_attack

__all__ = ["CarliniWagnerL2"]

#: Adam's moment decays and denominator floor (Kingma & Ba 2015; as in the CW code).
BETA1, BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8
#: Where `c` stops being "unbounded above" in the binary search (the CW code's 1e10).
UPPER = 1e10


class _CarliniWagner(Rows):
    def __init__(self, attack, plan):
        super().__init__(attack, plan)
        self.box = np.isfinite(self.low) & np.isfinite(self.high)
        self.span = np.where(self.box, self.high - self.low, 1.0)
        self.origin = np.where(self.box, self.low, 0.0)

    def to_x(self, w: tf.Tensor) -> tf.Tensor:
        box = tf.constant(self.box)
        span, origin = tf.constant(self.span, self.dtype), tf.constant(self.origin, self.dtype)
        inside = origin + span * (tf.tanh(w) + 1) / 2
        return self.representable(self.clip(tf.where(box, inside, w)))

    def to_w(self, x: tf.Tensor) -> tf.Tensor:
        box = tf.constant(self.box)
        span, origin = tf.constant(self.span, self.dtype), tf.constant(self.origin, self.dtype)
        limit = 1 - tf.constant(1e-6, self.dtype)
        unit = tf.clip_by_value((x - origin) / span * 2 - 1, -limit, limit)
        return tf.where(box, tf.atanh(unit), x)

    def slope(self, w: tf.Tensor) -> tf.Tensor:
        """dx/dw."""
        span = tf.constant(self.span, self.dtype)
        return tf.where(tf.constant(self.box), span / 2 * (1 - tf.square(tf.tanh(w))), 1.0)

    def attack_batch(self, clean, x0, truth, scores, step_size):
        attack = self.attack
        kappa = tf.constant(attack.confidence, self.dtype)
        rate = step_size
        size = tf.shape(x0)[0]
        w0 = self.to_w(x0)
        wrong = tf.not_equal(self.predicted(scores), truth)
        inf = tf.cast(np.inf, self.dtype)
        best_norm = tf.where(wrong, tf.zeros([size], self.dtype), tf.fill([size], inf))
        const = tf.fill([size], tf.constant(attack.initial_const, self.dtype))
        lower = tf.zeros([size], self.dtype)
        upper = tf.fill([size], tf.constant(UPPER, self.dtype))

        def objective(scores):
            return tf.maximum(tf.cast(margin(scores, truth), self.dtype) + kappa, 0)

        def inner(t, w, m, v, best, best_norm, succeeded, const):
            x = self.to_x(w)
            hinge, grad, scores = self.value_and_grad(clean, x, objective)
            success = (hinge <= 0) & tf.not_equal(self.predicted(scores), truth)
            distance = self.size(x - x0)
            better = success & (distance < best_norm)
            best = tf.where(better[:, None], x, best)
            best_norm = tf.where(better, distance, best_norm)
            # d/dw of ||x - x0||^2 + c hinge, through x = to_x(w); then one Adam step.
            g = (2 * (x - x0) + const[:, None] * grad) * self.slope(w)
            m = BETA1 * m + (1 - BETA1) * g
            v = BETA2 * v + (1 - BETA2) * tf.square(g)
            step = tf.cast(t + 1, self.dtype)
            m_hat, v_hat = m / (1 - BETA1**step), v / (1 - BETA2**step)
            w = w - rate * m_hat / (tf.sqrt(v_hat) + ADAM_EPSILON)
            return t + 1, w, m, v, best, best_norm, succeeded | success, const

        def outer(k, best, best_norm, const, lower, upper):
            zeros = tf.zeros_like(w0)
            state = (tf.constant(0), w0, zeros, zeros, best, best_norm, tf.zeros([size], tf.bool))
            *_, best, best_norm, succeeded, _ = tf.while_loop(
                lambda t, *_: t < attack.steps, inner, (*state, const)
            )
            # The binary search: bracket the smallest c that succeeds.
            upper = tf.where(succeeded, tf.minimum(upper, const), upper)
            lower = tf.where(succeeded, lower, tf.maximum(lower, const))
            bracketed = upper < UPPER
            const = tf.where(bracketed, (lower + upper) / 2, const * 10)
            return k + 1, best, best_norm, const, lower, upper

        _, best, _, _, _, _ = tf.while_loop(
            lambda k, *_: k < attack.binary_search_steps,
            outer,
            (tf.constant(0), x0, best_norm, const, lower, upper),
        )
        evaluations = tf.fill([size], attack.binary_search_steps * attack.steps)
        return best, evaluations, evaluations, None


@register_attack("cw-l2")
class CarliniWagnerL2(MinimalNormAttack):
    """Carlini-Wagner L2 (IEEE S&P 2017): minimal-norm, untargeted, L2 only.

    See `advgrad.attacks.minimal` for `eps` (None: no budget) and several perturbed inputs,
    and the module docstring for the algorithm.

    Settings (besides `Attack`'s; the attack is untargeted and reads the logits):
        steps: Adam iterations per constant (default 100).
        binary_search_steps: constants tried (default 9).
        initial_const: the first `c` (default 0.01).
        confidence: the margin by which the prediction must be wrong, >= 0 (default 0).
        step_size: Adam's learning rate on `w` (default 0.1: the paper's 0.01 suits its
            10,000 iterations; in 100, pixels at a bound barely move with it, and the
            median L2 norm on the digits CNN is 0.68 instead of 0.49).

    `AttackResult.gradients` is ``binary_search_steps * steps`` per sample.

    >>> import advgrad
    >>> advgrad.get_attack("cw-l2").binary_search_steps
    9
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "norm": "l2",
        "steps": 100,
        "binary_search_steps": 9,
        "initial_const": 0.01,
        "confidence": 0.0,
        "step_size": 0.1,
    }
    CHECKS: ClassVar[dict[str, Any]] = {
        "steps": setting(check_int, "steps", low=1, high=2**31 - 1),
        "binary_search_steps": setting(check_int, "binary_search_steps", low=1, high=2**31 - 1),
        "initial_const": setting(check_number, "initial_const", low=0.0, low_open=True),
        "confidence": setting(check_number, "confidence", low=0.0),
        "step_size": setting(check_number, "step_size", low=0.0, low_open=True),
    }
    NORMS: ClassVar[tuple[str, ...]] = ("l2",)
    BODY = _CarliniWagner
