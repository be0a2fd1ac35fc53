"""The public evasion corpus, offline: analysis plus the shipped rules, as an identity no
rule file names (so the default group, contractors), must give every item its verdict."""

from __future__ import annotations

import pytest

from sqlguard.analysis.parse import analyze, analyze_bytes
from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.policy.builtin import UNPARSED
from sqlguard.policy.engine import evaluate
from sqlguard.policy.loader import load_rules
from sqlguard.policy.model import Identity
from sqlguard.policy.ruleset import RuleSet
from sqlguard.testing.corpus import CorpusItem, load_corpus

CORPUS = load_corpus()
UNNAMED = Identity("corpus_contractor", "app", "", "127.0.0.1")
pytestmark = pytest.mark.skipif(not CORPUS, reason="the corpus is not beside this checkout")


@pytest.fixture(scope="module")
def baseline() -> RuleSet:
    return load_rules(DEFAULT_RULES_DIR)


@pytest.mark.parametrize("item", CORPUS, ids=[item.id for item in CORPUS])
def test_corpus_item(item: CorpusItem, baseline: RuleSet) -> None:
    statements = analyze_bytes(item.message)
    decision = evaluate(baseline, UNNAMED, statements)
    assert str(decision.action) == item.expected, (item.id, decision.rule_id, decision.detail)
    if item.postgres_rejects:
        assert decision.rule_id == UNPARSED, item.id


def test_text_and_bytes_agree_on_valid_utf8() -> None:
    for item in CORPUS:
        text = item.message.decode("utf-8", "replace")
        if text.encode() == item.message:
            assert analyze(text) == analyze_bytes(item.message), item.id
