"""Statements between the moment they go upstream and the end of their result.

The server answers in order, so a FIFO is enough: a Query ends at its ReadyForQuery; an
Execute ends at its CommandComplete, EmptyQueryResponse, PortalSuspended or error, or, if
an earlier error made the server skip it, at the ReadyForQuery of its Sync. The boundary
count says which ReadyForQuery ends which statements (as for refusal markers).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class _Running:
    id: int
    simple: bool
    boundary: int
    sqlstate: str = ""
    tag: str = ""


@dataclass(slots=True)
class Finished:
    """How a statement ended: SQLSTATE ("" for success), its CommandComplete tag, and whether
    the server ran it at all (an earlier error in its pipeline makes the server skip it)."""

    id: int
    sqlstate: str
    tag: str
    ran: bool = True


class InFlight:
    """The statements whose results are still coming, oldest first.

    >>> flight = InFlight()
    >>> flight.started(simple=True, boundary=1)
    1
    >>> flight.result(b"C", "SELECT 1"), flight.ready(1)
    (None, [Finished(id=1, sqlstate='', tag='SELECT 1', ran=True)])
    """

    def __init__(self) -> None:
        self._running: deque[_Running] = deque()
        self._ids = 0

    def started(self, *, simple: bool, boundary: int) -> int:
        self._ids += 1
        self._running.append(_Running(self._ids, simple, boundary))
        return self._ids

    def result(self, kind: bytes, value: str) -> Finished | None:
        """A CommandComplete (tag), ErrorResponse (SQLSTATE), 'I' or 's' from the server."""
        if not self._running:
            return None
        head = self._running[0]
        if kind == b"E":
            head.sqlstate = value
        elif kind == b"C":
            head.tag = value
        if head.simple:
            return None  # a Query ends only at its ReadyForQuery
        self._running.popleft()
        return Finished(head.id, head.sqlstate, head.tag)

    def ready(self, boundary: int) -> list[Finished]:
        """ReadyForQuery number `boundary`: everything it ends, finished or skipped."""
        done = []
        while self._running and self._running[0].boundary <= boundary:
            head = self._running.popleft()
            done.append(Finished(head.id, head.sqlstate, head.tag, head.simple))
        return done
