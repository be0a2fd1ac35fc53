"""The two-person rule end to end: real clients, a real PostgreSQL, tokens minted by approvers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psycopg
import pytest

from sqlguard.analysis.fingerprint import fingerprint
from sqlguard.approvals.keys import generate_keypair, load_private_key
from sqlguard.approvals.tokens import mint, new_approval
from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.testing import Database
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream

pytestmark = pytest.mark.integration
REQUESTER = "contractor_bob"


@dataclass
class Desk:
    """A sidecar with approvals configured, and the approvers' key files."""

    sidecar: SidecarProcess
    db: Database
    keys: Path
    config: Path

    def dsn(self, user: str = REQUESTER) -> str:
        return self.sidecar.dsn(user, dbname=self.db.dbname)

    def token(self, sql: str, approver: str = "dana", **changes: object) -> str:
        claims: dict[str, object] = {
            "requester": REQUESTER,
            "approver": approver,
            "database": self.db.dbname,
            "fingerprint": fingerprint(sql),
            "now": int(time.time()),
            "ttl": 600,
        }
        claims.update(changes)
        key = load_private_key(self.keys / f"{approver}.key")
        return mint(new_approval(**claims), key)  # type: ignore[arg-type]


def write_config(tmp_path: Path, ledger: str) -> tuple[Path, Path]:
    keys = tmp_path / "keys"
    for name in ("dana", "eve", "sam", "mallory"):
        generate_keypair(name, keys)
    config = tmp_path / "sqlguard.yaml"
    config.write_text(
        "approvals:\n"
        "  max_ttl: 1h\n  clock_skew: 5s\n"
        f"  ledger: {ledger}\n  requests: {tmp_path / 'requests.sqlite3'}\n"
        "  approvers:\n"
        "    - {name: dana, public_key: keys/dana.pub, groups: [contractors]}\n"
        "    - {name: eve, public_key: keys/eve.pub, groups: [contractors], revoked: true}\n"
        "    - {name: sam, public_key: keys/sam.pub, groups: [staff]}\n"
        f"    - {{name: {REQUESTER}, public_key: keys/mallory.pub, groups: [contractors]}}\n"
    )
    return keys, config


@pytest.fixture(scope="module")
def roles(pg_db: Database) -> None:
    pg_db.cluster.run_sql(f"CREATE ROLE {REQUESTER} LOGIN SUPERUSER")


@pytest.fixture
def desk(tmp_path: Path, pg_db: Database, roles: None) -> Iterator[Desk]:
    keys, config = write_config(tmp_path, str(tmp_path / "ledger.sqlite3"))
    extra = ("--config", str(config))
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra) as sidecar:
        yield Desk(sidecar, pg_db, keys, config)


def make_table(db: Database, name: str) -> None:
    db.cluster.run_sql(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int)", db.dbname)


def table_exists(db: Database, name: str) -> bool:
    return db.cluster.run_sql(f"SELECT to_regclass('{name}') IS NOT NULL", db.dbname).strip() == "t"


def test_drop_needs_a_token_and_the_refusal_says_how_to_get_one(desk: Desk) -> None:
    make_table(desk.db, "old_logs")
    with (
        psycopg.connect(desk.dsn(), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege) as caught,
    ):
        conn.execute("DROP TABLE old_logs")
    hint = caught.value.diag.message_hint or ""
    assert "sqlguard approve" in hint and fingerprint("DROP TABLE old_logs") in hint
    assert f"--requester {REQUESTER}" in hint and f"--database {desk.db.dbname}" in hint
    listed = sqlguard("approvals", "list", "--config", str(desk.config))
    assert REQUESTER in listed and "DROP TABLE old_logs" in listed
    assert table_exists(desk.db, "old_logs")


def test_token_in_a_comment_allows_the_statement_once(desk: Desk) -> None:
    make_table(desk.db, "old_logs")
    token = desk.token("DROP TABLE old_logs")
    with psycopg.connect(desk.dsn(), autocommit=True) as conn:
        conn.execute(f"/* sqlguard:approval={token} */ DROP TABLE old_logs")
        assert not table_exists(desk.db, "old_logs")
        make_table(desk.db, "old_logs")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="it has already been used"):
            conn.execute(f"/* sqlguard:approval={token} */ DROP TABLE old_logs")
    assert table_exists(desk.db, "old_logs")


def test_token_minted_by_the_cli(desk: Desk) -> None:
    make_table(desk.db, "cli_logs")
    token = sqlguard(
        "approve",
        "--key",
        str(desk.keys / "dana.key"),
        "--requester",
        REQUESTER,
        "--database",
        desk.db.dbname,
        "--sql",
        "DROP TABLE cli_logs",
        "--ttl",
        "5m",
    ).strip()
    with psycopg.connect(desk.dsn(), autocommit=True) as conn:
        conn.execute(f"/* sqlguard:approval={token} */ DROP TABLE cli_logs")
    assert not table_exists(desk.db, "cli_logs")


def test_set_form_applies_to_the_next_statement_only(desk: Desk) -> None:
    make_table(desk.db, "set_logs")
    make_table(desk.db, "set_logs_2")
    with psycopg.connect(desk.dsn(), autocommit=True) as conn:
        conn.execute(f"SET sqlguard.approval = '{desk.token('DROP TABLE set_logs')}'")
        conn.execute("DROP TABLE set_logs")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE set_logs_2")
    assert not table_exists(desk.db, "set_logs") and table_exists(desk.db, "set_logs_2")


def test_extended_protocol_psycopg_and_asyncpg(desk: Desk) -> None:
    make_table(desk.db, "ext_a")
    make_table(desk.db, "ext_b")
    with psycopg.connect(desk.dsn(), autocommit=True) as conn:
        sql = "CREATE TABLE ext_c AS SELECT %s::int AS v"
        token = desk.token("CREATE TABLE ext_c AS SELECT $1::int AS v")
        conn.execute(f"/* sqlguard:approval={token} */ {sql}", [5])
        conn.execute(
            f"/* sqlguard:approval={desk.token('DROP TABLE ext_a')} */ DROP TABLE ext_a",
            prepare=True,
        )

    async def with_asyncpg() -> None:
        conn = await asyncpg.connect(desk.dsn())
        try:
            await conn.fetch(
                f"/* sqlguard:approval={desk.token('DROP TABLE ext_b')} */ DROP TABLE ext_b"
            )
        finally:
            await conn.close()

    asyncio.run(with_asyncpg())
    assert table_exists(desk.db, "ext_c")
    assert not table_exists(desk.db, "ext_a") and not table_exists(desk.db, "ext_b")


BAD_TOKENS: dict[str, tuple[Callable[[Desk], str], str]] = {
    "expired": (
        lambda d: d.token("DROP TABLE t1", now=int(time.time()) - 3600, ttl=60),
        "it has expired",
    ),
    "wrong statement": (lambda d: d.token("DROP TABLE t2"), "it approves a different statement"),
    "wrong requester": (
        lambda d: d.token("DROP TABLE t1", requester="someone_else"),
        "it was issued for another user",
    ),
    "wrong database": (
        lambda d: d.token("DROP TABLE t1", database="other"),
        "it was issued for another database",
    ),
    "self approval": (
        lambda d: d.token("DROP TABLE t1", approver=REQUESTER),
        "you cannot approve your own statement",
    ),
    "unknown approver": (
        lambda d: d.token("DROP TABLE t1", approver="mallory"),
        "its approver is not known",
    ),
    "revoked approver": (
        lambda d: d.token("DROP TABLE t1", approver="eve"),
        "its approver has been revoked",
    ),
    "approver of another group": (
        lambda d: d.token("DROP TABLE t1", approver="sam"),
        "its approver may not approve for you",
    ),
    "malformed": (lambda d: "sga1.not-a-token", "it is malformed"),
}


@pytest.mark.parametrize("reason", sorted(BAD_TOKENS))
def test_each_bad_token_gets_its_own_refusal(desk: Desk, reason: str) -> None:
    token_for, message = BAD_TOKENS[reason]
    make_table(desk.db, "t1")
    if reason == "self approval":
        (desk.keys / f"{REQUESTER}.key").write_bytes((desk.keys / "mallory.key").read_bytes())
        (desk.keys / f"{REQUESTER}.key").chmod(0o600)
    token = token_for(desk)
    with (
        psycopg.connect(desk.dsn(), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege) as caught,
    ):
        conn.execute(f"/* sqlguard:approval={token} */ DROP TABLE t1")
    assert caught.value.diag.message_primary == f"sqlguard: approval token refused: {message}"
    assert caught.value.diag.message_hint
    assert table_exists(desk.db, "t1")


def test_two_sidecars_share_a_postgres_ledger(tmp_path: Path, pg_db: Database, roles: None) -> None:
    """The same token presented to two sidecars at once is accepted exactly once."""
    keys, config = write_config(tmp_path, pg_db.dsn())
    extra = ("--config", str(config))
    upstream = passthrough_upstream(pg_db)
    with (
        SidecarProcess(upstream, DEFAULT_RULES_DIR, *extra) as one,
        SidecarProcess(upstream, DEFAULT_RULES_DIR, *extra) as two,
    ):
        desk = Desk(one, pg_db, keys, config)
        for round_ in range(10):
            make_table(pg_db, "contested")
            token = desk.token("TRUNCATE contested")
            results = asyncio.run(
                race(
                    token,
                    [
                        one.dsn(REQUESTER, dbname=pg_db.dbname),
                        two.dsn(REQUESTER, dbname=pg_db.dbname),
                    ]
                    * 3,
                )
            )
            assert results.count("ok") == 1, (round_, results)


async def race(token: str, dsns: list[str]) -> list[str]:
    async def attempt(dsn: str) -> str:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"/* sqlguard:approval={token} */ TRUNCATE contested")
            return "ok"
        except asyncpg.InsufficientPrivilegeError:
            return "refused"
        finally:
            await conn.close()

    return await asyncio.gather(*(attempt(dsn) for dsn in dsns))


def sqlguard(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "sqlguard", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_approved_statement_span_names_the_approver(
    tmp_path: Path, pg_db: Database, roles: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans go to the console exporter of the sidecar process, read back from its output."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    keys, config = write_config(tmp_path, str(tmp_path / "ledger.sqlite3"))
    extra = ("--config", str(config))
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra) as sidecar:
        desk = Desk(sidecar, pg_db, keys, config)
        make_table(pg_db, "traced_logs")
        token = desk.token("DROP TABLE traced_logs")
        with psycopg.connect(desk.dsn(), autocommit=True) as conn:
            conn.execute(f"/* sqlguard:approval={token} */ DROP TABLE traced_logs")
        deadline = time.monotonic() + 10
        while '"sqlguard.approval.approver": "dana"' not in sidecar.output():
            assert time.monotonic() < deadline, sidecar.output()[-3000:]
            time.sleep(0.1)
        assert token not in sidecar.output()  # the sanitised text has no comments
