"""Rule-file problems: each names the file, line, rule (or group, list) and field.

A mistake in a rule file must never silently weaken the firewall, so the loader collects
every problem it finds (not only the first: a DBA fixes them in one go) and refuses the set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake, with where it is and what to write instead.

    >>> str(Problem("a.yaml", 7, "'x' is not a kind", "rule 'no-drop'", "match.kinds"))
    "a.yaml:7: rule 'no-drop': match.kinds: 'x' is not a kind"
    """

    file: str
    line: int
    text: str
    owner: str = ""
    """What the field belongs to: "rule 'id'", "group 'name'", "list 'name'" or ""."""
    field: str = ""

    def __str__(self) -> str:
        parts = [f"{self.file}:{self.line}" if self.line else self.file]
        parts += [part for part in (self.owner, self.field) if part]
        return ": ".join([*parts, self.text])


class RuleError(ValueError):
    """The rule files cannot be used; ``problems`` says where and what to fix."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class RulesUnavailable(RuleError):
    """The rule files could not be read at all (no such directory, unreadable file)."""
