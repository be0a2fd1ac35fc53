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

from sqlguard.analysis.session_set import session_set_string

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
    return session_set_string(text, SETTING)


def mentions_approval_setting(text: str) -> bool:
    """Does the text name the setting at all (then it must be an approval SET, or refused)?

    >>> mentions_approval_setting('SHOW "sqlguard"."approval"')
    True
    """
    return _MENTION.search(text) is not None
