"""Step rules: how an attack turns a gradient into a step direction (Optax style).

A `StepRule` is a pair of pure functions on ONE tensor (the attack maps a rule over the nest
of inputs it perturbs, with one state per input):

- `init(grad) -> state`: the initial state, any nest of tensors (possibly an empty tuple);
- `update(grad, state) -> (direction, state)`: the direction to step along and the new state.

Both run eagerly and inside `tf.function`; the state keeps its structure, shapes and dtypes
from step to step, so it can be a `tf.while_loop` variable. `chain(*rules)` composes rules:
each rule's output direction is the next rule's input. The step size and the projection are
the attack's business, not the rule's.

Built-in rules: `identity()`, `sign()` (FGSM/PGD-Linf), `normalize(norm)` (the norm's
steepest-ascent direction), `momentum(decay)` (MI-FGSM; follow it with `sign()` or
`normalize`), and `chain`. MI-FGSM is `chain(momentum(1.0), sign())`.

Adding a rule is writing its two functions; for example a rule that scales directions:

>>> import tensorflow as tf
>>> from advgrad import steps
>>> def scale(factor):
...     def init(grad):
...         return ()  # stateless
...     def update(grad, state):
...         return grad * factor, state
...     return steps.StepRule(init, update)
>>> rule = steps.chain(steps.sign(), scale(0.5))
>>> grad = tf.constant([[0.2, -3.0]])
>>> direction, state = rule.update(grad, rule.init(grad))
>>> direction.numpy().tolist()
[[0.5, -0.5]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf

from advgrad import norms as norms_lib
from advgrad._validation import check_number, invalid

__all__ = ["StepRule", "identity", "sign", "normalize", "momentum", "chain"]


class StepRule(NamedTuple):
    """A step rule: `init(grad) -> state` and `update(grad, state) -> (direction, state)`.

    Attributes:
        init: Builds the initial state from the first gradient (for its shape and dtype).
        update: Maps a gradient and the state to a direction and the next state.

    >>> import tensorflow as tf
    >>> from advgrad.steps import sign
    >>> rule = sign()
    >>> grad = tf.constant([[0.3, -0.1, 0.0]])
    >>> rule.update(grad, rule.init(grad))[0].numpy().tolist()
    [[1.0, -1.0, 0.0]]
    """

    init: Callable[[tf.Tensor], Any]
    update: Callable[[tf.Tensor, Any], tuple[tf.Tensor, Any]]


def _stateless_init(grad: tf.Tensor) -> tuple:
    del grad
    return ()


def identity() -> StepRule:
    """The rule whose direction is the gradient itself (stateless).

    Returns:
        A `StepRule`.

    >>> import tensorflow as tf
    >>> from advgrad.steps import identity
    >>> identity().update(tf.constant([[2.0]]), ())[0].numpy().tolist()
    [[2.0]]
    """

    def update(grad, state):
        return tf.convert_to_tensor(grad), state

    return StepRule(_stateless_init, update)


def sign() -> StepRule:
    """The sign of the gradient: the Linf steepest-ascent direction (Goodfellow et al. 2015).

    Returns:
        A stateless `StepRule`.

    >>> import tensorflow as tf
    >>> from advgrad.steps import sign
    >>> sign().update(tf.constant([[0.3, -2.0]]), ())[0].numpy().tolist()
    [[1.0, -1.0]]
    """

    def update(grad, state):
        return tf.sign(grad), state

    return StepRule(_stateless_init, update)


def normalize(norm: Any = "linf") -> StepRule:
    """The steepest-ascent direction of unit norm: `norm.direction(grad)`.

    Linf gives `sign(grad)`, L2 `grad / ||grad||_2`, L1 the sparse SLIDE direction (see
    `advgrad.norms.L1`). Zero gradients give zero directions, never NaN.

    Args:
        norm: "linf" (default), "l2", "l1" or a `advgrad.norms.Norm`.

    Returns:
        A stateless `StepRule`.

    Raises:
        ValueError: If `norm` is not a valid norm identifier.

    >>> import tensorflow as tf
    >>> from advgrad.steps import normalize
    >>> normalize("l2").update(tf.constant([[0.0, -2.0]]), ())[0].numpy().tolist()
    [[0.0, -1.0]]
    """
    norm = norms_lib.get(norm)

    def update(grad, state):
        return norm.direction(grad), state

    return StepRule(_stateless_init, update)


def momentum(decay: float = 1.0) -> StepRule:
    """Momentum accumulation of MI-FGSM (Dong et al., "Boosting Adversarial Attacks with
    Momentum", CVPR 2018).

    `g_{t+1} = decay * g_t + grad / ||grad||_1`, with the L1 norm taken per sample over all
    non-batch axes (a zero gradient adds nothing, never NaN) and `g_0 = 0`. The direction is
    `g_{t+1}` itself: follow it with `sign()` (MI-FGSM) or `normalize(norm)`.

    Args:
        decay: Decay factor `mu` of the accumulated gradient, a number >= 0. Defaults to 1.0.

    Returns:
        A `StepRule` whose state is the accumulator (shape and dtype of the gradient).

    Raises:
        ValueError: If `decay` is not a number >= 0.

    >>> import tensorflow as tf
    >>> from advgrad.steps import momentum
    >>> rule = momentum(0.5)
    >>> grad = tf.constant([[1.0, -3.0]])
    >>> direction, state = rule.update(grad, rule.init(grad))
    >>> direction, state = rule.update(grad, state)
    >>> direction.numpy().tolist()
    [[0.375, -1.125]]
    """
    decay = check_number("decay", decay, low=0.0)

    def init(grad):
        return tf.zeros_like(grad)

    def update(grad, state):
        unit = norms_lib.unit_rows(grad, 1)
        accumulated = tf.constant(decay, state.dtype) * state + tf.cast(unit, state.dtype)
        return accumulated, accumulated

    return StepRule(init, update)


def chain(*rules: StepRule) -> StepRule:
    """Compose step rules: each rule's output direction is the next rule's input.

    Args:
        *rules: `StepRule`s, applied in order. No rules is the identity.

    Returns:
        A `StepRule` whose state is the tuple of the rules' states.

    Raises:
        ValueError: If an argument is not a `StepRule`.

    >>> import tensorflow as tf
    >>> from advgrad.steps import chain, momentum, sign
    >>> mi_fgsm = chain(momentum(1.0), sign())
    >>> grad = tf.constant([[0.2, -0.1]])
    >>> direction, state = mi_fgsm.update(grad, mi_fgsm.init(grad))
    >>> direction.numpy().tolist(), len(state)
    ([[1.0, -1.0]], 2)
    """
    for rule in rules:
        if not isinstance(rule, StepRule):
            raise invalid("rules", "StepRule objects", rule)

    def init(grad):
        return tuple(rule.init(grad) for rule in rules)

    def update(grad, state):
        direction = tf.convert_to_tensor(grad)
        new_state = []
        for rule, rule_state in zip(rules, state, strict=True):
            direction, rule_state = rule.update(direction, rule_state)
            new_state.append(rule_state)
        return direction, tuple(new_state)

    return StepRule(init, update)
