"""What flows through `Attack.execute`, the one driver: the plan, its chunks, what a family
returns for a chunk, and the assembled result; and the per-row helpers families build on.

``Attack.run``/``__call__`` validate a call into a `Plan`, cut it into `Chunk`s, hand each
chunk to the family's chunk function (``Attack.attack_chunks``), which returns one
`ChunkResult` of per-sample tensors, and assemble those into an `AttackResult`.

>>> import tensorflow as tf
>>> float(select_rows(tf.constant([True, False]), tf.ones([2, 3]), tf.zeros([2, 3])).numpy().sum())
3.0
>>> finite_rows(tf.constant([[1.0, float("nan")], [1.0, 2.0]])).numpy().tolist()
[False, True]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from advgrad.budget import Budget
from advgrad.gradients import Inputs
from advgrad.objective import Objective
from advgrad.predictions import Classes
from advgrad.replicas import Replicas

__all__ = ["AttackResult", "Chunk", "ChunkResult", "Plan", "finite_rows", "select_rows"]


@dataclass
class AttackResult:
    """What an attack returns from `run`.

    Attributes:
        x_adv: adversarial inputs, same structure, shapes and dtypes as `x`.
        fooled: bool array (batch,): the model's prediction on `x_adv` differs from `y`
            (untargeted) or equals `y` (targeted).
        gradients: gradient evaluations per sample.
        queries: int64 array (batch,): model evaluations per sample (forward passes, a
            forward+backward counting as one); equals `gradients` for gradient attacks.
        loss_trace: mean attack loss at each iterate of the last restart (index 0 = start),
            or None for an attack without one.
        norms: float array (batch,) of each sample's perturbation size in the threat model's
            norm (inf where the attack failed), for attacks that minimise it; else None.
    """

    x_adv: Any
    fooled: np.ndarray
    gradients: int
    queries: np.ndarray
    loss_trace: np.ndarray | None = None
    norms: np.ndarray | None = None


@dataclass
class Plan:
    """A validated call of an attack: what its chunk function is built for.

    Attributes:
        inputs: The inputs as tensors by name, in the model's order, with the caller's
            layout (`advgrad.gradients.Inputs`; ``inputs.give_back`` restores it).
        objective: The loss the attack maximises (`advgrad.objective.Objective`).
        labels: Validated labels (targets when the attack is targeted).
        budgets: One `advgrad.Budget` per input name; None for a frozen input.
        classes: How to read "fooled" off the objective's outputs (the `classifier` output
            of a multi-output model); None when no output decides it.
        strategy: The `tf.distribute.Strategy` whose replicas the attack may split each
            chunk over (an attack that cannot ignores it), or None.
    """

    inputs: Inputs
    objective: Objective
    labels: Any
    budgets: dict[str, Budget | None]
    classes: Classes | None = None
    strategy: Any = None

    @property
    def replicas(self) -> Replicas | None:
        """The strategy's `advgrad.replicas.Replicas`, or None without a strategy."""
        return Replicas.of(self.strategy)

    @property
    def perturbed(self) -> tuple[str, ...]:
        """Names of the inputs the attack may change, in the model's order."""
        return tuple(n for n, b in self.budgets.items() if b is not None)


@dataclass
class Chunk:
    """One `batch_size` slice of a plan, as `Attack.chunks` yields it.

    Attributes:
        index: Its number (0, 1, ...).
        start: Its first sample. ``stop``: one past its last.
        xs: Every input's slice, in the model's order (frozen ones too).
        labels: The labels' slice.
        seed: The attack's seed folded with `index`: a ``[2]`` int tensor for stateless
            random ops, the same for the same chunk on every run.
    """

    index: int
    start: int
    stop: int
    xs: list[tf.Tensor]
    labels: Any
    seed: tf.Tensor

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass
class ChunkResult:
    """What a family's chunk function returns for one `Chunk`: per-sample values.

    The driver (`Attack.execute`) checks it (finite rows, threat model) and assembles the
    chunks into an `AttackResult`.

    Attributes:
        x_adv: The perturbed inputs' adversarial values ``[B, ...]``, in ``plan.perturbed``
            order (frozen inputs are never returned: the driver keeps them as given).
        fooled: bool ``[B]``: the model's verdict on `x_adv` when the chunk was judged
            (``judge=True``); when not, whether an iterate is known to fool the model.
        queries: int ``[B]``: model evaluations per sample.
        gradients: int ``[B]``: gradient evaluations per sample; None: `queries`.
        loss_trace: float ``[T]``: the chunk's mean attack loss per iterate, or None.
        norms: float ``[B]``: each sample's minimal perturbation norm (inf where none was
            found), for an attack that declares ``MINIMAL_NORMS``; else None.
    """

    x_adv: list[tf.Tensor]
    fooled: Any
    queries: Any
    gradients: Any = None
    loss_trace: Any = None
    norms: Any = None


def finite_rows(x: tf.Tensor) -> tf.Tensor:
    """Per sample (``[B]``, bool): every value of `x` (``[B, ...]``) is finite."""
    return tf.reduce_all(tf.reshape(tf.math.is_finite(x), [tf.shape(x)[0], -1]), axis=1)


def select_rows(mask: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per sample: the row of `a` where `mask` (``[B]``) holds, else the row of `b` (`a`
    and `b` of one shape ``[B, ...]`` with a static rank)."""
    return tf.where(tf.reshape(mask, [-1] + [1] * (a.shape.rank - 1)), a, b)
