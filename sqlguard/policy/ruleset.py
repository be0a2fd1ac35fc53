"""Compiled rules: an immutable, versioned snapshot the engine reads and the shell swaps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sqlguard.policy.conditions import Match
from sqlguard.policy.model import Action, Identity
from sqlguard.policy.subjects import Subject


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule; ``source`` says where it was written (file:line)."""

    id: str
    action: Action
    match: Match = field(default_factory=Match)
    applies_to: Subject = field(default_factory=Subject)
    message: str = ""
    hint: str = ""
    description: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class Group:
    """A named set of identities with a default action for statements no rule decides.

    ``members`` is None for a group nobody joins by name (it can still be the default
    group); the ``message`` and ``hint`` explain a refusal by the group's default.
    """

    name: str
    default: Action
    members: Subject | None = None
    message: str = ""
    hint: str = ""
    description: str = ""
    source: str = ""

    def contains(self, identity: Identity) -> bool:
        """Do the group's criteria name ``identity``?

        Membership from the identities store stands for the ``users`` criterion; the others
        (applications, addresses) still hold, so "staff only from the office" stays so.
        """
        if self.name in identity.groups:
            members = self.members
            return members is None or dataclasses.replace(members, users=None).matches(
                identity, frozenset()
            )
        return self.members is not None and self.members.matches(identity, frozenset())


@dataclass(frozen=True, slots=True)
class RuleSet:
    """All rules and groups of a rules directory.

    ``version`` changes whenever a rule file does, so caches can key on it.
    ``time_dependent`` says whether any rule has a ``time`` condition: then the same
    statement from the same identity can get another verdict a minute later.
    ``reads_text`` says whether any rule matches the statement text with a regular
    expression: then literal values can matter, and statements must not share verdicts
    by shape.
    """

    rules: tuple[Rule, ...]
    version: str
    groups: tuple[Group, ...] = ()
    default_group: str = ""
    time_dependent: bool = field(init=False)
    reads_text: bool = field(init=False)

    def __post_init__(self) -> None:
        timed = any(rule.match.time is not None for rule in self.rules)
        object.__setattr__(self, "time_dependent", timed)
        object.__setattr__(self, "reads_text", any(r.match.text is not None for r in self.rules))

    def groups_of(self, identity: Identity) -> tuple[Group, ...]:
        """The groups that name ``identity``; if none does, the default group (if any).

        >>> staff = Group("staff", Action.allow)
        >>> RuleSet((), "v", (staff,), "staff").groups_of(Identity("ann", "db"))[0].name
        'staff'
        """
        named = tuple(group for group in self.groups if group.contains(identity))
        if named:
            return named
        return tuple(group for group in self.groups if group.name == self.default_group)
