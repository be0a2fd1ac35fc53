"""SASLprep (RFC 4013) with PostgreSQL's leniency, so verifiers match what libpq computes.

libpq and the server both normalise the password before hashing it. Like PostgreSQL's
``pg_saslprep``: pure-ASCII passwords are used unchanged, and a password that SASLprep
rejects (prohibited or unassigned characters, bad bidirectional text) is used as given
rather than refused. Python's ``stringprep`` tables are the RFC's Unicode 3.2 ones.

>>> saslprep("I\\u00ADX"), saslprep("\\u2168"), saslprep("pass word")
('IX', 'IX', 'pass word')
>>> saslprep("a\\u0007b")  # prohibited, so used as given (as PostgreSQL does)
'a\\x07b'
"""

from __future__ import annotations

import stringprep
import unicodedata
from collections.abc import Callable

_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_a1,
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(password: str) -> str:
    """The string to hash for ``password``: prepared if SASLprep accepts it, else unchanged."""
    if password.isascii():
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in password
        if not stringprep.in_table_b1(char)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    if not prepared or any(check(char) for char in prepared for check in _PROHIBITED):
        return password
    return prepared if _bidi_ok(prepared) else password


def _bidi_ok(text: str) -> bool:
    """RFC 3454 section 6: right-to-left text must not mix in left-to-right letters."""
    if not any(stringprep.in_table_d1(char) for char in text):
        return True
    if any(stringprep.in_table_d2(char) for char in text):
        return False
    return stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1])
