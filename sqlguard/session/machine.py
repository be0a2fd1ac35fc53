"""The per-connection protocol state machine: bytes in, commands out.

The upstream server stays the single authority on transaction state. A refused message
is never answered locally: the upstream receives, in its place, a statement that fails to
parse and carries a random marker. PostgreSQL itself then aborts the transaction, discards
the rest of the pipeline up to Sync and sends ReadyForQuery, exactly as for any server
error; on the way back the sidecar swaps the marker's syntax error for sqlguard's own
ErrorResponse (42501 with message, detail and hint). See PROTOCOL-NOTES §1.9-1.10.
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlguard.approvals.tokens import Approval
from sqlguard.identities.scram import MECHANISM_PLUS
from sqlguard.policy.model import Action, Decision, Identity
from sqlguard.session.approval import ApprovalTokens
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
from sqlguard.session.inflight import Finished, InFlight
from sqlguard.session.login import (
    Accounts,
    Authenticated,
    ClientLogin,
    LoginFailed,
    UpstreamLogin,
    access_refused,
)
from sqlguard.session.refusals import RefusalMarkers
from sqlguard.session.startup import ProtocolNegotiation, check_startup_params
from sqlguard.session.statements import PreparedStatements
from sqlguard.wire import auth
from sqlguard.wire import messages as m
from sqlguard.wire.errors import (
    ADMIN_SHUTDOWN,
    CONNECTION_FAILURE,
    FEATURE_NOT_SUPPORTED,
    PROTOCOL_VIOLATION,
    PgError,
    decode_fields,
    fatal,
)
from sqlguard.wire.framing import Frame, FrameError, FrameScanner, StartupReader

# (statement text, who sends it, the approval token sent with it) -> the verdict
Judge = Callable[[bytes, Identity, str | None], Decision]

# Frontend message types of protocol 3.x (docs, "Message Formats").
_FRONTEND_TYPES = frozenset(b"QPBEDCSHFdcfXp")
# Client messages the machine reads (authentication answers 'p' too, for managed
# identities); CopyData ('d') streams through unread.
_CLIENT_INSPECT = frozenset(b"QPBEDCSFXp")
# Server messages the machine reads: status, errors, command completions (for tracing),
# cancel keys, version negotiation, authentication. DataRows and the like stream unread.
_SERVER_INSPECT = frozenset(b"ZECIsKvR")
_NEWEST_MINOR = 2
_DIRECT_TLS_FIRST_BYTE = 0x16
# CommandComplete, EmptyQueryResponse, PortalSuspended: an Execute's result is complete.
_RESULT_ENDS = frozenset(b"CIs")


@dataclass(slots=True)
class _Awaiting:
    """A message with a valid approval token, held until the ledger records the token."""

    raw: bytes
    approval: Approval
    text: bytes
    statement: bytes | None = None  # the statement name, for a Parse
    asked: bool = False


def _used(awaiting: _Awaiting) -> Decision:
    """What a prepared statement's later executions get: its token allowed one."""
    return Decision(
        Action.require_approval,
        "sqlguard.approval.used",
        "sqlguard: this prepared statement's approval has been used",
        f"Approval {awaiting.approval.id} allowed one execution of the statement.",
        "Ask the approver for a new token and prepare the statement again with it.",
    )


class TlsOffer(enum.Enum):
    """What the sidecar offers clients: no TLS, TLS on request, or TLS only."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


_TLS_REQUIRED = PgError(
    "FATAL",
    "28000",
    "sqlguard accepts only TLS connections",
    "This sidecar is configured with tls.required: true.",
    "Connect with sslmode=require (or verify-full with the sidecar's CA certificate).",
)
_BINDING_THROUGH_SIDECAR = PgError(
    "FATAL",
    PROTOCOL_VIOLATION,  # what PostgreSQL's own "SCRAM channel binding check failed" uses
    "sqlguard: SCRAM channel binding cannot pass through the sidecar",
    "The client bound its login (SCRAM-SHA-256-PLUS) to the sidecar's TLS certificate; the "
    "database server checks the binding against its own certificate and would refuse it.",
    "Connect with channel_binding=disable (the connection stays encrypted), or have "
    "sqlguard log people in itself (managed identities), where channel binding works.",
)
_SASL_REQUEST = auth.SASL.to_bytes(4, "big")  # AuthenticationSASL's code


class Phase(enum.Enum):
    STARTUP = "startup"  # waiting for SSLRequest/StartupMessage/CancelRequest
    AUTH = "auth"  # upstream authenticates the client through us
    READY = "ready"  # statements flow and are judged
    CLOSED = "closed"


class Session:
    """One client connection and its upstream connection, as a pure state machine."""

    def __init__(
        self,
        judge: Judge,
        rules_version: Callable[[], str],
        client_addr: str = "",
        accounts: Accounts | None = None,
        tls: TlsOffer = TlsOffer.NONE,
    ):
        self._judge = judge
        self._tls = tls
        self.encrypted = False  # the client connection runs over TLS
        self._tls_binding: bytes | None = None  # its certificate's tls-server-end-point data
        self._upstream_binding: bytes | None = None  # the upstream certificate's, over TLS
        self._sasl_requested = False  # passthrough: the upstream's last request was SASL
        self._direct_tls = False
        self._accounts = accounts  # managed identities mode; None: passthrough
        self._client_login: ClientLogin | None = None
        self._upstream_login: UpstreamLogin | None = None
        self._login_method = ""  # managed mode: how the person authenticated
        self._startup_params: dict[str, str] = {}
        self._early_bytes = b""  # what followed the StartupMessage in the same read
        self._tokens = ApprovalTokens()
        self._queue: deque[bytes | Frame] = deque()
        self._awaiting: _Awaiting | None = None
        self._client_addr = client_addr
        self.phase = Phase.STARTUP
        self.identity: Identity | None = None
        self.tx_status = b"I"
        self._startup = StartupReader()
        self._client = FrameScanner(_CLIENT_INSPECT, allowed_types=_FRONTEND_TYPES)
        self._server = FrameScanner(_SERVER_INSPECT)
        self._negotiation = ProtocolNegotiation(0, 0, pending=False)
        self._prepared = PreparedStatements(self._decide, rules_version)
        self._refusals = RefusalMarkers()
        self._inflight = InFlight()
        self._events: list[Command] = []  # raised while handling messages, sent with them
        self._server_fatal = False
        self._terminating = False

    def set_max_message_bytes(self, limit: int) -> None:
        """Cap for client messages the firewall must read whole (Query, Parse, Bind ...)."""
        self._client = FrameScanner(_CLIENT_INSPECT, limit, _FRONTEND_TYPES)

    # ---- client -> server -------------------------------------------------------------

    def receive_client(self, data: bytes) -> list[Command]:
        if self.phase is Phase.CLOSED:
            return []
        if self.phase is Phase.STARTUP:
            return self._receive_startup(data)
        try:
            self._queue.extend(self._client.feed(data))
        except FrameError as exc:
            return self._violation(str(exc))
        return self._drain()

    @property
    def awaiting_approval(self) -> bool:
        """A message waits for the ledger: the shell stops reading the client meanwhile."""
        return self._awaiting is not None

    def _drain(self) -> list[Command]:
        """Handle queued client messages in order, stopping at one that awaits the ledger."""
        out: list[bytes] = []
        queue = self._queue
        try:
            while queue and self._awaiting is None and self.phase is not Phase.CLOSED:
                item = queue.popleft()
                out.append(item if isinstance(item, bytes) else self._client_message(item))
        except m.MalformedMessage as exc:
            return self._violation(str(exc))
        commands, self._events = self._events, []
        if out:
            commands.append(ToServer(b"".join(out)))
        if self._awaiting is not None and not self._awaiting.asked:
            self._awaiting.asked = True
            commands.append(ConsumeApproval(self._awaiting.approval))
        if self._terminating and not self._queue and self._awaiting is None:
            commands.append(self._close("client sent Terminate"))
        return commands

    def approval_consumed(self, refusal: Decision | None) -> list[Command]:
        """The ledger's answer for the waiting message: None lets it go upstream as sent."""
        awaiting, self._awaiting = self._awaiting, None
        if awaiting is None or self.phase is Phase.CLOSED:
            return []
        if refusal is None:
            if awaiting.statement is not None:
                self._prepared.remember(awaiting.statement, awaiting.text, _used(awaiting))
                self._prepared.allow_once(awaiting.statement)
            data = awaiting.raw
        elif awaiting.statement is None:
            data = m.query(self._refusals.add(self._error_for(refusal), ends_with_next_sync=False))
        else:
            self._prepared.remember(awaiting.statement, awaiting.text, refusal)
            data = self._extended_refusal(refusal)
        return [ToServer(data), *self._drain()]

    def _client_message(self, frame: Frame) -> bytes:
        if self.phase is Phase.AUTH:
            if self._client_login is not None and frame.type == ord("p"):
                return self._on_password(self._client_login, frame)
            if self._sasl_requested and frame.type == ord("p"):
                return self._on_passthrough_sasl(frame)
            # Managed mode: once the person is authenticated, the sidecar's own login to
            # the upstream runs, and nothing from the client may take part in it.
            expected = b"X" if self._accounts is not None else b"pX"
            if frame.type not in expected:
                raise m.MalformedMessage(
                    f"unexpected message {chr(frame.type)!r} during authentication"
                )
        handler = _CLIENT_HANDLERS.get(frame.type)
        return handler(self, frame) if handler else frame.raw

    def _on_password(self, login: ClientLogin, frame: Frame) -> bytes:
        """Managed identities: one step of the person's own authentication with the sidecar."""
        assert self.identity is not None and self._accounts is not None
        outcome = login.answer(frame.body)
        if isinstance(outcome, bytes):
            self._events.append(ToClient(outcome))
        elif isinstance(outcome, LoginFailed):
            self._login_failed(outcome)
        else:
            self._authenticated(outcome)
        return b""

    def _passthrough_offer(self, frame: Frame) -> bytes:
        """The upstream's SASL offer, for a client that logs in through the sidecar. Over its
        own TLS the upstream offers SCRAM-SHA-256-PLUS; a client whose connection to the
        sidecar is plaintext must not see that offer: libpq takes -PLUS over a non-TLS
        connection for a man in the middle and gives up. Without it, it uses SCRAM-SHA-256."""
        mechanisms = auth.sasl_mechanisms(frame.body[4:])
        if self.encrypted or MECHANISM_PLUS not in mechanisms:
            return frame.raw
        return auth.authentication_sasl([name for name in mechanisms if name != MECHANISM_PLUS])

    def _on_passthrough_sasl(self, frame: Frame) -> bytes:
        """The client's choice of SASL mechanism, on its way to the upstream. SCRAM-SHA-256-PLUS
        binds the login to the certificate the client saw, the sidecar's; the upstream checks
        it against its own, so unless both are the same certificate the login cannot work,
        and PostgreSQL's error would not say why."""
        self._sasl_requested = False
        mechanism, _ = auth.decode_sasl_initial(frame.body)
        if mechanism != MECHANISM_PLUS or self._tls_binding == self._upstream_binding:
            return frame.raw
        self._events += [
            LoginResult(ok=False, reason="SCRAM channel binding through the sidecar", guess=False),
            *self.refuse_login(_BINDING_THROUGH_SIDECAR),
        ]
        return b""

    def _authenticated(self, outcome: Authenticated) -> None:
        self._client_login = None
        self._login_method = outcome.method
        person, now = outcome.person, self._accounts.now()  # type: ignore[union-attr]
        assert self.identity is not None and self._accounts is not None
        refusal = access_refused(person, self.identity.database, now)
        if refusal is not None:
            self._login_failed(LoginFailed(refusal, refusal.message, guess=False))
            return
        self.identity = replace(self.identity, groups=person.groups_at(now))
        role = person.upstream_role
        self._upstream_login = UpstreamLogin(role, self._accounts.upstream_password(role))
        params = {**self._startup_params, "user": role}
        params.setdefault("database", self.identity.database)
        startup = m.StartupMessage(3, self._negotiation.minor, params).encode()
        if outcome.server_final:
            self._events.append(ToClient(outcome.server_final))
        self._events.append(OpenUpstream(startup, self.identity))

    def _login_failed(self, failure: LoginFailed) -> None:
        self._events += [
            LoginResult(ok=False, reason=failure.reason, guess=failure.guess),
            *self.refuse_login(failure.error),
        ]

    def _on_query(self, frame: Frame) -> bytes:
        self._refusals.boundary_sent()
        attached = self._tokens.take(m.decode_query(frame.body))
        if attached.replacement is not None:
            return m.query(attached.replacement)
        decision = self._decide(attached.text, attached.token)
        self._started(attached.text, decision, simple=True)
        if decision.approval is not None:
            self._awaiting = _Awaiting(frame.raw, decision.approval, attached.text)
            return b""
        if decision.refused:
            return m.query(self._refusals.add(self._error_for(decision), ends_with_next_sync=False))
        return frame.raw

    def _on_parse(self, frame: Frame) -> bytes:
        name, text = m.decode_parse(frame.body)
        attached = self._tokens.take(text)
        if attached.replacement is not None:
            return m.parse(name, attached.replacement)
        decision = self._decide(attached.text, attached.token)
        if decision.approval is not None:
            self._awaiting = _Awaiting(frame.raw, decision.approval, attached.text, name)
            return b""
        self._prepared.remember(name, attached.text, decision)
        if not decision.refused:
            return frame.raw
        self._started(attached.text, decision, simple=False)  # ends with the refusal
        return self._extended_refusal(decision)

    def _on_bind(self, frame: Frame) -> bytes:
        decision = self._prepared.bound(*m.decode_bind_names(frame.body))
        return self._extended_refusal(decision) if decision else frame.raw

    def _on_execute(self, frame: Frame) -> bytes:
        portal = m.cstring(frame.body, 0)[0]
        decision = self._prepared.portal(portal)  # first: it may judge the portal again
        statement = self._prepared.portal_statement(portal)
        if statement is not None:
            self._started(*statement, simple=False)
        return self._extended_refusal(decision) if decision else frame.raw

    def _started(self, text: bytes, decision: Decision, *, simple: bool) -> None:
        boundary = self._refusals.sent + (0 if simple else 1)
        statement_id = self._inflight.started(simple=simple, boundary=boundary)
        self._events.append(StatementStarted(statement_id, text, decision))

    def _on_describe(self, frame: Frame) -> bytes:
        target, name = m.decode_target(frame.body)
        if target == ord("S"):
            decision = self._prepared.statement(name)
        else:
            decision = self._prepared.portal(name)
        return self._extended_refusal(decision) if decision and decision.refused else frame.raw

    def _on_close(self, frame: Frame) -> bytes:
        self._prepared.closed(*m.decode_target(frame.body))
        return frame.raw

    def _on_sync(self, frame: Frame) -> bytes:
        self._refusals.boundary_sent()
        return frame.raw

    def _on_function_call(self, frame: Frame) -> bytes:
        # FunctionCall runs any function by OID with no SQL text to judge (docs, "Function Call").
        self._refusals.boundary_sent()
        error = PgError(
            "ERROR",
            FEATURE_NOT_SUPPORTED,
            "sqlguard: the FunctionCall protocol message is not allowed",
            "It calls a function by its OID without SQL text, so no rule can judge it.",
            "Call the function with a SELECT statement instead.",
        )
        return m.query(self._refusals.add(error.encode(), ends_with_next_sync=False))

    def _on_terminate(self, frame: Frame) -> bytes:
        self._terminating = True
        return frame.raw

    def _decide(self, text: bytes, token: str | None = None) -> Decision:
        assert self.identity is not None
        return self._judge(text, self.identity, token)

    def _extended_refusal(self, decision: Decision) -> bytes:
        marker = self._refusals.add(self._error_for(decision), ends_with_next_sync=True)
        # A named marker statement: a failing unnamed Parse would drop the client's unnamed one.
        return m.parse(marker, marker)

    @staticmethod
    def _error_for(decision: Decision) -> bytes:
        return PgError(
            "ERROR", decision.sqlstate, decision.message, decision.detail, decision.hint
        ).encode()

    # ---- startup ----------------------------------------------------------------------

    def _receive_startup(self, data: bytes) -> list[Command]:
        if data[:1] == bytes([_DIRECT_TLS_FIRST_BYTE]) and not self._startup.buffered:
            return self._direct_tls_hello(data)
        try:
            body = self._startup.feed(data)
            if body is None:
                return []
            packet = m.decode_startup_packet(body)
        except (FrameError, m.MalformedMessage) as exc:
            return self._violation(str(exc))
        if isinstance(packet, m.EncryptionRequest):
            return self._encryption_request(packet)
        if isinstance(packet, m.CancelRequest):
            return [ForwardCancel(packet.pid, packet.key), self._close("cancel request")]
        if self._tls is TlsOffer.REQUIRED and not self.encrypted:
            return self.refuse_login(_TLS_REQUIRED)
        return self._start(packet)

    def _encryption_request(self, packet: m.EncryptionRequest) -> list[Command]:
        rest = self._startup.take_rest()
        if packet.code != m.SSL_REQUEST_CODE or self._tls is TlsOffer.NONE or self.encrypted:
            # No GSS encryption, no TLS here: one unframed 'N', then the client goes on.
            return [ToClient(b"N"), *(self._receive_startup(rest) if rest else [])]
        if rest:
            # Bytes sent before the handshake would be read as if they came over TLS
            # (CVE-2021-23214): PostgreSQL refuses them too.
            return self._violation("received unencrypted data after SSL request")
        return [ToClient(b"S"), StartTls()]

    def _direct_tls_hello(self, data: bytes) -> list[Command]:
        """PostgreSQL 17's direct TLS: the first bytes are already a TLS ClientHello."""
        if self._tls is TlsOffer.NONE or self.encrypted:
            return [self._close("direct TLS is not enabled on this sidecar")]
        self._direct_tls = True
        return [StartTls(data)]

    def tls_established(self, alpn: str | None, binding: bytes | None = None) -> list[Command]:
        """The shell finished the handshake; direct TLS must have agreed on ALPN postgresql.
        ``binding``: the served certificate's ``tls-server-end-point`` data, which managed
        identities' SCRAM offers as -PLUS (None: the certificate has none)."""
        self.encrypted = True
        self._tls_binding = binding
        if self._direct_tls and alpn != "postgresql":
            return self._violation(
                "direct TLS connection without ALPN protocol postgresql "
                "(use sslnegotiation=direct with a PostgreSQL 17 or newer client)"
            )
        return []

    def _start(self, packet: m.StartupMessage) -> list[Command]:
        if packet.major != 3:
            return self.refuse_login(
                PgError(
                    "FATAL",
                    FEATURE_NOT_SUPPORTED,
                    f"unsupported frontend protocol {packet.major}.{packet.minor}: "
                    "sqlguard supports 3.0 to 3.2",
                )
            )
        check = check_startup_params(packet.params)
        if check.error:
            return self.refuse_login(check.error)
        minor = min(packet.minor, _NEWEST_MINOR) if packet.minor != 1 else 0
        self._negotiation = ProtocolNegotiation(packet.minor, minor, check.protocol_options)
        params = check.upstream
        self.identity = Identity(
            user=params["user"],
            database=params.get("database") or params["user"],
            application_name=params.get("application_name", ""),
            client_addr=self._client_addr,
        )
        self.phase = Phase.AUTH
        self._startup_params = params
        self._early_bytes = self._startup.take_rest()
        return [Admit(self.identity)]

    def admitted(self, refusal: PgError | None) -> list[Command]:
        """The shell's answer to Admit: go on with the login, or refuse it with ``refusal``."""
        if self.phase is Phase.CLOSED or self.identity is None:
            return []
        if refusal is not None:
            return self.refuse_login(refusal)
        if self._accounts is None:
            startup = m.StartupMessage(3, self._negotiation.minor, self._startup_params).encode()
            commands: list[Command] = [OpenUpstream(startup, self.identity)]
        else:
            self._client_login = ClientLogin(self._accounts, self.identity.user, self._tls_binding)
            # As PostgreSQL does, settle the protocol version before authenticating; the
            # upstream's own answer later is the sidecar's business (see _on_negotiate).
            commands = [ToClient(self._negotiated() + self._client_login.request())]
        rest, self._early_bytes = self._early_bytes, b""
        return commands + (self.receive_client(rest) if rest else [])

    def upstream_opened(self, binding: bytes | None) -> None:
        """The shell connected to the upstream; ``binding``: over TLS, the upstream
        certificate's ``tls-server-end-point`` data (None: no TLS, or a certificate without)."""
        self._upstream_binding = binding
        if self._upstream_login is not None:
            self._upstream_login.binding = binding

    def refuse_login(self, error: PgError) -> list[Command]:
        """End the connection before (or during) authentication with a FATAL `error`."""
        return [ToClient(error.encode()), self._close(error.message)]

    # ---- server -> client -------------------------------------------------------------

    def receive_server(self, data: bytes) -> list[Command]:
        if self.phase is Phase.CLOSED:
            return []
        commands: list[Command] = []
        out: list[bytes] = []
        try:
            for item in self._server.feed(data):
                out.append(
                    item if isinstance(item, bytes) else self._server_message(item, commands)
                )
        except (FrameError, m.MalformedMessage) as exc:
            self.phase = Phase.CLOSED
            error = fatal(PROTOCOL_VIOLATION, f"sqlguard: invalid message from the upstream: {exc}")
            return [ToClient(b"".join(out) + error), Close("upstream protocol violation")]
        if self._negotiation.pending and out:
            out.insert(0, self._negotiated())
        if out:
            commands.insert(0, ToClient(b"".join(out)))
        return commands

    def _server_message(self, frame: Frame, commands: list[Command]) -> bytes:
        kind = frame.type
        if kind == ord("Z"):
            if self.phase is Phase.AUTH:
                role = self._upstream_login.role if self._upstream_login else ""
                commands.append(LoginResult(ok=True, role=role, method=self._login_method))
            return self._on_ready(frame, commands)
        if kind == ord("R"):
            return self._on_auth_request(frame, commands)
        if kind == ord("E"):
            if self.phase is Phase.AUTH:
                return self._on_login_error(frame, commands)
            raw = self._on_server_error(frame)
            sqlstate = decode_fields(raw[5:]).get("C", "")
            self._finished(self._inflight.result(b"E", sqlstate), commands)
            return raw
        if kind in _RESULT_ENDS:
            tag = frame.body[:-1].decode("utf-8", "replace") if kind == ord("C") else ""
            self._finished(self._inflight.result(bytes([kind]), tag), commands)
            return frame.raw
        if kind == ord("K"):
            return self._on_backend_key(frame, commands)
        return self._on_negotiate(frame)

    def _on_auth_request(self, frame: Frame, commands: list[Command]) -> bytes:
        """Passthrough: the client answers. Managed: the sidecar answers as the mapped role."""
        login = self._upstream_login
        if login is None or self.phase is not Phase.AUTH:
            self._sasl_requested = frame.body[:4] == _SASL_REQUEST
            return self._passthrough_offer(frame) if self._sasl_requested else frame.raw
        answer = login.answer(frame.body)
        if answer is None:
            return frame.raw  # AuthenticationOk: the client learns it is logged in
        if isinstance(answer, PgError):
            commands += [LoginResult(ok=False, reason=answer.detail, guess=False)]
            commands.append(self._close(answer.message))
            return answer.encode()
        if answer:
            commands.append(ToServer(answer))
        return b""

    def _on_login_error(self, frame: Frame, commands: list[Command]) -> bytes:
        """The upstream refused the login. Managed mode: say so without its role details."""
        if self._upstream_login is None:
            commands.append(LoginResult(ok=False))
            return self._on_server_error(frame)
        message = decode_fields(frame.body).get("M", "")
        error = self._upstream_login.upstream_error()
        commands.append(LoginResult(ok=False, reason=message, guess=False))
        self._server_fatal = True
        return error.encode()

    def _on_ready(self, frame: Frame, commands: list[Command]) -> bytes:
        self.tx_status = frame.body[:1]
        if self.phase is Phase.AUTH:
            self.phase = Phase.READY
            return frame.raw
        self._refusals.ready_received()
        for finished in self._inflight.ready(self._refusals.done):
            self._finished(finished, commands)
        if self.tx_status == b"I":
            self._prepared.transaction_ended()
        return frame.raw

    @staticmethod
    def _finished(finished: Finished | None, commands: list[Command]) -> None:
        if finished is not None:
            commands.append(
                StatementFinished(finished.id, finished.sqlstate, finished.tag, finished.ran)
            )

    def _on_server_error(self, frame: Frame) -> bytes:
        if b"VFATAL\0" in frame.body or b"VPANIC\0" in frame.body:
            self._server_fatal = True
        return self._refusals.replace(frame.raw)

    def _on_backend_key(self, frame: Frame, commands: list[Command]) -> bytes:
        pid, upstream_key = m.decode_backend_key(frame.body)
        client_key = secrets.token_bytes(4 if self._negotiation.minor == 0 else 32)
        commands.append(RegisterCancelKey(pid, client_key, upstream_key))
        return m.backend_key_data(pid, client_key)

    def _on_negotiate(self, frame: Frame) -> bytes:
        """The upstream is older than the version we asked for: settle on its minor version."""
        minor, _ = m.decode_negotiate(frame.body)
        if self._negotiation.pending:  # else the client was told already (managed mode)
            self._negotiation.minor = min(self._negotiation.minor, minor)
        return b""

    def _negotiated(self) -> bytes:
        """Our NegotiateProtocolVersion, once, before the first message the client sees."""
        negotiation = self._negotiation
        if not negotiation.pending:
            return b""
        negotiation.pending = False
        if not negotiation.needed:
            return b""
        return m.negotiate_protocol_version(negotiation.minor, negotiation.unsupported)

    # ---- closing ----------------------------------------------------------------------

    def shutdown(self) -> list[Command]:
        """The sidecar is stopping: end the session as PostgreSQL's fast shutdown does."""
        error = PgError(
            "FATAL", ADMIN_SHUTDOWN, "terminating connection due to administrator command"
        )
        return self.end(error, "sidecar shutting down")

    def end(self, error: PgError, reason: str) -> list[Command]:
        """End a live session with a FATAL ``error`` (shutdown, access expired or revoked).

        The upstream gets Terminate, so an open transaction is rolled back. The FATAL goes
        out only between two server messages: inside a half-forwarded DataRow it would
        corrupt the client's stream, so then the client just sees the socket close.
        """
        if self.phase is Phase.CLOSED:
            return []
        commands: list[Command] = [ToServer(m.TERMINATE)] if self.phase is Phase.READY else []
        if self._server.at_boundary:
            commands.append(ToClient(error.encode()))
        return [*commands, self._close(reason)]

    def client_closed(self) -> list[Command]:
        if self.phase is Phase.CLOSED:
            return []
        terminate = [ToServer(m.TERMINATE)] if self.phase is Phase.READY else []
        return [*terminate, self._close("client disconnected")]

    def server_closed(self) -> list[Command]:
        if self.phase is Phase.CLOSED:
            return []
        if self._server_fatal or self._terminating:
            return [self._close("upstream closed the connection")]
        error = fatal(
            CONNECTION_FAILURE,
            "sqlguard: the connection to the upstream PostgreSQL server was lost",
            hint="Reconnect; if this repeats, check that the database server is running.",
        )
        return [ToClient(error), self._close("upstream connection lost")]

    def upstream_unreachable(self, reason: str) -> list[Command]:
        error = PgError(
            "FATAL",
            CONNECTION_FAILURE,
            "sqlguard could not connect to the upstream PostgreSQL server",
            reason,
            "Check that the database server is running and that sqlguard's --upstream is right.",
        )
        return self.refuse_login(error)

    def _violation(self, reason: str) -> list[Command]:
        error = fatal(PROTOCOL_VIOLATION, f"sqlguard: invalid message from the client: {reason}")
        return [ToClient(error), self._close(f"protocol violation: {reason}")]

    def _close(self, reason: str) -> Close:
        self.phase = Phase.CLOSED
        return Close(reason)


_CLIENT_HANDLERS: dict[int, Callable[[Session, Frame], bytes]] = {
    ord("Q"): Session._on_query,
    ord("P"): Session._on_parse,
    ord("B"): Session._on_bind,
    ord("E"): Session._on_execute,
    ord("D"): Session._on_describe,
    ord("C"): Session._on_close,
    ord("S"): Session._on_sync,
    ord("F"): Session._on_function_call,
    ord("X"): Session._on_terminate,
}
