"""The policy values the rest of sqlguard sees: who asks, and what the firewall decided.

The session layer imports this module (to carry identities and decisions), so it holds plain
values only; the compiled rules live in ``ruleset`` and the logic in ``engine``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlguard.approvals.tokens import Approval


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sends the statement, as established at connection startup.

    ``client_addr`` is the peer's IP address, or ``local`` for a Unix-domain socket.
    ``groups`` are the person's groups from the identities store (managed identities mode),
    in addition to the groups whose ``members`` name them.
    """

    user: str
    database: str
    application_name: str = ""
    client_addr: str = ""
    groups: tuple[str, ...] = ()


class Action(enum.StrEnum):
    """What happens to a statement. deny and require_approval refuse it."""

    allow = "allow"
    deny = "deny"
    require_approval = "require_approval"
    observe = "observe"
    """Let it pass, but report that the rule matched (for trying a new rule out)."""

    @property
    def strictness(self) -> int:
        """Rank for "strictest wins": deny > require_approval > allow (observe never decides).

        >>> Action.deny.strictness > Action.require_approval.strictness > Action.allow.strictness
        True
        """
        return _STRICTNESS[self]


_STRICTNESS = {Action.observe: 0, Action.allow: 1, Action.require_approval: 2, Action.deny: 3}


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for a whole message, in the words the client will see.

    ``message``, ``detail`` and ``hint`` become the M, D and H fields of the ErrorResponse;
    42501 (insufficient_privilege) is what PostgreSQL itself answers for "permission denied".
    ``observed`` lists the ids of the ``observe`` rules that matched, whatever the verdict.
    ``approval`` is set when a valid approval token lets the statement through: it still has
    to be entered in the ledger of used tokens before the statement may go upstream.

    >>> Decision(Action.observe, "r", "m", "d", "h").refused
    False
    """

    action: Action
    rule_id: str
    message: str
    detail: str
    hint: str
    sqlstate: str = "42501"
    observed: tuple[str, ...] = ()
    approval: Approval | None = None

    @property
    def refused(self) -> bool:
        """Must the statement be kept from the server?"""
        action = self.action
        return action is Action.deny or action is Action.require_approval
