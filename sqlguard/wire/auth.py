"""Authentication messages: the 'R' requests a server sends and the 'p' answers a client gives.

The 'p' type byte carries three different layouts (PasswordMessage, SASLInitialResponse,
SASLResponse); which one it is follows from the request being answered, so each has its
own decoder and the caller picks. Layouts follow the PostgreSQL docs, "Message Formats".

>>> decode_request(sasl_continue(b"r=abc")[5:])
(11, b'r=abc')
>>> decode_sasl_initial(sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=x")[5:])
('SCRAM-SHA-256', b'n,,n=,r=x')
"""

from __future__ import annotations

import hashlib
import struct

from sqlguard.wire.messages import MalformedMessage, cstring, message

OK = 0
CLEARTEXT_PASSWORD = 3
MD5_PASSWORD = 5
SASL = 10
SASL_CONTINUE = 11
SASL_FINAL = 12

_INT32 = struct.Struct("!i")


def decode_request(body: bytes) -> tuple[int, bytes]:
    """An Authentication ('R') message: (request code, the data after it)."""
    if len(body) < 4:
        raise MalformedMessage("Authentication message too short")
    return _INT32.unpack_from(body)[0], body[4:]


def sasl_mechanisms(data: bytes) -> list[str]:
    """The mechanism names of an AuthenticationSASL request (a list ended by an empty name)."""
    names: list[str] = []
    pos = 0
    while True:
        name, pos = cstring(data, pos)
        if not name:
            return names
        names.append(name.decode("ascii", "replace"))


def authentication_ok() -> bytes:
    return message(b"R", _INT32.pack(OK))


def authentication_sasl(mechanisms: list[str]) -> bytes:
    names = b"".join(name.encode() + b"\0" for name in mechanisms)
    return message(b"R", _INT32.pack(SASL) + names + b"\0")


def sasl_continue(data: bytes) -> bytes:
    return message(b"R", _INT32.pack(SASL_CONTINUE) + data)


def sasl_final(data: bytes) -> bytes:
    return message(b"R", _INT32.pack(SASL_FINAL) + data)


def cleartext_password_request() -> bytes:
    return message(b"R", _INT32.pack(CLEARTEXT_PASSWORD))


def password_message(password: str) -> bytes:
    return message(b"p", password.encode() + b"\0")


def md5_password_message(user: str, password: str, salt: bytes) -> bytes:
    """The answer to an MD5 request: ``md5`` + md5(md5(password + user) + salt), in hex."""
    inner = hashlib.md5((password + user).encode()).hexdigest()
    outer = hashlib.md5(inner.encode() + salt).hexdigest()
    return password_message("md5" + outer)


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    return message(b"p", mechanism.encode() + b"\0" + _INT32.pack(len(data)) + data)


def sasl_response(data: bytes) -> bytes:
    return message(b"p", data)


def decode_password(body: bytes) -> str:
    """PasswordMessage: the password (UTF-8, NUL-terminated)."""
    password, end = cstring(body, 0)
    if end != len(body):
        raise MalformedMessage("PasswordMessage has bytes after the password")
    try:
        return password.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("the password is not valid UTF-8") from None


def decode_sasl_initial(body: bytes) -> tuple[str, bytes]:
    """SASLInitialResponse: (mechanism, initial client data; empty if the length is -1)."""
    name, pos = cstring(body, 0)
    if len(body) < pos + 4:
        raise MalformedMessage("SASLInitialResponse too short")
    (length,) = _INT32.unpack_from(body, pos)
    data = body[pos + 4 :]
    if length == -1 and not data:
        return name.decode("ascii", "replace"), b""
    if length != len(data):
        raise MalformedMessage("SASLInitialResponse length does not match its data")
    return name.decode("ascii", "replace"), data
