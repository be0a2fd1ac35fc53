"""Finding the token: the leading comment, and the SET statement."""

from __future__ import annotations

import pytest

from sqlguard.approvals.comment import (
    mentions_approval_setting,
    parse_approval_set,
    split_approval,
)

TOKEN = "sga1.eyJhIjoxfQ.c2ln-_"


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        (f"/* sqlguard:approval={TOKEN} */ DROP TABLE old_logs", " DROP TABLE old_logs"),
        (f"/*sqlguard:approval={TOKEN}*/DROP TABLE t", "DROP TABLE t"),
        (f" \n\t/* SQLGUARD:APPROVAL = {TOKEN}\n */\nDROP TABLE t;", "\nDROP TABLE t;"),
        (f"/* sqlguard:approval={TOKEN} */ /* more */ DROP TABLE t", " /* more */ DROP TABLE t"),
    ],
)
def test_leading_comment(text: str, rest: str) -> None:
    assert split_approval(text) == (TOKEN, rest)


@pytest.mark.parametrize(
    "text",
    [
        "DROP TABLE t",
        f"DROP TABLE t /* sqlguard:approval={TOKEN} */",
        f"-- sqlguard:approval={TOKEN}\nDROP TABLE t",
        f"/* note */ /* sqlguard:approval={TOKEN} */ DROP TABLE t",
        "/* sqlguard:approval= */ DROP TABLE t",
        f"/* sqlguard:approval={TOKEN} extra */ DROP TABLE t",
        f"/* sqlguard:approval={TOKEN}",
    ],
)
def test_no_leading_comment(text: str) -> None:
    assert split_approval(text) == (None, text)


@pytest.mark.parametrize(
    "text",
    [
        f"SET sqlguard.approval = '{TOKEN}'",
        f"set sqlguard.approval to '{TOKEN}';",
        f"SET SESSION SQLGUARD.APPROVAL = '{TOKEN}'",
        f"SET \"sqlguard.approval\" = '{TOKEN}'",
        f"/* c */ SET sqlguard . approval = E'{TOKEN}' -- c",
    ],
)
def test_approval_set(text: str) -> None:
    assert parse_approval_set(text) == TOKEN


@pytest.mark.parametrize(
    "text",
    [
        f"SET LOCAL sqlguard.approval = '{TOKEN}'",
        "RESET sqlguard.approval",
        "SET sqlguard.approval = DEFAULT",
        "SET sqlguard.approval = 5",
        "SET sqlguard.approval = 'a', 'b'",
        f"SET sqlguard.approval = '{TOKEN}'; DROP TABLE t",
        f"SET sqlguard.other = '{TOKEN}'",
        f"SET search_path = '{TOKEN}'",
        "SET sqlguard.approval = 'unterminated",
        "SELECT 1",
    ],
)
def test_not_an_approval_set(text: str) -> None:
    assert parse_approval_set(text) is None


def test_mentions() -> None:
    assert mentions_approval_setting(f"SET LOCAL sqlguard.approval = '{TOKEN}'")
    assert mentions_approval_setting("SELECT current_setting('SQLGUARD.APPROVAL')")
    assert not mentions_approval_setting("SELECT 1")
