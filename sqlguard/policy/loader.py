"""Rule files (YAML) to an immutable, versioned RuleSet, validated strictly.

Every ``*.yaml`` (and ``*.yml``) file of a directory, in name order, may hold these keys
(docs/rules.md describes them with examples)::

    default_group: contractors          # the group of identities no group names (once)
    groups:   {name: {members, applications, addresses, default, message, hint, description}}
    lists:    {name: [pattern, ...]}    # named pattern lists, used as '@name'
    rules:    [{id, description, applies_to, match, action, message, hint}, ...]

Lists and groups are read from every file before any rule, so a rule may use a list or group
defined in another file. Every problem is collected; any problem refuses the whole set (the
caller keeps the old one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlguard.policy import fields
from sqlguard.policy.errors import Problem, RuleError, RulesUnavailable
from sqlguard.policy.reader import FileReader
from sqlguard.policy.ruleset import Group, Rule, RuleSet
from sqlguard.policy.sections import read_group, read_rule
from sqlguard.policy.yamlfile import Mapping, read_yaml

__all__ = ["RuleError", "RuleSet", "RulesUnavailable", "load_rules", "parse_rule_files"]

_SECTIONS: dict[str, type] = {"default_group": str, "groups": dict, "lists": dict, "rules": list}
_TYPE_WORDS: dict[type, str] = {
    str: "group name",
    dict: "mapping (name: ...)",
    list: "list (- id: ...)",
}


def load_rules(directory: Path) -> RuleSet:
    """Every rule file of ``directory`` as one RuleSet; raises RuleError listing all problems.

    The version is a short sha256 of the file names and contents, so two sidecars with the
    same files report the same version.
    """
    if not directory.is_dir():
        raise RulesUnavailable([Problem(str(directory), 0, "not a directory of rule files")])
    files: dict[str, bytes] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            files[path.name] = path.read_bytes()
        except OSError as exc:
            problem = Problem(path.name, 0, f"cannot be read ({exc.strerror})")
            raise RulesUnavailable([problem]) from None
    return parse_rule_files(files)


def parse_rule_files(files: dict[str, bytes] | dict[str, str]) -> RuleSet:
    """The RuleSet of rule-file texts by file name (read in name order).

    >>> parse_rule_files({"a.yaml": "rules: []"}).rules
    ()
    """
    digest = hashlib.sha256()
    readers = []
    for name in sorted(files):
        raw = files[name]
        raw = raw.encode() if isinstance(raw, str) else raw
        digest.update(name.encode() + b"\0" + raw + b"\0")
        readers.append(_read_file(name, raw))
    lists = _lists(readers)
    groups = _groups(readers, lists)
    default_group = _default_group(readers, groups)
    rules = _rules(readers, lists, groups)
    problems = [problem for reader in readers for problem in reader.problems]
    if problems:
        raise RuleError(sorted(problems, key=lambda problem: (problem.file, problem.line)))
    return RuleSet(rules, digest.hexdigest()[:12], tuple(groups.values()), default_group)


def _read_file(name: str, raw: bytes) -> FileReader:
    """One file's YAML, keeping only the well-formed top-level sections."""
    document, problems = read_yaml(name, raw)
    reader = FileReader(name, Mapping(), problems)
    if document is None:
        return reader
    if not isinstance(document, Mapping):
        reader.problem(1, f"a rule file is a mapping with some of: {', '.join(_SECTIONS)}")
        return reader
    for key in list(document):
        if key not in _SECTIONS:
            text = f"unknown key {key!r}; expected one of: {', '.join(_SECTIONS)}"
        elif not isinstance(document[key], _SECTIONS[key]):
            text = f"{key}: must be a {_TYPE_WORDS[_SECTIONS[key]]}"
        else:
            continue
        reader.problem(document.line_of(key), text)
        del document[key]
    reader.document = document
    return reader


def _named(readers: list[FileReader], section: str, what: str) -> Iterator[tuple[Any, ...]]:
    """(reader, entries, name) for each entry of ``section``, names valid and unique."""
    defined: dict[str, str] = {}
    for reader in readers:
        entries = reader.document.get(section, Mapping())
        for name in entries:
            line = entries.line_of(name)
            if not reader.check_id(name, line, what):
                continue
            if name in defined:
                reader.problem(line, f"{what} {name!r} is already defined at {defined[name]}")
                continue
            defined[name] = f"{reader.name}:{line}"
            yield reader, entries, name


def _lists(readers: list[FileReader]) -> dict[str, tuple[str, ...]]:
    """Named pattern lists; their entries are plain patterns (no ``!``, no ``@``)."""
    lists: dict[str, tuple[str, ...]] = {}
    for reader, entries, name in _named(readers, "lists", "list"):
        found = reader.field(entries, name, "", _list_entries, prefix="lists.")
        if found is not None:
            lists[name] = found
    return lists


def _list_entries(value: Any) -> tuple[str, ...]:
    entries = fields.words(value, "['pg_catalog.lower', 'pg_catalog.upper']")
    for entry in entries:
        if entry.startswith(("!", "@")):
            raise fields.FieldError(
                f"{entry!r}: list entries are plain patterns; write '!@name' where the list "
                "is used to exclude its entries"
            )
    return tuple(entries)


def _groups(readers: list[FileReader], lists: fields.Lists) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for reader, entries, name in _named(readers, "groups", "group"):
        group = read_group(reader, name, entries[name], entries.line_of(name), lists)
        if group is not None:
            groups[name] = group
    return groups


def _default_group(readers: list[FileReader], groups: dict[str, Group]) -> str:
    """The one ``default_group``; "" when no file sets it (the engine then refuses)."""
    found = ""
    for reader in readers:
        if "default_group" not in reader.document:
            continue
        name, line = reader.document["default_group"], reader.document.line_of("default_group")
        if found:
            reader.problem(line, "default_group is set twice; set it in one file only")
        elif name not in groups:
            known = ", ".join(sorted(groups)) or "none"
            reader.problem(
                line, f"{name!r} is not a group (defined: {known})", field="default_group"
            )
        found = found or name
    return found


def _rules(
    readers: list[FileReader], lists: fields.Lists, groups: dict[str, Group]
) -> tuple[Rule, ...]:
    """Every rule in file order; ids are unique across all files."""
    rules: dict[str, Rule] = {}
    for reader in readers:
        for item in reader.document.get("rules", []):
            rule = read_rule(reader, item, lists, groups)
            if rule is None:
                continue
            if rule.id in rules:
                line = item.line_of("id")
                text = f"duplicate id (first defined at {rules[rule.id].source}); give each "
                reader.problem(line, text + "rule its own id", f"rule {rule.id!r}", "id")
                continue
            rules[rule.id] = rule
    return tuple(rules.values())
