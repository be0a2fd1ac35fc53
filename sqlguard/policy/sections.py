"""One group or one rule of a rule file, read into compiled values.

Every field is read even after a problem, so ``sqlguard check`` lists all of a rule's
mistakes at once; a rule or group with problems is still returned (the loader refuses the
set as a whole).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import partial
from typing import Any

from sqlguard.policy import fields
from sqlguard.policy.conditions import Match
from sqlguard.policy.model import Action
from sqlguard.policy.patterns import NOBODY, Patterns
from sqlguard.policy.reader import FileReader
from sqlguard.policy.ruleset import Group, Rule
from sqlguard.policy.subjects import Subject
from sqlguard.policy.yamlfile import Mapping

_RULE_KEYS = ("id", "description", "applies_to", "match", "action", "message", "hint")
_GROUP_KEYS = ("members", "applications", "addresses", "default", "message", "hint", "description")
_APPLIES_TO = ("users", "groups", "applications", "addresses")
_REFUSING = (Action.deny, Action.require_approval)
_DEFAULTS = (Action.allow, Action.deny, Action.require_approval)

_Parse = Callable[..., Any]
_CONDITIONS: dict[str, _Parse] = {
    "kinds": lambda value, lists: fields.kinds(value),
    "commands": partial(fields.patterns, example="['DROP *', 'ALTER TABLE DROP *']"),
    "tables": partial(fields.patterns, names=True, example="[users, 'billing.*']"),
    "schemas": partial(fields.patterns, example="[billing, 'tenant_*']"),
    "columns": partial(fields.patterns, names=True, example="[ssn, 'card_*']"),
    "functions": partial(fields.patterns, names=True, example="['pg_read_*', dblink_exec]"),
    "settings": partial(fields.patterns, example="['role=*', 'search_path=*']"),
    "unscoped": lambda value, lists: fields.unscoped(value),
    "copy": lambda value, lists: fields.copy_endpoints(value),
    "text": lambda value, lists: fields.regex(value),
    "time": lambda value, lists: fields.time_window(value),
}
"""``match:`` conditions by key. A new condition: a Match field, a parser here, a doc entry."""


def read_group(
    reader: FileReader, name: str, value: Any, line: int, lists: fields.Lists
) -> Group | None:
    """The group ``name`` defined as ``value`` at ``line``."""
    owner = f"group {name!r}"
    if not isinstance(value, Mapping):
        reader.problem(line, f"a group is a mapping with keys: {', '.join(_GROUP_KEYS)}", owner)
        return None
    reader.check_keys(value, _GROUP_KEYS, ("default",), owner)
    default = reader.field(value, "default", owner, partial(_action, options=_DEFAULTS))
    members = _subject(reader, value, owner, lists, frozenset())
    return Group(
        name=name,
        default=default or Action.deny,
        members=members if members != Subject() else None,
        **_texts(reader, value, owner, ("message", "hint", "description")),
        source=f"{reader.name}:{line}",
    )


def read_rule(
    reader: FileReader, item: Any, lists: fields.Lists, groups: Collection[str]
) -> Rule | None:
    """One item of ``rules:``; None when it has no usable id or action."""
    if not isinstance(item, Mapping):
        reader.problem(0, f"each item of 'rules' is a mapping with keys: {', '.join(_RULE_KEYS)}")
        return None
    rule_id = item.get("id")
    owner = f"rule {rule_id!r}" if isinstance(rule_id, str) else ""
    valid_id = "id" in item and reader.check_id(rule_id, item.line_of("id"), "rule")
    reader.check_keys(item, _RULE_KEYS, ("id", "action"), owner)
    action = reader.field(item, "action", owner, partial(_action, options=tuple(Action)))
    if action in _REFUSING and "message" not in item:
        reader.problem(
            item.line,
            f"a {action} rule needs a message telling the user why the statement is refused",
            owner,
            "message",
        )
    rule = Rule(
        id=str(rule_id),
        action=action or Action.deny,
        match=_match(reader, item, owner, lists),
        applies_to=_applies_to(reader, item, owner, lists, groups),
        **_texts(reader, item, owner, ("message", "hint", "description")),
        source=f"{reader.name}:{item.line}",
    )
    return rule if valid_id and action is not None else None


def _action(value: Any, options: tuple[Action, ...]) -> Action:
    return Action(fields.choice(value, options))


def _texts(reader: FileReader, item: Mapping, owner: str, keys: tuple[str, ...]) -> dict:
    return {key: reader.field(item, key, owner, fields.text) or "" for key in keys}


def _match(reader: FileReader, item: Mapping, owner: str, lists: fields.Lists) -> Match:
    """The ``match:`` conditions; leaving ``match`` out matches every statement."""
    what = "a mapping of conditions, e.g. {kinds: [drop]}"
    value = _optional_mapping(reader, item, "match", owner, what, "to match every statement")
    reader.check_keys(value, tuple(_CONDITIONS), (), owner, "match.")
    parsed = {
        key: reader.field(value, key, owner, partial(_CONDITIONS[key], lists=lists), "match.")
        for key in value
        if key in _CONDITIONS
    }
    return Match(**{key: found for key, found in parsed.items() if found is not None})


def _applies_to(
    reader: FileReader, item: Mapping, owner: str, lists: fields.Lists, groups: Collection[str]
) -> Subject:
    """Who the rule is about; leaving ``applies_to`` out means everyone."""
    what = f"a mapping with some of: {', '.join(_APPLIES_TO)}"
    value = _optional_mapping(reader, item, "applies_to", owner, what, "to mean everyone")
    reader.check_keys(value, _APPLIES_TO, (), owner, "applies_to.")
    return _subject(reader, value, owner, lists, groups, "applies_to.")


def _optional_mapping(
    reader: FileReader, item: Mapping, key: str, owner: str, what: str, absent: str
) -> Mapping:
    """``item[key]``: a non-empty mapping, or empty when left out (or, noted, unusable)."""
    value = item.get(key, Mapping())
    if isinstance(value, Mapping) and (value or key not in item):
        return value
    text = f"write {what}, or leave '{key}' out {absent}"
    reader.problem(item.line_of(key), text, owner, key)
    return Mapping()


def _subject(
    reader: FileReader,
    value: Mapping,
    owner: str,
    lists: fields.Lists,
    groups: Collection[str],
    prefix: str = "",
) -> Subject:
    """Users (``users``, or ``members`` of a group), groups, applications, addresses."""
    users = partial(fields.patterns, lists=lists, example="[ann, 'dba_*']", case_sensitive=True)
    apps = partial(fields.patterns, lists=lists, example="[psql, 'app-*']", case_sensitive=True)

    def known_groups(names: Any) -> frozenset[str]:
        words = fields.words(names, "[contractors]")
        for name in words:
            if name not in groups:
                known = ", ".join(sorted(groups)) or "none"
                raise fields.FieldError(f"{name!r} is not a group (defined: {known})")
        return frozenset(words)

    def members(names: Any) -> Patterns:
        return NOBODY if names == [] else users(names)  # []: nobody (yet)

    def read(key: str, parse: _Parse) -> Any:
        return reader.field(value, key, owner, parse, prefix)

    return Subject(
        users=read("users", users) or read("members", members),
        groups=read("groups", known_groups),
        applications=read("applications", apps),
        addresses=read("addresses", fields.addresses),
    )
