"""The decision for a message: rules applied to each statement's facts. Precedence lives here.

1. A built-in refusal (``sqlguard.unparsed``, ``sqlguard.lexer-settings``) decides first;
   rule files can neither override nor disable it.
2. Each kind a statement does (its own and every nested one: the DELETE in a CTE, the
   statement under EXPLAIN ANALYZE...) is judged on its own, with all the statement's other
   facts. Among the rules that apply to the identity and match:
   a. ``observe`` rules never decide; they are reported in ``Decision.observed``;
   b. rules that name users (``applies_to: {users: ...}``) are exceptions: if any matches,
      only those count;
   c. the strictest action wins (deny > require_approval > allow), and of equally strict
      rules the first in file order (files sorted by name);
   d. no rule: the identity's group default (the strictest, if it is in several groups);
      no group at all: refused (``sqlguard.no-group``).
3. A statement gets the strictest verdict of its kinds, a message the strictest verdict of
   its statements (PostgreSQL runs a multi-statement Query as one unit, so one refused
   statement refuses all of it). On a tie, an explicit rule beats a group default, then the
   first statement wins.
4. A message that is allowed while an ``observe`` rule matched is reported as ``observe``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.policy import builtin
from sqlguard.policy.conditions import StatementView
from sqlguard.policy.model import Action, Decision, Identity
from sqlguard.policy.ruleset import Group, Rule, RuleSet
from sqlguard.policy.verdicts import Verdict, about, decision, position

__all__ = ["evaluate"]

_Judged = tuple[Verdict, tuple[Verdict, ...]]
"""A statement's verdict, and the observe rules that matched it."""
_KINDS = tuple(Kind)  # iterating the enum class itself is slow, and this is the hot path


def evaluate(
    rules: RuleSet,
    identity: Identity,
    statements: Sequence[StatementFacts],
    now: datetime | None = None,
) -> Decision:
    """The verdict for a message made of ``statements``, sent by ``identity`` at ``now``.

    >>> from sqlguard.policy.conditions import Match
    >>> drop = Rule("no-drop", Action.deny, Match(kinds=frozenset({Kind.drop})), message="No.")
    >>> facts = StatementFacts("DROP TABLE t", frozenset({Kind.drop}), frozenset({"t"}))
    >>> evaluate(RuleSet((drop,), "v1"), Identity("ann", "app"), [facts]).message
    'sqlguard: statement refused by rule "no-drop"'
    """
    now = now or datetime.now(UTC)
    groups = rules.groups_of(identity)
    names = frozenset(group.name for group in groups)
    applicable = tuple(rule for rule in rules.rules if rule.applies_to.matches(identity, names))
    total = len(statements)
    judged = [
        _statement(applicable, groups, facts, now, position(index, total))
        for index, facts in enumerate(statements, start=1)
    ]
    return _message(judged)


def _message(judged: list[_Judged]) -> Decision:
    """The strictest statement verdict, with every observe rule that matched."""
    verdict = max((verdict for verdict, _ in judged), key=lambda v: v.rank)
    observed = [seen for _, watched in judged for seen in watched]
    ids = tuple(dict.fromkeys(seen.rule_id for seen in observed))
    if verdict.action is Action.allow and observed:
        verdict = observed[0]
    return decision(verdict, ids)


def _statement(
    applicable: tuple[Rule, ...],
    groups: tuple[Group, ...],
    facts: StatementFacts,
    now: datetime,
    where: str,
) -> _Judged:
    """One statement: a built-in refusal, or the strictest verdict of its kinds."""
    refused = builtin.refusal(facts, where)
    if refused is not None:
        return refused, ()
    view, summary = StatementView.of(facts), about(where, facts)
    matching = [rule for rule in applicable if rule.match.matches(view, now)]
    observed = tuple(
        Verdict.of_rule(rule, summary) for rule in matching if rule.action is Action.observe
    )
    verdicts = [
        _kind_verdict([rule for rule in matching if rule.match.covers(kind)], groups, summary)
        for kind in _KINDS
        if kind in facts.kinds
    ]
    return max(verdicts, key=lambda v: v.rank), observed


def _kind_verdict(matching: list[Rule], groups: tuple[Group, ...], summary: str) -> Verdict:
    """The strictest rule (user exceptions first), else the strictest group default."""
    deciding = [rule for rule in matching if rule.action is not Action.observe]
    exceptions = [rule for rule in deciding if rule.applies_to.names_users]
    if deciding:
        rule = max(exceptions or deciding, key=lambda rule: rule.action.strictness)
        return Verdict.of_rule(rule, summary)
    if not groups:
        return builtin.no_group(summary)
    return Verdict.of_default(max(groups, key=lambda g: g.default.strictness), summary)
