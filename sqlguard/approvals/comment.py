"""Where a requester puts a token: a leading comment, or a SET just before the statement.

    /* sqlguard:approval=TOKEN */ DROP TABLE old_logs
    SET sqlguard.approval = 'TOKEN';      -- consumed by the sidecar, for the next statement

Both are recognised only in exactly these shapes. Anything else that mentions the setting
(``SET LOCAL``, ``RESET``, the SET inside a longer message) is not an approval:
``mentions_approval_setting`` lets the sidecar refuse it rather than pass a token on to the
server's logs. That is a guard against mistakes, not a security check (it can be spelt
around): a token is bound to its requester, so a leaked one is of no use to anybody else.
"""

from __future__ import annotations

import re

from pglast import ast
from pglast.enums import VariableSetKind
from pglast.parser import ParseError, parse_sql

SETTING = "sqlguard.approval"
# PostgreSQL's whitespace (scan.l: space, \t, \n, \r, \f, \v); the token alphabet has no
# "*" or "/", so the comment cannot nest or end early inside it.
_COMMENT = re.compile(
    r"[ \t\n\r\f\v]*/\*[ \t\n\r\f\v]*sqlguard:approval[ \t\n\r\f\v]*=[ \t\n\r\f\v]*"
    r"(?P<token>[A-Za-z0-9._-]+)[ \t\n\r\f\v]*\*/",
    re.IGNORECASE,
)
_MENTION = re.compile(r"sqlguard[\s\"]*\.[\s\"]*approval", re.IGNORECASE)


def split_approval(text: str) -> tuple[str | None, str]:
    """The token of a leading approval comment, and the rest of the text exactly as sent.

    >>> split_approval("/* sqlguard:approval=sga1.x.y */ DROP TABLE old_logs")
    ('sga1.x.y', ' DROP TABLE old_logs')
    >>> split_approval("DROP TABLE old_logs")
    (None, 'DROP TABLE old_logs')
    """
    match = _COMMENT.match(text)
    if match is None:
        return None, text
    return match["token"], text[match.end() :]


def parse_approval_set(text: str) -> str | None:
    """The token if the whole message is one ``SET [SESSION] sqlguard.approval = 'TOKEN'``.

    >>> parse_approval_set("set SQLGUARD.APPROVAL to 'sga1.x.y';")
    'sga1.x.y'
    >>> parse_approval_set("SET LOCAL sqlguard.approval = 'sga1.x.y'") is None
    True
    """
    if not mentions_approval_setting(text):
        return None  # the common case, without a parse
    try:
        statements = parse_sql(text)
    except ParseError:
        return None
    if len(statements) != 1:
        return None
    return _token_of(statements[0].stmt)


def mentions_approval_setting(text: str) -> bool:
    """Does the text name the setting at all (then it must be an approval SET, or refused)?

    >>> mentions_approval_setting('SHOW "sqlguard"."approval"')
    True
    """
    return _MENTION.search(text) is not None


def _token_of(statement: ast.Node | None) -> str | None:
    """SET LOCAL would outlive "the next statement" (it lasts to the end of the transaction),
    so only a session-level SET with exactly one string constant counts."""
    if not isinstance(statement, ast.VariableSetStmt) or statement.is_local:
        return None
    if statement.kind != VariableSetKind.VAR_SET_VALUE or statement.name != SETTING:
        return None
    args = statement.args or ()
    if len(args) != 1 or not isinstance(args[0], ast.A_Const):
        return None
    value = args[0].val
    return value.sval if isinstance(value, ast.String) else None
