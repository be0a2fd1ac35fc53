"""Protocol-level prepared statements and portals, as the client named them.

Bind and Execute name a statement or portal, never SQL (PROTOCOL-NOTES §1.10): the verdict
for them comes from the Parse that created the statement, remembered here, so a Bind costs
no parsing; after a rule reload the remembered text is judged again, at the next Bind of a
statement and at the next Execute (or Describe) of a portal bound before the reload, so a
portal cannot carry an old verdict past new rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlguard.policy.model import Action, Decision


@dataclass(slots=True)
class _Prepared:
    text: bytes
    decision: Decision
    rules_version: str


@dataclass(slots=True)
class _Portal:
    """A Bind: the text it runs (its own: an unnamed statement may be replaced while the
    portal lives), the verdict and rules it runs under, and whether an approval token let
    it through (which a reload that still asks for approval does not take back)."""

    text: bytes
    decision: Decision
    rules_version: str
    approved: bool


class PreparedStatements:
    """Verdicts per statement name and the refused portals of the current transaction."""

    def __init__(self, judge: Callable[[bytes], Decision], rules_version: Callable[[], str]):
        self._judge = judge
        self._rules_version = rules_version
        self._statements: dict[bytes, _Prepared] = {}
        self._refused_portals: dict[bytes, Decision] = {}
        self._allowed_once: set[bytes] = set()
        self._portals: dict[bytes, _Portal] = {}

    def remember(self, name: bytes, text: bytes, decision: Decision) -> None:
        """A Parse and its verdict; the unnamed statement '' is replaced by each unnamed Parse."""
        self._statements[name] = _Prepared(text, decision, self._rules_version())
        self._allowed_once.discard(name)

    def allow_once(self, name: bytes) -> None:
        """An approval token allowed this statement for its next Bind only."""
        self._allowed_once.add(name)

    def statement(self, name: bytes) -> Decision | None:
        """The verdict for a statement name, or None for one we never saw parsed
        (created by SQL-level PREPARE, which was judged as SQL, or not existing at all)."""
        prepared = self._statements.get(name)
        if prepared is None or name in self._allowed_once:
            return None
        version = self._rules_version()
        if prepared.rules_version != version:
            prepared.decision = self._judge(prepared.text)
            prepared.rules_version = version
        return prepared.decision

    def bound(self, portal: bytes, statement: bytes) -> Decision | None:
        """A Bind: the portal inherits a refused statement's verdict."""
        approved = statement in self._allowed_once
        if approved:
            self._allowed_once.discard(statement)
            decision = None
        else:
            decision = self.statement(statement)
        prepared = self._statements.get(statement)
        if prepared is None:  # SQL-level PREPARE, or no such statement: the server decides
            self._portals.pop(portal, None)
        else:
            self._portals[portal] = _Portal(
                prepared.text, prepared.decision, prepared.rules_version, approved
            )
        if decision is not None and decision.refused:
            self._refused_portals[portal] = decision
            return decision
        self._refused_portals.pop(portal, None)
        return None

    def portal(self, name: bytes) -> Decision | None:
        """A refused portal's verdict, judged again if the rules changed since its Bind."""
        refused = self._refused_portals.get(name)
        if refused is not None:
            return refused
        bound = self._portals.get(name)
        if bound is None:
            return None
        version = self._rules_version()
        if bound.rules_version == version:
            return None
        bound.decision, bound.rules_version = self._judge(bound.text), version
        decision = bound.decision
        if not decision.refused or (bound.approved and decision.action is Action.require_approval):
            return None
        self._refused_portals[name] = decision
        return decision

    def portal_statement(self, portal: bytes) -> tuple[bytes, Decision] | None:
        """The text and verdict of what a portal runs (for tracing its Execute)."""
        bound = self._portals.get(portal)
        return (bound.text, bound.decision) if bound else None

    def closed(self, target: int, name: bytes) -> None:
        if target == ord("S"):
            self._statements.pop(name, None)
            self._allowed_once.discard(name)
        else:
            self._refused_portals.pop(name, None)
            self._portals.pop(name, None)

    def transaction_ended(self) -> None:
        """Protocol-level portals live until the end of their transaction."""
        self._refused_portals.clear()
        self._portals.clear()
