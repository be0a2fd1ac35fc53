"""What the requester reads when a token is refused, or when a statement needs one.

Each refusal says what is wrong (message), with which token (detail) and what to do next
(hint), in the words of the ErrorResponse the client gets (SQLSTATE 42501). The hint always
ends with the exact ``sqlguard approve`` command an approver would run for this statement.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlguard.approvals.tokens import Approval

REASONS = (
    "malformed",
    "unknown_approver",
    "revoked_approver",
    "bad_signature",
    "self_approval",
    "approver_not_allowed",
    "wrong_requester",
    "wrong_database",
    "wrong_statement",
    "expired",
    "not_yet_valid",
    "ttl_too_long",
    "replayed",
)


@dataclass(frozen=True, slots=True)
class Refused:
    """A refused token: ``reason`` is one of ``REASONS`` (for audit and metrics).

    ``approval`` is what the token claims, when it could be read (for the audit record); for
    unknown_approver, revoked_approver and bad_signature nobody vouches for those claims.
    """

    reason: str
    message: str
    detail: str
    hint: str
    approval: Approval | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """The statement a token came with: what a fresh token would have to bind."""

    requester: str
    database: str
    fingerprint: str

    def approve_command(self) -> str:
        """The command an approver runs to approve this statement.

        >>> Statement("bob", "shop", "ab" * 16).approve_command().split(" --fingerprint")[0]
        'sqlguard approve --key APPROVER.key --requester bob --database shop'
        """
        words = ["--requester", self.requester, "--database", self.database]
        quoted = " ".join(shlex.quote(word) for word in words)
        return f"sqlguard approve --key APPROVER.key {quoted} --fingerprint {self.fingerprint}"


def needs_approval_hint(statement: Statement, request_id: str) -> str:
    """The HINT of a statement refused because it needs approval (the request is recorded)."""
    return (
        f"Ask an approver to review request {request_id} (sqlguard approvals show {request_id})"
        f" and run: {statement.approve_command()} -- then send the statement again starting "
        "with /* sqlguard:approval=TOKEN */, or send SET sqlguard.approval = 'TOKEN' first."
    )


def refusal(reason: str, detail: str, statement: Statement, approval: Approval | None) -> Refused:
    """The Refused for ``reason`` (one of ``REASONS``), with its standard message and hint."""
    what, advice = _TEXTS[reason]
    who = f"approver {approval.approver}" if approval else "an approver"
    hint = f"{advice.format(who=who)} {statement.approve_command()}"
    return Refused(reason, f"sqlguard: approval token refused: {what}", detail, hint, approval)


def replayed_refusal(approval: Approval, statement: Statement | None = None) -> Refused:
    """The refusal of a token the ledger has seen before (each token is good for one use)."""
    statement = statement or Statement(approval.requester, approval.database, approval.fingerprint)
    detail = (
        f"Token {approval.id} from approver {approval.approver} was already used; "
        "each token allows its statement once."
    )
    return refusal("replayed", detail, statement, approval)


def moment(seconds: int) -> str:
    """A unix time as the detail texts show it.

    >>> moment(0)
    '1970-01-01 00:00:00 UTC'
    """
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_NEW_TOKEN = "Ask {who} for a new token:"
_OTHER_APPROVER = "Ask an approver listed in the sidecar's configuration to run:"
_TEXTS: dict[str, tuple[str, str]] = {
    "malformed": (
        "it is malformed",
        "Copy the whole token printed by sqlguard approve (it starts with sga1.); "
        "if it was cut, ask {who} to run again:",
    ),
    "unknown_approver": ("its approver is not known", _OTHER_APPROVER),
    "revoked_approver": ("its approver has been revoked", _OTHER_APPROVER),
    "bad_signature": ("its signature is not valid", _NEW_TOKEN),
    "self_approval": ("you cannot approve your own statement", _OTHER_APPROVER),
    "approver_not_allowed": (
        "its approver may not approve for you",
        "Ask an approver for one of your groups to run:",
    ),
    "wrong_requester": ("it was issued for another user", _NEW_TOKEN),
    "wrong_database": ("it was issued for another database", _NEW_TOKEN),
    "wrong_statement": (
        "it approves a different statement",
        "Send exactly the approved statement, or ask {who} to approve this one:",
    ),
    "expired": ("it has expired", _NEW_TOKEN),
    "not_yet_valid": ("it is not valid yet (check the approver's clock)", _NEW_TOKEN),
    "ttl_too_long": ("it is valid for longer than the sidecar allows", _NEW_TOKEN),
    "replayed": ("it has already been used", _NEW_TOKEN),
}
