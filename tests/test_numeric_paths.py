"""Every attack keeps the output invariant (tests/invariants.py) on every numeric path:
a model under a mixed-precision policy (float16, bfloat16) and XLA (``jit_compile=True``).

The paths are the axes; the model is the zoo's digits CNN, rebuilt under the path's policy
with the same weights (tests/conftest.py). XLA compiles each attack family (module) once:
APGD-T shares APGD's loop, and PGD (with BIM) has its own XLA tests in tests/test_xla.py.
Few steps and queries: the invariant holds at any length.
"""

from __future__ import annotations

import invariants
import numpy as np
import pytest

import advgrad
from advgrad.attacks import registry

EPS = {"linf": 0.1, "l2": 1.0, "l1": 4.0}
BOUNDS = (0.0, 1.0)
SETTINGS = {
    "steps": 2,
    "restarts": 2,
    "seed": 1,
    "queries": 10,
    "binary_search_steps": 1,
    "candidates": 3,
    "n_target_classes": 2,
}
MINIMAL_NORM = ("cw-l2", "deepfool", "fmn")  # no budget: only bounds and finiteness hold
POLICIES = ("mixed_float16", "mixed_bfloat16")


def builtin_attacks() -> list[str]:
    """Every registered attack, except those other test modules register for themselves."""
    return [
        name
        for name in advgrad.list_attacks()
        if not registry._REGISTRY[name].__module__.rsplit(".", 1)[-1].startswith("test_")
    ]


def _one_per_family(names: list[str]) -> list[str]:
    """The first attack of each module, PGD's (tests/test_xla.py) left out."""
    seen, first = {"advgrad.attacks.pgd"}, []
    for name in names:
        module = registry._REGISTRY[name].__module__
        if module not in seen:
            seen.add(module)
            first.append(name)
    return first


CASES = [pytest.param(n, p, id=f"{n}-{p}") for p in POLICIES for n in builtin_attacks()]
CASES += [  # an XLA compilation takes seconds
    pytest.param(n, "xla", id=f"{n}-xla", marks=pytest.mark.slow)
    for n in _one_per_family(builtin_attacks())
]


@pytest.mark.parametrize(("name", "path"), CASES)
def test_every_attack_keeps_the_invariant(digits_cnn, mixed_digits_cnn, digits, name, path):
    x, y = digits.x_test[:8], digits.y_test[:8]
    cls = registry._REGISTRY[name]
    settings = {k: v for k, v in SETTINGS.items() if k in cls.DEFAULTS}
    if name == "eot":  # a wrapper: its settings are those of the attack it wraps
        settings = {"attack": "pgd", "samples": 2, "steps": 2, "seed": 1}
    norm = "linf" if "linf" in cls.NORMS else cls.NORMS[0]
    attack = advgrad.get_attack(
        name, eps=EPS[norm], norm=norm, bounds=BOUNDS, jit_compile=path == "xla", **settings
    )
    model = digits_cnn if path == "xla" else mixed_digits_cnn(path)
    result = attack.run(model, x, y)
    has_budget = "eps" in cls.DEFAULTS and name not in MINIMAL_NORM
    invariants.assert_within(
        result.x_adv, x, eps=EPS[norm] if has_budget else None, norm=norm, bounds=BOUNDS
    )
    if result.loss_trace is not None:
        assert np.all(np.isfinite(result.loss_trace))
