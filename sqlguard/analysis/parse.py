"""The analysis entry points: a message's text (or bytes) in, one facts object per statement.

Fail closed, always: these functions never raise. Text PostgreSQL would not accept as a
query (NUL, invalid UTF-8, anything its parser rejects), text sqlguard's scanner reads
differently (other statement boundaries), and any statement sqlguard cannot fully analyse,
comes back as ``Kind.unknown`` with a reason, and policy refuses it. An error in the
message as a whole makes it one unknown statement, because PostgreSQL too rejects the whole
message before running any of it.

Each message is parsed once by PostgreSQL's parser (``postgres``) and once split by
sqlguard's scanner (``split``); the two must find the same statements at the same places.
"""

from __future__ import annotations

import re

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.lexer import BLANKS, LexError
from sqlguard.analysis.postgres import PgRejects, PgStatement, parse_message
from sqlguard.analysis.prepared import resolve_executes
from sqlguard.analysis.split import Statement, split_statements
from sqlguard.analysis.statements import statement_facts

_SURROGATE = re.compile("[\ud800-\udfff]")


def analyze(sql: str) -> tuple[StatementFacts, ...]:
    """Facts for each statement of a simple-query message (or a Parse's text).

    An empty message (only blanks, comments, semicolons) is one ``Kind.empty`` statement.

    >>> [sorted(f.kinds) for f in analyze("SELECT 1; DROP TABLE t")]
    [[<Kind.select: 'select'>], [<Kind.drop: 'drop'>]]
    """
    try:
        return _analyze(sql)
    except RecursionError:  # sqlglot's parser and json.loads recurse once per nesting level
        return (StatementFacts.unknown(sql, "the statement is nested too deeply to analyse"),)
    except Exception as exc:  # any bug or sqlglot failure must refuse, never crash the proxy
        reason = f"the analysis failed ({type(exc).__name__})"
        return (StatementFacts.unknown(sql, reason),)


def analyze_bytes(raw: bytes) -> tuple[StatementFacts, ...]:
    """Like ``analyze``, for the bytes of a message; they must be valid UTF-8.

    >>> analyze_bytes(b"DROP TABLE \\x80users")[0].reason
    'not valid UTF-8'
    """
    try:
        sql = raw.decode("utf-8")
    except UnicodeDecodeError:
        return (StatementFacts.unknown(raw.decode("utf-8", "backslashreplace"), "not valid UTF-8"),)
    return analyze(sql)


def _analyze(sql: str) -> tuple[StatementFacts, ...]:
    if "\x00" in sql:
        return (StatementFacts.unknown(sql, "the text contains a NUL character"),)
    if _SURROGATE.search(sql):
        return (StatementFacts.unknown(sql, "not valid UTF-8"),)
    try:
        postgres = parse_message(sql)
    except PgRejects as exc:
        return (StatementFacts.unknown(sql, f"PostgreSQL's parser rejects it: {exc}"),)
    try:
        statements = split_statements(sql)
    except LexError as exc:
        return (StatementFacts.unknown(sql, f"sqlguard's scanner does not accept it: {exc}"),)
    if not statements and not postgres:
        return (StatementFacts(sql, frozenset({Kind.empty})),)
    mismatch = _split_mismatch(statements, postgres)
    if mismatch is not None:
        return (StatementFacts.unknown(sql, mismatch),)
    analysed = [
        statement_facts(ours, theirs) for ours, theirs in zip(statements, postgres, strict=True)
    ]
    return resolve_executes(analysed, postgres)


def _split_mismatch(ours: list[Statement], theirs: list[PgStatement]) -> str | None:
    """Why sqlguard's statements are not PostgreSQL's (their number, or where they lie)."""
    if len(ours) != len(theirs):
        return (
            f"sqlguard reads {len(ours)} statement(s) here and PostgreSQL {len(theirs)}; "
            "refusing rather than guessing"
        )
    for number, (mine, pg) in enumerate(zip(ours, theirs, strict=True), start=1):
        # PostgreSQL's statement runs from its first token to its semicolon (or the end).
        ends_alike = pg.end is None or not mine.source[mine.end : pg.end].strip(BLANKS)
        if mine.tokens[0].start != pg.start or not ends_alike:
            return (
                f"sqlguard and PostgreSQL see statement {number} at different places; "
                "refusing rather than guessing"
            )
    return None
