"""The proxy's events as audit records: one adapter, fed by the shell and the firewall.

Statement texts are recorded sanitised (literals replaced), so the log never holds a value
or a password from a statement; the fingerprint identifies the exact statement instead.
When the log cannot take more records, `refusal()` is the decision every new statement gets
(fail closed), until the writer catches up by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlguard.analysis.describe import Described
from sqlguard.observe.audit_records import RecordType, decision_fields, identity_fields
from sqlguard.observe.audit_writer import UNAVAILABLE_MESSAGE, UNAVAILABLE_SQLSTATE, AuditQueue
from sqlguard.policy.model import Action, Decision, Identity
from sqlguard.wire.messages import rows_in_tag

AUDIT_UNAVAILABLE = Decision(
    Action.deny,
    "sqlguard.audit-unavailable",
    f"sqlguard: {UNAVAILABLE_MESSAGE}",
    "Every statement must be recorded in the audit log before it runs, and the log cannot "
    "be written right now (disk full or failing).",
    "Try again in a moment; if this persists, ask a DBA to check sqlguard's audit log disk.",
    UNAVAILABLE_SQLSTATE,
)


_STATEMENT = str(RecordType.statement)


class Auditor:
    """Turns what happened into records for the tamper-evident log."""

    def __init__(self, log: AuditQueue, rules_version: Callable[[], str]) -> None:
        self.log = log
        self._rules_version = rules_version

    def refusal(self) -> Decision | None:
        return None if self.log.accepting else AUDIT_UNAVAILABLE

    def connection_opened(self, connection: int, peer: str) -> None:
        self._submit(RecordType.connection_open, conn=connection, client_addr=peer)

    def connection_closed(self, connection: int, reason: str) -> None:
        self._submit(RecordType.connection_close, conn=connection, reason=reason)

    def login(
        self,
        connection: int,
        identity: Identity,
        ok: bool,
        reason: str = "",
        role: str = "",
        tls: str = "",
        method: str = "",
    ) -> None:
        """A login; in managed identities mode with the person's groups, database role and
        how they authenticated, and the TLS version when the client connected over TLS."""
        extra: dict[str, Any] = {"reason": reason} if reason else {}
        if tls:
            extra["tls"] = tls
        if method:
            extra["auth"] = method
        if role:
            extra.update(role=role, groups=list(identity.groups))
        self._submit(RecordType.login, conn=connection, ok=ok, **identity_fields(identity), **extra)

    def identity_ended(self, connection: int, identity: Identity, revoked: bool, why: str) -> None:
        """A live session ended because the person's access expired or was revoked."""
        kind = RecordType.identity_revoked if revoked else RecordType.identity_expired
        self._submit(kind, conn=connection, reason=why, **identity_fields(identity))

    def identities_reloaded(self, ok: bool, error: str = "") -> None:
        self._submit(RecordType.identities_reload, ok=ok, **({"error": error} if error else {}))

    def statement(
        self,
        identity: Identity,
        described: Described,
        decision: Decision,
        ended: tuple[int, str, str, float],
    ) -> None:
        """One statement that ran or was refused, and how it ended: (connection, SQLSTATE
        or "", CommandComplete tag, seconds). Its record is built off the event loop
        (``submit_deferred``), with the rules version of now."""
        version = self._rules_version()
        self.log.submit_deferred(_statement_record, identity, described, decision, ended, version)

    def rules_reloaded(self, ok: bool, version: str) -> None:
        self._submit(RecordType.rules_reload, ok=ok, rules_version=version)

    def approval(self, outcome: str, fields: dict[str, Any]) -> None:
        kind = RecordType.approval_used if outcome == "used" else RecordType.approval_refused
        self._submit(kind, outcome=outcome, **fields)

    def _submit(self, kind: RecordType, **fields: Any) -> None:
        self.log.submit({"type": str(kind), **fields})


def _statement_record(
    identity: Identity,
    pending: Described,
    decision: Decision,
    ended: tuple[int, str, str, float],
    rules_version: str,
) -> dict[str, Any]:
    """A statement's record, built as one dict (no keyword-argument merging)."""
    connection, sqlstate, tag, seconds = ended
    described = pending.resolve()
    record = identity_fields(identity)
    record.update(decision_fields(decision, rules_version))
    record["type"] = _STATEMENT
    record["text"] = described.text
    record["summary"] = described.summary
    record["fingerprint"] = described.fingerprint
    record["kinds"] = list(described.kinds)
    record["tables"] = list(described.tables)
    record["sqlstate"] = sqlstate or None
    record["rows"] = rows_in_tag(tag)
    record["duration_ms"] = round(seconds * 1000, 3)
    record["conn"] = connection
    return record
