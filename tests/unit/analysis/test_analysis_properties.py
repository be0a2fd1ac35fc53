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
        assert facts.unscoped <= {Kind.update, Kind.delete, Kind.merge}
        assert all(command == command.upper() for command in facts.commands)


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


# Statements with one blank between tokens; a mutation changes only what PostgreSQL ignores
# (the case of keywords and unquoted names, blanks, comments). Refused ones stay refused.
STATEMENTS = [
    "DELETE FROM users",
    "DELETE FROM t WHERE id = 1",
    "DELETE FROM users WHERE 1 = 1",
    "DELETE FROM users WHERE id = id OR a = 1",
    "DELETE FROM users WHERE EXISTS ( SELECT 1 FROM orders )",
    "DELETE FROM users u USING orders o WHERE u.id = o.user_id",
    "DELETE FROM users USING orders WHERE orders.id > 5",
    "UPDATE users SET a = 1",
    "UPDATE users SET a = 1 WHERE id IN ( SELECT id FROM users LIMIT 10 )",
    "UPDATE users SET a = $1 WHERE id = $2",
    "MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE",
    "MERGE INTO a USING b ON true WHEN MATCHED THEN UPDATE SET x = 1",
    "WITH d AS ( DELETE FROM t RETURNING * ) SELECT * FROM d",
    "EXPLAIN ANALYZE DELETE FROM t",
    "EXPLAIN ( ANALYZE false ) DELETE FROM t",
    "DROP TABLE public . users",
    "TRUNCATE ONLY a , b CASCADE",
    "ALTER TABLE t ADD COLUMN a int , DROP COLUMN b",
    "SET ROLE admin",
    "SET search_path TO app , public",
    "VACUUM ( FULL ) t",
    "COPY t TO STDOUT",
    "SELECT count ( * ) FROM t WHERE a IS NULL",
    "SELEC 1",
]
SEPARATORS = [" ", "\n", "\t", "\r\n", "\f", "/* x */", "-- c\n", "/* /* n */ */", "  "]


def _facts(sql: str) -> list[tuple[object, ...]]:
    return [
        (f.kinds, f.commands, f.unscoped, f.tables, f.settings, f.is_unknown) for f in analyze(sql)
    ]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STATEMENTS), st.data())
def test_blanks_comments_and_case_do_not_change_the_facts(
    statement: str, data: st.DataObject
) -> None:
    tokens = statement.split(" ")
    count = len(tokens)
    separators = data.draw(st.lists(st.sampled_from(SEPARATORS), min_size=count, max_size=count))
    cases = data.draw(
        st.lists(st.sampled_from([str.lower, str.upper, str.title]), min_size=count, max_size=count)
    )
    mutated = "".join(
        change(token) + separator
        for token, separator, change in zip(tokens, separators, cases, strict=True)
    )
    assert _facts(mutated) == _facts(statement)
