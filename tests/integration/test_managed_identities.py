"""Managed identities: people log in to the sidecar as themselves, the database sees roles.

Each person has a SCRAM verifier in the identities store and is mapped to one of the test
cluster's roles (scram_user, md5_user, password_user: one per upstream auth method), whose
passwords only the sidecar holds. Real clients (psql, psycopg, asyncpg) log in through it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psycopg
import pytest

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.identities.records import Person, TemporaryGroup
from sqlguard.identities.scram import make_verifier
from sqlguard.identities.store import load_people, save_people
from sqlguard.testing import TEST_ROLES, Database
from sqlguard.testing.certs import issue, make_ca
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream

pytestmark = pytest.mark.integration

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
ROLES = {"alice": "scram_user", "bob": "md5_user", "carol": "password_user"}


def person(name: str, **changes: object) -> Person:
    fields: dict[str, object] = {
        "name": name,
        "groups": ("staff",),
        "verifier": make_verifier(PASSWORDS.get(name, "pw")),
        "upstream_role": ROLES.get(name, "scram_user"),
        "databases": ("*",),
        "expires_at": datetime.now(UTC) + timedelta(days=1),
        "task": "OPS-1",
        "granted_by": "dana",
    }
    fields.update(changes)
    return Person(**fields)  # type: ignore[arg-type]


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    """A config directory: identities store, role secrets, audit log, config file."""
    save_people(tmp_path / "identities.yaml", {name: person(name) for name in PASSWORDS})
    for role in ("scram_user", "md5_user", "password_user"):
        (tmp_path / f"{role}.secret").write_text(TEST_ROLES[role][1] + "\n")
    (tmp_path / "audit.key").write_bytes(os.urandom(32))
    roles = "".join(
        f"    {role}: {{password_file: {role}.secret}}\n"
        for role in ("scram_user", "md5_user", "password_user")
    )
    (tmp_path / "sqlguard.yaml").write_text(
        "rules_poll_interval: 0.2\n"
        "identities:\n  store: identities.yaml\n  upstream_roles:\n" + roles
        + "audit:\n  path: audit.jsonl\n  key_file: audit.key\n"
    )  # fmt: skip
    return tmp_path


@pytest.fixture
def managed(setup: Path, pg_db: Database) -> Iterator[SidecarProcess]:
    extra = ("--config", str(setup / "sqlguard.yaml"))
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra) as sidecar:
        yield sidecar


def connect(sidecar: SidecarProcess, db: Database, name: str, password: str | None = None):
    return psycopg.connect(sidecar.dsn(name, password or PASSWORDS[name], db.dbname))


@pytest.mark.parametrize("name", ["alice", "bob", "carol"])
def test_each_upstream_auth_method_with_psycopg(
    managed: SidecarProcess, pg_db: Database, name: str
) -> None:
    with connect(managed, pg_db, name) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ROLES[name],)


def test_psql_and_asyncpg_log_in_as_the_person(managed: SidecarProcess, pg_db: Database) -> None:
    out = subprocess.run(
        ["psql", managed.dsn("alice", PASSWORDS["alice"], pg_db.dbname), "-AtXc",
         "SELECT current_user"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "scram_user"

    async def asyncpg_login() -> str:
        conn = await asyncpg.connect(managed.dsn("bob", PASSWORDS["bob"], pg_db.dbname))
        try:
            return str(await conn.fetchval("SELECT current_user"))
        finally:
            await conn.close()

    assert asyncio.run(asyncpg_login()) == "md5_user"


def test_wrong_password_and_unknown_name_look_the_same(
    managed: SidecarProcess, pg_db: Database
) -> None:
    for name, password in (("alice", "wrong"), ("mallory", "whatever")):
        with pytest.raises(psycopg.OperationalError) as failure:
            connect(managed, pg_db, name, password)
        assert f'password authentication failed for user "{name}"' in str(failure.value)
    out = subprocess.run(
        ["psql", managed.dsn("alice", "wrong", pg_db.dbname), "-AtXc", "SELECT 1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 2 and "password authentication failed" in out.stderr


def test_over_tls_scram_channel_binding_ties_the_login_to_the_sidecars_certificate(
    setup: Path, pg_db: Database
) -> None:
    """libpq computes the certificate hash itself: channel_binding=require passing is the
    check that sqlguard's SCRAM-SHA-256-PLUS agrees with it. asyncpg does not bind ("n")."""
    ca = make_ca(setup)
    server = issue(ca, setup, "sidecar")
    with (setup / "sqlguard.yaml").open("a") as config:
        config.write(f"tls:\n  cert: {server.cert}\n  key: {server.key}\n")
    extra = ("--config", str(setup / "sqlguard.yaml"))
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra) as sc:
        dsn = sc.dsn("alice", PASSWORDS["alice"], pg_db.dbname)
        with psycopg.connect(dsn + "?sslmode=require&channel_binding=require") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
            assert conn.pgconn.ssl_in_use
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(
                sc.dsn("alice", "wrong", pg_db.dbname) + "?sslmode=require&channel_binding=require"
            )

        async def asyncpg_login() -> str:
            conn = await asyncpg.connect(
                sc.dsn("bob", PASSWORDS["bob"], pg_db.dbname), ssl="require"
            )
            try:
                return str(await conn.fetchval("SELECT current_user"))
            finally:
                await conn.close()

        assert asyncio.run(asyncpg_login()) == "md5_user"
    audit = _audit_once_written(setup, '"auth":"SCRAM-SHA-256"')
    logins = [json.loads(line) for line in audit.splitlines() if '"type":"login"' in line]
    methods = {(r["user"], r.get("auth"), r.get("tls", "")[:5]) for r in logins if r["ok"]}
    assert methods == {("alice", "SCRAM-SHA-256-PLUS", "TLSv1"), ("bob", "SCRAM-SHA-256", "TLSv1")}


def test_the_upstream_password_never_leaves_the_sidecar(setup: Path, pg_db: Database) -> None:
    """Not in client errors, the sidecar's log, the audit log, or traces (console exporter)."""
    (setup / "scram_user.secret").write_text("not-the-right-one\n")  # the upstream refuses it
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console"}
    extra = ("--config", str(setup / "sqlguard.yaml"))
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra, env=env) as sc:
        with pytest.raises(psycopg.OperationalError) as failure:
            connect(sc, pg_db, "alice")
        message = str(failure.value)
        assert 'could not log in to the database as role "scram_user"' in message
        with connect(sc, pg_db, "bob") as conn:
            conn.execute("SELECT 1")
        # A wrong held password is sqlguard's problem, not a guess: no lock-out.
        for _ in range(6):
            with pytest.raises(psycopg.OperationalError, match="as role"):
                connect(sc, pg_db, "alice")
        output = sc.output()
    audit = (setup / "audit.jsonl").read_text()
    for secret in ("not-the-right-one", *(TEST_ROLES[r][1] for r in ROLES.values())):
        for where in (message, output, audit):
            assert secret not in where
    logins = [json.loads(line) for line in audit.splitlines() if '"login"' in line]
    assert any(r.get("role") == "md5_user" and r["user"] == "bob" and r["ok"] for r in logins)


def test_expired_and_disallowed_logins_say_why(
    setup: Path, managed: SidecarProcess, pg_db: Database
) -> None:
    store = setup / "identities.yaml"
    past = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    people = load_people(store)
    people["alice"] = person("alice", expires_at=past)
    people["bob"] = person("bob", databases=("other",))
    save_people(store, people)
    managed.reload()
    time.sleep(0.5)
    with pytest.raises(psycopg.OperationalError) as failure:
        connect(managed, pg_db, "alice")
    assert "access for alice expired at 2026-01-02T03:04:05Z" in str(failure.value)

    async def asyncpg_login() -> None:
        await asyncpg.connect(managed.dsn("alice", PASSWORDS["alice"], pg_db.dbname))

    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="expired"):
        asyncio.run(asyncpg_login())
    with pytest.raises(psycopg.OperationalError, match="bob may not connect to database"):
        connect(managed, pg_db, "bob")
    # Only after the right password: a wrong one still reads as a wrong password.
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(managed, pg_db, "alice", "wrong")


def _audit_once_written(setup: Path, marker: str, timeout: float = 10.0) -> str:
    """The audit log's text, once it holds ``marker`` (records reach the disk a batch at a
    time, every audit.commit_interval) or the timeout has passed."""
    deadline = time.monotonic() + timeout
    text = (setup / "audit.jsonl").read_text()
    while marker not in text and time.monotonic() < deadline:
        time.sleep(0.02)
        text = (setup / "audit.jsonl").read_text()
    return text


def _wait_for_end(conn: psycopg.Connection, timeout: float = 10.0) -> psycopg.Error:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return exc
        time.sleep(0.2)
    raise AssertionError("the session was not ended")


def test_expiry_during_a_live_session_ends_it(
    setup: Path, managed: SidecarProcess, pg_db: Database
) -> None:
    store = setup / "identities.yaml"
    people = load_people(store)
    people["alice"] = person("alice", expires_at=datetime.now(UTC) + timedelta(seconds=2))
    save_people(store, people)
    time.sleep(0.6)  # the sidecar notices the changed store
    conn = connect(managed, pg_db, "alice")
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE expiring (id int)")
    error = _wait_for_end(conn)
    assert "terminating connection: access for alice expired at" in str(error)
    with connect(managed, pg_db, "carol") as other:  # the transaction was rolled back
        assert other.execute("SELECT to_regclass('expiring')").fetchone() == (None,)
    assert '"identity_expired"' in _audit_once_written(setup, '"identity_expired"')


def test_revocation_with_the_cli_ends_live_sessions(
    setup: Path, managed: SidecarProcess, pg_db: Database
) -> None:
    first, second = connect(managed, pg_db, "alice"), connect(managed, pg_db, "alice")
    bystander = connect(managed, pg_db, "bob")
    subprocess.run(
        [sys.executable, "-m", "sqlguard", "user", "revoke", "alice",
         "--store", str(setup / "identities.yaml")],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    for conn in (first, second):
        assert "access for alice has been revoked" in str(_wait_for_end(conn))
    assert bystander.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="has been revoked"):
        connect(managed, pg_db, "alice")
    bystander.close()
    assert '"identity_revoked"' in _audit_once_written(setup, '"identity_revoked"')


def test_a_new_password_from_the_cli_takes_over_without_ending_sessions(
    setup: Path, managed: SidecarProcess, pg_db: Database
) -> None:
    live = connect(managed, pg_db, "alice")
    subprocess.run(
        [sys.executable, "-m", "sqlguard", "user", "passwd", "alice", "--password-stdin",
         "--store", str(setup / "identities.yaml")],
        input=b"alice-new-secret\n", check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while "identities reloaded" not in managed.output():  # it watches the store
        assert time.monotonic() < deadline, managed.output()
        time.sleep(0.05)
    connect(managed, pg_db, "alice", "alice-new-secret").close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(managed, pg_db, "alice")
    assert live.execute("SELECT current_user").fetchone() == ("scram_user",)
    live.close()


def test_a_just_in_time_grant_lapses_in_a_live_session(
    setup: Path, managed: SidecarProcess, pg_db: Database
) -> None:
    """carol is in no group (so a contractor, the default); a grant makes her staff."""
    store = setup / "identities.yaml"
    people = load_people(store)
    until = datetime.now(UTC) + timedelta(seconds=3)
    people["carol"] = person("carol", groups=(), temporary_groups=(TemporaryGroup("staff", until),))
    save_people(store, people)
    time.sleep(0.6)
    with connect(managed, pg_db, "carol") as conn:
        conn.execute("CREATE TEMP TABLE scratch (id int)")  # staff may
        time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.5)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="sqlguard"):
            conn.execute("CREATE TEMP TABLE scratch2 (id int)")  # a contractor may not


def test_guessing_a_persons_password_locks_the_name_out(setup: Path, pg_db: Database) -> None:
    config = setup / "sqlguard.yaml"
    config.write_text(config.read_text() + "lockout_failures: 3\nlockout_seconds: 60\n")
    with SidecarProcess(
        passthrough_upstream(pg_db), DEFAULT_RULES_DIR, "--config", str(config)
    ) as sc:
        for _ in range(3):
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                connect(sc, pg_db, "alice", "guess")
        with pytest.raises(psycopg.OperationalError, match="too many failed logins"):
            connect(sc, pg_db, "alice")  # even the right password, for a while
        with connect(sc, pg_db, "bob") as conn:  # others are not affected
            assert conn.execute("SELECT 1").fetchone() == (1,)
