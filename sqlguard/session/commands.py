"""What the session asks its shell to do; the shell carries these out and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from sqlguard.approvals.tokens import Approval
from sqlguard.policy.model import Decision, Identity


@dataclass(frozen=True, slots=True)
class ToClient:
    data: bytes


@dataclass(frozen=True, slots=True)
class ToServer:
    data: bytes


@dataclass(frozen=True, slots=True)
class OpenUpstream:
    """Connect to the upstream and send `startup` as the first bytes."""

    startup: bytes
    identity: Identity


@dataclass(frozen=True, slots=True)
class ForwardCancel:
    """A CancelRequest for the backend a client saw as (pid, key)."""

    pid: int
    key: bytes


@dataclass(frozen=True, slots=True)
class RegisterCancelKey:
    pid: int
    client_key: bytes
    upstream_key: bytes


@dataclass(frozen=True, slots=True)
class ConsumeApproval:
    """Record a verified approval token as used; answer with `Session.approval_consumed`."""

    approval: Approval


@dataclass(frozen=True, slots=True)
class StatementStarted:
    """A Query or Execute went upstream (or was refused in its place): tracing starts here."""

    id: int
    text: bytes
    decision: Decision


@dataclass(frozen=True, slots=True)
class StatementFinished:
    """Its result is complete: SQLSTATE ("" for success), CommandComplete tag, ran or skipped."""

    id: int
    sqlstate: str
    tag: str
    ran: bool


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The upstream accepted (ReadyForQuery) or refused (FATAL) the client's login."""

    ok: bool


@dataclass(frozen=True, slots=True)
class Close:
    """Flush what is queued, then close both sides."""

    reason: str


Command = (
    ToClient
    | ToServer
    | OpenUpstream
    | ForwardCancel
    | RegisterCancelKey
    | ConsumeApproval
    | LoginResult
    | StatementStarted
    | StatementFinished
    | Close
)
