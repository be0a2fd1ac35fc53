"""The decision engine: precedence, the built-in refusal, the words the client sees, and the
shipped rules against the data-driven cases in tests/cases/first_rules.yaml."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.parse import analyze, analyze_bytes
from sqlguard.policy.engine import UNPARSED, evaluate
from sqlguard.policy.loader import load_rules
from sqlguard.policy.model import Action, Decision, Identity, Match, Rule, RuleSet

REPO = Path(__file__).parents[3]
ANN = Identity("ann", "app")


def rule(rule_id: str, action: Action, *kinds: Kind, message: str = "m", hint: str = "h") -> Rule:
    return Rule(rule_id, Match(kinds=frozenset(kinds)), action, message, hint)


def facts(*kinds: Kind, tables: tuple[str, ...] = ()) -> StatementFacts:
    return StatementFacts("sql", frozenset(kinds), frozenset(tables))


def decide(rules: list[Rule], *statements: StatementFacts) -> Decision:
    return evaluate(RuleSet(tuple(rules), "test"), ANN, statements)


def test_no_matching_rule_allows_with_empty_rule_id() -> None:
    decision = decide([rule("no-drop", Action.deny, Kind.drop)], facts(Kind.select))
    assert decision.action is Action.allow and decision.rule_id == "" and not decision.refused


@pytest.mark.parametrize(
    ("weaker", "stronger"),
    [
        (Action.allow, Action.observe),
        (Action.observe, Action.require_approval),
        (Action.require_approval, Action.deny),
    ],
)
def test_strictest_statement_of_a_message_wins(weaker: Action, stronger: Action) -> None:
    rules = [rule("weak", weaker, Kind.select), rule("strong", stronger, Kind.insert)]
    for order in ((Kind.insert, Kind.select), (Kind.select, Kind.insert)):
        decision = decide(rules, facts(order[0]), facts(order[1]))
        assert (decision.action, decision.rule_id) == (stronger, "strong")


def test_within_a_statement_first_rule_of_strictest_action_wins() -> None:
    rules = [
        rule("watch", Action.observe, Kind.delete),
        rule("first-deny", Action.deny, Kind.delete),
        rule("second-deny", Action.deny, Kind.delete),
    ]
    assert decide(rules, facts(Kind.delete)).rule_id == "first-deny"


def test_first_statement_keeps_the_verdict_on_a_tie() -> None:
    rules = [
        rule("no-drop", Action.deny, Kind.drop),
        rule("no-truncate", Action.deny, Kind.truncate),
    ]
    decision = decide(rules, facts(Kind.truncate), facts(Kind.drop))
    assert decision.rule_id == "no-truncate"


def test_unknown_is_refused_even_when_a_rule_allows_everything() -> None:
    allow_all = [rule("allow-all", Action.allow, *(kind for kind in Kind if kind != Kind.unknown))]
    decision = decide(allow_all, StatementFacts.unknown("DO $$ $$", "DO blocks are opaque."))
    assert decision.refused and decision.rule_id == UNPARSED
    assert decision.message == 'sqlguard: statement refused by rule "sqlguard.unparsed"'
    assert decision.detail == (
        "The statement could not be understood: DO blocks are opaque. "
        "sqlguard refuses what it cannot analyse."
    )
    assert "split" in decision.hint and "DBA" in decision.hint


def test_refusal_names_the_rule_and_says_what_and_where() -> None:
    rules = [rule("no-drop", Action.deny, Kind.drop, message="No DROP here.", hint="Ask a DBA.")]
    decision = decide(rules, facts(Kind.select), facts(Kind.drop, tables=("public.users",)))
    assert decision.message == 'sqlguard: statement refused by rule "no-drop"'
    assert decision.detail == "No DROP here. (statement 2 of 2: DROP; tables: public.users)"
    assert (decision.hint, decision.sqlstate) == ("Ask a DBA.", "42501")


def test_require_approval_refuses_and_says_approval_is_not_available_yet() -> None:
    rules = [rule("approve-drop", Action.require_approval, Kind.drop, hint="Ask first.")]
    decision = decide(rules, facts(Kind.drop))
    assert decision.refused and decision.action is Action.require_approval
    assert decision.hint.startswith("Ask first. ") and "not available yet" in decision.hint


def test_observe_passes_but_reports_its_rule() -> None:
    decision = decide([rule("watch", Action.observe, Kind.delete)], facts(Kind.delete))
    assert not decision.refused and decision.rule_id == "watch"
    assert decision.message == 'sqlguard: statement observed by rule "watch"'


def test_unscoped_condition_matches_only_unscoped_kinds() -> None:
    no_wild_delete = Rule("dw", Match(unscoped=frozenset({Kind.delete})), Action.deny, "m")
    assert decide([no_wild_delete], *analyze("DELETE FROM t")).rule_id == "dw"
    assert decide([no_wild_delete], *analyze("DELETE FROM t WHERE id = 1")).rule_id == ""
    assert decide([no_wild_delete], *analyze("UPDATE t SET a = 1")).rule_id == ""


def _cases() -> list[Any]:
    document = yaml.safe_load((REPO / "tests" / "cases" / "first_rules.yaml").read_text())
    for case in document["cases"]:  # an unquoted comma in a flow mapping splits the SQL
        assert len(case) == 3 and {"action", "rule"} < set(case), f"malformed case {case}"
    return [
        pytest.param(case, id=case.get("sql", case.get("sql_b64", ""))[:60] or "<empty>")
        for case in document["cases"]
    ]


@pytest.fixture(scope="module")
def baseline() -> RuleSet:
    return load_rules(REPO / "rules")


@pytest.mark.parametrize("case", _cases())
def test_shipped_rules(case: dict[str, str], baseline: RuleSet) -> None:
    raw = base64.b64decode(case["sql_b64"]) if "sql_b64" in case else case["sql"].encode()
    decision = evaluate(baseline, ANN, analyze_bytes(raw))
    assert (decision.action, decision.rule_id) == (case["action"], case["rule"]), decision.detail
