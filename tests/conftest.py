"""PostgreSQL for the whole suite: one throwaway cluster per run, one database per test module."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from sqlguard.testing import Database, PostgresCluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One cluster per run: starting PostgreSQL costs about a second."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pg_db(pg_cluster: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A fresh database per module, so modules cannot see each other's tables."""
    dbname = _database_name(request.module.__name__)
    database = pg_cluster.create_database(dbname)
    yield database
    pg_cluster.drop_database(dbname)


def _database_name(module_name: str) -> str:
    """PostgreSQL folds unquoted names and truncates them at 63 bytes; avoid both surprises."""
    return re.sub(r"[^a-z0-9_]", "_", module_name.lower())[:63]
