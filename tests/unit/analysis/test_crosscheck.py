"""sqlguard's reading against PostgreSQL's: where they differ, the statement is refused.

Real disagreements are rare by construction (sqlguard's scanner follows PostgreSQL's), so
most of these tests make one side read something else and check that the firewall refuses
with a reason that says so, and never lets the more harmless reading win.
"""

from __future__ import annotations

import pytest

from sqlguard.analysis import parse, statements
from sqlguard.analysis.facts import Kind
from sqlguard.analysis.lexer import tokenize
from sqlguard.analysis.parse import analyze
from sqlguard.analysis.split import split_statements


def test_a_different_number_of_statements_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse, "split_statements", lambda sql: split_statements(sql)[:1])
    (facts,) = analyze("SELECT 1; DROP TABLE users")
    assert facts.is_unknown
    assert facts.reason == (
        "sqlguard reads 1 statement(s) here and PostgreSQL 2; refusing rather than guessing"
    )


def test_statements_at_other_places_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def shifted(sql: str) -> list[statements.Statement]:
        first, second = split_statements(sql)
        return [first, second.part(1)]  # as if the second statement began one token later

    monkeypatch.setattr(parse, "split_statements", shifted)
    (facts,) = analyze("SELECT 1; DELETE FROM users WHERE id = 1")
    assert facts.is_unknown and "see statement 2 at different places" in (facts.reason or "")


def _sqlglot_reads(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """Make sqlglot read ``text`` whatever the statement says."""
    real = statements.parse_tokens
    monkeypatch.setattr(statements, "parse_tokens", lambda tokens: real(tokenize(text)))


def test_another_statement_class_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _sqlglot_reads(monkeypatch, "SELECT * FROM users")
    (facts,) = analyze("DELETE FROM users")
    assert facts.is_unknown
    assert facts.reason == (
        "sqlguard's reading (SELECT) and PostgreSQL's (DELETE) disagree; "
        "refusing rather than guessing"
    )


def test_other_nested_kinds_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _sqlglot_reads(monkeypatch, "SELECT 1")
    (facts,) = analyze("WITH d AS (DELETE FROM users RETURNING 1) SELECT 1")
    assert facts.is_unknown
    assert facts.reason == (
        "sqlguard's reading (SELECT) and PostgreSQL's (DELETE, SELECT) disagree; "
        "refusing rather than guessing"
    )


def test_no_where_for_postgresql_is_unscoped_whatever_sqlglot_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _sqlglot_reads(monkeypatch, "DELETE FROM users WHERE id = 1")  # the NBSP misreading
    (facts,) = analyze("DELETE FROM users WHERE\u00a0id")
    assert facts.unscoped == {Kind.delete}


def test_a_where_sqlglot_cannot_read_is_unknown_not_guessed() -> None:
    (facts,) = analyze("UPDATE t SET a = b OPERATOR(pg_catalog.+) 1 WHERE id = 1 ORDER BY x")
    assert facts.is_unknown  # PostgreSQL rejects ORDER BY here
    (facts,) = analyze("SELECT * FROM t ORDER BY a USING <")  # sqlglot cannot read it
    assert not facts.is_unknown and facts.tables == {"t"}


def test_dml_sqlglot_cannot_read_is_unknown_when_its_where_needs_judging() -> None:
    (facts,) = analyze(
        "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d ORDER BY a USING <"
    )
    assert facts.is_unknown and "sqlguard's SQL parser could not read it" in (facts.reason or "")
    (facts,) = analyze("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d ORDER BY a USING <")
    assert facts.unscoped == {Kind.delete}  # no WHERE at all: the grammar settles it


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + "(" * 5000 + "1" + ")" * 5000,
        "SELECT " + " + ".join(["1"] * 20000),
        "SELECT " + "- " * 3000 + "1",
        "SELECT " + "ARRAY[" * 3000 + "1" + "]" * 3000,
    ],
)
def test_deep_nesting_is_unknown_not_a_crash(sql: str) -> None:
    (facts,) = analyze(sql)
    assert facts.is_unknown and facts.reason


def test_unknown_statement_types_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlguard.analysis import command_names

    monkeypatch.delitem(command_names.SIMPLE, "CheckPointStmt")
    (facts,) = analyze("CHECKPOINT")
    assert facts.is_unknown
    assert facts.reason == "sqlguard does not know PostgreSQL's CheckPointStmt statements"
