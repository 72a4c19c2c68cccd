"""The problems of a config: collected by YAML path, raised all at once as a `ConfigError`.

Pure (no TensorFlow): used by `advgrad.schema.bench` while parsing and by
`advgrad.config.build` while building.

>>> problems = Problems()
>>> problems.expected("eps[0]", "a finite number >= 0", -0.1)
>>> from advgrad._validation import invalid
>>> problems.argument_error("suite[1]", invalid("steps", "an int >= 1", 0))
>>> print(*problems.items, sep="\\n")
eps[0]: expected a finite number >= 0, received -0.1
suite[1].steps: expected an int >= 1, received steps=0
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from advgrad._validation import ArgumentError, describe

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config that cannot run; ``problems`` lists every problem found, by path.

    ``str(error)`` is one line: the file, then the problems separated by ``"; "``.

    Attributes:
        problems: One message per problem, e.g. ``"suite[1].steps: expected an int, received
            'ten'"``.
        source: The config file, or None for a config given as a mapping.

    >>> str(ConfigError(["eps: expected a finite number >= 0, received -1"], source="a.yaml"))
    'a.yaml: eps: expected a finite number >= 0, received -1'
    """

    def __init__(self, problems: Sequence[str], source: str | os.PathLike | None = None):
        self.problems = [" ".join(str(p).split()) for p in problems] or ["invalid config"]
        self.source = None if source is None else str(source)
        head = f"{self.source}: " if self.source else ""
        count = len(self.problems)
        lead = f"{count} problems: " if count > 1 else ""
        super().__init__(head + lead + "; ".join(self.problems))


_MAX_PROBLEMS = 100
"""Problems kept of one config; the rest are counted (a hostile file could hold millions)."""

_MAX_KEY = 60
"""Longest key shown whole in a path; longer ones are cut (``inputs.aaaa...``)."""


class Problems:
    """Collects problems by path (the first `_MAX_PROBLEMS`, the rest counted); raises them
    all at once."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.dropped = 0

    def add(self, path: str, message: str) -> None:
        """Keep ``path: message`` (the message alone for an empty path)."""
        if len(self.items) >= _MAX_PROBLEMS:
            self.dropped += 1
            return
        self.items.append(f"{path}: {message}" if path else message)

    def expected(self, path: str, expected: str, value: Any, choices: Sequence[str] = ()) -> None:
        """``path: expected <expected>, received <value>``, with a did-you-mean among
        `choices` where one is close."""
        self.add(path, f"expected {expected}, received {describe(value)}{suggest(value, choices)}")

    def argument_error(self, path: str, err: ArgumentError) -> None:
        """An attack's (or a budget's) invalid argument, at ``path.argument``."""
        self.add(join_path(path, err.argument), err.reason.rstrip("."))

    def check(
        self,
        path: str,
        value: Any,
        check: Callable[[str, Any], Any],
        *,
        expected: str | None = None,
    ) -> Any:
        """``check(path, value)`` (a shared check of `advgrad._validation`), or None with a
        problem at `path` (its expectation, or `expected` in the config's own words)."""
        try:
            return check(path, value)
        except ArgumentError as err:
            self.expected(path, expected or err.expected or "a valid value", value)
            return None

    def raise_if_any(self, source: Any = None) -> None:
        """Raise every problem kept as one `ConfigError` (nothing when there is none)."""
        if self.items:
            more = [f"and {self.dropped} more problems"] if self.dropped else []
            raise ConfigError(self.items + more, source=source)


def join_path(path: str, key: Any) -> str:
    """The YAML path of `key` under `path` (an index in brackets; a long key cut).

    >>> join_path("suite", 1), join_path("suite[1]", "steps"), join_path("", "eps")
    ('suite[1]', 'suite[1].steps', 'eps')
    """
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)
    if len(text) > _MAX_KEY:
        text = text[: _MAX_KEY - 3] + "..."
    return f"{path}.{text}" if path else text


def suggest(word: Any, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to `word`, or "" when none is close.

    >>> suggest("modle", ["model", "data"]), suggest(3, ["model"])
    (" (did you mean 'model'?)", '')
    """
    if not isinstance(word, str):
        return ""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_keys(mapping: Mapping, allowed: Sequence[str], path: str, problems: Problems) -> None:
    """An ``unknown key`` problem at `path` for each key of `mapping` not in `allowed`."""
    for key in mapping:
        if key not in allowed:
            problems.add(path, f"unknown key {describe(key)}{suggest(key, allowed)}")


def one_line(err: BaseException) -> str:
    """An exception's message on one line (whitespace runs become one space)."""
    return " ".join(str(err).split())


def check_document(
    document: Any,
    allowed: Sequence[str],
    required: Sequence[str],
    expected: str,
    problems: Problems,
    source: Any = None,
) -> None:
    """A config document's top level: a mapping (else raised at once, saying `expected`),
    with only `allowed` keys and every `required` one."""
    if not isinstance(document, Mapping):
        problems.expected("", expected, document)
        problems.raise_if_any(source)
    for key in document:
        if key not in allowed:
            problems.add("", f"unknown key {key!r}{suggest(key, allowed)}")
    for key in required:
        if key not in document:
            problems.add("", f"missing key {key!r}")
