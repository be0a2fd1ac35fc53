"""What a rule's ``match:`` conditions ask of a statement, and the answer.

Rules never see the analysis' raw facts: ``StatementView`` puts them once per statement into
the form conditions compare (names qualified, case settled), so each rule test stays a cheap
set lookup or a few compiled globs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.policy.patterns import Patterns

_TABLE_SCHEMA = "public"
_CATALOG_SCHEMA = "pg_catalog"


def qualify(name: str, default_schema: str) -> str:
    """``schema.name`` for a table or function as written (a catalog part is dropped).

    sqlguard cannot see the client's search_path, so an unqualified name is taken to be where
    PostgreSQL's default search path finds it: ``pg_catalog`` for ``pg_*`` tables and for
    functions, ``public`` for other tables.

    >>> qualify("users", "public"), qualify("pg_settings", "public"), qualify("db.app.t", "x")
    ('public.users', 'pg_catalog.pg_settings', 'app.t')
    """
    parts = name.split(".")
    if len(parts) > 1:
        return ".".join(parts[-2:])
    schema = _CATALOG_SCHEMA if name.startswith("pg_") else default_schema
    return f"{schema}.{name}"


@dataclass(frozen=True, slots=True)
class StatementView:
    """A statement's facts as rule conditions compare them."""

    text: str
    kinds: frozenset[Kind]
    commands: frozenset[str]
    tables: frozenset[str]
    schemas: frozenset[str]
    columns: frozenset[str]
    functions: frozenset[str]
    settings: frozenset[str]
    unscoped: frozenset[Kind]
    copy: frozenset[str]

    @classmethod
    def of(cls, facts: StatementFacts) -> StatementView:
        """The view of one statement's facts."""
        tables = frozenset(qualify(table, _TABLE_SCHEMA) for table in facts.tables)
        return cls(
            text=facts.text,
            kinds=facts.kinds,
            commands=facts.commands,
            tables=tables,
            schemas=frozenset(table.partition(".")[0] for table in tables),
            columns=facts.columns,
            functions=frozenset(qualify(name, _CATALOG_SCHEMA) for name in facts.functions),
            settings=facts.settings,
            unscoped=facts.unscoped,
            copy=facts.copy_endpoints,
        )


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Days of the week and times of day, in one time zone; both optional, both must hold.

    ``hours`` are [start, end) ranges in minutes since midnight; a range whose end is before
    its start runs over midnight (22:00-06:00). ``days`` are ``datetime.weekday()`` numbers
    (Monday is 0) of the local date.

    >>> from datetime import UTC
    >>> nights = TimeWindow(UTC, hours=((22 * 60, 6 * 60),))
    >>> nights.contains(datetime(2026, 1, 5, 23, 30, tzinfo=UTC))
    True
    """

    zone: tzinfo
    days: frozenset[int] | None = None
    hours: tuple[tuple[int, int], ...] | None = None

    def contains(self, now: datetime) -> bool:
        """Is ``now`` (an aware datetime) inside the window?"""
        local = now.astimezone(self.zone)
        if self.days is not None and local.weekday() not in self.days:
            return False
        minute = local.hour * 60 + local.minute
        return self.hours is None or any(_within(minute, *hours) for hours in self.hours)


def _within(minute: int, start: int, end: int) -> bool:
    return start <= minute < end if start <= end else minute >= start or minute < end


@dataclass(frozen=True, slots=True)
class Match:
    """A rule's conditions. Every given condition must hold; a list holds if any item does.

    ``kinds`` is asked apart (``covers``): the engine judges each kind a statement does (its
    own and nested ones) separately, so an allow-list of kinds cannot let a nested kind
    through. ``None`` means "not given".

    >>> from datetime import UTC
    >>> view = StatementView.of(StatementFacts("DELETE FROM t", frozenset({Kind.delete})))
    >>> deletes = Match(kinds=frozenset({Kind.delete}))
    >>> deletes.matches(view, datetime.now(UTC)), deletes.covers(Kind.select)
    (True, False)
    """

    kinds: frozenset[Kind] | None = None
    commands: Patterns | None = None
    tables: Patterns | None = None
    schemas: Patterns | None = None
    columns: Patterns | None = None
    functions: Patterns | None = None
    settings: Patterns | None = None
    unscoped: frozenset[Kind] | None = None
    copy: frozenset[str] | None = None
    text: re.Pattern[str] | None = None
    time: TimeWindow | None = None

    def matches(self, view: StatementView, now: datetime) -> bool:
        """Does the statement (as one of its kinds, at least) meet every condition at ``now``?"""
        return (
            (self.kinds is None or not self.kinds.isdisjoint(view.kinds))
            and _any(self.commands, view.commands)
            and _any(self.tables, view.tables)
            and _any(self.schemas, view.schemas)
            and _any(self.columns, view.columns)
            and _any(self.functions, view.functions)
            and _any(self.settings, view.settings)
            and (self.unscoped is None or not self.unscoped.isdisjoint(view.unscoped))
            and (self.copy is None or not self.copy.isdisjoint(view.copy))
            and (self.text is None or self.text.search(view.text) is not None)
            and (self.time is None or self.time.contains(now))
        )

    def covers(self, kind: Kind) -> bool:
        """Does the ``kinds`` condition (if any) hold for ``kind``?"""
        return self.kinds is None or kind in self.kinds


def _any(patterns: Patterns | None, values: frozenset[str]) -> bool:
    return patterns is None or patterns.matches_any(values)
