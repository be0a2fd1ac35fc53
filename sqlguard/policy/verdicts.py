"""Verdicts, and the words a client sees for them.

A ``Verdict`` is one statement's outcome before wording; ``decision`` turns the winning one
into the ``Decision`` the session sends as an ErrorResponse (M, D, H fields). The message
always names the rule, the detail says why and about which statement (never its text, which
may hold secrets in literals), the hint says what to do instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.policy.model import Action, Decision
from sqlguard.policy.ruleset import Group, Rule

_VERBS = {
    Action.allow: "allowed",
    Action.observe: "observed",
    Action.require_approval: "refused",
    Action.deny: "refused",
}
_APPROVAL_HINT = "This statement needs an approval from a second person."


@dataclass(frozen=True, slots=True)
class Verdict:
    """Who decided what about one statement, and the words for it.

    ``about`` locates and summarises the statement; ``explicit`` is False for a group's
    default, so that on a tie the rule that names the statement is the one reported.
    """

    action: Action
    rule_id: str
    text: str
    hint: str
    about: str
    explicit: bool = True

    @property
    def rank(self) -> tuple[int, bool]:
        """Order for "the strictest wins" (``max`` keeps the first of equals)."""
        return self.action.strictness, self.explicit

    @classmethod
    def of_rule(cls, rule: Rule, about: str) -> Verdict:
        return cls(rule.action, rule.id, rule.message, rule.hint, about)

    @classmethod
    def of_default(cls, group: Group, about: str) -> Verdict:
        """A group's default action, for a statement no rule decides."""
        text = group.message or (
            f'No rule decides this statement; the default of group "{group.name}" applies.'
        )
        return cls(group.default, f"default:{group.name}", text, group.hint, about, False)


def decision(verdict: Verdict, observed: tuple[str, ...] = ()) -> Decision:
    """The client-facing Decision for the verdict that won.

    >>> v = Verdict(Action.deny, "no-drop", "No DROP.", "Ask a DBA.", "DROP TABLE; tables: t")
    >>> decision(v).detail
    'No DROP. (DROP TABLE; tables: t)'
    """
    hint = verdict.hint
    if verdict.action is Action.require_approval:
        hint = f"{hint} {_APPROVAL_HINT}".strip()
    text = verdict.text.rstrip()
    detail = f"{text} ({verdict.about})" if text and verdict.about else text or verdict.about
    return Decision(
        action=verdict.action,
        rule_id=verdict.rule_id,
        message=f'sqlguard: statement {_VERBS[verdict.action]} by rule "{verdict.rule_id}"',
        detail=detail,
        hint=hint,
        observed=observed,
    )


def position(index: int, total: int) -> str:
    """Which statement of the message, when there are several."""
    return f"statement {index} of {total}" if total > 1 else ""


def about(where: str, facts: StatementFacts) -> str:
    """``where`` and what the statement does, e.g.
    ``statement 2 of 2: DELETE; without WHERE: DELETE; tables: users``."""
    parts = [", ".join(sorted(facts.commands)) or _upper(facts.kinds)]
    if facts.unscoped:
        parts.append(f"without WHERE: {_upper(facts.unscoped)}")
    if facts.tables:
        parts.append("tables: " + ", ".join(sorted(facts.tables)))
    if facts.functions:
        parts.append("functions: " + ", ".join(sorted(facts.functions)))
    what = "; ".join(parts)
    return f"{where}: {what}" if where else what


def _upper(kinds: frozenset[Kind]) -> str:
    return ", ".join(sorted(kind.upper() for kind in kinds))
