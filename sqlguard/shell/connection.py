"""One client connection and its upstream connection, as asyncio Protocols.

The Protocols only move bytes and carry out the session's commands; flow control is
symmetric: when one side's write buffer is full, reading from the other side pauses, so
a slow reader never makes the sidecar buffer a large result or COPY stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from sqlguard.observe.tracing import LiveSpan, StatementSpan
from sqlguard.session.cancel import UpstreamKey
from sqlguard.session.commands import (
    Admit,
    Close,
    Command,
    ConsumeApproval,
    ForwardCancel,
    LoginResult,
    OpenUpstream,
    RegisterCancelKey,
    StartTls,
    StatementFinished,
    StatementStarted,
    ToClient,
    ToServer,
)
from sqlguard.session.machine import Phase, Session
from sqlguard.tls.binding import peer_binding
from sqlguard.tls.channel import TlsChannel, TlsError
from sqlguard.tls.config import ServerTls
from sqlguard.wire.errors import PgError

if TYPE_CHECKING:
    from sqlguard.gate import ApprovalGate
    from sqlguard.shell.server import Sidecar

log = logging.getLogger("sqlguard.connection")

# Pause the other side once this much is waiting to be written to a slow peer.
WRITE_HIGH_WATER = 256 * 1024


class ClientConnection(asyncio.Protocol):
    """The client's socket; owns the Session and the upstream connection it opens."""

    def __init__(self, sidecar: Sidecar) -> None:
        self._sidecar = sidecar
        self._client: asyncio.Transport | None = None
        self._tls: TlsChannel | None = None  # the client connection's TLS, once started
        self._served: ServerTls | None = None  # what that TLS was started with
        self._upstream: asyncio.Transport | None = None
        self._cancel_keys: list[tuple[int, bytes]] = []
        self.session: Session | None = None
        self.peer = ""
        self._close_reason = "client disconnected"
        self._admitted: str | None = None  # the user counted against the connection limits
        self._login_timer: asyncio.TimerHandle | None = None
        self._span: LiveSpan | None = None  # the connection's span, parent of statement spans
        self._running: dict[int, tuple[float, StatementSpan | None, StatementStarted]] = {}

    # ---- client socket events ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._client = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else "local"
        firewall = self._sidecar.firewall
        self.session = Session(
            firewall.judge,
            firewall.rules_version,
            self.peer,
            self._sidecar.identities,
            self._sidecar.tls_offer,
        )
        self.session.set_max_message_bytes(self._sidecar.settings.max_message_bytes)
        self._sidecar.connections.add(self)
        self._sidecar.metrics.connection_opened()
        timeout = self._sidecar.settings.login_timeout
        self._login_timer = asyncio.get_running_loop().call_later(timeout, self._login_timed_out)
        if self._sidecar.auditor is not None:
            self._sidecar.auditor.connection_opened(id(self), self.peer)

    def data_received(self, data: bytes) -> None:
        assert self.session is not None
        if self._tls is not None:
            data = self._decrypt(self._tls, data)
            if not data:
                return
        self._run(self.session.receive_client(data))

    def _decrypt(self, tls: TlsChannel, data: bytes) -> bytes:
        """Ciphertext in, plaintext out; handshake records go back to the client."""
        assert self.session is not None and self._client is not None
        was_established = tls.established
        try:
            plaintext, to_client = tls.receive(data)
        except TlsError as exc:
            log.info("TLS with %s failed: %s", self.peer, exc)
            self._client.write(tls.pending_output())
            self._tls = None  # nothing more can be sent over it
            self._close(f"TLS failed: {exc}")
            return b""
        if to_client:
            self._client.write(to_client)
        if tls.established and not was_established:
            log.debug("TLS with %s: %s %s", self.peer, tls.version, tls.cipher)
            binding = self._served.binding if self._served else None
            self._run(self.session.tls_established(tls.alpn, binding))
        return plaintext

    def _start_tls(self, command: StartTls) -> None:
        self._served = self._sidecar.server_tls  # a reload may replace it meanwhile
        assert self._served is not None
        self._tls = TlsChannel(self._served.context, server_side=True)
        if command.data:
            data = self._decrypt(self._tls, command.data)
            if data and self.session is not None:
                self._run(self.session.receive_client(data))

    def eof_received(self) -> bool:
        return False  # a half-closed client is a gone client: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self._run(self.session.client_closed())
        self._release()

    def pause_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

    # ---- upstream socket events (called by UpstreamProtocol) --------------------------

    def upstream_data(self, data: bytes) -> None:
        assert self.session is not None
        self._run(self.session.receive_server(data))

    def upstream_lost(self) -> None:
        if self.session is not None:
            self._run(self.session.server_closed())
        self._upstream = None

    def pause_upstream_writes(self) -> None:
        if self._client is not None:
            self._client.pause_reading()

    def resume_upstream_writes(self) -> None:
        if self._client is not None:
            self._client.resume_reading()

    # ---- commands -----------------------------------------------------------------------

    def _run(self, commands: list[Command]) -> None:
        for command in commands:
            _HANDLERS[type(command)](self, command)

    def _to_server(self, command: ToServer) -> None:
        if self._upstream is not None:
            self._upstream.write(command.data)

    def _to_client(self, command: ToClient) -> None:
        if self._client is not None:
            data = command.data if self._tls is None else self._tls.send(command.data)
            self._client.write(data)

    def _forward_cancel(self, command: ForwardCancel) -> None:
        self._sidecar.forward_cancel(command.pid, command.key)

    def _closed_by_session(self, command: Close) -> None:
        self._close(command.reason)

    def _admit(self, command: Admit) -> None:
        assert self.session is not None
        user = command.identity.user
        refusal = self._sidecar.limits.admit(user, self.peer, time.monotonic())
        if refusal is None:
            self._admitted = user
        else:
            log.warning("login refused for %s from %s: %s", user, self.peer, refusal.message)
        self._run(self.session.admitted(refusal))

    def _open_upstream(self, command: OpenUpstream) -> None:
        assert self._client is not None
        self._client.pause_reading()  # nothing to read until the upstream answers
        self._sidecar.spawn(self._connect(command))

    async def _connect(self, command: OpenUpstream) -> None:
        try:
            transport = await self._sidecar.connect_upstream(lambda: UpstreamProtocol(self))
        except (OSError, TimeoutError) as exc:
            if self.session is not None:
                reason = f"{self._sidecar.settings.upstream.address}: {exc or 'timed out'}"
                self._run(self.session.upstream_unreachable(reason))
            return
        if self.session is None or self.session.phase is Phase.CLOSED:
            transport.close()
            return
        self._upstream = transport
        self.session.upstream_opened(peer_binding(transport.get_extra_info("ssl_object")))
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        transport.write(command.startup)
        log.info("connection from %s as %s", self.peer, command.identity.user)
        if self._client is not None:
            self._client.resume_reading()

    def _consume_approval(self, command: ConsumeApproval) -> None:
        """Hold the client until the ledger says whether this is the token's first use."""
        assert self._client is not None and self._sidecar.firewall.gate is not None
        self._client.pause_reading()
        self._sidecar.spawn(self._consume(command, self._sidecar.firewall.gate))

    async def _consume(self, command: ConsumeApproval, gate: ApprovalGate) -> None:
        refusal = await gate.consume(command.approval)
        if self.session is None:
            return
        self._run(self.session.approval_consumed(refusal))
        if self._client is not None and not self.session.awaiting_approval:
            self._client.resume_reading()

    def _statement_started(self, command: StatementStarted) -> None:
        tracer = self._sidecar.tracer
        span = None
        if tracer is not None and self.session is not None and self.session.identity is not None:
            describe, identity = self._sidecar.firewall.describe, self.session.identity
            span = tracer.statement(command.text, describe, command.decision, identity, self._span)
        self._running[command.id] = (time.perf_counter(), span, command)

    def _statement_finished(self, command: StatementFinished) -> None:
        running = self._running.pop(command.id, None)
        if running is None:
            return
        started, span, statement = running
        seconds = time.perf_counter() - started
        self._sidecar.metrics.statement_duration(seconds)
        if span is not None:
            assert self._sidecar.tracer is not None
            self._sidecar.tracer.end(span, command.sqlstate, command.tag, command.ran)
        if command.ran and self._sidecar.auditor is not None:
            self._audit_statement(statement, command, seconds, span)

    def _audit_statement(
        self,
        statement: StatementStarted,
        finished: StatementFinished,
        seconds: float,
        span: StatementSpan | None,
    ) -> None:
        assert self._sidecar.auditor is not None and self.session is not None
        assert self.session.identity is not None
        ended = (id(self), finished.sqlstate, finished.tag, seconds)
        described = span.described if span else self._sidecar.firewall.describe(statement.text)
        self._sidecar.auditor.statement(self.session.identity, described, statement.decision, ended)

    def _login_result(self, result: LoginResult) -> None:
        assert self.session is not None and self.session.identity is not None
        self._cancel_login_timer()
        ok, user, limits = result.ok, self.session.identity.user, self._sidecar.limits
        if ok:
            limits.login_succeeded(user, self.peer)
        else:
            log.warning("login failed for %s from %s: %s", user, self.peer, result.reason)
        if not ok and result.guess and limits.login_failed(user, self.peer, time.monotonic()):
            log.warning("too many failed logins: locking out %s and %s", user, self.peer)
        self._sidecar.metrics.login(self.session.identity.user, ok)
        if not ok and self._sidecar.alerter is not None:
            self._sidecar.alerter.login_failed(self.session.identity.user, self.peer)
        tls = self._tls.version if self._tls is not None else None
        if ok and self._sidecar.tracer is not None:
            version = tls.removeprefix("TLSv") if tls else None
            self._span = self._sidecar.tracer.connection(self.session.identity, version)
        if self._sidecar.auditor is not None:
            auditor, identity = self._sidecar.auditor, self.session.identity
            auditor.login(
                id(self), identity, ok, result.reason, result.role, tls or "", result.method
            )

    def _login_timed_out(self) -> None:
        self._login_timer = None
        if self.session is None or self.session.phase not in (Phase.STARTUP, Phase.AUTH):
            return
        log.warning("login from %s timed out", self.peer)
        error = PgError("FATAL", "57014", "canceling authentication due to timeout")
        self._run(self.session.refuse_login(error))

    def _cancel_login_timer(self) -> None:
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None

    def _register_cancel_key(self, command: RegisterCancelKey) -> None:
        upstream = UpstreamKey(command.pid, command.upstream_key)
        self._sidecar.cancel_keys.register(command.pid, command.client_key, upstream)
        self._cancel_keys.append((command.pid, command.client_key))

    def _close(self, reason: str) -> None:
        log.debug("closing connection from %s: %s", self.peer, reason)
        self._close_reason = reason
        if self._client is not None:
            if self._tls is not None:
                self._client.write(self._tls.close())
            self._client.close()
        if self._upstream is not None:
            self._upstream.close()
        self._release()

    def shutdown(self) -> None:
        """The sidecar is stopping."""
        if self.session is not None:
            self._run(self.session.shutdown())

    def end(self, error: PgError) -> None:
        """End the live session with a FATAL ``error`` (its access expired or was revoked)."""
        if self.session is not None:
            self._run(self.session.end(error, error.message))

    def _release(self) -> None:
        self._cancel_login_timer()
        if self._admitted is not None:
            self._sidecar.limits.release(self._admitted)
            self._admitted = None
        for pid, key in self._cancel_keys:
            self._sidecar.cancel_keys.unregister(pid, key)
        self._cancel_keys.clear()
        if self._span is not None:
            assert self._sidecar.tracer is not None
            self._sidecar.tracer.end_connection(self._span)
            self._span = None
        if self in self._sidecar.connections:
            self._sidecar.connections.discard(self)
            self._sidecar.metrics.connection_closed()
            if self._sidecar.auditor is not None:
                self._sidecar.auditor.connection_closed(id(self), self._close_reason)


# What the connection does for each command the session gives it (one lookup per command,
# not a chain of isinstance tests: this runs several times per statement).
_HANDLERS: dict[type, Callable[[ClientConnection, Any], None]] = {
    ToServer: ClientConnection._to_server,
    ToClient: ClientConnection._to_client,
    StartTls: ClientConnection._start_tls,
    Admit: ClientConnection._admit,
    OpenUpstream: ClientConnection._open_upstream,
    RegisterCancelKey: ClientConnection._register_cancel_key,
    ForwardCancel: ClientConnection._forward_cancel,
    StatementStarted: ClientConnection._statement_started,
    StatementFinished: ClientConnection._statement_finished,
    LoginResult: ClientConnection._login_result,
    ConsumeApproval: ClientConnection._consume_approval,
    Close: ClientConnection._closed_by_session,
}


class UpstreamProtocol(asyncio.Protocol):
    """The upstream socket of one ClientConnection."""

    def __init__(self, owner: ClientConnection) -> None:
        self._owner = owner

    def data_received(self, data: bytes) -> None:
        self._owner.upstream_data(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.upstream_lost()

    def pause_writing(self) -> None:
        self._owner.pause_upstream_writes()

    def resume_writing(self) -> None:
        self._owner.resume_upstream_writes()
