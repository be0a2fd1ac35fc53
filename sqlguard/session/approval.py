"""Approval tokens as clients send them: a leading comment, or a SET just before.

The SET form must not reach the server with its token, yet the client must get the
answer a SET gets, in order: so it is replaced by `SET sqlguard.approval TO DEFAULT`
(a harmless custom setting) and the token is kept for the next statement only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlguard.approvals.comment import parse_approval_set, split_approval

SET_REPLACEMENT = b"SET sqlguard.approval TO DEFAULT"
_MENTION = re.compile(rb"(?i)sqlguard")


@dataclass(slots=True)
class Attached:
    """A statement text with its token taken out; `replacement` is set for the SET form."""

    text: bytes
    token: str | None = None
    replacement: bytes | None = None


class ApprovalTokens:
    """The token a SET left for the next statement of this connection."""

    def __init__(self) -> None:
        self._next: str | None = None

    def take(self, text: bytes) -> Attached:
        """Split off the token the statement carries, or the one a SET left for it.

        >>> tokens = ApprovalTokens()
        >>> tokens.take(b"SET sqlguard.approval = 'sga1.a.b'").replacement is not None
        True
        >>> tokens.take(b"DROP TABLE t").token, tokens.take(b"DROP TABLE t").token
        ('sga1.a.b', None)
        """
        pending, self._next = self._next, None
        if not _MENTION.search(text):
            return Attached(text, pending)
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            return Attached(text, pending)
        token = parse_approval_set(decoded)
        if token is not None:
            self._next = token
            return Attached(text, None, SET_REPLACEMENT)
        token, rest = split_approval(decoded)
        if token is None:
            return Attached(text, pending)
        return Attached(rest.encode("utf-8"), token)
