"""Protocol 3.0 and 3.2 clients, version negotiation and cancel keys of both lengths."""

from __future__ import annotations

import socket
import struct
import threading
import time

import psycopg
import pytest

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.testing import Database, PostgresCluster
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream
from sqlguard.wire import messages as m

pytestmark = pytest.mark.integration


def handshake(sidecar: SidecarProcess, packet: m.StartupMessage) -> list[tuple[bytes, bytes]]:
    """Send a StartupMessage; return the (type, body) messages up to ReadyForQuery."""
    with socket.create_connection((sidecar.host, sidecar.port), timeout=10) as sock:
        sock.sendall(packet.encode())
        data = b""
        while not data.endswith(m.ready_for_query(b"I")):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        sock.sendall(m.TERMINATE)
    found, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("!I", data, pos + 1)
        found.append((data[pos : pos + 1], data[pos + 5 : pos + 1 + length]))
        pos += 1 + length
    return found


def test_greasing_client_is_negotiated_down(sidecar: SidecarProcess, pg_db: Database) -> None:
    """libpq 19 "greases" with version 3.9999 and a _pq_ option: it must still connect."""
    packet = m.StartupMessage(
        3, 9999, {"user": "postgres", "database": pg_db.dbname, "_pq_.test_grease": "1"}
    )
    found = handshake(sidecar, packet)
    assert found[0][0] == b"v"
    minor, options = m.decode_negotiate(found[0][1])
    assert minor == (2 if pg_db.cluster.version >= 18 else 0)
    assert options == ["_pq_.test_grease"]
    assert [kind for kind, _ in found].count(b"v") == 1
    key = next(body for kind, body in found if kind == b"K")
    assert len(key) - 4 == (32 if minor == 2 else 4)


def test_protocol_3_0_client_gets_no_negotiation(sidecar: SidecarProcess, pg_db: Database) -> None:
    packet = m.StartupMessage(3, 0, {"user": "postgres", "database": pg_db.dbname})
    found = handshake(sidecar, packet)
    assert b"v" not in [kind for kind, _ in found]
    key = next(body for kind, body in found if kind == b"K")
    assert len(key) == 8


@pytest.mark.parametrize("version", ["3.0", "3.2"])
def test_libpq_protocol_versions_and_cancel(proxied_dsn: str, version: str) -> None:
    """psycopg's libpq 18 asks for 3.2 when told to; the sidecar settles with the server."""
    conninfo = f"{proxied_dsn}?max_protocol_version={version}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        timer = threading.Timer(0.5, conn.cancel_safe)
        started = time.monotonic()
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 10
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_backend_pid_is_the_real_one(proxied_dsn: str, pg_db: Database) -> None:
    """pg_terminate_backend of the pid a client saw must hit that client's backend."""
    with psycopg.connect(proxied_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row == (conn.info.backend_pid,)


def test_postgres18_protocol_3_2_with_long_cancel_keys(pg18_cluster: PostgresCluster) -> None:
    """Against PostgreSQL 18 a 3.2 client gets 32-byte keys; cancel still reaches its backend."""
    db = pg18_cluster.create_database("proto32")
    with SidecarProcess(passthrough_upstream(db), DEFAULT_RULES_DIR) as sidecar:
        packet = m.StartupMessage(3, 2, {"user": "postgres", "database": db.dbname})
        found = handshake(sidecar, packet)
        assert b"v" not in [kind for kind, _ in found]
        key = next(body for kind, body in found if kind == b"K")
        assert len(key) == 4 + 32
        conninfo = f"{sidecar.dsn(dbname=db.dbname)}?max_protocol_version=3.2"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            timer = threading.Timer(0.5, conn.cancel_safe)
            timer.start()
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(30)")
            assert conn.execute("SHOW server_version_num").fetchone()[0] >= "180000"
