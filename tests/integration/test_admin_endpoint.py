"""The admin endpoint of a running sidecar: health, readiness, status, reload, and metrics
whose counters match what a scripted session did."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.testing import TEST_ROLES, Database
from sqlguard.testing.sidecar import SidecarProcess, free_port, passthrough_upstream

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin(pg_db: Database) -> Iterator[tuple[SidecarProcess, str]]:
    port = free_port()
    extra = ("--admin", f"127.0.0.1:{port}")
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra) as sidecar:
        yield sidecar, f"http://127.0.0.1:{port}"


def get(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = get(f"{base}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_health_readiness_status_and_reload(admin: tuple[SidecarProcess, str]) -> None:
    _, base = admin
    assert get(f"{base}/healthz") == (200, "ok\n")
    assert get(f"{base}/readyz")[0] == 200
    status = json.loads(get(f"{base}/status")[1])
    assert status["rules_version"] and "connections" in status
    assert get(f"{base}/reload", "POST")[0] == 200


def test_metrics_count_what_the_session_did(
    admin: tuple[SidecarProcess, str], pg_db: Database
) -> None:
    sidecar, base = admin
    before = samples(base)
    with psycopg.connect(sidecar.dsn(dbname=pg_db.dbname), autocommit=True) as conn:
        conn.execute("SELECT 1")
        conn.execute("SELECT 2")
        for _ in range(3):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM nowhere")
        during = samples(base)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(sidecar.dsn("md5_user", "wrong", pg_db.dbname))
    with psycopg.connect(sidecar.dsn("md5_user", TEST_ROLES["md5_user"][1], pg_db.dbname)):
        pass
    after = samples(base)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("sqlguard_refusals_total", rule="delete-without-where") == 3
    assert grew("sqlguard_statements_total", decision="deny", rule="delete-without-where") == 3
    assert grew("sqlguard_logins_total", user="postgres", result="ok") == 1
    assert grew("sqlguard_logins_total", user="md5_user", result="ok") == 1
    assert grew("sqlguard_sidecar_overhead_seconds_count") >= 5  # every decision is timed
    assert grew("sqlguard_statement_duration_seconds_count") >= 5  # every result is timed
    assert during[("sqlguard_connections_active", ())] >= 1
    active = ("sqlguard_connections_active", ())
    deadline = time.monotonic() + 5  # the sidecar sees the last close a moment later
    while samples(base)[active] != before[active]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
