"""Real clients through the sidecar, against a real PostgreSQL: nothing changes for them."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time

import asyncpg
import psycopg
import pytest

from sqlguard.testing import TEST_ROLES, Database
from sqlguard.testing.sidecar import SidecarProcess

pytestmark = pytest.mark.integration
ROWS = 100_000


@pytest.fixture(scope="module", autouse=True)
def schema(pg_db: Database) -> None:
    with psycopg.connect(pg_db.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g")
        conn.execute("CREATE TABLE copied (id int, name text)")
        for role in TEST_ROLES:
            conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")


# ---- psycopg 3 ------------------------------------------------------------------------


@pytest.mark.parametrize("autocommit", [True, False])
def test_psycopg_queries_and_inserts(proxied_dsn: str, autocommit: bool) -> None:
    with psycopg.connect(proxied_dsn, autocommit=autocommit) as conn:
        assert conn.execute("SELECT count(*) FROM items WHERE id <= 10").fetchone() == (10,)
        assert conn.execute("SELECT name FROM items WHERE id = %s", (3,)).fetchone() == ("item 3",)
        conn.execute("INSERT INTO items VALUES (%s, %s)", (1000 + autocommit, "new"))
        conn.commit()
    with psycopg.connect(proxied_dsn) as conn:
        found = conn.execute("SELECT name FROM items WHERE id = %s", (1000 + autocommit,))
        assert found.fetchone() == ("new",)


def test_psycopg_prepared_statement_reused_50_times(proxied_dsn: str) -> None:
    with psycopg.connect(proxied_dsn, autocommit=True) as conn:
        for i in range(50):
            row = conn.execute("SELECT %s::int + id FROM items WHERE id = 1", (i,), prepare=True)
            assert row.fetchone() == (i + 1,)


def test_psycopg_executemany(proxied_dsn: str) -> None:
    with psycopg.connect(proxied_dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s)", [(2000 + i, f"many {i}") for i in range(100)]
        )
        conn.commit()
        assert conn.execute("SELECT count(*) FROM items WHERE id >= 2000").fetchone() == (100,)


def test_psycopg_copy_in_and_out(proxied_dsn: str) -> None:
    with psycopg.connect(proxied_dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY copied (id, name) FROM STDIN") as copy:
            for i in range(ROWS):
                copy.write_row((i, f"row {i}"))
        conn.commit()
        with cur.copy("COPY copied TO STDOUT") as copy:
            count = sum(1 for _ in copy.rows())
        assert count == ROWS
        cur.execute("DELETE FROM copied WHERE id >= 0")
        conn.commit()


def test_psycopg_pipeline(proxied_dsn: str) -> None:
    with psycopg.connect(proxied_dsn) as conn:
        with conn.pipeline():
            conn.execute("INSERT INTO items VALUES (%s, %s)", (3000, "piped"))
            name = conn.execute("SELECT name FROM items WHERE id = %s", (3000,))
            count = conn.execute("SELECT count(*) FROM items WHERE id = %s", (1,))
        assert name.fetchone() == ("piped",)
        assert count.fetchone() == (1,)
        conn.commit()


def test_psycopg_listen_notify(proxied_dsn: str, pg_db: Database) -> None:
    """LISTEN through the sidecar; the NOTIFY comes from a direct connection because the
    baseline denies NOTIFY to contractors (it commands other applications' listeners)."""
    with psycopg.connect(proxied_dsn, autocommit=True) as listener:
        listener.execute("LISTEN sqlguard_test")
        with psycopg.connect(pg_db.dsn(), autocommit=True) as sender:
            sender.execute("NOTIFY sqlguard_test, 'hello'")
        received = list(listener.notifies(timeout=5, stop_after=1))
    assert [n.payload for n in received] == ["hello"]


@pytest.mark.parametrize("role", sorted(TEST_ROLES))
def test_password_authentication_passes_through(
    sidecar: SidecarProcess, pg_db: Database, role: str
) -> None:
    password = TEST_ROLES[role][1]
    with psycopg.connect(sidecar.dsn(role, password, pg_db.dbname)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(sidecar.dsn(role, "wrong", pg_db.dbname))


def test_psycopg_async(proxied_dsn: str) -> None:
    async def main() -> list[tuple[int]]:
        async with await psycopg.AsyncConnection.connect(proxied_dsn) as conn:
            cur = await conn.execute("SELECT id FROM items WHERE id < %s ORDER BY id", (3,))
            return await cur.fetchall()

    assert asyncio.run(main()) == [(1,), (2,)]


# ---- asyncpg ----------------------------------------------------------------------------


def test_asyncpg_everyday_use(proxied_dsn: str) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(proxied_dsn)
        try:
            assert await conn.fetchval("SELECT name FROM items WHERE id = $1", 2) == "item 2"
            statement = await conn.prepare("SELECT $1::int * 2")
            for i in range(50):
                assert await statement.fetchval(i) == i * 2
            await conn.executemany(
                "INSERT INTO items VALUES ($1, $2)", [(4000 + i, "am") for i in range(50)]
            )
            assert await conn.fetchval("SELECT count(*) FROM items WHERE id >= 4000") == 50
            async with conn.transaction():
                await conn.execute("INSERT INTO items VALUES (5000, 'tx')")
            await conn.execute("SELECT 1; SELECT 2")
        finally:
            await conn.close()

    asyncio.run(main())


def test_asyncpg_copy_in_and_out(proxied_dsn: str) -> None:
    async def main() -> int:
        conn = await asyncpg.connect(proxied_dsn)
        try:
            await conn.copy_records_to_table(
                "copied", records=((i, f"a {i}") for i in range(ROWS)), columns=["id", "name"]
            )
            out = io.BytesIO()
            await conn.copy_from_table("copied", output=out)
            await conn.execute("DELETE FROM copied WHERE id >= 0")
            return out.getvalue().count(b"\n")
        finally:
            await conn.close()

    assert asyncio.run(main()) == ROWS


def test_asyncpg_listen_notify(proxied_dsn: str, pg_db: Database) -> None:
    async def main() -> str:
        listener = await asyncpg.connect(proxied_dsn)
        sender = await asyncpg.connect(pg_db.dsn())  # NOTIFY is denied to contractors
        got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        await listener.add_listener("chan", lambda *args: got.set_result(args[3]))
        await sender.execute("NOTIFY chan, 'ping'")
        try:
            return await asyncio.wait_for(got, 5)
        finally:
            await listener.close()
            await sender.close()

    assert asyncio.run(main()) == "ping"


def test_asyncpg_timeout_cancels_and_connection_survives(proxied_dsn: str) -> None:
    async def main() -> int:
        conn = await asyncpg.connect(proxied_dsn)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetch("SELECT pg_sleep(30)", timeout=0.5)
            return await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    started = time.monotonic()
    assert asyncio.run(main()) == 1
    assert time.monotonic() - started < 10


# ---- psql and pgbench -------------------------------------------------------------------


def test_psql_script_with_copy(sidecar: SidecarProcess, pg_db: Database) -> None:
    script = (
        "BEGIN;\nCOPY copied FROM STDIN;\n1\tone\n2\ttwo\n\\.\nCOMMIT;\n"
        "SELECT count(*) FROM copied WHERE id < 3;\n"
    )
    out = _psql(sidecar, pg_db, script)
    assert out.strip().splitlines()[-1] == "2"


@pytest.fixture(scope="module")
def pgbench_tables(pg_db: Database) -> None:
    """Initialised directly: `pgbench -i` drops its tables first, which the rules refuse."""
    cluster = pg_db.cluster
    init = [str(cluster.bin("pgbench")), "-i", "-q", "-s", "1", "-h", cluster.host]
    subprocess.run(
        [*init, "-p", str(cluster.port), "-U", "postgres", pg_db.dbname],
        check=True,
        capture_output=True,
    )


@pytest.mark.usefixtures("pgbench_tables")
@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_select_only(sidecar: SidecarProcess, pg_db: Database, mode: str) -> None:
    pgbench = str(pg_db.cluster.bin("pgbench"))
    env_dsn = ["-h", sidecar.host, "-p", str(sidecar.port), "-U", "postgres"]
    result = subprocess.run(
        [pgbench, "-S", "-M", mode, "-c", "4", "-j", "2", "-T", "10", *env_dsn, pg_db.dbname],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "number of failed transactions: 0" in result.stdout
    assert "tps = " in result.stdout


def _psql(sidecar: SidecarProcess, pg_db: Database, script: str) -> str:
    psql = str(pg_db.cluster.bin("psql"))
    result = subprocess.run(
        [psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", sidecar.dsn(dbname=pg_db.dbname)],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
