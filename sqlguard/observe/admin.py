"""The admin HTTP endpoint: health, readiness, metrics, reload and status on a separate port.

A deliberately tiny HTTP/1.1 server on asyncio streams: one request per connection
(``Connection: close``), headers capped at 8 KiB, every read and write under a timeout, and
anything it cannot parse answered with 400 and closed. It never needs a framework.

Routes:

================  ======  =====================================================================
``/healthz``      GET     200 ``ok`` while the process serves requests; never needs the token
``/readyz``       GET     200 or 503 with the reason (rules loaded, upstream reachable)
``/metrics``      GET     the Prometheus text format of ``SidecarMetrics``
``/reload``       POST    reload the rules: 200 ``{"ok": true, "version": ...}`` or 409
``/status``       GET     JSON from the ``status`` callable (version, rules, connections, ...)
================  ======  =====================================================================

Bound to a loopback address it is open to local processes; bound anywhere else it refuses to
start without a bearer token, and then every route but ``/healthz`` requires
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

# The admin server is an I/O edge like sqlguard.shell: it owns its own listening socket.
import asyncio  # noqa: TID251
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlguard.observe.metrics import CONTENT_TYPE, SidecarMetrics

log = logging.getLogger("sqlguard.admin")

MAX_HEAD = 8 * 1024
MAX_BODY = 1024  # /reload takes no body; a small one is read and ignored, a big one refused
REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip
ROUTES = {
    "/healthz": "GET",
    "/readyz": "GET",
    "/metrics": "GET",
    "/reload": "POST",
    "/status": "GET",
}
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


class BadRequest(Exception):
    """The request head is not HTTP/1.x we understand."""


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of a request head the routes need (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    """A whole answer; every one closes the connection, so there is no keep-alive to get wrong."""

    status: int
    body: bytes
    content_type: str = TEXT
    extra: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        head = [f"HTTP/1.1 {self.status} {REASONS[self.status]}"]
        head += [f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}"]
        head += ["Connection: close", "Cache-Control: no-store"]
        head += [f"{name}: {value}" for name, value in self.extra]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


def text(status: int, body: str) -> Response:
    return Response(status, (body + "\n").encode())


def as_json(status: int, value: object) -> Response:
    return Response(status, json.dumps(value, default=str, sort_keys=True).encode(), JSON)


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (RFC 9112 §3 and §5), strictly.

    >>> parse_head(b"GET /metrics?x=1 HTTP/1.1\\r\\nAuthorization: Bearer t\\r\\n\\r\\n")
    Request(method='GET', path='/metrics', headers={'authorization': 'Bearer t'})
    """
    lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
        raise BadRequest("malformed request line")
    method, target, version = parts
    if not target.startswith("/") or version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest("malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or not name.isprintable():
            raise BadRequest("malformed header line")
        headers[name.lower()] = value.strip()
    return Request(method, target.partition("?")[0], headers)


def is_loopback(host: str) -> bool:
    """Only addresses no other machine can reach count; a name other than localhost does not.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("")
    (True, True, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminServer:
    """Serves the admin routes for one sidecar; the callables are how it reaches the sidecar.

    ``status()`` returns the /status document and must include ``rules_version`` (what
    /reload reports); ``ready()`` says whether the sidecar can serve and, if not, why;
    ``reload()`` reloads the rules and says whether the new set was valid.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: str | None,
        metrics: SidecarMetrics,
        status: Callable[[], dict[str, Any]],
        ready: Callable[[], Awaitable[tuple[bool, str]]],
        reload: Callable[[], bool],
        timeout: float = 5.0,
    ) -> None:
        if not token and not is_loopback(host):
            raise ValueError(
                f"the admin endpoint binds to {host!r}, which is not a loopback address: "
                "set an admin token (bearer authentication) or bind it to 127.0.0.1"
            )
        self._host, self._requested_port, self._token = host, port, token or None
        self._metrics, self._status, self._ready, self._reload = metrics, status, ready, reload
        self._timeout = timeout
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._requested_port, limit=MAX_HEAD
        )
        log.info("admin endpoint on %s:%d", self._host, self.port)

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await self._answer(reader)
            writer.write(response.encode())
            await asyncio.wait_for(writer.drain(), self._timeout)
        except (OSError, TimeoutError):
            pass  # the client went away or stalled: nothing left to tell it
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> Response:
        """Read one request and route it; any failure becomes a response, never a crash."""
        try:
            request = await asyncio.wait_for(self._read(reader), self._timeout)
        except asyncio.LimitOverrunError:
            return text(431, "request head too large")
        except (BadRequest, asyncio.IncompleteReadError, ValueError) as exc:
            return text(400, f"bad request: {exc}")
        except TimeoutError:
            return text(408, "request timed out")
        try:
            return await self._route(request)
        except Exception:
            log.exception("admin request %s %s failed", request.method, request.path)
            return text(500, "internal error (see the sidecar log)")

    async def _read(self, reader: asyncio.StreamReader) -> Request:
        request = parse_head(await reader.readuntil(b"\r\n\r\n"))
        if "transfer-encoding" in request.headers:
            raise BadRequest("chunked bodies are not accepted")
        length = int(request.headers.get("content-length", "0"))
        if not 0 <= length <= MAX_BODY:
            raise BadRequest("body too large")
        await reader.readexactly(length)  # read, so closing cannot reset the connection
        return request

    async def _route(self, request: Request) -> Response:
        if request.path != "/healthz" and not self._authorized(request):
            return Response(
                401, b"bearer token required\n", extra=(("WWW-Authenticate", "Bearer"),)
            )
        method = ROUTES.get(request.path)
        if method is None:
            return text(404, "not found")
        if request.method != method:
            return Response(405, b"method not allowed\n", extra=(("Allow", method),))
        return await self._handle(request.path)

    async def _handle(self, path: str) -> Response:
        if path == "/healthz":
            return text(200, "ok")
        if path == "/readyz":
            return await self._readiness()
        if path == "/metrics":
            return Response(200, self._metrics.render(), CONTENT_TYPE)
        if path == "/reload":
            return self._reloaded()
        return as_json(200, self._status())

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        # Constant-time comparison: response timing must not reveal how much of a guess matched.
        same = hmac.compare_digest(credentials.strip().encode(), self._token.encode())
        return scheme.lower() == "bearer" and same

    async def _readiness(self) -> Response:
        try:
            ok, reason = await asyncio.wait_for(self._ready(), self._timeout)
        except TimeoutError:
            return text(503, "readiness check timed out")
        return text(200 if ok else 503, reason)

    def _reloaded(self) -> Response:
        ok = self._reload()
        version = self._status().get("rules_version")
        if ok:
            return as_json(200, {"ok": True, "version": version})
        error = f"the new rules are invalid; version {version} stays active (see the sidecar log)"
        return as_json(409, {"ok": False, "version": version, "error": error})
