"""Properties of analyze/analyze_bytes on arbitrary input: they never raise, always answer,
and what they answer is consistent with the input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sqlguard.analysis.facts import Kind
from sqlguard.analysis.parse import analyze, analyze_bytes

# Pieces that stress the scanner: quotes of every kind, comments, escapes, separators.
FRAGMENTS = [
    "SELECT ",
    "DELETE FROM t",
    " WHERE id = 1",
    "UPDATE t SET a = 1",
    "DROP TABLE t",
    ";",
    "'",
    "''",
    "E'",
    "\\",
    "\\'",
    "N'",
    "U&'",
    'U&"',
    '"',
    "$$",
    "$a$",
    "$1",
    "--",
    "\n",
    "/*",
    "*/",
    "(",
    ")",
    ",",
    " ",
    "\u00a0",
    "\u2028",
    "\ufeff",
    "0x1F",
    "1e",
    "::int",
    "WITH d AS (",
    ") SELECT * FROM d",
    "EXPLAIN ANALYZE ",
    "PREPARE p AS ",
    "COPY (",
    ") TO STDOUT",
    "BEGIN ATOMIC ",
    "END",
    "CREATE FUNCTION f() ",
    "CASE ",
]
sql_like = st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join)


def _check(result: tuple) -> None:
    assert len(result) >= 1
    for facts in result:
        assert facts.kinds, facts
        assert facts.is_unknown == (facts.reason is not None)
        assert not (facts.is_unknown and len(facts.kinds) > 1)
        assert facts.unscoped <= facts.kinds
        assert facts.unscoped <= {Kind.update, Kind.delete}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_analyze_bytes_never_raises(raw: bytes) -> None:
    _check(analyze_bytes(raw))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_analyze_never_raises_on_text(text: str) -> None:
    _check(analyze(text))


@settings(max_examples=500, deadline=None)
@given(sql_like)
def test_sql_like_text_is_analysed_consistently(text: str) -> None:
    result = analyze(text)
    _check(result)
    if not any(facts.is_unknown for facts in result) and result[0].kinds != {Kind.empty}:
        position = 0  # each statement's text is a slice of the message, in order
        for facts in result:
            position = text.index(facts.text, position) + len(facts.text)
    assert analyze_bytes(text.encode()) == result


# Statements with one blank between tokens; a mutation changes only what PostgreSQL ignores.
STATEMENTS = [
    "DELETE FROM users",
    "UPDATE users SET a = 1",
    "WITH d AS ( DELETE FROM t RETURNING * ) SELECT * FROM d",
    "EXPLAIN ANALYZE DELETE FROM t",
    "DROP TABLE public . users",
    "TRUNCATE ONLY a , b CASCADE",
    "DELETE FROM t WHERE id = 1",
]
SEPARATORS = [" ", "\n", "\t", "\r\n", "\f", "/* x */", "-- c\n", "/* /* n */ */", "  "]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STATEMENTS), st.data())
def test_blanks_comments_and_case_do_not_change_the_facts(
    statement: str, data: st.DataObject
) -> None:
    tokens = statement.split(" ")
    separators = data.draw(
        st.lists(st.sampled_from(SEPARATORS), min_size=len(tokens), max_size=len(tokens))
    )
    cases = data.draw(st.lists(st.booleans(), min_size=len(tokens), max_size=len(tokens)))
    mutated = "".join(
        (token.lower() if lower else token) + separator
        for token, separator, lower in zip(tokens, separators, cases, strict=True)
    )
    (expected,) = analyze(statement)
    (facts,) = analyze(mutated)
    assert (facts.kinds, facts.tables, facts.unscoped) == (
        expected.kinds,
        expected.tables,
        expected.unscoped,
    )
