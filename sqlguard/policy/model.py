"""The policy's data: who asks, what a rule is, and what the firewall decided. Pure values.

The session layer imports this module (to carry identities and decisions), so it holds no
logic that needs the analysis beyond its plain ``facts`` types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlguard.analysis.facts import Kind, StatementFacts


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sends the statement, as established at connection startup."""

    user: str
    database: str
    application_name: str = ""
    client_addr: str = ""


class Action(enum.StrEnum):
    """What happens to a statement. deny and require_approval refuse it."""

    allow = "allow"
    deny = "deny"
    require_approval = "require_approval"
    observe = "observe"
    """Let it pass, but record that the rule matched (for trying a rule out)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for a whole message, in the words the client will see.

    ``message``, ``detail`` and ``hint`` become the M, D and H fields of the ErrorResponse;
    42501 (insufficient_privilege) is what PostgreSQL itself answers for "permission denied".

    >>> Decision(Action.observe, "r", "m", "d", "h").refused
    False
    """

    action: Action
    rule_id: str
    message: str
    detail: str
    hint: str
    sqlstate: str = "42501"

    @property
    def refused(self) -> bool:
        """Must the statement be kept from the server?"""
        return self.action in (Action.deny, Action.require_approval)


@dataclass(frozen=True, slots=True)
class Match:
    """The conditions of a rule; all given conditions must hold, any item of a list may.

    >>> delete = frozenset({Kind.delete})
    >>> Match(unscoped=delete).matches(StatementFacts("DELETE FROM t", delete, unscoped=delete))
    True
    """

    kinds: frozenset[Kind] = frozenset()
    unscoped: frozenset[Kind] = frozenset()

    def matches(self, facts: StatementFacts) -> bool:
        """Does a statement with these facts meet every condition?"""
        if self.kinds and not self.kinds & facts.kinds:
            return False
        return not self.unscoped or bool(self.unscoped & facts.unscoped)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule from a rule file; ``source`` says where it was written (file:line)."""

    id: str
    match: Match
    action: Action
    message: str
    hint: str = ""
    description: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """An immutable snapshot of all rules; ``version`` identifies the files it came from."""

    rules: tuple[Rule, ...]
    version: str
