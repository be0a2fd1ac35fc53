"""Alerter against a real loopback HTTP server: what arrives, what is limited, what is dropped."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from sqlguard.config import ConfigError
from sqlguard.observe.alerts import Alerter, BurstDetector
from sqlguard.observe.alerts_config import AlertSettings, alert_settings
from sqlguard.policy.model import Action, Decision, Identity

ALICE = Identity("alice", "app", client_addr="10.0.0.7")


def deny(rule: str = "no-drop") -> Decision:
    return Decision(Action.deny, rule, f"refused by {rule}", "detail", "hint")


class Webhook:
    """A loopback HTTP server that records every POST body and answers ``status``."""

    def __init__(self, status: int = 204, hang: bool = False) -> None:
        self.bodies: list[Any] = []
        self.status, self.hang = status, hang
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook/secret"

    async def __aenter__(self) -> Webhook:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if self.hang:
                await asyncio.sleep(3600)
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )  # fmt: skip
            assert head.startswith(b"POST /hook/secret HTTP/1.1\r\n")
            self.bodies.append(json.loads(await reader.readexactly(length)))
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 5))


async def settle(alerter: Alerter) -> None:
    """Wait until the sender has finished with everything queued."""
    await asyncio.wait_for(alerter._queue.join(), 3)


def make(url: str, **kw: Any) -> tuple[Alerter, list[int]]:
    failures: list[int] = []
    settings = AlertSettings(url, timeout=kw.pop("timeout", 1.0), **kw)
    alerter = Alerter(settings, on_failure=lambda: failures.append(1), backoff=0.01)
    return alerter, failures


def test_refusals_arrive_with_rule_user_and_statement() -> None:
    async def main() -> None:
        async with Webhook() as hook:
            alerter, failures = make(hook.url)
            alerter.start()
            alerter.refused(deny(), ALICE, "DROP TABLE users")
            await settle(alerter)
            await alerter.stop()
        (body,) = hook.bodies
        assert body["event"] == "refused" and body["rule"] == "no-drop"
        assert (body["user"], body["database"], body["client_addr"]) == ("alice", "app", "10.0.0.7")
        assert body["message"] == "refused by no-drop" and body["statement"] == "DROP TABLE users"
        assert body["time"].endswith("+00:00") and failures == []

    run(main)


def test_rate_limit_per_rule_and_suppressed_count() -> None:
    now = [0.0]

    async def main() -> None:
        async with Webhook() as hook:
            alerter, _ = make(hook.url, rate_per_rule=5, window=60)
            alerter._clock = lambda: now[0]
            alerter.start()
            for _ in range(20):
                alerter.refused(deny("a"), ALICE, "x")
            alerter.refused(deny("b"), ALICE, "y")
            await settle(alerter)
            assert [b["rule"] for b in hook.bodies] == ["a"] * 5 + ["b"]
            now[0] = 61.0
            alerter.refused(deny("a"), ALICE, "x")
            await settle(alerter)
            await alerter.stop()
        assert hook.bodies[-1]["message"] == "refused by a (+15 suppressed)"
        assert "suppressed" not in hook.bodies[0]["message"]

    run(main)


def test_failed_login_burst_gives_exactly_one_alert() -> None:
    async def main() -> None:
        async with Webhook() as hook:
            alerter, _ = make(hook.url, failed_login_burst=5)
            alerter.start()
            for _ in range(4):
                alerter.login_failed("mallory", "10.0.0.9")
            await asyncio.sleep(0.05)
            assert hook.bodies == []
            for _ in range(8):
                alerter.login_failed("mallory", "10.0.0.9")
            await settle(alerter)
            await alerter.stop()
        (body,) = hook.bodies
        assert body["event"] == "failed_login_burst" and body["user"] == "mallory"
        assert body["client_addr"] == "10.0.0.9" and "5 failed logins" in body["message"]

    run(main)


def test_approval_use_and_slack_format() -> None:
    async def main() -> None:
        async with Webhook() as hook:
            alerter, _ = make(hook.url, format="slack")
            alerter.start()
            alerter.approval_used(ALICE, "bob", "ab12cd")
            alerter.refused(deny(), ALICE, "DELETE FROM t WHERE a < 1")
            await settle(alerter)
            await alerter.stop()
        assert [set(b) for b in hook.bodies] == [{"text"}, {"text"}]
        approval, refusal = (b["text"] for b in hook.bodies)
        assert "approval_used" in approval and "bob" in approval and "ab12cd" in approval
        assert refusal.startswith("sqlguard refused [no-drop] alice@app from 10.0.0.7")
        assert "a &lt; 1" in refusal  # Slack's control characters are escaped

    run(main)


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dead_webhook_does_not_slow_statements_and_failures_are_counted() -> None:
    async def main() -> None:
        alerter, failures = make(f"http://127.0.0.1:{dead_port()}/x", retries=2)
        alerter.start()
        started = time.perf_counter()
        for i in range(1000):  # synchronous calls: none of them can await the network
            alerter.refused(deny(f"r{i}"), ALICE, "x")
        assert time.perf_counter() - started < 0.25  # ~20 ms here; the bound is for slow CI
        assert alerter.pending == 1000
        await alerter.stop()
        small, failures = make(f"http://127.0.0.1:{dead_port()}/x", retries=2)
        small.start()
        small.refused(deny(), ALICE, "x")
        await settle(small)
        await small.stop()
        assert failures == [1]  # counted once, after the first try and two retries

    run(main)


def test_hanging_webhook_times_out_and_is_counted() -> None:
    async def main() -> None:
        async with Webhook(hang=True) as hook:
            alerter, failures = make(hook.url, retries=1, timeout=0.1)
            alerter.start()
            started = time.perf_counter()
            alerter.refused(deny(), ALICE, "x")
            assert time.perf_counter() - started < 0.01
            await settle(alerter)
            await alerter.stop()
        assert failures == [1]

    run(main)


def test_server_errors_are_retried_then_counted_and_full_queue_drops() -> None:
    async def main() -> None:
        async with Webhook(status=503) as hook:
            alerter, failures = make(hook.url, retries=2)
            alerter.start()
            alerter.refused(deny(), ALICE, "x")
            await settle(alerter)
            await alerter.stop()
        assert len(hook.bodies) == 3 and failures == [1]
        full, failures = make("http://127.0.0.1:9/x", queue_size=2)
        for i in range(5):
            full.refused(deny(f"r{i}"), ALICE, "x")  # no sender running: queue fills
        assert full.pending == 2 and failures == [1, 1, 1]

    run(main)


def test_broken_callback_never_reaches_caller() -> None:
    alerter = Alerter(AlertSettings("http://127.0.0.1:9/", queue_size=1), on_failure=lambda: 1 / 0)
    for _ in range(3):
        alerter.refused(deny(), ALICE, "x")
    alerter.login_failed("u", "a")


def test_burst_detector_one_alert_per_user_or_address() -> None:
    burst = BurstDetector(3, 60)
    hits = [burst.failed((f"user:u{i}", "addr:1.2.3.4"), float(i)) for i in range(6)]
    assert hits == [False, False, True, False, False, False]


def test_settings_validation() -> None:
    s = alert_settings({"url": "https://hooks.example/T/B/secret", "format": "slack"})
    assert s.format == "slack" and s.rate_per_rule == 5 and s.retries == 3
    assert "secret" not in repr(s)
    assert replace(s, retries=0).retries == 0
    for raw in (
        {"url": "ftp://x/"}, {"url": "http://"}, {}, {"url": "http://x", "format": "xml"},
        {"url": "http://x", "rate_per_rule": 0}, {"url": "http://x", "timeout": -1},
        {"url": "http://x", "bogus": 1}, {"url": "http://x:99999/"}, [],
    ):  # fmt: skip
        with pytest.raises(ConfigError):
            alert_settings(raw)
