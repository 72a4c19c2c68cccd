"""The safe YAML loader every config is read with, and `load_with`: read, then parse.

A config file is read boundedly (a regular file of at most 1 MiB) and composed by a
``yaml.SafeLoader`` that also refuses aliases, duplicate keys and deep nesting, so that no
document can run code or expand past its size. Every workflow's ``load_*`` is `load_with`
and its own parser.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
>>> _ = path.write_text("a: 1\\nb: &x [1]\\nc: *x\\n")
>>> try:
...     read_yaml(path)
... except ConfigError as err:
...     print(err.problems)
['YAML aliases (*x) are not allowed in a config (line 3)']
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import yaml

from advgrad._io import FileTooLargeError, NotRegularFileError, read_regular
from advgrad._validation import describe, invalid
from advgrad.schema.catalog import Catalog
from advgrad.schema.problems import ConfigError, one_line

__all__ = ["load_with", "read_yaml"]

_CONFIG_LIMIT = 1 << 20
"""The largest config file read, in bytes (1 MiB: a config is a few hundred bytes)."""
_MAX_DEPTH = 64
"""The deepest nesting of collections a config may hold (per-feature bounds need a few)."""


class _Refused(yaml.YAMLError):
    """A document the config loader refuses: ``problem`` is the config's one-line problem."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def _line(node_or_event: Any) -> str:
    mark = getattr(node_or_event, "start_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for configs, refusing what a config never needs while it composes:

    - aliases (``*name``, merges of ``<<: *name`` too): a few hundred bytes of nested aliases
      ("billion laughs") would expand to billions of values wherever a config is walked;
      refused before anything is expanded;
    - nesting deeper than `_MAX_DEPTH` (PyYAML composes recursively);
    - duplicate keys in a mapping (the last one would silently win);
    - integers too long for ``int`` (a ``ValueError`` of PyYAML's, as invalid YAML).

    Python tags (``!!python/...``) are refused as by ``yaml.safe_load``.
    """

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            name = event.anchor if len(event.anchor) <= 40 else event.anchor[:37] + "..."
            raise _Refused(f"YAML aliases (*{name}) are not allowed in a config{_line(event)}")
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                event = self.peek_event()
                raise _Refused(f"YAML nested deeper than {_MAX_DEPTH} levels{_line(event)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                    key_node, yaml.ScalarNode
                ):
                    continue  # merges are checked by PyYAML; unhashable keys refused by it
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: PyYAML refuses it below
                    continue
                if duplicate:
                    raise _Refused(f"duplicate key {describe(key)}{_line(key_node)}")
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            digits = sum(c.isdigit() for c in str(node.value))
            limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()
            raise yaml.constructor.ConstructorError(
                None, None, f"integer of {digits} digits (at most {limit})", node.start_mark
            ) from None


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _ConfigLoader.construct_yaml_int)


def read_yaml(path: str | os.PathLike) -> Any:
    """The document of a YAML config file, read safely (``yaml.SafeLoader``) and boundedly.

    Only a regular file of at most 1 MiB is read (a device such as ``/dev/zero``, a FIFO or
    a folder is refused at once). The document may hold no Python tags, no aliases (``*a``,
    so it cannot expand past its size), no duplicate keys and no nesting deeper than 64.

    Raises:
        ConfigError: If the file is missing, unreadable, not a regular file or over 1 MiB,
            is not valid YAML, holds ``!!python/...`` tags (refused: configs are loaded
            like ``yaml.safe_load``), aliases or duplicate keys, or nests too deep.
        ValueError: If ``path`` is not a path.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise invalid("path", "a path to a YAML file", path)
    path = pathlib.Path(path).expanduser()
    try:
        text = read_regular(path, _CONFIG_LIMIT).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"config file not found: {path}"]) from None
    except NotRegularFileError:
        raise ConfigError([f"not a regular file: {path}"]) from None
    except FileTooLargeError as err:
        problem = f"config file too large: {err.size} bytes (limit {_CONFIG_LIMIT >> 20} MiB)"
        raise ConfigError([problem], source=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"cannot read the config file: {err}"], source=path) from None
    loader = _ConfigLoader(text)
    try:
        return loader.get_single_data()
    except _Refused as err:
        raise ConfigError([err.problem], source=path) from None
    except yaml.constructor.ConstructorError as err:
        problem = getattr(err, "problem", "") or one_line(err)
        if not problem.startswith("could not determine a constructor"):
            raise ConfigError([_invalid_yaml(err)], source=path) from None
        mark = err.problem_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(
            [f"refused unsafe YAML{where}: {problem}; configs are loaded with yaml.safe_load"],
            source=path,
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError([_invalid_yaml(err)], source=path) from None
    finally:
        loader.dispose()


def _invalid_yaml(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or one_line(err)
    return f"invalid YAML{where}: {problem}"


def load_with(parser: Callable[..., Any], path: str | os.PathLike, catalog: Catalog) -> Any:
    """Read a YAML file safely and parse it with `parser` (`parse`, or a generation,
    training or saliency parser), relative paths from the file's folder.

    Raises:
        ConfigError: Every problem found, by its YAML path.
    """
    document = read_yaml(path)
    path = pathlib.Path(path).expanduser()
    return parser(document, catalog, base=path.parent, source=path)
