"""Memory per idle client connection: the proxy's RSS before and after N clients log in.

Applications keep pools of mostly idle connections open, so what a connection costs while
it does nothing decides how many a proxy can hold. Each client logs in (trust), sends one
`SELECT 1` and then stays idle: after that query pgbouncer in session mode has given the
client a server connection, as the sidecar has from the login on, so both hold the same
upstream state. Each round starts a fresh proxy, since memory freed by one round would be
reused by the next and hide the cost.
"""

from __future__ import annotations

import asyncio
import resource
import struct
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pgbench_compare import DBNAME, BenchmarkError, progress

from sqlguard.testing.postgres import SUPERUSER, PostgresCluster

PROTOCOL_3_0 = 196608
WARM_CONNECTIONS = 10  # opened and closed first: one-time allocations are not per connection
CONCURRENT_LOGINS = 32
SETTLE_SECONDS = 2.0


class Proxy(Protocol):
    """What the measurement needs of a running sidecar or pgbouncer."""

    host: str
    port: int

    @property
    def pid(self) -> int: ...


ProxyFactory = Callable[[], AbstractContextManager[Proxy]]


@dataclass(frozen=True)
class IdleSample:
    target: str
    round: int
    connections: int
    rss_before_kib: int
    rss_after_kib: int
    upstream_backends: int

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.connections


def raise_fd_limit(needed: int) -> None:
    """Each idle client is a socket here and, in the proxy, a client socket plus an upstream
    one; children inherit the limit, so call this before starting them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise BenchmarkError(f"open-file limit {soft} < {needed}: raise it (ulimit -n)")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchmarkError(f"no VmRSS for process {pid}")


def measure_idle(
    cluster: PostgresCluster, proxies: dict[str, ProxyFactory], connections: int, rounds: int
) -> list[IdleSample]:
    """Targets alternate within each round; each gets a fresh process. Backends counted before
    any start (pgbouncer keeps server connections of earlier sections) are subtracted."""
    samples = []
    baseline = _client_backends(cluster)
    for round_ in range(1, rounds + 1):
        for name, factory in proxies.items():
            with factory() as proxy:
                sample = asyncio.run(_one(cluster, name, proxy, connections, round_, baseline))
            samples.append(sample)
            _wait_backends(cluster, baseline)
            progress(
                f"idle round {round_} {name}: {sample.kib_per_connection:.1f} KiB per "
                f"connection ({sample.upstream_backends} upstream backends)"
            )
    return samples


async def _one(
    cluster: PostgresCluster,
    name: str,
    proxy: Proxy,
    connections: int,
    round_: int,
    baseline: int,
) -> IdleSample:
    for writer in await _open(proxy, WARM_CONNECTIONS):
        writer.close()
    await asyncio.sleep(SETTLE_SECONDS)
    before = rss_kib(proxy.pid)
    writers = await _open(proxy, connections)
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        after = rss_kib(proxy.pid)
        backends = _client_backends(cluster) - baseline
    finally:
        for writer in writers:
            writer.write(b"X\x00\x00\x00\x04")  # Terminate
            writer.close()
    return IdleSample(name, round_, connections, before, after, backends)


async def _open(proxy: Proxy, count: int) -> list[asyncio.StreamWriter]:
    """Logs `count` clients in, a few at a time so the proxy's backlog never overflows."""
    gate = asyncio.Semaphore(CONCURRENT_LOGINS)

    async def one() -> asyncio.StreamWriter:
        async with gate:
            return await _login_and_query(proxy.host, proxy.port)

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().close()
        raise


async def _login_and_query(host: str, port: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        parameters = {"user": SUPERUSER, "database": DBNAME, "application_name": "idle-bench"}
        body = struct.pack("!I", PROTOCOL_3_0)
        body += b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in parameters.items())
        body += b"\0"
        writer.write(struct.pack("!I", len(body) + 4) + body)
        await _until_ready(reader)
        writer.write(b"Q" + struct.pack("!I", len(b"SELECT 1\0") + 4) + b"SELECT 1\0")
        await _until_ready(reader)
    except BaseException:
        writer.close()
        raise
    return writer


async def _until_ready(reader: asyncio.StreamReader) -> None:
    """Reads messages up to ReadyForQuery; an error or a password request is a failure."""
    while True:
        kind, length = struct.unpack("!cI", await reader.readexactly(5))
        payload = await reader.readexactly(length - 4)
        if kind == b"Z":
            return
        if kind == b"E":
            raise BenchmarkError(f"idle client refused: {payload.decode(errors='replace')}")
        if kind == b"R" and struct.unpack("!I", payload[:4])[0] != 0:
            raise BenchmarkError("idle client was asked for a password; expected trust")


def _client_backends(cluster: PostgresCluster) -> int:
    sql = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    return int(cluster.run_sql(sql))


def _wait_backends(cluster: PostgresCluster, baseline: int, timeout: float = 60.0) -> None:
    """So the next target starts with a server as idle as the first one had."""
    deadline = time.monotonic() + timeout
    while _client_backends(cluster) > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
