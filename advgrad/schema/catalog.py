"""The vocabulary a config is checked against: attacks, norms, data sets and zoo models.

`advgrad.schema.bench` knows no attack, norm, data set or model by name: it checks a document
against a `Catalog`. `advgrad.config.registries.default_catalog` reads advgrad's registries
(which imports TensorFlow, when called); a hand-made catalog checks a document without
TensorFlow at all.

>>> catalog = Catalog(
...     attacks={"fgsm": {"name": "fgsm", "eps": 0.0, "norm": "linf"}},
...     norms=("linf", "l2"),
...     datasets=("digits",),
...     models=("digits-cnn",),
... )
>>> catalog.attack_names, catalog.models
(('fgsm',), ('digits-cnn',))
>>> catalog.check_attack("fgsm", {"norm": "l2"}) is None  # no validator: nothing to check
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Catalog"]


@dataclasses.dataclass(frozen=True, eq=False)
class Catalog:
    """What a config may name, and how one attack's settings are checked.

    Attributes:
        attacks: Registered attack name -> its default config (``get_attack(name).get_config()``,
            ``"name"`` included): the settings an entry of the ``suite`` may give, and their types.
        norms: Canonical norm names (``"linf"``, ``"l2"``, ``"l1"``).
        datasets: Embedded data set names as `advgrad.data.get` spells them
            (``"breast_cancer_two_input"``); configs may write them with hyphens too.
        flattenable: The data sets among `datasets` whose loader takes ``flat``
            (``data.flat`` in a config).
        models: Zoo model names.
        suites: Suite name -> norm name -> its members that attack in that norm, as
            ``{"name", ...settings}`` entries (`advgrad.attacks.suites`); a config's
            ``suite: standard`` stands for them.
        validate_attack: ``validate_attack(name, settings)`` constructs the attack, raising
            `advgrad._validation.ArgumentError` (or another ``ValueError``) for an invalid
            setting; None checks nothing beyond the names and types of the settings.
    """

    attacks: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    norms: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    flattenable: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    suites: Mapping[str, Mapping[str, tuple[Mapping[str, Any], ...]]] = dataclasses.field(
        default_factory=dict
    )
    validate_attack: Callable[[str, dict[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        attacks = {str(name): dict(config) for name, config in dict(self.attacks).items()}
        object.__setattr__(self, "attacks", attacks)
        for field in ("norms", "datasets", "flattenable", "models"):
            object.__setattr__(self, field, tuple(str(v) for v in getattr(self, field)))

    @property
    def attack_names(self) -> tuple[str, ...]:
        """The attack names, in the catalog's order (the registry's: sorted)."""
        return tuple(self.attacks)

    def check_attack(self, name: str, settings: Mapping[str, Any]) -> None:
        """Check one attack's settings by constructing it (nothing without a validator).

        Raises:
            ArgumentError: A setting is invalid; ``argument`` names it.
            ValueError: Any other refusal by the attack.
        """
        if self.validate_attack is not None:
            self.validate_attack(name, dict(settings))
