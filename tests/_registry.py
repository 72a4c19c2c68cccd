"""Undoing a test's attack registrations: what the `clean_registry` fixture does
(tests/conftest.py), callable inside a test to check that it works."""

from __future__ import annotations

from typing import Any

import pytest

from advgrad.attacks import registry


def isolate(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Gives the registry a copy of its table and of its entry-point flag, both restored
    when `monkeypatch` is undone. Returns the copy."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_entry_points_loaded", registry._entry_points_loaded)
    return registry._REGISTRY
