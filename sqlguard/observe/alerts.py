"""Webhook alerts on refusals, approval use and failed-login bursts, off the data path.

The proxy calls ``Alerter.refused``, ``approval_used`` and ``login_failed`` from the event
loop. Each call only updates in-memory counters and, at most, puts one payload on a bounded
queue with ``put_nowait``: it never awaits, never touches the network and never raises, so a
slow or dead webhook cannot slow a statement. A background task (``start()``/``stop()``)
posts the queue with a tiny HTTP/1.1 client on asyncio streams, retrying connection errors,
timeouts, 429 and 5xx with exponential backoff; an alert that still fails, or that finds the
queue full, is dropped, logged and reported through ``on_failure`` (the metrics counter).

Payloads (``format: json``)::

    {"event": "refused", "rule": "no-drop", "user": "alice", "database": "app",
     "client_addr": "10.0.0.7", "message": "...", "time": "2024-05-01T12:00:00+00:00"}

``event`` is ``refused``, ``approval_used`` or ``failed_login_burst``; refusals also carry
``statement`` (the summary). With ``format: slack`` the body is ``{"text": "<one line>"}``.

Rate limiting is per (event, rule): at most ``rate_per_rule`` alerts per ``window`` seconds;
the rest are counted and the next alert sent for that rule says ``(+N suppressed)``.
"""

from __future__ import annotations

# Like the admin server, the alert sender is an I/O edge that owns its own connections.
import asyncio  # noqa: TID251
import contextlib
import json
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlguard.observe.alerts_config import AlertSettings
from sqlguard.policy.model import Decision, Identity

log = logging.getLogger("sqlguard.alerts")

MAX_TRACKED = 10_000
"""Distinct users/addresses remembered for bursts: scanners invent names, memory must not grow."""
MAX_TEXT = 500
Payload = dict[str, Any]


class RateLimiter:
    """At most ``rate`` sends per key in any ``window`` seconds; counts what it holds back."""

    def __init__(self, rate: int, window: float) -> None:
        self._rate, self._window = rate, window
        self._sent: dict[tuple[str, str], deque[float]] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def admit(self, key: tuple[str, str], now: float) -> int | None:
        """None if this alert must be held back, else how many were held back before it."""
        sent = self._sent.setdefault(key, deque())
        while sent and now - sent[0] >= self._window:
            sent.popleft()
        if len(sent) >= self._rate:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        sent.append(now)
        return self._suppressed.pop(key, 0)


class BurstDetector:
    """Flags the ``burst``-th failure of one key within ``window`` s, then stays quiet a window.

    >>> b = BurstDetector(2, 60)
    >>> [b.failed(("u",), t) for t in (0, 1, 2, 3, 70, 71)]
    [False, True, False, False, False, True]
    """

    def __init__(self, burst: int, window: float) -> None:
        self._burst, self._window = burst, window
        self._failures: dict[str, deque[float]] = {}
        self._muted_until: dict[str, float] = {}

    def failed(self, keys: tuple[str, ...], now: float) -> bool:
        """Record one failure under every key; True if that starts a burst for any of them."""
        hit = False
        for key in keys:
            if self._record(key, now) and self._muted_until.get(key, 0.0) <= now:
                hit = True
        if hit:  # one alert per burst, even when user and address both cross the threshold
            for key in keys:
                self._muted_until[key] = now + self._window
        self._bound(now)
        return hit

    def _record(self, key: str, now: float) -> bool:
        times = self._failures.setdefault(key, deque(maxlen=self._burst))
        times.append(now)
        return len(times) >= self._burst and now - times[0] < self._window

    def _bound(self, now: float) -> None:
        if len(self._failures) <= MAX_TRACKED:
            return
        for key in [k for k, t in self._failures.items() if now - t[-1] >= self._window]:
            del self._failures[key]
            self._muted_until.pop(key, None)
        while len(self._failures) > MAX_TRACKED:  # all recent: forget the oldest-seen key
            key = next(iter(self._failures))
            del self._failures[key]
            self._muted_until.pop(key, None)


def slack_text(payload: Payload) -> str:
    """One readable line, with Slack's three control characters escaped."""
    who = f"{payload['user']}@{payload['database']}" if payload["database"] else payload["user"]
    line = f"sqlguard {payload['event']} [{payload['rule']}] {who}"
    if payload["client_addr"]:
        line += f" from {payload['client_addr']}"
    line += f": {payload['message']}"
    if payload.get("statement"):
        line += f" | {payload['statement']}"
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def encode(payload: Payload, fmt: str) -> bytes:
    """The request body for the configured format."""
    value = {"text": slack_text(payload)} if fmt == "slack" else payload
    return json.dumps(value, ensure_ascii=False, default=str).encode()


class RetryableError(Exception):
    """The webhook may accept the same alert later (connection trouble, 429, 5xx)."""


async def post(url: str, body: bytes, timeout: float) -> int:
    """POST ``body`` once; the status code, or RetryableError for a failure worth retrying."""
    try:
        status = await asyncio.wait_for(_post(url, body), timeout)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        raise RetryableError(type(exc).__name__) from None
    if status == 429 or status >= 500:
        raise RetryableError(f"HTTP {status}")
    return status


async def _post(url: str, body: bytes) -> int:
    parts = urlsplit(url)
    https = parts.scheme == "https"
    tls = ssl.create_default_context() if https else None
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        netloc = host if parts.port is None else f"{host}:{port}"
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: sqlguard\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        return _status(await reader.readline())
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _status(line: bytes) -> int:
    """The code from ``HTTP/1.1 204 No Content``; ValueError for anything else."""
    version, _, rest = line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError("not an HTTP status line")
    return int(rest[:3])


def _where(url: str) -> str:
    """scheme://host:port only: the path of a webhook URL is often its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class Alerter:
    """Turns firewall events into webhook alerts without ever holding up the caller."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        on_failure: Callable[[], None] | None = None,
        backoff: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._on_failure = on_failure
        self._backoff = backoff
        self._clock = clock
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(settings.queue_size)
        self._limits = RateLimiter(settings.rate_per_rule, settings.window)
        self._bursts = BurstDetector(settings.failed_login_burst, settings.window)
        self._task: asyncio.Task[None] | None = None

    # -- called from the data path: synchronous, bounded work, never raises --------------

    def refused(self, decision: Decision, identity: Identity, summary: str) -> None:
        """A statement was refused (deny or require_approval)."""
        self._safely(
            "refused", decision.rule_id, identity.user, identity.database,
            identity.client_addr, decision.message, statement=summary[:MAX_TEXT],
        )  # fmt: skip

    def approval_used(self, requester: Identity | str, approver: str, fingerprint: str) -> None:
        """An approval token let a statement through: someone should know it happened."""
        who = requester if isinstance(requester, Identity) else Identity(str(requester), "")
        message = f"approval {fingerprint} granted by {approver} was used by {who.user}"
        self._safely("approval_used", "approval", who.user, who.database, who.client_addr, message)

    def login_failed(self, user: str, client_addr: str) -> None:
        """Count a failed login; alert once when one user or address reaches the burst."""
        try:
            keys = (f"user:{user}", f"addr:{client_addr}")
            if not self._bursts.failed(keys, self._clock()):
                return
        except Exception:
            log.exception("alert for failed logins not produced")
            return
        s = self.settings
        message = f"{s.failed_login_burst} failed logins within {s.window:g} s"
        self._safely("failed_login_burst", "failed_login", user[:100], "", client_addr, message)

    def _safely(self, event: str, rule: str, user: str, database: str, addr: str,
                message: str, **extra: str) -> None:  # fmt: skip
        try:
            suppressed = self._limits.admit((event, rule), self._clock())
            if suppressed is None:
                return
            if suppressed:
                message += f" (+{suppressed} suppressed)"
            payload: Payload = {
                "event": event, "rule": rule, "user": user, "database": database,
                "client_addr": addr, "message": message,
                "time": datetime.now(UTC).isoformat(timespec="seconds"), **extra,
            }  # fmt: skip
            self._enqueue(encode(payload, self.settings.format))
        except Exception:  # an alert is never worth failing a statement over
            log.exception("alert %s for rule %s not produced", event, rule)

    def _enqueue(self, body: bytes) -> None:
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            log.warning("alert queue full (%d): alert dropped", self.settings.queue_size)
            self._failed()

    def _failed(self) -> None:
        if self._on_failure is not None:
            try:
                self._on_failure()
            except Exception:
                log.exception("on_failure callback raised")

    # -- the background sender ------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Alerts waiting to be sent."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start sending in the background; call from the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="alerts")

    async def stop(self, grace: float = 0.0) -> None:
        """Stop the sender, after up to ``grace`` seconds to drain; the rest is discarded."""
        if self._task is None:
            return
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def run(self) -> None:
        """Send queued alerts one at a time, forever (until cancelled)."""
        while True:
            body = await self._queue.get()
            try:
                await self._deliver(body)
            except Exception:
                log.exception("alert sender failed on one alert")
                self._failed()
            finally:
                self._queue.task_done()

    async def _deliver(self, body: bytes) -> None:
        """Try once plus ``retries`` times, backing off 1x, 2x, 4x ... ``backoff`` seconds."""
        s = self.settings
        for attempt in range(s.retries + 1):
            try:
                status = await post(s.url, body, s.timeout)
            except RetryableError as exc:
                reason = str(exc)
            else:
                if 200 <= status < 300:
                    return
                reason = f"HTTP {status}"  # other 4xx: the same body will not fare better
                break
            if attempt < s.retries:
                await asyncio.sleep(self._backoff * 2**attempt)
        log.warning("alert to %s dropped after %d attempt(s): %s",
                    _where(s.url), attempt + 1, reason)  # fmt: skip
        self._failed()
