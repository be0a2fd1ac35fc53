"""The audit trail of a real session through the sidecar: every action recorded, the chain
verifies, and a full disk refuses statements (fail closed) until it has room again."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.testing import Database
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream

pytestmark = pytest.mark.integration


def audited_sidecar(
    tmp_path: Path, db: Database, log_dir: Path, env: dict[str, str] | None = None
) -> SidecarProcess:
    key = tmp_path / "audit.key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    config = tmp_path / "sqlguard.yaml"
    config.write_text(
        f"audit:\n  path: {log_dir / 'audit.log'}\n  key_file: {key}\n  queue_size: 64\n"
    )
    upstream = passthrough_upstream(db)
    return SidecarProcess(upstream, DEFAULT_RULES_DIR, "--config", str(config), env=env)


def records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def verify(tmp_path: Path, log: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sqlguard", "audit", "verify", str(log)]
    command += ["--key-file", str(tmp_path / "audit.key")]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_every_action_of_a_session_is_recorded(tmp_path: Path, pg_db: Database) -> None:
    log = tmp_path / "audit.log"
    with audited_sidecar(tmp_path, pg_db, tmp_path) as sidecar:
        with psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn:
            conn.execute("SELECT 'top secret'::text")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM nowhere")
        time.sleep(0.5)  # the writer is asynchronous
    written = records(log)
    types = [record["type"] for record in written]
    for expected in ("connection_open", "login", "statement", "connection_close"):
        assert expected in types, types
    statements = [r for r in written if r["type"] == "statement"]
    refused = [r for r in statements if r["decision"] == "deny"]
    assert refused and refused[0]["rule_id"] == "delete-without-where"
    assert all("top secret" not in json.dumps(r) for r in written)  # literals never logged
    assert verify(tmp_path, log).returncode == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)])
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_full_disk_refuses_statements_then_recovers(
    tmp_path: Path, pg_db: Database, tiny_disk: Path
) -> None:
    log = tiny_disk / "audit.log"
    filler = tiny_disk / "filler"
    with (
        audited_sidecar(tmp_path, pg_db, tiny_disk) as sidecar,
        psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn,
    ):
        conn.execute("SELECT 1")
        _fill(filler)
        refused = _until_refused(conn)
        assert refused.diag.sqlstate == "53000"
        assert "audit log" in (refused.diag.message_primary or "")
        filler.unlink()
        _until_accepted(conn)
    assert verify(tmp_path, log).returncode == 0
    assert sum(r["type"] == "statement" for r in records(log)) >= 3


def test_a_killed_audit_writer_is_replaced_and_the_trail_stays_whole(
    tmp_path: Path, pg_db: Database
) -> None:
    """The writer process dies: statements are refused (53000) or run, never run unrecorded;
    a new writer continues the chain, and every statement that ran is in it."""
    log = tmp_path / "audit.log"
    ran = 0
    with (
        audited_sidecar(tmp_path, pg_db, tmp_path) as sidecar,
        psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn,
    ):
        conn.execute("SELECT 1")
        writer = _helper(sidecar.pid, "audit_process")
        os.kill(writer, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _helper(sidecar.pid, "audit_process") in (None, writer) or ran < 20:
            assert time.monotonic() < deadline, sidecar.output()[-2000:]
            try:
                conn.execute("SELECT 2")
                ran += 1
            except psycopg.errors.InsufficientResources:
                time.sleep(0.02)
        assert "the audit writer process ended" in sidecar.output()
    assert verify(tmp_path, log).returncode == 0
    allowed = [r for r in records(log) if r["type"] == "statement" and r["decision"] == "allow"]
    assert len(allowed) >= ran + 1


def test_helpers_finish_and_exit_when_the_sidecar_is_killed(
    tmp_path: Path, pg_db: Database
) -> None:
    """SIGKILL leaves the helpers their input: the audit writer writes what it received,
    the span exporter exports it, and both exit (no orphans)."""
    log = tmp_path / "audit.log"
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "50"}
    with audited_sidecar(tmp_path, pg_db, tmp_path, env) as sidecar:
        with psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn:
            for _ in range(20):
                conn.execute("SELECT 1")
            deadline = time.monotonic() + 10
            while _helper(sidecar.pid, "span_export") is None:
                assert time.monotonic() < deadline, "no span exporter process"
                time.sleep(0.05)
            helpers = [_helper(sidecar.pid, name) for name in ("audit_process", "span_export")]
            time.sleep(0.5)  # handed over to the helpers
            os.kill(sidecar.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in helpers):
            assert time.monotonic() < deadline, "a helper outlived the killed sidecar"
            time.sleep(0.05)
        output = sidecar.output()
    assert verify(tmp_path, log).returncode == 0
    assert sum(r["type"] == "statement" for r in records(log)) >= 20
    assert '"name": "SELECT"' in output  # spans the exporter printed


def _alive(pid: int | None) -> bool:
    """Still running (a zombie waiting for its new parent to reap it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _helper(sidecar: int, module: str) -> int | None:
    """The pid of the sidecar's helper process running ``module``, if one runs."""
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == sidecar and module.encode() in command:
            return int(proc.name)
    return None


def _fill(path: Path) -> None:
    """Write until the file system is full (closing the file fails too then)."""
    with contextlib.suppress(OSError), path.open("wb", buffering=0) as out:
        while True:
            out.write(b"x" * 4096)


def _until_refused(conn: psycopg.Connection) -> psycopg.Error:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn.execute("SELECT 2")
        except psycopg.errors.InsufficientResources as exc:
            return exc
        time.sleep(0.02)
    raise AssertionError("statements were never refused while the audit disk was full")


def _until_accepted(conn: psycopg.Connection) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn.execute("SELECT 3")
            return
        except psycopg.errors.InsufficientResources:
            time.sleep(0.1)
    raise AssertionError("statements were still refused after the audit disk had room")
