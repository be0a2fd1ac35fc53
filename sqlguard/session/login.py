"""Managed identities: the sidecar authenticates the person, then logs in upstream itself.

Two small sans-IO exchanges. ``ClientLogin`` checks a person's password with SCRAM-SHA-256
(or cleartext, if the DBA enabled it) against the stored verifier; only after the password
is proven does it say whether the access has expired, was revoked or does not cover the
database, so a guesser learns nothing about a name. ``UpstreamLogin`` answers the upstream's
authentication requests as the person's mapped role with the password only the sidecar
holds; the client never sees those requests, only the final AuthenticationOk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlguard.identities.records import Person, format_time
from sqlguard.identities.scram import (
    MECHANISM,
    MECHANISM_PLUS,
    ScramClient,
    ScramError,
    ScramServer,
    Verifier,
)
from sqlguard.wire import auth
from sqlguard.wire.errors import ADMIN_SHUTDOWN, INVALID_AUTHORIZATION, PgError
from sqlguard.wire.messages import MalformedMessage

INVALID_PASSWORD = "28P01"
UPSTREAM_REJECTED = "08004"


class Accounts(Protocol):
    """What a login needs from the identities directory."""

    @property
    def cleartext_allowed(self) -> bool: ...

    def find(self, name: str) -> Person | None: ...

    def verifier(self, name: str) -> Verifier: ...

    def upstream_password(self, role: str) -> str | None: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """The login ends with ``error``; ``guess`` counts it toward the lock-out."""

    error: PgError
    reason: str
    guess: bool


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The password is proven (``method``: the SASL mechanism, or ``password``); SCRAM's
    ``server_final`` goes out before AuthenticationOk."""

    person: Person
    method: str
    server_final: bytes = b""


def wrong_password(user: str) -> PgError:
    """PostgreSQL's own wording: the same for unknown names and wrong passwords."""
    return PgError("FATAL", INVALID_PASSWORD, f'password authentication failed for user "{user}"')


def access_refused(person: Person, database: str, now: datetime) -> PgError | None:
    """Why a person with the right password may not log in now, or None."""
    granted = f" (task {person.task}, granted by {person.granted_by or 'unknown'})"
    if person.revoked:
        return PgError(
            "FATAL",
            INVALID_AUTHORIZATION,
            f"sqlguard: access for {person.name} has been revoked",
            f"The identity{granted} was revoked by a sqlguard administrator.",
            "Ask a sqlguard administrator for new access if you still need it.",
        )
    if person.expires_at is not None and person.expired(now):
        return expired(person)
    if not person.may_use(database):
        return PgError(
            "FATAL",
            INVALID_AUTHORIZATION,
            f'sqlguard: {person.name} may not connect to database "{database}"',
            f"Allowed databases: {', '.join(person.databases) or 'none'}.",
            "Connect to one of those, or ask a sqlguard administrator to add this database.",
        )
    return None


def expired(person: Person) -> PgError:
    assert person.expires_at is not None
    when = format_time(person.expires_at)
    return PgError(
        "FATAL",
        INVALID_AUTHORIZATION,
        f"sqlguard: access for {person.name} expired at {when}",
        f"The access was granted for task {person.task or '(none)'} until {when}.",
        f"Ask {person.granted_by or 'a sqlguard administrator'} to extend it "
        f"(sqlguard user extend {person.name} --until ...).",
    )


class ClientLogin:
    """Authenticate one person: first ``request()``, then each 'p' message to ``answer``.

    ``binding``: over TLS, the ``tls-server-end-point`` data of the certificate the client
    was served; SCRAM-SHA-256-PLUS is offered then (first, as PostgreSQL orders them), so
    clients with ``channel_binding=prefer`` (libpq's default) or ``require`` bind the login
    to this connection.
    """

    def __init__(self, accounts: Accounts, user: str, binding: bytes | None = None) -> None:
        self._accounts = accounts
        self._user = user
        self._binding = binding
        self._scram: ScramServer | None = None
        self._mechanism = ""
        self._cleartext = accounts.cleartext_allowed

    def request(self) -> bytes:
        """The authentication request that opens the exchange."""
        if self._cleartext:
            return auth.cleartext_password_request()
        return auth.authentication_sasl(self._mechanisms())

    def _mechanisms(self) -> list[str]:
        return [MECHANISM_PLUS, MECHANISM] if self._binding is not None else [MECHANISM]

    def answer(self, body: bytes) -> bytes | LoginFailed | Authenticated:
        """Bytes to send back while the exchange goes on, or how it ended."""
        try:
            if self._cleartext:
                return self._check_cleartext(auth.decode_password(body))
            if self._scram is None:
                return self._scram_first(body)
            return self._scram_final(body)
        except (ScramError, MalformedMessage) as exc:
            return self._failed(str(exc))

    def _scram_first(self, body: bytes) -> bytes | LoginFailed:
        mechanism, data = auth.decode_sasl_initial(body)
        if mechanism not in self._mechanisms():
            return self._failed(f"client chose SASL mechanism {mechanism!r}")
        self._mechanism = mechanism
        self._scram = ScramServer(
            self._accounts.verifier(self._user),
            binding=self._binding,
            plus=mechanism == MECHANISM_PLUS,
        )
        return auth.sasl_continue(self._scram.first(data))

    def _scram_final(self, body: bytes) -> bytes | LoginFailed | Authenticated:
        assert self._scram is not None
        server_final = self._scram.final(body)
        person = self._accounts.find(self._user)
        if person is None:  # the mock verifier matched nothing, so this cannot happen
            return self._failed("no such identity")
        return Authenticated(person, self._mechanism, auth.sasl_final(server_final))

    def _check_cleartext(self, password: str) -> LoginFailed | Authenticated:
        # The hashing runs for unknown names too (on a mock verifier): no timing tells them.
        matches = self._accounts.verifier(self._user).matches(password)
        person = self._accounts.find(self._user)
        if person is None or not matches:
            return self._failed("wrong password or unknown name (cleartext)")
        return Authenticated(person, "password")

    def _failed(self, reason: str) -> LoginFailed:
        return LoginFailed(wrong_password(self._user), reason, guess=True)


class UpstreamLogin:
    """Answer the upstream's authentication requests as ``role``.

    ``binding``: over TLS, the upstream certificate's ``tls-server-end-point`` data (set once
    the connection is up). SCRAM then binds to it when the server offers -PLUS, as libpq's
    default ``channel_binding=prefer`` does: with ``upstream_tls.mode: require``, which checks
    no certificate, that is what stops a man in the middle from relaying the role's login.
    """

    def __init__(self, role: str, password: str | None) -> None:
        self.role = role
        self._password = password
        self._scram: ScramClient | None = None
        self.binding: bytes | None = None

    def __repr__(self) -> str:
        return f"UpstreamLogin({self.role!r}, <password hidden>)"

    def answer(self, body: bytes) -> bytes | PgError | None:
        """What to send upstream for an 'R' message; None once it says AuthenticationOk."""
        try:
            code, data = auth.decode_request(body)
            if code == auth.OK:
                if self._scram is not None:
                    raise ScramError("the server skipped the end of the SCRAM exchange")
                return None
            return self._respond(code, data)
        except (ScramError, MalformedMessage) as exc:
            return self._refused(str(exc))

    def _respond(self, code: int, data: bytes) -> bytes | PgError:
        if code == auth.SASL_FINAL and self._scram is not None:
            self._scram.verify(data)
            self._scram = None
            return b""
        password = self._password
        if password is None:
            return self._refused(
                "the server asks for a password and sqlguard has none for this role",
                f"Add identities.upstream_roles.{self.role} (password_file or password_env) "
                "to sqlguard's config and reload it.",
            )
        if code == auth.CLEARTEXT_PASSWORD:
            return auth.password_message(password)
        if code == auth.MD5_PASSWORD:
            return auth.md5_password_message(self.role, password, data[:4])
        if code == auth.SASL:
            offered = auth.sasl_mechanisms(data)
            if self.binding is not None and MECHANISM_PLUS in offered:
                self._scram = ScramClient(password, binding=self.binding)
                return auth.sasl_initial_response(MECHANISM_PLUS, self._scram.first())
            if MECHANISM not in offered:
                return self._refused(f"the server offers no {MECHANISM}")
            self._scram = ScramClient(password, could_bind=self.binding is not None)
            return auth.sasl_initial_response(MECHANISM, self._scram.first())
        if code == auth.SASL_CONTINUE and self._scram is not None:
            return auth.sasl_response(self._scram.final(data))
        return self._refused(f"the server asks for authentication method {code}")

    def upstream_error(self) -> PgError:
        """The upstream refused the role's login (wrong held password, pg_hba, no such role).

        Its words stay in the sidecar's log: they can name internal addresses and roles.
        """
        return self._refused("the server refused it (its reason is in sqlguard's log)")

    def _refused(self, why: str, hint: str = "") -> PgError:
        return PgError(
            "FATAL",
            UPSTREAM_REJECTED,
            f'sqlguard could not log in to the database as role "{self.role}"',
            f"Your own login succeeded; sqlguard's login to the database failed: {why}.",
            hint
            or "This is for a sqlguard administrator: check the role, its password in "
            "sqlguard's config and the server's pg_hba.conf.",
        )


def session_refusal(
    person: Person | None, name: str, database: str, now: datetime
) -> PgError | None:
    """Why a live session of ``name`` must end now (expired, revoked, removed), or None.

    57P01, like ``pg_terminate_backend``: drivers and pools know it as "this connection was
    terminated"; a reconnect then gets the login refusal with its 28000 reason.
    """
    refusal: PgError | None
    if person is None:
        refusal = PgError(
            "FATAL",
            INVALID_AUTHORIZATION,
            f"sqlguard: {name} is no longer in the identities store",
            "A sqlguard administrator removed the identity.",
            "Ask a sqlguard administrator for access if you still need it.",
        )
    else:
        refusal = access_refused(person, database, now)
    if refusal is None:
        return None
    message = refusal.message.removeprefix("sqlguard: ")
    return PgError(
        "FATAL",
        ADMIN_SHUTDOWN,
        f"sqlguard: terminating connection: {message}",
        refusal.detail,
        refusal.hint,
    )
