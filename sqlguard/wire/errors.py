"""ErrorResponse/NoticeResponse fields and the SQLSTATEs sqlguard answers with.

Protocol docs, "Error and Notice Message Fields": each field is a one-byte code and a
NUL-terminated string; the list ends with a NUL. S, C and M are always present; V (the
never-localised severity) is read by asyncpg and psycopg, so we always send it too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

INSUFFICIENT_PRIVILEGE = "42501"
FEATURE_NOT_SUPPORTED = "0A000"
PROTOCOL_VIOLATION = "08P01"
CONNECTION_FAILURE = "08006"
PROGRAM_LIMIT_EXCEEDED = "54000"
INVALID_AUTHORIZATION = "28000"
CANNOT_CONNECT_NOW = "57P03"
ADMIN_SHUTDOWN = "57P01"


@dataclass(frozen=True, slots=True)
class PgError:
    """An error as PostgreSQL would report it; `encode()` gives the 'E' message bytes.

    >>> PgError("ERROR", "42501", "no").encode()[:1]
    b'E'
    """

    severity: str
    sqlstate: str
    message: str
    detail: str = ""
    hint: str = ""

    def fields(self) -> dict[str, str]:
        fields = {"S": self.severity, "V": self.severity, "C": self.sqlstate, "M": self.message}
        if self.detail:
            fields["D"] = self.detail
        if self.hint:
            fields["H"] = self.hint
        return fields

    def encode(self) -> bytes:
        return encode_fields(b"E", self.fields())


def encode_fields(kind: bytes, fields: dict[str, str]) -> bytes:
    """Encode an ErrorResponse ('E') or NoticeResponse ('N') from its field map."""
    body = (
        b"".join(
            code.encode("ascii") + _no_nul(value).encode("utf-8") + b"\0"
            for code, value in fields.items()
        )
        + b"\0"
    )
    return kind + struct.pack("!I", len(body) + 4) + body


def decode_fields(body: bytes | memoryview) -> dict[str, str]:
    """Decode the field list of an ErrorResponse/NoticeResponse body (without type and length)."""
    fields: dict[str, str] = {}
    data = bytes(body)
    pos = 0
    while pos < len(data) and data[pos] != 0:
        end = data.find(b"\0", pos + 1)
        if end < 0:
            break
        fields[chr(data[pos])] = data[pos + 1 : end].decode("utf-8", "replace")
        pos = end + 1
    return fields


def fatal(sqlstate: str, message: str, detail: str = "", hint: str = "") -> bytes:
    """A FATAL ErrorResponse: the connection ends after it."""
    return PgError("FATAL", sqlstate, message, detail, hint).encode()


def _no_nul(value: str) -> str:
    # A NUL inside a field would end it early and desynchronise the client's parser.
    return value.replace("\0", "\\0")
