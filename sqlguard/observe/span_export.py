"""Finished spans leave the proxy's process: batched on a thread, exported by a child process.

Measured on pgbench -S (benchmarks/cost_breakdown.py): with the SDK's BatchSpanProcessor
and OTLP exporter in the sidecar's process, every statement span cost about 90 µs of SDK
bookkeeping on the event loop plus about 150 µs of protobuf encoding on the exporter thread,
which holds the GIL the event loop needs, so tracing every statement more than halved
throughput. Here a finished span is queued as its recipe, a function and its arguments,
appended to a deque (under a microsecond); a thread takes batches off it, makes them into
tuples of plain values (``FinishedSpan``) and hands them to a ``Deliver`` callable. In
production that writes the batch, marshalled, to the stdin of ``python -m
sqlguard.observe.span_export``, which runs the exporter ``OTEL_TRACES_EXPORTER`` names with
the SDK's own configuration from the environment (endpoint, headers, resource, timeouts):
for OTLP it writes the protobuf request itself (``otlp_encode``) and hands it to the
exporter's HTTP client; for the console it rebuilds SDK ``ReadableSpan`` objects. Encoding
and network waits run on another CPU. Tests and embedders deliver in-process to any
``SpanExporter``.

Nothing here may slow a statement: when the queue is full (the exporter is down or slower
than the traffic), new spans are dropped and counted, as the SDK's batch processor does. A
child that dies is restarted, at most once per ``RESTART_INTERVAL``; batches meanwhile are
dropped and counted. At shutdown the queue is flushed and the child gets until
``SHUTDOWN_TIMEOUT`` to export what it holds.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from sqlguard.observe.helpers import finish, helper_command, helper_setup
from sqlguard.observe.otlp_encode import SpanEncoder
from sqlguard.observe.pipes import read_frames, write_frame

log = logging.getLogger("sqlguard.tracing")

# (name, kind, trace_id, span_id, parent_id or 0, parent_is_remote, parent_sampled,
#  start_ns, end_ns, attributes, failed): only values marshal can carry.
FinishedSpan = tuple[str, int, int, int, int, bool, bool, int, int, dict[str, Any], bool]
Deliver = Callable[[list[FinishedSpan]], None]
# A span as queued: what makes its FinishedSpan, and with what (built on the shipper's thread).
Recipe = tuple[Callable[..., FinishedSpan], tuple[Any, ...]]

EXPORTERS = ("none", "console", "otlp")
OTLP_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
RESTART_INTERVAL = 10.0
SHUTDOWN_TIMEOUT = 10.0
_SCOPE = InstrumentationScope("sqlguard")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OK, _ERROR = Status(StatusCode.UNSET), Status(StatusCode.ERROR)


class ExporterUnavailable(Exception):
    """A batch could not be handed over (the reason was logged once, where it arose)."""


def _env_number(name: str, default: float) -> float:
    """An OTEL_BSP_* setting; a malformed one is reported and replaced by the default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        log.error("%s=%r is not a positive number; using %s", name, raw, default)
        return default
    return value


class SpanShipper:
    """Finished spans, batched off the event loop. The batching settings are the SDK's batch
    processor's (``OTEL_BSP_SCHEDULE_DELAY`` ms, ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``,
    ``OTEL_BSP_MAX_QUEUE_SIZE``) unless given."""

    def __init__(
        self,
        deliver: Deliver,
        *,
        delay: float | None = None,
        batch_size: int | None = None,
        queue_size: int | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._deliver = deliver
        self._on_close = on_close
        self._delay = delay or _env_number("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self._batch_size = batch_size or int(_env_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
        self._queue_size = queue_size or int(_env_number("OTEL_BSP_MAX_QUEUE_SIZE", 2048))
        self._queue: deque[Recipe] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="sqlguard-spans", daemon=True)
        self._thread.start()

    def add(self, build: Callable[..., FinishedSpan], *args: Any) -> None:
        """On the event loop: one append of the span's recipe, ``build(*args)``, made into a
        FinishedSpan on the shipper's thread with the rest of its batch (``args`` must not
        change afterwards); a wake-up only when a batch is full."""
        queue = self._queue
        if len(queue) >= self._queue_size:
            self.dropped += 1
            return
        queue.append((build, args))
        if len(queue) == self._batch_size:
            self._wake.set()

    def close(self) -> None:
        """Flush what is queued and stop (blocks: call it off the event loop)."""
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._ship()
        self._ship()
        if self._on_close is not None:
            self._on_close()

    def _ship(self) -> None:
        queue = self._queue
        while queue:
            recipes = [queue.popleft() for _ in range(min(len(queue), self._batch_size))]
            try:
                self._deliver([build(*args) for build, args in recipes])
            except ExporterUnavailable:
                self.dropped += len(recipes)
            except Exception:
                self.dropped += len(recipes)
                log.exception("exporting %d spans failed; they are dropped", len(recipes))


class ExporterProcess:
    """The child that exports: a ``Deliver`` writing length-prefixed marshalled batches to
    its stdin. Started on the first batch, restarted if it died."""

    def __init__(self, log_level: str = "WARNING", log_format: str = "json") -> None:
        self._command = helper_command(__name__, log_level, log_format)
        self._child: subprocess.Popen[bytes] | None = None
        self._started = -RESTART_INTERVAL

    def __call__(self, batch: list[FinishedSpan]) -> None:
        pipe = self._pipe()
        if pipe is None:
            raise ExporterUnavailable()
        try:
            write_frame(pipe, batch)
        except OSError as error:
            self._child_died(error)
            raise ExporterUnavailable() from error

    def close(self) -> None:
        """End of input: the child exports what it holds and exits."""
        child, self._child = self._child, None
        if child is not None:
            finish(child, SHUTDOWN_TIMEOUT)

    def _pipe(self) -> IO[bytes] | None:
        child = self._child
        if child is not None and child.poll() is None:
            return child.stdin
        if child is not None:
            self._child_died(None)
        now = time.monotonic()
        if now - self._started < RESTART_INTERVAL:
            return None
        self._started = now
        self._child = subprocess.Popen(self._command, stdin=subprocess.PIPE)
        return self._child.stdin

    def _child_died(self, error: OSError | None) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        finish(child, SHUTDOWN_TIMEOUT)  # it ended or stopped reading: reap it
        code = child.returncode
        log.error(
            "the span exporter process ended (exit status %s%s); spans are dropped until it is "
            "restarted (within %d s)",
            code,
            f", {error}" if error else "",
            RESTART_INTERVAL,
        )


def in_process(exporter: SpanExporter) -> Deliver:
    """Deliver to ``exporter`` on the shipper's thread (tests, embedding)."""
    resource = Resource.create()

    def deliver(batch: list[FinishedSpan]) -> None:
        exporter.export(readable_spans(batch, resource))

    return deliver


def readable_spans(batch: Sequence[FinishedSpan], resource: Resource) -> list[ReadableSpan]:
    """The SDK's span objects for finished span tuples: what every SDK exporter takes."""
    spans = []
    for (
        name,
        kind,
        trace_id,
        span_id,
        parent_id,
        parent_remote,
        parent_sampled,
        start,
        end,
        attributes,
        failed,
    ) in batch:
        parent = None
        if parent_id:
            flags = _SAMPLED if parent_sampled else TraceFlags(TraceFlags.DEFAULT)
            parent = SpanContext(trace_id, parent_id, parent_remote, flags)
        spans.append(
            ReadableSpan(
                name=name,
                context=SpanContext(trace_id, span_id, False, _SAMPLED),
                parent=parent,
                resource=resource,
                attributes=attributes,
                kind=SpanKind(kind),
                status=_ERROR if failed else _OK,
                start_time=start,
                end_time=end,
                instrumentation_scope=_SCOPE,
            )
        )
    return spans


def exporter_choice() -> str | None:
    """What ``OTEL_TRACES_EXPORTER`` asks for, if it can be done: "console", "otlp" or None
    (tracing off: the default, so a sidecar never slows down or hangs on exit because no
    collector is reachable)."""
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if choice in ("", "none"):
        return None
    if choice not in EXPORTERS:
        log.error(
            "unknown OTEL_TRACES_EXPORTER %r (use none, console or otlp); tracing is off", choice
        )
        return None
    if choice == "otlp" and not otlp_installed():
        log.error("OTEL_TRACES_EXPORTER=otlp needs: pip install 'sqlguard[otlp]'; tracing is off")
        return None
    return choice


def otlp_installed() -> bool:
    """Is the OTLP exporter (`sqlguard[otlp]`) installed?"""
    try:
        return importlib.util.find_spec(OTLP_MODULE) is not None
    except ModuleNotFoundError:
        return False


def _exporter(choice: str) -> SpanExporter:
    if choice == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _otlp_sender(exporter: SpanExporter) -> Deliver:
    """How the exporter process hands a batch to the OTLP exporter: the request is encoded
    here (``otlp_encode``: 4 µs a span against the SDK encoder's 130, the same bytes) and
    given to the exporter's HTTP client, which still does the endpoint, headers, compression,
    TLS, timeouts and retries as the OTEL_EXPORTER_OTLP_* settings say. That client is not
    public API: an exporter version without it gets the SDK's span objects, as the console
    exporter does."""
    client = getattr(exporter, "_client", None)
    if client is None or not callable(getattr(client, "export", None)):
        log.warning(
            "this opentelemetry-exporter-otlp-proto-http has no HTTP client to hand "
            "encoded spans to; the SDK encodes them (about 130 µs a span)"
        )
        return in_process(exporter)
    encoder = SpanEncoder(Resource.create().attributes, _SCOPE.name)

    def send(batch: list[FinishedSpan]) -> None:
        client.export(encoder.request(batch))

    return send


def main(argv: Sequence[str] | None = None) -> int:
    """The exporter process: batches from stdin to the exporter, until stdin closes."""
    helper_setup(__name__, argv)
    choice = exporter_choice()
    exporter = _exporter(choice) if choice else None
    send: Deliver | None = None
    if exporter is not None:
        send = _otlp_sender(exporter) if choice == "otlp" else in_process(exporter)
    for batch in read_frames(sys.stdin.buffer):
        if send is not None:
            send(batch)
    if exporter is not None:
        exporter.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
