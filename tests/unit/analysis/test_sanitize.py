"""sanitized_text never leaks a literal or a comment; query_summary names command and table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pglast.parser import scan

from sqlguard.analysis.parse import analyze
from sqlguard.analysis.sanitize import query_summary, sanitized_text

GOLDEN = [
    ("ALTER ROLE x PASSWORD 'secret'", "ALTER ROLE x PASSWORD ?"),
    ("SELECT 'a''b'", "SELECT ?"),
    ("SELECT E'it\\'s \\\\ \\n'", "SELECT ?"),
    ("SELECT U&'d\\0061t\\+000061'", "SELECT ?"),
    ("SELECT $$ body 'x' $$, $tag$ a $$ b $tag$", "SELECT ?, ?"),
    ("SELECT B'1010', X'FF', 1, 1.5, 1e3, .5, 0x1F, 1_000", "SELECT ?, ?, ?, ?, ?, ?, ?, ?"),
    ("SELECT -1, 2-3", "SELECT -?, ?-?"),
    ("SELECT $1, $2::text FROM t WHERE a = $3", "SELECT $1, $2::text FROM t WHERE a = $3"),
    ("SELECT interval '1 day', date '2024-01-01'", "SELECT interval ?, date ?"),
    ("SELECT 'a' 'b'", "SELECT ? ?"),
    ('select "Name", U&"d" FROM "T"', 'select "Name", U&"d" FROM "T"'),
    ("SELECT true, null", "SELECT true, null"),
    ("DELETE FROM t /* sqlguard:approval=abc.def */ WHERE id = 5", "DELETE FROM t  WHERE id = ?"),
    ("-- token=xyz\nSELECT 1 -- trailing\n", "SELECT ?"),
    ("SELECT a/*x*/FROM t", "SELECT a FROM t"),
    ("SELECT  1 ,\n\t2", "SELECT  ? ,\n\t?"),
    (
        "BEGIN; UPDATE t SET a = 'x' WHERE id = 1; COMMIT",
        "BEGIN; UPDATE t SET a = ? WHERE id = ?; COMMIT",
    ),
    ("SELECT 'é', 'ü😀' FROM \"ü\"", 'SELECT ?, ? FROM "ü"'),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), GOLDEN)
def test_golden(text: str, expected: str) -> None:
    assert sanitized_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 'unterminated secret",
        "SELECT $$ unterminated secret",
        "SELECT 'secret'\x00",
        "SELECT 1\x00 'secret'",
        "SELECT 1abc",
        "/* unterminated secret",
    ],
)
def test_unreadable_text_is_never_echoed(text: str) -> None:
    assert sanitized_text(text) == f"<not valid SQL: {len(text)} characters>"
    assert "secret" not in sanitized_text(text)


_CONTENT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00$"))
_PREFIXES = ["SELECT ", "ALTER ROLE app PASSWORD ", "INSERT INTO t VALUES ($1, "]
_SUFFIXES = {"": "", " AS x": " AS x", ")": ")", "; SELECT 2": "; SELECT ?", " -- note\n": ""}


def _quoted(kind: str, content: str) -> str:
    if kind == "plain":
        return "'" + content.replace("'", "''") + "'"
    if kind == "escape":
        return "E'" + content.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "$q$" + content + "$q$"


@given(
    content=_CONTENT,
    kind=st.sampled_from(["plain", "escape", "dollar"]),
    prefix=st.sampled_from(_PREFIXES),
    suffix=st.sampled_from(sorted(_SUFFIXES)),
)
def test_literal_content_never_appears(content: str, kind: str, prefix: str, suffix: str) -> None:
    result = sanitized_text(prefix + _quoted(kind, "Zq7" + content) + suffix)
    assert "Zq7" not in result
    assert result == prefix + "?" + _SUFFIXES[suffix]


_FRAGMENTS = ["SELECT ", "'", "''", "E'", "\\", "$$", "$a$", "$1", "--", "/*", "*/", "\n", " ", "1"]


@given(st.lists(st.sampled_from(_FRAGMENTS)), st.lists(st.sampled_from(_FRAGMENTS)))
def test_output_has_no_literal_or_comment(before: list[str], after: list[str]) -> None:
    result = sanitized_text("".join(before) + "'Zq7secret' /* Zq7 */" + "".join(after))
    if result.startswith("<not valid SQL: "):
        return
    names = {token.name for token in scan(result)}
    assert not names & {"SCONST", "USCONST", "ICONST", "FCONST", "BCONST", "XCONST"}
    assert not names & {"C_COMMENT", "SQL_COMMENT"}
    assert sanitized_text(result) == result


@pytest.mark.parametrize(
    ("sql", "summary"),
    [
        ("SELECT * FROM orders WHERE id = 1", "SELECT orders"),
        ("DROP TABLE old_logs", "DROP TABLE old_logs"),
        ("INSERT INTO orders SELECT * FROM items", "INSERT orders"),
        ("UPDATE accounts SET balance = 0 WHERE id = 7", "UPDATE accounts"),
        ("DELETE FROM comments WHERE id = 1", "DELETE comments"),
        ("BEGIN", "BEGIN"),
        ("SET search_path = app", "SET"),
        ("SELECT 1", "SELECT"),
        ("VALUES (1)", "SELECT"),
        ("TABLE t", "SELECT t"),
        ("WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d, b", "SELECT b"),
        ("WITH d AS (SELECT * FROM a) SELECT * FROM d", "SELECT a"),
        ("EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN t"),
        ("ALTER TABLE public.t ADD COLUMN c int", "ALTER TABLE public.t"),
        ("CREATE TABLE x AS SELECT * FROM y", "CREATE TABLE AS x"),
        ('SELECT * FROM "Odd"."T"', "SELECT Odd.T"),
        ("TRUNCATE old_logs", "TRUNCATE old_logs"),
        ("SELEC 1", "UNKNOWN"),
        ("", "EMPTY"),
        ("BEGIN; UPDATE accounts SET n = 1; COMMIT", "BEGIN; UPDATE accounts; COMMIT"),
        ("PREPARE p AS DELETE FROM t; EXECUTE p", "PREPARE t; DELETE t"),
    ],
)
def test_summary(sql: str, summary: str) -> None:
    assert query_summary(analyze(sql)) == summary


def test_summary_is_truncated() -> None:
    sql = "; ".join(f"SELECT * FROM table_number_{i}" for i in range(40))
    summary = query_summary(analyze(sql))
    assert len(summary) == 255
    assert summary.endswith("…")
    assert summary.startswith("SELECT table_number_0; SELECT table_number_1")


def test_summary_of_nothing_is_empty() -> None:
    assert query_summary([]) == ""
