"""`Attack`: settings, validation, the plan, and the one documented extension point.

An attack's constructor takes settings only (never the model or data), so a YAML mapping
becomes an attack and `get_config()` round-trips. Calling it validates everything first
(`Attack.plan`: inputs, labels, loss, the threat model per input) and then hands the
validated `Plan` to `Attack.execute`, the hook every attack family implements:

- `advgrad.attacks.IterativeAttack` (FGSM, BIM, PGD, MI-FGSM, and any step rule): the
  compiled gradient loop of `advgrad/attacks/loop.py`;
- a family that does not fit that loop (a step-size schedule that sees the loss, a
  score-based search with no gradient, a minimal-norm optimiser) subclasses `Attack`,
  declares its settings in `DEFAULTS`/`CHECKS`, and implements `execute(plan, judge=...)`
  with the shared pieces: `advgrad.gradients.value_and_grad` for losses and gradients,
  `advgrad.norms`/`advgrad.budget` for the geometry, `advgrad.predictions.Classes` for
  "fooled", `advgrad._compile.compile_once` to compile it.

With ``strategy=`` (a `tf.distribute.Strategy`) on `run` or `plan`, the attacks whose whole
run on a chunk is one graph (`IterativeAttack`: FGSM, BIM, PGD, MI-FGSM, APGD, APGD-T) split
each chunk over the strategy's replicas (`advgrad.replicas.Replicas`), with the same result
as without it; the others (Square, FAB, CW, DeepFool, FMN, EOT) accept it and run as without
it, on the default device.

>>> import advgrad
>>> attack = advgrad.attacks.PGD(eps=0.1, steps=10)
>>> attack.get_config()["steps"], attack.replace(eps=0.2).eps
(10, 0.2)
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import functools
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from advgrad import losses, norms
from advgrad._compile import compile_once
from advgrad._validation import (
    SIZE_LIMIT,
    ArgumentError,
    FlaggedWarning,
    check_bool,
    check_eps,
    check_int,
    check_seed,
    invalid,
)
from advgrad.budget import (
    Bounds,
    Budget,
    resolve_budgets,
    unbounded_message,
    unbounded_on_unit_data,
)
from advgrad.gradients import Inputs, label_specs, prepare_inputs, resolve_labels, spec_key
from advgrad.models import ModelAdapter
from advgrad.objective import Objective
from advgrad.predictions import Classes
from advgrad.replicas import Replicas


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
    """A validated call of an attack: what `Attack.execute` receives.

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


UNTRACED = frozenset({"eps", "step_size", "seed", "batch_size", "progress", "budget", "bounds"})
"""Settings that reach a compiled attack as tensors or through the plan, so changing them
does not retrace it (`Attack.compiled` leaves them out of its cache key)."""


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


def _check_classifier(value):
    if value is None or isinstance(value, str):
        return value
    return check_int("classifier", value, low=0)


def setting(check, argument: str, **options: Any):
    """A `CHECKS` entry: one of `advgrad._validation`'s checks, bound to a setting's name.

    >>> from advgrad._validation import check_int
    >>> setting(check_int, "steps", low=1)(10)
    10
    """
    return functools.partial(check, argument, **options)


class Attack(abc.ABC):
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
        classifier: for a model with several outputs, the output (name or index) whose
            predicted class decides whether a sample is fooled; None: the only output with a
            classification loss (an error when there are several).
        jit_compile: compile the attack's graph with XLA (``tf.function(jit_compile=True)``;
            every registered attack compiles). Off by default: it can pay on a GPU with a
            large model; on a CPU it is slower today (README, "Mixed precision and XLA").
            XLA compiles again for each new batch shape, draws other random numbers for
            the same seed, and rounds a little differently, so x_adv matches the default's
            to float tolerance only without random draws on unsaturated losses; robust
            accuracy is the same up to noise. A model XLA cannot compile raises
            `ArgumentError` naming `jit_compile`, on the first call, before any result.
            `graph_fn` (adversarial training) runs in its caller's graph, which decides.
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
        "classifier": None,
        "jit_compile": False,
    }
    CHECKS: ClassVar[dict[str, Any]] = {
        "eps": check_eps,
        "norm": _check_norm,
        "bounds": _check_bounds,
        "budget": _check_budget,
        "targeted": setting(check_bool, "targeted"),
        "loss": _check_loss,
        "seed": check_seed,  # the one rule: an int in [0, 2**63)
        "batch_size": setting(check_int, "batch_size", low=1, high=SIZE_LIMIT, optional=True),
        "progress": setting(check_bool, "progress"),
        "classifier": _check_classifier,
        "jit_compile": setting(check_bool, "jit_compile"),
    }

    FIXED: ClassVar[dict[str, Any]] = {}  # settings an attack pins (not arguments)
    NORMS: ClassVar[tuple[str, ...]] = ("linf", "l2", "l1")  # the norms it can attack in
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
        self._check_norm_supported(norms.get(self.norm))

    @classmethod
    def _check_norm_supported(cls, norm: norms.Norm) -> None:
        name = norm.get_config()["name"]
        if name not in cls.NORMS:
            expected = f"a norm {cls.__name__} attacks in: one of {list(cls.NORMS)}"
            raise invalid("norm", expected, name)

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
        """A copy with some settings changed (validated again). A copy with the same bounds
        shares the attack's one warning about unbounded [0, 1] data (`run`)."""
        return self._sharing_warning(type(self)(**{**self._settings, **changes}), changes)

    def _sharing_warning(self, copy: Attack, changed: Any, bounds: Any = ("bounds", "budget")):
        """`copy`, sharing this attack's one warning about unbounded [0, 1] data unless the
        settings `changed` include one of `bounds` (those that set its threat model)."""
        if not set(bounds) & set(changed):
            copy.__dict__["_unbounded_state"] = self._unbounded_warning()
        return copy

    def for_classes(self, classes: int) -> Attack:
        """This attack with the settings it runs with on a model of `classes` classes
        (`advgrad.evaluate` records these): ``n_target_classes`` at most classes - 1.

        >>> import advgrad
        >>> advgrad.get_attack("fab-t").for_classes(3).n_target_classes
        2
        """
        targets = self._settings.get("n_target_classes")
        if targets is None or targets < classes:
            return self
        return self.replace(n_target_classes=max(classes - 1, 1))

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

        On a floating input whose values all lie in [0, 1], an attack without bounds there
        warns once (`FlaggedWarning`, as `run` does): its inputs may leave [0, 1].
        """
        plan = self.plan(model, x, y, budget=budget, eps=eps)
        self.warn_unbounded(plan)
        return self.execute(plan, judge=False).x_adv

    def run(
        self,
        model: Any,
        x: Any,
        y: Any = None,
        *,
        budget: Any = None,
        eps: float | None = None,
        strategy: Any = None,
    ) -> AttackResult:
        """Attack `x` (labels `y`; None: the model's predictions) and report the outcome.

        Args:
            model: a keras.Model (or a callable on tensors) giving logits or probabilities.
            x: inputs (array, tensor, list or dict) matching the model's inputs.
            y: labels (untargeted) or targets (targeted); None: predicted labels.
            budget: overrides the `budget` setting for this call.
            eps: overrides the `eps` setting for this call (no retracing).
            strategy: a `tf.distribute.Strategy` (MirroredStrategy,
                MultiWorkerMirroredStrategy) whose replicas each chunk is split over, with
                the same result as without one; None (default): the default device. Only
                the attacks that run as one graph per chunk use it (FGSM, BIM, PGD, MI-FGSM,
                APGD, APGD-T); the others run as without it.

        Raises:
            ValueError: bad input, named, before any work starts.

        Warns:
            FlaggedWarning: once per attack (and its `replace` copies with the same bounds:
                one per batch in a loop, say), when a floating input whose values all
                lie in [0, 1] is left unbounded (as `advgrad.evaluate` warns; not again
                inside it): pass ``bounds=(0, 1)``.
        """
        plan = self.plan(model, x, y, budget=budget, eps=eps, strategy=strategy)
        self.warn_unbounded(plan)
        return self.execute(plan)

    def warn_unbounded(self, plan: Plan, *, stacklevel: int = 2) -> None:
        """`FlaggedWarning` (once per attack and its `replace` copies with the same bounds)
        when the plan leaves unbounded an input whose values all lie in [0, 1]; not
        inside `unit_data_checked` (the caller checked and warned). `run`, `__call__` and
        `advgrad.generate` call it on each plan; `stacklevel` as `warnings.warn`'s, from
        the caller of this method."""
        state = self._unbounded_warning()
        if _UNIT_DATA_CHECKED.get() or state["warned"]:
            return
        label = self.name or type(self).__name__
        if unbounded_on_unit_data({label: plan.budgets}, plan.inputs.tensors):
            state["warned"] = True
            warnings.warn(unbounded_message([label]), FlaggedWarning, stacklevel=stacklevel + 1)

    def _unbounded_warning(self) -> dict[str, bool]:
        """Whether this attack warned about unbounded [0, 1] data (shared with its copies)."""
        return self.__dict__.setdefault("_unbounded_state", {"warned": False})

    # ------------------------------------------------------------ the extension point
    @abc.abstractmethod
    def execute(self, plan: Plan, *, judge: bool = True) -> AttackResult:
        """Attack a validated `Plan`: the one method an attack family implements.

        `__call__` and `run` validate everything first (`plan`) and then call this, so an
        implementation may assume valid inputs, labels, loss and budgets. It must return an
        `AttackResult` whose ``x_adv`` has the caller's layout (``plan.inputs.give_back``),
        stays in every input's budget and bounds, leaves frozen inputs unchanged, and is
        reproducible from the ``seed`` setting; it should honour ``batch_size`` and
        ``progress``.

        Args:
            plan: The validated call (`Plan`).
            judge: True (from `run`): ``fooled`` must be the model's verdict on the returned
                ``x_adv``. False (from `__call__`, which returns only ``x_adv``): an attack
                may skip the forward pass that only judges its final iterate.
        """

    def graph_fn(self, plan: Plan) -> Callable[..., list[tf.Tensor]]:
        """The attack as a graph function ``perturb(xs, y, seed) -> adversarial perturbed
        inputs`` to call inside another `tf.function` (a training step): only families whose
        whole attack is one graph have it (`advgrad.attacks.IterativeAttack`: FGSM, BIM, PGD,
        MI-FGSM, APGD).

        Raises:
            ArgumentError: This attack does not run inside a graph (named, with the fix).
        """
        expected = (
            "an attack that runs inside a compiled graph (an IterativeAttack: fgsm, bim, pgd, "
            "mifgsm, apgd, apgd-t)"
        )
        raise invalid("attack", expected, f"{type(self).__name__} ({self.name!r})")

    # ------------------------------------------------------ shared by the families
    def chunks(self, plan: Plan) -> Iterator[Chunk]:
        """The plan in `batch_size` slices (one slice when None), under a tqdm bar when
        `progress` is set: what an `execute` loops over."""
        inputs = plan.inputs
        batch = inputs.batch_size
        size = self.batch_size or batch
        seed = tf.constant([self.seed, 0], tf.int64)
        starts = range(0, batch, size)
        for index, start in enumerate(
            tqdm(starts, disable=not self.progress, desc=self.name, unit="batch")
        ):
            stop = min(start + size, batch)
            yield Chunk(
                index=index,
                start=start,
                stop=stop,
                xs=[inputs.tensors[n][start:stop] for n in inputs.names],
                labels=tf.nest.map_structure(lambda v, a=start, b=stop: v[a:b], plan.labels),
                seed=tf.random.experimental.stateless_fold_in(seed, index),
            )

    @staticmethod
    def assemble(plan: Plan, pieces: Mapping[str, list[tf.Tensor]]) -> Any:
        """``x_adv`` in the caller's layout from each perturbed input's chunks (in order);
        the other inputs as given."""
        inputs = plan.inputs
        values = {
            n: tf.concat(pieces[n], 0) if n in pieces else inputs.tensors[n] for n in inputs.names
        }
        return inputs.give_back(values, None)

    def compiled(self, plan: Plan, make_body: Callable[[], Any], *key: Any) -> Any:
        """`make_body()`'s ``run``, compiled once per plan signature and cached on the model.

        The body has ``run`` (what is traced) and ``signature(labels)`` (its input specs).
        The cache key holds what shapes the graph: the attack's class and settings (but
        `UNTRACED`), the objective, the inputs' layout and specs, each perturbed input's norm
        and bounds, the labels' specs, and `key`.
        """
        inputs = plan.inputs
        settings = tuple(
            (k, repr(v)) for k, v in sorted(self._settings.items()) if k not in UNTRACED
        )
        geometry = tuple((n, plan.budgets[n].norm, plan.budgets[n].bounds) for n in plan.perturbed)
        full_key = (
            "attack",
            type(self),
            settings,
            id(plan.objective),
            inputs.given,
            inputs.specs(),
            geometry,
            spec_key(label_specs(plan.labels)),
            *key,
        )
        cache = inputs.adapter.cache
        if full_key not in cache:
            body = make_body()
            # No autograph: the bodies are explicit tf.while_loops, and tracing stays fast.
            # `jit_compile` is a setting, so it is in the key: XLA and plain graphs coexist.
            fn = compile_once(
                body.run,
                body.signature(plan.labels),
                autograph=False,
                jit_compile=True if self.jit_compile else None,
            )
            cache[full_key] = _XLA(fn, self) if self.jit_compile else fn
        return cache[full_key]

    def plan(
        self,
        model: Any,
        x: Any,
        y: Any = None,
        *,
        budget: Any = None,
        eps: float | None = None,
        strategy: Any = None,
    ) -> Plan:
        """Validate a call (as `run` takes it) into a `Plan`, before any work starts.

        Raises:
            ValueError: bad input, named.
        """
        Replicas.of(strategy)  # raises, naming `strategy`
        if self.targeted and y is None:
            raise invalid("y", "the target labels (targeted=True)", y)
        given, leaves = ModelAdapter.of(model).split_inputs(x)
        budgets = self.budgets(tuple(leaves), budget=budget, eps=eps)
        perturbed = [n for n, b in budgets.items() if b is not None]
        for name in perturbed:
            _check_perturbable(given.label("x", name), name, leaves[name], budgets[name])
        # Only the perturbed inputs are differentiated: a frozen input may be of any dtype.
        inputs = prepare_inputs(model, x, wrt=perturbed)
        objective = Objective.resolve(inputs.adapter, self.loss, None)
        for name in perturbed:
            value = budgets[name]
            if not value.bounds.is_unbounded and not value.bounds.contains(
                inputs.tensors[name], atol=1e-6
            ):
                label = inputs.given.label("x", name)
                expected = (
                    f"values within the bounds [{_fmt(value.bounds.low)}, "
                    f"{_fmt(value.bounds.high)}]"
                )
                received = (
                    f"values from {np.min(inputs.tensors[name]):.4g} to "
                    f"{np.max(inputs.tensors[name]):.4g}"
                )
                raise ArgumentError(
                    label, f"expected {expected}, received {received}.", expected=expected
                )
        labels = resolve_labels(objective, inputs, y)
        classes = Classes.of_objective(objective, self.classifier)
        return Plan(inputs, objective, labels, budgets, classes, strategy)

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
            eps = check_eps(eps)
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
        budgets = resolve_budgets(names, budget, eps=radius, norm=self.norm, bounds=bounds)
        for value in budgets.values():
            if value is not None:
                self._check_norm_supported(value.norm)
        return budgets


class _XLA:
    """A ``jit_compile=True`` attack function whose XLA compilation errors name the
    setting: XLA compiles on the first call of each input shape, before any work is done, and
    an op it cannot compile (in the model, say) is reported as `ArgumentError` on
    `jit_compile` with the fix; any other error passes through unchanged."""

    def __init__(self, fn: Callable[..., Any], attack: Attack):
        self._fn, self._name = fn, f"{type(attack).__name__} ({attack.name!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._fn(*args, **kwargs)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            message = str(error)
            if not any(mark in message for mark in _XLA_MARKS):
                raise
            first = next((line for line in message.splitlines() if line.strip()), message)
            expected = "jit_compile=False for an attack or a model that XLA cannot compile"
            reason = (
                f"expected {expected}, received jit_compile=True: XLA could not compile "
                f"{self._name} on this model ({first.strip()[:300]}). Pass "
                "jit_compile=False (the default)."
            )
            raise ArgumentError("jit_compile", reason, expected=expected) from error

    def __getattr__(self, key: str) -> Any:  # the tf.function's own attributes
        if key == "_fn":
            raise AttributeError(key)
        return getattr(self._fn, key)


_XLA_MARKS = ("XLA", "tf2xla", "compile-time constant", "XlaMustCompile")


def _check_perturbable(label: str, name: str, value: Any, budget: Budget) -> None:
    """A perturbed input must be floating point, and its dtype must hold the radius."""
    dtype = tf.as_dtype(value.dtype)
    if not dtype.is_floating:
        reason = (
            f"expected a floating-point input to perturb, received dtype {dtype.name} for "
            f"input {name!r}. Integer inputs (such as embedding ids) cannot be perturbed: "
            f"freeze it with budget={{{name!r}: None, ...}} (a Budget for each input to "
            "perturb)."
        )
        raise ArgumentError(label, reason, expected="a floating-point input to perturb")
    limit = headroom(dtype)
    if budget.eps > limit:
        raise invalid(
            "eps", f"a radius that {dtype.name} inputs can hold (<= {limit:.3g})", budget.eps
        )


_UNIT_DATA_CHECKED = contextvars.ContextVar("advgrad_unit_data_checked", default=False)


@contextlib.contextmanager
def unit_data_checked() -> Iterator[None]:
    """Inside it, attack calls do not look for unbounded [0, 1] data: the caller (such as
    `advgrad.evaluate`) looked at the whole data and warned once itself.

    >>> with unit_data_checked():
    ...     _UNIT_DATA_CHECKED.get()
    True
    """
    token = _UNIT_DATA_CHECKED.set(True)
    try:
        yield
    finally:
        _UNIT_DATA_CHECKED.reset(token)


def headroom(dtype: Any) -> float:
    """The largest radius or step size an input of `dtype` is attacked with: steps, random
    starts and boxes reach a few times it, so it stays a factor 16 below overflow."""
    return float(tf.as_dtype(dtype).max) / 16


def _fmt(value: Any) -> str:
    array = np.asarray(value)
    return f"{float(array):g}" if array.ndim == 0 else f"per-feature array {array.shape}"


__all__ = [
    "UNTRACED",
    "Attack",
    "AttackResult",
    "Chunk",
    "Plan",
    "headroom",
    "setting",
    "unit_data_checked",
]
