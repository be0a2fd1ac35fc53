"""Statement shapes: a text with the literal values taken out, where no value can change the
verdict, so the firewall decides once per shape instead of once per text.

Applications that send literals inline (the simple query protocol, ORMs that interpolate)
produce a new text for every value: ``... WHERE aid = 1``, ``... WHERE aid = 2``. Analysing
each in full costs hundreds of microseconds. Two texts may share a shape only if they get the
same decision, so this module is deliberately narrow:

* Only a plain single SELECT, INSERT, UPDATE or DELETE qualifies, written in a small ASCII
  alphabet: unquoted identifiers, decimal numbers, standard strings without backslashes,
  the operators ``= <> != < > <= >= + - * /``, ``( ) , .`` and one final ``;``. Anything
  else (comments, dollar quotes, quoted identifiers, parameters, casts, other operators, a
  second statement, non-ASCII) gets no shape and is analysed as itself.
* No ``OR`` or ``NOT``: the test for a WHERE that restricts nothing compares values across
  disjuncts (``a > 5 OR a < 10`` covers every row, ``a > 5 OR a < 3`` does not).
* No name starting with ``pg_``: the analysis reads values for some catalog objects
  (``UPDATE pg_settings SET setting = 'x' WHERE name = 'role'`` is ``SET role``).
* A literal is taken out only where its value cannot matter to any fact the rules read:
  compared with a column (``aid = 5``, ``5 = aid``, ``aid BETWEEN 1 AND 9``, ``aid IN (1,
  2)``), a value in INSERT's VALUES list, in an UPDATE's SET list (``abalance + -7``), or
  LIMIT/OFFSET. Never a function argument (``set_config('search_path', ...)``), a LIKE
  pattern (``'%'`` matches every row), or one side of a literal-to-literal comparison
  (``1 = 1``).

The caller must not use shapes when a rule reads the statement text itself (``match: text``):
a regular expression can look at values.

>>> shape("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;")
'SELECT abalance FROM pgbench_accounts WHERE aid = ?'
>>> shape("DELETE FROM t WHERE 1 = 1") == "DELETE FROM t WHERE 1 = 1"
True
>>> shape("DELETE FROM t WHERE a = 1 OR a = 2") is None
True
"""

from __future__ import annotations

import re

# One token per match; the last group catches anything outside the alphabet.
_TOKEN = re.compile(
    r"[ \t\n\r\f\v]*(?:"
    r"([A-Za-z_][A-Za-z0-9_]*)"  # 1 identifier or keyword
    r"|([0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_.]))"  # 2 number (no trailing junk: 0x1F, 1e5)
    r"|('(?:[^'\\]|'')*'(?![A-Za-z0-9_']))"  # 3 standard string, no backslashes
    r"|([-+*/<>=~!@#%^&|`?]+)"  # 4 operator run, checked against _OPERATORS
    r"|([(),.;])"  # 5 punctuation
    r"|(\S))"  # 6 anything else: no shape
)
_OPERATORS = frozenset({"=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/"})
_COMPARISONS = frozenset({"=", "<>", "!=", "<", ">", "<=", ">="})
_ARITHMETIC = frozenset({"+", "-", "*", "/"})
_STATEMENTS = frozenset({"select", "insert", "update", "delete"})
_REFUSED_WORDS = frozenset({"or", "not"})
_SET_ENDS = frozenset({"where", "from", "returning"})
_VALUES_ENDS = frozenset({"on", "returning", "select"})
_MIRROR_BEFORE = frozenset({"where", "and", "on", "(", "when"})
_SIZE_WORDS = frozenset({"limit", "offset"})
# Reserved words after which a minus sign is unary (they cannot be column names unquoted).
_UNARY_AFTER = frozenset({"between", "and", "limit", "offset", "then", "else", "when", "where"})

_IDENT, _NUMBER, _STRING, _OP, _PUNCT, _OTHER = range(6)
PLACEHOLDER = "?"


def shape(text: str) -> str | None:
    """The text with value-only literals replaced by ``?``, or None when it has no shape."""
    if not text.isascii():
        return None
    tokens = _tokens(text)
    if tokens is None or not tokens or tokens[0][0] != _IDENT:
        return None
    if tokens[0][1].lower() not in _STATEMENTS:
        return None
    return " ".join(_replaced(tokens))


def _tokens(text: str) -> list[tuple[int, str]] | None:
    """(class, text) pairs; None when something is outside the alphabet or a ``;`` is not
    the last token."""
    tokens: list[tuple[int, str]] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastindex
        if kind is None:  # trailing blanks
            continue
        kind -= 1
        value = match[kind + 1]
        if kind == _OTHER or (kind == _OP and value not in _OPERATORS):
            return None
        if kind == _IDENT and (value.lower() in _REFUSED_WORDS or value[:3].lower() == "pg_"):
            return None  # OR/NOT, or a catalog object (UPDATE pg_settings reads its values)
        if tokens and tokens[-1][1] == ";":
            return None  # something after a ';': a second statement
        tokens.append((kind, value))
    if tokens and tokens[-1][1] == ";":
        tokens.pop()
    return tokens


def _replaced(tokens: list[tuple[int, str]]) -> list[str]:
    """Token texts, value-only literals (with a unary minus) as one ``?``."""
    out: list[str] = []
    depth = 0
    region = ""  # "set" (UPDATE's SET list) or "values" (INSERT's VALUES list) at depth 0
    index, count = 0, len(tokens)
    while index < count:
        kind, value = tokens[index]
        word = value.lower() if kind == _IDENT else ""
        if value == "(":
            depth += 1
        elif value == ")":
            depth -= 1
        elif depth == 0 and word:
            if word == "set" and tokens[0][1].lower() == "update":
                region = "set"
            elif word == "values":
                region = "values"
            elif (region == "set" and word in _SET_ENDS) or (
                region == "values" and word in _VALUES_ENDS
            ):
                region = ""
        literal_end = _literal_end(tokens, index)
        if literal_end and _value_only(tokens, index, literal_end, depth, region):
            out.append(PLACEHOLDER)
            index = literal_end
            continue
        out.append(value)
        index += 1
    return out


def _literal_end(tokens: list[tuple[int, str]], index: int) -> int:
    """The index after a literal starting here (``5``, ``'x'``, unary ``- 5``), else 0."""
    kind, value = tokens[index]
    if kind in (_NUMBER, _STRING):
        return index + 1
    if value == "-" and index + 1 < len(tokens) and tokens[index + 1][0] == _NUMBER:
        kind, before = tokens[index - 1] if index else (_PUNCT, "(")
        if kind == _OP or before in ("(", ",") or before.lower() in _UNARY_AFTER:
            return index + 2
    return 0


def _value_only(
    tokens: list[tuple[int, str]], start: int, end: int, depth: int, region: str
) -> bool:
    """Can this literal's value change no fact the rules read?"""
    before = tokens[start - 1] if start else (_PUNCT, "")
    after = tokens[end] if end < len(tokens) else (_PUNCT, "")
    before2 = tokens[start - 2] if start >= 2 else (_PUNCT, "")
    before_word = before[1].lower() if before[0] == _IDENT else before[1]
    if before[0] == _OP and before[1] in _COMPARISONS and before2[0] == _IDENT:
        return True  # column <op> literal
    if after[0] == _OP and after[1] in _COMPARISONS:
        after2 = tokens[end + 1] if end + 1 < len(tokens) else (_PUNCT, "")
        return after2[0] == _IDENT and before_word in _MIRROR_BEFORE  # literal <op> column
    if before_word in _SIZE_WORDS and depth == 0:
        return True
    if before_word == "between" or (before_word == "and" and _after_between(tokens, start)):
        return True
    if before[1] in ("(", ",") and after[1] in (",", ")"):
        if region == "values" and depth == 1:
            return True
        return _in_list(tokens, start)
    return region == "set" and depth == 0 and before[0] == _OP and before[1] in _ARITHMETIC


def _after_between(tokens: list[tuple[int, str]], start: int) -> bool:
    """Is the ``and`` before this literal BETWEEN's (``x BETWEEN lit AND lit``)?"""
    if start < 4:
        return False
    if tokens[start - 3][1].lower() == "between":
        return True
    return tokens[start - 4][1].lower() == "between" and tokens[start - 3][1] == "-"


def _in_list(tokens: list[tuple[int, str]], start: int) -> bool:
    """Is this literal an item of ``column IN (literal, ...)``?"""
    index = start - 1
    while index >= 0 and tokens[index][1] != "(":
        index -= 1
    return (
        index >= 2
        and tokens[index - 1][1].lower() == "in"
        and tokens[index - 2][0] == _IDENT
        and all(
            kind in (_NUMBER, _STRING) or value in (",", "-")
            for kind, value in tokens[index + 1 : start]
        )
    )
