"""YAML reading that remembers lines and refuses duplicate keys.

PyYAML's SafeLoader (no arbitrary objects) forgets where a value was written and keeps the
last of two equal keys; a rule-file error needs the line, and a duplicated ``action:`` must
not silently win.
"""

from __future__ import annotations

from typing import Any

import yaml

from sqlguard.policy.errors import Problem


class Mapping(dict):
    """A YAML mapping with the line of itself and of each of its keys (1-based)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.line = 0
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        """The line of ``key`` if written, else of the mapping."""
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    """SafeLoader that builds ``Mapping``s and notes duplicate keys as problems."""

    def __init__(self, stream: str | bytes, name: str) -> None:
        super().__init__(stream)
        self.name = name
        self.problems: list[Problem] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Mapping:
        mapping = Mapping()
        mapping.line = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool | None):
                self.problems.append(Problem(self.name, line, "a key must be a plain word"))
                continue
            if key in mapping:
                text = f"duplicate key {key!r} (first at line {mapping.key_lines[key]}); "
                self.problems.append(Problem(self.name, line, text + "write each key once"))
            mapping[key] = self.construct_object(value_node, deep=True)
            mapping.key_lines[key] = line
        return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)


def read_yaml(name: str, text: str | bytes) -> tuple[Any, list[Problem]]:
    """The document in ``text`` (None when empty or unreadable) and the problems found.

    >>> read_yaml("r.yaml", "a: 1\\na: 2\\n")[1][0].line
    2
    """
    loader = _Loader(text, name)
    try:
        return loader.get_single_data(), loader.problems
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else 0
        return None, [Problem(name, line, f"not valid YAML ({problem})")]
    finally:
        loader.dispose()
