"""Alerts from a running sidecar reach a local webhook; a dead webhook holds nothing up."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import psycopg
import pytest

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.testing import Database
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream

pytestmark = pytest.mark.integration


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def alerting_sidecar(tmp_path: Path, db: Database, url: str) -> SidecarProcess:
    config = tmp_path / "sqlguard.yaml"
    config.write_text(f"alerts:\n  url: {url}\n  rate_per_rule: 2\n  failed_login_burst: 3\n")
    return SidecarProcess(passthrough_upstream(db), DEFAULT_RULES_DIR, "--config", str(config))


def wait_for(condition: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, Hook.received
        time.sleep(0.05)


def test_refusals_and_failed_login_bursts_are_alerted(
    tmp_path: Path, pg_db: Database, webhook: str
) -> None:
    with alerting_sidecar(tmp_path, pg_db, webhook) as sidecar:
        with psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn:
            for _ in range(5):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("DELETE FROM anything")
        for _ in range(3):
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(sidecar.dsn("md5_user", "wrong", pg_db.dbname))
        wait_for(lambda: any(a["event"] == "failed_login_burst" for a in Hook.received))
    refused = [a for a in Hook.received if a["event"] == "refused"]
    assert len(refused) == 2  # rate-limited per rule
    assert refused[0]["rule"] == "delete-without-where" and refused[0]["user"] == "postgres"
    assert sum(a["event"] == "failed_login_burst" for a in Hook.received) == 1


def test_a_dead_webhook_does_not_hold_statements(tmp_path: Path, pg_db: Database) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(100)  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    try:
        with (
            alerting_sidecar(tmp_path, pg_db, url) as sidecar,
            psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn,
        ):
            for _ in range(50):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("DROP TABLE anything")
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        silent.close()
