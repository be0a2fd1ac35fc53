"""The data-driven cases: every tests/cases/*.yaml file, each case one test.

A case file names its rules directory (``rules:``, relative to the file; the shipped
``rules/`` when absent) and identity defaults; each case gives a message (``sql``,
``sql_b64``) analysed for real, or hand-written ``facts``, and the expected action, rule
and observed rules. tests/cases/language.yaml explains the format.
"""

from __future__ import annotations

import base64
import functools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.parse import analyze_bytes
from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.policy.engine import evaluate
from sqlguard.policy.loader import load_rules
from sqlguard.policy.model import Identity
from sqlguard.policy.ruleset import RuleSet

CASES = Path(__file__).parents[2] / "cases"
_MESSAGE_KEYS = {"sql", "sql_b64", "facts"}
_CASE_KEYS = _MESSAGE_KEYS | {"user", "app", "addr", "at", "action", "rule", "observed", "why"}
_FACT_KEYS = {"kinds", "tables", "unscoped", "functions", "commands", "columns", "settings"}
_DEFAULTS = {"user": "someone", "app": "", "addr": "127.0.0.1", "at": "2026-01-05T12:00:00+00:00"}


def _cases() -> list[Any]:
    params = []
    for path in sorted(CASES.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        rules = (path.parent / document["rules"]).resolve() if "rules" in document else None
        defaults = {**_DEFAULTS, **document.get("defaults", {})}
        for number, case in enumerate(document["cases"], start=1):
            label = str(case.get("sql", case.get("sql_b64", "facts")))[:50]
            params.append(
                pytest.param(rules, {**defaults, **case}, id=f"{path.stem}-{number}-{label}")
            )
    return params


@functools.cache
def _rules(directory: Path | None) -> RuleSet:
    return load_rules(directory or DEFAULT_RULES_DIR)


def _statements(case: dict[str, Any]) -> tuple[StatementFacts, ...]:
    if "sql_b64" in case:
        return analyze_bytes(base64.b64decode(case["sql_b64"]))
    if "sql" in case:
        return analyze_bytes(str(case["sql"]).encode())
    written = case["facts"] if isinstance(case["facts"], list) else [case["facts"]]
    return tuple(_facts(statement) for statement in written)


def _facts(written: dict[str, Any]) -> StatementFacts:
    """Hand-written facts: lists of strings, kinds by name, ``copy`` for the endpoints."""
    assert set(written) <= _FACT_KEYS | {"copy"}, f"unknown fact in {written}"
    sets = {key: frozenset(written.get(key, ())) for key in _FACT_KEYS}
    return StatementFacts(
        text="(hand-written facts)",
        kinds=frozenset(Kind(kind) for kind in sets.pop("kinds")),
        unscoped=frozenset(Kind(kind) for kind in sets.pop("unscoped")),
        copy_endpoints=frozenset(written.get("copy", ())),
        **sets,
    )


@pytest.mark.parametrize(("rules", "case"), _cases())
def test_case(rules: Path | None, case: dict[str, Any]) -> None:
    assert set(case) <= _CASE_KEYS and len(_MESSAGE_KEYS & set(case)) == 1, f"malformed {case}"
    who = Identity(case["user"], "app", case["app"], case["addr"])
    at = datetime.fromisoformat(case["at"])
    decision = evaluate(_rules(rules), who, _statements(case), at)
    got = (str(decision.action), decision.rule_id, list(decision.observed))
    assert got == (case["action"], case["rule"], case.get("observed", [])), decision.detail
