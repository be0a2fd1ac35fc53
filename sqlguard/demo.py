"""`sqlguard demo`: a throwaway PostgreSQL with a small shop, and the sidecar in front of it."""

from __future__ import annotations

import shutil
from functools import partial

import click

from sqlguard.config import Settings, Upstream
from sqlguard.shell.server import Sidecar, run
from sqlguard.testing.postgres import PostgresCluster

DEMO_DB = "shop"
DEMO_USER = "contractor"

SCHEMA = f"""
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    total numeric(10, 2) NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (name, email)
    SELECT 'customer ' || g, 'customer' || g || '@example.com' FROM generate_series(1, 50) g;
INSERT INTO orders (customer_id, total)
    SELECT 1 + g % 50, round((random() * 200)::numeric, 2) FROM generate_series(1, 500) g;
CREATE ROLE {DEMO_USER} LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {DEMO_USER};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {DEMO_USER};
"""

TRY_THESE = """
  allowed:  SELECT name, email FROM customers WHERE id = 7;
  refused:  DELETE FROM orders;
  refused:  DROP TABLE customers;
"""


def run_demo(port: int) -> None:
    """Runs until Ctrl-C; the cluster and its files are removed on the way out."""
    with PostgresCluster() as cluster:
        cluster.create_database(DEMO_DB)
        cluster.run_sql(SCHEMA, dbname=DEMO_DB)
        settings = Settings(
            listen_port=port,
            upstream=Upstream(cluster.host, cluster.port, dbname=DEMO_DB),
            log_level="WARNING",
        )
        try:
            run(settings, ready=partial(_announce, cluster))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on port {port}: {exc}; try --port") from exc


def _announce(cluster: PostgresCluster, sidecar: Sidecar) -> None:
    dsn = f"postgresql://{DEMO_USER}@127.0.0.1:{sidecar.port}/{DEMO_DB}"
    psql = shutil.which("psql") or cluster.bin("psql")  # the embedded server ships its psql
    click.echo(
        f"\nsqlguard demo: PostgreSQL {cluster.version} on {sidecar.settings.upstream.address} "
        f"(data in {cluster.directory}) behind the sidecar.\n"
        f"rules: {sidecar.settings.rules_dir} (version {sidecar.firewall.rules_version()})\n\n"
        f"Connect with:\n  {psql} {dsn}\n\nThen try:{TRY_THESE}\nPress Ctrl-C to stop "
        "(the demo database is thrown away)."
    )
