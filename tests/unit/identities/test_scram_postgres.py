"""make_verifier's output is PostgreSQL's format: a real server accepts the password."""

from __future__ import annotations

import psycopg
import pytest

from sqlguard.identities.scram import make_verifier
from sqlguard.testing import Database

pytestmark = pytest.mark.integration


def test_postgres_accepts_password_for_installed_verifier(pg_db: Database) -> None:
    # scram_user authenticates with scram-sha-256 in the harness's pg_hba.conf; a new salt
    # for its usual password leaves other tests unaffected.
    pg_db.cluster.run_sql(f"ALTER ROLE scram_user PASSWORD '{make_verifier('scram_pw')}'")
    with psycopg.connect(pg_db.dsn("scram_user", "scram_pw")) as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("scram_user",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_db.dsn("scram_user", "wrong")).close()
