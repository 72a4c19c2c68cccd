"""EOT: expectation over transformation, for models whose inference is random.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security:
Circumventing Defenses to Adversarial Examples", ICML 2018. Against a randomised model (noise,
dropout or a random input transformation active at inference), one forward pass gives the
gradient of one random draw; EOT ascends the expected loss instead, estimated over `samples`
draws.

One mechanism serves every attack: `EOT` hands the wrapped attack a plan whose objective is
`Expectation`, the per-sample loss averaged over `samples` forward passes. An attack that
takes its losses and gradients from that objective (every gradient attack, through
`advgrad.gradients.value_and_grad`, and `Square`'s search) gets the expected loss and, by
linearity, the mean of the `samples` gradients, without knowing it.

- The `samples` passes run as one batch of ``samples x B`` (the inputs tiled along the batch
  axis), so the model's randomness must be drawn per sample, as Keras' noise, dropout and
  random augmentation layers draw it.
- "Fooled" is judged on the mean of the class probabilities over the `samples` passes
  (softmax of logits; the sigmoid for one unit): the prediction of the randomised model's
  expected output.
- Labels: pass `y`; left to None they come from one random pass of the model.

>>> import advgrad
>>> attack = advgrad.attacks.EOT(advgrad.attacks.PGD(eps=0.1, steps=10), samples=4)
>>> attack.samples, attack.steps, attack.get_config()["attack"]["name"]
(4, 10, 'pgd')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import tensorflow as tf

from advgrad._validation import ArgumentError, check_int, invalid
from advgrad.attacks.base import Attack, Plan
from advgrad.attacks.plan import Chunk, ChunkResult
from advgrad.attacks.registry import from_config, get_attack, register_attack
from advgrad.budget import Budget
from advgrad.objective import Objective
from advgrad.predictions import Classes

__all__ = ["EOT", "Expectation"]

#: Settings `EOT` takes for the wrapped attack (the shared argument names): given (not None),
#: they are set on it; None keeps the wrapped attack's own.
SHARED = (
    *Attack.DEFAULTS,
    *("steps", "step_size", "restarts", "random_start", "queries"),
)


class Expectation:
    """An objective whose per-sample loss is the mean over `samples` forward passes.

    `forward` returns ``{"passes": outputs of the samples x B batch, "scores": the mean class
    probabilities per sample}`` (no "scores" without a classifier); `per_sample` averages the
    wrapped objective's per-sample losses over the passes. Read "fooled" off it with
    `classes` (its `Classes`).

    Args:
        objective: The objective of one pass.
        samples: Forward passes per evaluation (>= 1).
        classes: How "fooled" is read off one pass's outputs (None: no classifier).
    """

    def __init__(self, objective: Objective, samples: int, classes: Classes | None):
        self.objective = objective
        self.samples = samples
        self.inner_classes = classes
        self.probabilities = False
        if classes is not None and not objective.use_logits:
            key = classes.key if classes.key is not None else objective.output
            self.probabilities = objective.adapter.final_activation(key) in ("softmax", "sigmoid")
        self.classes = None if classes is None else Classes(0.5, key="scores", label=classes.label)

    def __getattr__(self, key: str) -> Any:  # adapter, terms, output, ... of one pass
        if key == "objective":
            raise AttributeError(key)
        return getattr(self.objective, key)

    def class_count(self, key: str | int | None = None) -> int | None:
        """The classes of one pass's output `key` (``"scores"``: the output that decides
        "fooled"), as the wrapped objective counts them."""
        if key == "scores" and self.inner_classes is not None:
            key = self.inner_classes.key
        return self.objective.class_count(key)

    def _tile(self, value: Any) -> Any:
        return tf.nest.map_structure(
            lambda v: tf.tile(v, [self.samples] + [1] * (v.shape.rank - 1)), value
        )

    def forward(self, inputs: Any) -> dict[str, Any]:
        """The outputs of `samples` passes (one batch), and the mean probabilities."""
        outputs = self.objective.forward(self._tile(inputs))
        result = {"passes": outputs}
        if self.inner_classes is not None:
            result["scores"] = self._mean_probabilities(self.inner_classes.scores(outputs))
        return result

    def _mean_probabilities(self, scores: tf.Tensor) -> tf.Tensor:
        scores = tf.convert_to_tensor(scores)
        passes = tf.reshape(scores, tf.concat([[self.samples, -1], tf.shape(scores)[1:]], 0))
        one_unit = scores.shape.rank == 1 or scores.shape[-1] == 1
        if self.probabilities or (one_unit and self.inner_classes.threshold == 0.5):
            probabilities = passes
        elif one_unit:
            probabilities = tf.sigmoid(passes)
        else:
            probabilities = tf.nn.softmax(passes, axis=-1)
        return tf.reduce_mean(probabilities, axis=0)

    def per_sample(self, y: Any, outputs: dict[str, Any]) -> tf.Tensor:
        """The wrapped per-sample loss, averaged over the passes (a scalar loss: as is)."""
        loss = self.objective.per_sample(self._tile(y), outputs["passes"])
        if loss.shape.rank == 0:
            return loss
        return tf.reduce_mean(tf.reshape(loss, [self.samples, -1]), axis=0)


@register_attack("eot")
class EOT(Attack):
    """Expectation over transformation around any attack (Athalye et al., ICML 2018).

    Args:
        attack: The attack to run on the expected loss: an `Attack`, a registered name
            (with its defaults) or a config (``{"name": "pgd", "steps": 40, ...}``).
            Defaults to "pgd".
        samples: Forward passes the loss and gradients are averaged over (int >= 1,
            default 8); each model evaluation of the wrapped attack costs `samples` passes.
        **settings: Settings of the wrapped attack, set on it (eps, norm, bounds, steps,
            seed, ... any setting it takes); a shared setting (`SHARED`, the ones
            `get_attack("eot", ...)` lists) left to None keeps the wrapped attack's.

    Every other attribute (eps, steps, targeted, ...) is the wrapped attack's.
    ``AttackResult.queries`` and ``gradients`` count forward (and backward) passes: the
    wrapped attack's counts times `samples`. ``fooled`` is one `samples`-pass estimate of the
    mean probabilities on the returned input; on a random model, judge the outcome over many
    more passes.

    Raises:
        ArgumentError: `samples` is not an int >= 1, `attack` is no attack (or an `EOT`), or
            a setting is invalid for the wrapped attack: before any work.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "attack": "pgd",
        "samples": 8,
        **dict.fromkeys(SHARED),
    }

    def __init__(self, attack: Any = "pgd", samples: int = 8, **settings: Any):
        samples = check_int("samples", samples, low=1, high=2**16)
        inner = _resolve(attack)
        changes = {k: v for k, v in settings.items() if not (k in SHARED and v is None)}
        if changes:
            inner = inner.replace(**changes)
        self._settings = {"attack": inner, "samples": samples}

    def __getattr__(self, key: str) -> Any:
        settings = self.__dict__.get("_settings")
        if settings is None:
            raise AttributeError(key)
        if key in settings:
            return settings[key]
        return getattr(settings["attack"], key)

    def get_config(self) -> dict[str, Any]:
        """``{"name": "eot", "attack": the wrapped attack's config, "samples": k}``."""
        return {"name": self.name, "attack": self.attack.get_config(), "samples": self.samples}

    def replace(self, **changes: Any) -> EOT:
        """A copy with `attack`, `samples` or the wrapped attack's settings changed."""
        changed = set(changes)
        attack = changes.pop("attack", self.attack)
        samples = changes.pop("samples", self.samples)
        copy = EOT(attack, samples, **changes)  # the same bounds: one warning (`run`)
        return self._sharing_warning(copy, changed, ("bounds", "budget", "attack"))

    def for_classes(self, classes: int) -> EOT:
        """EOT around the wrapped attack's `Attack.for_classes` (what runs on a model of
        `classes` classes: APGD-T's and FAB-T's targets, say).

        >>> import advgrad
        >>> advgrad.attacks.EOT("apgd-t").for_classes(3).attack.n_target_classes
        2
        """
        fitted = self.attack.for_classes(classes)
        return self if fitted is self.attack else self.replace(attack=fitted)

    def __repr__(self) -> str:
        return f"EOT({self.attack!r}, samples={self.samples})"

    def budgets(self, input_names: Any, **options: Any) -> dict[str, Budget | None]:
        """The wrapped attack's threat model."""
        return self.attack.budgets(input_names, **options)

    def plan(self, model: Any, x: Any, y: Any = None, **options: Any) -> Plan:
        """The wrapped attack validates the call."""
        return self.attack.plan(model, x, y, **options)

    def attack_chunks(self, plan: Plan, *, judge: bool) -> Callable[[Chunk], ChunkResult]:
        """The wrapped attack's chunk function, on the plan whose objective is the
        `Expectation`."""
        return self.attack.attack_chunks(expectation(plan, self.samples), judge=judge)

    @property
    def passes(self) -> int:
        """Each evaluation of the wrapped attack costs `samples` passes (its counts times
        `samples`)."""
        return self.samples * self.attack.passes

    @property
    def GRADIENTS_ROUNDING(self) -> str:  # noqa: N802 (the wrapped attack's capability)
        return self.attack.GRADIENTS_ROUNDING


EOT.__signature__ = inspect.signature(EOT.__init__)


def expectation(plan: Plan, samples: int) -> Plan:
    """`plan` with its objective averaged over `samples` passes (cached per model)."""
    classes = plan.classes
    reading = None if classes is None else (classes.threshold, classes.key, classes.label)
    key = ("eot", id(plan.objective), samples, reading)
    cache = plan.inputs.adapter.cache
    if key not in cache:
        cache[key] = Expectation(plan.objective, samples, classes)
    objective = cache[key]
    return Plan(plan.inputs, objective, plan.labels, plan.budgets, objective.classes)


def _resolve(attack: Any) -> Attack:
    expected = "an attack: an Attack (not an EOT), a registered attack's name or its config"
    if isinstance(attack, EOT):
        raise invalid("attack", expected, attack)
    if isinstance(attack, Attack):
        return attack
    if isinstance(attack, str):
        try:
            return get_attack(attack)
        except ArgumentError as error:
            if error.argument == "name":
                raise invalid("attack", expected, attack) from None
            raise
    if isinstance(attack, Mapping) and "name" in attack:
        if str(attack["name"]).lower() == "eot":
            raise invalid("attack", expected, attack)
        try:
            return from_config(attack)
        except ArgumentError as error:
            if error.argument == "name":
                raise invalid("attack", expected, attack) from None
            raise
    raise invalid("attack", expected, attack)
