"""Verdicts of protocol-level statements and portals across rule reloads (no sockets)."""

from __future__ import annotations

from sqlguard.policy.model import Action, Decision
from sqlguard.session.statements import PreparedStatements

ALLOW = Decision(Action.allow, "", "", "", "")
DENY = Decision(Action.deny, "no-t", "refused", "", "")
APPROVE = Decision(Action.require_approval, "two-person", "needs approval", "", "")


class Rules:
    """A reloadable rule set: a verdict per text and a version."""

    def __init__(self) -> None:
        self.version = "v1"
        self.verdicts: dict[bytes, Decision] = {}
        self.judged: list[bytes] = []

    def judge(self, text: bytes) -> Decision:
        self.judged.append(text)
        return self.verdicts.get(text, ALLOW)

    def reload(self, **verdicts: Decision) -> None:
        self.version += "+"
        self.verdicts = {name.encode(): decision for name, decision in verdicts.items()}


def prepared(rules: Rules) -> PreparedStatements:
    return PreparedStatements(rules.judge, lambda: rules.version)


def test_an_execute_costs_no_judging_while_the_rules_stay() -> None:
    rules = Rules()
    statements = prepared(rules)
    statements.remember(b"s", b"t", ALLOW)
    assert statements.bound(b"p", b"s") is None
    assert statements.portal(b"p") is None and rules.judged == []


def test_a_portal_refused_by_new_rules_stays_refused() -> None:
    rules = Rules()
    statements = prepared(rules)
    statements.remember(b"s", b"t", ALLOW)
    statements.bound(b"p", b"s")
    rules.reload(t=DENY)
    assert statements.portal(b"p") == DENY
    rules.reload()  # allowed again: the server already failed this Execute's batch
    assert statements.portal(b"p") == DENY
    assert statements.portal_statement(b"p") == (b"t", DENY)


def test_an_approved_portal_keeps_its_approval_unless_the_rules_now_deny() -> None:
    rules = Rules()
    statements = prepared(rules)
    statements.remember(b"s", b"t", APPROVE)
    statements.allow_once(b"s")  # a token was used for this statement's next Bind
    assert statements.bound(b"p", b"s") is None
    rules.reload(t=APPROVE)
    assert statements.portal(b"p") is None
    rules.reload(t=DENY)
    assert statements.portal(b"p") == DENY
    assert statements.bound(b"q", b"s") == DENY  # a new Bind has no token left either way


def test_portals_end_with_their_transaction_or_close() -> None:
    rules = Rules()
    statements = prepared(rules)
    statements.remember(b"s", b"t", ALLOW)
    statements.bound(b"p", b"s")
    statements.bound(b"q", b"s")
    statements.closed(ord("P"), b"p")
    statements.transaction_ended()
    rules.reload(t=DENY)
    assert statements.portal(b"p") is None and statements.portal(b"q") is None
    assert rules.judged == []
