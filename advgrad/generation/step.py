"""One batch of `generate`: the attack, the model's classes on the clean and adversarial
inputs, and the size of each perturbation.

For an attack whose whole run is one graph (`Attack.graph_fn`: FGSM, BIM, PGD, MI-FGSM,
APGD), all of it is one compiled call, traced once for every batch size: the clean forward
pass does not wait for the attack and runs beside it, and nothing crosses to Python in
between. Any other attack (Square, FAB, EOT...) runs through `Attack.execute`, and the
predictions and norms follow it. On both paths the model's outputs are judged by
`advgrad.predictions.judge` (a sample whose output is not finite, NaN or inf, has no
prediction: it is never correct), and batch ``number`` is attacked with the seed
``seed_of(seed, attack.seed, number, 0, 0)``: the same run gives the same bytes.

>>> import numpy as np
>>> from advgrad import data, zoo
>>> from advgrad.attacks import PGD
>>> ds, model = data.digits(), zoo.load("digits-cnn")
>>> step = BatchStep(model, PGD(eps=0.1, steps=3, bounds=ds.bounds), seed=0)
>>> out = step(0, ds.x_test[:8], ds.y_test[:8])
>>> (norms,) = out.norms.values()  # one input, perturbed
>>> step.compiled, out.x_adv.shape, bool(np.all(norms <= 0.1 + 1e-6))
(True, (8, 8, 8, 1), True)
>>> bool(out.clean_correct.mean() >= out.adv_correct.mean()), bool(out.clean_finite.all())
(True, True)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from advgrad._validation import ArgumentError
from advgrad.attacks.base import Attack
from advgrad.batching import seed_of
from advgrad.gradients import label_specs
from advgrad.models import ModelAdapter
from advgrad.predictions import class_ids, judge
from advgrad.replicas import Replicas

__all__ = ["Attacked", "BatchStep"]


@dataclasses.dataclass
class Attacked:
    """One attacked batch.

    Attributes:
        x_adv: The adversarial inputs, in the layout of the batch's inputs.
        clean: The model's classes on the clean inputs, int64 ``[B]``.
        adversarial: Its classes on the adversarial inputs, int64 ``[B]``.
        norms: Per perturbed input (by name), the perturbation's size in the norm of its
            budget, float64 ``[B]``.
        clean_correct, adv_correct: Per sample (bool ``[B]``), the class on the clean
            (adversarial) input equals the label and the output is finite
            (`advgrad.predictions.judge`).
        clean_finite, adv_finite: Per sample (bool ``[B]``), the model's output on the
            clean (adversarial) input is finite.
    """

    x_adv: Any
    clean: np.ndarray
    adversarial: np.ndarray
    norms: dict[str, np.ndarray]
    clean_correct: np.ndarray
    adv_correct: np.ndarray
    clean_finite: np.ndarray
    adv_finite: np.ndarray


class BatchStep:
    """``step(number, x, y) -> Attacked`` for one batch.

    Args:
        model: The model attacked (one classification output).
        attack: The attack (its settings; its seed is folded into each batch's).
        seed: The run's seed.
        replicas: `advgrad.replicas.Replicas` to split each batch's compiled call over (the
            same bytes as without), or None. An attack without a graph form runs unsplit.

    Attributes:
        compiled: Whether batches run as one compiled call (known after the first batch).
    """

    def __init__(self, model: Any, attack: Attack, *, seed: int, replicas: Replicas | None = None):
        self.model, self.attack, self.seed, self.replicas = model, attack, seed, replicas
        self.adapter = ModelAdapter.of(model)
        self.compiled: bool | None = None

    def __call__(self, number: int, x: Any, y: Any) -> Attacked:
        batch_seed = seed_of(self.seed, self.attack.seed, number, 0, 0)
        attack = self.attack.replace(seed=batch_seed)
        plan = attack.plan(self.model, x, y)  # validated like any call: errors named
        # unbounded on [0, 1] data: the attack's own warning, once (its copies share it),
        # pointing at generate's caller (generate > run > _Run.go > here)
        attack.warn_unbounded(plan, stacklevel=5)
        inputs, perturbed = plan.inputs, plan.perturbed
        fn = self._graph(plan)
        truth = class_ids(y)
        if fn is None:
            x_adv = attack.execute(plan, judge=False).x_adv
            _, adv = self.adapter.split_inputs(x_adv)
            clean = [inputs.tensors[n] for n in perturbed]
            sizes = _sizes(plan, clean, [adv[n] for n in perturbed])
            norms = {n: v.numpy() for n, v in sizes.items()}
            return self._judged(x, x_adv, truth, norms, None, None)
        seed = tf.random.experimental.stateless_fold_in(tf.constant([batch_seed, 0], tf.int64), 0)
        xs = [inputs.tensors[n] for n in inputs.names]
        if self.replicas is None:
            rows = tf.constant([0, inputs.batch_size], tf.int32)
            adv, clean, adversarial, sizes = fn(xs, plan.labels, seed, rows)
        else:
            adv, clean, adversarial, sizes = self.replicas.run(fn, [xs, plan.labels], [seed])
        values = dict(inputs.tensors)
        values.update(zip(perturbed, adv, strict=True))
        norms = {n: v.numpy() for n, v in zip(perturbed, sizes, strict=True)}
        x_adv = inputs.give_back(values, None)
        return self._judged(x, x_adv, truth, norms, clean.numpy(), adversarial.numpy())

    def _judged(self, x, x_adv, truth, norms, clean, adversarial) -> Attacked:
        """The batch judged by `advgrad.predictions.judge` on the model's outputs (computed
        here when None): a non-finite output is never correct."""
        clean_classes, clean_correct, clean_finite = judge(self.model, x, truth, clean)
        adv_classes, adv_correct, adv_finite = judge(self.model, x_adv, truth, adversarial)
        return Attacked(
            x_adv,
            clean_classes,
            adv_classes,
            norms,
            clean_correct,
            adv_correct,
            clean_finite,
            adv_finite,
        )

    def _graph(self, plan: Any) -> Any:
        """The compiled call for `plan`, or None: the attack has no graph form.

        Compiled once per model, attack settings, radii and input signature, and cached on
        the model like the attack's own compiled loop (`Attack.compiled`): a second
        `generate` of the same attack does not trace again.
        """
        if self.compiled is False:
            return None
        radii = (
            tuple(plan.budgets[n].eps for n in plan.perturbed),
            getattr(self.attack, "step_size", None),
        )
        try:
            fn = self.attack.compiled(plan, lambda: _Body(self, plan), "generation step", radii)
        except ArgumentError:  # not a graph attack (`Attack.graph_fn`): `execute` it
            self.compiled = False
            return None
        self.compiled = True
        return fn


class _Body:
    """What `Attack.compiled` compiles: ``run`` (the attack, the model's outputs on the clean
    and adversarial inputs, the norms) and its ``signature``."""

    def __init__(self, step: BatchStep, plan: Any):
        self.perturb = step.attack.graph_fn(plan)  # ArgumentError: no graph form
        self.plan, self.adapter = plan, step.adapter

    def outputs(self, values: list) -> tf.Tensor:
        """The model's (classification) output on the inputs `values`, ``[B, ...]``: judged
        on the host (`advgrad.predictions.judge`)."""
        inputs = self.plan.inputs
        leaves = dict(zip(inputs.names, values, strict=True))
        outputs = self.adapter(self.adapter.pack_inputs(leaves, inputs.given))
        return tf.nest.flatten(outputs)[0]

    def run(self, xs, y, seed, rows):
        names, perturbed = self.plan.inputs.names, self.plan.perturbed
        adv = self.perturb(xs, y, seed, rows)
        by_name = dict(zip(names, xs, strict=True))
        clean = [by_name[n] for n in perturbed]
        by_name.update(zip(perturbed, adv, strict=True))
        sizes = list(_sizes(self.plan, clean, adv).values())
        return adv, self.outputs(xs), self.outputs([by_name[n] for n in names]), sizes

    def signature(self, labels: Any) -> list:
        specs = list(self.plan.inputs.specs())
        seed_and_rows = [tf.TensorSpec([2], tf.int32), tf.TensorSpec([2], tf.int32)]
        return [specs, label_specs(labels), *seed_and_rows]


def _sizes(plan: Any, clean: list, adv: list) -> dict[str, tf.Tensor]:
    """Each perturbed input's perturbation size per sample, in its budget's norm (float64)."""
    sizes = {}
    for name, x, a in zip(plan.perturbed, clean, adv, strict=True):
        delta = tf.cast(a, tf.float64) - tf.cast(x, tf.float64)
        sizes[name] = plan.budgets[name].norm.norm(tf.reshape(delta, [tf.shape(delta)[0], -1]))
    return sizes
