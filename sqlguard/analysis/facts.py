"""What the firewall knows about one SQL statement: plain, immutable data.

Policy code reads these facts and never sees sqlglot, so everything a rule may ask about a
statement has to be recorded here, in terms of PostgreSQL (folded identifiers, SQL commands).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


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
    """A known command that is none of the above: VACUUM, LISTEN, EXPLAIN, PREPARE, FETCH,
    DO, CALL, EXECUTE ... (what they run is in ``commands``)."""
    empty = "empty"
    """A message with no statement at all (only blanks, comments or semicolons).

    PostgreSQL answers it with EmptyQueryResponse; clients send it as a ping.
    """
    unknown = "unknown"
    """sqlguard or PostgreSQL could not parse or analyse the statement, or the two read it
    differently; it is always refused (fail closed), with ``reason`` saying why."""


@dataclass(frozen=True, slots=True)
class StatementFacts:
    """The facts about one statement of a message, as PostgreSQL's own grammar reads it.

    ``kinds`` holds the statement's own kind and every kind that runs inside it (a DELETE in a
    CTE, under EXPLAIN ANALYZE, in a PREPARE body, a COPY query, a rule action or a routine
    body); a plain EXPLAIN only plans, so its statement's kinds do not count (its tables and
    functions do). ``tables``, ``functions`` and ``columns`` are named as PostgreSQL resolves
    them: unquoted names folded to lower case, quoted names as written, ``U&""`` decoded,
    truncated to 63 bytes, schema-qualified when written so ("pg_catalog.pg_read_file");
    CTE names are not tables; SQL syntax the grammar turns into calls (CAST, EXTRACT,
    COALESCE, current_user) is not a function. ``unscoped`` lists the UPDATE/DELETE kinds
    (and MERGE, with the action) whose target rows are not really restricted. ``reason``
    says why a statement is ``unknown``. ``text`` is the statement's source text, comments
    included.

    An ``EXECUTE name`` of a statement PREPAREd earlier in the same message has the facts of
    that statement; otherwise it is kinds {utility}, commands {"EXECUTE"}.

    >>> StatementFacts.unknown("SELEC 1", "PostgreSQL's parser rejects it").kinds
    frozenset({<Kind.unknown: 'unknown'>})
    """

    text: str
    kinds: frozenset[Kind]
    tables: frozenset[str] = frozenset()
    unscoped: frozenset[Kind] = frozenset()
    functions: frozenset[str] = frozenset()
    reason: str | None = None
    commands: frozenset[str] = frozenset()
    """PostgreSQL command names of the statement and of everything that runs in it, upper
    case (rules glob-match them, case-insensitively). The vocabulary is PostgreSQL's command
    tags (utility.c ``CreateCommandTag``), from its parse tree:

    * DML: SELECT, INSERT, UPDATE, DELETE, MERGE, COPY, TRUNCATE, "SELECT INTO" (with
      SELECT); VALUES and TABLE are SELECT; INSERT's VALUES list is not a SELECT.
    * "DROP <object>" for every object type: DROP TABLE, DROP VIEW, DROP MATERIALIZED VIEW,
      DROP INDEX, DROP SCHEMA, DROP FUNCTION, DROP TRIGGER, DROP POLICY, DROP EXTENSION ...
      and DROP DATABASE, DROP ROLE, DROP OWNED, DROP TABLESPACE.
    * "CREATE <object>": CREATE TABLE, CREATE TABLE AS, CREATE MATERIALIZED VIEW, CREATE
      VIEW, CREATE INDEX, CREATE FUNCTION, CREATE PROCEDURE, CREATE RULE, CREATE TRIGGER,
      CREATE CONSTRAINT TRIGGER (with CREATE TRIGGER), CREATE EVENT TRIGGER, CREATE POLICY,
      CREATE EXTENSION, CREATE LANGUAGE, CREATE ROLE (also for USER and GROUP), CREATE
      SCHEMA, CREATE TYPE ...; "CREATE FUNCTION SECURITY DEFINER" when it makes one.
    * "ALTER <object>": ALTER TABLE, ALTER INDEX, ALTER SEQUENCE, ALTER FUNCTION, ALTER
      ROLE, ALTER DATABASE, ALTER SYSTEM, ALTER DEFAULT PRIVILEGES (with GRANT or REVOKE)
      ... plus one "ALTER <object> <action>" per ALTER TABLE action: ADD COLUMN, DROP
      COLUMN, ALTER COLUMN TYPE, ALTER COLUMN SET DEFAULT, DROP DEFAULT, SET NOT NULL, DROP
      NOT NULL, ADD CONSTRAINT, DROP CONSTRAINT, DETACH PARTITION, ATTACH PARTITION,
      DISABLE TRIGGER, ENABLE TRIGGER, ENABLE/DISABLE/FORCE/NO FORCE ROW LEVEL SECURITY,
      OWNER TO, SET TABLESPACE ... (others: the subcommand's name in words); "<ALTER
      object> RENAME", "... RENAME COLUMN", "... RENAME CONSTRAINT"; "<ALTER object> OWNER
      TO" and "<ALTER object> SET SCHEMA" for any object; "ALTER FUNCTION SECURITY DEFINER".
    * GRANT, REVOKE, "GRANT ROLE"/"REVOKE ROLE" (role membership, with GRANT/REVOKE),
      REASSIGN OWNED.
    * SET, RESET, SHOW, with SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION, RESET SESSION
      AUTHORIZATION, SET TRANSACTION, SET SESSION CHARACTERISTICS, SET NAMES; SET
      CONSTRAINTS; DISCARD with DISCARD ALL / DISCARD PLANS / DISCARD TEMP / DISCARD
      SEQUENCES.
    * BEGIN, START TRANSACTION, COMMIT (and END as written), ROLLBACK (and ABORT),
      SAVEPOINT, RELEASE, ROLLBACK TO SAVEPOINT, PREPARE TRANSACTION, COMMIT PREPARED,
      ROLLBACK PREPARED.
    * EXPLAIN (and EXPLAIN ANALYZE when it runs the statement), PREPARE, EXECUTE,
      DEALLOCATE (and DEALLOCATE ALL), DECLARE CURSOR, FETCH, MOVE, CLOSE, DO, CALL, LOAD,
      LISTEN, UNLISTEN, NOTIFY, VACUUM (and VACUUM FULL), ANALYZE, CLUSTER, REINDEX, LOCK
      TABLE, CHECKPOINT, REFRESH MATERIALIZED VIEW, COMMENT, SECURITY LABEL, IMPORT FOREIGN
      SCHEMA.
    """
    columns: frozenset[str] = frozenset()
    """Column names referenced anywhere (unqualified, folded like identifiers): column
    references, INSERT column lists, the SET targets of UPDATE / ON CONFLICT / MERGE, and
    columns DDL names (ADD/DROP/ALTER COLUMN, RENAME COLUMN, CREATE TABLE, CREATE INDEX,
    COPY's column list). Aliases are not columns."""
    settings: frozenset[str] = frozenset()
    """Settings (GUCs) the statement changes, lower case: "name=value" with the value as
    PostgreSQL receives it, unquoted, several values joined by "," ("search_path=app,public");
    "name" alone when no value is given (RESET x, SET x TO DEFAULT, SET ROLE DEFAULT); "all"
    for RESET ALL (DISCARD ALL: "all", "role", "session_authorization"); "*" for a name that
    is not a literal, "name=*" for a value that is not. Sources: SET [LOCAL|SESSION], RESET,
    SET ROLE ("role=x"), SET SESSION AUTHORIZATION ("session_authorization=x"), SET NAMES
    ("client_encoding=x"), SET TIME ZONE ("timezone=x"), SET TRANSACTION
    ("transaction_isolation=serializable", "transaction_read_only=1"), ALTER SYSTEM, ALTER
    DATABASE|ROLE ... SET/RESET, set_config() calls anywhere, UPDATE pg_settings. SHOW and
    current_setting() change nothing."""
    copy_endpoints: frozenset[str] = frozenset()
    """Where COPY reads or writes: "stdin", "stdout" (the client), "program", "file" (the
    server's)."""

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
        return replace(
            self,
            text=text,
            kinds=frozenset({kind}) | (self.kinds if runs_inner else frozenset()),
            unscoped=self.unscoped if runs_inner else frozenset(),
            commands=self.commands if runs_inner else frozenset(),
            settings=self.settings if runs_inner else frozenset(),
        )
