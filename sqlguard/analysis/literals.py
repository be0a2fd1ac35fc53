"""Decoding of PostgreSQL string literals and identifiers, as the server's scanner does it.

The firewall must see the same characters as PostgreSQL, not what another SQL dialect would
make of the same bytes: ``E'\\''`` is one quote, ``N'\\'`` is one backslash, ``U&"\\0075"`` is
``u``. Source: PostgreSQL docs, "Lexical Structure" (sql-syntax-lexical.html, 4.1.2) and
``src/backend/parser/scan.l``; we assume ``standard_conforming_strings = on`` (the default
since 9.1; policy must refuse changing it, because that would change how later text lexes).
"""

from __future__ import annotations

import re

NAMEDATALEN = 64
"""PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes (with a NOTICE)."""

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_E_ESCAPE = re.compile(
    r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{4})"
    r"|U([0-9A-Fa-f]{8})|(.))",
    re.S,
)
_E_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_U_ESCAPE = re.compile(r"\\(?:(\\)|([0-9A-Fa-f]{4})|\+([0-9A-Fa-f]{6})|(.?))", re.S)


class LexError(ValueError):
    """The text is not something PostgreSQL's scanner accepts; the message says why."""


def fold_identifier(word: str) -> str:
    """Fold an unquoted identifier like PostgreSQL with a UTF-8 database: ASCII only.

    >>> fold_identifier("DÉLÉTE")
    'dÉlÉte'
    """
    return truncate_identifier(word.translate(_ASCII_LOWER))


def truncate_identifier(name: str) -> str:
    """Clip a name to 63 bytes on a character boundary, as PostgreSQL does."""
    raw = name.encode()
    if len(raw) < NAMEDATALEN:
        return name
    return raw[: NAMEDATALEN - 1].decode(errors="ignore")


def decode_escape_string(body: str) -> str:
    r"""The value of the body of an ``E'...'`` literal, with ``''`` and backslash escapes.

    Escapes build bytes first, as in PostgreSQL, so ``E'\303\251'`` is ``é`` and a lone
    ``E'\377'`` is an invalid byte sequence.

    >>> decode_escape_string(r"it\'s \x41''")
    "it's A'"
    """
    out = bytearray()
    pos = 0
    for match in _E_ESCAPE.finditer(body):
        out += body[pos : match.start()].replace("''", "'").encode()
        out += _escape_bytes(match)
        pos = match.end()
    out += body[pos:].replace("''", "'").encode()
    return _checked_text(bytes(out))


def _escape_bytes(match: re.Match[str]) -> bytes:
    """The bytes one backslash escape of an E'' string stands for."""
    octal, hexa, short, long_, other = match.groups()
    if octal is not None:
        return bytes([int(octal, 8) & 0xFF])
    if hexa is not None:
        return bytes([int(hexa, 16)])
    if short is not None or long_ is not None:
        return _code_point(int(short or long_, 16)).encode("utf-8", "surrogatepass")
    return _E_SIMPLE.get(other, other).encode()


def decode_unicode_escapes(body: str) -> str:
    """The value of a ``U&'...'`` or ``U&"..."`` body with the default escape ``\\``."""
    parts: list[str] = []
    pos = 0
    for match in _U_ESCAPE.finditer(body):
        parts.append(body[pos : match.start()])
        backslash, short, long_, bad = match.groups()
        if bad is not None:
            raise LexError("invalid Unicode escape in a U& literal")
        parts.append("\\" if backslash else _code_point(int(short or long_, 16)))
        pos = match.end()
    parts.append(body[pos:])
    return _checked_text("".join(parts).encode("utf-8", "surrogatepass"))


def _code_point(value: int) -> str:
    """One escaped code point; surrogate halves are paired later by the UTF-8 check."""
    if value == 0 or value > 0x10FFFF:
        raise LexError("invalid Unicode escape value")
    return chr(value)


def _checked_text(raw: bytes) -> str:
    """Decode escaped bytes; PostgreSQL refuses invalid UTF-8 and NUL in text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = _paired_surrogates(raw)
    if "\x00" in text:
        raise LexError("a string literal contains a NUL character")
    return text


def _paired_surrogates(raw: bytes) -> str:
    """Escapes like \\uD83D\\uDE00 name one character through a surrogate pair."""
    try:
        return (
            raw.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass").decode("utf-16")
        )
    except UnicodeError as exc:
        raise LexError("a string literal is not valid UTF-8 after escapes") from exc


def quote_string(value: str) -> str:
    """A standard-conforming literal for ``value``, the one form every dialect reads alike."""
    return "'" + value.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    """A delimited identifier for ``name``."""
    return '"' + name.replace('"', '""') + '"'
