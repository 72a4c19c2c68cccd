"""`Attack` and `IterativeAttack`: settings, validation, batching, and the one compiled loop.

An attack's constructor takes settings only (never the model or data), so a YAML mapping
becomes an attack and `get_config()` round-trips. `IterativeAttack` owns the loop every
gradient attack shares; a concrete attack only picks its pieces: a step rule (`step_rule`),
its default step size, whether it starts at random, how many restarts.

    grad -> step rule -> delta + step_size * direction -> project onto the ball -> clip

The whole loop (restarts x steps, and the best-so-far adversarial per sample) runs in one
`tf.function`; eps, step sizes and the seed are tensors, so changing them does not retrace.

>>> import advgrad
>>> attack = advgrad.attacks.PGD(eps=0.1, steps=10)
>>> attack.get_config()["steps"], attack.replace(eps=0.2).eps
(10, 0.2)
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from advgrad import losses, norms, steps
from advgrad._validation import invalid
from advgrad.budget import Bounds, Budget, resolve_budgets
from advgrad.gradients import Inputs, compile_once, count_trace, prepare_inputs, resolve_labels
from advgrad.objective import Objective


@dataclass
class AttackResult:
    """What an attack returns from `run`.

    Attributes:
        x_adv: adversarial inputs, same structure, shapes and dtypes as `x`.
        fooled: bool array (batch,): the model's prediction on `x_adv` differs from `y`
            (untargeted) or equals `y` (targeted).
        gradients: gradient evaluations per sample.
        loss_trace: mean attack loss at each iterate of the last restart (index 0 = start).
    """

    x_adv: Any
    fooled: np.ndarray
    gradients: int
    loss_trace: np.ndarray | None


def _check_number(name: str, low: float, *, inclusive: bool = True, allow_inf: bool = False):
    def check(value):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        ok = ok and not math.isnan(value) and (allow_inf or math.isfinite(value))
        ok = ok and (value >= low if inclusive else value > low)
        if not ok:
            raise invalid(name, f"a number {'>=' if inclusive else '>'} {low}", value)
        return float(value)

    return check


def _check_int(name: str, low: int, optional: bool = False):
    def check(value):
        if value is None and optional:
            return None
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise invalid(name, f"an int >= {low}" + (" or None" if optional else ""), value)
        return int(value)

    return check


def _check_bool(name: str):
    def check(value):
        if not isinstance(value, (bool, np.bool_)):
            raise invalid(name, "True or False", value)
        return bool(value)

    return check


def _check_step_size(value):
    return None if value is None else _check_number("step_size", 0, inclusive=False)(value)


def _check_loss(value):
    if value is not None:
        losses.get(value)  # raises naming `loss`
    return value


def _check_norm(value):
    norm = norms.get(value)
    config = norm.get_config()
    return config["name"] if len(config) == 1 else value


def _check_bounds(value):
    if isinstance(value, Mapping):
        return {
            k: None if v is None else _bounds_config(Bounds.from_value(v)) for k, v in value.items()
        }
    return None if value is None else _bounds_config(Bounds.from_value(value))


def _bounds_config(bounds: Bounds):
    low, high = bounds.low, bounds.high
    as_list = lambda v: v.tolist() if isinstance(v, np.ndarray) else float(v)  # noqa: E731
    return [as_list(low), as_list(high)]


def _check_budget(value):
    if value is None:
        return None
    if isinstance(value, Budget):
        return value
    if isinstance(value, Mapping):
        return {
            k: v if v is None or isinstance(v, Budget) else Budget.from_config(v)
            for k, v in value.items()
        }
    raise invalid("budget", "None, a Budget or a dict input name -> Budget or None", value)


class Attack:
    """Base class: settings, validation, batching, the registry name.

    Settings shared by every attack (subclasses add theirs in `DEFAULTS`):
        eps: radius of the perturbation ball (default 8/255).
        norm: "linf", "l2" or "l1" (default "linf").
        bounds: valid input range: None (unbounded, the default: no clipping), (low, high),
            or a dict input name -> (low, high) for multi-input models.
        budget: optional dict input name -> `Budget` or None (None = frozen input); wins over
            eps/norm/bounds for the inputs it names.
        targeted: if True, `y` are the targets to reach.
        loss: None (the model's compiled loss), "ce", "margin" (CW), "dlr", or any loss
            `advgrad.losses.get` accepts.
        seed: random seed (int).
        batch_size: process `x` in chunks of this size (None: all at once).
        progress: show a tqdm bar over the chunks.
    """

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "eps": 8 / 255,
        "norm": "linf",
        "bounds": None,
        "budget": None,
        "targeted": False,
        "loss": None,
        "seed": 0,
        "batch_size": None,
        "progress": False,
    }
    CHECKS: ClassVar[dict[str, Any]] = {
        "eps": _check_number("eps", 0.0),
        "norm": _check_norm,
        "bounds": _check_bounds,
        "budget": _check_budget,
        "targeted": _check_bool("targeted"),
        "loss": _check_loss,
        "seed": _check_int("seed", 0),
        "batch_size": _check_int("batch_size", 1, optional=True),
        "progress": _check_bool("progress"),
    }

    FIXED: ClassVar[dict[str, Any]] = {}  # settings an attack pins (not arguments)
    KEEP_BEST: ClassVar[bool] = True  # return the best iterate per sample, not the last

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        defaults: dict[str, Any] = {}
        checks: dict[str, Any] = {}
        for base in reversed(cls.__mro__):
            defaults.update(base.__dict__.get("DEFAULTS", {}))
            checks.update(base.__dict__.get("CHECKS", {}))
        for key in cls.FIXED:
            defaults.pop(key, None)
        cls.DEFAULTS, cls.CHECKS = defaults, checks
        cls.__signature__ = inspect.Signature(
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
            + [
                inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
                for k, v in defaults.items()
            ]
        )

    def __init__(self, **settings: Any):
        unknown = [k for k in settings if k not in self.DEFAULTS]
        if unknown:
            raise invalid(
                unknown[0],
                f"a setting of {type(self).__name__}: {sorted(self.DEFAULTS)}",
                settings[unknown[0]],
            )
        values = {**self.DEFAULTS, **settings}
        self._settings = {
            k: self.CHECKS[k](v) if k in self.CHECKS else v for k, v in values.items()
        }

    def __getattr__(self, key: str) -> Any:
        settings = self.__dict__.get("_settings", {})
        if key in settings:
            return settings[key]
        if key in type(self).FIXED:
            return type(self).FIXED[key]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {key!r}")

    def get_config(self) -> dict[str, Any]:
        """All settings (defaults included) and the registry name; `from_config` inverts it."""
        config = {"name": self.name}
        for key, value in self._settings.items():
            if isinstance(value, Budget):
                value = value.get_config()
            elif isinstance(value, Mapping) and key == "budget":
                value = {k: None if v is None else v.get_config() for k, v in value.items()}
            config[key] = value
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Attack:
        """Rebuild an attack from `get_config()`."""
        settings = {k: v for k, v in config.items() if k != "name"}
        return cls(**settings)

    def replace(self, **changes: Any) -> Attack:
        """A copy with some settings changed (validated again)."""
        return type(self)(**{**self._settings, **changes})

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._settings.items() if v != self.DEFAULTS.get(k)}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None  # settings may hold arrays; compare, don't hash

    # ---------------------------------------------------------------- calling
    def __call__(
        self, model: Any, x: Any, y: Any = None, *, budget: Any = None, eps: float | None = None
    ) -> Any:
        """Adversarial examples for `x`: same structure, shapes and dtypes.

        Unlike `run`, it skips the forward pass that judges the last iterate: a sample fooled
        at an earlier iterate gets that iterate, any other sample the last one. So the samples
        it fools are exactly those `run` fools; only a sample no iterate fools may get a
        different (equally unsuccessful) iterate. With `restarts` > 1 every restart is still
        judged, to compare them.
        """
        return self._execute(self._plan(model, x, y, budget, eps), judge=False).x_adv

    def run(
        self, model: Any, x: Any, y: Any = None, *, budget: Any = None, eps: float | None = None
    ) -> AttackResult:
        """Attack `x` (labels `y`; None: the model's predictions) and report the outcome.

        Args:
            model: a keras.Model (or a callable on tensors) giving logits or probabilities.
            x: inputs (array, tensor, list or dict) matching the model's inputs.
            y: labels (untargeted) or targets (targeted); None: predicted labels.
            budget: overrides the `budget` setting for this call.
            eps: overrides the `eps` setting for this call (no retracing).

        Raises:
            ValueError: bad input, named, before any work starts.
        """
        plan = self._plan(model, x, y, budget, eps)
        return self._execute(plan)

    # Subclasses implement `_execute(plan)`; `_plan` validates everything first.
    def _plan(self, model, x, y, budget, eps) -> _Plan:
        if self.targeted and y is None:
            raise invalid("y", "the target labels (targeted=True)", y)
        inputs = prepare_inputs(model, x)
        objective = Objective.resolve(inputs.adapter, self.loss, None)
        budgets = self.budgets(inputs.names, budget=budget, eps=eps)
        for name, value in budgets.items():
            if (
                value is not None
                and not value.bounds.is_unbounded
                and not value.bounds.contains(inputs.tensors[name], atol=1e-6)
            ):
                label = inputs.given.label("x", name)
                raise ValueError(
                    f"Invalid value for argument `{label}`: expected values within "
                    f"the bounds [{_fmt(value.bounds.low)}, {_fmt(value.bounds.high)}], "
                    f"received values from {np.min(inputs.tensors[name]):.4g} to "
                    f"{np.max(inputs.tensors[name]):.4g}."
                )
        labels = resolve_labels(objective, inputs, y)
        return _Plan(inputs, objective, labels, budgets)

    def budgets(
        self, input_names: Any, *, budget: Any = None, eps: float | None = None
    ) -> dict[str, Budget | None]:
        """The threat model: one `Budget` per input (None = frozen), as this attack sees it.

        Args:
            input_names: the model's input names, in order.
            budget: overrides the `budget` setting.
            eps: overrides `eps`, also in every non-frozen input's budget.

        >>> import advgrad
        >>> advgrad.attacks.PGD(eps=0.1, bounds=(0, 1)).budgets(["image"], eps=0.2)["image"].eps
        0.2
        """
        names = list(input_names)
        budget = _check_budget(self.budget if budget is None else budget)
        if eps is not None:
            eps = _check_number("eps", 0.0)(eps)
            if isinstance(budget, Budget):
                budget = budget.replace(eps=eps)
            elif isinstance(budget, Mapping):
                budget = {k: None if v is None else v.replace(eps=eps) for k, v in budget.items()}
        bounds = self.bounds
        if isinstance(bounds, Mapping):
            unknown = [k for k in bounds if k not in names]
            if unknown:
                raise invalid("bounds", f"keys among the model's inputs {names}", unknown[0])
            bounds = {k: None if v is None else tuple(v) for k, v in bounds.items()}
        elif bounds is not None:
            bounds = tuple(bounds)
        radius = self.eps if eps is None else eps
        return resolve_budgets(names, budget, eps=radius, norm=self.norm, bounds=bounds)


def _fmt(value: Any) -> str:
    array = np.asarray(value)
    return f"{float(array):g}" if array.ndim == 0 else f"per-feature array {array.shape}"


@dataclass
class _Plan:
    inputs: Inputs
    objective: Objective
    labels: Any
    budgets: dict[str, Budget | None]

    @property
    def perturbed(self) -> tuple[str, ...]:
        return tuple(n for n, b in self.budgets.items() if b is not None)


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
        "steps": _check_int("steps", 1),
        "step_size": _check_step_size,
        "random_start": _check_bool("random_start"),
        "restarts": _check_int("restarts", 1),
    }

    def relative_step(self) -> float:
        """Step size as a fraction of eps when `step_size` is None (Madry et al.: 2.5/steps)."""
        return 2.5 / self.steps

    def step_rule(self, norm: norms.Norm) -> steps.StepRule:
        """How a gradient becomes a direction; default: the norm's steepest ascent."""
        return steps.normalize(norm)

    # ------------------------------------------------------------ execution
    def _execute(self, plan: _Plan, judge: bool = True) -> AttackResult:
        inputs = plan.inputs
        names = inputs.names
        perturbed = plan.perturbed
        batch = inputs.batch_size
        chunk = self.batch_size or batch
        eps = [plan.budgets[n].eps for n in perturbed]
        sizes = [
            self.step_size if self.step_size is not None else self.relative_step() * e for e in eps
        ]
        loop = self._compiled_loop(plan, judge)
        seed = tf.constant([self.seed, 0], tf.int64)
        outputs: dict[str, list] = {n: [] for n in perturbed}
        fooled, traces = [], []
        starts = range(0, batch, chunk)
        for index, start in enumerate(
            tqdm(starts, disable=not self.progress, desc=self.name, unit="batch")
        ):
            stop = min(start + chunk, batch)
            xs = [inputs.tensors[n][start:stop] for n in names]
            labels = tf.nest.map_structure(lambda v, a=start, b=stop: v[a:b], plan.labels)
            x_adv, chunk_fooled, trace = loop(
                xs,
                labels,
                tf.constant(eps, tf.float64),
                tf.constant(sizes, tf.float64),
                tf.random.experimental.stateless_fold_in(seed, index),
            )
            for n, value in zip(perturbed, x_adv, strict=True):
                outputs[n].append(value)
            fooled.append(chunk_fooled.numpy())
            traces.append(trace.numpy() * (stop - start))
        results = {
            n: tf.concat(outputs[n], 0) if n in outputs else inputs.tensors[n] for n in names
        }
        x_adv = inputs.give_back(results, None)
        return AttackResult(
            x_adv=x_adv,
            fooled=np.concatenate(fooled),
            gradients=self.steps * self.restarts,
            loss_trace=np.sum(traces, axis=0) / batch,
        )

    def _compiled_loop(self, plan: _Plan, judge: bool):
        judge = judge or self.restarts > 1  # restarts are compared by their judged iterates
        inputs, objective = plan.inputs, plan.objective
        perturbed = plan.perturbed
        geometry = tuple((n, plan.budgets[n].norm, plan.budgets[n].bounds) for n in perturbed)
        key = (
            "attack",
            type(self),
            self._trace_settings(),
            id(objective),
            inputs.given,
            inputs.specs(),
            geometry,
            _label_key(plan.labels),
            judge,
        )
        cache = inputs.adapter.cache
        if key not in cache:
            cache[key] = self._build_loop(plan, judge)
        return cache[key]

    def _trace_settings(self) -> tuple:
        ignored = {"eps", "step_size", "seed", "batch_size", "progress", "budget", "bounds"}
        return tuple((k, repr(v)) for k, v in sorted(self._settings.items()) if k not in ignored)

    def _build_loop(self, plan: _Plan, judge: bool):
        """The compiled loop; `judge`: run a last forward pass to score the final iterate."""
        inputs, objective = plan.inputs, plan.objective
        names, perturbed = inputs.names, plan.perturbed
        budgets = [plan.budgets[n] for n in perturbed]
        rules = [self.step_rule(b.norm) for b in budgets]
        n_steps, restarts, random_start = self.steps, self.restarts, self.random_start
        targeted, keep_all = self.targeted, self.KEEP_BEST
        classes = _class_reader(objective)

        def attack_loss(leaves, y):
            """Per-sample attack loss (to maximise) and the model's outputs."""
            outputs = objective.forward(inputs.pack(leaves))
            per_sample = objective.per_sample(y, outputs)
            return (-per_sample if targeted else per_sample), outputs

        def loop(xs, y, eps, step_sizes, seed):
            count_trace("attack")
            clean = dict(zip(names, xs, strict=True))
            batch = tf.shape(xs[0])[0]
            truth = classes.truth(y)
            originals = [clean[n] for n in perturbed]
            eps_t = [tf.cast(eps[i], x.dtype) for i, x in enumerate(originals)]
            size_t = [tf.cast(step_sizes[i], x.dtype) for i, x in enumerate(originals)]
            # A coordinate-wise ball (Linf) meets the bounds in a box: computed once here, it
            # makes "project, then clip" a single clip per step.
            boxes = [
                (b.bounds.clip(x - e), b.bounds.clip(x + e)) if b.norm.coordinatewise else None
                for b, x, e in zip(budgets, originals, eps_t, strict=True)
            ]
            best = list(originals)
            best_score = tf.fill([batch], tf.constant(-np.inf, tf.float32))
            trace = tf.zeros([n_steps + 1], tf.float32)  # the last restart's, stacked

            def evaluate(adv):
                leaves = {**clean, **dict(zip(perturbed, adv, strict=True))}
                with tf.GradientTape() as tape:
                    tape.watch(adv)
                    loss, outputs = attack_loss(leaves, y)
                    total = tf.reduce_sum(loss)
                grads = tape.gradient(total, adv, unconnected_gradients="zero")
                # The bookkeeping waits for the backward pass instead of running beside it:
                # on a few CPU cores, one small op next to a convolution delays all of it.
                with tf.control_dependencies(grads):
                    loss = tf.identity(loss)
                    fooled = classes.fooled(outputs, truth, targeted)
                return loss, fooled, grads

            def keep_best(adv, loss, fooled, best, best_score):
                score = tf.where(fooled, tf.constant(np.inf, tf.float32), tf.cast(loss, tf.float32))
                better = score > best_score
                best = [_select(better, a, b) for a, b in zip(adv, best, strict=True)]
                return best, tf.where(better, score, best_score)

            def start(restart_seed):
                """The first iterate: x, or a uniform draw in the ball, clipped."""
                adv = []
                for i, x in enumerate(originals):
                    delta = tf.zeros_like(x)
                    if random_start:
                        delta = budgets[i].norm.random_init(
                            tf.shape(x),
                            eps_t[i],
                            tf.random.experimental.stateless_fold_in(restart_seed, i),
                            x.dtype,
                        )
                    adv.append(budgets[i].bounds.clip(x + delta))
                return adv

            def step(t, adv, states, best, best_score, trace):
                """grad -> step rule -> delta + size * direction -> project -> clip."""
                loss, fooled, grads = evaluate(adv)
                trace = _record(trace, t, loss)
                if keep_all:
                    best, best_score = keep_best(adv, loss, fooled, best, best_score)
                new_adv, new_states = [], []
                for i, (x, budget, rule) in enumerate(zip(originals, budgets, rules, strict=True)):
                    grad = grads[i]
                    if boxes[i] is None:
                        grad = _mask_blocked(grad, adv[i], budget.bounds)
                    direction, state = rule.update(grad, states[i])
                    stepped = adv[i] + size_t[i] * tf.cast(direction, x.dtype)
                    if boxes[i] is None:
                        delta = budget.norm.project(stepped - x, eps_t[i])
                        new_adv.append(budget.bounds.clip(x + delta))
                    else:
                        new_adv.append(tf.clip_by_value(stepped, *boxes[i]))
                    new_states.append(state)
                return t + 1, new_adv, new_states, best, best_score, trace

            def restart(r, best, best_score, trace):
                adv = start(tf.random.experimental.stateless_fold_in(seed, r))
                states = [rule.init(x) for rule, x in zip(rules, originals, strict=True)]
                trace = tf.TensorArray(tf.float32, size=n_steps + 1, element_shape=[])
                _, adv, _, best, best_score, trace = tf.while_loop(
                    lambda t, *_: t < n_steps,
                    step,
                    (tf.constant(0), adv, states, best, best_score, trace),
                )
                if not judge:  # `__call__`: the last iterate, unless an earlier one fooled
                    if keep_all:
                        fooled = tf.math.is_inf(best_score)
                        adv = [_select(fooled, b, a) for a, b in zip(adv, best, strict=True)]
                    return r + 1, adv, tf.zeros_like(best_score), trace.stack()
                leaves = {**clean, **dict(zip(perturbed, adv, strict=True))}
                loss, outputs = attack_loss(leaves, y)
                fooled = classes.fooled(outputs, truth, targeted)
                trace = _record(trace, n_steps, loss)
                if keep_all:
                    best, best_score = keep_best(adv, loss, fooled, best, best_score)
                else:  # the last iterate, whatever it scores
                    best = adv
                    best_score = tf.where(fooled, np.inf, tf.cast(loss, tf.float32))
                return r + 1, best, best_score, trace.stack()

            _, best, best_score, trace = tf.while_loop(
                lambda r, *_: r < restarts,
                restart,
                (tf.constant(0), best, best_score, trace),
            )
            return best, tf.math.is_inf(best_score), trace

        specs = list(inputs.specs())
        signature = [
            specs,
            _label_key(plan.labels)[1],
            tf.TensorSpec([len(perturbed)], tf.float64),
            tf.TensorSpec([len(perturbed)], tf.float64),
            tf.TensorSpec([2], tf.int32),
        ]
        # No autograph: the loop is explicit tf.while_loops, and tracing stays fast.
        return compile_once(loop, signature, autograph=False)


def _record(trace: tf.TensorArray, index: Any, loss: tf.Tensor) -> tf.TensorArray:
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


def _select(mask: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per sample: `a` where `mask` ([B]) holds, else `b` (inputs have a static rank)."""
    return tf.where(tf.reshape(mask, [-1] + [1] * (a.shape.rank - 1)), a, b)


def _label_key(labels: Any):
    specs = tf.nest.map_structure(
        lambda v: tf.TensorSpec((None, *np.shape(v)[1:]), tf.as_dtype(np.asarray(v).dtype)),
        labels,
    )
    return (str(tf.nest.map_structure(lambda _: 0, specs)), tuple(tf.nest.flatten(specs))), specs


class _ClassReader:
    """Reads predicted classes from the objective's outputs and compares them to labels."""

    def __init__(self, objective: Objective):
        term = objective.terms[0] if len(objective.terms) == 1 else None
        self.term = term
        self.threshold = 0.0
        if term is not None and not objective.use_logits:
            activation = objective.adapter.final_activation(objective.output)
            self.threshold = 0.5 if activation == "sigmoid" else 0.0

    def truth(self, y: Any) -> dict[str, tf.Tensor] | None:
        """The labels as `[B]` int64 classes, read once per batch rather than once per step:
        "binary" (label > 0.5, for a one-unit output) and "classes" (argmax of one-hot rows,
        else the ids); `fooled` uses the one that fits the output."""
        if self.term is None:
            return None
        labels = tf.convert_to_tensor(y)
        one_hot = labels.shape.rank is not None and labels.shape.rank >= 2
        if one_hot and labels.shape[-1] != 1:
            classes = tf.argmax(labels, axis=-1)
        else:
            classes = tf.reshape(tf.cast(labels, tf.int64), [-1])
        binary = tf.cast(tf.reshape(tf.cast(labels, tf.float32), [-1]) > 0.5, tf.int64)
        return {"binary": binary, "classes": classes}

    def fooled(self, outputs: Any, truth: dict | None, targeted: bool) -> tf.Tensor:
        """Per sample: the prediction differs from the label (equals it when `targeted`)."""
        if truth is None:  # several loss terms: no single class to flip
            batch = tf.shape(tf.nest.flatten(outputs)[0])[0]
            return tf.zeros([batch], tf.bool)
        out = outputs if self.term.key is None else outputs[self.term.key]
        if out.shape[-1] == 1:
            predicted = tf.cast(tf.reshape(out, [-1]) > self.threshold, tf.int64)
            labels = truth["binary"]
        else:
            predicted = tf.argmax(out, axis=-1)
            labels = truth["classes"]
        return tf.equal(predicted, labels) if targeted else tf.not_equal(predicted, labels)


def _class_reader(objective: Objective) -> _ClassReader:
    return _ClassReader(objective)


__all__ = ["Attack", "AttackResult", "IterativeAttack"]
