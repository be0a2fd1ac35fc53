"""OpenTelemetry spans for connections and statements (database semantic conventions).

Tracing is off unless the standard `OTEL_TRACES_EXPORTER` says otherwise (`console`, or
`otlp` with the `otlp` extra installed): a sidecar must not slow down, or hang on exit,
because no collector is reachable. A statement span starts when the statement goes
upstream (or is refused in its place) and ends when its result is complete; it joins the
application's trace when the statement carries a sqlcommenter `traceparent` comment.

Spans are recorded here as small slotted objects, not SDK spans: the SDK's span costs about
90 µs of attribute validation, locks and bookkeeping per statement on the event loop. A
statement span holds its ids, start time and the objects its attributes are made of; the
attributes themselves are made when it is shipped, on `span_export`'s thread, a batch at a
time. The sampling decision is still the SDK's sampler from `OTEL_TRACES_SAMPLER`; finished
spans are exported by another process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sqlguard.analysis.describe import Described
from sqlguard.observe.span_export import (
    ExporterProcess,
    FinishedSpan,
    SpanShipper,
    exporter_choice,
    in_process,
)
from sqlguard.policy.model import Decision, Identity
from sqlguard.wire.messages import rows_in_tag

_TRACEPARENT = re.compile(
    rb"traceparent\s*=\s*'([0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})'"
)
_SERVER, _CLIENT = SpanKind.SERVER, SpanKind.CLIENT
_SERVER_KIND, _CLIENT_KIND = _SERVER.value, _CLIENT.value


class LiveSpan:
    """A connection's span being recorded; ``sampled`` False for one that is not (it still
    parents the statement spans, which follow its decision under a parent-based sampler)."""

    __slots__ = (
        "attributes",
        "children_sampled",
        "context",
        "sampled",
        "span_id",
        "start",
        "trace_id",
    )

    def __init__(
        self, trace_id: int, span_id: int, sampled: bool, attributes: dict[str, str | int | bool]
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.sampled = sampled
        self.start = time.time_ns()
        self.attributes = attributes
        self.children_sampled: bool | None = None
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        self.context = SpanContext(trace_id, span_id, False, flags)


class StatementSpan:
    """A statement's span being recorded: the ids and the start, and what its attributes
    will be made of; ``described`` is also what the audit record shows."""

    __slots__ = ("decision", "described", "identity", "parent", "span_id", "start", "trace_id")

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        parent: SpanContext | None,
        described: Described,
        decision: Decision,
        identity: Identity,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent = parent
        self.start = time.time_ns()
        self.described = described
        self.decision = decision
        self.identity = identity


class StatementTracer:
    """Starts and ends the spans of one sidecar; finished spans go to ``shipper``."""

    def __init__(
        self,
        shipper: SpanShipper,
        server_address: str,
        server_port: int,
        sampler: Sampler | None = None,
    ) -> None:
        self.shipper = shipper
        self._sampler = sampler or TracerProvider(shutdown_on_exit=False).sampler
        self._ids = RandomIdGenerator()
        self._server: dict[str, str | int] = {
            "server.address": server_address,
            "server.port": server_port,
        }

    @classmethod
    def from_environment(
        cls, server_address: str, server_port: int, log_level: str, log_format: str
    ) -> StatementTracer | None:
        """The tracer `OTEL_TRACES_EXPORTER` asks for, exporting from a child process; None
        (no tracing) by default."""
        if exporter_choice() is None:
            return None
        process = ExporterProcess(log_level, log_format)
        return cls(SpanShipper(process, on_close=process.close), server_address, server_port)

    @classmethod
    def in_process(
        cls, exporter: SpanExporter, server_address: str, server_port: int, delay: float = 0.05
    ) -> StatementTracer:
        """A tracer exporting to ``exporter`` from a thread of this process (tests)."""
        shipper = SpanShipper(in_process(exporter), delay=delay, on_close=exporter.shutdown)
        return cls(shipper, server_address, server_port)

    def connection(self, identity: Identity, tls_version: str | None = None) -> LiveSpan:
        """The client connection's span; ``tls.protocol.version`` (e.g. ``1.3``) if TLS."""
        attributes: dict[str, str | int | bool] = {
            "enduser.id": identity.user,
            "db.namespace": identity.database,
            "client.address": identity.client_addr,
            **self._server,
        }
        if tls_version:
            attributes["tls.protocol.name"] = "tls"
            attributes["tls.protocol.version"] = tls_version
        trace_id = self._ids.generate_trace_id()
        sampled = self._sampled(None, trace_id, "connection", _SERVER)
        return LiveSpan(trace_id, self._ids.generate_span_id(), sampled, attributes)

    def statement(
        self,
        text: bytes,
        describe: Callable[[bytes], Described],
        decision: Decision,
        identity: Identity,
        connection: LiveSpan | None,
    ) -> StatementSpan | None:
        """The statement's span, or None if it is not sampled. The decision under the
        connection's span is taken once per connection: the SDK's samplers decide on the
        parent and the trace id, which its statements share."""
        parent = _application_context(text)
        if parent is not None:
            trace_id = parent.trace_id
            sampled = self._sampled(parent, trace_id, "statement", _CLIENT)
        elif connection is not None:
            parent, trace_id = connection.context, connection.trace_id
            sampled = self._children_sampled(connection)
        else:
            trace_id = self._ids.generate_trace_id()
            sampled = self._sampled(None, trace_id, "statement", _CLIENT)
        if not sampled:
            return None
        span_id = self._ids.generate_span_id()
        return StatementSpan(trace_id, span_id, parent, describe(text), decision, identity)

    def _children_sampled(self, connection: LiveSpan) -> bool:
        sampled = connection.children_sampled
        if sampled is None:
            sampled = self._sampled(connection.context, connection.trace_id, "statement", _CLIENT)
            connection.children_sampled = sampled
        return sampled

    def _sampled(
        self, parent: SpanContext | None, trace_id: int, name: str, kind: SpanKind
    ) -> bool:
        context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else None
        return self._sampler.should_sample(context, trace_id, name, kind).decision.is_sampled()

    def end(self, span: StatementSpan, sqlstate: str, tag: str, ran: bool) -> None:
        """The statement's result; the span leaves for export, its attributes are made on
        the shipper's thread (in the event loop they cost about 15 µs per statement)."""
        self.shipper.add(
            _finished_statement, span, self._server, sqlstate, tag, ran, time.time_ns()
        )

    def end_connection(self, span: LiveSpan) -> None:
        if span.sampled:
            self.shipper.add(_finished_connection, span, time.time_ns())

    def shutdown(self) -> None:
        """Export what is queued (blocks: call it off the event loop)."""
        self.shipper.close()


def _finished_statement(
    span: StatementSpan,
    server: dict[str, str | int],
    sqlstate: str,
    tag: str,
    ran: bool,
    end: int,
) -> FinishedSpan:
    """A statement span as it is exported, with the database semantic conventions'
    attributes."""
    described, decision = span.described.resolve(), span.decision
    summary = described.summary or "statement"
    attributes: dict[str, Any] = {
        "db.system.name": "postgresql",
        "db.namespace": span.identity.database,
        "db.query.summary": summary,
        "db.query.text": described.text,
        "enduser.id": span.identity.user,
        "sqlguard.decision": str(decision.action),
        "sqlguard.rule": decision.rule_id,
        **server,
    }
    operation, _, collection = summary.partition(" ")
    attributes["db.operation.name"] = operation
    if collection and ";" not in summary:
        attributes["db.collection.name"] = collection
    if decision.approval is not None:
        attributes["sqlguard.approval.approver"] = decision.approval.approver
    if sqlstate:
        attributes["db.response.status_code"] = attributes["error.type"] = sqlstate
    rows = rows_in_tag(tag)
    if rows is not None:
        attributes["db.response.returned_rows"] = rows
    if not ran:
        attributes["sqlguard.skipped"] = True
    parent = span.parent
    return (
        summary,
        _CLIENT_KIND,
        span.trace_id,
        span.span_id,
        parent.span_id if parent else 0,
        parent.is_remote if parent else False,
        parent.trace_flags.sampled if parent else False,
        span.start,
        end,
        attributes,
        bool(sqlstate),
    )


def _finished_connection(span: LiveSpan, end: int) -> FinishedSpan:
    return (
        "connection",
        _SERVER_KIND,
        span.trace_id,
        span.span_id,
        0,
        False,
        False,
        span.start,
        end,
        span.attributes,
        False,
    )


def _application_context(text: bytes) -> SpanContext | None:
    """The application's trace, from a sqlcommenter comment `traceparent='00-...'`."""
    found = _TRACEPARENT.search(text)
    if found is None:
        return None
    carrier = {"traceparent": found.group(1).decode()}
    context = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier))
    span_context = context.get_span_context()
    return span_context if span_context.is_valid else None
