"""Perturbation budgets: how far each model input may move, and the range it must stay in.

A `Budget` is one input's threat model: a norm ball of radius `eps` around the clean input
(`advgrad.norms`) and `Bounds` on the values of the perturbed input. Multi-input models get
one `Budget` per input name, or `None` for an input that is frozen (never perturbed);
`resolve_budgets` turns an attack's arguments into that mapping.

There is no hidden [0, 1]: the default bounds are **unbounded** (no clipping). Pass
`bounds=(0.0, 1.0)` for images scaled to [0, 1], or per-feature arrays for tabular data.

>>> from advgrad.budget import Budget
>>> budget = Budget(eps=0.1, norm="l2", bounds=(0.0, 1.0))
>>> budget.norm, budget.bounds.low, budget.bounds.high
(L2(), 0.0, 1.0)
>>> Budget(eps=0.1).bounds.is_unbounded
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from advgrad import norms as norms_lib
from advgrad._validation import check_bool, check_eps, check_number, invalid

__all__ = [
    "Bounds",
    "Budget",
    "outside",
    "resolve_budgets",
    "unbounded_message",
    "unbounded_on_unit_data",
]


def _bound_value(value: Any) -> float | np.ndarray:
    """A bound as a Python float (scalars) or a read-only float64 array; NaN/non-numbers refused."""
    if value is None or isinstance(value, (bool, np.bool_)):
        raise invalid("bounds", "numbers or arrays of numbers", value)
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise invalid("bounds", "numbers or arrays of numbers", value) from None
    if array.dtype == object or np.isnan(array).any():
        raise invalid("bounds", "numbers or arrays without NaN", value)
    if array.ndim == 0:
        return float(array)
    array.setflags(write=False)
    return array


def _to_config(value: float | np.ndarray) -> float | list:
    return value.tolist() if isinstance(value, np.ndarray) else value


@dataclasses.dataclass(frozen=True, eq=False)
class Bounds:
    """The valid range of an input's values: `low <= x <= high`, elementwise.

    `low` and `high` are scalars, or arrays broadcastable to the per-sample shape of the
    input (e.g. one bound per feature of a tabular input, shape `[features]`). Infinite
    values mean "no bound on that side"; `Bounds.unbounded()` is `(-inf, inf)`.

    Args:
        low: Lower bound (number or array). `-inf` for none.
        high: Upper bound (number or array). `inf` for none.

    Raises:
        ValueError: If a bound is NaN or not numeric, if the two are not broadcastable, if
            `low > high` anywhere, or if `low` is `+inf` / `high` is `-inf` somewhere.

    >>> import numpy as np
    >>> from advgrad.budget import Bounds
    >>> bounds = Bounds(low=np.array([0.0, -1.0]), high=1.0)
    >>> bounds.clip(np.array([[2.0, -3.0]], np.float32)).numpy().tolist()
    [[1.0, -1.0]]
    >>> bounds.contains(np.array([[0.5, -0.5]]))
    True
    """

    low: float | np.ndarray = -math.inf
    high: float | np.ndarray = math.inf

    def __post_init__(self) -> None:
        low, high = _bound_value(self.low), _bound_value(self.high)
        try:
            np.broadcast_shapes(np.shape(low), np.shape(high))
        except ValueError:
            raise invalid(
                "bounds",
                "low and high broadcastable to each other",
                f"(low.shape={np.shape(low)}, high.shape={np.shape(high)})",
            ) from None
        if np.any(np.greater(low, high)):
            raise invalid("bounds", "low <= high", (self.low, self.high))
        if np.any(np.isposinf(low)) or np.any(np.isneginf(high)):
            raise invalid("bounds", "low < inf and high > -inf", (self.low, self.high))
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @classmethod
    def unbounded(cls) -> Bounds:
        """`Bounds(-inf, inf)`: no clipping."""
        return cls(-math.inf, math.inf)

    @classmethod
    def from_value(cls, value: Any) -> Bounds:
        """Resolve a `bounds` argument.

        Args:
            value: `None` (unbounded), a `(low, high)` pair, or a `Bounds` (returned as is).

        Returns:
            A `Bounds`.

        Raises:
            ValueError: If `value` is none of the above.
        """
        if value is None:
            return cls.unbounded()
        if isinstance(value, Bounds):
            return value
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return cls(value[0], value[1])
        raise invalid("bounds", "None, a (low, high) pair or a Bounds", value)

    @classmethod
    def from_data(cls, x: Any, *, margin: float = 0.0, per_feature: bool = True) -> Bounds:
        """The range the data `x` spans, widened by `margin` times its width on each side.

        For data you standardised or scaled yourself, whose valid range you do not know in
        closed form: attacks then stay where the data lives.

        Args:
            x: Samples, an array or tensor ``[N, ...]`` of finite numbers (N >= 1).
            margin: Fraction of the width (high - low) added below and above, >= 0.
                Defaults to 0.
            per_feature: One bound per feature (arrays of the per-sample shape), or one
                global pair of numbers. Defaults to True.

        Returns:
            A `Bounds`.

        Raises:
            ValueError: If `x` is empty, not numeric or not finite, or `margin` < 0.

        >>> import numpy as np
        >>> x = np.array([[0.0, -1.0], [2.0, 1.0]])
        >>> b = Bounds.from_data(x, margin=0.5)
        >>> b.low.tolist(), b.high.tolist()
        ([-1.0, -2.0], [3.0, 2.0])
        >>> g = Bounds.from_data(x, per_feature=False)
        >>> g.low, g.high
        (-1.0, 2.0)
        """
        margin = check_number("margin", margin, low=0.0)
        per_feature = check_bool("per_feature", per_feature)
        array = np.asarray(x)
        if array.ndim < 1 or len(array) == 0 or not np.issubdtype(array.dtype, np.number):
            raise invalid("x", "numeric samples [N, ...] with N >= 1", x)
        array = array.astype(np.float64)
        if not np.all(np.isfinite(array)):
            raise invalid("x", "finite values (no NaN or inf)", x)
        axis = 0 if per_feature else None
        low, high = array.min(axis=axis), array.max(axis=axis)
        width = high - low
        return cls(low - margin * width, high + margin * width)

    @property
    def is_unbounded(self) -> bool:
        """True when both sides are infinite everywhere (clipping is a no-op)."""
        return bool(np.all(np.isneginf(self.low)) and np.all(np.isposinf(self.high)))

    def _check_shape(self, shape: Any) -> None:
        sample_shape = tf.TensorShape(shape)[1:]
        if sample_shape.rank is None or not sample_shape.is_fully_defined():
            return
        for bound in (self.low, self.high):
            try:
                merged = np.broadcast_shapes(np.shape(bound), tuple(sample_shape.as_list()))
            except ValueError:
                merged = None
            if merged != tuple(sample_shape.as_list()):
                raise invalid(
                    "bounds",
                    f"arrays broadcastable to the per-sample shape {tuple(sample_shape)}",
                    f"shape {np.shape(bound)}",
                )

    def contains(self, x: Any, atol: float = 0.0) -> bool:
        """Whether every value of `x` lies in `[low - atol, high + atol]`.

        The bounds are first cast to the dtype of `x`, as `clip` does, so `contains(clip(x))`
        is True.

        Args:
            x: Array or tensor of shape `[B, ...]`.
            atol: Absolute tolerance. Defaults to 0.

        Returns:
            A Python bool.
        """
        array = np.asarray(x)
        self._check_shape(array.shape)
        dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
        low = np.asarray(self.low, dtype=dtype)
        high = np.asarray(self.high, dtype=dtype)
        return bool(np.all((array >= low - atol) & (array <= high + atol)))

    def clip(self, x: Any) -> tf.Tensor:
        """Clip `x` into the bounds (TensorFlow, works in `tf.function`, keeps the dtype).

        Args:
            x: Tensor of shape `[B, ...]`.

        Returns:
            Tensor of the shape and dtype of `x` (`x` itself when unbounded).
        """
        x = tf.convert_to_tensor(x)
        if self.is_unbounded:
            return x
        self._check_shape(x.shape)
        low = tf.constant(self.low, dtype=x.dtype)
        high = tf.constant(self.high, dtype=x.dtype)
        return tf.minimum(tf.maximum(x, low), high)

    def get_config(self) -> dict[str, Any]:
        """`{"low": ..., "high": ...}` with arrays as nested lists; `Bounds(**config)` rebuilds."""
        return {"low": _to_config(self.low), "high": _to_config(self.high)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bounds):
            return NotImplemented
        return all(
            np.shape(a) == np.shape(b) and np.array_equal(a, b)
            for a, b in ((self.low, other.low), (self.high, other.high))
        )

    def __hash__(self) -> int:
        def key(value):
            if isinstance(value, np.ndarray):
                return (value.shape, value.tobytes())
            return value

        return hash((key(self.low), key(self.high)))


@dataclasses.dataclass(frozen=True)
class Budget:
    """The perturbation budget of one input: a norm ball of radius `eps`, within `bounds`.

    Args:
        eps: Radius of the ball, a finite number >= 0 (as everywhere in advgrad: an
            infinite radius is refused, see `advgrad._validation`).
        norm: "linf" (default), "l2", "l1", or a `advgrad.norms.Norm`.
        bounds: Valid range of the perturbed input: `None`, a `(low, high)` pair or a
            `Bounds`. Defaults to `None`, which means **unbounded**: the input is not
            clipped at all (there is no implicit [0, 1]). Pass `(0.0, 1.0)` for images
            scaled to [0, 1].

    Raises:
        ValueError: If `eps` is negative, infinite, NaN or not a number, or `norm`/`bounds`
            are invalid.

    >>> from advgrad.budget import Budget
    >>> budget = Budget(eps=8 / 255, bounds=(0.0, 1.0))
    >>> budget.replace(eps=4 / 255).eps == 4 / 255
    True
    >>> Budget.from_config(budget.get_config()) == budget
    True
    """

    eps: float
    norm: norms_lib.Norm
    bounds: Bounds

    def __init__(self, eps: float, norm: Any = "linf", bounds: Any = None):
        object.__setattr__(self, "eps", check_eps(eps))
        object.__setattr__(self, "norm", norms_lib.get(norm))
        object.__setattr__(self, "bounds", Bounds.from_value(bounds))

    def replace(self, **changes: Any) -> Budget:
        """A new `Budget` with some of `eps`, `norm`, `bounds` changed (validated again)."""
        fields = ("eps", "norm", "bounds")
        for key in changes:
            if key not in fields:
                raise invalid("changes", f"keys among {list(fields)}", key)
        values = {name: getattr(self, name) for name in fields}
        values.update(changes)
        return Budget(**values)

    def get_config(self) -> dict[str, Any]:
        """Serializable configuration (plain numbers, strings, lists and dicts)."""
        norm_config = self.norm.get_config()
        return {
            "eps": self.eps,
            "norm": norm_config["name"] if len(norm_config) == 1 else norm_config,
            "bounds": None if self.bounds.is_unbounded else self.bounds.get_config(),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Budget:
        """Rebuild a `Budget` from `get_config()`."""
        config = dict(config)
        bounds = config.get("bounds")
        if isinstance(bounds, Mapping):
            config["bounds"] = Bounds(**bounds)
        return cls(**config)

    def contains(self, x: Any, x_adv: Any) -> np.ndarray:
        """Per sample: whether `x_adv` lies in this threat model around the clean `x`.

        Inside means: every value finite (a NaN or inf is never inside), the perturbation
        in the eps ball of `norm`, and `x_adv` within `bounds`. Both tests allow a rounding
        slack of a few ulps of the input's dtype: ``eps * (1 + 1e-4)`` plus 4 ulps per unit
        of the norm of an all-ones sample (1 for Linf, sqrt(features) for L2, features for
        L1), and 4 ulps (scaled by the larger of 1 and the largest finite upper bound) on
        the bounds.

        Args:
            x: The clean inputs, an array or tensor ``[B, ...]``.
            x_adv: The perturbed inputs, same shape.

        Returns:
            bool array ``[B]``.

        >>> import numpy as np
        >>> budget = Budget(0.1, bounds=(0.0, 1.0))
        >>> x = np.full((4, 2), 0.5, np.float32)
        >>> budget.contains(x, x + np.array([[0.1], [0.2], [np.nan], [0.0]], np.float32))
        array([ True, False, False,  True])
        """
        clean, adv = np.asarray(x), np.asarray(x_adv)
        batch = len(clean)
        wide = adv.astype(np.float64).reshape(batch, -1)
        delta = wide - clean.astype(np.float64).reshape(batch, -1)
        floating = np.issubdtype(adv.dtype, np.floating)
        resolution = float(np.finfo(adv.dtype).eps) if floating else 0.0
        ulp = resolution * max(1.0, float(np.max(np.abs(clean), initial=0)))
        inside = np.all(np.isfinite(wide), axis=1)
        size = self._sizes(np.where(np.isfinite(delta), delta, 0.0))
        slack = float(self._sizes(np.ones((1, max(delta.shape[1], 1))))[0])
        inside &= size <= self.eps * (1 + 1e-4) + 4 * ulp * slack
        if not self.bounds.is_unbounded:
            low = np.asarray(self.bounds.low, np.float64)
            high = np.asarray(self.bounds.high, np.float64)
            peak = float(np.max(np.abs(np.where(np.isfinite(high), high, 0))))
            atol = 4 * ulp * max(1.0, peak)
            values = adv.astype(np.float64)
            bad = (values < low - atol) | (values > high + atol)
            inside &= ~np.any(bad.reshape(batch, -1), axis=1)
        return inside

    def _sizes(self, rows: np.ndarray) -> np.ndarray:
        """Per row, the norm of `rows` (``[B, D]``, float64): NumPy's vector norm of order
        ``p`` on the host for the Lp norms (without the eager TensorFlow ops that would cost
        more than the check), else `Norm.norm`."""
        if self.norm.p in (1.0, 2.0, math.inf):
            return np.linalg.norm(rows, ord=self.norm.p, axis=1)
        return np.asarray(self.norm.norm(rows))


def outside(
    budgets: Mapping[str, Budget | None], clean: Mapping[str, Any], adv: Mapping[str, Any]
) -> np.ndarray:
    """Per sample: True where the inputs `adv` leave a whole threat model around `clean`.

    A sample is outside when any input with a `Budget` is not `Budget.contains`-ed, or any
    frozen input (``None``) changed (a NaN left as NaN is unchanged).

    Args:
        budgets: One `Budget` or ``None`` (frozen) per input name, as `resolve_budgets`
            gives them.
        clean: The clean inputs, input name -> array ``[B, ...]`` (at least every name of
            `budgets`).
        adv: The perturbed inputs, the same way.

    Returns:
        bool array ``[B]``.

    >>> import numpy as np
    >>> x = {"image": np.zeros((2, 3)), "meta": np.ones((2, 1))}
    >>> x_adv = {"image": np.array([[0.1, 0, 0], [0.5, 0, 0]]), "meta": np.ones((2, 1))}
    >>> outside({"image": Budget(0.1), "meta": None}, x, x_adv).tolist()
    [False, True]
    >>> x_adv["meta"] = np.array([[1.0], [2.0]])
    >>> outside({"image": None, "meta": None}, x, x_adv).tolist()
    [True, True]
    """
    batch = len(np.asarray(next(iter(clean.values()))))
    result = np.zeros(batch, bool)
    for name, budget in budgets.items():
        c, a = np.asarray(clean[name]), np.asarray(adv[name])
        if budget is not None:
            result |= ~budget.contains(c, a)
            continue
        changed = a != c
        if np.issubdtype(a.dtype, np.floating) and np.issubdtype(c.dtype, np.floating):
            changed &= ~(np.isnan(a) & np.isnan(c))
        result |= np.any(changed.reshape(batch, -1), axis=1)
    return result


def resolve_budgets(
    input_names: Sequence[str],
    budget: Budget | Mapping[str, Budget | None] | None = None,
    *,
    eps: float | None = None,
    norm: Any = "linf",
    bounds: Any = None,
) -> dict[str, Budget | None]:
    """One `Budget` (or `None` = frozen) per model input, from an attack's arguments.

    Args:
        input_names: The model's input names, in order (a single-input model has one).
        budget: `None`: every input gets `Budget(eps, norm, bounds)`. A `Budget`: used for
            every input (and `eps`/`norm`/`bounds` are ignored). A dict name -> `Budget` or
            `None`: `None` freezes that input (it is not perturbed), and **inputs missing
            from the dict are frozen too**.
        eps: Radius used when `budget` is None.
        norm: Norm used when `budget` is None. Defaults to "linf".
        bounds: Bounds used when `budget` is None: `None` (unbounded), a `(low, high)` pair,
            a `Bounds`, or a dict input name -> any of those for per-input bounds (inputs
            missing from it are unbounded).

    Returns:
        A dict with one entry per input name, in the order of `input_names`.

    Raises:
        ValueError: If a dict key is not an input name, a value is not a `Budget`/`None`,
            `eps` is missing or invalid while `budget` is None, or every input is frozen.

    >>> from advgrad.budget import Budget, resolve_budgets
    >>> resolve_budgets(["image", "meta"], {"image": Budget(0.1)})
    {'image': Budget(eps=0.1, norm=Linf(), bounds=Bounds(low=-inf, high=inf)), 'meta': None}
    """
    if isinstance(input_names, str) or not isinstance(input_names, Sequence):
        raise invalid("input_names", "a list of input names", input_names)
    names = list(input_names)
    if not names or len(set(names)) != len(names):
        raise invalid("input_names", "a non-empty list of distinct names", input_names)

    if budget is None:
        if eps is None:
            raise invalid("eps", "a number >= 0 (or a `budget`)", eps)
        if isinstance(bounds, Mapping):
            _check_keys("bounds", bounds, names)
            per_input = {name: bounds.get(name) for name in names}
        else:
            per_input = dict.fromkeys(names, bounds)
        result = {name: Budget(eps, norm, per_input[name]) for name in names}
    elif isinstance(budget, Budget):
        result = dict.fromkeys(names, budget)
    elif isinstance(budget, Mapping):
        _check_keys("budget", budget, names)
        for value in budget.values():
            if value is not None and not isinstance(value, Budget):
                raise invalid("budget", "a dict of Budget or None values", value)
        result = {name: budget.get(name) for name in names}
    else:
        raise invalid("budget", "None, a Budget or a dict input name -> Budget or None", budget)

    if all(value is None for value in result.values()):
        raise invalid("budget", "at least one input that is not frozen", budget)
    return result


def unbounded_on_unit_data(
    threat_models: Mapping[str, Mapping[str, Budget | None]], inputs: Mapping[str, Any]
) -> list[str]:
    """The labels of the threat models that leave unbounded a floating input whose values
    all lie in [0, 1]: images scaled to [0, 1] that an attack may push out of that range.

    Args:
        threat_models: label (an attack's) -> one `Budget` or None (frozen) per input name.
        inputs: input name -> its values (arrays or tensors: the data, or its first batch);
            each input is looked at only if some threat model leaves it unbounded.

    >>> import numpy as np
    >>> x = {"image": np.full((2, 3), 0.5, np.float32)}
    >>> unbounded_on_unit_data({"pgd": {"image": Budget(0.1)}}, x)
    ['pgd']
    >>> unbounded_on_unit_data({"pgd": {"image": Budget(0.1, bounds=(0, 1))}}, x)
    []
    """
    unit: dict[str, bool] = {}  # input name -> its values lie in [0, 1]

    def on_unit_data(name: str) -> bool:
        if name not in unit:
            value = inputs[name]
            dtype = tf.as_dtype(value.dtype)
            if not dtype.is_floating or not np.prod(value.shape):
                unit[name] = False
            elif tf.is_tensor(value):  # reduced where it lives (a GPU): no host copy
                unit[name] = bool(tf.reduce_min(value) >= 0) and bool(tf.reduce_max(value) <= 1)
            else:
                unit[name] = bool(np.min(value) >= 0) and bool(np.max(value) <= 1)
        return unit[name]

    return [
        label
        for label, budgets in threat_models.items()
        if any(
            budget is not None and budget.bounds.is_unbounded and on_unit_data(name)
            for name, budget in budgets.items()
            if name in inputs
        )
    ]


def unbounded_message(labels: Sequence[str]) -> str:
    """The warning for the attacks `unbounded_on_unit_data` named.

    >>> print(unbounded_message(["pgd", "fgsm"]).split(":")[0])
    the data lies in [0, 1] but attacks 'pgd', 'fgsm' are unbounded
    """
    quoted = ", ".join(repr(label) for label in labels)
    which = f"attack {quoted} is" if len(labels) == 1 else f"attacks {quoted} are"
    return (
        f"the data lies in [0, 1] but {which} unbounded: its adversarial inputs may leave the "
        "valid range; pass bounds=(0, 1)"
    )


def _check_keys(argument: str, mapping: Mapping[str, Any], names: list[str]) -> None:
    for key in mapping:
        if key not in names:
            raise invalid(argument, f"keys among {names}", key)
