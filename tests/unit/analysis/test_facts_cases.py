"""The facts data files in tests/cases/facts/: SQL in, expected facts out (no Python to add
a case). Each case names only the facts it is about; they compare as sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlguard.analysis.facts import StatementFacts
from sqlguard.analysis.parse import analyze

CASES = Path(__file__).parents[2] / "cases" / "facts"
FIELDS = (
    "kinds",
    "commands",
    "tables",
    "functions",
    "columns",
    "settings",
    "copy_endpoints",
    "unscoped",
)


def _cases() -> list[Any]:
    params = []
    for path in sorted(CASES.glob("*.yaml")):
        for number, case in enumerate(yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]):
            params.append(pytest.param(case, id=f"{path.stem}-{number}-{case['sql'][:40]}"))
    return params


def _check(facts: StatementFacts, expected: dict[str, Any]) -> None:
    assert not facts.is_unknown, facts.reason
    for name in FIELDS:
        if name in expected:
            assert {str(value) for value in getattr(facts, name)} == set(expected[name]), name


@pytest.mark.parametrize("case", _cases())
def test_facts_case(case: dict[str, Any]) -> None:
    result = analyze(case["sql"])
    if "unknown" in case:
        (facts,) = result
        assert facts.is_unknown and case["unknown"] in (facts.reason or ""), facts.reason
    elif "statements" in case:
        assert len(result) == len(case["statements"])
        for facts, expected in zip(result, case["statements"], strict=True):
            _check(facts, expected)
    else:
        (facts,) = result
        _check(facts, case)
