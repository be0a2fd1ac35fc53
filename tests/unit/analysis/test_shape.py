"""Statement shapes: texts share a shape only if no literal value can change the verdict.

The property tested is the one the decision cache relies on: two texts with the same shape
get the same decision (under the bundled rules, for contractors and staff), whatever
literals they carry. Statements come from the evasion corpus, pgbench's scripts and
look-alikes built to catch value-dependent verdicts.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlguard.analysis import shape as shape_module
from sqlguard.analysis.describe import _logged_forms
from sqlguard.analysis.fingerprint import fingerprint
from sqlguard.analysis.parse import analyze
from sqlguard.analysis.sanitize import sanitized_text
from sqlguard.analysis.shape import shape, shape_tokens
from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.firewall import Firewall
from sqlguard.policy.engine import evaluate
from sqlguard.policy.loader import load_rules
from sqlguard.policy.model import Identity
from sqlguard.testing.corpus import load_corpus

RULES = load_rules(DEFAULT_RULES_DIR)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
PEOPLE = [Identity("contractor_ann", "app"), Identity("postgres", "app", groups=("staff",))]

SHAPED = [
    ("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
     "SELECT abalance FROM pgbench_accounts WHERE aid = ?"),
    ("UPDATE pgbench_accounts SET abalance = abalance + -4711 WHERE aid = 12;",
     "UPDATE pgbench_accounts SET abalance = abalance + ? WHERE aid = ?"),
    ("INSERT INTO h (tid, delta, mtime) VALUES (3, -222, CURRENT_TIMESTAMP)",
     "INSERT INTO h ( tid , delta , mtime ) VALUES ( ? , ? , CURRENT_TIMESTAMP )"),
    ("SELECT * FROM t WHERE aid BETWEEN -5 AND 15 LIMIT 10 OFFSET 20",
     "SELECT * FROM t WHERE aid BETWEEN ? AND ? LIMIT ? OFFSET ?"),
    ("SELECT * FROM t WHERE 5 = aid AND b IN (1, 'x')",
     "SELECT * FROM t WHERE ? = aid AND b IN ( ? , ? )"),
    ("DELETE FROM t WHERE name = 'it''s'", "DELETE FROM t WHERE name = ?"),
]  # fmt: skip

# Texts whose literals decide the verdict or that the shape alphabet does not cover.
KEPT_AS_WRITTEN = [
    "DELETE FROM t WHERE 1 = 1",
    "DELETE FROM t WHERE a + 1 = a + 1",
    "DELETE FROM t WHERE a LIKE '%'",
    "SELECT set_config('search_path', 'x', false)",
    "INSERT INTO t VALUES (set_config('a', 'b', false))",
    "SELECT lo_export(5, '/tmp/x')",
    "DELETE FROM t WHERE a = a",
]
NO_SHAPE = [
    "DELETE FROM t WHERE a > 5 OR a < 10",
    "DELETE FROM t WHERE NOT (a = 1)",
    "SELECT 1 -- c",
    "SELECT 1 /* c */",
    "SELECT 0x1F",
    "SELECT 'a' || 'b'",
    "SELECT 1; DROP TABLE t",
    "SELECT a FROM t WHERE a = $1",
    "SELECT a FROM t WHERE a = E'\\\\'",
    'SELECT a FROM "T" WHERE a = 1',
    "SELECT a FROM t WHERE a = 1::text",
    "SELECT a FROM t WHERE a = 'caf\u00e9'",
    "SELECT a\u00a0FROM t",
    "DO $$ BEGIN DROP TABLE t; END $$",
    "DROP TABLE t",
    "SET search_path = 'x'",
    "COPY t TO '/tmp/x'",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "SELECT a FROM t WHERE a =- 5",
    "UPDATE pg_settings SET setting = 'x' WHERE name = 'role'",
    "SELECT pg_read_file('/etc/passwd')",
]


@pytest.mark.parametrize(("text", "expected"), SHAPED)
def test_values_become_placeholders(text: str, expected: str) -> None:
    assert shape(text) == expected


@pytest.mark.parametrize("text", KEPT_AS_WRITTEN)
def test_literals_that_can_matter_stay(text: str) -> None:
    assert shape(text) == " ".join(re.findall(r"'(?:[^']|'')*'|\w+|[^\s\w]", text))


@pytest.mark.parametrize("text", NO_SHAPE)
def test_texts_outside_the_alphabet_have_no_shape(text: str) -> None:
    assert shape(text) is None


def _decision(text: str, identity: Identity) -> tuple[str, str]:
    decision = evaluate(RULES, identity, analyze(text), NOW)
    return (str(decision.action), decision.rule_id)


_LITERAL = re.compile(r"'(?:[^'\\]|'')*'|(?<![A-Za-z0-9_.])-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_.])")
_VALUES = [
    "0", "1", "2", "-1", "5", "10", "3.5", "99999999999", "'%'", "''", "'x'", "'1'", "'a%'",
    "'%%'", "'it''s'", "'true'", "'DROP TABLE t'", "'; DROP TABLE t; --'",
]  # fmt: skip


def _with_other_literals(text: str, rng: random.Random) -> str:
    return _LITERAL.sub(lambda _: rng.choice(_VALUES), text)


def _candidates() -> list[str]:
    corpus = [
        item.message.decode("utf-8", "replace")
        for item in load_corpus()
        if not item.postgres_rejects
    ]
    return [text for text in [*corpus, *(t for t, _ in SHAPED), *KEPT_AS_WRITTEN] if shape(text)]


CANDIDATES = _candidates()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CANDIDATES), st.randoms(use_true_random=False))
def test_same_shape_means_same_decision(text: str, rng: random.Random) -> None:
    other = _with_other_literals(text, rng)
    if shape(other) != shape(text):
        return  # a literal moved into a position that keeps it: another shape, nothing to prove
    for identity in PEOPLE:
        assert _decision(other, identity) == _decision(text, identity), (text, other)


def test_look_alikes_that_differ_in_verdict_never_share_a_shape() -> None:
    pairs = [
        ("DELETE FROM t WHERE a LIKE '%'", "DELETE FROM t WHERE a LIKE 'a%'"),
        ("DELETE FROM t WHERE a + 1 = a + 1", "DELETE FROM t WHERE a + 1 = a + 2"),
        ("DELETE FROM t WHERE a > 5 OR a < 10", "DELETE FROM t WHERE a > 5 OR a < 3"),
    ]
    for refused, allowed in pairs:
        assert _decision(refused, PEOPLE[0]) != _decision(allowed, PEOPLE[0])
        assert shape(refused) is None or shape(refused) != shape(allowed)


def test_the_firewall_reuses_a_shapes_decision_and_facts() -> None:
    firewall = Firewall(RULES)
    first = firewall.judge(b"SELECT abalance FROM pgbench_accounts WHERE aid = 1", PEOPLE[0])
    second = firewall.judge(b"SELECT abalance FROM pgbench_accounts WHERE aid = 2;", PEOPLE[0])
    assert first == second
    assert firewall.cache_stats()["shapes"][0] == 1  # one hit
    facts = firewall.facts(b"SELECT abalance FROM pgbench_accounts WHERE aid = 3 ;")
    assert facts[0].text == "SELECT abalance FROM pgbench_accounts WHERE aid = 3"
    assert facts[0].tables == frozenset({"pgbench_accounts"})


def test_rules_that_read_the_text_turn_shapes_off(tmp_path) -> None:
    (tmp_path / "groups.yaml").write_text(
        "default_group: people\ngroups:\n  people: {default: allow}\n"
        "rules:\n  - id: no-secret\n    match: {text: 'secret'}\n    action: deny\n"
        "    message: no secrets\n"
    )
    firewall = Firewall(load_rules(tmp_path))
    who = Identity("ann", "app")
    assert firewall.judge(b"SELECT a FROM t WHERE a = 'public'", who).action == "allow"
    assert firewall.judge(b"SELECT a FROM t WHERE a = 'secret'", who).action == "deny"


_WORDS = [
    "select",
    "SELECT",
    "Insert",
    "update",
    "delete",
    "from",
    "where",
    "and",
    "in",
    "values",
    "set",
    "limit",
    "between",
    "name",
    "Type",
    "value",
    "abalance",
    "T",
    "pgbench_accounts",
    "x_1",
    "current_timestamp",
    "join",
    "on",
    "as",
    "null",
    "true",
]
_PIECES = st.one_of(
    st.sampled_from(_WORDS),
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,3})?", fullmatch=True),
    st.from_regex(r"'([a-z %;-]|'')*'", fullmatch=True),
    st.sampled_from(["=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "(", ")", ","]),
    st.just("."),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["SELECT", "insert", "Update", "DELETE"]),
    st.lists(st.tuples(st.sampled_from([" ", "  ", "\n", "\t", ""]), _PIECES), max_size=14),
    st.sampled_from(["", ";", " ;", "; ", "\n"]),
)
def test_logged_forms_from_shape_tokens_match_postgresqls_lexer(
    head: str, body: list[tuple[str, str]], end: str
) -> None:
    """The audit's sanitised text and fingerprint, built from shape tokens, are the ones
    PostgreSQL's lexer (through pglast) gives."""
    text = head + "".join(blank + piece for blank, piece in body) + end
    if shape_tokens(text) is None:
        return
    assert _logged_forms(text) == (sanitized_text(text), fingerprint(text))


def _reference(text: str) -> tuple[str, tuple[str, ...]] | None:
    """Shape and tokens computed from this text's own tokens, with no family cache."""
    if not text.isascii() or shape_module._VALID.fullmatch(text) is None:
        return None
    tokens = shape_module._tokens(text)
    if tokens is None:
        return None
    return " ".join(shape_module._replaced(tuple(tokens))), tuple(tokens)


_NUMBERS = st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,3})?", fullmatch=True)
_STRINGS = st.from_regex(r"'([a-z0-9 %;=().-]|'')*'", fullmatch=True)
_LITERAL_PIECES = st.one_of(
    st.sampled_from(_WORDS),
    st.tuples(st.just("number"), _NUMBERS, _NUMBERS),
    st.tuples(st.just("string"), _STRINGS, _STRINGS),
    st.sampled_from(["=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "(", ")", ","]),
    st.just("."),
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(["SELECT", "insert", "Update", "DELETE", "select 1", "WITH"]),
    st.lists(st.tuples(st.sampled_from([" ", "  ", "\n", "\t", ""]), _LITERAL_PIECES), max_size=14),
    st.sampled_from(["", ";", " ;", "; ", "\n", "; SELECT 1"]),
)
def test_texts_of_one_family_get_the_shape_their_own_tokens_give(
    head: str, body: list[tuple[str, str | tuple[str, str, str]]], end: str
) -> None:
    """The shape cache per literal family (same text around literals of the same kinds)
    gives exactly what tokenising each text would: two texts that differ only in their
    literals' values are judged in turn, the second one through the first one's family."""
    first = second = head
    for blank, piece in body:
        if isinstance(piece, tuple):
            first += blank + piece[1]
            second += blank + piece[2]
        else:
            first += blank + piece
            second += blank + piece
    first, second = first + end, second + end
    for text in (first, second, first):
        expected = _reference(text)
        assert shape(text) == (expected[0] if expected else None), text
        assert shape_tokens(text) == (expected[1] if expected else None), text
