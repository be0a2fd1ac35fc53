"""A sidecar in front of each test module's database, started as users start it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.testing import Database
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream


@pytest.fixture(scope="module")
def sidecar(pg_db: Database) -> Iterator[SidecarProcess]:
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR) as process:
        yield process


@pytest.fixture(scope="module")
def proxied_dsn(sidecar: SidecarProcess, pg_db: Database) -> str:
    return sidecar.dsn(dbname=pg_db.dbname)
