"""`adversarial`: a Keras model whose `fit` trains on adversarial examples of each batch.

The wrapper's ``train_step`` (TensorFlow backend) attacks each batch inside the compiled
training step, from the current weights, with an advgrad attack whose whole loop is one graph
(`advgrad.attacks.IterativeAttack.graph_fn`: FGSM, BIM, PGD, MI-FGSM, APGD), then takes one
optimiser step on the objective (`advgrad.training.objectives`: PGD-AT or TRADES). Everything
else is Keras': callbacks, validation data, ``evaluate`` and ``predict`` (on clean inputs),
``BackupAndRestore``. ``save`` writes the plain model: ``keras.models.load_model`` reads it
back in safe mode, without advgrad.

>>> import numpy as np, keras, advgrad
>>> keras.utils.set_random_seed(0)
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
>>> attack = advgrad.attacks.PGD(eps=0.1, steps=3, bounds=(0, 1))
>>> robust = adversarial(model, attack)
>>> robust.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> x = np.random.default_rng(0).random((32, 4)).astype("float32")
>>> history = robust.fit(x, np.arange(32) % 3, epochs=2, batch_size=16, verbose=0)
>>> len(history.history["loss"]), robust.base_model is model
(2, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from advgrad._validation import check_seed, invalid
from advgrad.attacks.base import Attack
from advgrad.models import ModelAdapter
from advgrad.objective import reads_probabilities
from advgrad.training.objectives import (
    check_settings,
    kl_divergence,
    log_probabilities,
    trades_loss,
)

__all__ = ["STEPS_PER_EXECUTION", "AdversarialModel", "adversarial"]

STEPS_PER_EXECUTION = 16
"""Training steps per compiled call advgrad's own training uses (Keras' ``steps_per_execution``,
at most an epoch's steps). On small models Keras' per-step Python otherwise costs about as
much as the adversarial training step (`benchmarks/training.py`, the numpy rows); the
weights come out the same."""


def adversarial(
    model: keras.Model,
    attack: Attack,
    *,
    objective: str = "pgd-at",
    beta: float = 6.0,
    ratio: float = 1.0,
    seed: int = 0,
    strategy: tf.distribute.Strategy | None = None,
) -> AdversarialModel:
    """Wrap `model` so that `fit` trains it adversarially; compile the wrapper, then fit.

    Args:
        model: A Sequential or functional ``keras.Model`` with one classification output
            (logits or softmax probabilities, ``(batch, classes)``, classes >= 2); one input
            or several (a list or a dict), as ``fit`` will feed them. Its weights are the ones
            trained.
        attack: An untargeted advgrad attack that runs inside a graph (FGSM, BIM, PGD,
            MI-FGSM, APGD), with its eps, norm, bounds or per-input budget (frozen inputs
            stay clean). Its ``loss`` is what it maximises; None: cross-entropy for PGD-AT.
            TRADES attacks the KL divergence to the clean prediction, whatever the attack's
            loss.
        objective: "pgd-at" (Madry et al. 2018: the compiled loss on adversarial examples)
            or "trades" (Zhang et al. 2019: the compiled loss on clean examples plus
            ``beta`` x KL(f(x) || f(x'))).
        beta: TRADES' weight of the robust term (a finite number >= 0).
        ratio: The share of each batch replaced by adversarial examples (PGD-AT; 1: all,
            0: clean training), or that the KL term covers (TRADES): the first
            ``round(ratio * batch)`` samples of each batch. The attack runs on the whole
            batch either way (fixed shapes: one graph).
        seed: Seed of the attack's random starts, an int in ``[0, 2**63)``
            (`advgrad._validation.check_seed`); each training step folds in the
            optimiser's step count, so a run is reproducible and a resumed run
            (``keras.callbacks.BackupAndRestore``) draws what the uninterrupted one drew.
        strategy: A ``tf.distribute.Strategy`` to train under (``MirroredStrategy`` over
            GPUs or logical CPU devices, ``MultiWorkerMirroredStrategy``), or None. Build
            `model`, and compile the wrapper (its optimiser), inside ``strategy.scope()``, as
            Keras asks; each replica attacks its share of the batch. Keras 3.15 on
            TensorFlow 2.21 fails with ``steps_per_execution`` > 1 under a multi-replica
            strategy (a plain model too): compile with 1 there.

    Returns:
        An `AdversarialModel` (a ``keras.Model``): compile it with the optimiser, loss and
        metrics you would give `model`, then call ``fit``.

    Raises:
        ArgumentError: Before any training: an attack that cannot run inside a graph or is
            targeted, a model without one classification output, `ratio` outside [0, 1],
            `beta` < 0, an unknown `objective`, a `strategy` that is not one or that
            `model`'s weights were not created under.
    """
    options = {"objective": objective, "beta": beta, "ratio": ratio, "seed": seed}
    if strategy is None:
        return AdversarialModel(model, attack, **options)
    _check_strategy(strategy, model)
    with strategy.scope():
        return AdversarialModel(model, attack, **options)


class AdversarialModel(keras.Model):
    """A ``keras.Model`` around `base_model` whose ``train_step`` attacks each batch first.

    Build it with `adversarial` (the arguments are documented there). ``call``, ``evaluate``
    and ``predict`` are `base_model`'s, on clean inputs; ``fit`` logs the compiled loss and
    metrics of the batch it trains on (PGD-AT: the adversarial mix; TRADES: the clean
    batch, and ``robust_kl``, the mean KL term). ``save`` writes `base_model`, compiled like
    the wrapper (optimiser state included), as a plain Keras model.

    Attributes:
        base_model: The model being trained (its weights are the wrapper's).
        attack: The attack that makes each batch's adversarial examples.
        objective, beta, ratio, seed: As given to `adversarial`.
    """

    def __init__(
        self,
        base_model: keras.Model,
        attack: Attack,
        *,
        objective: str = "pgd-at",
        beta: float = 6.0,
        ratio: float = 1.0,
        seed: int = 0,
        **kwargs: Any,
    ):
        objective, beta, ratio = check_settings(objective, beta=beta, ratio=ratio)
        seed = check_seed(seed)  # the one rule: the int64 seed pair [seed, step] holds it
        adapter = _check_model(base_model)
        attack = _check_attack(attack)
        from_logits = not reads_probabilities(adapter)
        if objective == "trades":
            attack = attack.replace(loss=trades_loss(from_logits=from_logits))
        elif attack.loss is None:
            attack = attack.replace(loss="ce")
        plan = attack.plan(base_model, _sample(adapter, attack), _sample_labels(adapter, objective))
        perturb = attack.graph_fn(plan)  # raises for an attack that cannot run in a graph
        kwargs.setdefault("name", f"adversarial_{base_model.name}")
        super().__init__(**kwargs)
        self.base_model = base_model
        self.attack = attack
        self.objective, self.beta, self.ratio, self.seed = objective, beta, ratio, seed
        self._adapter = adapter
        self._plan = plan
        self._perturb = perturb
        self._from_logits = from_logits
        if objective == "trades":
            self._kl_tracker = keras.metrics.Mean(name="robust_kl")
        self.built = True  # its weights are base_model's, built with it

    # ------------------------------------------------------------------ Keras
    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.base_model(inputs, training=training)

    @property
    def metrics(self) -> list:
        extra = [self._kl_tracker] if self.objective == "trades" else []
        return [*super().metrics, *extra]

    def train_step(self, data: Any) -> dict[str, Any]:
        """Attack the batch from the current weights, then one step on the objective."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        chosen = tf.range(batch) < tf.cast(
            tf.round(self.ratio * tf.cast(batch, tf.float32)), tf.int32
        )
        # The attack runs before the tape opens: nothing of it is recorded for the weights.
        if self.objective == "trades":
            x_adv = self._trades_adversarial(x)
        elif self.ratio > 0:
            x = self._mix(x, self._adversarial(x, y), chosen)
        with tf.GradientTape() as tape:
            if self.objective == "trades":
                loss, y_pred = self._trades(x, x_adv, y, sample_weight, chosen)
            else:
                y_pred = self(x, training=True)
                loss = self.compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
                )
            tracker = getattr(self, "_loss_tracker", None)
            if tracker is not None:  # Keras divides the loss by the replicas: undo for the log
                tracker.update_state(loss * _replicas(loss.dtype), sample_weight=batch)
            scaled = self.optimizer.scale_loss(loss) if self.optimizer is not None else loss
        weights = self.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights, strict=True))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def plain_model(self) -> keras.Model:
        """`base_model`, compiled as this wrapper is (same optimiser, with its state; same
        loss and metrics): the trained model without advgrad, what `save` writes."""
        config = getattr(self, "_compile_config", None)
        if self.compiled and config is not None:
            self.base_model.compile(**config.config)
        return self.base_model

    def save(self, filepath: Any, overwrite: bool = True, **kwargs: Any) -> None:
        """Save `plain_model()`: a plain Keras model, loadable with
        ``keras.models.load_model(path)`` (safe mode) without advgrad."""
        self.plain_model().save(filepath, overwrite=overwrite, **kwargs)

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            "An AdversarialModel is not serialised itself: `save` writes its plain "
            "base_model (keras.models.load_model reads it back)."
        )

    # -------------------------------------------------------------- the step
    def _step_seed(self) -> tf.Tensor:
        iterations = tf.cast(self.optimizer.iterations, tf.int64)
        seed = tf.stack([tf.constant(self.seed, tf.int64), iterations])
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:  # each its own draws
            seed = tf.random.experimental.stateless_fold_in(seed, replica.replica_id_in_sync_group)
        return seed

    def _leaves(self, x: Any) -> list[tf.Tensor]:
        """x's tensors in the model's input order, floating ones in the plan's dtypes."""
        names = self._plan.inputs.names
        if isinstance(x, Mapping):
            values = [x[n] for n in names]
        elif isinstance(x, (list, tuple)):
            values = list(x)
        else:
            values = [x]
        specs = self._plan.inputs.specs()
        return [
            tf.cast(v, s.dtype) if s.dtype.is_floating else v
            for v, s in zip(values, specs, strict=True)
        ]

    def _adversarial(self, x: Any, labels: Any) -> dict[str, tf.Tensor]:
        """The attack's adversarial inputs by name (perturbed inputs only)."""
        adv = self._perturb(self._leaves(x), labels, self._step_seed())
        return dict(zip(self._plan.perturbed, adv, strict=True))

    def _mix(self, x: Any, adv: dict[str, tf.Tensor], chosen: tf.Tensor) -> Any:
        """x with the `chosen` samples of every perturbed input adversarial (x's layout)."""
        names = self._plan.inputs.names
        leaves = self._leaves(x)
        mixed = []
        for name, leaf in zip(names, leaves, strict=True):
            if name in adv and self.ratio < 1:
                mask = tf.reshape(chosen, [-1] + [1] * (leaf.shape.rank - 1))
                leaf = tf.where(mask, adv[name], leaf)
            elif name in adv:
                leaf = adv[name]
            mixed.append(leaf)
        if isinstance(x, Mapping):
            return {**x, **dict(zip(names, mixed, strict=True))}
        if isinstance(x, (list, tuple)):
            return mixed
        return mixed[0]

    def _trades_adversarial(self, x: Any) -> Any:
        """TRADES' x': the attack on KL(p_clean || f(x')), p_clean at inference mode."""
        clean = self._adapter(x)
        probabilities = tf.stop_gradient(
            tf.exp(log_probabilities(clean, from_logits=self._from_logits))
        )
        one_unit = clean.shape[-1] == 1  # the labels: p of class 1, shaped like the output
        adv = self._adversarial(x, probabilities[:, 1:] if one_unit else probabilities)
        return self._mix(x, adv, tf.ones([tf.shape(probabilities)[0]], tf.bool))

    def _trades(self, x: Any, x_adv: Any, y: Any, sample_weight: Any, chosen: tf.Tensor):
        """TRADES: the compiled loss on clean x + beta x KL(f(x) || f(x')) on `chosen`."""
        both = tf.nest.map_structure(lambda a, b: tf.concat([tf.cast(a, b.dtype), b], 0), x, x_adv)
        outputs = self(both, training=True)  # one pass over clean and adversarial
        batch = tf.shape(chosen)[0]
        y_pred, adv_pred = outputs[:batch], outputs[batch:]
        natural = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        kl = kl_divergence(y_pred, adv_pred, from_logits=self._from_logits)
        weight = tf.cast(chosen, kl.dtype)
        robust = tf.reduce_sum(kl * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)
        self._kl_tracker.update_state(robust)
        # compute_loss divides by the replicas (their gradients are summed): the KL term too
        beta = tf.cast(self.beta, natural.dtype) / _replicas(natural.dtype)
        return natural + beta * tf.cast(robust, natural.dtype), y_pred


def _replicas(dtype: Any) -> tf.Tensor:
    """The replicas in sync of the current strategy (1 without one), as `dtype`."""
    return tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, dtype)


# ------------------------------------------------------------------ checks
def _check_strategy(strategy: Any, model: keras.Model) -> None:
    if not isinstance(strategy, tf.distribute.Strategy):
        raise invalid("strategy", "a tf.distribute.Strategy (or None)", strategy)
    weights = [getattr(w, "value", w) for w in model.weights]
    if weights and not all(strategy.extended.variable_created_in_scope(w) for w in weights):
        raise invalid(
            "strategy",
            "the strategy `model` was built under: build or load the model inside "
            "`with strategy.scope():`",
            f"{type(strategy).__name__}, with a model built outside its scope",
        )


def _check_model(model: Any) -> ModelAdapter:
    if not isinstance(model, keras.Model):
        raise invalid("model", "a keras.Model (Sequential or functional)", model, cls=TypeError)
    adapter = ModelAdapter.of(model)
    if adapter.input_specs is None:
        raise invalid(
            "model",
            "a Sequential or functional keras.Model (its inputs known before training)",
            f"{type(model).__name__} (a subclassed model)",
        )
    shapes = adapter.output_shapes
    if len(shapes) != 1 or len(shapes[0]) != 1 or not (shapes[0][0] or 0) >= 1:
        raise invalid(
            "model",
            "a model with one classification output of class scores, shape (batch, classes) "
            "with classes >= 2 (logits or softmax probabilities), or one unit (a binary "
            "classifier: a logit or a sigmoid probability)",
            f"a model with outputs of shapes {[(None, *s) for s in shapes]}",
        )
    return adapter


def _check_attack(attack: Any) -> Attack:
    if not isinstance(attack, Attack):
        raise invalid("attack", "an advgrad attack (e.g. advgrad.attacks.PGD(eps=0.1))", attack)
    if attack.targeted:
        raise invalid("attack", "an untargeted attack (targeted=False)", attack)
    if not attack.ONE_GRAPH:
        attack.graph_fn(None)  # raises, naming the attack and the fix
    return attack


def _sample(adapter: ModelAdapter, attack: Attack) -> dict[str, np.ndarray]:
    """One sample per input, within the attack's bounds: what the plan is validated on."""
    budgets = attack.budgets(tuple(adapter.input_specs))
    sample = {}
    for name, spec in adapter.input_specs.items():
        shape = (1, *[1 if d is None else d for d in spec.shape])
        dtype = tf.as_dtype(spec.dtype or "float32")
        value = np.zeros(shape, dtype.as_numpy_dtype)
        budget = budgets.get(name)
        if budget is not None and dtype.is_floating and not budget.bounds.is_unbounded:
            value = np.asarray(budget.bounds.clip(tf.constant(value))).astype(value.dtype)
        sample[name] = value
    if adapter.input_structure.kind == "single":
        return next(iter(sample.values()))
    if adapter.input_structure.kind == "list":
        return list(sample.values())
    return sample


def _sample_labels(adapter: ModelAdapter, objective: str) -> Any:
    if objective != "trades":
        return None  # class ids, from the model's predictions
    classes = adapter.output_shapes[0][0]
    return np.full((1, classes), 1.0 / classes, np.float32)
