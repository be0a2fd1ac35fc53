"""Refusals behave exactly like PostgreSQL errors: SQLSTATE, message, detail, hint, transactions."""

from __future__ import annotations

import asyncio
import subprocess

import asyncpg
import psycopg
import pytest
from psycopg.pq import TransactionStatus

from sqlguard.testing import Database
from sqlguard.testing.sidecar import SidecarProcess

pytestmark = pytest.mark.integration

REFUSED = [
    "DROP TABLE accounts",
    "TRUNCATE accounts",
    "DELETE FROM accounts",
    "WITH d AS (DELETE FROM accounts RETURNING *) SELECT * FROM d",
]


@pytest.fixture(autouse=True)
def accounts(pg_db: Database) -> None:
    """Fresh rows before every test, written directly to the database."""
    with psycopg.connect(pg_db.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, balance int)")
        conn.execute("TRUNCATE accounts")
        conn.execute("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 5) g")


def count_rows(pg_db: Database) -> int:
    with psycopg.connect(pg_db.dsn()) as conn:
        row = conn.execute("SELECT count(*) FROM accounts").fetchone()
        assert row is not None
        return int(row[0])


def assert_refusal(error: psycopg.Error) -> None:
    diag = error.diag
    assert diag.sqlstate == "42501"
    assert diag.severity_nonlocalized == "ERROR"
    assert (
        diag.message_primary
        and "sqlguard" in diag.message_primary
        and "rule" in diag.message_primary
    )
    assert diag.message_detail and diag.message_hint
    assert diag.context is None  # nothing about the marker statement leaks through


@pytest.mark.parametrize("sql", REFUSED)
def test_simple_protocol_refusal(proxied_dsn: str, pg_db: Database, sql: str) -> None:
    with psycopg.connect(proxied_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute(sql, prepare=False)
        assert_refusal(caught.value)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert count_rows(pg_db) == 5


@pytest.mark.parametrize("sql", REFUSED)
def test_extended_protocol_refusal(proxied_dsn: str, pg_db: Database, sql: str) -> None:
    with psycopg.connect(proxied_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute(sql.replace("accounts", "accounts") + "", (), prepare=True)
        assert_refusal(caught.value)
        # The refused name is refused again, with no new Parse.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql, (), prepare=True)
        assert conn.execute("SELECT %s::int", (7,)).fetchone() == (7,)
    assert count_rows(pg_db) == 5


@pytest.mark.parametrize("sql", REFUSED)
def test_asyncpg_refusal_extended_and_simple(proxied_dsn: str, pg_db: Database, sql: str) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(proxied_dsn)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
                await conn.fetch(sql)  # extended: Parse/Describe/Flush
            assert "sqlguard" in str(caught.value) and caught.value.hint
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)  # simple Query
            assert await conn.fetchval("SELECT $1::int", 3) == 3
        finally:
            await conn.close()

    asyncio.run(main())
    assert count_rows(pg_db) == 5


def test_pipeline_refusal_discards_to_sync(proxied_dsn: str, pg_db: Database) -> None:
    with psycopg.connect(proxied_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.pipeline():
            conn.execute("INSERT INTO accounts VALUES (%s, 0)", (10,))
            conn.execute("DELETE FROM accounts", ())
            conn.execute("INSERT INTO accounts VALUES (%s, 0)", (11,))
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # Like PostgreSQL: the implicit transaction up to Sync is rolled back, nothing after runs.
    assert count_rows(pg_db) == 5


def test_refusal_inside_transaction_aborts_it(proxied_dsn: str, pg_db: Database) -> None:
    with psycopg.connect(proxied_dsn, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO accounts VALUES (20, 1)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE accounts")
        assert conn.info.transaction_status == TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        cur = conn.execute("COMMIT")
        assert cur.statusmessage == "ROLLBACK"
        assert conn.info.transaction_status == TransactionStatus.IDLE
    assert count_rows(pg_db) == 5


def test_refusal_inside_pipeline_transaction(proxied_dsn: str, pg_db: Database) -> None:
    with psycopg.connect(proxied_dsn) as conn:  # autocommit off: psycopg sends BEGIN
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.pipeline():
            conn.execute("INSERT INTO accounts VALUES (%s, 1)", (21,))
            conn.execute("TRUNCATE accounts", ())
        assert conn.info.transaction_status == TransactionStatus.INERROR
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (5,)


def test_savepoint_rollback_recovers_after_refusal(proxied_dsn: str, pg_db: Database) -> None:
    with psycopg.connect(proxied_dsn, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO accounts VALUES (30, 1)")
        conn.execute("SAVEPOINT s")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM accounts")
        conn.execute("ROLLBACK TO SAVEPOINT s")
        conn.execute("COMMIT")
    assert count_rows(pg_db) == 6


def test_multi_statement_query_with_one_refusal_runs_nothing(
    proxied_dsn: str, pg_db: Database
) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(proxied_dsn)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO accounts VALUES (40, 1); SELECT 1; DROP TABLE accounts"
                )
        finally:
            await conn.close()

    asyncio.run(main())
    assert count_rows(pg_db) == 5


def test_psql_shows_message_detail_and_hint(sidecar: SidecarProcess, pg_db: Database) -> None:
    psql = str(pg_db.cluster.bin("psql"))
    result = subprocess.run(
        [
            psql,
            "-X",
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "DROP TABLE accounts",
            sidecar.dsn(dbname=pg_db.dbname),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "ERROR:  42501: sqlguard" in result.stderr
    assert "DETAIL:" in result.stderr and "HINT:" in result.stderr
    assert count_rows(pg_db) == 5
