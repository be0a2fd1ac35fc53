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

import functools
import re

_BLANK = r"[ \t\n\r\f\v]*+"
# The alphabet, one alternative per token class. Lookarounds keep each token exactly one
# PostgreSQL token: no junk after a number (0x1F, 1e5, 5.), no prefix on a string (E'..'),
# an operator is a whole operator run (so no "--", "/*", "=-"), no ".5" or "..".
_ALTERNATIVES = (
    r"[A-Za-z_][A-Za-z0-9_]*+(?![$'])"
    r"|[0-9]++(?:\.[0-9]++)?+(?![A-Za-z0-9_.'])"
    r"|(?<![A-Za-z0-9_'])'(?:[^'\\]++|'')*+'(?![A-Za-z0-9_'])"
    r"|(?:<>|!=|<=|>=|[=<>+*/-])(?![-+*/<>=~!@#%^&|`?])"
    r"|[(),;]|\.(?![0-9.])"
)
_VALID = re.compile(f"(?:{_BLANK}(?:{_ALTERNATIVES}))*+{_BLANK}")
_TOKEN = re.compile(_ALTERNATIVES)
_CONSTANT = re.compile(r"(?<![A-Za-z0-9_])[0-9]++(?:\.[0-9]++)?+|'(?:[^'\\]++|'')*+'")

_STATEMENTS = frozenset({"select", "insert", "update", "delete"})
_REFUSED_WORDS = frozenset({"or", "not"})
_COMPARISONS = frozenset({"=", "<>", "!=", "<", ">", "<=", ">="})
_ARITHMETIC = frozenset({"+", "-", "*", "/"})
_SET_ENDS = frozenset({"where", "from", "returning"})
_VALUES_ENDS = frozenset({"on", "returning", "select"})
_MIRROR_BEFORE = frozenset({"where", "and", "on", "(", "when"})
_SIZE_WORDS = frozenset({"limit", "offset"})
# Reserved words after which a minus sign is unary (they cannot be column names unquoted).
_UNARY_AFTER = frozenset({"between", "and", "limit", "offset", "then", "else", "when", "where"})
_AFTER_OPERAND = frozenset({"(", ",", "+", "-", "*", "/"})
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
PLACEHOLDER = "?"


def shape(text: str) -> str | None:
    """The text with value-only literals replaced by ``?``, or None when it has no shape."""
    tokens = shape_tokens(text)
    return None if tokens is None else " ".join(_replaced(tokens))


@functools.lru_cache(maxsize=64)
def shape_tokens(text: str) -> tuple[str, ...] | None:
    """The tokens of a text written in the shape alphabet (without a final ``;``), else None.

    Cached for a few texts: the firewall and the audit description ask for the same text
    one after the other.
    """
    if not text.isascii() or _VALID.fullmatch(text) is None:
        return None
    tokens = _TOKEN.findall(text)
    if not tokens or tokens[0].lower() not in _STATEMENTS:
        return None
    if tokens[-1] == ";":
        tokens.pop()
    previous = ""
    for token in tokens:
        if token == ";":
            return None  # a second statement
        if token[0] == "'" and previous[:1] == "'":
            return None  # 'a' <newline> 'b' is one string to PostgreSQL
        previous = token
        if token[0] in _IDENT_START:
            word = token.lower()
            if word in _REFUSED_WORDS or word.startswith("pg_"):
                return None  # OR/NOT, or a catalog object (UPDATE pg_settings reads values)
    return tuple(tokens)


def constants_replaced(text: str) -> str:
    """Every number and string as ``?``: for a text that has shape tokens, this is exactly
    what ``sanitize.sanitized_text`` makes of it, without running PostgreSQL's lexer."""
    return _CONSTANT.sub(PLACEHOLDER, text).strip(" \t\n\r\f\v")


def is_word(token: str) -> bool:
    """Is this shape token a keyword or an unquoted name (not a literal or an operator)?"""
    return token[0] in _IDENT_START


def _is_literal(token: str) -> bool:
    first = token[0]
    return first == "'" or "0" <= first <= "9"


def _replaced(tokens: tuple[str, ...]) -> list[str]:
    """Token texts, value-only literals (with a unary minus) as one ``?``."""
    out: list[str] = []
    depth = 0
    region = ""  # "set" (UPDATE's SET list) or "values" (INSERT's VALUES list) at depth 0
    is_update = tokens[0].lower() == "update"
    index, count = 0, len(tokens)
    while index < count:
        token = tokens[index]
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0 and token[0] in _IDENT_START:
            word = token.lower()
            if word == "set" and is_update:
                region = "set"
            elif word == "values":
                region = "values"
            elif word in (_SET_ENDS if region == "set" else _VALUES_ENDS if region else ()):
                region = ""
        end = 0
        if _is_literal(token):
            end = index + 1
        elif token == "-" and index + 1 < count and "0" <= tokens[index + 1][0] <= "9":
            before = tokens[index - 1].lower() if index else "("
            if before in _UNARY_AFTER or before in _COMPARISONS or before in _AFTER_OPERAND:
                end = index + 2  # unary minus
        if end and _value_only(tokens, index, end, depth, region):
            out.append(PLACEHOLDER)
            index = end
            continue
        out.append(token)
        index += 1
    return out


def _word(token: str) -> str:
    return token.lower() if token[0] in _IDENT_START else token


def _value_only(tokens: tuple[str, ...], start: int, end: int, depth: int, region: str) -> bool:
    """Can this literal's value change no fact the rules read?"""
    count = len(tokens)
    before = _word(tokens[start - 1]) if start else ""
    after = tokens[end] if end < count else ""
    if before in _COMPARISONS and start >= 2 and tokens[start - 2][0] in _IDENT_START:
        return True  # column <op> literal
    if after in _COMPARISONS:
        after2 = tokens[end + 1] if end + 1 < count else ""
        return after2[:1] in _IDENT_START and before in _MIRROR_BEFORE  # literal <op> column
    if before in _SIZE_WORDS and depth == 0:
        return True
    if before == "between" or (before == "and" and _after_between(tokens, start)):
        return True
    if before in ("(", ",") and after in (",", ")"):
        if region == "values" and depth == 1:
            return True
        return _in_list(tokens, start)
    return region == "set" and depth == 0 and before in _ARITHMETIC


def _after_between(tokens: tuple[str, ...], start: int) -> bool:
    """Is the ``and`` before this literal BETWEEN's (``x BETWEEN lit AND lit``)?"""
    if start < 4:
        return False
    if tokens[start - 3].lower() == "between":
        return True
    return tokens[start - 4].lower() == "between" and tokens[start - 3] == "-"


def _in_list(tokens: tuple[str, ...], start: int) -> bool:
    """Is this literal an item of ``column IN (literal, ...)``?"""
    index = start - 1
    while index >= 0 and tokens[index] != "(":
        index -= 1
    return (
        index >= 2
        and tokens[index - 1].lower() == "in"
        and tokens[index - 2][0] in _IDENT_START
        and all(_is_literal(t) or t in (",", "-") for t in tokens[index + 1 : start])
    )
