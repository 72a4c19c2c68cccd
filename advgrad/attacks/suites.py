"""Named attack suites: the ensembles an evaluation runs as a worst-case cascade.

- ``"standard"``: APGD-CE -> APGD-T -> FAB-T -> Square, AutoAttack's standard ensemble
  (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an ensemble
  of diverse parameter-free attacks"): two gradient attacks with different losses, a
  minimal-norm attack, and a score-based search that needs no gradient (it sees through
  gradient masking).
- ``"fast"``: APGD-CE -> APGD-T, the two gradient attacks alone.
- ``"adaptive"``: APGD-CE (8 steps) on every sample, then APGD-T (3 targets) only on the
  samples whose margin came close to the boundary, then Square (2,000 queries) only where
  the gradients made no progress (masking): the budget follows the evidence, per sample
  (`RULES`; `advgrad.evaluation.adaptive` decides and records why).

Every member keeps its paper defaults (100 steps, 9 target classes, 5,000 queries); a member
that does not attack in the threat model's norm is left out (L1: FAB-T and Square, so both
suites are APGD-CE -> APGD-T there). In `advgrad.evaluate` a named suite is a cascade: each
attack runs only on the samples still robust (``individual=False``), as in AutoAttack.

On fewer classes a suite runs as its members are defined there (`Attack.for_classes`, which
`advgrad.evaluate` applies and records in the report): APGD-T and FAB-T aim at each of the
classes - 1 other classes, and below 4 classes APGD-T's targeted DLR (its scale needs the
4th-largest logit) is its numerator, the targeted margin (``loss="margin"``).

>>> import advgrad
>>> [a.name for a in advgrad.get_suite("standard", bounds=(0.0, 1.0))]
['apgd', 'apgd-t', 'fab-t', 'square']
>>> [a.name for a in advgrad.get_suite("standard", norm="l1")]
['apgd', 'apgd-t']
>>> apgd_t = advgrad.get_suite("fast")[1]  # as defined, and as it runs on 3 classes
>>> [(a.n_target_classes, a.loss) for a in (apgd_t, apgd_t.for_classes(3))]
[(9, 'dlr'), (2, 'margin')]
"""

from __future__ import annotations

from typing import Any

from advgrad import norms
from advgrad._validation import invalid
from advgrad.attacks.base import Attack
from advgrad.attacks.registry import get_attack, registered_class

SUITES: dict[str, tuple[dict[str, Any], ...]] = {
    "standard": (
        {"name": "apgd", "loss": "ce"},
        {"name": "apgd-t"},
        {"name": "fab-t"},
        {"name": "square"},
    ),
    "fast": (
        {"name": "apgd", "loss": "ce"},
        {"name": "apgd-t"},
    ),
    "adaptive": (
        {"name": "apgd", "loss": "ce", "steps": 8},
        {"name": "apgd-t", "n_target_classes": 3},
        {"name": "square", "queries": 2000},
    ),
}
"""Each suite's members, in cascade order: registry names and the settings they pin."""

RULES: dict[str, dict[str, str]] = {
    "adaptive": {"apgd": "all", "apgd-t": "near", "square": "stalled"},
}
"""Which of the samples still robust each member of a suite runs on, by member name: "all"
(the cascade's rule, every member of a suite without an entry here), "near" (those whose
margin the earlier members brought close to the boundary), "stalled" (those on which the
gradient members made no progress: gradient masking). `advgrad.evaluation.adaptive` holds
the thresholds and the evidence."""


class Suite(list[Attack]):
    """A named suite's attacks, in cascade order (a list), with the rule of each member.

    >>> suite = get_suite("adaptive")
    >>> suite.name, suite.rules
    ('adaptive', ('all', 'near', 'stalled'))
    """

    def __init__(self, attacks: Any, name: str, rules: tuple[str, ...]):
        super().__init__(attacks)
        self.name = name
        self.rules = rules

    @classmethod
    def named(cls, name: str, attacks: Any) -> Suite:
        """`attacks` (suite `name`'s members, configured elsewhere, e.g. by a config) with
        the rules of their names in suite `name`."""
        rules = RULES.get(name.lower(), {})
        return cls(attacks, name.lower(), tuple(rules.get(a.name, "all") for a in attacks))

    @property
    def adaptive(self) -> bool:
        """Whether a member runs on fewer than every sample still robust."""
        return any(rule != "all" for rule in self.rules)


def list_suites() -> list[str]:
    """The suite names, sorted."""
    return sorted(SUITES)


def suite_entries(name: str, norm: Any = "linf") -> list[dict[str, Any]]:
    """The members of suite `name` that attack in `norm`, as ``{"name", ...settings}``.

    Raises:
        ArgumentError: unknown suite name or norm, named.
    """
    if not isinstance(name, str) or name.lower() not in SUITES:
        raise invalid("suite", f"a suite name among {list_suites()}", name)
    norm_name = norms.get(norm).get_config()["name"]
    return [
        dict(entry)
        for entry in SUITES[name.lower()]
        if norm_name in registered_class(entry["name"]).NORMS
    ]


def get_suite(name: str, **settings: Any) -> Suite:
    """The attacks of suite `name`, each given the `settings` it takes.

    Args:
        name: "standard", "fast" or "adaptive" (`list_suites`).
        **settings: Settings for every member, e.g. ``eps``, ``norm``, ``bounds``, ``seed``,
            ``batch_size``; a member that has no such setting ignores it.

    Returns:
        The attacks, in cascade order: a `Suite` (a list that also carries each member's
        rule; `advgrad.evaluate` follows them).

    Raises:
        ArgumentError: unknown suite, or an invalid setting (named).
    """
    attacks, rules = [], []
    entries = suite_entries(name, settings.get("norm", "linf"))
    for entry in entries:
        cls = registered_class(entry["name"])
        taken = {k: v for k, v in settings.items() if k in cls.DEFAULTS}
        pinned = {k: v for k, v in entry.items() if k != "name" and k in cls.DEFAULTS}
        attacks.append(get_attack(entry["name"], **{**taken, **pinned}))
        rules.append(RULES.get(name.lower(), {}).get(entry["name"], "all"))
    return Suite(attacks, name.lower(), tuple(rules))


__all__ = ["RULES", "SUITES", "Suite", "get_suite", "list_suites", "suite_entries"]
