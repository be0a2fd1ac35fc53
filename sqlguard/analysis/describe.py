"""What the audit log and traces say about a statement, computed once per text.

Sanitising and fingerprinting each run PostgreSQL's lexer over the text, and the summary
walks the facts: together tens of microseconds. Prepared statements and most applications
send the same texts again and again, so the shell asks for a description through a cache
(``Firewall.describe``) instead of recomputing it for every execution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlguard.analysis.facts import StatementFacts
from sqlguard.analysis.fingerprint import digest_of, fingerprint, normal_word
from sqlguard.analysis.sanitize import query_summary, sanitized_text
from sqlguard.analysis.shape import constants_replaced, is_word, shape_tokens


@dataclass(frozen=True, slots=True)
class Description:
    """A statement as it may be logged: no literal values, no comments."""

    text: str  # literals replaced by ?, comments dropped
    summary: str  # "SELECT accounts": command and first table
    fingerprint: str | None  # what an approval for this exact statement is bound to
    kinds: tuple[str, ...]
    tables: tuple[str, ...]

    def resolve(self) -> Description:
        """Itself (see ``PendingDescription``)."""
        return self


def describe(text: bytes, facts: Sequence[StatementFacts]) -> Description:
    """The description of ``text``, whose facts the caller already has.

    >>> from sqlguard.analysis.parse import analyze_bytes
    >>> sql = b"SELECT a FROM t WHERE id = 42"
    >>> described = describe(sql, analyze_bytes(sql))
    >>> described.text, described.summary
    ('SELECT a FROM t WHERE id = ?', 'SELECT t')
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        sanitized, digest = f"<not valid UTF-8: {len(text)} bytes>", None
    else:
        sanitized, digest = _logged_forms(decoded)
    return Description(
        sanitized,
        query_summary(facts),
        digest,
        tuple(sorted({str(kind) for f in facts for kind in f.kinds})),
        tuple(sorted({table for f in facts for table in f.tables})),
    )


def _logged_forms(text: str) -> tuple[str, str | None]:
    """(sanitised text, fingerprint). A text in the shape alphabet is a plain run of words,
    numbers, simple strings and operators: both come from its shape tokens, as PostgreSQL's
    lexer would give them (tested against it), without running that lexer."""
    tokens = shape_tokens(text)
    if tokens is not None:
        normal = [normal_word(t) if is_word(t) else t for t in tokens]
        return constants_replaced(text), digest_of(normal)
    try:
        return sanitized_text(text), fingerprint(text)
    except ValueError:
        return sanitized_text(text), None


def redescribe(known: Description, text: bytes) -> Description:
    """The description of ``text``, another statement of ``known``'s shape: the same
    summary, kinds and tables; its own sanitised text and fingerprint."""
    sanitized, digest = _logged_forms(text.decode("utf-8"))
    return Description(sanitized, known.summary, digest, known.kinds, known.tables)


class PendingDescription:
    """A new text of a known shape, described when first asked (``resolve``).

    Why: the audit record and the span that show a statement are made on the threads that
    ship them, and sanitising and fingerprinting a text with new literals cost the event
    loop 30-45 µs per simple-protocol statement (timed in the running sidecar, pgbench -S
    -M simple -c 8). Only pure functions run in ``resolve``; two threads resolving at once
    both get the same description.
    """

    __slots__ = ("_done", "_known", "_text")

    def __init__(self, known: Description, text: bytes) -> None:
        self._known = known
        self._text = text
        self._done: Description | None = None

    def resolve(self) -> Description:
        done = self._done
        if done is None:
            done = self._done = redescribe(self._known, self._text)
        return done


Described = Description | PendingDescription
"""What ``Firewall.describe`` gives: ``resolve()`` it where the description is read."""
