"""Decoders and encoders for the protocol messages sqlguard reads or writes.

Only what the firewall needs is decoded (statement texts and names); everything else
travels as the original bytes. Layouts follow the PostgreSQL docs, "Message Formats".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PROTOCOL_3_0 = 3 << 16
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

_INT32 = struct.Struct("!I")
_INT32_INT32 = struct.Struct("!II")


class MalformedMessage(ValueError):
    """A message whose body does not match its type's layout (answer with 08P01)."""


def cstring(data: bytes, pos: int) -> tuple[bytes, int]:
    """Read a NUL-terminated string at `pos`; return it and the position after the NUL.

    >>> cstring(b"ab\\0c\\0", 0)
    (b'ab', 3)
    """
    end = data.find(b"\0", pos)
    if end < 0:
        raise MalformedMessage("string field is not NUL-terminated")
    return data[pos:end], end + 1


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """StartupMessage: protocol version and the key/value parameters in arrival order."""

    major: int
    minor: int
    params: dict[str, str]

    def encode(self) -> bytes:
        body = _INT32.pack((self.major << 16) | self.minor)
        for key, value in self.params.items():
            body += key.encode() + b"\0" + value.encode() + b"\0"
        body += b"\0"
        return _INT32.pack(len(body) + 4) + body


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """CancelRequest: backend pid and secret key (4 bytes in 3.0, up to 256 in 3.2)."""

    pid: int
    key: bytes

    def encode(self) -> bytes:
        body = _INT32_INT32.pack(CANCEL_REQUEST_CODE, self.pid) + self.key
        return _INT32.pack(len(body) + 4) + body


@dataclass(frozen=True, slots=True)
class EncryptionRequest:
    """SSLRequest or GSSENCRequest: answered with a single unframed byte."""

    code: int


def decode_startup_packet(body: bytes) -> StartupMessage | CancelRequest | EncryptionRequest:
    """Decode the first, untyped packet of a connection (body = bytes after the length)."""
    if len(body) < 4:
        raise MalformedMessage("startup packet too short")
    (code,) = _INT32.unpack_from(body)
    if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE):
        return EncryptionRequest(code)
    if code == CANCEL_REQUEST_CODE:
        if not 4 + 4 + 4 <= len(body) <= 4 + 4 + 256:
            raise MalformedMessage("cancel request key has an invalid length")
        (pid,) = _INT32.unpack_from(body, 4)
        return CancelRequest(pid, bytes(body[8:]))
    return StartupMessage(code >> 16, code & 0xFFFF, _startup_params(body))


def _startup_params(body: bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 4
    while pos < len(body) and body[pos] != 0:
        key, pos = cstring(body, pos)
        value, pos = cstring(body, pos)
        try:
            params[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage("startup parameter is not valid UTF-8") from exc
    if pos != len(body) - 1:
        raise MalformedMessage("startup packet parameters are not terminated")
    return params


def decode_query(body: bytes) -> bytes:
    """Query ('Q'): the whole text before the terminating NUL, including any earlier NUL.

    PostgreSQL reads the text only up to the first NUL and then rejects a message with bytes
    left over; judging all of it lets the firewall refuse such a message itself.

    >>> decode_query(b"select 1\\0 or true\\0")
    b'select 1\\x00 or true'
    """
    if not body.endswith(b"\0"):
        raise MalformedMessage("Query text is not NUL-terminated")
    return body[:-1]


def decode_parse(body: bytes) -> tuple[bytes, bytes]:
    """Parse ('P'): (statement name, query text); parameter types are left undecoded."""
    name, pos = cstring(body, 0)
    text, _ = cstring(body, pos)
    return name, text


def decode_bind_names(body: bytes) -> tuple[bytes, bytes]:
    """Bind ('B'): (portal name, statement name); parameters are left undecoded."""
    portal, pos = cstring(body, 0)
    statement, _ = cstring(body, pos)
    return portal, statement


def decode_target(body: bytes) -> tuple[int, bytes]:
    """Describe ('D') / Close ('C'): (b'S' or b'P' as an int, name)."""
    if not body:
        raise MalformedMessage("Describe/Close without a target")
    name, _ = cstring(body, 1)
    return body[0], name


def decode_backend_key(body: bytes) -> tuple[int, bytes]:
    """BackendKeyData ('K'): (pid, secret key bytes)."""
    if len(body) < 8:
        raise MalformedMessage("BackendKeyData too short")
    (pid,) = _INT32.unpack_from(body)
    return pid, bytes(body[4:])


def message(kind: bytes, body: bytes = b"") -> bytes:
    """Frame a typed message: type byte, int32 length (including itself), body."""
    return kind + _INT32.pack(len(body) + 4) + body


def query(text: bytes) -> bytes:
    return message(b"Q", text + b"\0")


def parse(name: bytes, text: bytes) -> bytes:
    return message(b"P", name + b"\0" + text + b"\0" + b"\0\0")


def backend_key_data(pid: int, key: bytes) -> bytes:
    return message(b"K", _INT32.pack(pid) + key)


def ready_for_query(status: bytes) -> bytes:
    return message(b"Z", status)


def negotiate_protocol_version(minor: int, unsupported: list[str]) -> bytes:
    """NegotiateProtocolVersion ('v'): newest version we support and the options we ignore.

    The docs call the first field the "newest minor protocol version", but servers send and
    libpq expects the whole version number (3 << 16 | minor); so do we.
    """
    body = _INT32_INT32.pack(PROTOCOL_3_0 | minor, len(unsupported))
    body += b"".join(name.encode() + b"\0" for name in unsupported)
    return message(b"v", body)


def decode_negotiate(body: bytes) -> tuple[int, list[str]]:
    """NegotiateProtocolVersion ('v'): (the server's newest minor version, ignored options)."""
    if len(body) < 8:
        raise MalformedMessage("NegotiateProtocolVersion too short")
    (version, count) = _INT32_INT32.unpack_from(body)
    minor = version & 0xFFFF
    names, pos = [], 8
    for _ in range(count):
        name, pos = cstring(body, pos)
        names.append(name.decode("utf-8", "replace"))
    return minor, names


def rows_in_tag(tag: str) -> int | None:
    """The row count a CommandComplete tag ends with (`SELECT 5`, `INSERT 0 5`), if any.

    >>> rows_in_tag("INSERT 0 5"), rows_in_tag("BEGIN")
    (5, None)
    """
    last = tag.rpartition(" ")[2]
    return int(last) if last.isdigit() else None


TERMINATE = message(b"X")
