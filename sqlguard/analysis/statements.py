"""One statement's facts: PostgreSQL's reading, cross-checked with sqlglot's.

PostgreSQL's parse tree (``pgread``) gives the kinds, command names, names, settings and
COPY endpoints. sqlglot reads every statement that holds a query or DML (the statement
itself, or the one EXPLAIN, PREPARE, DECLARE or COPY (...) wraps, found by our tokens) and
judges the WHERE of each UPDATE/DELETE/MERGE; its statement class and kinds must match
PostgreSQL's, or the statement is refused: a firewall that reads SQL differently from the
server can be walked around. Commands whose grammar holds no query (SET, VACUUM, DO,
CREATE FUNCTION ...) are PostgreSQL's reading alone.

Where sqlglot cannot read a statement, PostgreSQL's reading stands if it settles the
scoping by itself (no WHERE at all, or WHERE CURRENT OF); otherwise the statement is
unknown. A DML statement inside a command sqlglot has no part in (a CREATE RULE action, a
``BEGIN ATOMIC`` routine body) whose WHERE the grammar alone cannot judge counts as
unscoped: fail closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlglot import exp

from sqlguard.analysis.commands import explain_analyzes
from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.lexer import LexError, T
from sqlguard.analysis.pgread import read
from sqlguard.analysis.pgtree import Fields, Reading
from sqlguard.analysis.postgres import PgStatement
from sqlguard.analysis.split import Statement, matching_paren
from sqlguard.analysis.sqlglot_parse import Unsupported, parse_tokens
from sqlguard.analysis.tree import tree_facts

Reader = Callable[[Statement, Fields], StatementFacts | None]
"""sqlglot's reading (kinds, unscoped) of a statement; None where sqlglot has no part."""


class Disagreement(Unsupported):
    """sqlglot read the statement, and not as PostgreSQL does."""


def statement_facts(stmt: Statement, pg: PgStatement) -> tuple[StatementFacts, Reading]:
    """The facts of one statement, and PostgreSQL's reading of it.

    >>> from sqlguard.analysis.split import split_statements
    >>> from sqlguard.analysis.postgres import parse_message
    >>> sql = "EXPLAIN ANALYZE DELETE FROM t"
    >>> facts, _ = statement_facts(split_statements(sql)[0], parse_message(sql)[0])
    >>> sorted(facts.commands), sorted(facts.unscoped)
    (['DELETE', 'EXPLAIN', 'EXPLAIN ANALYZE'], [<Kind.delete: 'delete'>])
    """
    reading = read(pg.node_type, pg.fields)
    if reading.reason is not None:
        return StatementFacts.unknown(stmt.text, reading.reason), reading
    try:
        judged = sqlglot_reading(stmt, pg.node_type, pg.fields)
    except Disagreement as exc:
        return StatementFacts.unknown(stmt.text, str(exc)), reading
    except (Unsupported, LexError) as exc:
        if reading.unjudged:
            return StatementFacts.unknown(stmt.text, str(exc)), reading
        judged = None
    if judged is not None and judged.kinds != reading.kinds:
        return StatementFacts.unknown(stmt.text, _disagree(judged.kinds, reading.kinds)), reading
    unscoped = judged.unscoped if judged is not None else frozenset(reading.unjudged)
    return _facts(stmt, reading, unscoped | reading.unwhered), reading


def _facts(stmt: Statement, reading: Reading, unscoped: Iterable[Kind]) -> StatementFacts:
    return StatementFacts(
        text=stmt.text,
        kinds=frozenset(reading.kinds),
        tables=frozenset(reading.tables),
        unscoped=frozenset(unscoped),
        functions=frozenset(reading.functions),
        commands=frozenset(reading.commands | _spelling(stmt, reading)),
        columns=frozenset(reading.columns),
        settings=frozenset(reading.settings),
        copy_endpoints=frozenset(reading.copy_endpoints),
    )


def _spelling(stmt: Statement, reading: Reading) -> set[str]:
    """Spellings PostgreSQL's tree does not keep, which a rule may want to name: END and
    ABORT (COMMIT and ROLLBACK to the server), SET NAMES (SET client_encoding), CREATE
    LANGUAGE (CREATE EXTENSION, when it names no handler)."""
    words = [token.word() for token in stmt.tokens[:5]]
    if words[0] in ("end", "abort") and Kind.transaction in reading.kinds:
        return {words[0].upper()}
    if words[0] == "set" and "names" in words[1:3] and "client_encoding" in _names(reading):
        return {"SET NAMES"}
    if "language" in words and reading.commands & {"CREATE EXTENSION", "CREATE LANGUAGE"}:
        return {"CREATE LANGUAGE"}
    return set()


def _names(reading: Reading) -> set[str]:
    return {setting.split("=", 1)[0] for setting in reading.settings}


def _disagree(ours: frozenset[Kind], theirs: set[Kind]) -> str:
    def names(kinds: frozenset[Kind] | set[Kind]) -> str:
        return ", ".join(sorted(kind.upper() for kind in kinds)) or "nothing"

    return (
        f"sqlguard's reading ({names(ours)}) and PostgreSQL's ({names(theirs)}) disagree; "
        "refusing rather than guessing"
    )


def sqlglot_reading(stmt: Statement, node_type: str, fields: Fields) -> StatementFacts | None:
    """sqlglot's reading of a statement PostgreSQL read as ``node_type``."""
    reader = _READERS.get(node_type)
    return reader(stmt, fields) if reader is not None else None


def _parsed(*roots: type[exp.Expr]) -> Reader:
    """Parse with sqlglot and insist on the statement class PostgreSQL's node promises."""

    def reading(stmt: Statement, fields: Fields) -> StatementFacts:
        tree = parse_tokens(stmt.tokens)
        if isinstance(tree, exp.Command):
            raise Unsupported(f"sqlguard's SQL parser does not support this form of {tree.name}")
        if not isinstance(tree, roots):
            expected = roots[0].__name__.upper()
            raise Disagreement(
                f"sqlguard's reading ({tree.key.upper()}) and PostgreSQL's ({expected}) "
                "disagree; refusing rather than guessing"
            )
        return tree_facts(stmt.text, tree)

    return reading


def _word(stmt: Statement, index: int) -> str:
    return stmt.tokens[index].word() if index < len(stmt.tokens) else ""


def _opens(stmt: Statement, index: int) -> bool:
    """Is token ``index`` an opening parenthesis?"""
    token = stmt.tokens[index] if index < len(stmt.tokens) else None
    return token is not None and token.kind is T.OP and token.sql == "("


def _inner(
    stmt: Statement, first: int, fields: Fields, stop: int | None = None
) -> StatementFacts | None:
    """sqlglot's reading of the statement a wrapper holds (PostgreSQL's ``query``)."""
    inner = stmt.part(first, stop)
    if not inner.tokens:
        raise Unsupported("sqlguard could not find the statement inside")
    ((node_type, query),) = fields["query"].items()
    return sqlglot_reading(inner, node_type, query)


def _explain(stmt: Statement, fields: Fields) -> StatementFacts | None:
    """EXPLAIN [(options) | ANALYZE VERBOSE] statement; only with ANALYZE does it run."""
    index = 1
    if _opens(stmt, 1):
        index = matching_paren(stmt.tokens, 1) + 1
    while _word(stmt, index) in ("analyze", "analyse", "verbose"):
        index += 1
    inner = _inner(stmt, index, fields)
    runs = explain_analyzes(fields)
    return inner.wrapping(stmt.text, Kind.utility, runs_inner=runs) if inner else None


def _prepare(stmt: Statement, fields: Fields) -> StatementFacts | None:
    """PREPARE name [(types)] AS statement."""
    index = 2
    if _opens(stmt, index):
        index = matching_paren(stmt.tokens, index) + 1
    if _word(stmt, index) != "as":
        raise Unsupported("sqlguard could not find AS in this PREPARE")
    inner = _inner(stmt, index + 1, fields)
    return inner.wrapping(stmt.text, Kind.utility) if inner else None


def _declare(stmt: Statement, fields: Fields) -> StatementFacts | None:
    """DECLARE name [options] CURSOR [WITH|WITHOUT HOLD] FOR query."""
    words = [token.word() for token in stmt.tokens]
    cursor = words.index("cursor") if "cursor" in words else len(words)
    if "for" not in words[cursor:]:
        raise Unsupported("sqlguard could not find CURSOR ... FOR in this DECLARE")
    inner = _inner(stmt, words.index("for", cursor) + 1, fields)
    return inner.wrapping(stmt.text, Kind.utility) if inner else None


def _copy(stmt: Statement, fields: Fields) -> StatementFacts | None:
    """COPY (query) TO ...; COPY of a table holds no query, so sqlglot has no part."""
    if "query" not in fields or not _opens(stmt, 1):
        return None
    inner = _inner(stmt, 2, fields, stop=matching_paren(stmt.tokens, 1))
    return inner.wrapping(stmt.text, Kind.copy) if inner else None


_READERS: dict[str, Reader] = {
    "SelectStmt": _parsed(exp.Query, exp.Values),
    "InsertStmt": _parsed(exp.Insert),
    "UpdateStmt": _parsed(exp.Update),
    "DeleteStmt": _parsed(exp.Delete),
    "MergeStmt": _parsed(exp.Merge),
    "ExplainStmt": _explain,
    "PrepareStmt": _prepare,
    "DeclareCursorStmt": _declare,
    "CopyStmt": _copy,
}
