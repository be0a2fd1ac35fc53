"""Splitting a message into statements at its top-level semicolons.

PostgreSQL parses the whole message, then runs its statements one by one; a ``;`` inside
a string, quoted identifier, dollar quote or comment separates nothing, which the scanner
in ``lexer`` already took care of. Empty statements (``;;``) are dropped.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlguard.analysis.lexer import BLANKS, LexError, T, Token, tokenize


class Statement(NamedTuple):
    """One statement: its tokens and where its text lies in the message."""

    source: str
    start: int
    end: int
    tokens: list[Token]

    @property
    def text(self) -> str:
        """The statement's source text, comments kept."""
        return self.source[self.start : self.end]

    def part(self, first: int, stop: int | None = None) -> Statement:
        """The statement made of tokens[first:stop] (the body of EXPLAIN, PREPARE ...)."""
        tokens = self.tokens[first:stop]
        if not tokens:
            return Statement(self.source, self.end, self.end, tokens)
        end = self.end if stop is None else tokens[-1].end  # a tail keeps trailing comments
        return Statement(self.source, tokens[0].start, end, tokens)


def split_statements(text: str) -> list[Statement]:
    """Split a message at its top-level semicolons, like the server's grammar does.

    Empty statements (``;;``) are dropped. A ``BEGIN ATOMIC ... END`` body of CREATE
    FUNCTION/PROCEDURE keeps its semicolons (psql's heuristic from psqlscan.l).
    Raises LexError.

    >>> [s.text for s in split_statements("SELECT ';'; /* x */ DROP TABLE t;")]
    ["SELECT ';'", '/* x */ DROP TABLE t']
    """
    statements: list[Statement] = []
    current: list[Token] = []
    begin = 0
    depth = parens = 0
    for token in tokenize(text):
        if token.kind is T.SEMI and depth == 0:
            _close(statements, text, (begin, token.start), current)
            current, begin, parens = [], token.end, 0
            continue
        current.append(token)
        if token.kind is T.OP:
            parens += PAREN_DEPTH.get(token.sql, 0)
        elif token.value in _BLOCK_WORDS and parens == 0 and token.kind is T.IDENT:
            depth = _block_depth(depth, token.value, current)
    _close(statements, text, (begin, len(text)), current)
    return statements


_BLOCK_WORDS = frozenset({"begin", "case", "end"})
PAREN_DEPTH = {"(": 1, ")": -1}


def _block_depth(depth: int, word: str, tokens: list[Token]) -> int:
    """Track BEGIN/CASE ... END nesting, only inside a routine definition (as psql does)."""
    if not _defines_routine(tokens):
        return depth
    if word == "begin" or (word == "case" and depth):
        return depth + 1
    return depth - 1 if word == "end" and depth else depth


def _defines_routine(tokens: list[Token]) -> bool:
    """Does the statement start CREATE [OR REPLACE] FUNCTION|PROCEDURE?"""
    words = [t.word() for t in tokens[:4]]
    if words[:1] != ["create"]:
        return False
    rest = words[3:4] if words[1:3] == ["or", "replace"] else words[1:2]
    return rest in (["function"], ["procedure"])


def _close(
    statements: list[Statement], source: str, span: tuple[int, int], tokens: list[Token]
) -> None:
    """Keep a non-empty statement, its text trimmed of surrounding blanks."""
    if not tokens:
        return
    begin, end = span
    chunk = source[begin:end]
    begin += len(chunk) - len(chunk.lstrip(BLANKS))
    end -= len(chunk) - len(chunk.rstrip(BLANKS))
    statements.append(Statement(source, begin, end, tokens))


def matching_paren(tokens: list[Token], open_index: int) -> int:
    """Index of the parenthesis closing the one at ``open_index``."""
    depth = 0
    for index in range(open_index, len(tokens)):
        token = tokens[index]
        if token.kind is T.OP:
            depth += PAREN_DEPTH.get(token.sql, 0)
            if depth == 0:
                return index
    raise LexError("unbalanced parentheses")
