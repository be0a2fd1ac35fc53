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
from dataclasses import dataclass

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
# The literal tokens alone, for texts in the alphabet, as `split` separators: a number never
# follows a name character there (a name swallows its digits), so the look-behind only
# skips digits inside names. Each alternative tests its first character before looking
# behind, which makes the scan twice as fast.
_LITERALS = re.compile(
    r"('(?<![A-Za-z0-9_']')(?:[^'\\]++|'')*+'(?![A-Za-z0-9_'])"
    r"|[0-9](?<![A-Za-z0-9_][0-9])[0-9]*+(?:\.[0-9]++)?+(?![A-Za-z0-9_.']))"
)
_MARKER = re.compile("(?:0|')\x00([0-9]+)")
_CONSTANT = re.compile(r"[0-9](?<![A-Za-z0-9_][0-9])[0-9]*+(?:\.[0-9]++)?+|'(?:[^'\\]++|'')*+'")

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
    found = _shaped(text)
    return None if found is None else found[0]


def shape_tokens(text: str) -> tuple[str, ...] | None:
    """The tokens of a text written in the shape alphabet (without a final ``;``), else None."""
    found = _shaped(text)
    return None if found is None else found[1]


@dataclass(frozen=True, slots=True)
class _Family:
    """What the texts of one literal family share: the same text around their literals, and
    literals of the same kinds (number or string) in the same places.

    Whether a text has a shape, and which of its literals the shape keeps, depend only on
    the tokens around its literals and their kinds (never on a literal's value: `_replaced`
    compares neighbours with words and operators, which no literal equals), so they are
    worked out once per family. ``tokens`` are the shape tokens with a marker for each
    literal, at the positions ``slots``; the shape is ``pieces`` joined with the literals
    ``kept`` (by their order in the text) between them.
    """

    tokens: tuple[str, ...]
    slots: tuple[int, ...]
    pieces: tuple[str, ...]
    kept: tuple[int, ...]


_NO_SHAPE = _Family((), (), (), ())
_FAMILIES: dict[str, _Family] = {}
_MAX_FAMILIES = 4096


@functools.lru_cache(maxsize=64)
def _shaped(text: str) -> tuple[str, tuple[str, ...]] | None:
    """(shape, shape tokens) of ``text``, or None. Cached for a few texts: the firewall and
    the audit description ask for the same text one after the other.

    A new text of a known family costs two regular expression passes (in C) and a dict
    lookup instead of tokenising and `_replaced` in Python. The alphabet check runs for
    every text: it is what makes `_LITERALS` find exactly the literal tokens (in the
    alphabet a quote only starts or is inside a string token, and a digit that does not
    follow a name character starts a number token).
    """
    if not text.isascii() or _VALID.fullmatch(text) is None:
        return None
    parts = _LITERALS.split(text)
    literals = parts[1::2]
    kinds = "".join(["'" if literal[0] == "'" else "0" for literal in literals])
    key = "\x00".join([kinds, *parts[0::2]])
    family = _FAMILIES.get(key)
    if family is None:
        family = _family(text, literals)
        if len(_FAMILIES) >= _MAX_FAMILIES:
            _FAMILIES.clear()
        _FAMILIES[key] = family
    if family is _NO_SHAPE or len(family.slots) != len(literals):
        return None
    tokens = list(family.tokens)
    for slot, literal in zip(family.slots, literals, strict=True):
        tokens[slot] = literal
    pieces = family.pieces
    if not family.kept:
        return pieces[0], tuple(tokens)
    parts = [pieces[0]]
    for kept, piece in zip(family.kept, pieces[1:], strict=True):
        parts += (literals[kept], piece)
    return "".join(parts), tuple(tokens)


def _family(text: str, literals: list[str]) -> _Family:
    """The family of ``text`` (a text in the alphabet), from its tokens."""
    tokens = _tokens(text)
    if tokens is None:
        return _NO_SHAPE
    slots = [index for index, token in enumerate(tokens) if _is_literal(token)]
    if [tokens[index] for index in slots] != literals:
        return _NO_SHAPE  # cannot happen in the alphabet; if it did, no shape is safe
    marked = list(tokens)
    for number, index in enumerate(slots):
        kind = "'" if tokens[index][0] == "'" else "0"  # what `_replaced` looks at
        marked[index] = f"{kind}\x00{number}"
    split = _MARKER.split(" ".join(_replaced(tuple(marked))))
    return _Family(
        tuple(marked),
        tuple(slots),
        tuple(split[0::2]),
        tuple(int(number) for number in split[1::2]),
    )


def _tokens(text: str) -> list[str] | None:
    """The shape tokens of a text in the alphabet (without a final ``;``), else None."""
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
    return tokens


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
