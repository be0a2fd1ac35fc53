"""Rule files (YAML) to an immutable, versioned RuleSet, validated strictly.

A mistake in a rule file must never silently weaken the firewall, so anything unexpected
(an unknown key, kind or action, a duplicate id or YAML key, a wrong type) is a RuleError
that names the file and line and says what to write instead. The caller keeps the old rule
set when loading fails.

The format (one or more ``*.yaml`` files in a directory)::

    rules:
      - id: no-truncate
        description: why the rule exists (optional)
        match: {kinds: [truncate]}          # conditions; all must hold
        action: deny                        # allow | deny | require_approval | observe
        message: what the user is told
        hint: what the user can do instead (optional)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from sqlguard.analysis.facts import Kind
from sqlguard.policy.model import Action, Match, Rule, RuleSet

__all__ = ["RuleError", "RuleSet", "load_rules", "parse_rules"]

_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
_RESERVED_PREFIX = "sqlguard."
_RULE_KEYS = {
    "id": True,
    "match": True,
    "action": True,
    "message": True,
    "hint": False,
    "description": False,
}
"""Keys of a rule, and whether each is required."""


class RuleError(ValueError):
    """A rule file cannot be used; the message says where and what to fix."""


class _Mapping(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers its line, for error messages."""

    line = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and records mapping lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Mapping:
        mapping = _Mapping()
        mapping.line = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in mapping:
                line = key_node.start_mark.line + 1
                raise RuleError(f"line {line}: duplicate key {key!r} (write each key once)")
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)


def load_rules(directory: Path) -> RuleSet:
    """Every ``*.yaml`` file of ``directory`` (in name order) as one RuleSet.

    The version is a short sha256 of the file names and contents, so two sidecars with the
    same files report the same version.
    """
    if not directory.is_dir():
        raise RuleError(f"{directory}: not a directory of rule files")
    digest = hashlib.sha256()
    rules: list[Rule] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise RuleError(f"{path.name}: cannot be read ({exc.strerror})") from None
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
        rules.extend(parse_rules(path.name, raw))
    _check_unique(rules)
    return RuleSet(rules=tuple(rules), version=digest.hexdigest()[:12])


def parse_rules(name: str, text: str | bytes) -> tuple[Rule, ...]:
    """The rules of one file's text; ``name`` is used in error messages."""
    try:
        document = yaml.load(text, Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except RuleError as exc:
        raise RuleError(f"{name} {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RuleError(f"{name}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(document, dict) or set(document) != {"rules"}:
        raise RuleError(f"{name}: expected a mapping with the single key 'rules' (a list)")
    if not isinstance(document["rules"], list):
        raise RuleError(f"{name}: 'rules' must be a list of rules")
    rules = tuple(_rule(name, item) for item in document["rules"])
    _check_unique(rules)
    return rules


def _rule(name: str, item: Any) -> Rule:
    """One validated rule."""
    if not isinstance(item, _Mapping):
        raise RuleError(f"{name}: every item of 'rules' must be a mapping (id, match, ...)")
    where = f"{name} line {item.line}"
    _check_keys(where, item, _RULE_KEYS, "rule")
    rule_id = _text(where, item, "id")
    if not _ID.fullmatch(rule_id) or rule_id.startswith(_RESERVED_PREFIX):
        raise RuleError(
            f"{where}: id {rule_id!r} must be lower-case letters, digits, '.', '_' or '-', "
            f"and not start with {_RESERVED_PREFIX!r} (reserved for built-in rules)"
        )
    where = f"{where} (rule {rule_id!r})"
    return Rule(
        id=rule_id,
        match=_match(where, item["match"]),
        action=_choice(where, "action", item["action"], Action),
        message=_text(where, item, "message"),
        hint=_text(where, item, "hint", required=False),
        description=_text(where, item, "description", required=False),
        source=f"{name}:{item.line}",
    )


def _match(where: str, item: Any) -> Match:
    """The conditions of a rule: at least one, each a list of statement kinds."""
    if not isinstance(item, dict) or not item:
        raise RuleError(f"{where}: 'match' needs at least one of: {', '.join(_CONDITIONS)}")
    _check_keys(where, item, dict.fromkeys(_CONDITIONS, False), "match condition")
    return Match(**{key: _CONDITIONS[key](where, key, value) for key, value in item.items()})


def _kinds(
    where: str, key: str, value: Any, allowed: frozenset[Kind] | None = None
) -> frozenset[Kind]:
    """A non-empty list of statement kinds."""
    valid = allowed or frozenset(Kind) - {Kind.unknown}
    if not isinstance(value, list) or not value:
        raise RuleError(f"{where}: {key!r} must be a non-empty list, e.g. [{min(valid)}]")
    return frozenset(_choice(where, key, kind, Kind, valid) for kind in value)


_CONDITIONS: dict[str, Callable[[str, str, Any], frozenset[Kind]]] = {
    "kinds": _kinds,
    "unscoped": lambda where, key, value: _kinds(
        where, key, value, frozenset({Kind.update, Kind.delete})
    ),
}
"""Match conditions by key. A new condition: a Match field, a parser here."""


def _choice(where: str, key: str, value: Any, enum: Any, valid: Any = None) -> Any:
    """One member of ``enum`` (restricted to ``valid``), by its value."""
    options = sorted(str(member) for member in (valid or enum))
    if not isinstance(value, str) or value not in options:
        raise RuleError(f"{where}: {key} {value!r} is not one of: {', '.join(options)}")
    return enum(value)


def _text(where: str, item: dict, key: str, required: bool = True) -> str:
    """A string field; optional ones default to ''."""
    value = item.get(key, "" if not required else None)
    if not isinstance(value, str) or (required and not value.strip()):
        raise RuleError(f"{where}: {key!r} must be a non-empty string")
    return value.strip()


def _check_keys(where: str, item: dict, keys: dict[str, bool], what: str) -> None:
    unknown = sorted(str(key) for key in item if key not in keys)
    if unknown:
        raise RuleError(f"{where}: unknown {what} key {unknown[0]!r}; expected: {', '.join(keys)}")
    missing = [key for key, required in keys.items() if required and key not in item]
    if missing:
        raise RuleError(f"{where}: missing {what} key {missing[0]!r}")


def _check_unique(rules: Sequence[Rule]) -> None:
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in seen:
            raise RuleError(
                f"{rule.source}: duplicate rule id {rule.id!r} (first defined at "
                f"{seen[rule.id].source}); give each rule its own id"
            )
        seen[rule.id] = rule
