"""The two-person rule at work: what happens to a statement the rules send for approval.

Without a token, the request is recorded and the refusal's hint tells the requester the
exact `sqlguard approve` command an approver would run. With a token, it is verified
(signature, two people, group, requester, database, statement, expiry); a valid token still
has to be entered in the ledger of used tokens (asynchronously: the ledger may be a shared
PostgreSQL table) before the statement goes upstream. Every use and refusal is recorded here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import replace

from sqlguard.analysis.fingerprint import fingerprint
from sqlguard.approvals.config import ApprovalSettings
from sqlguard.approvals.ledger import Ledger, LedgerError, open_ledger
from sqlguard.approvals.refusals import Refused, Statement, needs_approval_hint, replayed_refusal
from sqlguard.approvals.requests import RequestStore
from sqlguard.approvals.tokens import Approval
from sqlguard.approvals.verify import verify
from sqlguard.policy.model import Action, Decision, Identity

log = logging.getLogger("sqlguard.approvals")


class ApprovalGate:
    """Approvals for one sidecar: its approvers, pending requests and used-token ledger."""

    def __init__(self, settings: ApprovalSettings) -> None:
        self.settings = settings
        self.requests = RequestStore(settings.requests)
        self.ledger: Ledger = open_ledger(settings.ledger)
        # Called with each outcome ("used", "replayed", "expired", ...) and who/what it was
        # about: metrics and audit.
        self.on_outcome: Callable[[str, dict[str, str]], None] | None = None

    async def open(self) -> None:
        await self.ledger.connect()

    async def close(self) -> None:
        await self.ledger.close()
        self.requests.close()

    def review(
        self,
        decision: Decision,
        text: str,
        identity: Identity,
        token: str | None,
        groups: Collection[str],
    ) -> Decision:
        """The decision for a statement the rules say needs approval."""
        try:
            statement = Statement(identity.user, identity.database, fingerprint(text))
        except ValueError:
            return decision  # PostgreSQL cannot scan it either: the refusal stands as is
        now = int(time.time())
        if token is None:
            request_id = self.requests.record(*_request(statement, text), None, now)
            return replace(
                decision, hint=f"{decision.hint} {needs_approval_hint(statement, request_id)}"
            )
        result = verify(
            token,
            approvers=self.settings.approvers,
            requester=identity.user,
            requester_groups=groups,
            database=identity.database,
            fingerprint=statement.fingerprint,
            now=now,
            clock_skew=self.settings.clock_skew,
            max_ttl=self.settings.max_ttl,
        )
        if isinstance(result, Refused):
            self._record(statement, result.approval, result.reason, now)
            return _refusal(result)
        return Decision(Action.allow, decision.rule_id, "", "", "", approval=result.approval)

    async def consume(self, approval: Approval) -> Decision | None:
        """Enter a verified token in the ledger: None if this is its first use, else the
        refusal to send (replayed, or the ledger could not be reached: fail closed)."""
        now = int(time.time())
        statement = Statement(approval.requester, approval.database, approval.fingerprint)
        try:
            first_use = await self.ledger.consume(approval, now)
        except LedgerError as exc:
            log.error("approval ledger unavailable, refusing token %s: %s", approval.id, exc)
            return _ledger_down(approval)
        if not first_use:
            self._record(statement, approval, "replayed", now)
            return _refusal(replayed_refusal(approval, statement))
        self._record(statement, approval, "used", now)
        self.requests.mark_used(statement.fingerprint, statement.requester, approval, now)
        return None

    def _record(
        self, statement: Statement, approval: Approval | None, outcome: str, now: int
    ) -> None:
        approver, token_id = (approval.approver, approval.id) if approval else ("", "")
        log.info(
            "approval %s: requester=%s approver=%s fingerprint=%s token=%s",
            outcome,
            statement.requester,
            approver or "-",
            statement.fingerprint,
            token_id or "-",
        )
        if self.on_outcome is not None:
            fields = {
                "requester": statement.requester,
                "database": statement.database,
                "approver": approver,
                "fingerprint": statement.fingerprint,
                "approval_id": token_id,
            }
            self.on_outcome(outcome, fields)
        self.requests.record_outcome(
            statement.requester,
            approver,
            statement.fingerprint,
            outcome,
            token_id,
            now,
            statement.database,
        )


def _request(statement: Statement, text: str) -> tuple[str, str, str, str]:
    return statement.requester, statement.database, statement.fingerprint, text


def _refusal(refused: Refused) -> Decision:
    return Decision(
        Action.require_approval,
        f"sqlguard.approval.{refused.reason}",
        refused.message,
        refused.detail,
        refused.hint,
    )


def _ledger_down(approval: Approval) -> Decision:
    return Decision(
        Action.require_approval,
        "sqlguard.approval.ledger_unavailable",
        "sqlguard: approval token not accepted: the ledger of used tokens is unavailable",
        f"Token {approval.id} was not used; sqlguard cannot record its single use right now.",
        "Try again in a moment; if this persists, ask a DBA to check sqlguard's approval ledger.",
    )
