"""Decisions and facts as plain JSON-ready dicts, for ``sqlguard explain --json`` and tools.

Statement text is left out on purpose: these records end up in files and logs, and literals
may hold secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlguard.analysis.facts import StatementFacts
from sqlguard.policy.model import Decision


def decision_record(
    decision: Decision, statements: Sequence[StatementFacts], rules_version: str
) -> dict[str, Any]:
    """The decision for a message, with what sqlguard understood of each statement.

    >>> from sqlguard.analysis.facts import Kind
    >>> from sqlguard.policy.model import Action
    >>> drop = StatementFacts("DROP TABLE t", frozenset({Kind.drop}), frozenset({"t"}))
    >>> record = decision_record(Decision(Action.deny, "no-drop", "m", "d", "h"), [drop], "v1")
    >>> record["action"], record["rule"], record["statements"][0]["tables"]
    ('deny', 'no-drop', ['t'])
    """
    return {
        "action": str(decision.action),
        "rule": decision.rule_id,
        "message": decision.message,
        "detail": decision.detail,
        "hint": decision.hint,
        "sqlstate": decision.sqlstate if decision.refused else "",
        "observed": list(decision.observed),
        "rules_version": rules_version,
        "statements": [statement_record(facts) for facts in statements],
    }


def statement_record(facts: StatementFacts) -> dict[str, Any]:
    """What one statement does, as the rules see it (sorted lists; no text)."""
    return {
        "kinds": sorted(facts.kinds),
        "commands": sorted(facts.commands),
        "tables": sorted(facts.tables),
        "columns": sorted(facts.columns),
        "functions": sorted(facts.functions),
        "settings": sorted(facts.settings),
        "copy": sorted(facts.copy_endpoints),
        "unscoped": sorted(facts.unscoped),
        "reason": facts.reason or "",
    }
