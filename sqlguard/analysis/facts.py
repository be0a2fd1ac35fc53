"""What the firewall knows about one SQL statement: plain, immutable data.

Policy code reads these facts and never sees sqlglot, so everything a rule may ask about a
statement has to be recorded here, in terms of PostgreSQL (folded identifiers, SQL commands).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """What a statement, or a statement nested inside it, does."""

    select = "select"
    insert = "insert"
    update = "update"
    delete = "delete"
    merge = "merge"
    copy = "copy"
    create = "create"
    alter = "alter"
    drop = "drop"
    truncate = "truncate"
    grant = "grant"
    revoke = "revoke"
    role = "role"
    """CREATE/ALTER/DROP ROLE|USER|GROUP, REASSIGN/DROP OWNED: changes who may do what."""
    session = "session"
    """SET ROLE, SET SESSION AUTHORIZATION, RESET ROLE, DISCARD ALL: changes who we are."""
    transaction = "transaction"
    set = "set"
    show = "show"
    utility = "utility"
    """A known command that is none of the above: VACUUM, LISTEN, EXPLAIN, PREPARE, FETCH ..."""
    empty = "empty"
    """A message with no statement at all (only blanks, comments or semicolons).

    PostgreSQL answers it with EmptyQueryResponse; clients send it as a ping.
    """
    unknown = "unknown"
    """sqlguard could not understand the statement; it is always refused (fail closed)."""


@dataclass(frozen=True, slots=True)
class StatementFacts:
    """The facts about one statement of a message.

    ``kinds`` holds the statement's own kind and every kind that runs inside it (a DELETE in a
    CTE, under EXPLAIN ANALYZE, in a PREPARE body or a COPY query); a plain EXPLAIN only plans,
    so its statement's kinds do not count (its tables and functions do). ``tables`` and
    ``functions`` are named as PostgreSQL resolves them: unquoted names folded to lower case,
    quoted names as written, schema-qualified when written so. ``unscoped`` lists the
    UPDATE/DELETE kinds whose target rows are not restricted. ``reason`` says why a statement
    is ``unknown``. ``text`` is the statement's source text, comments included.

    >>> StatementFacts.unknown("DO $$ $$", "DO blocks are opaque").kinds
    frozenset({<Kind.unknown: 'unknown'>})
    """

    text: str
    kinds: frozenset[Kind]
    tables: frozenset[str] = frozenset()
    unscoped: frozenset[Kind] = frozenset()
    functions: frozenset[str] = frozenset()
    reason: str | None = None
    commands: frozenset[str] = frozenset()
    """PostgreSQL command names of the statement and of everything nested in it, upper case,
    e.g. "SELECT", "DROP TABLE", "ALTER TABLE", "ALTER TABLE DROP COLUMN", "VACUUM FULL"."""
    columns: frozenset[str] = frozenset()
    """Column names referenced anywhere in the statement, folded like identifiers."""
    settings: frozenset[str] = frozenset()
    """Settings the statement changes: "name=value" (value lower case) or "name" alone."""
    copy_endpoints: frozenset[str] = frozenset()
    """Where COPY reads or writes: "stdin", "stdout", "program", "file"."""

    @classmethod
    def unknown(cls, text: str, reason: str) -> StatementFacts:
        """Facts for a statement sqlguard cannot analyse, with a reason a human can act on."""
        return cls(text=text, kinds=frozenset({Kind.unknown}), reason=reason)

    @property
    def is_unknown(self) -> bool:
        """True when the statement could not be understood (and must be refused)."""
        return Kind.unknown in self.kinds

    def wrapping(self, text: str, kind: Kind, *, runs_inner: bool = True) -> StatementFacts:
        """These facts seen from a statement that wraps this one (EXPLAIN, PREPARE, COPY ...).

        ``runs_inner`` is False when the wrapper only plans the inner statement (plain
        EXPLAIN): its tables and functions still count, what it would execute does not.
        """
        if self.is_unknown:
            return StatementFacts.unknown(text, self.reason or "the inner statement is unknown")
        return StatementFacts(
            text=text,
            kinds=frozenset({kind}) | (self.kinds if runs_inner else frozenset()),
            tables=self.tables,
            unscoped=self.unscoped if runs_inner else frozenset(),
            functions=self.functions,
        )
