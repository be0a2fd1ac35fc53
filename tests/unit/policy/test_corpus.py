"""The public evasion corpus through analysis and the first rules.

Every item must be analysed without raising; items PostgreSQL itself would reject must be
unknown (refused); items the corpus expects to be allowed must not be refused by the first
rules. The later policy issue brings the rest of the corpus's verdicts.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlguard.analysis.facts import StatementFacts
from sqlguard.analysis.parse import analyze, analyze_bytes
from sqlguard.policy.engine import evaluate
from sqlguard.policy.loader import load_rules
from sqlguard.policy.model import Identity

REPO = Path(__file__).parents[3]
CORPUS = REPO / ".." / "shared" / "corpus" / "evasion.yaml"

ALLOWED_LATER: dict[str, str] = {}
"""Items the corpus expects to be allowed that the first rules still refuse, each with why.
Empty: every expected-allow item already passes. Keep it that way, or say why here."""


def _items() -> list[Any]:
    if not CORPUS.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"corpus not found at {CORPUS}"))]
    items = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["items"]
    return [pytest.param(item, id=item["id"]) for item in items]


def _message(item: dict[str, Any]) -> bytes:
    if "sql_b64" in item:
        return base64.b64decode(item["sql_b64"])
    if "sql_build" in item:
        build = item["sql_build"]
        return (build["prefix"] + build["unit"] * build["count"] + build["suffix"]).encode()
    return item["sql"].encode()


def _postgres_rejects(item: dict[str, Any]) -> bool:
    return bool(item.get("intentionally_invalid")) or item["pg"].get("grammar_valid") is False


@pytest.fixture(scope="module")
def baseline() -> Any:
    return load_rules(REPO / "rules")


@pytest.mark.parametrize("item", _items())
def test_corpus_item(item: dict[str, Any], baseline: Any) -> None:
    raw = _message(item)
    statements = analyze_bytes(raw)
    assert statements and all(isinstance(facts, StatementFacts) for facts in statements)
    if _postgres_rejects(item):
        assert any(facts.is_unknown for facts in statements), item["id"]
    decision = evaluate(baseline, Identity("contractor", "app"), statements)
    if item["id"] in ALLOWED_LATER:
        assert decision.refused, f"{item['id']} passes now: remove it from ALLOWED_LATER"
    elif item["expected"] == "allow":
        assert not decision.refused, f"{item['id']}: {decision.detail}"


def test_text_and_bytes_agree_on_valid_utf8() -> None:
    if not CORPUS.is_file():
        pytest.skip(f"corpus not found at {CORPUS}")
    for item in yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["items"]:
        if "sql" in item:
            assert analyze(item["sql"]) == analyze_bytes(item["sql"].encode()), item["id"]
