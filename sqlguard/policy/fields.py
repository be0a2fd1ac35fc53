"""Parsers for the values of rule-file fields.

Each returns the compiled value or raises ``FieldError`` with what to write instead; the
loader adds file, line, rule and field. Named lists (``lists:``) are expanded here, so the
engine only ever sees plain compiled patterns.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlguard.analysis.facts import Kind
from sqlguard.policy.conditions import TimeWindow
from sqlguard.policy.patterns import Patterns
from sqlguard.policy.subjects import LOCAL, Addresses

Lists = Mapping[str, tuple[str, ...]]
"""Named pattern lists from ``lists:``, by name."""

KINDS = tuple(kind.value for kind in Kind if kind is not Kind.unknown)
WRITE_KINDS = ("update", "delete", "merge")
COPY_ENDPOINTS = ("stdin", "stdout", "program", "file")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_TIME_KEYS = ("days", "hours", "timezone")


class FieldError(ValueError):
    """A field's value cannot be used; ``part`` names a sub-field (e.g. ``hours``)."""

    def __init__(self, text: str, part: str = "") -> None:
        super().__init__(text)
        self.part = part


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError("must be a non-empty text")
    return value.strip()


def choice(value: Any, options: Sequence[str]) -> str:
    """One of ``options``, written exactly."""
    if not isinstance(value, str) or value not in options:
        raise FieldError(f"{value!r} is not one of: {', '.join(options)}")
    return value


def words(value: Any, example: str) -> list[str]:
    """A non-empty list of non-empty strings."""
    if not isinstance(value, list) or not value:
        raise FieldError(f"must be a non-empty list, e.g. {example}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise FieldError(f"{item!r} must be a non-empty text (quote it), e.g. {example}")
    return [item.strip() for item in value]


def kinds(value: Any) -> frozenset[Kind]:
    """Statement kinds, e.g. ``[drop, truncate]``."""
    return frozenset(Kind(choice(item, KINDS)) for item in words(value, "[drop, truncate]"))


def unscoped(value: Any) -> frozenset[Kind]:
    """``true`` (any of UPDATE, DELETE, MERGE) or a list of those kinds."""
    if value is True:
        return frozenset(Kind(kind) for kind in WRITE_KINDS)
    if not isinstance(value, list):
        raise FieldError("write true, or a list of kinds such as [delete, update]")
    return frozenset(Kind(choice(item, WRITE_KINDS)) for item in words(value, "[delete]"))


def copy_endpoints(value: Any) -> frozenset[str]:
    """Where COPY reads or writes, e.g. ``[program, file]``."""
    return frozenset(choice(item, COPY_ENDPOINTS) for item in words(value, "[program, file]"))


def patterns(
    value: Any,
    lists: Lists,
    *,
    example: str,
    names: bool = False,
    case_sensitive: bool = False,
) -> Patterns:
    """Globs with ``!`` exclusions and ``@list`` references; ``names``: [schema.]name."""
    texts: list[str] = []
    for item in words(value, example):
        bang = "!" if item.startswith("!") else ""
        body = item.removeprefix("!")
        if body.startswith("@"):
            texts += [bang + entry for entry in _named_list(body[1:], lists)]
        elif names and body.count(".") > 1:
            raise FieldError(f"{item!r}: write a name or schema.name (at most one dot)")
        else:
            texts.append(item)
    return Patterns.compile(texts, names=names, case_sensitive=case_sensitive)


def _named_list(name: str, lists: Lists) -> tuple[str, ...]:
    if name not in lists:
        known = ", ".join(f"@{known}" for known in sorted(lists)) or "none defined"
        raise FieldError(f"there is no list {name!r} (known: {known}); define it under 'lists:'")
    return lists[name]


def regex(value: Any) -> re.Pattern[str]:
    """A Python regular expression, searched case-insensitively in the statement text."""
    try:
        return re.compile(text(value), re.IGNORECASE)
    except re.error as exc:
        raise FieldError(f"not a valid regular expression: {exc}") from None


def addresses(value: Any) -> Addresses:
    """CIDR ranges (``10.0.0.0/8``, ``2001:db8::/32``, a single address) and ``local``."""
    networks = []
    items = words(value, "['10.0.0.0/8', local]")
    for item in items:
        if item == LOCAL:
            continue
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            raise FieldError(f"{item!r} is not an address range ({exc}); e.g. 10.0.0.0/8") from None
    return Addresses(tuple(networks), local=LOCAL in items)


def time_window(value: Any) -> TimeWindow:
    """``{days: [mon-fri], hours: ['09:00-18:00'], timezone: Europe/Paris}``."""
    if not isinstance(value, dict) or not {"days", "hours"} & set(value):
        raise FieldError(
            "write a mapping with days and/or hours (and a timezone), e.g. "
            "{days: [mon-fri], hours: ['09:00-18:00'], timezone: Europe/Paris}"
        )
    unknown = sorted(str(key) for key in value if key not in _TIME_KEYS)
    if unknown:
        raise FieldError(f"unknown key {unknown[0]!r}; expected: {', '.join(_TIME_KEYS)}")
    return TimeWindow(
        zone=_part("timezone", _zone, value.get("timezone", "UTC")),
        days=_part("days", _days, value["days"]) if "days" in value else None,
        hours=_part("hours", _hours, value["hours"]) if "hours" in value else None,
    )


def _part(name: str, parse: Any, value: Any) -> Any:
    """Parse a sub-field, naming it in the error."""
    try:
        return parse(value)
    except FieldError as exc:
        raise FieldError(str(exc), name) from None


def _zone(value: Any) -> Any:
    if value == "UTC":
        return UTC
    try:
        return ZoneInfo(text(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError(
            f"unknown time zone {value!r}; write an IANA name such as Europe/Paris or UTC"
        ) from None


def _days(value: Any) -> frozenset[int]:
    days: set[int] = set()
    for item in words(value, "[mon-fri, sat]"):
        first, _, last = item.lower().partition("-")
        start, end = _day(first, item), _day(last or first, item)
        days.update(day % 7 for day in range(start, end + 1 if end >= start else end + 8))
    return frozenset(days)


def _day(name: str, item: str) -> int:
    if name not in DAYS:
        raise FieldError(f"{item!r}: write a day ({', '.join(DAYS)}) or a range like mon-fri")
    return DAYS.index(name)


def _hours(value: Any) -> tuple[tuple[int, int], ...]:
    ranges = []
    for item in words(value, "['09:00-18:00', '22:00-06:00']"):
        found = _HOURS.fullmatch(item)
        h1, m1, h2, m2 = (int(part) for part in found.groups()) if found else (99, 0, 0, 0)
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60 or start == end:
            raise FieldError(
                f"{item!r}: write a range HH:MM-HH:MM such as 09:00-18:00 "
                "(24:00 may end a range; 22:00-06:00 runs over midnight)"
            )
        ranges.append((start, end))
    return tuple(ranges)
