"""Bad input of any kind gets a clear error or a closed socket; other clients keep working."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator

import psycopg
import pytest

from sqlguard.testing import Database
from sqlguard.testing.sidecar import SidecarProcess, free_port
from sqlguard.wire import messages as m
from sqlguard.wire.errors import decode_fields

pytestmark = pytest.mark.integration


@pytest.fixture
def bystander(proxied_dsn: str) -> Iterator[psycopg.Connection]:
    """A well-behaved client connected during the abuse; it must keep working."""
    with psycopg.connect(proxied_dsn, autocommit=True) as conn:
        yield conn
        assert conn.execute("SELECT 42").fetchone() == (42,)


def raw_connection(sidecar: SidecarProcess) -> socket.socket:
    sock = socket.create_connection((sidecar.host, sidecar.port), timeout=10)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def startup_and_login(sock: socket.socket, dbname: str) -> bytes:
    sock.sendall(m.StartupMessage(3, 0, {"user": "postgres", "database": dbname}).encode())
    data = b""
    while not data.endswith(m.ready_for_query(b"I")):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def error_fields(data: bytes) -> dict[str, str]:
    start = data.index(b"E")
    (length,) = struct.unpack_from("!I", data, start + 1)
    return decode_fields(data[start + 5 : start + 1 + length])


@pytest.mark.parametrize(
    "garbage",
    [
        os.urandom(4096),
        b"\x00\x00\x00\x03",
        b"\x7f\xff\xff\xff" + b"x" * 100,
        struct.pack("!II", 16, 1234) + b"\x00" * 8,
    ],
    ids=["random", "short-length", "2gb-startup", "bad-version"],
)
def test_garbage_before_startup(
    sidecar: SidecarProcess, bystander: psycopg.Connection, garbage: bytes
) -> None:
    with raw_connection(sidecar) as sock:
        sock.sendall(garbage)
        reply = read_until_closed(sock)
    assert reply == b"" or error_fields(reply)["S"] == "FATAL"


def test_two_gigabyte_message_after_login(
    sidecar: SidecarProcess, pg_db: Database, bystander: psycopg.Connection
) -> None:
    with raw_connection(sidecar) as sock:
        startup_and_login(sock, pg_db.dbname)
        sock.sendall(b"Q" + struct.pack("!I", 0x7FFFFFF0) + b"select 1")
        fields = error_fields(read_until_closed(sock))
    assert fields["C"] == "08P01"
    assert "max_message_bytes" in fields["M"]


def test_unknown_message_type_after_login(
    sidecar: SidecarProcess, pg_db: Database, bystander: psycopg.Connection
) -> None:
    with raw_connection(sidecar) as sock:
        startup_and_login(sock, pg_db.dbname)
        sock.sendall(b"\x01\x00\x00\x00\x04")
        assert error_fields(read_until_closed(sock))["C"] == "08P01"


def test_truncated_message_then_disconnect(
    sidecar: SidecarProcess, pg_db: Database, bystander: psycopg.Connection
) -> None:
    for cut in (1, 3, 9):
        with raw_connection(sidecar) as sock:
            startup_and_login(sock, pg_db.dbname)
            sock.sendall(m.query(b"select pg_sleep(0)")[:cut])


def test_disconnect_mid_startup_and_mid_result(
    sidecar: SidecarProcess, pg_db: Database, bystander: psycopg.Connection
) -> None:
    with raw_connection(sidecar) as sock:
        sock.sendall(m.StartupMessage(3, 0, {"user": "postgres"}).encode()[:7])
    with raw_connection(sidecar) as sock:
        startup_and_login(sock, pg_db.dbname)
        sock.sendall(m.query(b"select g from generate_series(1, 1000000) g"))
        sock.recv(1024)


def test_upstream_down_gives_clear_error(pg_db: Database) -> None:
    closed_port = free_port()
    with SidecarProcess(f"postgresql://127.0.0.1:{closed_port}/x") as down:
        with pytest.raises(psycopg.OperationalError) as caught:
            psycopg.connect(down.dsn(dbname="x"), connect_timeout=10)
        assert "could not connect to the upstream PostgreSQL server" in str(caught.value)
        assert down.running


def test_upstream_dies_mid_result(
    sidecar: SidecarProcess, pg_db: Database, bystander: psycopg.Connection, proxied_dsn: str
) -> None:
    victim = psycopg.connect(proxied_dsn, autocommit=True)
    pid = victim.info.backend_pid
    with psycopg.connect(pg_db.dsn(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    victim.close()


def test_slow_reader_of_a_huge_result_keeps_sidecar_memory_bounded(
    sidecar: SidecarProcess, pg_db: Database, bystander: psycopg.Connection
) -> None:
    pid = sidecar.pid
    before = rss_kib(pid)
    with raw_connection(sidecar) as sock:
        startup_and_login(sock, pg_db.dbname)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(m.query(b"select repeat('x', 100000) from generate_series(1, 3000)"))  # 300 MB
        time.sleep(2)  # the client reads nothing: the sidecar must stop reading the upstream
        grown = rss_kib(pid) - before
    assert grown < 64 * 1024, f"sidecar grew by {grown} KiB while a client did not read"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
