"""A stand-in OpenTelemetry collector: answers 200 to every POST and counts what it got.

The benchmark runs the sidecar with tracing on, as production would, and a real exporter
needs somewhere to send its spans. A collector is one more process competing for the CPUs;
this sink does the least a receiver can (read the body, answer 200), so the cost measured is
the sidecar's: building spans, batching them and sending them over HTTP. Tests ask it to
keep the bodies (`keep=True`) and read what arrived, as a collector would.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as a collector offers: the exporter reuses its connection between batches.
    protocol_version = "HTTP/1.1"
    server: _CountingServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.count(body, {name.lower(): value for name, value in self.headers.items()})
        # An empty body is a valid, empty ExportTraceServiceResponse.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Silent: one stderr line per export would drown the benchmark's progress."""


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, keep: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self._keep = keep
        self.requests = 0
        self.bytes = 0
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []

    def count(self, body: bytes, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += len(body)
            if self._keep:
                self.bodies.append(_DECODERS[headers.get("content-encoding", "")](body))
                self.headers.append(headers)


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda body: body,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}


class OtlpSink:
    """Runs in a daemon thread of this process for as long as the `with` block lasts."""

    def __init__(self, keep: bool = False) -> None:
        self._server = _CountingServer(keep)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint(self) -> str:
        """For OTEL_EXPORTER_OTLP_ENDPOINT; the exporter appends /v1/traces."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def received(self) -> tuple[int, int]:
        """(requests, body bytes) so far: proof that spans really left the sidecar."""
        return self._server.requests, self._server.bytes

    @property
    def bodies(self) -> list[bytes]:
        """The request bodies, uncompressed (with `keep=True`)."""
        return list(self._server.bodies)

    @property
    def headers(self) -> list[dict[str, str]]:
        """Each request's headers, names in lower case (with `keep=True`)."""
        return list(self._server.headers)
