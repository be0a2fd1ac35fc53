"""A scanner that reads SQL text the way PostgreSQL's does.

Why our own scanner and not sqlglot's: every evasion in the corpus that hides a statement
does it in the lexer (nested ``/* */`` comments, ``$tag$`` quotes with non-ASCII tags,
``E'\\''``, a ``--`` comment that a U+2028 or form feed does not end, a no-break space that
PostgreSQL reads as part of an identifier). sqlglot tokenizes those differently. So this
module (with ``split``) decides where tokens and statements are, following PostgreSQL 16+'s
``src/backend/parser/scan.l`` (hex/octal/binary integers, ``_`` in numbers, trailing junk
after a number is an error), and gives sqlglot each token re-spelt in a canonical form that
cannot be read two ways.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import NamedTuple

from sqlguard.analysis import literals
from sqlguard.analysis.literals import LexError

_HIGH = "\x80-\U0010ffff"
_IDENT_START = re.compile(f"[A-Za-z_{_HIGH}]")
_NUMBER = (
    r"0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+"
    r"|(?:[0-9](?:_?[0-9])*(?:\.(?!\.)(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)"
    r"(?:[eE][-+]?[0-9](?:_?[0-9])*)?"
)
_MASTER = re.compile(
    rf"""[ \t\n\r\f\v]*+(?:
    (?P<line>--[^\n\r]*)
    |(?P<block>/\*)
    |(?P<estr>[eE]')|(?P<nstr>[nN]')|(?P<bits>[bBxX]')|(?P<ustr>[uU]&')|(?P<uident>[uU]&")
    |(?P<str>')|(?P<qident>")
    |(?P<dollar>\$(?:[A-Za-z_{_HIGH}][A-Za-z_0-9{_HIGH}]*)?\$)
    |(?P<param>\$[0-9]+)
    |(?P<number>{_NUMBER})
    |(?P<ident>[A-Za-z_{_HIGH}][A-Za-z_0-9${_HIGH}]*)
    |(?P<op>[~!@\#^&|`?+\-*/%<>=]+)
    |(?P<self>::|:=|\.\.|[,()\[\].;:])
    |(?P<end>\Z))""",
    re.X,
)
# Possessive quantifiers: an unterminated literal must fail in linear time.
_QUOTED_BODY = {
    "str": re.compile(r"((?:[^']++|'')*+)'"),
    "estr": re.compile(r"((?:[^'\\]++|''|\\.)*+)'", re.S),
    "qident": re.compile(r'((?:[^"]++|"")*+)"'),
}
# A string continues after whitespace that holds a newline (scan.l: quotecontinue).
_CONTINUE = re.compile(
    r"(?:[ \t\f\v]++|--[^\n\r]*+)*+[\n\r](?:[ \t\n\r\f\v]++|--[^\n\r]*+[\n\r])*+'"
)
BLANKS = " \t\n\r\f\v"
_NEXT_WORD = re.compile(r"[ \t\n\r\f\v]*+([A-Za-z]+)")
_BITS = {"B": re.compile("[01]*"), "X": re.compile("[0-9A-Fa-f]*")}
_COMMENT_EDGE = re.compile(r"/\*|\*/")


class T(enum.Enum):
    """Token classes; only the distinctions the analysis needs."""

    IDENT = "identifier"
    QIDENT = "quoted identifier"
    STRING = "string"
    NUMBER = "number"
    PARAM = "parameter"
    OP = "operator"
    SEMI = "semicolon"


class Token(NamedTuple):
    """One token: where it is in the message, its value, and how sqlglot should see it.

    ``value`` is the folded identifier, the decoded string, or the text; ``sql`` is the
    canonical spelling handed to sqlglot.
    """

    kind: T
    start: int
    end: int
    value: str
    sql: str

    def word(self) -> str:
        """The keyword this token could be ('' unless it is an unquoted identifier)."""
        return self.value if self.kind is T.IDENT else ""


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``; comments and whitespace dropped. Raises LexError.

    >>> [t.sql for t in tokenize("SELECT E'it\\\\'s' /* c */ FROM \\"T\\"")]
    ['select', "'it''s'", 'from', '"T"']
    """
    tokens: list[Token] = []
    pos, size = 0, len(text)
    while pos < size:
        match = _MASTER.match(text, pos)
        if match is None:
            raise _unexpected(text, pos)
        group = match.lastgroup or ""
        if group == "ident":  # the common case, inlined
            tokens.append(_ident(match))
            pos = match.end()
            continue
        token, pos = _READERS[group](text, _Hit(group, match.start(group), match.end()))
        if token is not None:
            tokens.append(token)
    return tokens


class _Hit(NamedTuple):
    """Which rule of the master pattern matched, and where (leading blanks excluded)."""

    group: str
    start: int
    end: int


def _unexpected(text: str, pos: int) -> LexError:
    """A character no scanner rule accepts (``{``, ``\\``, a control character ...)."""
    rest = text[pos:].lstrip(BLANKS)
    return LexError(f"unexpected character {rest[:1]!r} at offset {len(text) - len(rest)}")


def _skip(text: str, hit: _Hit) -> tuple[None, int]:
    return None, hit.end


def _block_comment(text: str, hit: _Hit) -> tuple[None, int]:
    """Skip a ``/* */`` comment; PostgreSQL nests them, unlike the SQL standard."""
    depth, pos = 1, hit.end
    while depth:
        edge = _COMMENT_EDGE.search(text, pos)
        if edge is None:
            raise LexError("unterminated /* comment")
        depth += 1 if edge.group() == "/*" else -1
        pos = edge.end()
    return None, pos


def _quoted(text: str, start: int, body_kind: str) -> tuple[str, int]:
    """The raw body of a quoted token starting at ``start`` and the offset after it."""
    body = _QUOTED_BODY[body_kind].match(text, start)
    if body is None:
        raise LexError(f"unterminated quoted {body_kind} at offset {start}")
    return body.group(1), body.end()


def _string(text: str, hit: _Hit) -> tuple[Token, int]:
    """Any quoted string form; adjacent parts joined by a newline continue it."""
    mode = "estr" if hit.group == "estr" else "str"
    decode = _STRING_DECODERS[hit.group]
    raw, pos = _quoted(text, hit.end, mode)
    parts = [decode(raw)]
    while (more := _CONTINUE.match(text, pos)) is not None:
        raw, pos = _quoted(text, more.end(), mode)
        parts.append(decode(raw))
    value = "".join(parts)
    if hit.group == "ustr":
        _refuse_uescape(text, pos)
    if hit.group == "bits":
        spelt = _bit_string(text[hit.start].upper(), value)
    else:
        spelt = literals.quote_string(value)
    return Token(T.STRING, hit.start, pos, value, spelt), pos


def _bit_string(prefix: str, value: str) -> str:
    """``B'0101'`` / ``X'1F'`` as written; other digits are an error in PostgreSQL too."""
    if not _BITS[prefix].fullmatch(value):
        raise LexError(f"invalid digit in the {prefix}'' bit string")
    return f"{prefix}'{value}'"


def _refuse_uescape(text: str, pos: int) -> None:
    """A U& literal may name another escape character; we only read the default one."""
    following = _NEXT_WORD.match(text, pos)
    if following and following.group(1).lower() == "uescape":
        raise LexError("UESCAPE is not supported; use the default \\ escape")


def _quoted_ident(text: str, hit: _Hit) -> tuple[Token, int]:
    """A ``"..."`` or ``U&"..."`` identifier: case kept, truncated to 63 bytes."""
    raw, pos = _quoted(text, hit.end, "qident")
    name = raw.replace('""', '"')
    if hit.group == "uident":
        _refuse_uescape(text, pos)
        name = literals.decode_unicode_escapes(name)
    if not name:
        raise LexError("zero-length delimited identifier")
    name = literals.truncate_identifier(name)
    return Token(T.QIDENT, hit.start, pos, name, literals.quote_identifier(name)), pos


def _dollar(text: str, hit: _Hit) -> tuple[Token, int]:
    """A ``$tag$ ... $tag$`` string; the tag is case-sensitive and may be non-ASCII."""
    tag = text[hit.start : hit.end]
    close = text.find(tag, hit.end)
    if close < 0:
        raise LexError(f"unterminated dollar-quoted string {tag}")
    value = text[hit.end : close]
    end = close + len(tag)
    return Token(T.STRING, hit.start, end, value, literals.quote_string(value)), end


def _number(text: str, hit: _Hit) -> tuple[Token, int]:
    """A numeric literal or $n, re-spelt in decimal; junk after it is an error (PG 16+)."""
    if _IDENT_START.match(text, hit.end):
        raise LexError(f"trailing junk after numeric literal at offset {hit.start}")
    raw = text[hit.start : hit.end].replace("_", "")
    if hit.group == "param":
        return Token(T.PARAM, hit.start, hit.end, raw, raw), hit.end
    digits = str(int(raw, 0)) if raw[:2].lower() in ("0x", "0o", "0b") else raw
    return Token(T.NUMBER, hit.start, hit.end, digits, digits), hit.end


def _ident(match: re.Match[str]) -> Token:
    """An unquoted identifier or keyword, folded; quoted for sqlglot unless plain ASCII."""
    word = match.group("ident")
    if word.isascii() and len(word) < literals.NAMEDATALEN:  # fast path: str.lower is cheap
        name = word.lower()
        spelt = name if "$" not in name else literals.quote_identifier(name)
    else:
        name = literals.fold_identifier(word)
        spelt = literals.quote_identifier(name)
    return Token(T.IDENT, match.start("ident"), match.end(), name, spelt)


def _operator(text: str, hit: _Hit) -> tuple[Token, int]:
    """An operator, cut like scan.l: at a comment start, and without SQL's trailing +/-."""
    op = text[hit.start : hit.end]
    cut = min((i for i in (op.find("--"), op.find("/*")) if i >= 0), default=len(op))
    op = op[:cut] or op[:1]
    if len(op) > 1 and op[-1] in "+-" and not set(op) & set("~!@#^&|`?%"):
        op = op.rstrip("+-") or op[0]
    if "`" in op:
        raise LexError("the ` character is not part of any PostgreSQL operator we accept")
    end = hit.start + len(op)
    return Token(T.OP, hit.start, end, op, op), end


def _self(text: str, hit: _Hit) -> tuple[Token, int]:
    """Punctuation: ( ) [ ] , . ; : :: := .."""
    char = text[hit.start : hit.end]
    return Token(T.SEMI if char == ";" else T.OP, hit.start, hit.end, char, char), hit.end


def _undouble(raw: str) -> str:
    return raw.replace("''", "'")


_STRING_DECODERS: dict[str, Callable[[str], str]] = {
    "str": _undouble,
    "nstr": _undouble,
    "bits": _undouble,
    "estr": literals.decode_escape_string,
    "ustr": lambda raw: literals.decode_unicode_escapes(_undouble(raw)),
}
_READERS: dict[str, Callable[[str, _Hit], tuple[Token | None, int]]] = {
    "line": _skip,
    "block": _block_comment,
    "end": _skip,
    "estr": _string,
    "nstr": _string,
    "bits": _string,
    "ustr": _string,
    "str": _string,
    "qident": _quoted_ident,
    "uident": _quoted_ident,
    "dollar": _dollar,
    "param": _number,
    "number": _number,
    "op": _operator,
    "self": _self,
}
