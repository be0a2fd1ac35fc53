"""The sidecar's view of the identities store: who may log in, as which role, until when.

Loaded at start and again on reload (SIGHUP, a changed store or secret file). A reload
that fails keeps the previous directory, so a typo in the store never locks everyone out
or lets a revoked person back in; the error is logged and counted instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlguard.identities.config import IdentitySettings
from sqlguard.identities.records import Person, StoreFormatError
from sqlguard.identities.scram import ScramError, Verifier, mock_verifier, parse_verifier
from sqlguard.identities.store import load_people


def _utc_now() -> datetime:
    return datetime.now(UTC)


class IdentityDirectory:
    """People and upstream role passwords, read from the store and the secret sources."""

    def __init__(
        self, settings: IdentitySettings, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.settings = settings
        self.now = clock
        # Unknown names get a mock SCRAM exchange keyed by this, so they look like wrong
        # passwords (PostgreSQL does the same); it lives only as long as the process.
        self._mock_secret = secrets.token_bytes(32)
        self._people: dict[str, Person] = {}
        self._verifiers: dict[str, Verifier] = {}
        self._passwords: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        """Read the store and the role secrets again; on any error keep the current state.

        Raises StoreFormatError or ConfigError, naming the file and field.
        """
        people = load_people(self.settings.store)
        verifiers = {}
        for name, person in people.items():
            try:
                verifiers[name] = parse_verifier(person.verifier)
            except ScramError as exc:
                raise StoreFormatError(f"{self.settings.store}: {name}: {exc}") from None
        passwords = {role: secret.read() for role, secret in self.settings.upstream_roles.items()}
        self._people, self._verifiers, self._passwords = people, verifiers, passwords

    @property
    def cleartext_allowed(self) -> bool:
        return self.settings.cleartext_allowed

    def find(self, name: str) -> Person | None:
        return self._people.get(name)

    def verifier(self, name: str) -> Verifier:
        """The person's verifier, or a mock one that no password matches."""
        return self._verifiers.get(name) or mock_verifier(name, self._mock_secret)

    def upstream_password(self, role: str) -> str | None:
        return self._passwords.get(role)

    def people(self) -> list[Person]:
        return list(self._people.values())

    def next_change(self, now: datetime) -> datetime | None:
        """The next moment someone's access expires or a temporary group lapses."""
        moments = [
            moment
            for person in self._people.values()
            for moment in (person.expires_at, *(grant.until for grant in person.temporary_groups))
            if moment is not None and moment > now
        ]
        return min(moments, default=None)

    def fingerprint(self) -> tuple[tuple[str, int, int, int], ...]:
        """What the store and the password files are now, to notice changes by polling."""
        paths = [self.settings.store]
        paths += [s.password_file for s in self.settings.upstream_roles.values() if s.password_file]
        return tuple(_stat(path) for path in paths)


def _stat(path: Path) -> tuple[str, int, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (str(path), 0, 0, 0)
    return (os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
