"""What the session asks its shell to do; the shell carries these out and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from sqlguard.approvals.tokens import Approval
from sqlguard.policy.model import Decision, Identity


@dataclass(slots=True)
class ToClient:
    data: bytes


@dataclass(slots=True)
class ToServer:
    data: bytes


@dataclass(slots=True)
class StartTls:
    """Wrap the client connection in TLS; ``data`` are bytes already read that belong to
    the TLS stream (a direct-TLS ClientHello). Answer with ``Session.tls_established``."""

    data: bytes = b""


@dataclass(slots=True)
class Admit:
    """A login starts: check the connection limits and lock-outs, then answer with
    ``Session.admitted`` (before any password is checked, so a locked-out guesser learns
    nothing from the answer)."""

    identity: Identity


@dataclass(slots=True)
class OpenUpstream:
    """Connect to the upstream and send `startup` as the first bytes."""

    startup: bytes
    identity: Identity


@dataclass(slots=True)
class ForwardCancel:
    """A CancelRequest for the backend a client saw as (pid, key)."""

    pid: int
    key: bytes


@dataclass(slots=True)
class RegisterCancelKey:
    pid: int
    client_key: bytes
    upstream_key: bytes


@dataclass(slots=True)
class ConsumeApproval:
    """Record a verified approval token as used; answer with `Session.approval_consumed`."""

    approval: Approval


@dataclass(slots=True)
class StatementStarted:
    """A Query or Execute went upstream (or was refused in its place): tracing starts here."""

    id: int
    text: bytes
    decision: Decision


@dataclass(slots=True)
class StatementFinished:
    """Its result is complete: SQLSTATE ("" for success), CommandComplete tag, ran or skipped."""

    id: int
    sqlstate: str
    tag: str
    ran: bool


@dataclass(slots=True)
class LoginResult:
    """The login succeeded (ReadyForQuery) or failed.

    ``guess``: a failure that counts toward the lock-out (a wrong password, not an expired
    identity or a refusal of sqlguard's own upstream login); ``role``: the database role the
    session runs as, in managed identities mode; ``method``: how the person proved who they
    are there (``SCRAM-SHA-256-PLUS`` when bound to the TLS connection, ``SCRAM-SHA-256``,
    ``password``).
    """

    ok: bool
    reason: str = ""
    guess: bool = True
    role: str = ""
    method: str = ""


@dataclass(slots=True)
class Close:
    """Flush what is queued, then close both sides."""

    reason: str


Command = (
    ToClient
    | ToServer
    | StartTls
    | Admit
    | OpenUpstream
    | ForwardCancel
    | RegisterCancelKey
    | ConsumeApproval
    | LoginResult
    | StatementStarted
    | StatementFinished
    | Close
)
