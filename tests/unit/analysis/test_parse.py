"""analyze(): statements, kinds (nested too), tables, unscoped DML, functions, and the
fail-closed paths. Lexical cases follow PostgreSQL's scanner, not sqlglot's."""

from __future__ import annotations

import logging

import pytest

from sqlguard.analysis import parse, sqlglot_parse
from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.parse import analyze, analyze_bytes

K = Kind


def one(sql: str) -> StatementFacts:
    (facts,) = analyze(sql)
    return facts


def kinds(sql: str) -> set[Kind]:
    return set(one(sql).kinds)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", {K.select}),
        ("VALUES (1, 'a')", {K.select}),
        ("TABLE users", {K.select}),
        ("(SELECT 1) UNION (SELECT 2)", {K.select}),
        ("INSERT INTO t VALUES (1)", {K.insert}),
        ("INSERT INTO t SELECT * FROM u", {K.insert, K.select}),
        ("INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2", {K.insert, K.update}),
        ("UPDATE t SET a = 1 WHERE id = 2", {K.update}),
        ("DELETE FROM t WHERE id = 2", {K.delete}),
        ("MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE", {K.merge, K.delete}),
        (
            "MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN UPDATE SET x = 1 "
            "WHEN NOT MATCHED THEN INSERT (id) VALUES (b.id)",
            {K.merge, K.update, K.insert},
        ),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", {K.delete, K.select}),
        ("WITH x AS (SELECT 1) UPDATE t SET a = 1 FROM x WHERE t.id = 1", {K.update, K.select}),
        ("SELECT * INTO TABLE snapshot FROM orders", {K.select, K.create}),
        ("CREATE TABLE t2 AS SELECT * FROM t", {K.create, K.select}),
        ("ALTER TABLE t DROP COLUMN c", {K.alter}),
        ("DROP TABLE t", {K.drop}),
        ("DROP FUNCTION f(int)", {K.drop}),
        ("TRUNCATE a, b", {K.truncate}),
        ("COPY t TO STDOUT", {K.copy}),
        ("COPY (SELECT 1) TO STDOUT", {K.copy, K.select}),
        ("COPY (DELETE FROM t RETURNING *) TO STDOUT", {K.copy, K.delete}),
        ("GRANT SELECT ON t TO bob", {K.grant}),
        ("GRANT ALL ON ALL TABLES IN SCHEMA public TO bob", {K.grant}),
        ("REVOKE SELECT ON t FROM bob", {K.revoke}),
        ("CREATE ROLE bob LOGIN", {K.create, K.role}),
        ("ALTER USER bob SUPERUSER", {K.alter, K.role}),
        ("DROP GROUP staff", {K.drop, K.role}),
        ("REASSIGN OWNED BY bob TO alice", {K.role}),
        ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", {K.alter, K.grant}),
        ("EXPLAIN ANALYZE DELETE FROM t", {K.utility, K.delete}),
        ("EXPLAIN (ANALYZE) DELETE FROM t", {K.utility, K.delete}),
        ("EXPLAIN (FORMAT json, ANALYZE on) DELETE FROM t", {K.utility, K.delete}),
        ("EXPLAIN (analyze 1) DELETE FROM t", {K.utility, K.delete}),
        ("EXPLAIN DELETE FROM t", {K.utility}),
        ("EXPLAIN VERBOSE DELETE FROM t", {K.utility}),
        ("EXPLAIN (ANALYZE false) DELETE FROM t", {K.utility}),
        ("EXPLAIN (ANALYZE 'off') DELETE FROM t", {K.utility}),
        ("PREPARE p AS DELETE FROM t WHERE id = $1", {K.utility, K.delete}),
        ("PREPARE p (int, text) AS UPDATE t SET a = $2 WHERE id = $1", {K.utility, K.update}),
        ("PREPARE TRANSACTION 'x'", {K.transaction}),
        ("DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT * FROM t", {K.utility, K.select}),
        ("EXECUTE p", {K.utility}),
        ("DEALLOCATE ALL", {K.utility}),
        ("DISCARD ALL", {K.session}),
        ("DISCARD PLANS", {K.utility}),
        ("SET ROLE admin", {K.session}),
        ("SET LOCAL ROLE admin", {K.session}),
        ("SET role = 'admin'", {K.session}),
        ('SET "ROLE" TO admin', {K.session}),
        ("SET SESSION AUTHORIZATION DEFAULT", {K.session}),
        ("SET LOCAL SESSION AUTHORIZATION bob", {K.session}),
        ("SET session_authorization = bob", {K.session}),
        ("RESET ROLE", {K.session}),
        ("RESET SESSION AUTHORIZATION", {K.session}),
        ("SET myext.role = 1", {K.set}),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", {K.set}),
        ("SET search_path TO app, public", {K.set}),
        ("RESET ALL", {K.set}),
        ("SHOW search_path", {K.show}),
        ("BEGIN", {K.transaction}),
        ("START TRANSACTION READ ONLY", {K.transaction}),
        ("SAVEPOINT s", {K.transaction}),
        ("RELEASE SAVEPOINT s", {K.transaction}),
        ("ROLLBACK TO SAVEPOINT s", {K.transaction}),
        ("END", {K.transaction}),
        ("ABORT", {K.transaction}),
        ("VACUUM (ANALYZE) t", {K.utility}),
        ("ANALYZE t", {K.utility}),
        ("LISTEN jobs", {K.utility}),
        ("CHECKPOINT", {K.utility}),
    ],
)
def test_kinds(sql: str, expected: set[Kind]) -> None:
    assert kinds(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DELETE FROM t", {K.delete}),
        ("UPDATE t SET a = 1", {K.update}),
        ("UPDATE t SET a = 1 RETURNING *", {K.update}),
        ("DELETE FROM t WHERE id = 1", set()),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", {K.delete}),
        ("WITH d AS (DELETE FROM t WHERE a RETURNING *) UPDATE u SET x = 1", {K.update}),
        ("SELECT * FROM (WITH d AS (DELETE FROM t RETURNING 1) SELECT 1 FROM d) s", {K.delete}),
        ("EXPLAIN ANALYZE UPDATE t SET a = 1", {K.update}),
        ("EXPLAIN UPDATE t SET a = 1", set()),
        ("PREPARE p AS DELETE FROM t", {K.delete}),
        ("COPY (UPDATE t SET a = 1 RETURNING a) TO STDOUT", {K.update}),
        # MERGE's ON clause is mandatory; a join predicate on the target restricts.
        ("MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE", set()),
        ("INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2", set()),
    ],
)
def test_unscoped(sql: str, expected: set[Kind]) -> None:
    assert set(one(sql).unscoped) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM Users JOIN app.Orders o ON true", {"users", "app.orders"}),
        ('SELECT * FROM "Users", "App"."T"', {"Users", "App.T"}),
        ("DELETE FROM appdb.public.users", {"appdb.public.users"}),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", {"t"}),
        ("WITH r AS (SELECT 1) SELECT * FROM r, s.r", {"s.r"}),
        ("WITH a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM a, b", {"b"}),
        ("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT 1 FROM a", set()),
        ("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x", {"x"}),
        ("WITH t AS (SELECT 1) DELETE FROM t", {"t"}),  # a DML target is never a CTE
        ("UPDATE a SET x = 1 FROM b WHERE a.id = b.id", {"a", "b"}),
        ("MERGE INTO a USING (SELECT * FROM c) s ON true WHEN MATCHED THEN DELETE", {"a", "c"}),
        ("SELECT * FROM generate_series(1, 3) g, s.f(1) h", set()),
        ("SELECT (SELECT max(id) FROM x) WHERE EXISTS (SELECT 1 FROM y)", {"x", "y"}),
        ("INSERT INTO t (a) SELECT a FROM u", {"t", "u"}),
        ("COPY (SELECT * FROM t) TO STDOUT", {"t"}),
        ('COPY "public"."t"("a", "b") FROM STDIN (FORMAT binary)', {"public.t"}),  # asyncpg
        ("EXPLAIN SELECT * FROM t", {"t"}),
        ("DROP TABLE a, s.b", {"a", "s.b"}),
        ("DROP SCHEMA s", set()),
        ("DROP FUNCTION f(int)", set()),
        ("CREATE INDEX i ON t (a)", {"t"}),
        ("CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", set()),
        ("TRUNCATE ONLY a, b CASCADE", {"a", "b"}),
        ("SELECT * INTO snapshot FROM orders", {"snapshot", "orders"}),
        ("DROP TABLE " + "u" * 100, {"u" * 63}),  # PostgreSQL truncates names to 63 bytes
        ("SELECT * FROM " + "é" * 40, {"é" * 31}),
    ],
)
def test_tables(sql: str, expected: set[str]) -> None:
    assert set(one(sql).tables) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT now(), lower('X'), count(*) FROM t", {"now", "lower", "count"}),
        (
            "SELECT pg_catalog.lower('X'), public.dblink_exec('', 'x')",
            {"pg_catalog.lower", "public.dblink_exec"},
        ),
        ("SELECT \"pg_read_file\"('/etc/passwd'), PG_READ_FILE('x')", {"pg_read_file"}),
        ('SELECT "Lower"(x) FROM t', {"Lower"}),
        ("SELECT * FROM s.f(1) g", {"s.f"}),
        ("SELECT CAST(a AS int), a::int, CASE WHEN a THEN 1 END, current_user FROM t", set()),
        ("SELECT set_config('role', 'admin', false)", {"set_config"}),
        ("CALL public.reset_everything(true)", {"public.reset_everything"}),
        ("EXECUTE p(pg_sleep(10))", {"pg_sleep"}),
        ("EXPLAIN SELECT pg_sleep(1)", {"pg_sleep"}),
    ],
)
def test_functions(sql: str, expected: set[str]) -> None:
    assert set(one(sql).functions) == expected


def test_statements_are_split_like_postgresql_and_keep_their_source_text() -> None:
    message = "SELECT ';' AS a; /* c; */ DELETE FROM t WHERE x = $$;$$ ;; -- end\n"
    assert [facts.text for facts in analyze(message)] == [
        "SELECT ';' AS a",
        "/* c; */ DELETE FROM t WHERE x = $$;$$",
    ]


def test_begin_atomic_body_stays_one_statement() -> None:
    message = (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; "
        "SELECT CASE WHEN true THEN 2 END; END; SELECT 3"
    )
    texts = [facts.text for facts in analyze(message)]
    assert len(texts) == 2 and texts[1] == "SELECT 3"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # PostgreSQL nests /* */ comments: the DROP is inside the comment.
        ("/* /* */ DROP TABLE t; */ SELECT 1", [{K.select}]),
        # Dollar-quote tags are case-sensitive and may be non-ASCII.
        ("SELECT $A$ x $a$; DROP TABLE t; $A$", [{K.select}]),
        ("SELECT $ä$ ; DROP TABLE t; $ä$", [{K.select}]),
        # E'' strings have backslash escapes, plain and N'' strings do not.
        ("SELECT E'\\'; DROP TABLE t; --'", [{K.select}]),
        ("SELECT E'\\\\'; DROP TABLE t; --'", [{K.select}, {K.drop}]),
        ("SELECT N'\\'; TRUNCATE t; --'", [{K.select}, {K.truncate}]),
        ('SELECT 1 AS "a\\"; DROP TABLE t; --"', [{K.select}, {K.drop}]),
        # Strings continue across a newline: 'a' <newline> 'b' is one literal.
        ("SELECT 'a'\n  'b'; DROP TABLE t", [{K.select}, {K.drop}]),
        # A -- comment ends only at \n or \r.
        ("DELETE FROM t -- x\u2028WHERE id = 1", [{K.delete}]),
        ("SELECT 0x1F; DROP TABLE t", [{K.select}, {K.drop}]),
    ],
)
def test_lexical_edge_cases(sql: str, expected: list[set[Kind]]) -> None:
    assert [set(facts.kinds) for facts in analyze(sql)] == expected


def test_no_break_space_is_part_of_a_word_as_in_postgresql() -> None:
    facts = one("DELETE FROM users WHERE\u00a0is_spam")
    assert facts.unscoped == {K.delete}  # "WHERE\u00a0is_spam" is an alias, not a WHERE


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", "/* c */", ";", " ; ;"])
def test_empty_message_is_one_empty_statement(sql: str) -> None:
    assert analyze(sql) == (StatementFacts(sql, frozenset({K.empty})),)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELEC 1", 'PostgreSQL\'s parser rejects it: syntax error at or near "SELEC"'),
        ("SELECT * FROM t WHERE (", "PostgreSQL's parser rejects it: syntax error"),
        ("UPDATE t SET a = 1 LIMIT 1", 'syntax error at or near "LIMIT"'),
        ("PREPARE p AS DROP TABLE t", 'syntax error at or near "DROP"'),
        ("EXPLAIN (ANALYZE, COSTS off) TRUNCATE t", 'syntax error at or near "TRUNCATE"'),
        ("EXPLAIN", "syntax error"),
        ("SELECT 'open", "unterminated"),
        ("SELECT /* open", "unterminated /* comment"),
        ("SELECT $x$ open", "unterminated dollar-quoted"),
        ("SELECT 1a", "trailing junk"),
        ('SELECT ""', "zero-length delimited identifier"),
        ("SELECT U&'\\0041' UESCAPE '!'", "UESCAPE"),
        ("SELECT E'\\377'", 'invalid byte sequence for encoding "UTF8"'),
        ("SELECT E'\\x00'", 'invalid byte sequence for encoding "UTF8": 0x00'),
        ("SELECT {1}", 'syntax error at or near "{"'),
        ("SELECT 1 ` 2", "`"),
        ("SELECT 1\x00", "NUL character"),
        ("SELECT '\ud800'", "not valid UTF-8"),
        ("\ufeffSELECT 1", 'syntax error at or near "\ufeffSELECT"'),
        ("SELECT 1; SELEC 2", None),
    ],
)
def test_what_cannot_be_understood_is_unknown_with_a_reason(sql: str, reason: str | None) -> None:
    unknown = [facts for facts in analyze(sql) if facts.is_unknown]
    assert len(unknown) == 1 and unknown[0].kinds == {K.unknown}
    assert unknown[0].reason and (reason is None or reason in unknown[0].reason)


def test_a_scanner_error_anywhere_makes_the_whole_message_unknown() -> None:
    (facts,) = analyze("SELECT 1; SELECT 'open")
    assert facts.is_unknown and facts.text == "SELECT 1; SELECT 'open"


def test_deep_nesting_is_unknown_not_a_crash() -> None:
    deep = "SELECT " + "(" * 3000 + "1" + ")" * 3000
    assert one(deep).reason == "the statement is nested too deeply to analyse"


def test_an_internal_error_is_unknown_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*arguments: object) -> StatementFacts:
        raise RuntimeError("bug")

    monkeypatch.setattr(parse, "statement_facts", broken)
    (facts,) = analyze("SELECT 1")
    assert facts.is_unknown and facts.reason == "the analysis failed (RuntimeError)"


def test_text_sqlglot_does_not_read_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class DropsLastToken:  # as if sqlglot took the end of the statement for a comment
        def tokenize(self, sql: str) -> list:
            return real.tokenize(sql)[:-1]

    real = sqlglot_parse._TOKENIZER
    monkeypatch.setattr(sqlglot_parse, "_TOKENIZER", DropsLastToken())
    facts = one("DELETE FROM t WHERE id = 1")
    assert facts.is_unknown and "skips part of it" in (facts.reason or "")


def test_bytes_must_be_valid_utf8() -> None:
    (facts,) = analyze_bytes(b"DROP TABLE \x80users")
    assert facts.is_unknown and facts.reason == "not valid UTF-8"
    assert analyze_bytes("SELECT 'é'".encode()) == analyze("SELECT 'é'")


def test_sqlglot_fallback_warnings_stay_quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert one("UPDATE t SET a = 1 WHERE CURRENT OF c").kinds == {K.update}  # a Command
    assert not [record for record in caplog.records if record.name.startswith("sqlglot")]
