"""Spans as the tracer records them: attributes, parents and the SDK sampler's decisions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler
from opentelemetry.trace import SpanKind

from sqlguard.analysis.describe import Description, describe
from sqlguard.analysis.parse import analyze_bytes
from sqlguard.observe.span_export import SpanShipper, in_process
from sqlguard.observe.tracing import StatementTracer
from sqlguard.policy.model import Action, Decision, Identity

ALICE = Identity("alice", "shop", "psql", "10.0.0.7")
ALLOWED = Decision(Action.allow, "reads", "", "", "")
APP_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def described(text: bytes) -> Description:
    return describe(text, analyze_bytes(text))


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def tracer_with(exporter: InMemorySpanExporter, sampler: Sampler) -> StatementTracer:
    shipper = SpanShipper(in_process(exporter), delay=60, on_close=exporter.shutdown)
    return StatementTracer(shipper, "db.internal", 5432, sampler)


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[StatementTracer]:
    tracer = tracer_with(exporter, ParentBased(ALWAYS_ON))
    yield tracer
    tracer.shutdown()


def run(tracer: StatementTracer, text: bytes, sqlstate: str = "", tag: str = "SELECT 2") -> None:
    connection = tracer.connection(ALICE, "1.3")
    span = tracer.statement(text, described, ALLOWED, ALICE, connection)
    if span is not None:
        tracer.end(span, sqlstate, tag, ran=True)
    tracer.end_connection(connection)


def test_statement_span_under_its_connection(
    tracer: StatementTracer, exporter: InMemorySpanExporter
) -> None:
    run(tracer, b"SELECT name FROM items WHERE id = 42")
    tracer.shutdown()
    statement, connection = exporter.get_finished_spans()
    attributes = dict(statement.attributes or {})
    assert statement.name == "SELECT items" and statement.kind is SpanKind.CLIENT
    assert attributes["db.query.text"] == "SELECT name FROM items WHERE id = ?"
    assert attributes["db.collection.name"] == "items"
    assert attributes["db.response.returned_rows"] == 2
    assert attributes["server.address"] == "db.internal"
    assert connection.kind is SpanKind.SERVER
    assert dict(connection.attributes or {})["tls.protocol.version"] == "1.3"
    assert statement.parent is not None and connection.context is not None
    assert statement.parent.span_id == connection.context.span_id
    assert statement.context is not None
    assert statement.context.trace_id == connection.context.trace_id
    assert connection.start_time is not None and statement.start_time is not None
    assert connection.start_time <= statement.start_time


def test_failed_statement(tracer: StatementTracer, exporter: InMemorySpanExporter) -> None:
    run(tracer, b"SELECT 1/0 FROM items", sqlstate="22012", tag="")
    tracer.shutdown()
    statement = exporter.get_finished_spans()[0]
    attributes = dict(statement.attributes or {})
    assert attributes["error.type"] == attributes["db.response.status_code"] == "22012"
    assert "db.response.returned_rows" not in attributes


def test_nothing_is_recorded_when_the_sampler_says_no(exporter: InMemorySpanExporter) -> None:
    tracer = tracer_with(exporter, ParentBased(ALWAYS_OFF))
    run(tracer, b"SELECT 1")
    tracer.shutdown()
    assert exporter.get_finished_spans() == ()


def test_a_sampled_application_trace_is_followed(exporter: InMemorySpanExporter) -> None:
    """Parent-based sampling off at the root, but the application's trace is sampled: the
    statement joins it, the unsampled connection span is not exported."""
    tracer = tracer_with(exporter, ParentBased(ALWAYS_OFF))
    run(tracer, f"SELECT 1 /*traceparent='00-{APP_TRACE}-00f067aa0ba902b7-01'*/".encode())
    run(tracer, f"SELECT 2 /*traceparent='00-{APP_TRACE}-00f067aa0ba902b7-00'*/".encode())
    tracer.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.context is not None and format(span.context.trace_id, "032x") == APP_TRACE
    assert span.parent is not None and span.parent.is_remote


def test_a_malformed_traceparent_is_ignored(
    tracer: StatementTracer, exporter: InMemorySpanExporter
) -> None:
    run(tracer, f"SELECT 1 /*traceparent='00-{'0' * 32}-00f067aa0ba902b7-01'*/".encode())
    tracer.shutdown()
    statement, connection = exporter.get_finished_spans()
    assert statement.parent is not None and connection.context is not None
    assert statement.parent.span_id == connection.context.span_id
