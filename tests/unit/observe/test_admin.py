"""AdminServer over real loopback sockets: every route, the token, and garbage requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sqlguard.observe.admin import AdminServer, parse_head
from sqlguard.observe.metrics import SidecarMetrics
from sqlguard.policy.model import Action, Decision

Reply = tuple[int, dict[str, str], bytes]


class FakeSidecar:
    """Stands in for the Sidecar: the state the admin callables expose."""

    def __init__(self) -> None:
        self.metrics = SidecarMetrics(rules_version="v1")
        self.version = "v1"
        self.next_reload_ok = True
        self.upstream_up = True

    def status(self) -> dict[str, Any]:
        return {"version": "0.1.0", "rules_version": self.version, "connections": {"alice": 1}}

    async def ready(self) -> tuple[bool, str]:
        return (True, "ready") if self.upstream_up else (False, "upstream unreachable")

    def reload(self) -> bool:
        if self.next_reload_ok:
            self.version = "v2"
        return self.next_reload_ok


def serve(test: Callable[[AdminServer, FakeSidecar], Awaitable[None]], **options: Any) -> None:
    """Run `test` against a started server on 127.0.0.1 with an ephemeral port."""
    sidecar = FakeSidecar()

    async def main() -> None:
        callables = {"status": sidecar.status, "ready": sidecar.ready, "reload": sidecar.reload}
        settings = {"token": None, "timeout": 1.0, **callables, **options}
        server = AdminServer("127.0.0.1", 0, metrics=sidecar.metrics, **settings)
        await server.start()
        try:
            await asyncio.wait_for(test(server, sidecar), 5)
        finally:
            await server.stop()

    asyncio.run(main())


async def send(server: AdminServer, raw: bytes) -> Reply:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split(" ")[1]), headers, body


async def get(server: AdminServer, path: str, method: str = "GET", token: str = "") -> Reply:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return await send(server, f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())


def test_every_route() -> None:
    async def check(server: AdminServer, sidecar: FakeSidecar) -> None:
        status, found, body = await get(server, "/healthz")
        assert (status, found["connection"], body) == (200, "close", b"ok\n")
        assert (await get(server, "/readyz"))[::2] == (200, b"ready\n")
        sidecar.upstream_up = False
        assert (await get(server, "/readyz"))[::2] == (503, b"upstream unreachable\n")
        status, found, body = await get(server, "/status")
        assert (status, found["content-type"]) == (200, "application/json")
        assert json.loads(body)["connections"] == {"alice": 1}
        assert (await get(server, "/nowhere"))[0] == 404
        assert (await get(server, "/reload"))[0] == 405

    serve(check)


def test_reload_reports_the_version_or_the_conflict() -> None:
    async def check(server: AdminServer, sidecar: FakeSidecar) -> None:
        status, _, body = await get(server, "/reload", "POST")
        assert (status, json.loads(body)) == (200, {"ok": True, "version": "v2"})
        sidecar.next_reload_ok = False
        status, _, body = await get(server, "/reload", "POST")
        assert status == 409
        assert json.loads(body)["version"] == "v2" and "invalid" in json.loads(body)["error"]

    serve(check)


def test_metrics_parse_and_match_what_was_recorded() -> None:
    async def check(server: AdminServer, sidecar: FakeSidecar) -> None:
        sidecar.metrics.login("alice", ok=True)
        for _ in range(3):
            sidecar.metrics.statement(Decision(Action.deny, "no-ddl", "m", "d", "h"), None, 1e-4)
        status, headers, body = await get(server, "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        values = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }
        assert values[("sqlguard_refusals_total", (("rule", "no-ddl"),))] == 3
        assert values[("sqlguard_logins_total", (("result", "ok"), ("user", "alice")))] == 1
        assert values[("sqlguard_rules_info", (("version", "v1"),))] == 1

    serve(check)


def test_token_is_required_except_for_healthz() -> None:
    async def check(server: AdminServer, sidecar: FakeSidecar) -> None:
        status, headers, _ = await get(server, "/metrics")
        assert (status, headers["www-authenticate"]) == (401, "Bearer")
        assert (await get(server, "/status", token="wrong"))[0] == 401
        assert (await get(server, "/reload", "POST"))[0] == 401
        assert sidecar.version == "v1"
        assert (await get(server, "/metrics", token="s3cret"))[0] == 200
        assert (await get(server, "/healthz"))[0] == 200

    serve(check, token="s3cret")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "admin.example", ""])
def test_non_loopback_without_token_is_refused(host: str) -> None:
    sidecar = FakeSidecar()
    with pytest.raises(ValueError, match="not a loopback address"):
        AdminServer(
            host,
            0,
            token=None,
            metrics=sidecar.metrics,
            status=sidecar.status,
            ready=sidecar.ready,
            reload=sidecar.reload,
        )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x16\x03\x01\x00\xa5garbage\r\n\r\n", 400),
        (b"GET /healthz\r\n\r\n", 400),
        (b"GET /healthz HTTP/2\r\n\r\n", 400),
        (b"GET healthz HTTP/1.1\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"POST /reload HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\n", 400),  # the client closes before the head ends
    ],
)
def test_garbage_gets_an_error_and_the_server_keeps_serving(raw: bytes, expected: int) -> None:
    async def check(server: AdminServer, sidecar: FakeSidecar) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(raw)
        writer.write_eof()
        reply = await reader.read()
        writer.close()
        assert reply.startswith(f"HTTP/1.1 {expected} ".encode())
        assert (await get(server, "/healthz"))[0] == 200

    serve(check)


def test_a_silent_client_times_out() -> None:
    async def check(server: AdminServer, sidecar: FakeSidecar) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        reply = await reader.read()
        writer.close()
        assert reply.startswith(b"HTTP/1.1 408 ")

    serve(check, timeout=0.2)


def test_a_failing_callable_gives_500_not_a_crash() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    async def check(server: AdminServer, sidecar: FakeSidecar) -> None:
        assert (await get(server, "/status"))[0] == 500
        assert (await get(server, "/healthz"))[0] == 200

    serve(check, status=broken)


def test_parse_head_ignores_the_query_string() -> None:
    assert parse_head(b"GET /metrics?debug=1 HTTP/1.0\r\n\r\n").path == "/metrics"
