"""From one statement's tokens to its facts: dispatch on the command keyword.

PostgreSQL knows the command from its first keyword, and so do we. sqlglot parses the
commands whose parts matter (queries, DML, DDL); commands that hold another statement
(EXPLAIN, PREPARE, DECLARE, COPY (query)) are unwrapped here because sqlglot falls back to
``exp.Command`` for them; commands whose grammar holds no expression and no statement
(BEGIN, SET, SHOW, LISTEN, VACUUM ...) are classified by keyword alone, which cannot hide
anything because there is nothing in them to hide. sqlglot mistakes several of those for
an expression (``DISCARD ALL`` parses as the column DISCARD aliased ALL), so it never sees
them. Any other first word is unknown, and refused.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.lexer import LexError, T, Token
from sqlguard.analysis.split import Statement, matching_paren, qualified_name, split_commas
from sqlguard.analysis.sqlglot_parse import Unsupported, parse_tokens
from sqlguard.analysis.tree import tree_facts

Handler = Callable[[Statement], StatementFacts]

_QUERY_WORDS = frozenset({"select", "values", "table", "with", "("})
_PREPARABLE = _QUERY_WORDS | {"insert", "update", "delete", "merge"}
_EXPLAINABLE = _PREPARABLE | {"declare", "create", "execute", "refresh"}
_ROLE_OBJECTS = frozenset({"role", "user", "group"})
_TRUE = frozenset({"true", "on", "1"})
_FALSE = frozenset({"false", "off", "0"})


def statement_facts(stmt: Statement) -> StatementFacts:
    """The facts of one statement; anything not understood becomes ``unknown``.

    >>> from sqlguard.analysis.split import split_statements
    >>> sorted(statement_facts(split_statements("EXPLAIN ANALYZE DELETE FROM t")[0]).kinds)
    [<Kind.delete: 'delete'>, <Kind.utility: 'utility'>]
    """
    first = stmt.tokens[0]
    handler = _HANDLERS.get(_leading_word(first))
    if handler is None:
        word = stmt.source[first.start : first.end]
        return StatementFacts.unknown(
            stmt.text, f"{word!r} does not start a PostgreSQL command sqlguard knows"
        )
    try:
        return handler(stmt)
    except (Unsupported, LexError) as exc:
        return StatementFacts.unknown(stmt.text, str(exc))


def _leading_word(token: Token) -> str:
    return "(" if token.kind is T.OP and token.sql == "(" else token.word()


def _word(stmt: Statement, index: int) -> str:
    return stmt.tokens[index].word() if index < len(stmt.tokens) else ""


def _opens(stmt: Statement, index: int) -> bool:
    """Is token ``index`` an opening parenthesis?"""
    return index < len(stmt.tokens) and _leading_word(stmt.tokens[index]) == "("


def _parsed(*roots: type[exp.Expr]) -> Handler:
    """Parse with sqlglot and insist on the statement class the keyword promises."""

    def handle(stmt: Statement) -> StatementFacts:
        tree = parse_tokens(stmt.tokens)
        command = stmt.tokens[0].sql.upper()
        if isinstance(tree, exp.Command):
            raise Unsupported(f"sqlguard's SQL parser does not support this form of {command}")
        if not isinstance(tree, roots):
            raise Unsupported(f"sqlguard's SQL parser read this {command} as {tree.key.upper()}")
        return tree_facts(stmt.text, tree)

    return handle


def _parsed_or_keyword(kinds: frozenset[Kind], *roots: type[exp.Expr]) -> Handler:
    """For commands whose grammar holds only names (DROP, TRUNCATE, GRANT, REVOKE):
    sqlglot when it can, to learn the tables; the keyword is enough when it cannot."""
    parse = _parsed(*roots)

    def handle(stmt: Statement) -> StatementFacts:
        try:
            return parse(stmt)
        except Unsupported:
            return StatementFacts(stmt.text, kinds)

    return handle


def _keyword(*kinds: Kind) -> Handler:
    return lambda stmt: StatementFacts(stmt.text, frozenset(kinds))


def _role_or(verb: Kind, handler: Handler) -> Handler:
    """CREATE/ALTER/DROP ROLE|USER|GROUP change privileges; sqlglot has no model of them."""

    def handle(stmt: Statement) -> StatementFacts:
        second = _word(stmt, 1)
        if second in _ROLE_OBJECTS or (verb is Kind.drop and second == "owned"):
            return StatementFacts(stmt.text, frozenset({verb, Kind.role}))
        if verb is Kind.alter and second == "default":
            words = {token.word() for token in stmt.tokens}
            return StatementFacts(stmt.text, frozenset({verb, _grant_kind(words)}))
        return handler(stmt)

    return handle


def _grant_kind(words: set[str]) -> Kind:
    return Kind.grant if "grant" in words else Kind.revoke


def _set(stmt: Statement) -> StatementFacts:
    """SET/RESET: who-am-I settings (role, session authorization) are ``session``."""
    words = [_setting_word(token) for token in stmt.tokens[1:5]]
    if words[:1] in (["local"], ["session"]) and words[1:2] not in (
        ["authorization"],
        ["characteristics"],
    ):
        words = words[1:]
    identity = (words[:1] in (["role"], ["session_authorization"]) and words[1:2] != ["."]) or (
        words[:2] == ["session", "authorization"]
    )
    return StatementFacts(stmt.text, frozenset({Kind.session if identity else Kind.set}))


def _setting_word(token: Token) -> str:
    """Setting names are case-insensitive even when quoted: SET "ROLE" is SET ROLE."""
    return token.value.lower() if token.kind in (T.IDENT, T.QIDENT) else token.sql


def _discard(stmt: Statement) -> StatementFacts:
    """DISCARD ALL also resets the session's role (RESET ALL does not: GUC_NO_RESET_ALL)."""
    kind = Kind.session if _word(stmt, 1) == "all" else Kind.utility
    return StatementFacts(stmt.text, frozenset({kind}))


def _inner(
    stmt: Statement, first: int, allowed: frozenset[str], what: str, stop: int | None = None
) -> StatementFacts:
    """The facts of the statement a wrapper holds, if PostgreSQL's grammar allows it there."""
    inner = stmt.part(first, stop)
    if not inner.tokens:
        raise Unsupported(f"{what} without a statement")
    if _leading_word(inner.tokens[0]) not in allowed:
        raise Unsupported(f"PostgreSQL does not accept {inner.tokens[0].sql.upper()} in {what}")
    return statement_facts(inner)


def _explain(stmt: Statement) -> StatementFacts:
    """EXPLAIN only plans; EXPLAIN ANALYZE also runs the statement, so its kinds count."""
    index, analyze = 1, False
    if _opens(stmt, 1):
        close = matching_paren(stmt.tokens, 1)
        analyze = _explain_analyze(stmt.tokens[2:close])
        index = close + 1
    else:
        while _word(stmt, index) in ("analyze", "analyse", "verbose"):
            analyze = analyze or _word(stmt, index) != "verbose"
            index += 1
    inner = _inner(stmt, index, _EXPLAINABLE, "EXPLAIN")
    return inner.wrapping(stmt.text, Kind.utility, runs_inner=analyze)


def _explain_analyze(options: list[Token]) -> bool:
    """Is ANALYZE on in an EXPLAIN option list? Values as PostgreSQL's defGetBoolean."""
    analyze = False
    for option in split_commas(options):
        if option and option[0].word() in ("analyze", "analyse"):
            value = option[1].value.lower() if len(option) == 2 else "true"
            if len(option) > 2 or value not in _TRUE | _FALSE:
                raise Unsupported("EXPLAIN's ANALYZE option needs a Boolean value")
            analyze = analyze or value in _TRUE
    return analyze


def _prepare(stmt: Statement) -> StatementFacts:
    """PREPARE name [(types)] AS statement; PREPARE TRANSACTION is two-phase commit."""
    if _word(stmt, 1) == "transaction":
        return StatementFacts(stmt.text, frozenset({Kind.transaction}))
    index = 2
    if _opens(stmt, index):
        index = matching_paren(stmt.tokens, index) + 1
    if _word(stmt, index) != "as":
        raise Unsupported("PREPARE needs: PREPARE name [(types)] AS statement")
    inner = _inner(stmt, index + 1, _PREPARABLE, "PREPARE")
    return inner.wrapping(stmt.text, Kind.utility)


def _declare(stmt: Statement) -> StatementFacts:
    """DECLARE name [options] CURSOR [WITH|WITHOUT HOLD] FOR query."""
    words = [token.word() for token in stmt.tokens]
    cursor = words.index("cursor") if "cursor" in words else len(words)
    if "for" not in words[cursor:]:
        raise Unsupported("DECLARE needs: DECLARE name CURSOR FOR query")
    index = words.index("for", cursor)
    return _inner(stmt, index + 1, _QUERY_WORDS, "DECLARE").wrapping(stmt.text, Kind.utility)


def _copy(stmt: Statement) -> StatementFacts:
    """COPY (query) TO ...: sqlglot only parses a SELECT there, so unwrap it ourselves.
    COPY table ... holds only names and option values (sqlglot wants WITH before the
    options, clients omit it), except for COPY FROM's WHERE, which sqlglot must read."""
    if _opens(stmt, 1):
        close = matching_paren(stmt.tokens, 1)
        inner = _inner(stmt, 2, _PREPARABLE, "COPY (...)", stop=close)
        return inner.wrapping(stmt.text, Kind.copy)
    if any(token.word() == "where" for token in stmt.tokens):
        return _parsed(exp.Copy)(stmt)
    table = qualified_name(stmt.tokens, 1)
    if table is None:
        raise Unsupported("COPY needs a table name or a (query)")
    return StatementFacts(stmt.text, frozenset({Kind.copy}), frozenset({table}))


def _call_like(stmt: Statement, first: int) -> StatementFacts:
    """EXECUTE name(args) and CALL f(args): the arguments are expressions, analysed as
    ``SELECT <what follows>`` so their functions and subqueries count."""
    if first >= len(stmt.tokens):
        return StatementFacts(stmt.text, frozenset({Kind.utility}))
    select = Token(T.IDENT, stmt.start, stmt.start, "select", "select")
    facts = tree_facts(stmt.text, parse_tokens([select, *stmt.tokens[first:]]))
    return facts.wrapping(stmt.text, Kind.utility)


def _execute(stmt: Statement) -> StatementFacts:
    """EXECUTE name [(args)]: the statement it runs was prepared earlier."""
    if len(stmt.tokens) > 2 and not _opens(stmt, 2):
        raise Unsupported("EXECUTE needs: EXECUTE name [(arguments)]")
    return _call_like(stmt, 2)


def _unknown_because(reason: str) -> Handler:
    return lambda stmt: StatementFacts.unknown(stmt.text, reason)


_QUERY = _parsed(exp.Query, exp.Values)
_HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(("select", "values", "table", "("), _QUERY),
    "with": _parsed(exp.Query, exp.DML),
    "insert": _parsed(exp.Insert),
    "update": _parsed(exp.Update),
    "delete": _parsed(exp.Delete),
    "merge": _parsed(exp.Merge),
    "copy": _copy,
    "create": _role_or(Kind.create, _parsed(exp.Create)),
    "alter": _role_or(Kind.alter, _parsed(exp.Alter)),
    "drop": _role_or(Kind.drop, _parsed_or_keyword(frozenset({Kind.drop}), exp.Drop)),
    "truncate": _parsed_or_keyword(frozenset({Kind.truncate}), exp.TruncateTable),
    "grant": _parsed_or_keyword(frozenset({Kind.grant}), exp.Grant),
    "revoke": _parsed_or_keyword(frozenset({Kind.revoke}), exp.Revoke),
    "reassign": _keyword(Kind.role),
    "explain": _explain,
    "prepare": _prepare,
    "declare": _declare,
    "execute": _execute,
    "call": lambda stmt: _call_like(stmt, 1),
    "set": _set,
    "reset": _set,
    "show": _keyword(Kind.show),
    "discard": _discard,
    "do": _unknown_because("DO runs procedural code that sqlguard cannot analyse"),
    **dict.fromkeys(
        ("begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"),
        _keyword(Kind.transaction),
    ),
    **dict.fromkeys(
        (
            "deallocate",
            "listen",
            "unlisten",
            "notify",
            "fetch",
            "move",
            "close",
            "checkpoint",
            "vacuum",
            "analyze",
            "analyse",
            "cluster",
            "reindex",
            "lock",
            "load",
            "refresh",
            "comment",
        ),
        _keyword(Kind.utility),
    ),
}
