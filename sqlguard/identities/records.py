"""People in the identities store, and the strict reading of one person's YAML fields.

Times are timezone-aware UTC everywhere: a naive time in the file would mean a different
expiry on a host with another timezone, so it is refused.

>>> now = parse_time("2026-06-01T12:00Z")
>>> alice = Person("alice", ("analysts",), "v", "r", ("app",), now + timedelta(hours=2),
...                temporary_groups=(TemporaryGroup("dba", now + timedelta(hours=1)),))
>>> alice.groups_at(now), alice.groups_at(now + timedelta(hours=1))
(('analysts', 'dba'), ('analysts',))
>>> alice.remaining(now), alice.expired(now + timedelta(hours=2))
(datetime.timedelta(seconds=7200), True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

FORMAT_VERSION = 1
ANY_DATABASE = "*"


class StoreFormatError(ValueError):
    """The identities store is unreadable or invalid; the message names file, line and field."""


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with an explicit zone (``2026-12-31T18:00Z``), as aware UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time like 2026-12-31T18:00Z") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone; add Z (UTC) or an offset like +02:00")
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """The store's spelling of a time: UTC with a ``Z``, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TemporaryGroup:
    """A just-in-time group membership that lapses by itself at ``until``."""

    group: str
    until: datetime
    task: str = ""
    granted_by: str = ""

    def to_yaml(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "until": format_time(self.until),
            "task": self.task,
            "granted_by": self.granted_by,
        }


@dataclass(frozen=True)
class Person:
    """One managed identity. ``verifier`` is a SCRAM secret, kept out of ``repr``."""

    name: str
    groups: tuple[str, ...]
    verifier: str = field(repr=False)
    upstream_role: str
    databases: tuple[str, ...]
    expires_at: datetime | None = None
    task: str = ""
    granted_by: str = ""
    revoked: bool = False
    temporary_groups: tuple[TemporaryGroup, ...] = ()

    def expired(self, now: datetime) -> bool:
        """Past ``expires_at``? (Revocation is separate: see ``active``.)"""
        return self.expires_at is not None and now >= self.expires_at

    def active(self, now: datetime) -> bool:
        """May this person log in at ``now``?"""
        return not self.revoked and not self.expired(now)

    def remaining(self, now: datetime) -> timedelta | None:
        """Time left until expiry (negative once expired); None if it never expires."""
        return None if self.expires_at is None else self.expires_at - now

    def groups_at(self, now: datetime) -> tuple[str, ...]:
        """Permanent groups plus temporary ones not yet lapsed, without duplicates."""
        current = [grant.group for grant in self.temporary_groups if now < grant.until]
        return tuple(dict.fromkeys([*self.groups, *current]))

    def may_use(self, database: str) -> bool:
        """Is ``database`` among the allowed ones (``*`` allows any)?"""
        return ANY_DATABASE in self.databases or database in self.databases

    def to_yaml(self) -> dict[str, Any]:
        return {
            "groups": list(self.groups),
            "verifier": self.verifier,
            "upstream_role": self.upstream_role,
            "databases": list(self.databases),
            "expires_at": None if self.expires_at is None else format_time(self.expires_at),
            "task": self.task,
            "granted_by": self.granted_by,
            "revoked": self.revoked,
            "temporary_groups": [grant.to_yaml() for grant in self.temporary_groups],
        }


_PERSON_FIELDS = {
    "groups", "verifier", "upstream_role", "databases", "expires_at",
    "task", "granted_by", "revoked", "temporary_groups",
}  # fmt: skip
_REQUIRED = {"verifier", "upstream_role"}
_GRANT_FIELDS = {"group", "until", "task", "granted_by"}


class _Fields:
    """Typed access to one YAML mapping, with errors that say where (file:line, field)."""

    def __init__(self, raw: Any, where: str, allowed: set[str], required: set[str]) -> None:
        if not isinstance(raw, dict):
            raise StoreFormatError(f"{where}: expected a mapping of fields")
        self.raw, self.where = raw, where
        self.lines: dict[str, int] = raw.get("__lines__", {})
        names = set(raw) - {"__lines__", "__line__"}
        for name in sorted(names - allowed):
            self.fail(name, f"unknown field (expected one of {', '.join(sorted(allowed))})")
        for name in sorted(required - names):
            raise StoreFormatError(f"{where}: missing required field {name!r}")

    def fail(self, name: str, problem: str) -> None:
        file = self.where.rsplit(":", 1)[0]
        line = self.lines.get(name, "?")
        raise StoreFormatError(f"{file}:{line}: field {name!r}: {problem}")

    def text(self, name: str, default: str = "") -> str:
        value = self.raw.get(name, default)
        if not isinstance(value, str):
            self.fail(name, f"expected text, got {type(value).__name__}")
        return value

    def names(self, name: str) -> tuple[str, ...]:
        value = self.raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(name, "expected a list of non-empty names")
        return tuple(value)

    def time(self, name: str, *, optional: bool = False) -> datetime | None:
        value = self.raw.get(name)
        if value is None and optional:
            return None
        if isinstance(value, datetime):  # YAML resolved an unquoted timestamp itself
            value = value.isoformat()
        try:
            return parse_time(value) if isinstance(value, str) else parse_time(repr(value))
        except ValueError as exc:
            self.fail(name, str(exc))
        raise AssertionError("unreachable")


def person_from_yaml(name: Any, raw: Any, where: str) -> Person:
    """Build and check one person; ``where`` is ``file:line`` of the person's entry."""
    if not isinstance(name, str) or not name:
        raise StoreFormatError(f"{where}: person names must be non-empty text")
    fields = _Fields(raw, where, _PERSON_FIELDS, _REQUIRED)
    revoked = raw.get("revoked", False)
    if not isinstance(revoked, bool):
        fields.fail("revoked", "expected true or false")
    verifier = fields.text("verifier")
    if not verifier.startswith("SCRAM-SHA-256$"):
        fields.fail("verifier", "expected a SCRAM-SHA-256 verifier (passwords are never stored)")
    return Person(
        name=name,
        groups=fields.names("groups"),
        verifier=verifier,
        upstream_role=fields.text("upstream_role"),
        databases=fields.names("databases"),
        expires_at=fields.time("expires_at", optional=True),
        task=fields.text("task"),
        granted_by=fields.text("granted_by"),
        revoked=revoked,
        temporary_groups=_grants(fields),
    )


def _grants(fields: _Fields) -> tuple[TemporaryGroup, ...]:
    raw = fields.raw.get("temporary_groups", [])
    if not isinstance(raw, list):
        fields.fail("temporary_groups", "expected a list")
    grants = []
    for item in raw:
        line = item.get("__line__", "?") if isinstance(item, dict) else "?"
        file = fields.where.rsplit(":", 1)[0]
        grant = _Fields(item, f"{file}:{line}", _GRANT_FIELDS, {"group", "until"})
        until = grant.time("until")
        assert until is not None
        grants.append(
            TemporaryGroup(grant.text("group"), until, grant.text("task"), grant.text("granted_by"))
        )
    return tuple(grants)
