"""The decision for a message: rules applied to each statement's facts, strictest wins.

Precedence lives here and only here:

* over the statements of a message: deny > require_approval > observe > allow (PostgreSQL
  runs a multi-statement Query as one unit, so one refused statement refuses all of it);
* within a statement: the first matching rule (in file order) of the strictest action;
* a statement sqlguard could not understand is refused by the built-in rule
  ``sqlguard.unparsed``, which rule files can neither override nor disable;
* no matching rule: allow, with an empty rule id.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.policy.model import Action, Decision, Identity, Rule, RuleSet

UNPARSED = "sqlguard.unparsed"
_STRICTNESS = {Action.allow: 0, Action.observe: 1, Action.require_approval: 2, Action.deny: 3}
_VERBS = {
    Action.allow: "allowed",
    Action.observe: "observed",
    Action.require_approval: "refused",
    Action.deny: "refused",
}
_APPROVAL_HINT = (
    "This statement needs an approval. The approval workflow is not available yet: "
    "ask a DBA to review and run it."
)
_UNPARSED_HINT = (
    "Simplify the statement or split it into several simpler ones; if it must run as "
    "written, ask a DBA to review and run it."
)
_ALLOW = Decision(Action.allow, "", "", "", "")


def evaluate(rules: RuleSet, identity: Identity, statements: Sequence[StatementFacts]) -> Decision:
    """The verdict for a message made of ``statements``.

    ``identity`` is who asks; the first rules do not depend on it yet (per-group rules will).

    >>> from sqlguard.policy.model import Match
    >>> rule = Rule("no-drop", Match(kinds=frozenset({Kind.drop})), Action.deny, "No DROP.")
    >>> facts = StatementFacts("DROP TABLE t", frozenset({Kind.drop}), frozenset({"t"}))
    >>> evaluate(RuleSet((rule,), "v1"), Identity("ann", "app"), [facts]).message
    'sqlguard: statement refused by rule "no-drop"'
    """
    verdict = _ALLOW
    for index, facts in enumerate(statements, start=1):
        decision = _decide(rules, facts, _position(index, len(statements)))
        if _STRICTNESS[decision.action] > _STRICTNESS[verdict.action]:
            verdict = decision
    return verdict


def _decide(rules: RuleSet, facts: StatementFacts, position: str) -> Decision:
    """One statement's decision: built-in refusal, strictest matching rule, or allow."""
    if facts.is_unknown:
        return _unparsed(facts, position)
    matching = [rule for rule in rules.rules if rule.match.matches(facts)]
    if not matching:
        return _ALLOW
    return _from_rule(max(matching, key=lambda rule: _STRICTNESS[rule.action]), facts, position)


def _from_rule(rule: Rule, facts: StatementFacts, position: str) -> Decision:
    """The client-facing words for a matched rule."""
    hint = rule.hint
    if rule.action is Action.require_approval:
        hint = f"{hint} {_APPROVAL_HINT}".strip()
    about = f"{position}: {_summary(facts)}" if position else _summary(facts)
    return Decision(
        action=rule.action,
        rule_id=rule.id,
        message=f'sqlguard: statement {_VERBS[rule.action]} by rule "{rule.id}"',
        detail=f"{rule.message} ({about})",
        hint=hint,
    )


def _unparsed(facts: StatementFacts, position: str) -> Decision:
    reason = (facts.reason or "no reason given").rstrip(".")
    where = f" ({position})" if position else ""
    return Decision(
        action=Action.deny,
        rule_id=UNPARSED,
        message=f'sqlguard: statement refused by rule "{UNPARSED}"',
        detail=f"The statement could not be understood: {reason}. "
        f"sqlguard refuses what it cannot analyse.{where}",
        hint=_UNPARSED_HINT,
    )


def _position(index: int, total: int) -> str:
    """Which statement of the message, when there are several."""
    return f"statement {index} of {total}" if total > 1 else ""


def _summary(facts: StatementFacts) -> str:
    """What the statement does, e.g. ``DELETE, SELECT; without WHERE: DELETE; tables: t``.
    Never its text, which may carry secrets in literals."""
    parts = [_upper(facts.kinds)]
    if facts.unscoped:
        parts.append(f"without WHERE: {_upper(facts.unscoped)}")
    if facts.tables:
        parts.append("tables: " + ", ".join(sorted(facts.tables)))
    return "; ".join(parts)


def _upper(kinds: frozenset[Kind]) -> str:
    return ", ".join(sorted(kind.upper() for kind in kinds))
