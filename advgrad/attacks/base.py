"""`Attack`: settings, validation, the plan, and the one driver with its one hook.

An attack's constructor takes settings only (never the model or data), so a YAML mapping
becomes an attack and `get_config()` round-trips. Every call goes through one driver:
`Attack.plan` validates everything first (inputs, labels, loss, the threat model per input),
then `Attack.execute` cuts the plan into chunks, hands each to the family's chunk function,
checks each result against the contract (finite rows, budget, bounds, frozen inputs) and
assembles the `AttackResult`. A family implements one hook, `Attack.attack_chunks(plan,
judge=...)`, returning ``attack_chunk(chunk) -> ChunkResult`` (`advgrad.attacks.plan`):

- `advgrad.attacks.IterativeAttack` (FGSM, BIM, PGD, MI-FGSM, APGD, and any step rule): the
  compiled gradient loop of `advgrad/attacks/loop.py`, whose body has public hooks;
- a family that does not fit that loop (a score-based search with no gradient, a
  minimal-norm optimiser) subclasses `Attack`, declares its settings in `DEFAULTS`/`CHECKS`
  and its capabilities (`ONE_GRAPH`, `MINIMAL_NORMS`, `NORMS`), and implements
  `attack_chunks` with the shared pieces: `advgrad.gradients.value_and_grad` for losses and
  gradients, `advgrad.norms`/`advgrad.budget` for the geometry,
  `advgrad.predictions.Classes` for "fooled", `Attack.compiled` to compile it.

With ``strategy=`` (a `tf.distribute.Strategy`) on `run` or `plan`, the attacks that declare
``ONE_GRAPH`` (their whole run on a chunk is one graph) split each chunk over the strategy's
replicas (`advgrad.replicas.Replicas`), with the same result as without it; the others accept
it and run as without it, on the default device.

>>> import advgrad
>>> attack = advgrad.attacks.PGD(eps=0.1, steps=10)
>>> attack.get_config()["steps"], attack.replace(eps=0.2).eps
(10, 0.2)
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from advgrad import norms
from advgrad._compile import compile_once
from advgrad._validation import (
    SIZE_LIMIT,
    FlaggedWarning,
    check_bool,
    check_eps,
    check_int,
    check_seed,
    invalid,
)
from advgrad.attacks.plan import (
    AttackResult,
    Chunk,
    ChunkResult,
    Plan,
    select_rows,
)
from advgrad.attacks.validation import (
    UNTRACED,
    XLAErrors,
    check_bounds,
    check_budget,
    check_classifier,
    check_loss,
    check_norm,
    check_perturbable,
    check_within_bounds,
    headroom,
    setting,
    unit_data_checked,
    unit_data_was_checked,
)
from advgrad.budget import (
    Budget,
    resolve_budgets,
    unbounded_message,
    unbounded_on_unit_data,
)
from advgrad.gradients import label_specs, prepare_inputs, resolve_labels, spec_key
from advgrad.models import ModelAdapter
from advgrad.objective import Objective
from advgrad.predictions import Classes
from advgrad.replicas import Replicas


class Attack:
    """Base class: settings, validation, the one driver (`execute`), the registry name.

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
        "norm": check_norm,
        "bounds": check_bounds,
        "budget": check_budget,
        "targeted": setting(check_bool, "targeted"),
        "loss": check_loss,
        "seed": check_seed,  # the one rule: an int in [0, 2**63)
        "batch_size": setting(check_int, "batch_size", low=1, high=SIZE_LIMIT, optional=True),
        "progress": setting(check_bool, "progress"),
        "classifier": check_classifier,
        "jit_compile": setting(check_bool, "jit_compile"),
    }

    FIXED: ClassVar[dict[str, Any]] = {}  # settings an attack pins (not arguments)
    NORMS: ClassVar[tuple[str, ...]] = ("linf", "l2", "l1")  # the norms it can attack in
    KEEP_BEST: ClassVar[bool] = True  # return the best iterate per sample, not the last
    # Capabilities it declares (what the workflows read, never a list of classes):
    # ONE_GRAPH: its whole run on a chunk is one graph: `graph_fn` (training, generation's
    # compiled step), and chunks split over a strategy's replicas. MINIMAL_NORMS: it finds
    # each sample's smallest perturbation (`AttackResult.norms`: a curve from one run).
    ONE_GRAPH: ClassVar[bool] = False
    MINIMAL_NORMS: ClassVar[bool] = False
    GRADIENTS_ROUNDING: ClassVar[str] = "nearest"  # of `AttackResult.gradients`, or "up"

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
                the attacks that declare ``ONE_GRAPH`` (one graph per chunk) use it; the
                others run as without it.

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
        if unit_data_was_checked() or state["warned"]:
            return
        label = self.name or type(self).__name__
        if unbounded_on_unit_data({label: plan.budgets}, plan.inputs.tensors):
            state["warned"] = True
            warnings.warn(unbounded_message([label]), FlaggedWarning, stacklevel=stacklevel + 1)

    def _unbounded_warning(self) -> dict[str, bool]:
        """Whether this attack warned about unbounded [0, 1] data (shared with its copies)."""
        return self.__dict__.setdefault("_unbounded_state", {"warned": False})

    # ------------------------------------------------------------ the one driver
    def execute(self, plan: Plan, *, judge: bool = True) -> AttackResult:
        """Attack a validated `Plan`: the one driver of every call of every attack (`run`
        and `__call__` call it after `plan`; a family does not override it). It builds the
        family's chunk function once (`attack_chunks`), runs it on each `batch_size` slice
        (`chunks`), checks each `ChunkResult` against the contract (`enforce`), assembles the
        chunks in the caller's layout with frozen inputs as given (`assemble`) and counts
        the evaluations (`GRADIENTS_ROUNDING`, `passes`).

        Args:
            plan: The validated call (`Plan`).
            judge: True (from `run`): ``fooled`` is the model's verdict on the returned
                ``x_adv``. False (from `__call__`, which returns only ``x_adv``): a family may
                skip the forward pass that only judges its final iterate.
        """
        attack_chunk = self.attack_chunks(plan, judge=judge)
        pieces: dict[str, list] = {n: [] for n in plan.perturbed}
        fooled, queries, gradients, traces, sizes = [], [], [], [], []
        for chunk in self.chunks(plan):
            result = self.enforce(plan, chunk, attack_chunk(chunk))
            for name, value in zip(plan.perturbed, result.x_adv, strict=True):
                pieces[name].append(value)
            fooled.append(np.asarray(result.fooled))
            queries.append(np.asarray(result.queries))
            counted = result.queries if result.gradients is None else result.gradients
            gradients.append(np.asarray(counted))
            if result.loss_trace is not None:
                traces.append(np.asarray(result.loss_trace) * chunk.size)
            if result.norms is not None:
                sizes.append(np.asarray(result.norms).astype(np.float64))
        per_sample = np.concatenate(gradients).astype(np.int64)
        passes = self.passes
        return AttackResult(
            x_adv=self.assemble(plan, pieces),
            fooled=np.concatenate(fooled),
            gradients=int(_ROUNDING[self.GRADIENTS_ROUNDING](per_sample.mean())) * passes,
            queries=np.concatenate(queries).astype(np.int64) * passes,
            loss_trace=np.sum(traces, axis=0) / plan.inputs.batch_size if traces else None,
            norms=np.concatenate(sizes) if sizes else None,
        )

    def enforce(self, plan: Plan, chunk: Chunk, result: ChunkResult) -> ChunkResult:
        """The contract, checked in one place for every attack, on one chunk's result: a
        sample whose row is not finite (a model that overflows can lead an attack to NaN)
        gets its clean input back and is not fooled; so does a sample outside its budget or
        bounds (`advgrad.Budget.contains`, with its rounding slack), a bug in the attack
        that a `RuntimeWarning` names. Frozen inputs are never taken from a family."""
        clean = dict(zip(plan.inputs.names, chunk.xs, strict=True))
        originals = [clean[n] for n in plan.perturbed]
        # On the host, in NumPy: a handful of eager ops per chunk would cost more than the
        # check (FGSM on the digits CNN: 8 ms of 50).
        advs = [np.asarray(a) for a in result.x_adv]
        finite = np.logical_and.reduce([_finite_rows(a) for a in advs])
        keep = finite.copy()
        for name, x, a in zip(plan.perturbed, originals, advs, strict=True):
            x = np.asarray(x)
            keep &= plan.budgets[name].contains(x, a) | ~_finite_rows(x)
        if not keep.all():
            if not (keep | ~finite).all():
                label = self.name or type(self).__name__
                warnings.warn(
                    f"{label} returned {int(np.sum(~keep & finite))} sample(s) outside "
                    "their budget or bounds: a bug in the attack; they get their clean "
                    "input back and count as not fooled.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            mask = tf.constant(keep)
            result.x_adv = [
                select_rows(mask, tf.constant(a), x) for a, x in zip(advs, originals, strict=True)
            ]
            result.fooled = np.asarray(result.fooled) & keep
            if result.norms is not None:
                result.norms = np.where(keep, np.asarray(result.norms), np.inf)
        return result

    # ------------------------------------------------------------ the extension point
    def attack_chunks(self, plan: Plan, *, judge: bool) -> Callable[[Chunk], ChunkResult]:
        """The one hook an attack family implements: a function that attacks one `Chunk`.

        Called once per `execute`, with a validated plan (inputs, labels, loss and budgets
        checked by `plan`): build (or fetch: `compiled`) what the chunks share here, and
        return ``attack_chunk(chunk) -> ChunkResult`` with one value per sample. It must be
        reproducible from ``chunk.seed``; the driver does the rest: slicing, progress,
        finite rows, the budget and bounds check, frozen inputs, the caller's layout and the
        counts.

        Args:
            plan: The validated call (`Plan`).
            judge: Whether ``fooled`` must be the model's verdict on the returned rows
                (`execute`).

        Raises:
            NotImplementedError: The class implements neither this hook nor (as attacks
                written before it did) its own `execute`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} implements no attack_chunks(plan, judge=...): the hook "
            "of advgrad.attacks.Attack that attacks one chunk"
        )

    @property
    def passes(self) -> int:
        """Model passes per evaluation its chunk function counts (EOT: its `samples`)."""
        return 1

    def graph_fn(self, plan: Plan) -> Callable[..., list[tf.Tensor]]:
        """The attack as a graph function ``perturb(xs, y, seed) -> adversarial perturbed
        inputs`` to call inside another `tf.function` (a training step): only attacks that
        declare ``ONE_GRAPH`` have it (`advgrad.attacks.IterativeAttack`).

        Raises:
            ArgumentError: This attack does not run inside a graph (named, with the fix).
        """
        from advgrad.attacks.registry import list_attacks, registered_class

        graphs = [n for n in list_attacks() if registered_class(n).ONE_GRAPH]
        expected = f"an attack that runs inside a compiled graph (ONE_GRAPH: {', '.join(graphs)})"
        raise invalid("attack", expected, f"{type(self).__name__} ({self.name!r})")

    # ------------------------------------------------------ shared by the families
    def chunks(self, plan: Plan) -> Iterator[Chunk]:
        """The plan in `batch_size` slices (one slice when None), under a tqdm bar when
        `progress` is set: what `execute` loops over."""
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
            cache[full_key] = XLAErrors(fn, self) if self.jit_compile else fn
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
            check_perturbable(given.label("x", name), name, leaves[name], budgets[name])
        # Only the perturbed inputs are differentiated: a frozen input may be of any dtype.
        inputs = prepare_inputs(model, x, wrt=perturbed)
        objective = Objective.resolve(inputs.adapter, self.loss, None)
        for name in perturbed:
            check_within_bounds(inputs.given.label("x", name), inputs.tensors[name], budgets[name])
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
        budget = check_budget(self.budget if budget is None else budget)
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


_ROUNDING = {"nearest": np.round, "up": np.ceil}

__all__ = [
    "UNTRACED",
    "Attack",
    "AttackResult",
    "Chunk",
    "ChunkResult",
    "Plan",
    "headroom",
    "setting",
    "unit_data_checked",
]


def _finite_rows(x: np.ndarray) -> np.ndarray:
    """Per sample (``[B]``, bool): every value of `x` (``[B, ...]``) is finite (NumPy)."""
    return np.isfinite(x.reshape(len(x), -1)).all(axis=1)
