"""Rule files: the shipped set loads, every field is read, and every kind of mistake is
refused with a message naming file, line, rule (or group, list) and field."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sqlguard.analysis.facts import Kind
from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.policy.loader import RuleError, RulesUnavailable, load_rules, parse_rule_files
from sqlguard.policy.model import Action, Identity

GOOD = """\
default_group: crew
groups:
  crew:
    members: ["c_*", "!c_admin"]
    applications: [psql]
    addresses: [10.0.0.0/8, local]
    default: deny
    message: Not for the crew.
    hint: Ask a DBA.
lists:
  safe: [pg_catalog.lower]
rules:
  - id: night-drop
    description: No DROP at night.
    applies_to: {groups: [crew], users: ["c_*"], applications: [psql], addresses: ["::1"]}
    match:
      kinds: [drop]
      commands: ["DROP *"]
      tables: ["app.*"]
      schemas: [app]
      columns: [ssn]
      functions: ["!@safe"]
      settings: ["role=*"]
      unscoped: true
      copy: [program]
      text: "drop\\\\s+table"
      time: {days: [mon-fri], hours: ["22:00-06:00"], timezone: Europe/Paris}
    action: deny
    message: No DROP.
    hint: Wait for the morning.
"""


def parse(text: str, name: str = "r.yaml") -> object:
    return parse_rule_files({name: text})


def problems(text: str) -> list[str]:
    with pytest.raises(RuleError) as caught:
        parse(text)
    return [str(problem) for problem in caught.value.problems]


def test_shipped_rules_load_with_contractors_as_the_default_group() -> None:
    rules = load_rules(DEFAULT_RULES_DIR)
    assert rules.default_group == "contractors"
    groups = {group.name: group for group in rules.groups}
    assert groups["contractors"].default is Action.deny
    assert groups["staff"].default is Action.allow
    refusing = [rule for rule in rules.rules if rule.action in ("deny", "require_approval")]
    assert refusing and all(rule.message and rule.hint for rule in refusing)
    assert not rules.time_dependent


def test_every_field_is_read() -> None:
    rules = parse_rule_files({"r.yaml": GOOD})
    (rule,) = rules.rules
    assert (rule.id, rule.action, rule.message, rule.hint, rule.source) == (
        "night-drop",
        Action.deny,
        "No DROP.",
        "Wait for the morning.",
        "r.yaml:13",
    )
    match = rule.match
    assert match.kinds == frozenset({Kind.drop})
    assert match.unscoped == frozenset({Kind.update, Kind.delete, Kind.merge})
    assert match.copy == frozenset({"program"}) and match.text is not None
    assert match.functions is not None and not match.functions.matches("pg_catalog.lower")
    assert match.functions.matches("public.lower")
    assert match.time is not None and match.time.days == frozenset(range(5))
    assert match.time.contains(datetime(2026, 1, 5, 22, 30, tzinfo=UTC))  # 23:30 in Paris
    assert rule.applies_to.names_users and rules.time_dependent
    (crew,) = rules.groups
    assert (crew.default, crew.message, crew.hint) == (
        Action.deny,
        "Not for the crew.",
        "Ask a DBA.",
    )
    assert crew.contains(Identity("c_ann", "db", "psql", "10.1.1.1"))
    assert crew.contains(Identity("c_ann", "db", "psql", "local"))
    assert not crew.contains(Identity("c_admin", "db", "psql", "10.1.1.1"))
    assert not crew.contains(Identity("c_ann", "db", "pgadmin", "10.1.1.1"))


def test_the_version_follows_the_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("not a rule file")
    first = load_rules(tmp_path)
    assert first.version == load_rules(tmp_path).version and len(first.version) == 12
    (tmp_path / "a.yaml").write_text(GOOD.replace("No DROP.", "Never DROP."))
    assert load_rules(tmp_path).version != first.version


def test_yml_files_are_rule_files_too(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(GOOD)
    assert [rule.id for rule in load_rules(tmp_path).rules] == ["night-drop"]


def test_the_rule_set_is_immutable() -> None:
    rules = parse_rule_files({"r.yaml": GOOD})
    with pytest.raises(AttributeError):
        rules.version = "x"  # type: ignore[misc]


def test_a_missing_or_unreadable_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(RulesUnavailable, match="not a directory"):
        load_rules(tmp_path / "missing")
    (tmp_path / "a.yaml").mkdir()  # a directory named like a rule file cannot be read
    with pytest.raises(RulesUnavailable, match=r"a\.yaml: cannot be read"):
        load_rules(tmp_path)


def test_all_problems_of_all_files_are_reported() -> None:
    broken = GOOD.replace("kinds: [drop]", "kinds: [drp]").replace("days: [mon-fri]", "days: [x]")
    with pytest.raises(RuleError) as caught:
        parse_rule_files({"a.yaml": broken, "b.yaml": "rules: [{id: y, action: nope}]"})
    found = [str(problem) for problem in caught.value.problems]
    assert len(found) == 3, found
    assert found[0].startswith("a.yaml:17: rule 'night-drop': match.kinds: 'drp'")
    assert found[1].startswith("a.yaml:27: rule 'night-drop': match.time.days: 'x'")
    assert found[2].startswith("b.yaml:1: rule 'y': action: 'nope' is not one of: allow")


RULE = "rules:\n  - id: r1\n    match: {kinds: [drop]}\n    action: deny\n    message: m\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [\n  {id: x\n", r"^r.yaml:\d+: not valid YAML"),
        ("- a\n", r"^r.yaml:1: a rule file is a mapping"),
        ("rule: []\n", r"^r.yaml:1: unknown key 'rule'; expected one of: default_group, groups"),
        ("rules: {}\n", r"^r.yaml:1: rules: must be a list \(- id: ...\)"),
        ("rules:\n  - just text\n", r"each item of 'rules' is a mapping"),
        (RULE.replace("message: m", "hints: h"), r"^r.yaml:5: rule 'r1': hints: unknown key"),
        (RULE.replace("    action: deny\n", ""), r"^r.yaml:2: rule 'r1': action: missing key"),
        (RULE.replace("    message: m\n", ""), r"rule 'r1': message: a deny rule needs a message"),
        (RULE.replace("deny", "block"), r"^r.yaml:4: rule 'r1': action: 'block' is not one of"),
        (RULE.replace("[drop]", "[drp]"), r"r.yaml:3: rule 'r1': match.kinds: 'drp' is not one"),
        (RULE.replace("[drop]", "[unknown]"), r"match.kinds: 'unknown' is not one of"),
        (RULE.replace("[drop]", "[]"), r"match.kinds: must be a non-empty list, e.g."),
        (RULE.replace("[drop]", "drop"), r"match.kinds: must be a non-empty list"),
        (RULE.replace("kinds:", "kind:"), r"rule 'r1': match.kind: unknown key 'kind'"),
        (RULE.replace("{kinds: [drop]}", "{}"), r"rule 'r1': match: write a mapping of conditions"),
        (RULE.replace("kinds: [drop]", "unscoped: [insert]"), r"match.unscoped: 'insert' is not"),
        (RULE.replace("kinds: [drop]", "unscoped: false"), r"match.unscoped: write true, or"),
        (RULE.replace("kinds: [drop]", "copy: [disk]"), r"match.copy: 'disk' is not one of: stdin"),
        (RULE.replace("kinds: [drop]", "text: '(('"), r"match.text: not a valid regular expr"),
        (RULE.replace("kinds: [drop]", "text: ''"), r"match.text: must be a non-empty text"),
        (RULE.replace("kinds: [drop]", "tables: [a.b.c]"), r"match.tables: 'a.b.c': write a name"),
        (RULE.replace("kinds: [drop]", "functions: ['@nope']"), r"there is no list 'nope'"),
        (RULE.replace("kinds: [drop]", "commands: [1]"), r"match.commands: 1 must be a non-empty"),
        (RULE.replace("kinds: [drop]", "time: {hours: ['9-5']}"), r"match.time.hours: '9-5'"),
        (RULE.replace("kinds: [drop]", "time: {hours: ['25:00-26:00']}"), r"time.hours: '25:00"),
        (RULE.replace("kinds: [drop]", "time: {days: [mon-fry]}"), r"time.days: 'mon-fry'"),
        (RULE.replace("kinds: [drop]", "time: {timezone: UTC}"), r"match.time: write a mapping"),
        (RULE.replace("kinds: [drop]", "time: {days: [mon], at: 1}"), r"time: unknown key 'at'"),
        (
            RULE.replace("kinds: [drop]", "time: {days: [mon], timezone: Mars/Base}"),
            r"match.time.timezone: unknown time zone 'Mars/Base'; write an IANA name",
        ),
        (RULE + "    applies_to: {}\n", r"rule 'r1': applies_to: write a mapping with some of"),
        (RULE + "    applies_to: {user: [a]}\n", r"applies_to.user: unknown key 'user'"),
        (RULE + "    applies_to: {groups: [ghosts]}\n", r"applies_to.groups: 'ghosts' is not a"),
        (
            RULE + "    applies_to: {addresses: [10.0.0.1/8]}\n",
            r"r.yaml:6: rule 'r1': applies_to.addresses: '10.0.0.1/8' is not an address range",
        ),
        (RULE.replace("id: r1", "id: No Drop"), r"rule name 'No Drop' must be lower-case"),
        (RULE.replace("id: r1", "id: sqlguard.x"), r"reserved for built-in rules"),
        (RULE.replace("message: m", "message: ''"), r"rule 'r1': message: must be a non-empty"),
        (RULE + "    action: allow\n", r"^r.yaml:6: duplicate key 'action' \(first at line 4\)"),
        (RULE + RULE.removeprefix("rules:\n"), r"^r.yaml:6: rule 'r1': id: duplicate id \(first"),
        (
            RULE + "default_group: ghosts\n",
            r"default_group: 'ghosts' is not a group \(defined: none",
        ),
        ("groups: {g: []}\n", r"^r.yaml:1: group 'g': a group is a mapping with keys"),
        ("groups: {g: {members: [a]}}\n", r"^r.yaml:1: group 'g': default: missing key"),
        ("groups: {g: {default: observe}}\n", r"group 'g': default: 'observe' is not one of"),
        ("groups: {G: {default: deny}}\n", r"group name 'G' must be lower-case"),
        ("groups: {g: {default: deny, users: [a]}}\n", r"group 'g': users: unknown key 'users'"),
        ("lists: {l: []}\n", r"^r.yaml:1: lists.l: must be a non-empty list"),
        ("lists: {l: ['!a']}\n", r"lists.l: '!a': list entries are plain patterns"),
    ],
)
def test_mistakes_name_file_line_owner_and_field(text: str, expected: str) -> None:
    found = problems(text)
    assert any(re.search(expected, problem) for problem in found), found


def test_definitions_must_be_unique_across_files() -> None:
    group = "groups: {g: {default: deny}}\nlists: {l: [a]}\ndefault_group: g\n"
    with pytest.raises(RuleError) as caught:
        parse_rule_files({"a.yaml": group, "b.yaml": group})
    found = [str(problem) for problem in caught.value.problems]
    assert found == [
        "b.yaml:1: group 'g' is already defined at a.yaml:1",
        "b.yaml:2: list 'l' is already defined at a.yaml:2",
        "b.yaml:3: default_group is set twice; set it in one file only",
    ]


def test_groups_and_lists_may_be_used_from_another_file() -> None:
    rules = parse_rule_files(
        {
            "a.yaml": "groups: {g: {default: deny}}\nlists: {l: [x]}\n",
            "b.yaml": RULE + "    applies_to: {groups: [g], users: ['@l']}\n",
        }
    )
    assert rules.rules[0].applies_to.groups == frozenset({"g"})


def test_a_group_with_an_empty_member_list_names_nobody() -> None:
    rules = parse_rule_files({"a.yaml": "groups: {staff: {members: [], default: allow}}\n"})
    assert rules.groups_of(Identity("ann", "db")) == ()
