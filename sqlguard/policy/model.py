"""Who is asking and what the rules decided: the vocabulary shared by policy and session."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """The subject rules are evaluated for (the startup user in passthrough mode)."""

    user: str
    database: str
    application_name: str = ""
    client_addr: str = ""


class Action(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"
    OBSERVE = "observe"


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for one message; refusals carry the text the client will see."""

    action: Action
    rule_id: str
    message: str
    detail: str
    hint: str
    sqlstate: str = "42501"

    @property
    def refused(self) -> bool:
        return self.action in (Action.DENY, Action.REQUIRE_APPROVAL)
