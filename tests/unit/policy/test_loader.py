"""Rule files: the shipped set loads, and every kind of mistake is refused with a message
that names the file (and line) and what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlguard.analysis.facts import Kind
from sqlguard.policy.loader import RuleError, load_rules, parse_rules
from sqlguard.policy.model import Action

REPO = Path(__file__).parents[3]
GOOD = """\
rules:
  - id: no-truncate
    description: TRUNCATE empties tables.
    match: {kinds: [truncate]}
    action: deny
    message: No TRUNCATE.
    hint: Use DELETE ... WHERE.
"""


def test_shipped_rules_load() -> None:
    rules = load_rules(REPO / "rules")
    assert {rule.id for rule in rules.rules} >= {
        "no-drop",
        "no-truncate",
        "delete-without-where",
        "update-without-where",
    }
    assert all(rule.message and rule.hint for rule in rules.rules)


def test_rule_fields_are_read() -> None:
    (rule,) = parse_rules("r.yaml", GOOD)
    assert (rule.id, rule.action, rule.match.kinds) == (
        "no-truncate",
        Action.deny,
        frozenset({Kind.truncate}),
    )
    assert (rule.hint, rule.description, rule.source) == (
        "Use DELETE ... WHERE.",
        "TRUNCATE empties tables.",
        "r.yaml:2",
    )


def test_version_follows_the_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("not a rule file")
    first = load_rules(tmp_path)
    assert first.version == load_rules(tmp_path).version and len(first.version) == 12
    (tmp_path / "a.yaml").write_text(GOOD.replace("No TRUNCATE.", "Never TRUNCATE."))
    assert load_rules(tmp_path).version != first.version


def test_rule_set_is_immutable(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    rules = load_rules(tmp_path)
    assert isinstance(rules.rules, tuple)
    with pytest.raises(AttributeError):
        rules.version = "x"  # type: ignore[misc]


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(RuleError, match=r"b.yaml:2: duplicate rule id 'no-truncate'.*a.yaml:2"):
        load_rules(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").mkdir()  # a directory named like a rule file cannot be read
    with pytest.raises(RuleError, match=r"a\.yaml: cannot be read"):
        load_rules(tmp_path)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="not a directory"):
        load_rules(tmp_path / "missing")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [\n  {id: x, match: {kinds: [drop]}\n", r"r.yaml line \d+: not valid YAML"),
        ("rule: []\n", "single key 'rules'"),
        ("rules: {}\n", "must be a list"),
        ("rules:\n  - just text\n", "must be a mapping"),
        (GOOD.replace("    hint:", "    hints:"), "line 2.*unknown rule key 'hints'"),
        (GOOD.replace("    action: deny\n", ""), "missing rule key 'action'"),
        (GOOD.replace("action: deny", "action: block"), "action 'block' is not one of: allow"),
        (GOOD.replace("[truncate]", "[truncat]"), "kinds 'truncat' is not one of: alter"),
        (GOOD.replace("[truncate]", "[unknown]"), "kinds 'unknown' is not one of"),
        (
            GOOD.replace("{kinds: [truncate]}", "{kind: [truncate]}"),
            "unknown match condition key 'kind'",
        ),
        (
            GOOD.replace("{kinds: [truncate]}", "{}"),
            "'match' needs at least one of: kinds, unscoped",
        ),
        (GOOD.replace("[truncate]", "[]"), "'kinds' must be a non-empty list"),
        (
            GOOD.replace("kinds: [truncate]", "unscoped: [insert]"),
            "unscoped 'insert' is not one of: delete, update",
        ),
        (GOOD.replace("id: no-truncate", "id: No Truncate"), "id 'No Truncate' must be lower-case"),
        (GOOD.replace("id: no-truncate", "id: sqlguard.unparsed"), "reserved for built-in rules"),
        (GOOD.replace("No TRUNCATE.", "''"), "'message' must be a non-empty string"),
        (
            GOOD.replace("    hint:", "    action: allow\n    hint:"),
            r"r.yaml line 7: duplicate key 'action'",
        ),
        (GOOD + GOOD.removeprefix("rules:\n"), r"r.yaml:8: duplicate rule id 'no-truncate'"),
    ],
)
def test_mistakes_are_refused_with_a_useful_message(text: str, expected: str) -> None:
    with pytest.raises(RuleError, match=expected):
        parse_rules("r.yaml", text)
