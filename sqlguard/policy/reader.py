"""Reading one rule file's fields while collecting problems, instead of stopping at the first.

A field that cannot be read becomes ``None`` plus a ``Problem`` naming file, line, owner (rule,
group or list) and field; the loader refuses the set if any problem was noted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlguard.policy.errors import Problem
from sqlguard.policy.fields import FieldError
from sqlguard.policy.yamlfile import Mapping

T = TypeVar("T")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
_RESERVED_PREFIX = "sqlguard."


class FileReader:
    """One rule file: its top-level sections and the problems found in it."""

    def __init__(self, name: str, document: Mapping, problems: list[Problem]) -> None:
        self.name = name
        self.document = document
        self.problems = problems

    def problem(self, line: int, text: str, owner: str = "", field: str = "") -> None:
        """Note a problem; nothing is raised, so later problems are found too."""
        self.problems.append(Problem(self.name, line, text, owner, field))

    def field(
        self, mapping: Mapping, key: str, owner: str, parse: Callable[[Any], T], prefix: str = ""
    ) -> T | None:
        """``parse`` of ``mapping[key]``; None when absent or (with a problem) invalid."""
        if key not in mapping:
            return None
        try:
            return parse(mapping[key])
        except FieldError as exc:
            field = f"{prefix}{key}" + (f".{exc.part}" if exc.part else "")
            self.problem(mapping.line_of(key), str(exc), owner, field)
            return None

    def check_keys(
        self,
        mapping: Mapping,
        allowed: Sequence[str],
        required: Sequence[str],
        owner: str,
        prefix: str = "",
    ) -> None:
        """Note unknown keys (with the allowed ones) and missing required keys."""
        for key in mapping:
            if key not in allowed:
                self.problem(
                    mapping.line_of(key),
                    f"unknown key {key!r}; expected one of: {', '.join(allowed)}",
                    owner,
                    f"{prefix}{key}",
                )
        for key in required:
            if key not in mapping:
                self.problem(mapping.line, f"missing key {key!r}", owner, f"{prefix}{key}")

    def check_id(self, value: Any, line: int, what: str) -> bool:
        """Is ``value`` a valid name for a rule, group or list? (Notes a problem if not.)"""
        if (
            isinstance(value, str)
            and _ID.fullmatch(value)
            and not value.startswith(_RESERVED_PREFIX)
        ):
            return True
        self.problem(
            line,
            f"{what} name {value!r} must be lower-case letters, digits, '.', '_' or '-', "
            f"and not start with {_RESERVED_PREFIX!r} (reserved for built-in rules)",
            field="id" if what == "rule" else "",
        )
        return False
