"""Glob lists with ``!`` exclusions: how rule files name users, tables, commands, settings...

Two rule-language features plain ``fnmatch`` lacks live here:

* ``!pattern`` excludes: a value matches a list when it matches some plain pattern and no
  ``!`` pattern; a list of only ``!`` patterns starts from "everything" (``*``);
* names (tables, functions, columns) are dotted: a pattern without a dot looks at the last
  part only (``users`` matches ``users`` and ``app.users``), a pattern with a dot at the
  qualified name (``app.*`` matches ``app.users`` only).

Matching runs for every statement, so a list is compiled once, when the rules load, into at
most four regular expressions (plain and excluded, whole value and last part): one regex
call per value, however long the list (the shipped function allow-list has 200 entries).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Globs:
    """Some globs as two alternations: those matched against the whole value, and those
    matched against its last dotted part.

    >>> globs = Globs.compile(["pg_read_*", "app.t"], names=True, flags=re.IGNORECASE)
    >>> globs.matches("PG_CATALOG.PG_READ_FILE"), globs.matches("t"), globs.matches("app.t")
    (True, False, True)
    """

    whole: re.Pattern[str] | None
    last_part: re.Pattern[str] | None

    @classmethod
    def compile(cls, texts: Iterable[str], *, names: bool, flags: int) -> Globs:
        """``names``: dotless globs look at the last part of a dotted name only."""
        texts = list(texts)
        last = [text for text in texts if names and "." not in text]
        whole = [text for text in texts if text not in last]
        return cls(_alternation(whole, flags), _alternation(last, flags))

    def matches(self, value: str) -> bool:
        """Does one of the globs match all of ``value`` (or of its last part)?"""
        if self.whole is not None and self.whole.match(value):
            return True
        return self.last_part is not None and bool(self.last_part.match(value.rpartition(".")[2]))


def _alternation(texts: list[str], flags: int) -> re.Pattern[str] | None:
    if not texts:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(text)})" for text in texts), flags)


_NOTHING = Globs(None, None)


@dataclass(frozen=True, slots=True)
class Patterns:
    """A list of globs, some of them exclusions.

    >>> tables = Patterns.compile(["*", "!audit_*"], names=True)
    >>> tables.matches("orders"), tables.matches("app.audit_log")
    (True, False)
    """

    include: Globs
    exclude: Globs = _NOTHING

    @classmethod
    def compile(
        cls, texts: Iterable[str], *, names: bool = False, case_sensitive: bool = False
    ) -> Patterns:
        """Compile rule-file patterns; a leading ``!`` makes an exclusion."""
        texts = list(texts)
        include = [text for text in texts if not text.startswith("!")]
        exclude = [text[1:] for text in texts if text.startswith("!")]
        if exclude and not include:
            include = ["*"]
        flags = 0 if case_sensitive else re.IGNORECASE
        return cls(
            Globs.compile(include, names=names, flags=flags),
            Globs.compile(exclude, names=names, flags=flags),
        )

    def matches(self, value: str) -> bool:
        """Does one value match the list?"""
        return self.include.matches(value) and not self.exclude.matches(value)

    def matches_any(self, values: Iterable[str]) -> bool:
        """Does at least one of ``values`` match? (A list condition holds if any item does.)"""
        return any(self.matches(value) for value in values)


NOBODY = Patterns(_NOTHING)
"""Matches no value: a group's ``members: []``."""
