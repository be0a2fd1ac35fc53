"""Hand one statement's tokens to sqlglot, and refuse whenever sqlglot and PostgreSQL differ.

sqlglot never sees the user's text: it gets our canonical re-spelling of the tokens (see
``lexer``), one statement at a time. Three checks make it fail closed:

* errors raise at once (``ErrorLevel.IMMEDIATE``) instead of being logged;
* sqlglot's tokens must cover every one of ours (if sqlglot read part of the text as a
  comment or skipped it, PostgreSQL and sqlglot would see different statements);
* exactly one statement, with no ``exp.Command`` anywhere: Command is sqlglot's "I did not
  understand this, here is the raw text" fallback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ErrorLevel, ParseError, TokenError

from sqlguard.analysis.lexer import Token

# sqlglot logs a warning each time it falls back to exp.Command. We never trust a fallback
# (the statement is refused, or PostgreSQL's own reading stands), so the log line would only
# be noise on stderr.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_TOKEN_DUMP = re.compile(r" but got <Token .*", re.S)


class Unsupported(Exception):
    """sqlglot cannot (or cannot safely) represent this statement; ``str()`` says why."""


_DIALECT = Postgres()
# Built once: sqlglot's Dialect.tokenize() builds a new tokenizer per call (~20 µs here).
# Both reset their state on every call; the proxy analyses on one thread.
_TOKENIZER = _DIALECT.tokenizer()
_PARSER = _DIALECT.parser(error_level=ErrorLevel.IMMEDIATE)


def parse_tokens(tokens: Sequence[Token]) -> exp.Expr:
    """The sqlglot tree of one statement, or Unsupported with a reason.

    >>> from sqlguard.analysis.lexer import tokenize
    >>> type(parse_tokens(tokenize("select 1"))).__name__
    'Select'
    """
    sql, starts = _canonical(tokens)
    try:
        sg_tokens = _TOKENIZER.tokenize(sql)
        _check_coverage(sg_tokens, starts, sql)
        trees = _PARSER.parse(sg_tokens, sql)
    except ParseError as exc:
        raise Unsupported(_describe(exc)) from exc
    except TokenError as exc:
        raise Unsupported(f"sqlguard's SQL parser could not read it ({exc})") from exc
    if len(trees) != 1 or trees[0] is None:
        raise Unsupported("sqlguard's SQL parser did not read it as one statement")
    return trees[0]


def _canonical(tokens: Sequence[Token]) -> tuple[str, list[int]]:
    """The canonical text for sqlglot and where each of our tokens starts in it."""
    starts: list[int] = []
    pos = 0
    for token in tokens:
        starts.append(pos)
        pos += len(token.sql) + 1
    return " ".join(token.sql for token in tokens), starts


def _check_coverage(sg_tokens: Sequence, starts: list[int], sql: str) -> None:
    """Every token of ours must lie inside one of sqlglot's (none skipped as a comment)."""
    index, count = 0, len(sg_tokens)
    for start in starts:
        while index < count and sg_tokens[index].end < start:
            index += 1
        if index == count or sg_tokens[index].start > start:
            raise Unsupported(f"sqlguard's SQL parser skips part of it (near {sql[start:][:20]!r})")
    if any(token.comments for token in sg_tokens):
        raise Unsupported("sqlguard's SQL parser reads part of it as a comment")


def _describe(exc: ParseError) -> str:
    """A one-line reason from sqlglot's error (its message carries terminal escapes)."""
    first = exc.errors[0] if exc.errors else {}
    what = _TOKEN_DUMP.sub("", first.get("description") or "syntax it does not support")
    if what.startswith("Required keyword"):  # names sqlglot classes: say it plainly
        what = "an incomplete expression"
    near = first.get("highlight")
    return f"sqlguard's SQL parser could not read it: {what}" + (f" near {near!r}" if near else "")
