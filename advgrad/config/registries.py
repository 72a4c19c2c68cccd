"""The default `Catalog`: advgrad's own registries (attacks, norms, data sets, zoo models).

Reading them imports TensorFlow (through the attacks), so it happens when
`default_catalog` is first called, never when a config module is imported.

>>> catalog = default_catalog()
>>> "pgd" in catalog.attack_names, catalog.norms
(True, ('linf', 'l2', 'l1'))
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from advgrad.schema.catalog import Catalog

__all__ = ["default_catalog"]


def default_catalog() -> Catalog:
    """The catalog of advgrad's registries.

    Attacks come from `advgrad.attacks.list_attacks`, norms from `advgrad.norms.names`,
    data sets from `advgrad.data.names` and models from `advgrad.zoo.names` (no data set
    is built). The result is cached, per set of registered attacks: an attack registered
    later is seen by the next call.
    """
    from advgrad.attacks import list_attacks

    return _from_registries(tuple(list_attacks()))


def _validate_attack(name: str, settings: dict[str, Any]) -> None:
    from advgrad.attacks import get_attack

    get_attack(name, **settings)


def _takes_flat(data: Any, name: str) -> bool:
    """Whether data set `name`'s loader (`advgrad.data.<name>`) has a ``flat`` parameter."""
    loader = getattr(data, name, None)
    return callable(loader) and "flat" in inspect.signature(loader).parameters


@functools.lru_cache(maxsize=8)
def _from_registries(attack_names: tuple[str, ...]) -> Catalog:
    from advgrad import data, norms, zoo
    from advgrad.attacks import get_attack
    from advgrad.attacks.suites import list_suites, suite_entries

    return Catalog(
        attacks={name: get_attack(name).get_config() for name in attack_names},
        norms=tuple(norms.names()),
        datasets=tuple(data.names()),
        flattenable=tuple(name for name in data.names() if _takes_flat(data, name)),
        models=tuple(zoo.names()),
        suites={
            name: {norm: tuple(suite_entries(name, norm)) for norm in norms.names()}
            for name in list_suites()
        },
        validate_attack=_validate_attack,
    )
