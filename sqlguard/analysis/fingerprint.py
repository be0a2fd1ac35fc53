"""The fingerprint of a message's SQL: what an approval token is bound to.

An approver approves one exact statement, so the fingerprint must change whenever what the
server would run changes (another identifier, another literal value), and must not change for
what the server ignores (whitespace, comments, the case of keywords and unquoted names). It is
taken from PostgreSQL's own lexer (libpg_query's scanner through ``pglast.parser.scan``), the
same token boundaries the server sees, so two texts with one fingerprint are one token stream:

- comments are dropped; keywords are upper-cased; unquoted identifiers are folded to lower
  case as PostgreSQL folds them (ASCII letters only, ``scansup.c: downcase_identifier``);
- quoted identifiers, ``U&""`` identifiers, strings, numbers, ``$n`` parameters and
  dollar-quoted bodies are kept exactly as written, so ``'a'`` and ``'A'`` differ, and so do
  ``"T"`` and ``t`` (``"t"`` and ``t`` differ too: the safe direction);
- empty statements (a trailing ``;``, or ``;;``) do not count.

The scanner assumes ``standard_conforming_strings = on``, which the sidecar enforces.
"""

from __future__ import annotations

import functools
import hashlib
import string
from collections.abc import Iterable

from pglast import keywords
from pglast.parser import ParseError, scan

_COMMENTS = frozenset({"C_COMMENT", "SQL_COMMENT"})
_SEMICOLON = "ASCII_59"
_KEYWORDS = frozenset(
    {"RESERVED_KEYWORD", "UNRESERVED_KEYWORD", "COL_NAME_KEYWORD", "TYPE_FUNC_NAME_KEYWORD"}
)
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# Every word PostgreSQL's lexer reports as a keyword of any class (lower case).
_KEYWORD_WORDS = frozenset().union(
    keywords.RESERVED_KEYWORDS,
    keywords.UNRESERVED_KEYWORDS,
    keywords.COL_NAME_KEYWORDS,
    keywords.TYPE_FUNC_NAME_KEYWORDS,
)
_BLANKS = frozenset(" \t\n\r\f\v")
# Domain separation: a later change of the normal form must change every fingerprint.
_SCHEME = b"sqlguard-fingerprint-v1\x00"
FINGERPRINT_LENGTH = 32


def fingerprint(text: str) -> str:
    """A 32-hex-digit digest of the statement(s) in ``text``, stable across whitespace,
    comments and keyword case; ``ValueError`` if PostgreSQL's lexer cannot read the text.

    >>> fingerprint("delete from t where id = 5") == fingerprint("DELETE FROM T /**/ WHERE id=5;")
    True
    >>> fingerprint("DELETE FROM t WHERE id = 5") == fingerprint("DELETE FROM t WHERE id = 6")
    False
    """
    return digest_of(normal_tokens(text))


def digest_of(tokens: Iterable[str]) -> str:
    """The fingerprint of a normal token stream (see ``normal_tokens``)."""
    # Length-prefixed, so no two different token lists feed the hash the same bytes.
    encoded = [token.encode("utf-8") for token in tokens]
    data = b"".join(len(part).to_bytes(4, "big") + part for part in encoded)
    return hashlib.sha256(_SCHEME + data).hexdigest()[:FINGERPRINT_LENGTH]


@functools.lru_cache(maxsize=4096)
def normal_word(word: str) -> str:
    """An unquoted word as the fingerprint spells it: keywords upper case, names folded.
    Cached: the same few keywords and names come back in every statement."""
    folded = word.translate(_FOLD) if not word.isascii() else word.lower()
    return word.upper() if folded in _KEYWORD_WORDS else folded


def normal_tokens(text: str) -> list[str]:
    """The token stream the fingerprint hashes (shown by ``sqlguard fingerprint --tokens``).

    >>> normal_tokens("select Name, \\"Name\\" from T -- all\\n;")
    ['SELECT', 'NAME', ',', '"Name"', 'FROM', 't']
    """
    spelt = []
    for name, kind, spelling in _tokens(text):
        if name not in _COMMENTS:
            spelt.append((name == _SEMICOLON, _normal(name, kind, spelling)))
    return _without_empty_statements(spelt)


def _tokens(text: str) -> Iterable[tuple[str, str, str]]:
    """(token name, keyword kind, source spelling) for every token, comments included.

    The scanner hands text to C: a NUL would silently end it there, and anything it skips
    between tokens must be whitespace, or the fingerprint could miss part of the statement.
    """
    if "\x00" in text:
        raise ValueError("the text contains a NUL character")
    try:
        tokens = scan(text)
    except (ParseError, UnicodeError) as exc:
        raise ValueError(f"PostgreSQL's lexer cannot read the text: {exc}") from None
    position = 0
    for token in tokens:
        _require_blank(text[position : token.start])
        position = token.end + 1
        yield token.name, token.kind, text[token.start : position]
    _require_blank(text[position:])


def _require_blank(gap: str) -> None:
    if not _BLANKS.issuperset(gap):
        raise ValueError(f"PostgreSQL's lexer skipped text it did not read: {gap[:20]!r}")


def _normal(name: str, kind: str, spelling: str) -> str:
    """Keywords upper case, unquoted identifiers folded, everything else verbatim."""
    if kind in _KEYWORDS:
        return spelling.upper()
    if name == "IDENT" and not spelling.startswith('"'):
        return spelling.translate(_FOLD)
    return spelling


def _without_empty_statements(spelt: list[tuple[bool, str]]) -> list[str]:
    """Drop the semicolons that end nothing: leading, trailing and repeated ones."""
    tokens: list[str] = []
    after_statement = False
    for is_semicolon, token in spelt:
        if is_semicolon and not after_statement:
            continue
        tokens.append(token)
        after_statement = not is_semicolon
    if tokens and not after_statement:  # the last token kept is a semicolon
        tokens.pop()
    return tokens
