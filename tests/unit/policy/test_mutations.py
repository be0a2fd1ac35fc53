"""Mutations PostgreSQL ignores must not change a decision: keyword and identifier case,
whitespace, and comments between tokens, applied to every corpus statement."""

from __future__ import annotations

import random

import pglast.parser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast.parser import Token

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.firewall import Firewall
from sqlguard.policy.loader import load_rules
from sqlguard.policy.model import Identity
from sqlguard.testing.corpus import CorpusItem, load_corpus

CONTRACTOR = Identity("mutation_contractor", "app")
GAPS = [" ", "\t", "\n", "  \r\n ", " /* x */ ", "/**/", " --x\n", "\n/* a /* nested */ b */\n"]


def _scannable(item: CorpusItem) -> bool:
    if item.postgres_rejects or b"\0" in item.message:
        return False
    try:
        pglast.parser.scan(item.message.decode("utf-8"))
    except Exception:
        return False
    return True


ITEMS = [item for item in load_corpus() if _scannable(item)]


def mutate(message: bytes, rng: random.Random) -> bytes:
    """Re-case unquoted words and put random whitespace/comments between tokens."""
    text = message.decode("utf-8")
    tokens = pglast.parser.scan(text)  # positions count characters, not bytes
    out, previous = [text[: tokens[0].start]], None
    for token in tokens:
        if previous is not None:
            out.append(_gap(text[previous.end + 1 : token.start], previous, token, rng))
        out.append(_recased(text[token.start : token.end + 1], rng))
        previous = token
    out.append(text[tokens[-1].end + 1 :])
    return "".join(out).encode("utf-8")


def _gap(original: str, before: Token, after: Token, rng: random.Random) -> str:
    if before.name == "SCONST" and after.name == "SCONST":
        return original  # 'a'\n'b' is one string in PostgreSQL; 'a' 'b' is an error
    if rng.random() < 0.5:
        return original
    if before.name == "SQL_COMMENT":
        return "\n" + rng.choice(GAPS)  # a -- comment runs to the end of its line
    return rng.choice(GAPS)


def _recased(word: str, rng: random.Random) -> str:
    # Unquoted names and keywords fold to lower case: their case never matters.
    if not word.isascii() or not word.replace("_", "").isalnum() or word[:1].isdigit():
        return word
    return "".join(c.swapcase() if rng.random() < 0.5 else c for c in word)


@pytest.fixture(scope="module")
def firewall() -> Firewall:
    return Firewall(load_rules(DEFAULT_RULES_DIR))


@pytest.mark.skipif(not ITEMS, reason="the corpus is not beside this checkout (../shared)")
@pytest.mark.parametrize("item", ITEMS, ids=[item.id for item in ITEMS])
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32))
def test_mutation_keeps_the_decision(item: CorpusItem, firewall: Firewall, seed: int) -> None:
    original = firewall.judge(item.message, CONTRACTOR)
    mutated = mutate(item.message, random.Random(seed))
    decision = firewall.judge(mutated, CONTRACTOR)
    assert (decision.action, decision.rule_id) == (original.action, original.rule_id), mutated
