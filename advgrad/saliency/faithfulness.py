"""Faithfulness of saliency maps: do they show the model? Model randomisation, feature deletion.

- `sanity_check` (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018): the
  maps of a model whose weights are re-initialised should look nothing like the trained
  model's. Per method, the Spearman rank correlation between the two maps of each sample
  (of the absolute attributions, and of the signed ones) is measured; a method whose maps
  barely change (mean rank correlation >= `threshold`) is flagged: it shows the input more
  than the model.
- `deletion_test`: the features a map ranks most important, when perturbed, should move the
  explained score more than as many features picked at random.

Measured on the zoo's digits CNN, 450 test images (``benchmarks/results/saliency.md``): mean
rank correlation of the absolute maps, trained vs re-initialised, 0.08 for the vanilla
gradient, 0.07 for SmoothGrad, 0.15 for Grad-CAM, but **0.91 for gradient x input and 0.91
for integrated gradients: both flagged**. Both multiply by ``x - baseline``, so every
background pixel (0 in a digit, the baseline) gets exactly 0 whatever the weights, and the
ranks of the absolute maps share the input's support: these maps show the input as much as
the model (Adebayo et al. report the same for gradient x input and IG). Their signed maps
are uncorrelated (0.04), so the weights do change them, just not where they are zero.

A correlation of a constant map (all zeros, say) or of one that is not finite is undefined:
NaN per sample, left out of the means and counted; with no sample left, None, flagged.

>>> import numpy as np, keras
>>> from advgrad import saliency
>>> model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
...                           keras.layers.Dense(3)])
>>> x = np.random.default_rng(0).random((6, 5), "float32")
>>> result = saliency.sanity_check(model, x, methods=["vanilla"])
>>> sorted(result), -1.0 <= result["vanilla"].correlation <= 1.0
(['vanilla'], True)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from scipy.stats import rankdata

from advgrad._validation import check_int, check_number, invalid
from advgrad.saliency.methods import (
    BATCH_ROWS,
    METHODS,
    grad_cam,
    gradient_x_input,
    has_conv_layers,
    integrated_gradients,
    predicted_targets,
    scores,
    smoothgrad,
    vanilla,
)

__all__ = [
    "DeletionResult",
    "SanityResult",
    "attribute",
    "deletion_test",
    "rank_correlation",
    "randomized_copy",
    "sanity_check",
]

_FUNCTIONS = {
    "vanilla": vanilla,
    "gradient_x_input": gradient_x_input,
    "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients,
    "grad_cam": grad_cam,
}


def attribute(model: Any, x: Any, method: str, target: Any = None, **settings: Any) -> Any:
    """Run one method by name (`METHODS`) with its settings (``steps=32``, ``layer=...``).

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> attribute(model, np.ones((3, 2), "float32"), "smoothgrad", samples=4).shape
    (3, 2)
    """
    if method not in _FUNCTIONS:
        raise invalid("method", f"one of {list(METHODS)}", method)
    return _FUNCTIONS[method](model, x, target, **settings)


def _flat(attributions: Any) -> np.ndarray:
    """(batch, features): every input's attributions, flattened and side by side."""
    if isinstance(attributions, Mapping):
        leaves = list(attributions.values())
    elif isinstance(attributions, (list, tuple)):
        leaves = list(attributions)
    else:
        leaves = [attributions]
    arrays = [np.asarray(v, np.float64) for v in leaves]
    return np.concatenate([a.reshape(len(a), -1) for a in arrays], axis=1)


def rank_correlation(a: Any, b: Any, *, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation, per sample, of two maps (any structure, flattened).

    Ties take their average rank. A map that is constant (all zeros, say) ranks nothing,
    and one with a NaN or inf is no ranking: their correlation is undefined, NaN.

    >>> rank_correlation(np.array([[1.0, 2.0, 3.0]]), np.array([[10.0, 20.0, 30.0]])).tolist()
    [1.0]
    """
    fa, fb = _flat(a), _flat(b)
    if fa.shape != fb.shape:
        raise invalid("b", f"maps of the same shape as `a` {fa.shape}", fb)
    if absolute:
        fa, fb = np.abs(fa), np.abs(fb)
    finite = np.isfinite(fa).all(axis=1) & np.isfinite(fb).all(axis=1)
    fa, fb = np.where(finite[:, None], fa, 0.0), np.where(finite[:, None], fb, 0.0)
    ra, rb = rankdata(fa, axis=1), rankdata(fb, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    norm = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (ra * rb).sum(axis=1) / norm
    return np.where(finite & (norm > 0), corr, np.nan)


def _mean(values: np.ndarray) -> float | None:
    """The mean of the defined (not NaN) values; None when there is none."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else None


def _json_number(value: Any) -> float | None:
    """A float for JSON, None where it is undefined or not finite (never a bare NaN)."""
    return None if value is None or not np.isfinite(value) else float(value)


def randomized_copy(model: Any, seed: int = 0) -> Any:
    """A copy of a Sequential or functional model with every layer re-initialised by its own
    initializers, seeded (the same seed: the same weights). The model is not changed.

    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> a, b = randomized_copy(model, seed=1), randomized_copy(model, seed=1)
    >>> bool((a.get_weights()[0] == b.get_weights()[0]).all())
    True
    """
    seed = check_int("seed", seed, low=0, high=2**31)
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise invalid(
            "model", "a Sequential or functional keras.Model (or pass random_model)", model
        )
    counter = iter(range(1_000_000))

    def clone(layer):
        config = copy.deepcopy(layer.get_config())
        for key, value in config.items():
            if key.endswith("_initializer") and isinstance(value, dict):
                inner = value.get("config")
                if isinstance(inner, dict) and "seed" in inner:
                    inner["seed"] = seed * 1000 + next(counter)
        return type(layer).from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


@dataclass(frozen=True)
class SanityResult:
    """One method's model-randomisation check.

    Attributes:
        method: The method's name.
        correlation: Mean over samples of the Spearman rank correlation of the absolute
            maps, trained vs re-initialised model (1: unchanged; near 0: unrelated), over
            the samples where it is defined; None (undefined) where it is nowhere.
        signed_correlation: The same, of the signed maps.
        per_sample: The per-sample correlations of the absolute maps (NaN: undefined).
        flagged: The check does not pass: ``correlation >= threshold`` (the maps barely
            depend on the weights) or the correlation is undefined.
        undefined: Samples whose correlation is undefined (a constant or not-finite map).
    """

    method: str
    correlation: float | None
    signed_correlation: float | None
    per_sample: np.ndarray = field(repr=False)
    flagged: bool
    undefined: int = 0

    def __str__(self) -> str:
        total = len(self.per_sample)
        verdict = "flagged" if self.flagged else "passed"
        if self.correlation is None:
            return (
                f"{self.method}: rank correlation undefined ({self.undefined} of {total} "
                f"samples have a constant or not-finite map): {verdict}"
            )
        signed = self.signed_correlation
        signed = "undefined" if signed is None else f"{signed:.2f}"
        text = f"{self.method}: rank correlation {self.correlation:.2f} (signed {signed})"
        if self.undefined:
            text += (
                f", {self.undefined} of {total} samples undefined (a constant or not-finite "
                "map), left out"
            )
        return f"{text}: {verdict}"

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (None where undefined: valid JSON)."""
        return {
            "method": self.method,
            "correlation": _json_number(self.correlation),
            "signed_correlation": _json_number(self.signed_correlation),
            "flagged": self.flagged,
            "undefined": self.undefined,
            "per_sample": [_json_number(v) for v in np.asarray(self.per_sample).tolist()],
        }


def sanity_check(
    model: Any,
    x: Any,
    *,
    methods: Sequence[str] = METHODS,
    target: Any = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
    threshold: float = 0.5,
    random_model: Any = None,
) -> dict[str, SanityResult]:
    """The model-randomisation test: each method's maps, trained vs re-initialised weights.

    Both models explain the same targets (the trained model's predictions unless `target`
    is given).

    Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim, "Sanity Checks for Saliency Maps",
    NeurIPS 2018.

    Args:
        model: The trained model.
        x: Inputs (an array, a list or a dict of arrays).
        methods: Names among `METHODS` (Grad-CAM is skipped for a model with no convolution).
        target: As for the methods; None: the trained model's predicted classes.
        settings: Per method, its settings (``{"integrated_gradients": {"steps": 32}}``).
        seed: Seed of the re-initialisation (and of SmoothGrad's noise).
        threshold: Mean rank correlation at or above which a method is flagged (as is one
            whose correlation is undefined).
        random_model: The re-initialised model to compare with; None: `randomized_copy`.

    Returns:
        ``{method: SanityResult}``.

    Raises:
        ValueError: An unknown method or setting, or the methods' own errors.
    """
    settings = dict(settings or {})
    unknown = [m for m in list(methods) + list(settings) if m not in METHODS]
    if unknown or not methods:
        raise invalid("methods", f"names among {list(METHODS)}", unknown or methods)
    threshold = check_number("threshold", threshold, low=-1.0, high=1.0)
    if target is None:
        target = predicted_targets(model, x)
    other = randomized_copy(model, seed) if random_model is None else random_model
    results = {}
    for method in methods:
        options = dict(settings.get(method, {}))
        if method == "smoothgrad":
            options.setdefault("seed", seed)
        if method == "grad_cam" and options.get("layer") is None and not has_conv_layers(model):
            continue
        trained = attribute(model, x, method, target, **options)
        randomised = attribute(other, x, method, target, **options)
        per_sample = rank_correlation(trained, randomised)
        signed = rank_correlation(trained, randomised, absolute=False)
        mean = _mean(per_sample)
        results[method] = SanityResult(
            method,
            mean,
            _mean(signed),
            per_sample,
            mean is None or mean >= threshold,
            int(np.isnan(per_sample).sum()),
        )
    return results


@dataclass(frozen=True)
class DeletionResult:
    """The deletion test at one number of features `k`.

    The means are over the samples whose map ranks features (not constant, finite) and
    whose scores are finite; the others are counted in `undefined`. With none left, every
    number is None (undefined).

    Attributes:
        k: Features perturbed per sample.
        ranked_change: Mean over samples of |score(x') - score(x)|, the k features the map
            ranks highest (by absolute attribution) perturbed.
        random_change: The same with k features drawn at random (mean over `repeats` draws).
        ranked_drop: Mean of score(x) - score(x') (signed), ranked features.
        random_drop: The same, random features.
        undefined: Samples left out: a constant or not-finite map, or a score not finite.
        samples: Samples given.
    """

    k: int
    ranked_change: float | None
    random_change: float | None
    ranked_drop: float | None
    random_drop: float | None
    undefined: int = 0
    samples: int = 0

    @property
    def ratio(self) -> float | None:
        """ranked_change / random_change (> 1: the map finds the features that matter);
        inf when only the ranked features move the score; None when undefined (0 / 0)."""
        if self.ranked_change is None or self.random_change is None:
            return None
        if self.random_change:
            return self.ranked_change / self.random_change
        return float("inf") if self.ranked_change else None

    def __str__(self) -> str:
        left = f"{self.undefined} of {self.samples} samples"
        if self.ranked_change is None or self.random_change is None:
            return (
                f"k={self.k}: undefined ({left} have a map that ranks nothing, constant or "
                "not finite, or a score that is not finite)"
            )
        ratio = "undefined" if self.ratio is None else f"{self.ratio:.2f}"
        text = (
            f"k={self.k}: the ranked features move the score {self.ranked_change:.3g}, random "
            f"ones {self.random_change:.3g} (ratio {ratio})"
        )
        return text + (f"; {left} undefined, left out" if self.undefined else "")

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (None where undefined: valid JSON)."""
        out: dict[str, Any] = {"k": self.k}
        for name in ("ranked_change", "random_change", "ranked_drop", "random_drop", "ratio"):
            out[name] = _json_number(getattr(self, name))
        return {**out, "undefined": self.undefined, "samples": self.samples}


def deletion_test(
    model: Any,
    x: np.ndarray,
    attributions: np.ndarray,
    *,
    k: Sequence[int] = (4, 8, 16),
    target: Any = None,
    fill: str | float = "invert",
    bounds: tuple[float, float] | None = None,
    repeats: int = 5,
    seed: int = 0,
    batch_size: int = BATCH_ROWS,
) -> list[DeletionResult]:
    """Perturb the k features a map ranks most important and k random ones; compare how far
    the explained score moves.

    Args:
        model: The model the map explains.
        x: One input array (any rank), shape (batch, ...).
        attributions: The map, shaped like `x`.
        k: Numbers of features to perturb.
        target: As for the methods; None: the predicted classes.
        fill: ``"invert"``: a feature v becomes ``low + high - v`` (within `bounds`); a
            number: the feature is set to it.
        bounds: ``(low, high)`` for "invert"; None: the minimum and maximum of `x`.
        repeats: Random draws of k features per sample.
        seed: Seed of the random draws.
        batch_size: Samples per forward pass.

    Returns:
        One `DeletionResult` per k.

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.set_weights([np.array([[4.0], [1.0], [0.0], [0.0]])])
    >>> x = np.ones((2, 4), "float32")
    >>> [r] = deletion_test(model, x, np.tile([4.0, 1.0, 0.0, 0.0], (2, 1)), k=[1],
    ...                     fill=0.0)
    >>> r.ranked_change, bool(r.ranked_change > r.random_change)
    (4.0, True)
    """
    x = np.asarray(x)
    attributions = np.asarray(attributions)
    if attributions.shape != x.shape:
        raise invalid("attributions", f"a map of shape {x.shape} (like x)", attributions)
    features = int(np.prod(x.shape[1:]))
    ks = [check_int("k", int(v) if isinstance(v, np.integer) else v, low=1) for v in k]
    if not ks or max(ks) > features:
        raise invalid("k", f"ints in [1, {features}] (features per sample)", list(k))
    repeats = check_int("repeats", repeats, low=1)
    rng = np.random.default_rng(check_int("seed", seed, low=0))
    if isinstance(fill, str):
        if fill != "invert":
            raise invalid("fill", '"invert" or a number', fill)
        low, high = (float(x.min()), float(x.max())) if bounds is None else bounds
    else:
        check_number("fill", fill)
    if target is None:
        target = predicted_targets(model, x, batch_size=batch_size)
    target = np.broadcast_to(np.asarray(target), (len(x),))
    flat = x.reshape(len(x), -1)
    magnitude = np.abs(attributions.reshape(len(x), -1).astype(np.float64))
    order = np.argsort(-np.nan_to_num(magnitude, nan=0.0), axis=1, kind="stable")
    base = scores(model, x, target, batch_size=batch_size)
    ranks = np.isfinite(magnitude).all(axis=1) & (np.ptp(magnitude, axis=1) > 0)

    def perturbed(indices: np.ndarray) -> np.ndarray:
        out = flat.copy()
        rows = np.arange(len(x))[:, None]
        if isinstance(fill, str):
            out[rows, indices] = low + high - out[rows, indices]
        else:
            out[rows, indices] = fill
        return out.reshape(x.shape)

    results = []
    for size in ks:
        ranked = scores(model, perturbed(order[:, :size]), target, batch_size=batch_size)
        draws = [
            scores(
                model,
                perturbed(np.argsort(rng.random(flat.shape), axis=1)[:, :size]),
                target,
                batch_size=batch_size,
            )
            for _ in range(repeats)
        ]
        random = np.stack(draws)
        keep = ranks & np.isfinite(base) & np.isfinite(ranked) & np.isfinite(random).all(axis=0)
        ranked, random, start = ranked[keep], random[:, keep], base[keep]
        numbers = (
            [
                float(np.abs(ranked - start).mean()),
                float(np.abs(random - start).mean()),
                float((start - ranked).mean()),
                float((start - random).mean()),
            ]
            if keep.any()
            else [None] * 4
        )
        results.append(DeletionResult(size, *numbers, undefined=int((~keep).sum()), samples=len(x)))
    return results
