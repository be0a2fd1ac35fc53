"""The shipped rules for staff, who are allowed by default: only the built-in refusals and the
rules that name staff apply. (Nobody is staff until a DBA lists them, so the test lists one.)"""

from __future__ import annotations

import pytest

from sqlguard.analysis.parse import analyze
from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.policy.engine import evaluate
from sqlguard.policy.loader import parse_rule_files
from sqlguard.policy.model import Identity
from sqlguard.policy.ruleset import RuleSet

ALICE = Identity("alice", "app", "psql", "10.0.0.5")


@pytest.fixture(scope="module")
def with_alice_as_staff() -> RuleSet:
    files = {path.name: path.read_text() for path in DEFAULT_RULES_DIR.glob("*.yaml")}
    assert "    members: []\n" in files["groups.yaml"]
    files["groups.yaml"] = files["groups.yaml"].replace("members: []", "members: [alice]")
    return parse_rule_files(files)


@pytest.mark.parametrize(
    ("sql", "action", "rule"),
    [
        ("DROP TABLE t", "allow", "default:staff"),
        ("DELETE FROM t", "allow", "default:staff"),
        ("SELECT my_function(1)", "allow", "default:staff"),
        ("GRANT SELECT ON t TO bob", "allow", "default:staff"),
        ("COPY t FROM PROGRAM 'id'", "deny", "server-side-copy"),
        ("SELECT pg_read_file('/etc/passwd')", "deny", "server-files"),
        ("SET standard_conforming_strings = off", "deny", "sqlguard.lexer-settings"),
        ("SELEC 1", "deny", "sqlguard.unparsed"),
    ],
)
def test_staff(with_alice_as_staff: RuleSet, sql: str, action: str, rule: str) -> None:
    decision = evaluate(with_alice_as_staff, ALICE, analyze(sql))
    assert (str(decision.action), decision.rule_id) == (action, rule)


def test_an_unnamed_user_is_still_a_contractor(with_alice_as_staff: RuleSet) -> None:
    decision = evaluate(with_alice_as_staff, Identity("bob", "app"), analyze("DROP TABLE t"))
    assert (str(decision.action), decision.rule_id) == ("require_approval", "no-drop")
