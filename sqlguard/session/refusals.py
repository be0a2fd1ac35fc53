"""Refusals in flight: marker statements sent upstream and the errors that replace theirs.

A refused message is replaced by a statement that fails to parse and carries a random
marker; PostgreSQL answers it with a syntax error naming the marker, which is swapped for
sqlguard's ErrorResponse. A marker can only be answered before the ReadyForQuery that ends
its message (a Query) or batch (the next Sync); after that it is forgotten, so a server
error that merely mentions an old marker is never rewritten.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

MARKER_PREFIX = b"sqlguard_refused_"


@dataclass(slots=True)
class _Pending:
    error: bytes
    boundary: int


class RefusalMarkers:
    """Counts message boundaries (Query, Sync, FunctionCall) sent and ReadyForQuery received."""

    def __init__(self) -> None:
        self._pending: dict[bytes, _Pending] = {}
        self._sent = 0
        self._done = 0

    @property
    def sent(self) -> int:
        """Message boundaries (Query, Sync, FunctionCall) sent upstream so far."""
        return self._sent

    @property
    def done(self) -> int:
        """ReadyForQuery messages received so far."""
        return self._done

    def boundary_sent(self) -> None:
        self._sent += 1

    def add(self, error: bytes, *, ends_with_next_sync: bool) -> bytes:
        """Register `error` for a new marker; the marker is the text to send upstream."""
        marker = MARKER_PREFIX + secrets.token_hex(8).encode()
        self._pending[marker] = _Pending(error, self._sent + ends_with_next_sync)
        return marker

    def ready_received(self) -> None:
        self._done += 1
        if self._pending:
            done = self._done
            self._pending = {k: p for k, p in self._pending.items() if p.boundary > done}

    def replace(self, error_response: bytes) -> bytes:
        """sqlguard's error if this server error answers one of our markers, else unchanged."""
        for marker, pending in self._pending.items():
            if marker in error_response:
                del self._pending[marker]
                return pending.error
        return error_response
