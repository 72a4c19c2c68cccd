"""The attack registry: names to classes, and third-party attacks via entry points.

>>> import advgrad
>>> "pgd" in advgrad.list_attacks()
True
>>> advgrad.get_attack("pgd", eps=0.1, steps=5).steps
5
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from advgrad._validation import invalid

ENTRY_POINT_GROUP = "advgrad.attacks"
_REGISTRY: dict[str, type] = {}
_entry_points_loaded = False


def register_attack(name: str) -> Callable[[type], type]:
    """Class decorator: make an `Attack` subclass available as `get_attack(name)`.

    >>> import advgrad
    >>> from advgrad.attacks import IterativeAttack
    >>> @advgrad.register_attack("my-bim")
    ... class MyBIM(IterativeAttack):
    ...     pass
    >>> advgrad.get_attack("my-bim", steps=3).name
    'my-bim'
    """
    if not isinstance(name, str) or not name:
        raise invalid("name", "a non-empty string", name)

    def decorate(cls: type) -> type:
        cls.name = name
        _REGISTRY[name.lower()] = cls
        return cls

    return decorate


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()  # importing the module registers its attacks
        if isinstance(loaded, type) and entry.name.lower() not in _REGISTRY:
            register_attack(entry.name)(loaded)


def list_attacks() -> list[str]:
    """Names of every registered attack, built-in and third-party, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def registered_class(name: str) -> type:
    """The attack class registered as `name` (case-insensitive).

    Raises:
        ValueError: unknown name (named).
    """
    _load_entry_points()
    cls = _REGISTRY.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise invalid("name", f"one of the registered attacks {list_attacks()}", name)
    return cls


def get_attack(name: str, **settings: Any):
    """A configured attack by registry name (case-insensitive).

    Raises:
        ValueError: unknown name, or an invalid setting (named).
    """
    return registered_class(name)(**settings)


def from_config(config: Mapping[str, Any]):
    """Rebuild an attack from `attack.get_config()` (which includes its "name")."""
    if not isinstance(config, Mapping) or "name" not in config:
        raise invalid("config", "a mapping with a 'name' key", config)
    settings = {k: v for k, v in config.items() if k != "name"}
    return get_attack(config["name"], **settings)


__all__ = ["from_config", "get_attack", "list_attacks", "register_attack", "registered_class"]
