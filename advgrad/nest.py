"""One input, a list or a dict of inputs: a structure and its flat, named leaves.

Everything inside advgrad works on an ordered ``{name: tensor}`` mapping; `Structure`
remembers how the caller gave the inputs so that results come back in the same shape.

>>> import numpy as np
>>> s = Structure.of({"b": np.zeros(2), "a": np.ones(2)})
>>> s.names, s.kind
(('b', 'a'), 'dict')
>>> s.pack([1, 2])
{'b': 1, 'a': 2}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Structure:
    """How a nest of inputs is laid out: a single leaf, a list/tuple or a dict."""

    kind: str  # "single", "list" or "dict"
    names: tuple[str, ...]

    @classmethod
    def of(cls, value: Any, default_names: Sequence[str] | None = None) -> Structure:
        """Describe `value`; list leaves take `default_names` when given, else ``input_i``."""
        if isinstance(value, Mapping):
            return cls("dict", tuple(str(k) for k in value))
        if isinstance(value, (list, tuple)):
            if default_names is not None and len(default_names) == len(value):
                return cls("list", tuple(default_names))
            return cls("list", tuple(f"input_{i}" for i in range(len(value))))
        name = default_names[0] if default_names and len(default_names) == 1 else "input"
        return cls("single", (name,))

    def leaves(self, value: Any) -> list[Any]:
        """The leaves of `value` (laid out like this structure) in `names` order."""
        if self.kind == "dict":
            return [value[name] for name in self.names]
        if self.kind == "list":
            return list(value)
        return [value]

    def pack(self, leaves: Sequence[Any]) -> Any:
        """Inverse of `leaves`."""
        leaves = list(leaves)
        if self.kind == "dict":
            return dict(zip(self.names, leaves, strict=True))
        if self.kind == "list":
            return leaves
        (leaf,) = leaves
        return leaf

    def label(self, argument: str, name: str) -> str:
        """How to name leaf `name` of argument `argument` in an error: x, x[1] or x['a']."""
        if self.kind == "dict":
            return f"{argument}[{name!r}]"
        if self.kind == "list":
            return f"{argument}[{self.names.index(name)}]"
        return argument

    def map(self, fn, *values: Any) -> Any:
        """Apply ``fn(name, *leaves)`` leaf-wise and pack the results."""
        columns = [self.leaves(v) for v in values]
        return self.pack([fn(name, *row) for name, *row in zip(self.names, *columns, strict=True)])
