"""FMN: the fast minimum-norm attack, with an adaptive radius (L1, L2, Linf).

Pintor, Roli, Brendel & Biggio, "Fast minimum-norm adversarial attacks through adaptive
norm updates", NeurIPS 2021. Each of `steps` iterations, from the clean point:

1. the logit difference ``f = max_{j != y} z_j - z_y`` at ``x + delta`` and its gradient g
   (one forward and backward pass, `advgrad.gradients.output_value_and_grad`); a sample
   misclassified there is kept if its perturbation is the smallest so far;
2. the radius eps_k adapts: shrunk to ``min(eps_k (1 - gamma_k), best norm)`` when the
   iterate is adversarial; grown to ``eps_k (1 + gamma_k)`` when it is not but an
   adversarial point was found before; else set to the linear estimate of the distance to
   the boundary, ``||delta|| + |f| / ||g||_q`` (q: the dual norm), capped at the largest
   norm the bounds allow;
3. delta takes a step of length alpha_k along ``g / ||g||_2``, is projected onto the ball of
   radius eps_k (L1: the exact projection onto the L1 ball within the bounds,
   `advgrad.norms.project_l1_box`) and clipped to the bounds.

Both the step length alpha_k and the radius change gamma_k are cosine-annealed, from
``step_size`` to ``step_size / 100`` (alpha) and from 0.05 to 0.001 (gamma), the paper's
schedule. The result is the smallest adversarial perturbation found.

>>> import numpy as np, advgrad
>>> from advgrad import data, zoo
>>> model, digits = zoo.load("digits-mlp"), data.digits(flat=True)
>>> attack = advgrad.attacks.FMN(norm="l2", bounds=(0, 1), steps=20)
>>> result = attack.run(model, digits.x_test[:8], digits.y_test[:8])
>>> bool(result.fooled.all()), bool(np.median(result.norms) < 2.0)
(True, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from advgrad import norms
from advgrad._validation import check_int, check_number
from advgrad.attacks.base import setting
from advgrad.attacks.minimal import MinimalNormAttack, Rows, margin
from advgrad.attacks.registry import register_attack

__all__ = ["FMN", "cosine_schedule"]


def cosine_schedule(step: Any, steps: int, start: float, end: float) -> tf.Tensor:
    """``end + (start - end) (1 + cos(pi step / steps)) / 2``: from `start` at step 0 down
    to `end` at step `steps` (FMN's annealing of its step length and radius change).

    >>> [round(float(cosine_schedule(k, 4, 1.0, 0.0)), 4) for k in (0, 2, 4)]
    [1.0, 0.5, 0.0]
    """
    start = tf.convert_to_tensor(start, dtype_hint=tf.float64)
    end = tf.cast(end, start.dtype)
    cosine = (1 + tf.cos(math.pi * tf.cast(step, tf.float64) / steps)) / 2
    return end + (start - end) * tf.cast(cosine, start.dtype)


class _FMN(Rows):
    def project(self, delta: tf.Tensor, eps: tf.Tensor, x0: tf.Tensor) -> tf.Tensor:
        """Onto the ball of radius eps (per sample), then into the bounds."""
        if self.p == 1:
            low, high = self.bound("low") - x0, self.bound("high") - x0
            return norms.project_l1_box(delta, eps, low, high)
        return self.clip(x0 + self.norm.project(delta, eps)) - x0

    def attack_batch(self, clean, x0, truth, scores, step_size):
        attack = self.attack
        steps = attack.steps
        size = tf.shape(x0)[0]
        inf = tf.cast(np.inf, self.dtype)
        room = tf.maximum(x0 - self.bound("low"), self.bound("high") - x0)
        worst = self.size(room)  # the largest norm inside the bounds (inf if unbounded)
        floor = tf.constant(1e-12, self.dtype)
        gamma_init = tf.constant(attack.gamma_init, self.dtype)

        def objective(scores):
            return -tf.cast(margin(scores, truth), self.dtype)  # > 0 once fooled

        def step(k, delta, eps, best, best_norm, found):
            alpha = cosine_schedule(k, steps, step_size, step_size / 100)
            gamma = cosine_schedule(k, steps, gamma_init, attack.gamma_final)
            x = self.representable(x0 + delta)
            f, g, scores = self.value_and_grad(clean, x, objective)
            g = self.free(x, g)
            adversarial = tf.not_equal(self.predicted(scores), truth)
            size = self.size(x - x0)
            better = adversarial & (size < best_norm)
            best = tf.where(better[:, None], x, best)
            best_norm = tf.where(better, size, best_norm)
            found = found | adversarial
            boundary = size + tf.abs(f) / tf.maximum(self.dual(g), floor)
            eps = tf.where(
                adversarial,
                tf.minimum(eps * (1 - gamma), best_norm),
                tf.where(found, eps * (1 + gamma), boundary),
            )
            eps = tf.minimum(eps, worst)
            unit = g / tf.maximum(tf.norm(g, axis=1, keepdims=True), floor)
            delta = self.project(delta + alpha * unit, eps, x0)
            return k + 1, delta, eps, best, best_norm, found

        state = (
            tf.constant(0),
            tf.zeros_like(x0),
            tf.zeros([size], self.dtype),
            x0,
            tf.fill([size], inf),
            tf.zeros([size], tf.bool),
        )
        _, _, _, best, _, _ = tf.while_loop(lambda k, *_: k < steps, step, state)
        evaluations = tf.fill([size], steps)
        return best, evaluations, evaluations, None


@register_attack("fmn")
class FMN(MinimalNormAttack):
    """Fast minimum-norm attack (Pintor et al., NeurIPS 2021): untargeted, L1, L2, Linf.

    See `advgrad.attacks.minimal` for `eps` (None: no budget) and several perturbed inputs,
    and the module docstring for the algorithm.

    Settings (besides `Attack`'s; the attack is untargeted and reads the logits):
        norm: "l2" (default), "linf" or "l1". The paper and its reference code take the
            norm as a required argument, Foolbox has one class per norm (``L2FMNAttack``);
            L2 is the default of DeepFool and CW-L2 here, so the minimal-norm attacks share
            one norm, as ``eps="curve"`` asks.
        steps: iterations (default 100).
        step_size: the first step length alpha_0, annealed to ``step_size / 100`` (default
            1.0, the paper's; in units of the inputs, along the L2-normalised gradient).
        gamma_init: the first relative change of the radius (default 0.05).
        gamma_final: the last (default 0.001).

    `AttackResult.gradients` is `steps` per sample.

    >>> import advgrad
    >>> advgrad.get_attack("fmn").norm, advgrad.get_attack("fmn", norm="l1").steps
    ('l2', 100)
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "norm": "l2",
        "steps": 100,
        "step_size": 1.0,
        "gamma_init": 0.05,
        "gamma_final": 0.001,
    }
    CHECKS: ClassVar[dict[str, Any]] = {
        "steps": setting(check_int, "steps", low=1, high=2**31 - 1),
        "step_size": setting(check_number, "step_size", low=0.0, low_open=True),
        "gamma_init": setting(check_number, "gamma_init", low=0.0, high=1.0, high_open=True),
        "gamma_final": setting(check_number, "gamma_final", low=0.0, high=1.0, high_open=True),
    }
    NORMS: ClassVar[tuple[str, ...]] = ("linf", "l2", "l1")
    BODY = _FMN
