"""OpenTelemetry spans for connections and statements (database semantic conventions).

Tracing is off unless the standard `OTEL_TRACES_EXPORTER` says otherwise (`console`, or
`otlp` with the `otlp` extra installed): a sidecar must not slow down, or hang on exit,
because no collector is reachable. A statement span starts when the statement goes
upstream (or is refused in its place) and ends when its result is complete; it joins the
application's trace when the statement carries a sqlcommenter `traceparent` comment.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sqlguard.analysis.describe import Description
from sqlguard.policy.model import Decision, Identity
from sqlguard.wire.messages import rows_in_tag

log = logging.getLogger("sqlguard.tracing")

_TRACEPARENT = re.compile(
    rb"traceparent\s*=\s*'([0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})'"
)


def provider_from_environment() -> TracerProvider | None:
    """The provider `OTEL_TRACES_EXPORTER` asks for; None (no tracing) by default."""
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    exporter: SpanExporter
    if choice in ("", "none"):
        return None
    if choice == "console":
        exporter = ConsoleSpanExporter()
    elif choice == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.error(
                "OTEL_TRACES_EXPORTER=otlp needs: pip install 'sqlguard[otlp]'; tracing is off"
            )
            return None
        exporter = OTLPSpanExporter()
    else:
        log.error(
            "unknown OTEL_TRACES_EXPORTER %r (use none, console or otlp); tracing is off", choice
        )
        return None
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class StatementTracer:
    """Starts and ends the spans of one sidecar."""

    def __init__(self, provider: TracerProvider, server_address: str, server_port: int) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("sqlguard")
        self._server = {"server.address": server_address, "server.port": server_port}

    def connection(self, identity: Identity, tls_version: str | None = None) -> Span:
        """The client connection's span; ``tls.protocol.version`` (e.g. ``1.3``) if TLS."""
        tls = (
            {"tls.protocol.name": "tls", "tls.protocol.version": tls_version} if tls_version else {}
        )
        return self._tracer.start_span(
            "connection",
            kind=SpanKind.SERVER,
            attributes={
                "enduser.id": identity.user,
                "db.namespace": identity.database,
                "client.address": identity.client_addr,
                **tls,
                **self._server,
            },
        )

    def statement(
        self,
        text: bytes,
        describe: Callable[[bytes], Description],
        decision: Decision,
        identity: Identity,
        connection: Span | None,
    ) -> Span:
        """The statement's span. Its name and attributes are filled in only if it is
        recorded: with a ratio sampler most spans are not, and describing the statement
        for nothing would cost more than the span."""
        parent = _application_context(text) or (
            trace.set_span_in_context(connection) if connection else None
        )
        span = self._tracer.start_span("statement", context=parent, kind=SpanKind.CLIENT)
        if span.is_recording():
            described = describe(text)
            summary = described.summary or "statement"
            span.update_name(summary)
            span.set_attributes(self._attributes(described, decision, identity, summary))
        return span

    def _attributes(
        self,
        described: Description,
        decision: Decision,
        identity: Identity,
        summary: str,
    ) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {
            "db.system.name": "postgresql",
            "db.namespace": identity.database,
            "db.query.summary": summary,
            "db.query.text": described.text,
            "enduser.id": identity.user,
            "sqlguard.decision": str(decision.action),
            "sqlguard.rule": decision.rule_id,
            **self._server,
        }
        operation, _, collection = summary.partition(" ")
        attributes["db.operation.name"] = operation
        if collection and ";" not in summary:
            attributes["db.collection.name"] = collection
        if decision.approval is not None:
            attributes["sqlguard.approval.approver"] = decision.approval.approver
        return attributes

    @staticmethod
    def end(span: Span, sqlstate: str, tag: str, ran: bool) -> None:
        """Result attributes in one call (each call takes the span's lock), then end it."""
        attributes: dict[str, str | int | bool] = {}
        if sqlstate:
            attributes["db.response.status_code"] = attributes["error.type"] = sqlstate
            span.set_status(Status(StatusCode.ERROR))
        rows = rows_in_tag(tag)
        if rows is not None:
            attributes["db.response.returned_rows"] = rows
        if not ran:
            attributes["sqlguard.skipped"] = True
        if attributes:
            span.set_attributes(attributes)
        span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()


def _application_context(text: bytes) -> Context | None:
    """The application's trace, from a sqlcommenter comment `traceparent='00-...'`."""
    found = _TRACEPARENT.search(text)
    if found is None:
        return None
    carrier = {"traceparent": found.group(1).decode()}
    return TraceContextTextMapPropagator().extract(carrier)
