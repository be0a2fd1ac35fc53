"""Statement and connection spans from a sidecar running in this process, captured in memory."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sqlguard.config import Settings, Upstream
from sqlguard.observe.tracing import StatementTracer
from sqlguard.shell.server import Sidecar
from sqlguard.testing import Database
from sqlguard.testing.sidecar import free_port

pytestmark = pytest.mark.integration
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def traced(pg_db: Database) -> Iterator[tuple[str, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    cluster = pg_db.cluster
    settings = Settings(
        listen_port=free_port(),
        upstream=Upstream(cluster.host, cluster.port, dbname=pg_db.dbname),
        rules_poll_interval=0,
    )
    loop = asyncio.new_event_loop()
    tracer = StatementTracer.in_process(exporter, cluster.host, cluster.port)
    sidecar = Sidecar(settings, tracer=tracer)
    loop.run_until_complete(sidecar.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    pg_db.cluster.run_sql("CREATE TABLE IF NOT EXISTS items (id int)", pg_db.dbname)
    pg_db.cluster.run_sql("INSERT INTO items SELECT generate_series(1, 3)", pg_db.dbname)
    yield f"postgresql://postgres@127.0.0.1:{settings.listen_port}/{pg_db.dbname}", exporter
    asyncio.run_coroutine_threadsafe(sidecar.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def spans_named(exporter: InMemorySpanExporter, name: str, count: int = 1) -> list[ReadableSpan]:
    """The finished spans called `name`, once there are `count` of them: the sidecar ends a
    span just after it forwards the result, so the client may look a moment earlier."""
    deadline = time.monotonic() + 10
    while True:
        spans = [span for span in exporter.get_finished_spans() if span.name == name]
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.02)


def test_allowed_statement_span(traced: tuple[str, InMemorySpanExporter]) -> None:
    dsn, exporter = traced
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT id FROM items WHERE id < 100 AND 'secret' <> ''").fetchall()
    (span,) = spans_named(exporter, "SELECT items")
    attributes = dict(span.attributes or {})
    assert span.kind is SpanKind.CLIENT
    assert attributes["db.system.name"] == "postgresql"
    assert attributes["db.operation.name"] == "SELECT"
    assert attributes["db.collection.name"] == "items"
    assert attributes["sqlguard.decision"] == "allow"
    assert attributes["db.response.returned_rows"] == 3
    assert "secret" not in str(attributes["db.query.text"])
    assert attributes["enduser.id"] == "postgres"
    connection = spans_named(exporter, "connection")[0]
    assert span.parent is not None and span.parent.span_id == connection.context.span_id


def test_refused_statement_span(traced: tuple[str, InMemorySpanExporter]) -> None:
    dsn, exporter = traced
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.Error):
        conn.execute("DELETE FROM items")
    (span,) = spans_named(exporter, "DELETE items")
    attributes = dict(span.attributes or {})
    assert attributes["sqlguard.decision"] == "deny"
    assert attributes["sqlguard.rule"] == "delete-without-where"
    assert attributes["db.response.status_code"] == "42501"
    assert attributes["error.type"] == "42501"
    assert span.status.status_code is StatusCode.ERROR


def test_statement_joins_the_application_trace(traced: tuple[str, InMemorySpanExporter]) -> None:
    dsn, exporter = traced
    comment = f"/*traceparent='00-{TRACE_ID}-{PARENT_ID}-01'*/"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SELECT count(*) FROM items {comment}", prepare=True).fetchone()
    span = spans_named(exporter, "SELECT items", count=2)[-1]
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.parent.is_remote
