"""The analysis entry points: a message's text (or bytes) in, one facts object per statement.

Fail closed, always: these functions never raise. Text PostgreSQL would not accept as a
query (NUL, invalid UTF-8, a scanner error anywhere), and any statement sqlguard cannot
fully analyse, comes back as ``Kind.unknown`` with a reason, and policy refuses it. A
scanner error makes the whole message one unknown statement, because PostgreSQL too
rejects the whole message before running any of it.
"""

from __future__ import annotations

import re

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.lexer import LexError
from sqlguard.analysis.split import split_statements
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
    except RecursionError:  # sqlglot's parser recurses once per nesting level
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
        statements = split_statements(sql)
    except LexError as exc:
        return (StatementFacts.unknown(sql, f"PostgreSQL would not accept the text: {exc}"),)
    if not statements:
        return (StatementFacts(sql, frozenset({Kind.empty})),)
    return tuple(statement_facts(statement) for statement in statements)
