"""Refusals at login, and rule reloads (SIGHUP) applied to live connections."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from sqlguard.config import DEFAULT_RULES_DIR as RULES_DIR
from sqlguard.testing import Database
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("extra", "sqlstate", "text"),
    [
        ({"options": "-c role=pg_read_all_data"}, "42501", 'startup parameter "role"'),
        ({"options": "-c session_authorization=postgres"}, "42501", "session_authorization"),
        ({"replication": "database"}, "0A000", "replication connections are not supported"),
    ],
)
def test_startup_refusals_are_fatal_and_clear(
    proxied_dsn: str, extra: dict[str, str], sqlstate: str, text: str
) -> None:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(proxied_dsn, **extra)
    assert text in str(caught.value)


def test_harmless_options_pass(proxied_dsn: str) -> None:
    with psycopg.connect(proxied_dsn, options="-c statement_timeout=5s") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)


@pytest.fixture
def own_rules(tmp_path: Path, pg_db: Database) -> Iterator[tuple[SidecarProcess, Path]]:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    with SidecarProcess(passthrough_upstream(pg_db), rules) as sidecar:
        yield sidecar, rules


def wait_for_log(sidecar: SidecarProcess, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in sidecar.output():
        assert time.monotonic() < deadline, sidecar.output()
        time.sleep(0.05)


def test_reload_applies_to_live_connections_and_prepared_statements(
    own_rules: tuple[SidecarProcess, Path], pg_db: Database
) -> None:
    sidecar, rules = own_rules
    pg_db.cluster.run_sql("CREATE TABLE IF NOT EXISTS reload_t (id int)", pg_db.dbname)
    with psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM reload_t", prepare=True).fetchone() == (0,)
        (rules / "no-select.yaml").write_text(
            "rules:\n  - id: no-select\n    match: {kinds: [select]}\n    action: deny\n"
            "    message: Reading is off today.\n"
        )
        sidecar.reload()
        wait_for_log(sidecar, "rules reloaded")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-select"):
            conn.execute("SELECT count(*) FROM reload_t", prepare=True)  # Bind of an old name
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-select"):
            conn.execute("SELECT 1")


def test_reload_reaches_a_cursor_opened_under_the_old_rules(
    own_rules: tuple[SidecarProcess, Path], pg_db: Database
) -> None:
    """asyncpg binds a cursor's portal once and fetches from it with Execute: after a reload
    that refuses its query, the next fetch is refused, and the transaction is aborted as
    after any error."""
    sidecar, rules = own_rules

    async def fetch_across_a_reload() -> None:
        conn = await asyncpg.connect(sidecar.dsn(dbname=pg_db.dbname))
        try:
            transaction = conn.transaction()
            await transaction.start()
            cursor = await conn.cursor("SELECT g FROM generate_series(1, 1000) AS g")
            assert [row[0] for row in await cursor.fetch(3)] == [1, 2, 3]
            (rules / "no-select.yaml").write_text(
                "rules:\n  - id: no-select\n    match: {kinds: [select]}\n    action: deny\n"
                "    message: Reading is off today.\n"
            )
            sidecar.reload()
            wait_for_log(sidecar, "rules reloaded")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="no-select"):
                await cursor.fetch(3)
            with pytest.raises(asyncpg.InFailedSQLTransactionError):
                await conn.execute("SHOW work_mem")  # not a SELECT: the server answers
            await transaction.rollback()
        finally:
            await conn.close()

    asyncio.run(fetch_across_a_reload())


def test_broken_rules_on_reload_keep_the_old_ones(
    own_rules: tuple[SidecarProcess, Path], pg_db: Database
) -> None:
    sidecar, rules = own_rules
    (rules / "broken.yaml").write_text("rules:\n  - id: [unclosed\n")
    sidecar.reload()
    wait_for_log(sidecar, "rule reload failed")
    assert "broken.yaml" in sidecar.output()
    with psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-drop"):
            conn.execute("DROP TABLE IF EXISTS nothing_here")


def test_broken_rules_at_start_fail_with_a_clear_message(tmp_path: Path, pg_db: Database) -> None:
    (tmp_path / "bad.yaml").write_text("rules:\n  - id: x\n    action: explode\n")
    sidecar = SidecarProcess(passthrough_upstream(pg_db), tmp_path)
    with pytest.raises(RuntimeError, match=r"bad\.yaml"):
        sidecar.start(timeout=10)


def test_changed_rule_file_is_picked_up_without_a_signal(
    own_rules: tuple[SidecarProcess, Path], pg_db: Database
) -> None:
    sidecar, rules = own_rules
    (rules / "no-values.yaml").write_text(
        "rules:\n  - id: no-pg-sleep\n    match: {kinds: [select]}\n    action: deny\n"
        "    message: Not today.\n"
    )
    wait_for_log(sidecar, "rules reloaded")
    with (
        psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-pg-sleep"),
    ):
        conn.execute("SELECT 1")


TRAFFIC_RULES = """rules:
  - id: deny-{table}
    applies_to: {{groups: [contractors]}}
    match: {{tables: [{table}]}}
    action: deny
    message: {table} is closed in this version of the rules.
"""


def write_atomically(path: Path, text: str) -> None:
    """As deployment tools do (and as DBAs should): a reload must never see half a file."""
    partial = path.with_suffix(".tmp")
    partial.write_text(text)
    os.replace(partial, path)


def test_reload_under_traffic_never_mixes_rule_versions(
    own_rules: tuple[SidecarProcess, Path], pg_db: Database
) -> None:
    """Version A refuses table a, version B table b: a message touching both is refused by
    one or the other; judged half by each, it would pass. No connection may drop."""
    sidecar, rules = own_rules
    pg_db.cluster.run_sql("CREATE TABLE IF NOT EXISTS a (x int)", pg_db.dbname)
    pg_db.cluster.run_sql("CREATE TABLE IF NOT EXISTS b (x int)", pg_db.dbname)
    traffic = rules / "traffic.yaml"
    write_atomically(traffic, TRAFFIC_RULES.format(table="a"))
    sidecar.reload()
    wait_for_log(sidecar, "rules reloaded")
    outcomes: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn:
            while not stop.is_set():
                try:
                    conn.execute("SELECT count(*) FROM a; SELECT count(*) FROM b")
                    outcomes.append("allowed")
                except psycopg.errors.InsufficientPrivilege as exc:
                    outcomes.append(str(exc.diag.message_primary))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for round_ in range(20):
        write_atomically(traffic, TRAFFIC_RULES.format(table="ab"[round_ % 2]))
        sidecar.reload()
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert outcomes and set(outcomes) <= {
        'sqlguard: statement refused by rule "deny-a"',
        'sqlguard: statement refused by rule "deny-b"',
    }
    assert sidecar.output().count("rules reloaded") >= 10
