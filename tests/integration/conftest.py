"""A sidecar in front of each test module's database, started as users start it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlguard.testing import Database
from sqlguard.testing.sidecar import SidecarProcess

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


def upstream_url(db: Database) -> str:
    """Passthrough mode: no credentials, each client authenticates as itself."""
    return f"postgresql://{db.cluster.host}:{db.cluster.port}/{db.dbname}"


@pytest.fixture(scope="module")
def sidecar(pg_db: Database) -> Iterator[SidecarProcess]:
    with SidecarProcess(upstream_url(pg_db), RULES_DIR) as process:
        yield process


@pytest.fixture(scope="module")
def proxied_dsn(sidecar: SidecarProcess, pg_db: Database) -> str:
    return sidecar.dsn(dbname=pg_db.dbname)
