"""Statement text and summaries that are safe to log: for audit records and OpenTelemetry spans.

OpenTelemetry's database conventions ask for ``db.query.text`` with literals replaced by
placeholders, and a short, low-cardinality ``db.query.summary``. Both are built here from
PostgreSQL's own lexer (libpg_query's scanner through ``pglast.parser.scan``), so a literal is
exactly what the server would read as one, whatever quoting it uses:

- ``sanitized_text`` replaces every constant token (strings of any kind, dollar-quoted bodies,
  bit and hex strings, numbers) by ``?``, drops comments (an approval token or a secret may
  hide there) and keeps everything else as written. Text the lexer cannot read is never
  echoed: it becomes ``<not valid SQL: N characters>``.
- ``query_summary`` names each statement's top-level command and its first target table.

The scanner assumes ``standard_conforming_strings = on``, which the sidecar enforces.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from pglast.parser import ParseError, scan

from sqlguard.analysis.facts import Kind, StatementFacts

PLACEHOLDER = "?"
SUMMARY_LIMIT = 255
"""Longest ``query_summary`` answer, in characters (an ellipsis marks a cut)."""

_CONSTANTS = frozenset({"SCONST", "USCONST", "ICONST", "FCONST", "BCONST", "XCONST"})
_COMMENTS = frozenset({"C_COMMENT", "SQL_COMMENT"})
_BLANKS = frozenset(" \t\n\r\f\v")
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_OPEN, _CLOSE, _DOT = "ASCII_40", "ASCII_41", "ASCII_46"
_WITH_BODIES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"})
_AS_SELECT = frozenset({"VALUES", "TABLE"})

Token = tuple[str, str, str]
"""(token name, keyword kind, source spelling) of one token."""


def sanitized_text(text: str) -> str:
    """``text`` with each literal replaced by ``?`` and comments removed, trimmed of outer
    blanks; anything the lexer cannot read gives a placeholder, never the raw text.

    >>> sanitized_text("ALTER ROLE app PASSWORD 'secret' /* sqlguard:approval=x */")
    'ALTER ROLE app PASSWORD ?'
    >>> sanitized_text("SELECT 'unterminated")
    '<not valid SQL: 20 characters>'
    """
    pieces = _sanitized_pieces(text)
    if pieces is None:
        return f"<not valid SQL: {len(text)} characters>"
    return "".join(pieces).strip()


def _sanitized_pieces(text: str) -> list[str] | None:
    """The output pieces (blanks and tokens, literals replaced), or None if unreadable."""
    tokens = _scan(text)
    if tokens is None:
        return None
    pieces: list[str] = []
    position = 0
    for start, end, name in tokens:
        gap = text[position:start]
        if not _BLANKS.issuperset(gap):  # the lexer skipped something: do not trust it
            return None
        pieces.append(gap)
        pieces.append(_replacement(name, text[start:end], pieces, text[end : end + 1]))
        position = end
    if not _BLANKS.issuperset(text[position:]):
        return None
    return pieces


def _replacement(name: str, spelling: str, before: list[str], after: str) -> str:
    """What a token becomes: ``?`` for a literal; nothing for a comment, or one space when
    dropping it would glue its neighbours together; itself otherwise."""
    if name in _CONSTANTS:
        return PLACEHOLDER
    if name not in _COMMENTS:
        return spelling
    previous = next((piece[-1] for piece in reversed(before) if piece), "")
    glued = previous and after and previous not in _BLANKS and after not in _BLANKS
    return " " if glued else ""


def _scan(text: str) -> list[tuple[int, int, str]] | None:
    """(start, end exclusive, name) of every token, or None when the text cannot be read.

    A NUL would silently end the text for the C scanner, so it makes the text unreadable.
    """
    if "\x00" in text:
        return None
    try:
        return [(token.start, token.end + 1, token.name) for token in scan(text)]
    except (ParseError, UnicodeError, ValueError):
        return None


def query_summary(facts: Sequence[StatementFacts]) -> str:
    """``"<COMMAND> <table>"`` for each statement, joined by ``"; "``, at most 255 characters.

    The command is the statement's top-level one (the outer SELECT of a CTE that deletes, the
    EXPLAIN around a statement, the PREPARE, not what they run); the table is the first of
    ``facts.tables`` named after that command in the text (the one it writes or reads first),
    else the first one named at all, else the first in sorted order. A statement without
    tables is its command alone; unknown ones are ``UNKNOWN``, empty ones ``EMPTY``.

    >>> from sqlguard.analysis.parse import analyze
    >>> query_summary(analyze("BEGIN; UPDATE accounts SET n = 1 WHERE id = 2; DROP TABLE logs"))
    'BEGIN; UPDATE accounts; DROP TABLE logs'
    """
    summary = "; ".join(_statement_summary(statement) for statement in facts)
    if len(summary) > SUMMARY_LIMIT:
        return summary[: SUMMARY_LIMIT - 1] + "…"
    return summary


def _statement_summary(facts: StatementFacts) -> str:
    """``"<COMMAND> <table>"`` or ``"<COMMAND>"`` for one statement."""
    if facts.is_unknown:
        return "UNKNOWN"
    if Kind.empty in facts.kinds:
        return "EMPTY"
    tokens = _words(facts.text)
    leading = _leading_index(tokens)
    word = _normal_word(tokens[leading]) if leading is not None else ""
    command = _top_command(facts, word)
    table = _first_table(facts.tables, tokens, leading or 0)
    return f"{command} {table}" if table else command


def _words(text: str) -> list[Token]:
    """The statement's tokens without comments (none if it cannot be read)."""
    tokens = _scan(text) or []
    return [
        (name, _kind(name, text[start:end]), text[start:end])
        for start, end, name in tokens
        if name not in _COMMENTS
    ]


def _kind(name: str, spelling: str) -> str:
    """``"word"`` for keywords and identifiers, else the token name."""
    if name == "IDENT" or (spelling.isidentifier() and name not in _CONSTANTS):
        return "word"
    return name


def _normal_word(token: Token) -> str:
    """A keyword or identifier as PostgreSQL names it: unquoted ones folded to lower case."""
    _, _, spelling = token
    if spelling.startswith('"') and spelling.endswith('"') and len(spelling) > 1:
        return spelling[1:-1].replace('""', '"')
    return spelling.translate(_FOLD)


def _leading_index(tokens: list[Token]) -> int | None:
    """Index of the word that starts the top-level command: the first word, or after a
    WITH the first SELECT/INSERT/UPDATE/DELETE/MERGE/VALUES/TABLE outside parentheses.

    >>> _leading_index(_words("WITH d AS (DELETE FROM t) SELECT * FROM d"))
    8
    """
    first = next((i for i, token in enumerate(tokens) if token[1] == "word"), None)
    if first is None or _normal_word(tokens[first]) != "with":
        return first
    depth = 0
    for index in range(first + 1, len(tokens)):
        name, kind, spelling = tokens[index]
        depth += (name == _OPEN) - (name == _CLOSE)
        if depth == 0 and kind == "word" and spelling.upper() in _WITH_BODIES:
            return index
    return first


def _top_command(facts: StatementFacts, word: str) -> str:
    """The shortest command of the statement that starts with its leading word (VALUES and
    TABLE are SELECT); failing that the shortest of all, or the kind in upper case."""
    first = "SELECT" if word.upper() in _AS_SELECT else word.upper()
    candidates = [c for c in facts.commands if c.split(" ", 1)[0] == first]
    pool = candidates or list(facts.commands)
    if not pool:
        return min(kind.value for kind in facts.kinds).upper()
    return min(pool, key=lambda command: (len(command), command))


def _first_table(tables: frozenset[str], tokens: list[Token], start: int) -> str | None:
    """The first of ``tables`` named at or after ``start``, else before, else sorted first."""
    named = _dotted_names(tokens)
    for names in (named[start:], named[:start]):
        found = next((name for name in names if name in tables), None)
        if found is not None:
            return found
    return min(tables, default=None)


def _dotted_names(tokens: list[Token]) -> list[str | None]:
    """For each token position, the (possibly schema-qualified) name that starts there."""
    names: list[str | None] = []
    for index in range(len(tokens)):
        parts: list[str] = []
        position = index
        while position < len(tokens) and tokens[position][1] == "word":
            parts.append(_normal_word(tokens[position]))
            if position + 1 >= len(tokens) or tokens[position + 1][0] != _DOT:
                break
            position += 2
        names.append(".".join(parts) if parts else None)
    return names
