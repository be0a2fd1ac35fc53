"""Golden bytes and round trips for the messages sqlguard reads and writes."""

from __future__ import annotations

from sqlguard.wire import messages as m
from sqlguard.wire.errors import PgError, decode_fields


def test_query_golden_bytes() -> None:
    assert m.query(b"select 1") == b"Q\x00\x00\x00\x0dselect 1\x00"


def test_parse_round_trip() -> None:
    raw = m.parse(b"s1", b"select $1")
    assert raw[:1] == b"P"
    assert m.decode_parse(raw[5:]) == (b"s1", b"select $1")


def test_bind_names() -> None:
    body = b"portal\0stmt\0\x00\x00\x00\x00\x00\x00"
    assert m.decode_bind_names(body) == (b"portal", b"stmt")


def test_startup_round_trip_keeps_parameter_order() -> None:
    startup = m.StartupMessage(3, 2, {"user": "ann", "database": "db", "_pq_.x": "1"})
    assert m.decode_startup_packet(startup.encode()[4:]) == startup


def test_cancel_request_long_key_round_trip() -> None:
    cancel = m.CancelRequest(4242, bytes(range(32)))
    assert m.decode_startup_packet(cancel.encode()[4:]) == cancel


def test_ssl_request() -> None:
    body = b"\x04\xd2\x16\x2f"
    assert m.decode_startup_packet(body) == m.EncryptionRequest(m.SSL_REQUEST_CODE)


def test_error_response_fields_round_trip() -> None:
    error = PgError("ERROR", "42501", "refused", "why", "what next")
    raw = error.encode()
    assert decode_fields(raw[5:]) == {
        "S": "ERROR",
        "V": "ERROR",
        "C": "42501",
        "M": "refused",
        "D": "why",
        "H": "what next",
    }


def test_negotiate_protocol_version_round_trip() -> None:
    raw = m.negotiate_protocol_version(0, ["_pq_.a", "_pq_.b"])
    assert m.decode_negotiate(raw[5:]) == (0, ["_pq_.a", "_pq_.b"])


def test_negotiate_protocol_version_carries_the_whole_version_like_postgresql() -> None:
    # PostgreSQL 15 answers a 3.2 StartupMessage with exactly these bytes (seen on loopback).
    expected = b"v\x00\x00\x00\x0c" + b"\x00\x03\x00\x00" + b"\x00\x00\x00\x00"
    assert m.negotiate_protocol_version(0, []) == expected
