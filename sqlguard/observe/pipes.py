"""Length-prefixed marshal frames over a pipe, between the sidecar and its helper processes.

marshal is the fastest serialisation CPython has for plain values (dicts, lists, str, bytes,
int, float, bool, None) and runs in C; both ends are the same interpreter, started by the
sidecar, so its version-specific format is no concern, and nothing else writes to the pipe.

>>> import io
>>> stream = io.BytesIO()
>>> write_frame(stream, {"a": [1, b"x"]})
>>> _ = stream.seek(0)
>>> read_frame(stream), read_frame(stream)
({'a': [1, b'x']}, None)
"""

from __future__ import annotations

import marshal
from collections.abc import Iterator
from typing import IO, Any

_LENGTH = 4


def write_frame(stream: IO[bytes], value: Any) -> None:
    """One frame, flushed (raises OSError when the other end has gone, ValueError for a
    value marshal cannot carry)."""
    write_marshalled(stream, marshal.dumps(value))


def write_marshalled(stream: IO[bytes], data: bytes) -> None:
    """One frame of an already marshalled value, flushed."""
    stream.write(len(data).to_bytes(_LENGTH, "big") + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's value, or None at the end of the stream (or a cut-off frame)."""
    header = stream.read(_LENGTH)
    if len(header) < _LENGTH:
        return None
    size = int.from_bytes(header, "big")
    data = stream.read(size)
    if len(data) < size:
        return None
    return marshal.loads(data)


def read_frames(stream: IO[bytes]) -> Iterator[Any]:
    """Frames until the other end closes the pipe."""
    while (value := read_frame(stream)) is not None:
        yield value
