"""The least a PostgreSQL firewall written in Python must do, and nothing more: a yardstick.

    python benchmarks/floor_proxy.py --listen 127.0.0.1:6500 --upstream 127.0.0.1:5432
    python benchmarks/floor_proxy.py ... --no-framing     # forward bytes, look at nothing

A firewall has to find every message in both byte streams: Query and Parse to judge them,
ReadyForQuery to know where a transaction stands. This proxy does exactly that on uvloop,
with asyncio Protocols and one write per packet received: it walks every message header
(type byte and length, across packet boundaries) both ways and keeps the last transaction
status, and it judges nothing, records nothing, traces nothing. `--no-framing` forwards
bytes unread, as pgbouncer does for most of a session.

The breakdown section of run_all.py runs both next to pgbouncer and the sidecar. Their CPU
time per statement is the floor any pure-Python proxy sits on, so the sidecar's distance
from pgbouncer splits into what Python costs at all (this floor) and what sqlguard's own
work adds on top (the gap to this floor).

Not a product: no TLS, no cancel, no flow control beyond the kernel's socket buffers, and a
connection that misbehaves is simply closed. It answers SSLRequest and GSSENCRequest 'N'
and expects the startup message next, as libpq and pgbench send them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self, cast

import uvloop

from sqlguard.testing.sidecar import free_port, wait_listening

SSL_OR_GSS = (80877103, 80877104)  # SSLRequest, GSSENCRequest: answered 'N'
FLOOR = "python floor"
FORWARDER = "python forwarder"


class Framer:
    """Finds message boundaries in a stream of packets: type byte, then a length counting
    itself. `skip` is what remains of the current message's body; `partial` holds a header
    cut by a packet boundary."""

    __slots__ = ("last_type", "messages", "partial", "skip")

    def __init__(self) -> None:
        self.skip = 0
        self.partial = b""
        self.messages = 0
        self.last_type = 0

    def feed(self, data: bytes) -> None:
        if self.partial:
            data, self.partial = self.partial + data, b""
        end = len(data)
        position = min(self.skip, end)
        self.skip -= position
        while position < end:
            if end - position < 5:
                self.partial = data[position:]
                return
            self.last_type = data[position]
            length = int.from_bytes(data[position + 1 : position + 5], "big")
            if length < 4:
                raise ValueError(f"message length {length}")
            self.messages += 1
            body_end = position + 1 + length
            if body_end > end:
                self.skip = body_end - end
                return
            position = body_end


class Downstream(asyncio.Protocol):
    """The client's connection; opens the upstream one when the startup message is in."""

    def __init__(self, upstream: tuple[str, int], framing: bool) -> None:
        self.upstream_address = upstream
        self.framing = framing
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None
        self.upstream: Upstream | None = None
        self.started = False
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass

    def data_received(self, data: bytes) -> None:
        if self.started:
            if self.framing:
                self.framer.feed(data)
            assert self.upstream is not None and self.upstream.transport is not None
            self.upstream.transport.write(data)
            return
        self.pending += data
        if len(self.pending) < 8:
            return
        size = int.from_bytes(self.pending[:4], "big")
        if size == 8 and int.from_bytes(self.pending[4:8], "big") in SSL_OR_GSS:
            self.pending = self.pending[8:]
            assert self.transport is not None
            self.transport.write(b"N")
            return
        if len(self.pending) < size:
            return
        self.started = True
        startup, rest = self.pending[:size], self.pending[size:]
        self.pending = b""
        self.transport.pause_reading()  # type: ignore[union-attr]
        asyncio.get_running_loop().create_task(self.connect(startup + rest))

    async def connect(self, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(
                lambda: Upstream(self), *self.upstream_address
            )
        except OSError:
            assert self.transport is not None
            self.transport.close()
            return
        self.upstream = upstream
        assert upstream.transport is not None and self.transport is not None
        upstream.transport.write(first)
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


class Upstream(asyncio.Protocol):
    """The server's connection: every message framed, the transaction status kept."""

    def __init__(self, client: Downstream) -> None:
        self.client = client
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass

    def data_received(self, data: bytes) -> None:
        if self.client.framing:
            self.framer.feed(data)
        assert self.client.transport is not None
        self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()


class FloorProxy:
    """This script as a child process in front of `upstream_port`, for as long as it is
    entered: `name` is FLOOR (framing) or FORWARDER (no framing)."""

    host = "127.0.0.1"

    def __init__(self, upstream_port: int, name: str = FLOOR) -> None:
        self.name = name
        self.port = free_port()
        args = ["--listen", f"{self.host}:{self.port}", "--upstream", f"127.0.0.1:{upstream_port}"]
        if name == FORWARDER:
            args.append("--no-framing")
        self._args = [sys.executable, str(Path(__file__).resolve()), *args]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "FloorProxy is not running"
        return self._process.pid

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(self._args, stdout=subprocess.DEVNULL)
        failure = wait_listening(self.host, self.port, self._process, 20.0)
        if failure:
            self.__exit__(None, None, None)
            raise RuntimeError(f"{self.name} ({Path(__file__).name}) {failure}")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(listen: tuple[str, int], upstream: tuple[str, int], framing: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Downstream(upstream, framing), *listen, reuse_address=True, backlog=1024
    )
    print(f"listening on {listen[0]}:{listen[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=address, required=True, help="HOST:PORT")
    parser.add_argument("--upstream", type=address, required=True, help="HOST:PORT")
    parser.add_argument(
        "--no-framing", dest="framing", action="store_false", help="forward bytes unread"
    )
    options = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(options.listen, options.upstream, options.framing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
