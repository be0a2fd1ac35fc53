"""Check an approval token against the statement it comes with. Pure: no clock, no I/O.

The checks run in a fixed order, cheapest trust first: a token that cannot be read, or whose
signature does not hold, is refused before anything it claims is believed. Single use is the
caller's last step (``ledger.consume``), so a token refused here is never spent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sqlguard.approvals.refusals import Refused, Statement, moment, refusal, replayed_refusal
from sqlguard.approvals.tokens import Approval, MalformedToken, read_token, signature_valid

__all__ = ["Approver", "Refused", "Verified", "replayed_refusal", "verify"]

ANY_GROUP = "*"


@dataclass(frozen=True, slots=True)
class Approver:
    """Someone whose signature the sidecar trusts, for requesters in ``groups``
    (``"*"``: any group). ``name`` is compared with PostgreSQL user names: an approver
    logged in under their own name is the requester, and cannot approve for themself."""

    name: str
    public_key: Ed25519PublicKey
    groups: frozenset[str]
    revoked: bool = False

    def may_approve_for(self, requester_groups: Collection[str]) -> bool:
        return ANY_GROUP in self.groups or not self.groups.isdisjoint(requester_groups)


@dataclass(frozen=True, slots=True)
class Verified:
    """The token is good for this statement (pending the single-use check)."""

    approval: Approval


@dataclass(frozen=True, slots=True)
class _Context:
    """What the checks compare a token with: the statement, the requester and the time."""

    statement: Statement
    requester_groups: Collection[str]
    now: int
    clock_skew: int
    max_ttl: int | None
    payload: bytes
    signature: bytes


def verify(
    token: str,
    *,
    approvers: Mapping[str, Approver],
    requester: str,
    requester_groups: Collection[str],
    database: str,
    fingerprint: str,
    now: int,
    clock_skew: int,
    max_ttl: int | None = None,
) -> Verified | Refused:
    """Is ``token`` a valid approval of this statement by this requester, at ``now``?

    ``max_ttl`` (seconds) refuses tokens minted for longer than the sidecar allows, whatever
    the approver's command line said; None skips that check.
    """
    statement = Statement(requester, database, fingerprint)
    try:
        approval, payload, signature = read_token(token)
    except MalformedToken as exc:
        return refusal("malformed", f"The token {exc}.", statement, None)
    approver = approvers.get(approval.approver)
    if approver is None:
        detail = f"The token is signed as {approval.approver!r}, who is not an approver."
        return refusal("unknown_approver", detail, statement, approval)
    context = _Context(statement, requester_groups, now, clock_skew, max_ttl, payload, signature)
    for check in _CHECKS:
        problem = check(approval, approver, context)
        if problem is not None:
            return refusal(*problem, statement, approval)
    return Verified(approval)


_Problem = tuple[str, str] | None


def _revoked(approval: Approval, approver: Approver, context: _Context) -> _Problem:
    if approver.revoked:
        return "revoked_approver", f"Approver {approver.name!r} has been revoked."
    return None


def _signed(approval: Approval, approver: Approver, context: _Context) -> _Problem:
    if signature_valid(approver.public_key, context.payload, context.signature):
        return None
    return "bad_signature", (
        f"The token was not signed with approver {approver.name!r}'s key, or was changed after."
    )


def _self_approval(approval: Approval, approver: Approver, context: _Context) -> _Problem:
    if approval.approver in (approval.requester, context.statement.requester):
        return "self_approval", (
            f"The token is issued by {approval.approver!r} for {approval.requester!r}; "
            "the two-person rule needs an approver other than the requester."
        )
    return None


def _allowed(approval: Approval, approver: Approver, context: _Context) -> _Problem:
    if approver.may_approve_for(context.requester_groups):
        return None
    theirs = ", ".join(sorted(approver.groups)) or "none"
    yours = ", ".join(sorted(context.requester_groups)) or "none"
    return "approver_not_allowed", (
        f"Approver {approver.name!r} approves for groups: {theirs}; "
        f"{context.statement.requester!r} is in groups: {yours}."
    )


def _requester(approval: Approval, approver: Approver, context: _Context) -> _Problem:
    if approval.requester == context.statement.requester:
        return None
    return "wrong_requester", (
        f"The token from {approval.approver!r} is for user {approval.requester!r}, "
        f"not {context.statement.requester!r}."
    )


def _database(approval: Approval, approver: Approver, context: _Context) -> _Problem:
    if approval.database == context.statement.database:
        return None
    return "wrong_database", (
        f"The token from {approval.approver!r} is for database {approval.database!r}, "
        f"not {context.statement.database!r}."
    )


def _statement(approval: Approval, approver: Approver, context: _Context) -> _Problem:
    if approval.fingerprint == context.statement.fingerprint:
        return None
    return "wrong_statement", (
        f"The token from {approval.approver!r} approves the statement with fingerprint "
        f"{approval.fingerprint}; this one has {context.statement.fingerprint} "
        "(any other name or value is another statement)."
    )


def _timely(approval: Approval, approver: Approver, context: _Context) -> _Problem:
    """Valid from ``issued_at - skew`` up to, not including, ``expires_at + skew``."""
    if context.now >= approval.expires_at + context.clock_skew:
        return "expired", (
            f"The token from {approval.approver!r} expired at {moment(approval.expires_at)}."
        )
    if context.now < approval.issued_at - context.clock_skew:
        return "not_yet_valid", (
            f"The token from {approval.approver!r} is issued at {moment(approval.issued_at)}, "
            f"after the sidecar's time {moment(context.now)}."
        )
    return None


def _lifetime(approval: Approval, approver: Approver, context: _Context) -> _Problem:
    lifetime = approval.expires_at - approval.issued_at
    if context.max_ttl is None or lifetime <= context.max_ttl:
        return None
    return "ttl_too_long", (
        f"The token from {approval.approver!r} is valid for {lifetime} s; "
        f"the sidecar allows at most {context.max_ttl} s (approvals.max_ttl)."
    )


_CHECKS: tuple[Callable[[Approval, Approver, _Context], _Problem], ...] = (
    _revoked,
    _signed,
    _self_approval,
    _allowed,
    _requester,
    _database,
    _statement,
    _timely,
    _lifetime,
)
