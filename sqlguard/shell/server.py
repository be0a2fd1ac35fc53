"""The listening sidecar: accepts clients, reaches the upstream, reloads rules, shuts down."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import logging
import signal
import socket
import ssl
import struct
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from sqlguard.analysis.sanitize import query_summary
from sqlguard.config import ConfigError, Settings, parse_listen
from sqlguard.firewall import Firewall
from sqlguard.gate import ApprovalGate
from sqlguard.identities.directory import IdentityDirectory
from sqlguard.identities.records import StoreFormatError
from sqlguard.observe.admin import AdminServer
from sqlguard.observe.alerts import Alerter
from sqlguard.observe.audit_process import AuditProcess
from sqlguard.observe.auditor import Auditor
from sqlguard.observe.metrics import SidecarMetrics
from sqlguard.observe.tracing import StatementTracer
from sqlguard.policy.loader import RuleError, load_rules
from sqlguard.policy.model import Decision, Identity
from sqlguard.session.cancel import CancelRegistry
from sqlguard.session.limits import ConnectionLimits, LimitSettings
from sqlguard.session.login import session_refusal
from sqlguard.session.machine import Phase, TlsOffer
from sqlguard.shell.connection import ClientConnection
from sqlguard.shell.reload import rules_fingerprint, watch
from sqlguard.tls.config import ServerTls, TlsConfigError, server_tls, upstream_context
from sqlguard.wire.messages import SSL_REQUEST_CODE, CancelRequest

SSL_REQUEST = struct.pack("!II", 8, SSL_REQUEST_CODE)

log = logging.getLogger("sqlguard")


class Sidecar:
    """Everything shared by the connections of one running sidecar."""

    def __init__(
        self,
        settings: Settings,
        firewall: Firewall | None = None,
        tracer: StatementTracer | None = None,
    ) -> None:
        self.settings = settings
        gate = ApprovalGate(settings.approvals) if settings.approvals else None
        self.firewall = firewall or Firewall(load_rules(settings.rules_dir), gate=gate)
        self.audit = (
            AuditProcess.from_settings(settings.audit, settings.log_level, settings.log_format)
            if settings.audit
            else None
        )
        self.auditor = Auditor(self.audit, self.firewall.rules_version) if self.audit else None
        upstream = settings.upstream
        self.tracer = tracer or StatementTracer.from_environment(
            upstream.host, upstream.port, settings.log_level, settings.log_format
        )
        audit, shipper = self.audit, self.tracer.shipper if self.tracer else None
        self.metrics = SidecarMetrics(
            rules_version=self.firewall.rules_version(),
            caches=self.firewall.cache_stats,
            audit_queue_depth=(lambda: audit.queue_depth) if audit else None,
            audit_write_errors=(lambda: audit.write_errors) if audit else None,
            spans_dropped=(lambda: shipper.dropped) if shipper else None,
        )
        self.alerter = (
            Alerter(settings.alerts, on_failure=self.metrics.alert_failed)
            if settings.alerts
            else None
        )
        self.firewall.on_decision = self._on_decision
        self.firewall.precheck = self.auditor.refusal if self.auditor else None
        if self.firewall.gate is not None:
            self.firewall.gate.on_outcome = self._on_approval
        self._admin: AdminServer | None = None
        self.identities = IdentityDirectory(settings.identities) if settings.identities else None
        self.server_tls: ServerTls | None = server_tls(settings.tls) if settings.tls else None
        self.tls_offer = TlsOffer.NONE
        if settings.tls is not None:
            self.tls_offer = TlsOffer.REQUIRED if settings.tls.required else TlsOffer.OPTIONAL
        upstream_tls = settings.upstream_tls
        self.upstream_tls = upstream_context(upstream_tls) if upstream_tls else None
        if self.upstream_tls is not None and settings.upstream.socket_dir:
            raise ConfigError(
                "upstream_tls: PostgreSQL does not use TLS over a Unix socket; "
                "connect to the upstream by host and port, or set upstream_tls.mode: disable"
            )
        self.cancel_keys = CancelRegistry()
        self.limits = ConnectionLimits(
            LimitSettings(
                settings.max_connections,
                settings.max_connections_per_user,
                settings.lockout_failures,
                settings.lockout_window,
                settings.lockout_seconds,
            )
        )
        self.connections: set[ClientConnection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if self.audit is not None:
            await asyncio.to_thread(self.audit.start)
        if self.alerter is not None:
            self.alerter.start()
        if self.firewall.gate is not None:
            await self.firewall.gate.open()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self),
            self.settings.listen_host,
            self.settings.listen_port,
            reuse_address=True,
            backlog=1024,
        )
        if self.settings.admin_listen:
            host, port = parse_listen(self.settings.admin_listen)
            self._admin = AdminServer(
                host,
                port,
                token=self.settings.admin_token or None,
                metrics=self.metrics,
                status=self.status,
                ready=self.ready,
                reload=self.reload,
            )
            await self._admin.start()
        log.info(
            "sqlguard listening on %s:%d, upstream %s, rules %s (version %s)",
            self.settings.listen_host,
            self.port,
            self.settings.upstream.address,
            self.settings.rules_dir,
            self.firewall.rules_version(),
        )

    @property
    def port(self) -> int:
        """The bound port (useful when the settings asked for port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._admin is not None:
            await self._admin.stop()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
        if self.firewall.gate is not None:
            await self.firewall.gate.close()
        if self.audit is not None:
            await asyncio.to_thread(self.audit.close)
        if self.alerter is not None:
            await self.alerter.stop(grace=2.0)
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.shutdown)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a task, keeping a strong reference until it ends (PROTOCOL-NOTES §3)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect_upstream(self, factory: Callable[[], asyncio.Protocol]) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        upstream = self.settings.upstream
        connecting: Coroutine[Any, Any, tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]
        if upstream.socket_dir:
            path = f"{upstream.socket_dir}/.s.PGSQL.{upstream.port}"
            connecting = loop.create_unix_connection(factory, path)
        elif self.upstream_tls is not None:
            connecting = self._connect_upstream_tls(factory, self.upstream_tls)
        else:
            connecting = loop.create_connection(factory, upstream.host, upstream.port)
        transport, _ = await asyncio.wait_for(connecting, self.settings.connect_timeout)
        return transport  # type: ignore[return-value]

    async def _connect_upstream_tls(
        self, factory: Callable[[], asyncio.Protocol], context: ssl.SSLContext
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """SSLRequest, then TLS on the same socket (the server answers 'S' or 'N').

        Each address of the host is tried in turn, as libpq does.
        """
        loop = asyncio.get_running_loop()
        upstream = self.settings.upstream
        infos = await loop.getaddrinfo(upstream.host, upstream.port, type=socket.SOCK_STREAM)
        failure: OSError = OSError(f"no address for {upstream.host}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
                await loop.sock_sendall(sock, SSL_REQUEST)
                answer = await loop.sock_recv(sock, 1)
                if answer != b"S":
                    raise ConnectionRefusedError(
                        f"the upstream does not accept TLS (it answered {answer!r} to "
                        "SSLRequest), and upstream_tls requires it"
                    )
                return await loop.create_connection(
                    factory, sock=sock, ssl=context, server_hostname=upstream.host
                )
            except OSError as exc:
                sock.close()
                failure = exc
            except BaseException:
                sock.close()
                raise
        raise failure

    def forward_cancel(self, pid: int, client_key: bytes) -> None:
        upstream = self.cancel_keys.lookup(pid, client_key)
        if upstream is None:
            log.info("ignoring a cancel request for an unknown backend key")
            return
        self.spawn(self._send_cancel(CancelRequest(upstream.pid, upstream.key).encode()))

    async def _send_cancel(self, request: bytes) -> None:
        try:
            transport = await self.connect_upstream(asyncio.Protocol)
        except (OSError, TimeoutError) as exc:
            log.warning("could not forward a cancel request upstream: %s", exc)
            return
        transport.write(request)  # the server never answers a CancelRequest
        transport.close()

    def reload(self) -> bool:
        """SIGHUP and POST /reload: rules, identities and TLS certificates; False if any
        failed (each keeps its current version then)."""
        results = [self.reload_rules(), self.reload_identities(), self.reload_tls()]
        return all(results)

    def reload_tls(self) -> bool:
        """Build the TLS contexts from the certificate files again (rotated certificates);
        new connections use them, established ones keep theirs."""
        settings = self.settings
        try:
            server = server_tls(settings.tls) if settings.tls else None
            upstream = upstream_context(settings.upstream_tls) if settings.upstream_tls else None
        except TlsConfigError as exc:
            log.error("TLS reload failed, keeping the current certificates: %s", exc)
            return False
        self.server_tls, self.upstream_tls = server, upstream
        if server is not None or upstream is not None:
            log.info("TLS certificates reloaded")
        return True

    def reload_identities(self) -> bool:
        """Read the identities store and role secrets again, then apply them to live sessions.

        A broken store is reported and the current directory kept: a typo must neither lock
        everyone out nor let a revoked person back in.
        """
        if self.identities is None:
            return True
        try:
            self.identities.reload()
        except (StoreFormatError, ConfigError) as exc:
            log.error("identities reload failed, keeping the current ones: %s", exc)
            if self.auditor is not None:
                self.auditor.identities_reloaded(False, str(exc))
            return False
        log.info("identities reloaded: %d people", len(self.identities.people()))
        if self.auditor is not None:
            self.auditor.identities_reloaded(True)
        self.enforce_identities()
        return True

    def enforce_identities(self) -> None:
        """End live sessions whose access expired or was revoked; apply group changes
        (a just-in-time grant that lapsed, or a new one) to the others."""
        directory = self.identities
        if directory is None:
            return
        now = directory.now()
        for connection in list(self.connections):
            session = connection.session
            if session is None or session.phase is not Phase.READY or session.identity is None:
                continue
            identity = session.identity
            person = directory.find(identity.user)
            refusal = session_refusal(person, identity.user, identity.database, now)
            if refusal is not None:
                log.warning("ending the session of %s: %s", identity.user, refusal.message)
                if self.auditor is not None:
                    revoked = person is None or person.revoked
                    self.auditor.identity_ended(id(connection), identity, revoked, refusal.message)
                connection.end(refusal)
            elif person is not None and person.groups_at(now) != identity.groups:
                session.identity = dataclasses.replace(identity, groups=person.groups_at(now))
                log.info(
                    "groups of %s are now %s", identity.user, ", ".join(session.identity.groups)
                )

    def reload_rules(self) -> bool:
        """Load the rule files again; a broken set is reported and the current one kept."""
        try:
            rules = load_rules(self.settings.rules_dir)
        except RuleError as exc:
            version = self.firewall.rules_version()
            log.error("rule reload failed, keeping version %s: %s", version, exc)
            self.metrics.rules_reloaded(False, version)
            if self.auditor is not None:
                self.auditor.rules_reloaded(False, version)
            return False
        self.firewall.replace_rules(rules)
        log.info("rules reloaded: version %s", rules.version)
        self.metrics.rules_reloaded(True, rules.version)
        if self.auditor is not None:
            self.auditor.rules_reloaded(True, rules.version)
        return True

    def _on_decision(
        self,
        decision: Decision,
        identity: Identity,
        text: bytes,
        seconds: float,
    ) -> None:
        self.metrics.statement(decision, None, seconds)
        if decision.refused and self.alerter is not None:
            summary = query_summary(self.firewall.facts(text))  # only for the rare refusal
            self.alerter.refused(decision, identity, summary)

    def _on_approval(self, outcome: str, fields: dict[str, str]) -> None:
        self.metrics.approval(outcome)
        if outcome == "used" and self.alerter is not None:
            self.alerter.approval_used(
                fields["requester"], fields["approver"], fields["fingerprint"]
            )
        if self.auditor is not None:
            self.auditor.approval(outcome, fields)

    def status(self) -> dict[str, object]:
        """What GET /status shows: versions and open connections by user."""
        users = Counter(
            c.session.identity.user for c in self.connections if c.session and c.session.identity
        )
        return {
            "version": importlib.metadata.version("sqlguard"),
            "rules_version": self.firewall.rules_version(),
            "connections": sum(users.values()),
            "connections_by_user": dict(users),
        }

    async def ready(self) -> tuple[bool, str]:
        """Ready when the upstream accepts a TCP connection and the audit log takes records
        (the rules are loaded at start)."""
        if self.audit is not None and not self.audit.accepting:
            return False, f"audit log not writable: {self.audit.last_error}"
        try:
            transport = await self.connect_upstream(asyncio.Protocol)
        except (OSError, TimeoutError) as exc:
            return False, f"upstream {self.settings.upstream.address} unreachable: {exc}"
        transport.close()
        return True, "ok"


async def serve(settings: Settings, ready: Callable[[Sidecar], None] | None = None) -> None:
    """Run a sidecar until SIGINT/SIGTERM; SIGHUP reloads the rules."""
    sidecar = Sidecar(settings)
    await sidecar.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, sidecar.reload)
    interval = settings.rules_poll_interval
    if interval > 0:
        rules_dir = settings.rules_dir
        sidecar.spawn(watch(lambda: rules_fingerprint(rules_dir), sidecar.reload_rules, interval))
    if sidecar.identities is not None:
        directory = sidecar.identities
        changed = sidecar.reload_identities if interval > 0 else None
        sidecar.spawn(
            watch(directory.fingerprint, changed, interval or 1.0, sidecar.enforce_identities)
        )
    if ready is not None:
        ready(sidecar)
    try:
        await stopping.wait()
    finally:
        await sidecar.stop()


def run(settings: Settings, ready: Callable[[Sidecar], None] | None = None) -> None:
    """Entry point: uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        asyncio.run(serve(settings, ready))
        return
    uvloop.run(serve(settings, ready))
