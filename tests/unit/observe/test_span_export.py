"""Finished spans: batching off the event loop, the SDK span objects they become, and the
exporter child process (a real one, with the console exporter)."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sqlguard.observe import span_export
from sqlguard.observe.span_export import (
    ExporterProcess,
    ExporterUnavailable,
    FinishedSpan,
    SpanShipper,
    exporter_choice,
    in_process,
    readable_spans,
)
from sqlguard.testing.otlp_sink import OtlpSink

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736


def finished(name: str = "SELECT items", parent: int = 0, failed: bool = False) -> FinishedSpan:
    attributes = {"db.system.name": "postgresql", "db.response.returned_rows": 3}
    return (
        name,
        SpanKind.CLIENT.value,
        TRACE_ID,
        7,
        parent,
        True,
        True,
        100,
        250,
        attributes,
        failed,
    )


def test_readable_spans_carry_everything_an_exporter_reads() -> None:
    resource = Resource.create({"service.name": "sidecar-test"})
    child, root = readable_spans(
        [finished(parent=5, failed=True), finished("connection")], resource
    )
    assert child.name == "SELECT items" and child.kind is SpanKind.CLIENT
    assert child.context is not None and child.context.trace_id == TRACE_ID
    assert child.context.span_id == 7 and child.context.trace_flags.sampled
    assert child.parent is not None and child.parent.span_id == 5 and child.parent.is_remote
    assert child.status.status_code is StatusCode.ERROR
    assert (child.start_time, child.end_time) == (100, 250)
    assert dict(child.attributes or {})["db.response.returned_rows"] == 3
    assert child.resource.attributes["service.name"] == "sidecar-test"
    assert child.instrumentation_scope is not None
    assert child.instrumentation_scope.name == "sqlguard"
    assert root.parent is None and root.status.status_code is StatusCode.UNSET


def test_shipper_batches_and_flushes_at_close() -> None:
    batches: list[list[FinishedSpan]] = []
    shipper = SpanShipper(batches.append, delay=60, batch_size=3, queue_size=100)
    for _ in range(7):
        shipper.add(finished)
    deadline = time.monotonic() + 10
    while len(batches) < 2 and time.monotonic() < deadline:  # two full batches wake it
        time.sleep(0.01)
    shipper.close()
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert shipper.dropped == 0


def test_a_full_queue_drops_and_counts_instead_of_waiting() -> None:
    delivering, release = threading.Event(), threading.Event()

    def stuck(batch: list[FinishedSpan]) -> None:
        delivering.set()
        release.wait(10)

    shipper = SpanShipper(stuck, delay=0.01, batch_size=2, queue_size=4)
    for _ in range(2):
        shipper.add(finished)
    assert delivering.wait(10)  # the thread took that batch and is stuck delivering it
    for _ in range(10):
        shipper.add(finished)
    assert shipper.dropped == 6
    release.set()
    shipper.close()


def test_a_failing_delivery_loses_its_batch_only(caplog: pytest.LogCaptureFixture) -> None:
    delivered: list[int] = []

    def flaky(batch: list[FinishedSpan]) -> None:
        if not delivered:
            delivered.append(0)
            raise ConnectionError("collector went away")
        delivered.append(len(batch))

    shipper = SpanShipper(flaky, delay=60, batch_size=2, queue_size=100)
    for _ in range(4):
        shipper.add(finished)
    shipper.close()
    assert delivered == [0, 2] and shipper.dropped == 2
    assert "exporting 2 spans failed" in caplog.text


def test_in_process_delivery_reaches_the_exporter() -> None:
    exporter = InMemorySpanExporter()
    shipper = SpanShipper(in_process(exporter), delay=60, on_close=exporter.shutdown)
    shipper.add(finished)
    shipper.close()
    (span,) = exporter.get_finished_spans()
    assert span.name == "SELECT items"


@pytest.mark.parametrize(
    ("value", "choice"), [("", None), ("none", None), ("Console", "console"), ("jaeger", None)]
)
def test_exporter_choice(monkeypatch: pytest.MonkeyPatch, value: str, choice: str | None) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert exporter_choice() == choice


def test_the_exporter_process_exports_until_its_input_ends(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    process = ExporterProcess()
    process([finished("first")])
    process([finished("second"), finished("third")])
    process.close()
    printed = capfd.readouterr().out
    names = [json.loads(span)["name"] for span in _json_objects(printed)]
    assert names == ["first", "second", "third"]


def test_the_exporter_process_sends_otlp_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over real HTTP to a stand-in collector: the request sqlguard encodes goes through the
    OTLP exporter's client, which applies the OTEL_EXPORTER_OTLP_* settings."""
    with OtlpSink(keep=True) as sink:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=dba")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "sidecar-test")
        process = ExporterProcess()
        process([finished("first", parent=5)])
        process([finished("second"), finished("third", failed=True)])
        process.close()
        requests = [ExportTraceServiceRequest.FromString(body) for body in sink.bodies]
        headers = sink.headers
    assert [header["content-encoding"] for header in headers] == ["gzip", "gzip"]
    assert all(header["x-team"] == "dba" for header in headers)
    resources = [request.resource_spans[0] for request in requests]
    service = {kv.key: kv.value.string_value for kv in resources[0].resource.attributes}
    assert service["service.name"] == "sidecar-test"
    spans = [span for rs in resources for span in rs.scope_spans[0].spans]
    assert [span.name for span in spans] == ["first", "second", "third"]
    assert spans[0].parent_span_id == (5).to_bytes(8, "big")
    assert spans[2].status.code == Status.STATUS_CODE_ERROR
    assert {kv.key: kv.value.int_value for kv in spans[1].attributes}[
        "db.response.returned_rows"
    ] == 3


def test_otlp_batches_skip_the_sdks_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slow SDK encoder is not on the path (an exporter version without the client it
    needs would log a warning and use it)."""
    from opentelemetry.exporter.otlp.proto.http import trace_exporter

    def unused(spans: object) -> None:
        raise AssertionError("the SDK's encoder ran")

    monkeypatch.setattr(trace_exporter, "encode_spans", unused)
    with OtlpSink(keep=True) as sink:
        exporter = trace_exporter.OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")
        span_export._otlp_sender(exporter)([finished("direct")])
        exporter.shutdown()
        (body,) = sink.bodies
    spans = ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans
    assert [span.name for span in spans] == ["direct"]


def test_a_dead_exporter_process_is_reported_and_restarted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setattr(span_export, "RESTART_INTERVAL", 0.5)
    process = ExporterProcess()
    process([finished()])
    child = process._child
    assert child is not None
    child.kill()
    child.wait()
    with caplog.at_level(logging.ERROR), pytest.raises(ExporterUnavailable):
        process([finished()])  # restarting again at once is not allowed
    assert "the span exporter process ended" in caplog.text
    time.sleep(0.6)
    process([finished()])
    assert process._child is not None and process._child.poll() is None
    process.close()


def _json_objects(text: str) -> list[str]:
    """ConsoleSpanExporter prints indented JSON objects one after another."""
    objects, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "{":
            depth, start = depth + 1, index if depth == 0 else start
        elif char == "}":
            depth -= 1
            if depth == 0:
                objects.append(text[start : index + 1])
    return objects
