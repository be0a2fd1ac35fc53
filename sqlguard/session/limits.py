"""Connection limits and login lock-out, shared by all connections of one sidecar.

Pure bookkeeping (the caller passes the time): how many connections are open in total and
per user, and which users and addresses failed to log in too often lately. A locked-out
user or address is refused before anything reaches the server, which also spares the
server from password guessing.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, deque
from dataclasses import dataclass

from sqlguard.wire.errors import INVALID_AUTHORIZATION, PgError

TOO_MANY_CONNECTIONS = "53300"


@dataclass(frozen=True, slots=True)
class LimitSettings:
    max_connections: int = 1000  # 0: no limit
    max_connections_per_user: int = 0  # 0: no limit
    lockout_failures: int = 5  # failed logins within lockout_window that lock a user/address
    lockout_window: float = 60.0
    lockout_seconds: float = 60.0


class ConnectionLimits:
    """Admission of new logins.

    >>> limits = ConnectionLimits(LimitSettings(max_connections=1))
    >>> limits.admit("ann", "10.0.0.1", now=0.0) is None
    True
    >>> limits.admit("bob", "10.0.0.2", now=0.0).sqlstate
    '53300'
    """

    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings
        self._open: Counter[str] = Counter()
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def admit(self, user: str, address: str, now: float) -> PgError | None:
        """Count a new connection in, or say why it is refused (and count nothing)."""
        refusal = self._locked(user, address, now) or self._over_limit(user)
        if refusal is None:
            self._open[user] += 1
        return refusal

    def release(self, user: str) -> None:
        self._open[user] -= 1
        if self._open[user] <= 0:
            del self._open[user]

    def login_failed(self, user: str, address: str, now: float) -> bool:
        """Record a failure; True when it locks the user or the address out.

        Loopback and Unix-socket clients are never locked out by address: in a sidecar
        deployment the whole application connects from there, and one person's typos must
        not lock everybody out (the user is still locked).
        """
        locked = False
        keys = [f"user:{user}"] + ([] if _is_local(address) else [f"addr:{address}"])
        for key in keys:
            failures = self._failures.setdefault(key, deque())
            failures.append(now)
            while failures and failures[0] <= now - self.settings.lockout_window:
                failures.popleft()
            if len(failures) >= self.settings.lockout_failures:
                self._locked_until[key] = now + self.settings.lockout_seconds
                failures.clear()
                locked = True
        return locked

    def login_succeeded(self, user: str, address: str) -> None:
        self._failures.pop(f"user:{user}", None)
        self._failures.pop(f"addr:{address}", None)

    def _locked(self, user: str, address: str, now: float) -> PgError | None:
        for key, what in ((f"user:{user}", f'user "{user}"'), (f"addr:{address}", address)):
            until = self._locked_until.get(key)
            if until is None:
                continue
            if until <= now:
                del self._locked_until[key]
                continue
            return PgError(
                "FATAL",
                INVALID_AUTHORIZATION,
                f"too many failed logins for {what}",
                f"Logins are refused for another {until - now:.0f} s.",
                "Wait, then log in with the right password; ask a DBA if you forgot it.",
            )
        return None

    def _over_limit(self, user: str) -> PgError | None:
        total, per_user = self.settings.max_connections, self.settings.max_connections_per_user
        if total and sum(self._open.values()) >= total:
            return PgError("FATAL", TOO_MANY_CONNECTIONS, "sorry, too many clients already")
        if per_user and self._open[user] >= per_user:
            return PgError(
                "FATAL",
                TOO_MANY_CONNECTIONS,
                f'too many connections for role "{user}"',
                f"sqlguard allows {per_user} connection(s) per user.",
                "Close connections you no longer use, or ask a DBA to raise the limit.",
            )
        return None


def _is_local(address: str) -> bool:
    """
    >>> _is_local("127.0.0.1"), _is_local("::1"), _is_local("local"), _is_local("10.0.0.7")
    (True, True, True, False)
    """
    if address in ("", "local"):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
