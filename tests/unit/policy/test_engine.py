"""The decision engine: precedence, the built-in refusals, the words the client sees.

Rules and facts are built by hand here, so these tests pin the engine alone; the
data-driven cases (tests/cases/*.yaml) run the same questions through rule files and the
real analysis.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.policy.builtin import LEXER_SETTINGS, NO_GROUP, UNPARSED
from sqlguard.policy.conditions import Match
from sqlguard.policy.engine import evaluate
from sqlguard.policy.model import Action, Decision, Identity
from sqlguard.policy.patterns import Patterns
from sqlguard.policy.ruleset import Group, Rule, RuleSet
from sqlguard.policy.subjects import Subject

ANN = Identity("ann", "app", "psql", "10.0.0.5")
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
EVERYONE = Group("everyone", Action.allow)
STRICT = Group("strict", Action.deny, message="Not on the list.", hint="Ask.")


def rule(
    rule_id: str, action: Action, *kinds: Kind, who: Subject | None = None, **match: object
) -> Rule:
    conditions = Match(kinds=frozenset(kinds) if kinds else None, **match)  # type: ignore[arg-type]
    return Rule(rule_id, action, conditions, who or Subject(), message=f"{rule_id} says no.")


def facts(*kinds: Kind, **more: object) -> StatementFacts:
    return StatementFacts("sql", frozenset(kinds), **more)  # type: ignore[arg-type]


def decide(
    rules: list[Rule], *statements: StatementFacts, group: Group = EVERYONE, who: Identity = ANN
) -> Decision:
    ruleset = RuleSet(tuple(rules), "test", (group,), group.name)
    return evaluate(ruleset, who, statements, NOW)


def users(*names: str) -> Subject:
    return Subject(users=Patterns.compile(names, case_sensitive=True))


def test_no_matching_rule_gives_the_group_default() -> None:
    allowed = decide([], facts(Kind.select))
    assert (allowed.action, allowed.rule_id) == (Action.allow, "default:everyone")
    refused = decide([], facts(Kind.select), group=STRICT)
    assert (refused.action, refused.rule_id) == (Action.deny, "default:strict")
    assert refused.detail == "Not on the list. (SELECT)" and refused.hint == "Ask."


def test_without_any_group_everything_is_refused() -> None:
    ruleset = RuleSet((), "test")
    decision = evaluate(ruleset, ANN, [facts(Kind.select)], NOW)
    assert decision.refused and decision.rule_id == NO_GROUP


@pytest.mark.parametrize(
    ("weaker", "stronger"),
    [(Action.allow, Action.require_approval), (Action.require_approval, Action.deny)],
)
def test_strictest_rule_of_the_same_subject_wins(weaker: Action, stronger: Action) -> None:
    for order in ((weaker, stronger), (stronger, weaker)):
        rules = [rule(str(action), action, Kind.delete) for action in order]
        assert decide(rules, facts(Kind.delete)).action is stronger


def test_first_rule_in_file_order_wins_among_equals() -> None:
    rules = [rule("first", Action.deny, Kind.drop), rule("second", Action.deny, Kind.drop)]
    assert decide(rules, facts(Kind.drop)).rule_id == "first"


def test_a_rule_naming_users_is_an_exception_that_beats_all_others() -> None:
    in_group = Subject(groups=frozenset({"everyone"}))
    rules = [
        rule("nobody-drops", Action.deny, Kind.drop),
        rule("group-approval", Action.require_approval, Kind.drop, who=in_group),
        rule("ann-may", Action.allow, Kind.drop, who=users("ann")),
        rule("ann-may-not-truncate", Action.deny, Kind.truncate, who=users("a*")),
    ]
    assert decide(rules, facts(Kind.drop)).rule_id == "ann-may"
    assert decide(rules, facts(Kind.drop), who=Identity("bob", "app")).rule_id == "nobody-drops"
    assert decide(rules, facts(Kind.truncate)).rule_id == "ann-may-not-truncate"


def test_group_application_and_everyone_rules_rank_alike() -> None:
    """A group's allow-list cannot weaken a rule written for everyone."""
    in_group = Subject(groups=frozenset({"everyone"}))
    app = Subject(applications=Patterns.compile(["psql"], case_sensitive=True))
    secret = frozenset({"salaries"})
    rules = [
        rule("group-reads", Action.allow, Kind.select, who=in_group),
        rule("psql-reads", Action.allow, Kind.select, who=app),
        rule("no-salaries", Action.deny, tables=Patterns.compile(["salaries"], names=True)),
    ]
    assert decide(rules, facts(Kind.select)).rule_id == "group-reads"
    assert decide(rules, facts(Kind.select, tables=secret)).rule_id == "no-salaries"


def test_each_kind_of_a_statement_is_judged_on_its_own() -> None:
    """An allow for SELECT must not let the DELETE in its CTE through."""
    rules = [rule("reads", Action.allow, Kind.select)]
    cte = facts(Kind.select, Kind.delete, tables=frozenset({"t"}))
    decision = decide(rules, cte, group=STRICT)
    assert (decision.action, decision.rule_id) == (Action.deny, "default:strict")
    rules.append(rule("deletes", Action.allow, Kind.delete))
    assert decide(rules, cte, group=STRICT).action is Action.allow


def test_an_explicit_rule_is_reported_before_an_equally_strict_default() -> None:
    rules = [rule("no-delete", Action.deny, Kind.delete)]
    decision = decide(rules, facts(Kind.select, Kind.delete), group=STRICT)
    assert decision.rule_id == "no-delete"


def test_strictest_statement_of_a_message_wins_first_on_a_tie() -> None:
    rules = [
        rule("approve-drop", Action.require_approval, Kind.drop),
        rule("no-truncate", Action.deny, Kind.truncate),
        rule("no-grant", Action.deny, Kind.grant),
    ]
    both = [facts(Kind.drop), facts(Kind.truncate), facts(Kind.grant)]
    assert decide(rules, *both).rule_id == "no-truncate"
    assert decide(rules, *both[::-1]).rule_id == "no-grant"


def test_several_groups_take_the_strictest_default() -> None:
    ann_groups = (
        Group("open", Action.allow, users("ann")),
        Group("tight", Action.deny, users("a*")),
    )
    ruleset = RuleSet((), "test", ann_groups, "open")
    assert evaluate(ruleset, ANN, [facts(Kind.select)], NOW).rule_id == "default:tight"


def test_unknown_is_refused_even_when_a_user_rule_allows_everything() -> None:
    allow_all = [rule("allow-all", Action.allow, who=users("*"))]
    decision = decide(allow_all, StatementFacts.unknown("DO $$ $$", "DO blocks are opaque."))
    assert decision.refused and decision.rule_id == UNPARSED
    assert decision.message == 'sqlguard: statement refused by rule "sqlguard.unparsed"'
    assert decision.detail == (
        "The statement could not be understood: DO blocks are opaque. "
        "sqlguard refuses what it cannot analyse."
    )
    assert "split" in decision.hint and "DBA" in decision.hint


@pytest.mark.parametrize(
    ("setting", "refused"),
    [
        ("standard_conforming_strings=off", True),
        ("standard_conforming_strings", True),
        ("standard_conforming_strings=on", False),
        ("client_encoding=latin1", True),
        ("client_encoding=sjis", True),
        ("client_encoding=utf8", False),
        ("client_encoding=utf-8", False),
        ("client_encoding", False),
        ("*", True),
        ("*=off", True),
        ("statement_timeout=5s", False),
    ],
)
def test_settings_that_change_lexing_are_refused_for_everyone(setting: str, refused: bool) -> None:
    allow_all = [rule("allow-all", Action.allow, who=users("*"))]
    decision = decide(allow_all, facts(Kind.set, settings=frozenset({setting})))
    assert (decision.rule_id == LEXER_SETTINGS) is refused
    assert decision.refused is refused


def test_refusal_names_the_rule_and_says_what_and_where() -> None:
    rules = [rule("no-drop", Action.deny, Kind.drop)]
    drop = facts(Kind.drop, tables=frozenset({"public.users"}), commands=frozenset({"DROP TABLE"}))
    decision = decide(rules, facts(Kind.select), drop)
    assert decision.message == 'sqlguard: statement refused by rule "no-drop"'
    assert (
        decision.detail == "no-drop says no. (statement 2 of 2: DROP TABLE; tables: public.users)"
    )
    assert decision.sqlstate == "42501"


def test_require_approval_refuses_and_says_an_approval_is_needed() -> None:
    approve = Rule("approve", Action.require_approval, Match(), message="m", hint="Ask first.")
    decision = decide([approve], facts(Kind.drop))
    assert decision.refused and decision.action is Action.require_approval
    assert decision.hint.startswith("Ask first. ") and "needs an approval" in decision.hint


def test_observe_passes_but_reports_every_observing_rule() -> None:
    rules = [
        rule("watch-deletes", Action.observe, Kind.delete),
        rule("watch-all", Action.observe),
        rule("watch-drops", Action.observe, Kind.drop),
    ]
    decision = decide(rules, facts(Kind.delete))
    assert not decision.refused and decision.action is Action.observe
    assert decision.rule_id == "watch-deletes"
    assert decision.message == 'sqlguard: statement observed by rule "watch-deletes"'
    assert decision.observed == ("watch-deletes", "watch-all")


def test_observe_never_changes_a_refusal_but_is_still_reported() -> None:
    rules = [rule("watch", Action.observe, Kind.drop), rule("no-drop", Action.deny, Kind.drop)]
    decision = decide(rules, facts(Kind.drop))
    assert (decision.action, decision.rule_id, decision.observed) == (
        Action.deny,
        "no-drop",
        ("watch",),
    )


def test_observe_rules_do_not_hide_the_default() -> None:
    decision = decide([rule("watch", Action.observe)], facts(Kind.select), group=STRICT)
    assert decision.rule_id == "default:strict" and decision.observed == ("watch",)


def test_now_defaults_to_the_current_time() -> None:
    ruleset = RuleSet((), "test", (EVERYONE,), "everyone")
    assert evaluate(ruleset, ANN, [facts(Kind.select)]).action is Action.allow
