"""Every reason a token is refused, in the documented order, and the clock-skew edges."""

from __future__ import annotations

from typing import Any

import pytest
from approval_support import APPROVERS, FINGERPRINT, NOW, STATEMENT, approval, token

from sqlguard.analysis.fingerprint import fingerprint
from sqlguard.approvals.refusals import REASONS, Statement, needs_approval_hint, refusal
from sqlguard.approvals.verify import Refused, Verified, replayed_refusal, verify

SKEW = 30


def check(text: str, **context: Any) -> Verified | Refused:
    arguments: dict[str, Any] = {
        "approvers": APPROVERS, "requester": "bob", "requester_groups": {"contractors"},
        "database": "shop", "fingerprint": FINGERPRINT, "now": NOW, "clock_skew": SKEW,
    }  # fmt: skip
    return verify(text, **(arguments | context))


def refused(text: str, **context: Any) -> Refused:
    result = check(text, **context)
    assert isinstance(result, Refused), result
    return result


def test_a_good_token_verifies() -> None:
    result = check(token())
    assert isinstance(result, Verified)
    assert result.approval.approver == "dana" and result.approval.requester == "bob"


def test_an_approver_for_any_group() -> None:
    assert isinstance(check(token(approver="frank"), requester_groups=()), Verified)


CASES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    # reason, token changes, context changes, a phrase of the detail
    ("unknown_approver", {"approver": "zoe"}, {}, "'zoe', who is not an approver"),
    ("revoked_approver", {"approver": "eve"}, {}, "'eve' has been revoked"),
    ("self_approval", {"approver": "bob"}, {}, "approver other than the requester"),
    ("self_approval", {}, {"requester": "dana"}, "issued by 'dana'"),
    ("approver_not_allowed", {}, {"requester_groups": {"staff"}}, "is in groups: staff"),
    ("wrong_requester", {"requester": "carol"}, {}, "for user 'carol', not 'bob'"),
    ("wrong_database", {"database": "crm"}, {}, "database 'crm', not 'shop'"),
    ("wrong_statement", {}, {"fingerprint": fingerprint("DELETE FROM orders WHERE id = 6")},
     "any other name or value"),
    ("expired", {}, {"now": NOW + 900 + SKEW}, "expired at 2027-01-15 08:15:00 UTC"),
    ("not_yet_valid", {}, {"now": NOW - SKEW - 1}, "after the sidecar's time"),
    ("ttl_too_long", {"expires_at": NOW + 7200}, {"max_ttl": 3600}, "at most 3600 s"),
]  # fmt: skip


@pytest.mark.parametrize(("reason", "claims", "context", "detail"), CASES)
def test_each_refusal(
    reason: str, claims: dict[str, Any], context: dict[str, Any], detail: str
) -> None:
    result = refused(token(**claims), **context)
    assert result.reason == reason
    assert result.approval is not None
    assert all(getattr(result.approval, name) == value for name, value in claims.items())
    assert detail in result.detail
    assert result.message.startswith("sqlguard: approval token refused: ")
    assert "sqlguard approve --key APPROVER.key --requester" in result.hint


def test_malformed() -> None:
    result = refused("sga1.nonsense")
    assert (result.reason, result.approval) == ("malformed", None)
    assert result.message == "sqlguard: approval token refused: it is malformed"
    assert "starts with sga1." in result.hint


def test_signed_by_another_key() -> None:
    result = refused(token(signer="frank"))
    assert result.reason == "bad_signature"
    assert "not signed with approver 'dana'" in result.detail


def test_the_messages_the_issue_names() -> None:
    assert refused(token(), now=NOW + 10_000).message == (
        "sqlguard: approval token refused: it has expired"
    )
    assert refused(token(approver="bob")).message.endswith("cannot approve your own statement")


def test_the_hint_names_the_command_for_this_statement() -> None:
    other = fingerprint("DROP TABLE old_logs")
    hint = refused(token(), fingerprint=other).hint
    assert hint.startswith("Send exactly the approved statement, or ask approver dana")
    assert hint.endswith(
        f"sqlguard approve --key APPROVER.key --requester bob --database shop --fingerprint {other}"
    )


def test_order_signature_before_claims() -> None:
    """A forged token is refused as forged, not for what it claims (nothing it says is true)."""
    forged = token(signer="frank", requester="carol", database="crm")
    assert refused(forged).reason == "bad_signature"


def test_order_revoked_before_signature() -> None:
    assert refused(token(approver="eve", signer="frank")).reason == "revoked_approver"


@pytest.mark.parametrize(
    ("now", "accepted"),
    [
        (NOW - SKEW - 1, False),
        (NOW - SKEW, True),
        (NOW + 900 + SKEW - 1, True),
        (NOW + 900 + SKEW, False),
    ],
)
def test_clock_skew_edges(now: int, accepted: bool) -> None:
    assert isinstance(check(token(), now=now), Verified) is accepted


def test_no_skew_means_exact_times() -> None:
    assert isinstance(check(token(), now=NOW + 899, clock_skew=0), Verified)
    assert refused(token(), now=NOW + 900, clock_skew=0).reason == "expired"


def test_max_ttl_edge() -> None:
    assert isinstance(check(token(expires_at=NOW + 3600), max_ttl=3600), Verified)


def test_replayed_refusal() -> None:
    claims = approval()
    result = replayed_refusal(claims)
    assert result.reason == "replayed" and result.approval == claims
    assert result.message == "sqlguard: approval token refused: it has already been used"
    assert claims.id in result.detail and "dana" in result.detail
    assert f"--fingerprint {FINGERPRINT}" in result.hint


def test_every_reason_has_a_text() -> None:
    statement = Statement("bob", "shop", FINGERPRINT)
    messages = set()
    for reason in REASONS:
        result = refusal(reason, "detail", statement, None)
        assert result.message.startswith("sqlguard: approval token refused: ")
        assert "sqlguard approve" in result.hint
        messages.add(result.message)
    assert len(messages) == len(REASONS), "each reason must say something of its own"


def test_needs_approval_hint() -> None:
    hint = needs_approval_hint(Statement("bob", "shop", FINGERPRINT), "3f9a2c1d")
    assert "sqlguard approvals show 3f9a2c1d" in hint
    assert f"--requester bob --database shop --fingerprint {FINGERPRINT}" in hint
    assert "/* sqlguard:approval=TOKEN */" in hint


def test_names_are_shell_quoted_in_the_command() -> None:
    command = Statement("o'brien", "my db", FINGERPRINT).approve_command()
    assert "--requester 'o'\"'\"'brien' --database 'my db'" in command


def test_statement_constant_matches() -> None:
    assert fingerprint(STATEMENT) == FINGERPRINT
