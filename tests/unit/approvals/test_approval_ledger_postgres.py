"""The PostgreSQL ledger against a real server: sidecars sharing it accept a token once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from approval_support import NOW, approval

from sqlguard.approvals.ledger import LedgerError, PostgresLedger
from sqlguard.testing import Database

pytestmark = pytest.mark.integration


def test_two_sidecars_race_for_each_token(pg_db: Database) -> None:
    """Two ledgers (two pools, as two sidecars have) presented the same token at once,
    50 times over: exactly one of them accepts it each time."""

    async def scenario() -> list[list[bool]]:
        first, second = PostgresLedger(pg_db.dsn()), PostgresLedger(pg_db.dsn())
        # Both create the table at once on first use: the advisory lock must hold.
        await asyncio.gather(first.connect(), second.connect())
        try:
            rounds = []
            for _ in range(50):
                claims = approval()
                rounds.append(
                    list(
                        await asyncio.gather(
                            first.consume(claims, NOW), second.consume(claims, NOW)
                        )
                    )
                )
            return rounds
        finally:
            await asyncio.gather(first.close(), second.close())

    for answers in asyncio.run(scenario()):
        assert sorted(answers) == [False, True]


def test_many_tasks_one_winner(pg_db: Database) -> None:
    async def scenario() -> list[bool]:
        ledger = PostgresLedger(pg_db.dsn(), table="many_tasks")
        claims = approval()
        try:
            return await asyncio.gather(*(ledger.consume(claims, NOW) for _ in range(20)))
        finally:
            await ledger.close()

    assert sorted(asyncio.run(scenario())) == [False] * 19 + [True]


def test_purge_after_retention(pg_db: Database) -> None:
    async def scenario() -> tuple[bool, bool, int]:
        ledger = PostgresLedger(pg_db.dsn(), table="purged", retain=100)
        old = approval(expires_at=NOW + 60)
        try:
            await ledger.consume(old, NOW)
            kept = await ledger.consume(old, NOW + 160)
            await ledger.consume(approval(), NOW + 161)
            connection = await asyncpg.connect(pg_db.dsn())
            try:
                rows = await connection.fetchval("SELECT count(*) FROM purged")
            finally:
                await connection.close()
            return kept, await ledger.consume(old, NOW + 161), rows
        finally:
            await ledger.close()

    kept, reused, rows = asyncio.run(scenario())
    assert (kept, reused, rows) == (False, True, 1)


def test_schema_qualified_table(pg_db: Database) -> None:
    pg_db.cluster.run_sql("CREATE SCHEMA IF NOT EXISTS sqlguard", dbname=pg_db.dbname)

    async def scenario() -> list[bool]:
        ledger = PostgresLedger(pg_db.dsn(), table="sqlguard.used")
        claims = approval()
        try:
            return [await ledger.consume(claims, NOW), await ledger.consume(claims, NOW)]
        finally:
            await ledger.close()

    assert asyncio.run(scenario()) == [True, False]


def test_unreachable_server_fails_closed_without_the_password(pg_db: Database) -> None:
    dsn = f"postgresql://postgres:s3cret@127.0.0.1:1/{pg_db.dbname}"

    async def scenario() -> None:
        ledger = PostgresLedger(dsn)
        try:
            await ledger.consume(approval(), NOW)
        finally:
            await ledger.close()

    with pytest.raises(LedgerError, match="cannot connect") as caught:
        asyncio.run(scenario())
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("table", ["Used", "a.b.c", "x; DROP TABLE t", ""])
def test_table_names_are_checked(table: str) -> None:
    with pytest.raises(LedgerError, match="must be"):
        PostgresLedger("postgresql://h/db", table=table)
