"""The report's flags: signs that a robust accuracy is overestimated (the "sanity flags").

Each check is a small function returning a `Flag` (``code``, ``message``, ``advice``) or
None. `run_all` runs them on the first samples of an evaluation and its `Report`;
`advgrad.evaluate` calls it when ``sanity=True``. The checks follow Carlini et al.,
"On Evaluating Adversarial Robustness" (2019) and Athalye, Carlini & Wagner, "Obfuscated
Gradients Give a False Sense of Security" (ICML 2018):

- zero, NaN or tiny input gradients on many samples (gradient masking, saturated softmax);
- robust accuracy that stays high although eps covers the whole input range, or that goes
  *up* as eps grows;
- a single-step attack stronger than an iterative one at the same eps;
- random noise in the eps ball stronger than the gradient attacks;
- an attack loss that does not increase over the iterations;
- randomized outputs (two forward passes on the same inputs differ);
- non-finite model outputs (NaN or inf), counted neither correct nor robust
  (`non_finite_outputs`, read off the report's outcomes; `advgrad.evaluate` adds it always).

>>> import numpy as np
>>> from advgrad import data, zoo
>>> ds = data.digits()
>>> gradient_flag(zoo.load("digits-cnn"), ds.x_test[:32], ds.y_test[:32]) is None
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from advgrad.attacks.registry import from_config
from advgrad.budget import Budget
from advgrad.models import ModelAdapter
from advgrad.predictions import class_ids, judge, predict

if TYPE_CHECKING:
    from advgrad.report import Report

__all__ = [
    "Flag",
    "gradient_flag",
    "loss_not_increasing",
    "noise_stronger",
    "non_finite_outputs",
    "non_monotone",
    "randomized_outputs",
    "run_all",
    "single_step_stronger",
    "unbounded_eps",
]

ZERO_FRACTION = 0.1
"""Flag when more than this share of samples has all-zero (or NaN) input gradients."""

TINY_NORM = 1e-8
"""Flag when the median per-sample gradient norm (L2, all inputs) is below this."""

_MASKING = (
    "This is a classic sign of gradient masking (Athalye et al. 2018): gradient attacks "
    "fail although adversarial examples exist, so the robust accuracy is overestimated. "
    "Evaluate with the `standard` suite: its Square attack needs no gradient."
)


@dataclasses.dataclass(frozen=True)
class Flag:
    """One sanity problem: a stable `code`, what was seen, what it may mean and what to try.

    >>> Flag("x", "seen", "try").to_dict()
    {'code': 'x', 'message': 'seen', 'advice': 'try'}
    """

    code: str
    message: str
    advice: str

    def to_dict(self) -> dict[str, str]:
        """``{"code", "message", "advice"}``."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"[{self.code}] {self.message} {self.advice}"


def _tolerance(n: int) -> float:
    """Differences smaller than this are noise: one sample, and at least 1 point."""
    return max(0.01, 1.0 / max(n, 1))


# ------------------------------------------------------------------ gradients
def gradient_flag(model: Any, x: Any, y: Any, *, loss: Any = None, wrt: Any = None) -> Flag | None:
    """Flag NaN, all-zero or tiny input gradients of the attack loss on many samples.

    Flags (the most severe only): ``nan_gradients`` when more than 10% of the samples have
    a NaN gradient, ``zero_gradients`` when more than 10% have an all-zero gradient,
    ``tiny_gradients`` when the median per-sample gradient norm is below 1e-8. A flag's
    message says when cross-entropy stood in for a missing compiled loss (see `loss`).

    Args:
        model: The model.
        x: A few samples (array, list or dict of arrays).
        y: Their labels.
        loss: The attacks' loss. None: the model's compiled loss, as for the attacks; for a
            model without one, cross-entropy (``"ce"``), decided up front (never by
            retrying after an error) and said in the flag's message.
        wrt: Inputs to differentiate (None: every floating-point input).

    Returns:
        A `Flag` or None.

    >>> from advgrad import data, zoo
    >>> ds = data.digits(flat=True)
    >>> gradient_flag(zoo.load("digits-mlp"), ds.x_test[:16], ds.y_test[:16]) is None
    True
    """
    from advgrad.gradients import input_gradients

    adapter = ModelAdapter.of(model)
    _, leaves = adapter.split_inputs(x)
    if wrt is None:
        wrt = [n for n, v in leaves.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
        if not wrt:
            return None
    note = ""
    if loss is None and getattr(adapter.model, "loss", None) is None:
        loss = "ce"  # no compiled loss to fall back on (see the docstring)
        note = " (loss: cross-entropy, as the model has no compiled loss)"
    grads = input_gradients(model, x, y, loss=loss, wrt=list(wrt))
    batch = len(np.asarray(grads[0]))
    flat = np.concatenate([np.asarray(g, np.float64).reshape(batch, -1) for g in grads], axis=1)
    nan = np.any(np.isnan(flat), axis=1)
    zero = ~nan & ~np.any(flat != 0, axis=1)
    norms = np.sqrt(np.sum(np.where(np.isnan(flat), 0.0, flat) ** 2, axis=1))
    if np.mean(nan) > ZERO_FRACTION:
        return Flag(
            "nan_gradients",
            f"{np.mean(nan):.0%} of {batch} samples have NaN input gradients{note}.",
            "The loss or the model produces NaN (a log of 0, a division by zero, an "
            "unstable custom layer), so gradient attacks cannot move. Check the loss "
            "(from_logits) and the preprocessing inside the model, and attack with "
            "`loss: margin` (or `dlr`) on logits.",
        )
    if np.mean(zero) > ZERO_FRACTION:
        return Flag(
            "zero_gradients",
            f"{np.mean(zero):.0%} of {batch} samples have all-zero input gradients{note}: "
            "gradient masking?",
            f"{_MASKING} Common causes: a saturated softmax (probabilities of exactly 0/1) "
            "or a non-differentiable step (rounding, quantization, argmax, stop_gradient) in "
            "the model. Attack with `loss: margin` or `loss: dlr` (on logits), and `pgd` with "
            "a random start and several `restarts`; a non-differentiable step needs a "
            "differentiable stand-in in the model before gradient attacks can be trusted.",
        )
    median = float(np.median(norms))
    if median < TINY_NORM:
        return Flag(
            "tiny_gradients",
            f"The median input-gradient norm over {batch} samples is {median:.1e} "
            f"(< {TINY_NORM:g}){note}: gradient masking?",
            f"{_MASKING} Vanishing gradients often come from a very confident (saturated) "
            "cross-entropy: attack with `loss: margin` or `loss: dlr` (on logits) and "
            "sign steps (`fgsm`, `bim`, `pgd`, `mifgsm` with norm linf), which do not "
            "depend on the gradient's size.",
        )
    return None


# ---------------------------------------------------------------- report only
def _curve_labels(report: Report) -> list[tuple[str, dict[float, float]]]:
    curves = [(label, report.per_attack[label]) for label in report.per_attack]
    return [*curves, ("worst case", report.robust_accuracy)]


def non_monotone(report: Report) -> Flag | None:
    """Flag robust accuracy that goes up as eps grows (per attack or worst case).

    A larger ball contains the smaller one, so a correct attack can only do better. Increases
    of one sample (or less than one point) are ignored.

    >>> import numpy as np
    >>> from advgrad.report import Report
    >>> r = Report(0.9, {0.1: 0.2, 0.2: 0.5}, {}, {}, 100, ["pgd"])
    >>> non_monotone(r).code
    'non_monotone'
    """
    tol = _tolerance(report.n_samples)
    eps = sorted(report.eps)
    found = []
    for label, curve in _curve_labels(report):
        values = [curve[e] for e in eps if e in curve]
        for small, large, a, b in zip(eps, eps[1:], values, values[1:], strict=False):
            if b > a + tol:
                found.append(f"{label} ({a:.1%} at eps={small:g} -> {b:.1%} at eps={large:g})")
                break
    if not found:
        return None
    return Flag(
        "non_monotone",
        "Robust accuracy increases with eps for: " + "; ".join(found) + ".",
        "A larger eps ball contains the smaller one, so the attack is too weak or unstable "
        "at the larger eps: the step size may scale badly with eps, or it needs more steps "
        "or restarts. Check `step_size`, and use `pgd` with more `steps` and `restarts`.",
    )


def single_step_stronger(report: Report) -> Flag | None:
    """Flag a single-step attack (e.g. FGSM) with lower robust accuracy than an iterative one.

    Only attacks with the same threat model (norm, bounds, budget) are compared. Needs the
    per-attack rows (``individual=True``) and ``report.gradients_per_sample``.

    >>> from advgrad.report import Report
    >>> r = Report(0.9, {0.1: 0.1}, {"fgsm": {0.1: 0.1}, "pgd": {0.1: 0.6}}, {}, 100,
    ...            ["fgsm", "pgd"], gradients_per_sample={"fgsm": 1, "pgd": 10})
    >>> single_step_stronger(r).code
    'single_step_stronger'
    """
    steps = report.gradients_per_sample
    single = [a for a in report.per_attack if steps.get(a) == 1]
    iterative = [a for a in report.per_attack if steps.get(a, 0) > 1]
    tol = _tolerance(report.n_samples)
    found = []
    for e in report.eps:
        for s in single:
            for it in iterative:
                if not _same_threat(report, s, it):
                    continue
                a, b = report.per_attack[s].get(e), report.per_attack[it].get(e)
                if a is not None and b is not None and a < b - tol:
                    found.append(f"{s} {a:.1%} < {it} {b:.1%} at eps={e:g}")
    if not found:
        return None
    return Flag(
        "single_step_stronger",
        "A single-step attack beats an iterative one: " + "; ".join(found[:4]) + ".",
        "An iterative attack should be at least as strong as its single step. Either the "
        "iterative attack is misconfigured (step size too small, too few steps) or the loss "
        "surface is masked so that small steps get stuck (gradient masking). Try more "
        "`steps`, a larger `step_size`, `pgd` with `restarts`, or `loss: margin`.",
    )


def _same_threat(report: Report, first: str, second: str) -> bool:
    """Whether two attacks of the report share norm, bounds, budget (eps aside) and goal: a
    targeted attack aims at one class, so it may rightly fool fewer samples."""
    configs = dict(zip(report.attacks, report.suite, strict=False))
    if first not in configs or second not in configs:
        return True

    def threat(config: Mapping[str, Any]) -> tuple:
        budget = _budget_setting(config.get("budget"))
        if isinstance(budget, Budget):
            budget = budget.replace(eps=0.0)
        elif isinstance(budget, Mapping):
            budget = {k: None if v is None else v.replace(eps=0.0) for k, v in budget.items()}
        norm, bounds = str(config.get("norm", "linf")), repr(config.get("bounds"))
        return (norm, bounds, repr(budget), bool(config.get("targeted", False)))

    return threat(configs[first]) == threat(configs[second])


def loss_not_increasing(report: Report) -> Flag | None:
    """Flag iterative attacks whose mean loss did not increase from the first iterate to the last.

    Reads ``report.loss_trend`` (from each attack's ``loss_trace``); eps = 0 is skipped.

    >>> from advgrad.report import Report
    >>> r = Report(0.9, {0.1: 0.8}, {}, {}, 100, ["pgd"], loss_trend={"pgd": {0.1: [2.0, 1.9]}},
    ...            gradients_per_sample={"pgd": 10})
    >>> loss_not_increasing(r).code
    'loss_not_increasing'
    """
    found = []
    for label, trend in report.loss_trend.items():
        if report.gradients_per_sample.get(label, 0) <= 1:
            continue
        for e, (start, final) in sorted(trend.items()):
            if e > 0 and not final > start:
                found.append(f"{label} at eps={e:g} ({start:.4g} -> {final:.4g})")
    if not found:
        return None
    return Flag(
        "loss_not_increasing",
        "The attack loss did not increase over the iterations: " + "; ".join(found[:4]) + ".",
        "The attack is not making progress: the step size may be too large (oscillation) "
        "or too small, the gradient may be masked or uninformative, or the model may be "
        "randomized (see the randomized_outputs flag). Try another `step_size`, more "
        "`steps`, or `loss: margin`.",
    )


# ------------------------------------------------------------- threat models
def _budget_setting(value: Any) -> Any:
    """A `budget` setting from its config (a Budget config, or per-input configs/None)."""
    if value is None or isinstance(value, Budget):
        return value
    if isinstance(value, Mapping):
        single = "eps" in value and set(value) <= {"eps", "norm", "bounds"}
        if single and not isinstance(value["eps"], Mapping):
            return Budget.from_config(value)
        return {
            k: v if v is None or isinstance(v, Budget) else Budget.from_config(v)
            for k, v in value.items()
        }
    return None


def _threat(config: Mapping[str, Any], names: list[str], eps: float) -> dict[str, Any] | None:
    """One Budget per input (None = frozen) from an attack config, at radius `eps`.

    A report's config records what `evaluate` swept and chose (``eps``: the list of radii,
    ``targets``: the targeting rule), which are not attack settings: they are left out.
    """
    settings = {k: v for k, v in config.items() if k not in ("eps", "targets")}
    try:
        return from_config(settings).budgets(names, eps=eps)
    except (ValueError, TypeError):
        return None


def _reference_config(report: Report) -> Mapping[str, Any] | None:
    """The config of the first gradient attack (else the first attack) of the suite."""
    for label, config in zip(report.attacks, report.suite, strict=False):
        if report.gradients_per_sample.get(label, 0) > 0:
            return config
    return report.suite[0] if report.suite else None


def unbounded_eps(report: Report, x: Any, model: Any = None) -> Flag | None:
    """Flag robust accuracy above 10% at an eps whose ball covers the whole input range.

    The input range is the attack's ``bounds`` (or, when unbounded, the range of `x`); the
    ball covers it when eps >= ``norm.norm(high - low)`` in the threat model's norm (for
    Linf: the largest range).
    With every input free to move anywhere in its range, any robust sample means the
    attack cannot find inputs of another class that certainly exist.

    Args:
        report: The evaluation report.
        x: Samples, to read input names and shapes (and the range when unbounded).
        model: The model (to name its inputs); None for a single input.

    Returns:
        A `Flag` or None.
    """
    config = _reference_config(report)
    if config is None or not report.eps:
        return None
    e = max(report.eps)
    names, leaves = _leaves(model, x)
    threat = _threat(config, names, e)
    if threat is None or any(b is None for b in threat.values()):
        return None  # a frozen input can legitimately keep samples robust
    for name, budget in threat.items():
        data = np.asarray(leaves[name], np.float64)
        low = np.broadcast_to(_finite(budget.bounds.low, data.min(axis=0)), data.shape[1:])
        high = np.broadcast_to(_finite(budget.bounds.high, data.max(axis=0)), data.shape[1:])
        size = float(np.asarray(budget.norm.norm((high - low).reshape(1, -1)))[0])
        if size <= 0 or e < size:
            return None
    accuracy = report.robust_accuracy.get(e, 0.0)
    if accuracy <= 0.1:
        return None
    return Flag(
        "unbounded_eps",
        f"Robust accuracy is {accuracy:.1%} at eps={e:g}, a ball that covers the whole input "
        "range: every input can be moved to any valid input, including one of another class.",
        "Robust accuracy should be ~0 here, so the attacks are failing: gradient masking, "
        "too few steps or too small a step size, or a bug in bounds/preprocessing. Try `pgd` "
        "with more `steps` and `restarts`, `loss: margin`, and check the input scaling.",
    )


def _finite(bound: Any, fallback: np.ndarray) -> np.ndarray:
    bound = np.asarray(bound, np.float64)
    return np.where(np.isfinite(bound), bound, fallback)


def _leaves(model: Any, x: Any) -> tuple[list[str], dict[str, Any]]:
    if model is not None:
        _, leaves = ModelAdapter.of(model).split_inputs(x)
        return list(leaves), leaves
    return ["input"], {"input": x}


# ---------------------------------------------------------- model + samples
def noise_stronger(
    model: Any, x: Any, y: Any, report: Report, *, draws: int = 4, seed: int = 0
) -> Flag | None:
    """Flag random noise that fools more samples than the gradient attacks.

    Draws `draws` uniform samples in the eps ball (the gradient attacks' norm, bounds and
    frozen inputs) at the largest eps, clipped to the bounds; a sample counts as fooled if
    any draw fools it. `x`, `y` must be the first samples of the evaluation, so that
    ``report.outcomes`` lines up with them.

    Args:
        model: The model.
        x: The first samples of the evaluated data.
        y: Their labels.
        report: The evaluation report.
        draws: Noise draws per sample. Defaults to 4.
        seed: Seed of the noise. Defaults to 0.

    Returns:
        A `Flag` or None.
    """
    config = _reference_config(report)
    if config is None or not report.eps:
        return None
    e = max(report.eps)
    if e <= 0:
        return None
    names, leaves = _leaves(model, x)
    threat = _threat(config, names, e)
    if threat is None:
        return None
    truth = class_ids(y)
    m = len(truth)
    correct = judge(model, x, truth)[1]
    fooled = np.zeros(m, bool)  # or a non-finite output: not robust either way
    given = ModelAdapter.of(model).split_inputs(x)[0]
    for draw in range(draws):
        noisy = {}
        for i, name in enumerate(names):
            value = tf.convert_to_tensor(leaves[name])
            budget = threat[name]
            if budget is None or not value.dtype.is_floating:
                noisy[name] = value
                continue
            noise = budget.norm.random_init(
                tf.shape(value), budget.eps, [seed, draw * len(names) + i], value.dtype
            )
            noisy[name] = budget.bounds.clip(value + noise)
        packed = given.pack([noisy[n] for n in given.names])
        fooled |= ~judge(model, packed, truth)[1]
    noise_robust = float(np.mean(correct & ~fooled))
    attack_robust = _attack_robust(report, e, m)
    if attack_robust is None or noise_robust >= attack_robust - _tolerance(m):
        return None
    return Flag(
        "noise_stronger",
        f"Random noise in the eps={e:g} ball leaves {noise_robust:.1%} of the first {m} "
        f"samples robust, the gradient attacks {attack_robust:.1%}.",
        f"Random noise should never beat a gradient attack. {_MASKING} Try `pgd` with a "
        "random start, more `steps` and `restarts`, and `loss: margin`; check the "
        "preprocessing inside the model.",
    )


def _attack_robust(report: Report, e: float, m: int) -> float | None:
    """Robust accuracy of the strongest gradient attack on the first `m` samples."""
    values = []
    for label, arrays in report.attack_outcomes.items():
        if report.gradients_per_sample.get(label, 0) > 0 and e in arrays:
            values.append(float(np.mean(np.asarray(arrays[e])[:m])))
    if values:
        return min(values)
    if e in report.outcomes:
        return float(np.mean(np.asarray(report.outcomes[e])[:m] == -1))
    return None


def non_finite_outputs(report: Report) -> Flag | None:
    """Flag samples whose model output was not finite (NaN or inf), from the outcomes: on the
    clean input (neither correct nor robust) and on an attack's input (not robust, not fooled).

    >>> import numpy as np
    >>> from advgrad.report import Report
    >>> r = Report(0.5, {0.1: 0.5}, {}, {0.1: np.array([-3, -1], np.int8)}, 2, ["pgd"])
    >>> print(non_finite_outputs(r).message)  # doctest: +NORMALIZE_WHITESPACE
    Non-finite model outputs (NaN or inf): 1 of 2 samples on their clean input (counted
    neither correct nor robust).
    """
    message = report.non_finite_message()
    if message is None:
        return None
    return Flag(
        "non_finite_outputs",
        message,
        "A NaN or inf output is no prediction, so these samples cannot count as robust. Look "
        "for an unstable operation in the model (a log or division by 0, an overflow in "
        "float16, a custom layer) or in its preprocessing, and fix it before trusting any "
        "accuracy.",
    )


def randomized_outputs(model: Any, x: Any, *, atol: float = 1e-6) -> Flag | None:
    """Flag a model whose outputs differ between two forward passes on the same inputs.

    >>> from advgrad import data, zoo
    >>> randomized_outputs(zoo.load("digits-mlp"), data.digits(flat=True).x_test[:8]) is None
    True
    """
    first = predict(model, x)
    second = predict(model, x)
    difference = float(np.max(np.abs(first.astype(np.float64) - second), initial=0.0))
    if not difference > atol:
        return None
    return Flag(
        "randomized_outputs",
        f"Two forward passes on the same inputs differ by up to {difference:.2e}.",
        "The model is randomized (dropout left on, random transformations, noise layers), "
        "so single gradients and single predictions are unreliable. Make it deterministic "
        "for the evaluation if the defense allows; otherwise attack the expectation of the "
        "loss over many draws and evaluate with several draws (advgrad's attacks take one).",
    )


def run_all(model: Any, x: Any, y: Any, report: Report, *, seed: int = 0) -> list[Flag]:
    """Run every check on the first samples `x`, `y` of an evaluation and its report.

    Args:
        model: The evaluated model.
        x: The first samples of the evaluated data (``report.outcomes`` lines up with them).
        y: Their labels.
        report: The `Report` of the evaluation.
        seed: Seed of the random-noise baseline. Defaults to 0.

    Returns:
        The flags raised, in a fixed order (possibly empty).
    """
    config = _reference_config(report)
    loss = None if config is None else config.get("loss")
    checks = [
        lambda: randomized_outputs(model, x),
        lambda: gradient_flag(model, x, y, loss=loss),
        lambda: unbounded_eps(report, x, model),
        lambda: non_monotone(report),
        lambda: single_step_stronger(report),
        lambda: noise_stronger(model, x, y, report, seed=seed),
        lambda: loss_not_increasing(report),
    ]
    return [flag for flag in (check() for check in checks) if flag is not None]
