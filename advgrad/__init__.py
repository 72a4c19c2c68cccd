"""advgrad: adversarial examples and robustness evaluation for TensorFlow/Keras models.

The public API is loaded on first use: ``import advgrad`` itself imports no TensorFlow, so
the command line can start quietly and a config can be checked without it.

>>> import advgrad
>>> isinstance(advgrad.__version__, str), callable(advgrad.input_gradients)
(True, True)
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from advgrad._backend import check_requested_backend
from advgrad._version import __version__

check_requested_backend()

_MODULES = (
    "attacks",
    "data",
    "flags",
    "losses",
    "norms",
    "report",
    "saliency",
    "steps",
    "training",
    "zoo",
)
"""Submodules listed in `__all__`; any other public submodule (``advgrad.gradients``) also
resolves on first use, whatever was imported before."""
_RENAMED = {"sanity": "flags"}
"""Former names of public submodules, still resolved (``advgrad.sanity`` is `advgrad.flags`)."""
_ATTRIBUTES = {
    "ArgumentError": "advgrad._validation",
    "Bounds": "advgrad.budget",
    "Budget": "advgrad.budget",
    "Report": "advgrad.report",
    "adversarial_dataset": "advgrad.generation",
    "check_gradients": "advgrad.gradcheck",
    "evaluate": "advgrad.evaluation",
    "generate": "advgrad.generation",
    "get_attack": "advgrad.attacks",
    "get_suite": "advgrad.attacks",
    "input_gradients": "advgrad.gradients",
    "label_classifier": "advgrad.objective",
    "list_attacks": "advgrad.attacks",
    "list_suites": "advgrad.attacks",
    "load_generated": "advgrad.generation",
    "output_gradients": "advgrad.gradients",
    "register_attack": "advgrad.attacks",
    "verify": "advgrad.generation",
}

__all__ = [
    "ArgumentError",
    "Bounds",
    "Budget",
    "Report",
    "__version__",
    "adversarial_dataset",
    "attacks",
    "check_gradients",
    "data",
    "evaluate",
    "flags",
    "generate",
    "get_attack",
    "get_suite",
    "input_gradients",
    "label_classifier",
    "list_attacks",
    "list_suites",
    "load_generated",
    "losses",
    "norms",
    "output_gradients",
    "register_attack",
    "report",
    "saliency",
    "steps",
    "training",
    "verify",
    "zoo",
]


def __getattr__(name: str) -> Any:
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    elif name in _MODULES or _is_submodule(name):
        value = importlib.import_module(f"advgrad.{name}")
    elif name in _RENAMED:
        value = importlib.import_module(f"advgrad.{_RENAMED[name]}")
    else:
        raise AttributeError(f"module 'advgrad' has no attribute {name!r}")
    globals()[name] = value
    return value


def _is_submodule(name: str) -> bool:
    """Whether ``advgrad.<name>`` is a public submodule (found without importing it)."""
    if name.startswith("_") or not name.isidentifier():
        return False
    return importlib.util.find_spec(f"advgrad.{name}") is not None


def __dir__() -> list[str]:
    """The public API (`__all__`): every name listed resolves, whatever was imported."""
    return sorted(__all__)
