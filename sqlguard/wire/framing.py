"""Bytes in, frames out, for both directions of a connection.

Protocol docs, "Message Formats": after the untyped startup packet every message is a
type byte plus an int32 length that counts itself but not the type byte. The firewall
needs the contents of only a few message types; all others are forwarded as the original
bytes, even before they have fully arrived, so a 1 GB DataRow or CopyData never has to
sit in memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# PostgreSQL's own limit for the startup packet (MAX_STARTUP_PACKET_LENGTH).
MAX_STARTUP_PACKET = 10_000
# PostgreSQL's limit for any single message (PQ_LARGE_MESSAGE_LIMIT is 1 GB - 1).
MAX_MESSAGE = (1 << 30) - 1

_INT32 = struct.Struct("!I")
_PASS, _INSPECT, _REFUSE = 0, 1, 2
_TWIN_FIRST_WINDOW = 16  # headers compared by the first check of a run of identical ones
_TWIN_WINDOW = 1024  # at most, by each later one
_TWIN_WORTH = 8  # a shorter run found means rows vary: ...
_TWIN_COOLDOWN = 256  # ... walk about this many messages one by one before checking again


class FrameError(ValueError):
    """The peer sent bytes that are not a valid message stream (answer 08P01 and close)."""


@dataclass(slots=True)
class Frame:
    """One whole message the firewall wants to read: its type, body and original bytes."""

    type: int
    body: bytes
    raw: bytes


class StartupReader:
    """Collects one untyped startup-phase packet (StartupMessage, SSLRequest, CancelRequest).

    >>> StartupReader().feed(b"\\x00\\x00\\x00\\x08\\x04\\xd2\\x16\\x2f")
    b'\\x04\\xd2\\x16/'
    """

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> bytes | None:
        """Add bytes; return the packet body once complete (the rest stays buffered)."""
        self._buf += data
        if len(self._buf) < 4:
            return None
        (length,) = _INT32.unpack_from(self._buf)
        if not 8 <= length <= MAX_STARTUP_PACKET:
            raise FrameError(f"invalid startup packet length {length}")
        if len(self._buf) < length:
            return None
        body, self._buf = self._buf[4:length], self._buf[length:]
        return body

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def take_rest(self) -> bytes:
        """Bytes that arrived after the packet (the start of the typed message stream)."""
        rest, self._buf = self._buf, b""
        return rest


def _same_header(buf: bytes, first: int, second: int) -> bool:
    """Do the messages at ``first`` and ``second`` have the same type and length?"""
    return buf[first : first + 5] == buf[second : second + 5]


def _twins_end(buf: bytes, start: int, step: int, size: int) -> int:
    """Where the run of messages with the header of the one at ``start`` (each ``step``
    bytes long) ends within ``buf``. Each of the five header bytes is read for a window of
    messages at once through an extended slice, and its leading run of equal bytes counted,
    in C; the run is the shortest of the five. The window starts small (a short run costs
    little to find) and grows while the run fills it."""
    header = buf[start : start + 5]
    pos, window = start, _TWIN_FIRST_WINDOW
    while count := min((size - pos) // step, window):
        end = pos + count * step
        run = count
        for offset in range(5):
            column = buf[pos + offset : end : step]
            run = min(run, count - len(column.lstrip(header[offset : offset + 1])))
        pos += run * step
        if run < count:
            break
        window = min(window * 4, _TWIN_WINDOW)
    return pos


class FrameScanner:
    """Splits a typed message stream into pass-through byte runs and inspected Frames.

    Messages whose type is in `inspect` are returned whole as Frames (capped at
    `max_inspected` bytes); all other messages are returned as contiguous byte runs, which
    may end mid-message: the remainder is passed through as it arrives.

    >>> FrameScanner(frozenset(b"Z")).feed(b"1\\x00\\x00\\x00\\x04Z\\x00\\x00\\x00\\x05I")
    [b'1\\x00\\x00\\x00\\x04', Frame(type=90, body=b'I', raw=b'Z\\x00\\x00\\x00\\x05I')]
    """

    def __init__(
        self,
        inspect: frozenset[int],
        max_inspected: int = MAX_MESSAGE,
        allowed_types: frozenset[int] | None = None,
    ) -> None:
        self._inspect = inspect
        self._max_inspected = max_inspected
        self._suspect = min(max_inspected, MAX_MESSAGE)  # a length above this needs _check
        self._allowed = allowed_types
        # What to do with each type byte, found with one index per message.
        self._actions = bytes(
            _INSPECT
            if kind in inspect
            else _PASS
            if allowed_types is None or kind in allowed_types
            else _REFUSE
            for kind in range(256)
        )
        self._buf = b""
        self._skip = 0

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of an inspected message or a header."""
        return len(self._buf)

    @property
    def at_boundary(self) -> bool:
        """True when everything passed on so far ends with a whole message."""
        return not self._skip and not self._buf

    def feed(self, data: bytes) -> list[bytes | Frame]:
        """Runs every message of every read: written for the fewest interpreter steps per
        message (one table index to classify it, one range check for its length).

        A result of fixed-width rows is a run of pass-through messages with identical
        headers; once two follow each other, the headers of the next ones are compared in C
        (`_twins_end`) and the whole run is skipped in one step. Where rows vary and a check
        finds only a short run, none is tried for about `_TWIN_COOLDOWN` messages.
        """
        out: list[bytes | Frame] = []
        buf = self._buf + data if self._buf else data
        pos = self._pass_remainder(buf, out) if self._skip else 0
        run_start = pos
        size = len(buf)
        actions, suspect, unpack = self._actions, self._suspect, _INT32.unpack_from
        previous, resume = -1, 0  # the last pass-through length; no run check before resume
        while size - pos >= 5:
            kind = buf[pos]
            length = unpack(buf, pos + 1)[0]
            action = actions[kind]
            if action == _REFUSE or not 4 <= length <= suspect:
                self._check(kind, length)  # the rare case: find out what is wrong
            end = pos + 1 + length
            if action:  # _INSPECT
                if end > size:
                    break
                if run_start < pos:
                    out.append(buf[run_start:pos])
                out.append(Frame(kind, buf[pos + 5 : end], buf[pos:end]))
                run_start = pos = end
            elif end > size:
                self._skip = end - size
                pos = size
            elif length != previous or pos < resume:
                previous = length
                pos = end
            elif size - end >= 5 and _same_header(buf, pos, end):
                step = end - pos
                pos = _twins_end(buf, end, step, size)
                if pos - end < _TWIN_WORTH * step:  # a short run: the rows vary here
                    resume = pos + _TWIN_COOLDOWN * step
            else:
                pos = end
        if run_start < pos:
            out.append(buf[run_start:pos])
        self._buf = buf[pos:]
        return out

    def _pass_remainder(self, buf: bytes, out: list[bytes | Frame]) -> int:
        """Forward the rest of a pass-through message that started in an earlier read."""
        take = min(self._skip, len(buf))
        self._skip -= take
        out.append(buf[:take])
        return take

    def _check(self, kind: int, length: int) -> None:
        if self._allowed is not None and kind not in self._allowed:
            raise FrameError(f"invalid message type {chr(kind)!r}")
        if length < 4:
            raise FrameError(f"invalid message length {length}")
        if kind in self._inspect and length > self._max_inspected:
            raise FrameError(
                f"{chr(kind)!r} message of {length} bytes exceeds max_message_bytes "
                f"({self._max_inspected}); raise that setting if such messages are legitimate"
            )
        if length > MAX_MESSAGE:
            raise FrameError(f"message length {length} exceeds PostgreSQL's 1 GB limit")
