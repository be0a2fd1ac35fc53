"""Is a message exactly one session-level ``SET name = 'string'``? Read with PostgreSQL's
own parser, so every spelling PostgreSQL accepts is recognised (``TO`` or ``=``, any case,
quoted identifiers, comments) and nothing it would read differently is.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import VariableSetKind
from pglast.parser import ParseError, parse_sql


def session_set_string(text: str, setting: str) -> str | None:
    """The string ``text`` sets ``setting`` to, if it is one such SET and nothing else.

    SET LOCAL lasts to the end of the transaction, not the session, and is not one; neither
    is a SET of anything but exactly one string constant.

    >>> session_set_string("set SQLGUARD.APPROVAL to 'x';", "sqlguard.approval")
    'x'
    >>> session_set_string("SET LOCAL sqlguard.approval = 'x'", "sqlguard.approval") is None
    True
    """
    try:
        statements = parse_sql(text)
    except ParseError:
        return None
    if len(statements) != 1:
        return None
    statement = statements[0].stmt
    if not isinstance(statement, ast.VariableSetStmt) or statement.is_local:
        return None
    if statement.kind != VariableSetKind.VAR_SET_VALUE or statement.name != setting:
        return None
    args = statement.args or ()
    if len(args) != 1 or not isinstance(args[0], ast.A_Const):
        return None
    value = args[0].val
    return value.sval if isinstance(value, ast.String) else None
