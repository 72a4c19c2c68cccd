"""What generation and training configs share: one attack at one radius, on the benchmark keys.

A generation or training config names one ``attack`` (a registered name or a mapping) and one
``eps``, next to the keys a benchmark config has (``model``, ``data``, ``norm``, ``bounds``,
...). `parse_shared` checks those keys with the benchmark parser (`advgrad.schema.bench.parse`,
the attack as a one-attack suite) and reports its problems in the config's own words
(``attack.steps``, not ``suite[0].steps``). Pure: no TensorFlow.

>>> from advgrad.schema.catalog import Catalog
>>> from advgrad.schema.problems import Problems
>>> catalog = Catalog(attacks={"pgd": {"name": "pgd", "eps": 0.0, "norm": "linf", "steps": 40}},
...                   norms=("linf",), datasets=("digits",), models=("digits-cnn",))
>>> problems = Problems()
>>> check_attack_and_eps({"attack": "pgd", "eps": "curve"}, problems)
>>> problems.items
["eps: expected one radius (a finite number >= 0), received 'curve'"]
>>> shared = {"model": "digits-cnn", "data": {"name": "digits"}, "eps": 0.1, "suite": ["pgd"]}
>>> parse_shared(shared, catalog, None, problems).suite[0].name
'pgd'
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from advgrad.schema.bench import AttackConfig, BenchConfig, parse
from advgrad.schema.catalog import Catalog
from advgrad.schema.problems import ConfigError, Problems

__all__ = ["SHARED_KEYS", "OneAttack", "check_attack_and_eps", "parse_shared"]

SHARED_KEYS = (
    "model",
    "imports",
    "data",
    "eps",
    "norm",
    "bounds",
    "inputs",
    "batch_size",
    "seed",
    "output",
    "distribute",
)
"""The benchmark keys a generation or training config has too, checked by `parse_shared`."""


@dataclasses.dataclass(frozen=True)
class OneAttack:
    """A config of one attack at one radius.

    Attributes:
        bench: The shared part, as a `BenchConfig` whose suite is the one attack and whose
            eps is the one radius (so `advgrad.config.build_run` builds model, data and
            attack with every benchmark check).
    """

    bench: BenchConfig

    @property
    def attack(self) -> AttackConfig:
        """The attack (name and settings)."""
        return self.bench.suite[0]

    @property
    def eps(self) -> float:
        """The radius."""
        return self.bench.eps[0]


def check_attack_and_eps(document: Mapping[str, Any], problems: Problems) -> None:
    """``attack`` is one attack and ``eps`` one radius (not a list, not ``curve``)."""
    attack = document.get("attack")
    if "attack" in document and not isinstance(attack, (str, Mapping)):
        problems.expected(
            "attack", "one attack: a registered name or a mapping with `name`", attack
        )
    eps = document.get("eps")
    if "eps" in document and isinstance(eps, (list, str)):  # "curve" is a benchmark's
        problems.expected("eps", "one radius (a finite number >= 0)", eps)


def parse_shared(
    shared: dict[str, Any],
    catalog: Catalog,
    base: Any,
    problems: Problems,
    only: str | None = None,
) -> BenchConfig | None:
    """`parse` of the benchmark keys in `shared`; its problems added in the config's words.

    Args:
        shared: The benchmark keys, with the attack as ``suite: [attack]`` (absent when the
            config's ``attack`` is missing or malformed: that problem is said as `attack`).
        catalog: Names known to the parser.
        base: The folder relative paths are read from.
        problems: Where the problems go.
        only: Keep only problems of this key, said as the key it stands for (``data`` as
            ``validation``, ``suite`` as ``robust_check``): a second part of one config.

    Returns:
        The parsed `BenchConfig`, or None when it has problems.
    """
    try:
        return parse(shared, catalog, base=base, source=None)
    except ConfigError as err:
        for problem in err.problems:
            if "suite" not in shared and problem == "missing key 'suite'":
                continue  # said as `attack`
            if only is not None and not problem.startswith(only):
                continue  # said by the main parse
            problems.items.append(_renamed(problem, only))
        return None


def _renamed(problem: str, only: str | None) -> str:
    problem = re.sub(r"; suites: [^;]*$", "", problem)  # one attack: no suite to name
    if only == "data":
        return re.sub(r"^data", "validation", problem)
    if only == "suite":
        return re.sub(r"^suite(\[0\])?", "robust_check", problem)
    return re.sub(r"^suite(\[0\])?", "attack", problem)
