"""A minimal blocking PostgreSQL client that sends exact bytes: for tests that need a
message no driver would send (NUL bytes, invalid UTF-8, several statements in a Parse)."""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import dataclass, field

from sqlguard.wire import messages as m
from sqlguard.wire.errors import decode_fields


@dataclass
class Reply:
    """What the server answered up to ReadyForQuery."""

    types: list[bytes] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    status: bytes = b""


class RawClient:
    """Trust-authenticated connection speaking protocol 3.0."""

    def __init__(self, host: str, port: int, user: str, dbname: str, timeout: float = 30) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._buf = b""
        self._sock.sendall(m.StartupMessage(3, 0, {"user": user, "database": dbname}).encode())
        reply = self.read_until_ready()
        if reply.errors:
            raise ConnectionError(reply.errors[0].get("M", "login failed"))

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(m.TERMINATE)
        self._sock.close()

    def simple(self, text: bytes) -> Reply:
        self._sock.sendall(m.query(text))
        return self.read_until_ready()

    def extended(self, text: bytes) -> Reply:
        unnamed_bind = m.message(b"B", b"\0\0" + b"\0\0" * 3)
        self._sock.sendall(
            m.parse(b"", text) + unnamed_bind + m.message(b"E", b"\0\0\0\0\0") + m.message(b"S")
        )
        return self.read_until_ready()

    def read_until_ready(self) -> Reply:
        reply = Reply()
        while True:
            kind, body = self._message()
            reply.types.append(kind)
            if kind == b"E":
                reply.errors.append(decode_fields(body))
            elif kind == b"Z":
                reply.status = body
                return reply

    def _message(self) -> tuple[bytes, bytes]:
        while True:
            if len(self._buf) >= 5:
                (length,) = struct.unpack_from("!I", self._buf, 1)
                if len(self._buf) >= 1 + length:
                    kind, body = self._buf[:1], self._buf[5 : 1 + length]
                    self._buf = self._buf[1 + length :]
                    return kind, body
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self._buf += chunk
