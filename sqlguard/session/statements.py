"""Protocol-level prepared statements and portals, as the client named them.

Bind and Execute name a statement or portal, never SQL (PROTOCOL-NOTES §1.10): the verdict
for them comes from the Parse that created the statement, remembered here, so a Bind costs
no parsing; after a rule reload the remembered text is judged again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlguard.policy.model import Decision


@dataclass(slots=True)
class _Prepared:
    text: bytes
    decision: Decision
    rules_version: str


class PreparedStatements:
    """Verdicts per statement name and the refused portals of the current transaction."""

    def __init__(self, judge: Callable[[bytes], Decision], rules_version: Callable[[], str]):
        self._judge = judge
        self._rules_version = rules_version
        self._statements: dict[bytes, _Prepared] = {}
        self._refused_portals: dict[bytes, Decision] = {}
        self._allowed_once: set[bytes] = set()
        self._portal_statements: dict[bytes, bytes] = {}

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
        self._portal_statements[portal] = statement
        if statement in self._allowed_once:
            self._allowed_once.discard(statement)
            self._refused_portals.pop(portal, None)
            return None
        decision = self.statement(statement)
        if decision is not None and decision.refused:
            self._refused_portals[portal] = decision
            return decision
        self._refused_portals.pop(portal, None)
        return None

    def portal(self, name: bytes) -> Decision | None:
        return self._refused_portals.get(name)

    def portal_statement(self, portal: bytes) -> tuple[bytes, Decision] | None:
        """The text and verdict of the statement a portal runs (for tracing its Execute)."""
        name = self._portal_statements.get(portal)
        prepared = self._statements.get(name) if name is not None else None
        return (prepared.text, prepared.decision) if prepared else None

    def closed(self, target: int, name: bytes) -> None:
        if target == ord("S"):
            self._statements.pop(name, None)
            self._allowed_once.discard(name)
        else:
            self._refused_portals.pop(name, None)

    def transaction_ended(self) -> None:
        """Protocol-level portals live until the end of their transaction."""
        self._refused_portals.clear()
        self._portal_statements.clear()
