"""Public names of a package loaded on first use (PEP 562), so that importing one pure
module of the package (a workflow's config schema, say) imports no TensorFlow.

>>> import sys, types
>>> package = types.ModuleType("demo")
>>> sys.modules["demo"] = package
>>> package.__getattr__, package.__dir__ = lazy_names("demo", {"dumps": "json"})
>>> package.dumps({"a": 1}), dir(package)
('{"a": 1}', ['dumps'])
>>> del sys.modules["demo"]
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for `names` (name -> the module defining it).

    A name is imported from its module when it is first read (``package.name`` or
    ``from package import name``), then kept in the package; any other name is an
    ``AttributeError``, as for a module without it.
    """
    names = dict(names)

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
