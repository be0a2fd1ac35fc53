"""``sqlguard user add|list|revoke|extend`` and ``sqlguard grant``: managing the identities store.

Passwords come in on stdin (never argv, which other users can read in ``ps``) or are
generated and printed once; only their SCRAM verifiers are stored, and no command prints a
verifier. Revocation keeps the entry, so the store still shows who had access and why.
"""

from __future__ import annotations

import getpass
import re
import secrets
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from sqlguard.identities.records import Person, StoreFormatError, TemporaryGroup, parse_time
from sqlguard.identities.scram import make_verifier
from sqlguard.identities.store import load_people, update_people

DEFAULT_STORE = Path("identities.yaml")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")
_store_option = click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_STORE,
    show_default=True,
    help="Identities store (YAML).",
)
_granted_by_option = click.option(
    "--granted-by", default=None, help="Who grants it (default: your login name)."
)


def _now() -> datetime:
    """The clock; tests replace it."""
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    """``4h``, ``30m``, ``2d``, ``1h30m`` as a positive timedelta.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or not match:
        raise click.BadParameter(f"{text!r} is not a duration like 4h, 30m, 2d or 1h30m")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes)
    if duration <= timedelta(0):
        raise click.BadParameter("the duration must be longer than zero")
    return duration


def _time_option(text: str, now: datetime) -> datetime:
    """An absolute time (``2026-12-31T18:00Z``) or a duration from now (``30d``)."""
    try:
        value = parse_time(text)
    except ValueError as exc:
        if not text[:1].isdigit() or "-" in text:
            raise click.BadParameter(str(exc)) from None
        value = now + parse_duration(text)
    if value <= now:
        raise click.BadParameter(f"{text} is in the past")
    return value


def describe_remaining(person: Person, now: datetime) -> str:
    """``5d 3h left``, ``expired 2h ago``, ``never expires`` or ``revoked``.

    >>> alice = Person("a", (), "v", "r", (), parse_time("2026-01-01T10:00Z"))
    >>> describe_remaining(alice, parse_time("2026-01-01T12:00Z"))
    'expired 2h ago'
    """
    if person.revoked:
        return "revoked"
    remaining = person.remaining(now)
    if remaining is None:
        return "never expires"
    if remaining <= timedelta(0):
        return f"expired {_span(-remaining)} ago"
    return f"{_span(remaining)} left"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else ""]
    parts.append(f"{minutes}m" if minutes and not days else "")
    return " ".join(part for part in parts if part) or "<1m"


def _read_password(password_stdin: bool, generate: bool) -> tuple[str, bool]:
    if password_stdin == generate:
        raise click.UsageError("give exactly one of --password-stdin or --generate")
    if generate:
        return secrets.token_urlsafe(18), True
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise click.UsageError("--password-stdin read an empty password")
    return line, False


def _change(store: Path, change: object) -> None:
    try:
        update_people(store, change)  # type: ignore[arg-type]
    except (StoreFormatError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _change_active(store: Path, name: str, **changes: Any) -> None:
    """Change fields of a person who is not revoked (a revoked one must be added again: the
    entry stays as the record of the access that was taken away)."""

    def change(people: dict[str, Person]) -> dict[str, Person]:
        person = _existing(people, name)
        if person.revoked:
            raise click.ClickException(f"{name!r} is revoked; add them again instead")
        return {**people, name: replace(person, **changes)}

    _change(store, change)


def _existing(people: dict[str, Person], name: str) -> Person:
    if name not in people:
        raise click.ClickException(f"no identity named {name!r} in the store")
    return people[name]


@click.group("user")
def user() -> None:
    """Manage people who log in to the sidecar (managed identities mode)."""


@user.command("add")
@click.argument("name")
@click.option("--groups", "groups", required=True, help="Comma-separated groups.")
@click.option("--upstream-role", required=True, help="Database role the sidecar connects as.")
@click.option("--database", "databases", multiple=True, required=True, help="Allowed; * = any.")
@click.option("--expires", required=True, help="2026-12-31T18:00Z, a duration (30d) or never.")
@click.option("--task", required=True, help="Ticket or task reference, e.g. OPS-123.")
@click.option("--password-stdin", is_flag=True, help="Read the password from one stdin line.")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
@_granted_by_option
@_store_option
def add(name: str, groups: str, upstream_role: str, databases: tuple[str, ...], expires: str,
        task: str, password_stdin: bool, generate: bool, granted_by: str | None,
        store: Path) -> None:  # fmt: skip
    """Add a person with a SCRAM-SHA-256 verifier (the password itself is not stored)."""
    now = _now()
    expires_at = None if expires == "never" else _time_option(expires, now)
    password, generated = _read_password(password_stdin, generate)
    person = Person(
        name=name,
        groups=tuple(g.strip() for g in groups.split(",") if g.strip()),
        verifier=make_verifier(password),
        upstream_role=upstream_role,
        databases=databases,
        expires_at=expires_at,
        task=task,
        granted_by=granted_by or getpass.getuser(),
    )

    def insert(people: dict[str, Person]) -> dict[str, Person]:
        if name in people:
            raise click.ClickException(f"{name!r} already exists (use `user extend` or a new name)")
        return {**people, name: person}

    _change(store, insert)
    click.echo(f"added {name} ({describe_remaining(person, now)})")
    if generated:
        click.echo(f"password (shown once, not stored): {password}")


@user.command("list")
@_store_option
def list_people(store: Path) -> None:
    """Show everyone with groups, role, expiry and time remaining (never verifiers)."""
    try:
        people = load_people(store)
    except StoreFormatError as exc:
        raise click.ClickException(str(exc)) from None
    now = _now()
    for person in sorted(people.values(), key=lambda p: p.name):
        expiry = "-" if person.expires_at is None else person.expires_at.strftime("%Y-%m-%d %H:%MZ")
        temporary = [
            f"{grant.group} (until {grant.until:%Y-%m-%d %H:%MZ}, {grant.task})"
            for grant in person.temporary_groups
            if now < grant.until
        ]
        click.echo(
            f"{person.name}  groups={','.join(person.groups) or '-'}"
            f"{'  +' + '; '.join(temporary) if temporary else ''}"
            f"  role={person.upstream_role}  databases={','.join(person.databases)}"
            f"  expires={expiry}  ({describe_remaining(person, now)})"
            f"  task={person.task or '-'}  granted_by={person.granted_by or '-'}"
        )
    if not people:
        click.echo(f"no identities in {store}")


@user.command("revoke")
@click.argument("name")
@_store_option
def revoke(name: str, store: Path) -> None:
    """Revoke at once; the entry stays (marked revoked) as a record of past access."""
    _change(store, lambda people: {**people, name: replace(_existing(people, name), revoked=True)})
    click.echo(f"revoked {name}")


@user.command("extend")
@click.argument("name")
@click.option("--until", "until", required=True, help="New expiry: time or duration from now.")
@_store_option
def extend(name: str, until: str, store: Path) -> None:
    """Move a person's expiry (a revoked person must be added again, not extended)."""
    expires_at = _time_option(until, _now())
    _change_active(store, name, expires_at=expires_at)
    click.echo(f"{name} now expires {expires_at:%Y-%m-%d %H:%MZ}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from one stdin line.")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
@_store_option
def passwd(name: str, password_stdin: bool, generate: bool, store: Path) -> None:
    """Give a person a new password (a new SCRAM verifier); sessions already open go on,
    as in PostgreSQL after ALTER ROLE ... PASSWORD."""
    password, generated = _read_password(password_stdin, generate)
    _change_active(store, name, verifier=make_verifier(password))
    click.echo(f"new password for {name}; the old one no longer logs in")
    if generated:
        click.echo(f"password (shown once, not stored): {password}")


@click.command("grant")
@click.argument("name")
@click.option("--group", required=True, help="Group to add temporarily.")
@click.option("--for", "duration", required=True, help="How long: 4h, 30m, 1d...")
@click.option("--task", required=True, help="Ticket or task reference.")
@_granted_by_option
@_store_option
def grant(name: str, group: str, duration: str, task: str, granted_by: str | None,
          store: Path) -> None:  # fmt: skip
    """Just-in-time access: add NAME to GROUP for a while; it lapses by itself."""
    until = _now() + parse_duration(duration)
    temporary = TemporaryGroup(group, until, task, granted_by or getpass.getuser())

    def add_grant(people: dict[str, Person]) -> dict[str, Person]:
        person = _existing(people, name)
        if not person.active(_now()):
            raise click.ClickException(f"{name!r} is revoked or expired; grants would not apply")
        grants = (*person.temporary_groups, temporary)
        return {**people, name: replace(person, temporary_groups=grants)}

    _change(store, add_grant)
    click.echo(f"granted {group} to {name} until {until:%Y-%m-%d %H:%MZ} ({task})")


COMMANDS: list[click.Command] = [user, grant]
