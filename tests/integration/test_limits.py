"""Connection limits, login lock-out and the login timeout, with real clients."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.testing import TEST_ROLES, Database
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream
from sqlguard.wire.errors import decode_fields

pytestmark = pytest.mark.integration


@pytest.fixture
def limited(tmp_path: Path, pg_db: Database) -> Iterator[SidecarProcess]:
    config = tmp_path / "sqlguard.yaml"
    config.write_text(
        "max_connections: 3\nmax_connections_per_user: 2\n"
        "lockout_failures: 3\nlockout_seconds: 60\nlogin_timeout: 1\n"
    )
    extra = ("--config", str(config))
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra) as sidecar:
        yield sidecar


def connect(sidecar: SidecarProcess, db: Database, user: str = "postgres") -> psycopg.Connection:
    password = TEST_ROLES[user][1] if user in TEST_ROLES else None
    return psycopg.connect(sidecar.dsn(user, password, db.dbname))


def test_connection_limits_per_user_and_in_total(limited: SidecarProcess, pg_db: Database) -> None:
    first, second = connect(limited, pg_db), connect(limited, pg_db)
    with pytest.raises(psycopg.OperationalError, match='too many connections for role "postgres"'):
        connect(limited, pg_db)
    third = connect(limited, pg_db, "md5_user")
    with pytest.raises(psycopg.OperationalError, match="too many clients already"):
        connect(limited, pg_db, "password_user")
    first.close()
    with connect(limited, pg_db, "password_user") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    second.close()
    third.close()


def test_repeated_failed_logins_lock_the_user_out(limited: SidecarProcess, pg_db: Database) -> None:
    for _ in range(3):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(limited.dsn("scram_user", "wrong", pg_db.dbname))
    with pytest.raises(psycopg.OperationalError, match="too many failed logins"):
        connect(limited, pg_db, "scram_user")  # even with the right password, for a while
    assert "too many failed logins" in limited.output()


def test_a_client_that_never_logs_in_is_cut_off(limited: SidecarProcess) -> None:
    with socket.create_connection((limited.host, limited.port), timeout=10) as sock:
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert decode_fields(data[5:])["C"] == "57014"
