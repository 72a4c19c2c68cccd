"""The training objectives: PGD-AT and TRADES, as losses of a batch and its adversarial twin.

- PGD-AT (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
  ICLR 2018): train on the adversarial examples (or on a mix: a share `ratio` of each batch
  adversarial) with the model's own compiled loss.
- TRADES (Zhang et al., "Theoretically Principled Trade-off between Robustness and
  Accuracy", ICML 2019): the compiled loss on the clean batch plus ``beta`` times the
  KL divergence KL(f(x) || f(x')) between the clean and the adversarial predictions, the
  adversarial point x' found by maximising that same KL divergence.

>>> import numpy as np
>>> logits = np.array([[2.0, 0.0, -1.0]], "float32")
>>> float(kl_divergence(logits, logits, from_logits=True)[0])
0.0
>>> check_settings("trades", beta=6, ratio=1)
('trades', 6.0, 1.0)
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from advgrad._validation import check_number, invalid
from advgrad.losses import LossSpec
from advgrad.objective import logit, two_class

__all__ = ["OBJECTIVES", "check_settings", "kl_divergence", "log_probabilities", "trades_loss"]

OBJECTIVES = ("pgd-at", "trades")
"""The objectives `advgrad.training.adversarial` trains with."""

_TINY = 1e-12


def check_settings(objective: Any, *, beta: Any, ratio: Any) -> tuple[str, float, float]:
    """The objective's name, `beta` (a finite number >= 0) and `ratio` (in [0, 1]), checked.

    Raises:
        ArgumentError: A bad value, named.
    """
    if objective not in OBJECTIVES:
        raise invalid("objective", f"one of {list(OBJECTIVES)}", objective)
    beta = check_number("beta", beta, low=0.0)
    ratio = check_number("ratio", ratio, low=0.0, high=1.0)
    return str(objective), beta, ratio


def log_probabilities(outputs: Any, *, from_logits: bool) -> tf.Tensor:
    """Log class probabilities of a model's outputs: logits, or probabilities (softmax)."""
    outputs = tf.convert_to_tensor(outputs)
    if outputs.shape[-1] == 1:  # one unit: the two classes of `advgrad.objective.two_class`
        return tf.nn.log_softmax(two_class(outputs if from_logits else logit(outputs)), axis=-1)
    if from_logits:
        return tf.nn.log_softmax(outputs, axis=-1)
    return tf.math.log(tf.clip_by_value(outputs, _TINY, 1.0))


def kl_divergence(clean: Any, adversarial: Any, *, from_logits: bool) -> tf.Tensor:
    """KL(p_clean || p_adversarial) per sample, from two outputs of the same model.

    Args:
        clean: The outputs at the clean inputs ``[B, C]`` (logits or probabilities).
        adversarial: The outputs at the adversarial inputs, same form.
        from_logits: Whether the outputs are logits (else probabilities).

    Returns:
        ``[B]`` float tensor, >= 0.
    """
    log_p = log_probabilities(clean, from_logits=from_logits)
    log_q = log_probabilities(adversarial, from_logits=from_logits)
    return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


def trades_loss(*, from_logits: bool) -> LossSpec:
    """The loss TRADES' inner attack maximises: KL(p_clean || f(x')) per sample, with the
    clean class probabilities ``p_clean`` ``[B, C]`` as the labels."""

    def trades_kl(probabilities, outputs):
        if probabilities.shape[-1] == 1:  # one unit: p of class 1, labels shaped like it
            probabilities = tf.concat([1 - probabilities, probabilities], axis=-1)
        log_p = tf.math.log(tf.clip_by_value(probabilities, _TINY, 1.0))
        log_q = log_probabilities(outputs, from_logits=from_logits)
        return tf.reduce_sum(probabilities * (log_p - log_q), axis=-1)

    return LossSpec(trades_kl, "trades_kl", labels="any")
