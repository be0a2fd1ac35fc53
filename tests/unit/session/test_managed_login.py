"""Managed identities mode, end to end through the Session state machine (no sockets).

The client side is our ScramClient, the upstream is scripted (our ScramServer for SCRAM),
so every byte the client and the upstream would see can be checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlguard.identities import scram
from sqlguard.identities.config import IdentitySettings
from sqlguard.identities.directory import IdentityDirectory
from sqlguard.identities.records import Person, TemporaryGroup, parse_time
from sqlguard.identities.scram import (
    MECHANISM,
    MECHANISM_PLUS,
    ScramClient,
    ScramServer,
    Verifier,
    make_verifier,
    mock_verifier,
    parse_verifier,
)
from sqlguard.identities.store import save_people
from sqlguard.policy.model import Action, Decision, Identity
from sqlguard.session.commands import (
    Admit,
    Close,
    LoginResult,
    OpenUpstream,
    StartTls,
    ToClient,
    ToServer,
)
from sqlguard.session.login import session_refusal
from sqlguard.session.machine import Phase, Session, TlsOffer
from sqlguard.wire import auth
from sqlguard.wire import messages as m
from sqlguard.wire.errors import PgError, decode_fields
from sqlguard.wire.framing import Frame, FrameScanner

NOW = parse_time("2026-06-01T12:00Z")
ROLE, ROLE_PASSWORD = "app_ro", "role-pw-Zq7!"
PASSWORDS = {"alice": "alice-pw"}
VERIFIERS = {name: make_verifier(pw, iterations=16) for name, pw in PASSWORDS.items()}
ROLE_VERIFIER = parse_verifier(make_verifier(ROLE_PASSWORD, iterations=16))
ALLOW = Decision(Action.allow, "", "", "", "")


def _alice(**changes: object) -> Person:
    person = Person(
        "alice",
        ("analysts",),
        VERIFIERS["alice"],
        ROLE,
        ("app",),
        NOW + timedelta(days=1),
        "OPS-123",
        "bob",
    )
    return replace(person, **changes)  # type: ignore[arg-type]


@dataclass
class Accounts:
    """A fake directory: the Accounts protocol over plain dicts, with a fixed clock."""

    people: dict[str, Person] = field(default_factory=lambda: {"alice": _alice()})
    passwords: dict[str, str] = field(default_factory=lambda: {ROLE: ROLE_PASSWORD})
    cleartext_allowed: bool = False
    clock: datetime = NOW
    lookups: list[str] = field(default_factory=list)

    def find(self, name: str) -> Person | None:
        return self.people.get(name)

    def verifier(self, name: str) -> Verifier:
        self.lookups.append(name)
        person = self.people.get(name)
        return parse_verifier(person.verifier) if person else mock_verifier(name, b"k" * 32)

    def upstream_password(self, role: str) -> str | None:
        return self.passwords.get(role)

    def now(self) -> datetime:
        return self.clock


judged: list[Identity] = []


def judge(text: bytes, identity: Identity, token: str | None = None) -> Decision:
    judged.append(identity)
    return ALLOW


def sent(commands: list, kind: type) -> bytes:
    return b"".join(c.data for c in commands if isinstance(c, kind))


def messages(data: bytes) -> list[Frame]:
    return [i for i in FrameScanner(frozenset(range(256))).feed(data) if isinstance(i, Frame)]


def to_client(commands: list, kind: bytes) -> list[Frame]:
    return [f for f in messages(sent(commands, ToClient)) if f.type == ord(kind)]


def requests(commands: list) -> list[tuple[int, bytes]]:
    """The Authentication requests ('R') the client received."""
    return [auth.decode_request(f.body) for f in to_client(commands, b"R")]


def errors(commands: list) -> list[dict[str, str]]:
    return [decode_fields(f.body) for f in to_client(commands, b"E")]


def _empty(command: object) -> bool:
    """An empty ToServer/ToClient: the session's way of saying "nothing to send"."""
    return isinstance(command, ToServer | ToClient) and not command.data


def of(commands: list, kind: type) -> list:
    return [c for c in commands if isinstance(c, kind) and not _empty(c)]


def kinds(commands: list) -> list[type]:
    return [type(c) for c in commands if not _empty(c)]


def closed(commands: list) -> bool:
    """The session ended the connection (nothing but empty sends after its Close)."""
    return bool(kinds(commands)) and kinds(commands)[-1] is Close


def start(
    accounts: Accounts, user: str = "alice", database: str = "app", **params: str
) -> tuple[Session, list]:
    """Startup, Admit answered with no refusal: the sidecar's first request to the client."""
    session = Session(judge, lambda: "v1", "10.0.0.7", accounts)  # type: ignore[arg-type]
    packet = m.StartupMessage(3, 0, {"user": user, "database": database, **params}).encode()
    commands = session.receive_client(packet)
    assert len(commands) == 1 and isinstance(commands[0], Admit)
    application = params.get("application_name", "")
    assert commands[0].identity == Identity(user, database, application, "10.0.0.7")
    return session, session.admitted(None)


def scram_login(session: Session, password: str) -> tuple[list, list, ScramClient]:
    """The client's SCRAM exchange: (commands after client-first, after client-final, client)."""
    client = ScramClient(password)
    first = session.receive_client(auth.sasl_initial_response(MECHANISM, client.first()))
    if of(first, Close):
        return first, [], client
    [(code, server_first)] = requests(first)
    assert code == auth.SASL_CONTINUE
    final = session.receive_client(auth.sasl_response(client.final(server_first)))
    return first, final, client


def logged_in(accounts: Accounts | None = None, **params: str) -> tuple[Session, OpenUpstream]:
    """A session whose person has authenticated: the upstream connection is being opened."""
    session, _ = start(accounts or Accounts(), **params)
    _, final, client = scram_login(session, PASSWORDS["alice"])
    [(code, server_final)] = requests(final)
    assert code == auth.SASL_FINAL
    client.verify(server_final)  # the sidecar proved it knows alice's verifier
    [opened] = of(final, OpenUpstream)
    return session, opened


def upstream_reply(session: Session, data: bytes) -> tuple[list, bytes]:
    """Feed the upstream's bytes; return the commands and what the session sent upstream."""
    commands = session.receive_server(data)
    return commands, sent(commands, ToServer)


def finish_login(session: Session) -> list:
    """The upstream's AuthenticationOk and the rest of its login, up to ReadyForQuery."""
    return session.receive_server(
        auth.authentication_ok()
        + m.message(b"S", b"server_version\x0017.0\x00")
        + m.backend_key_data(42, b"\1\2\3\4")
        + m.ready_for_query(b"I")
    )


def assert_no_secret(commands_lists: list[list]) -> None:
    everything = b"".join(sent(commands, ToClient) for commands in commands_lists)
    assert ROLE_PASSWORD.encode() not in everything
    assert hashlib.md5((ROLE_PASSWORD + ROLE).encode()).hexdigest().encode() not in everything


# ---- the person's own login ------------------------------------------------------------


def test_scram_is_offered_and_the_right_password_opens_the_upstream_as_the_role() -> None:
    session, commands = start(Accounts(), application_name="psql")
    assert requests(commands) == [(auth.SASL, MECHANISM.encode() + b"\0\0")]
    assert auth.sasl_mechanisms(requests(commands)[0][1]) == [MECHANISM]
    first, final, client = scram_login(session, PASSWORDS["alice"])
    assert kinds(first) == [ToClient]
    assert kinds(final) == [ToClient, OpenUpstream]
    [(code, server_final)] = requests(final)
    assert code == auth.SASL_FINAL
    client.verify(server_final)
    [opened] = of(final, OpenUpstream)
    startup = m.decode_startup_packet(opened.startup[4:])
    assert isinstance(startup, m.StartupMessage) and startup.major == 3
    assert startup.params == {"user": ROLE, "database": "app", "application_name": "psql"}
    assert opened.identity == Identity("alice", "app", "psql", "10.0.0.7", ("analysts",))
    assert session.identity == opened.identity and session.phase is Phase.AUTH
    assert not of(first + final, ToServer)  # nothing reaches the upstream from the client


def test_database_defaults_to_the_person_name_not_the_role() -> None:
    accounts = Accounts(people={"alice": _alice(databases=("*",))})
    session = Session(judge, lambda: "v1", "", accounts)  # type: ignore[arg-type]
    session.receive_client(m.StartupMessage(3, 0, {"user": "alice"}).encode())
    session.admitted(None)
    _, final, _ = scram_login(session, PASSWORDS["alice"])
    [opened] = of(final, OpenUpstream)
    params = m.decode_startup_packet(opened.startup[4:]).params  # type: ignore[union-attr]
    assert params == {"user": ROLE, "database": "alice"}


def test_groups_include_temporary_grants_not_yet_lapsed() -> None:
    grants = (
        TemporaryGroup("dba", NOW + timedelta(hours=1)),
        TemporaryGroup("oncall", NOW),  # lapses at this very moment
        TemporaryGroup("auditors", NOW - timedelta(hours=1)),
        TemporaryGroup("analysts", NOW + timedelta(hours=1)),  # no duplicate
    )
    _, opened = logged_in(Accounts(people={"alice": _alice(temporary_groups=grants)}))
    assert opened.identity.groups == ("analysts", "dba")


def _wrong(user: str = "alice") -> dict[str, str]:
    return {
        "S": "FATAL",
        "V": "FATAL",
        "C": "28P01",
        "M": f'password authentication failed for user "{user}"',
    }


def test_wrong_password_is_refused_like_postgresql() -> None:
    session, _ = start(Accounts())
    _, final, _ = scram_login(session, "guess")
    assert errors(final) == [_wrong()]
    assert of(final, LoginResult) == [
        LoginResult(ok=False, reason="wrong password (client proof does not verify)", guess=True)
    ]
    assert closed(final) and not of(final, OpenUpstream)
    assert requests(final) == []  # no SASLFinal for a failed proof
    assert session.phase is Phase.CLOSED


def test_unknown_name_gets_the_same_answer_after_a_mock_exchange() -> None:
    accounts = Accounts()
    session, commands = start(accounts, user="mallory")
    assert requests(commands)[0][0] == auth.SASL
    first, final, _ = scram_login(session, "anything")
    assert requests(first)[0][0] == auth.SASL_CONTINUE  # the exchange runs as for a real name
    assert errors(final) == [_wrong("mallory")]
    [result] = of(final, LoginResult)
    assert not result.ok and result.guess
    assert accounts.lookups == ["mallory"] and not of(final, OpenUpstream)


@pytest.mark.parametrize("password", [PASSWORDS["alice"], "guess"])
def test_expired_person_learns_it_only_with_the_right_password(password: str) -> None:
    session, _ = start(Accounts(people={"alice": _alice(expires_at=NOW)}))  # expires now
    _, final, _ = scram_login(session, password)
    [error], [result] = errors(final), of(final, LoginResult)
    assert not of(final, OpenUpstream) and closed(final)
    if password == "guess":
        assert error == _wrong() and result.guess
        return
    assert error["C"] == "28000" and error["S"] == "FATAL"
    assert error["M"] == "sqlguard: access for alice expired at 2026-06-01T12:00:00Z"
    assert "OPS-123" in error["D"] and "sqlguard user extend alice" in error["H"]
    assert result == LoginResult(ok=False, reason=error["M"], guess=False)


def test_person_expiring_later_logs_in() -> None:
    _, opened = logged_in(Accounts(people={"alice": _alice(expires_at=NOW + timedelta(seconds=1))}))
    assert opened.identity.user == "alice"


def test_revoked_person_is_refused_after_the_right_password() -> None:
    session, _ = start(Accounts(people={"alice": _alice(revoked=True, expires_at=NOW)}))
    _, final, _ = scram_login(session, PASSWORDS["alice"])
    [error] = errors(final)
    assert error["C"] == "28000" and error["M"] == "sqlguard: access for alice has been revoked"
    assert of(final, LoginResult)[0].guess is False and not of(final, OpenUpstream)


def test_database_not_allowed_is_refused_after_the_right_password() -> None:
    session, _ = start(Accounts(), database="payroll")
    _, final, _ = scram_login(session, PASSWORDS["alice"])
    [error] = errors(final)
    assert error["C"] == "28000"
    assert error["M"] == 'sqlguard: alice may not connect to database "payroll"'
    assert error["D"] == "Allowed databases: app."
    assert of(final, LoginResult)[0].guess is False and not of(final, OpenUpstream)


def test_any_database_star_allows_every_database() -> None:
    _, opened = logged_in(Accounts(people={"alice": _alice(databases=("*",))}), database="x")
    assert opened.identity.database == "x"


CERT_HASH = hashlib.sha256(b"the certificate this connection was served").digest()


def start_over_tls(binding: bytes | None) -> tuple[Session, list]:
    """SSLRequest, the handshake done with a certificate whose binding data is `binding`,
    then the startup: the sidecar's first request to the client."""
    session = Session(judge, lambda: "v1", "10.0.0.7", Accounts(), TlsOffer.OPTIONAL)  # type: ignore[arg-type]
    ssl_request = (8).to_bytes(4, "big") + m.SSL_REQUEST_CODE.to_bytes(4, "big")
    assert kinds(session.receive_client(ssl_request)) == [ToClient, StartTls]
    assert session.tls_established(None, binding) == []
    packet = m.StartupMessage(3, 0, {"user": "alice", "database": "app"}).encode()
    assert kinds(session.receive_client(packet)) == [Admit]
    return session, session.admitted(None)


def test_over_tls_scram_plus_is_offered_first_and_binds_the_login() -> None:
    session, commands = start_over_tls(CERT_HASH)
    [(code, offer)] = requests(commands)
    assert code == auth.SASL and auth.sasl_mechanisms(offer) == [MECHANISM_PLUS, MECHANISM]
    client = ScramClient(PASSWORDS["alice"], binding=CERT_HASH)
    first = session.receive_client(auth.sasl_initial_response(MECHANISM_PLUS, client.first()))
    [(_, server_first)] = requests(first)
    final = session.receive_client(auth.sasl_response(client.final(server_first)))
    [(code, server_final)] = requests(final)
    assert code == auth.SASL_FINAL and of(final, OpenUpstream)
    client.verify(server_final)
    [result] = of(finish_login(session), LoginResult)  # the audit log's "auth"
    assert result == LoginResult(ok=True, role=ROLE, method=MECHANISM_PLUS)


@pytest.mark.parametrize(
    ("mechanism", "client_binding", "reason"),
    [
        (MECHANISM_PLUS, b"\0" * 32, "does not match this connection's certificate"),
        (MECHANISM, None, "channel binding downgrade"),  # says "y": it saw no -PLUS offer
    ],
)
def test_over_tls_a_login_bound_elsewhere_or_downgraded_fails(
    mechanism: str, client_binding: bytes | None, reason: str
) -> None:
    session, _ = start_over_tls(CERT_HASH)
    client = ScramClient(PASSWORDS["alice"], binding=client_binding)
    client_first = client.first()
    if client_binding is None:
        client_first = b"y" + client_first[1:]  # a libpq that saw only SCRAM-SHA-256
    first = session.receive_client(auth.sasl_initial_response(mechanism, client_first))
    commands = first
    if not of(first, Close):
        [(_, server_first)] = requests(first)
        final_text = client.final(server_first)
        if client_binding is None:
            final_text = final_text.replace(b"c=biws", b"c=eSws")  # base64 of "y,,"
        commands = session.receive_client(auth.sasl_response(final_text))
    assert errors(commands) == [_wrong()]
    [result] = of(commands, LoginResult)
    assert reason in result.reason and closed(commands)


def test_over_tls_without_binding_data_only_scram_sha_256_is_offered() -> None:
    """A certificate RFC 5929 defines no binding for (Ed25519): no -PLUS, as PostgreSQL."""
    session, commands = start_over_tls(None)
    assert auth.sasl_mechanisms(requests(commands)[0][1]) == [MECHANISM]
    _, final, _ = scram_login(session, PASSWORDS["alice"])
    assert of(final, OpenUpstream)


def test_other_sasl_mechanism_is_a_failed_login() -> None:
    session, _ = start(Accounts())
    commands = session.receive_client(auth.sasl_initial_response("SCRAM-SHA-256-PLUS", b"p=x"))
    assert errors(commands) == [_wrong()] and of(commands, LoginResult)[0].guess


def test_locked_out_login_is_refused_before_any_password_is_checked() -> None:
    accounts = Accounts()
    session = Session(judge, lambda: "v1", "", accounts)  # type: ignore[arg-type]
    session.receive_client(m.StartupMessage(3, 0, {"user": "alice"}).encode())
    refusal = PgError("FATAL", "28000", "sqlguard: too many failed logins")
    commands = session.admitted(refusal)
    assert errors(commands)[0]["M"] == refusal.message and closed(commands)
    assert accounts.lookups == [] and requests(commands) == []


def test_query_before_authentication_is_a_protocol_violation() -> None:
    session, _ = start(Accounts())
    judged.clear()
    commands = session.receive_client(m.query(b"select 1"))
    [error] = errors(commands)
    assert error["C"] == "08P01" and "unexpected message 'Q' during authentication" in error["M"]
    assert closed(commands) and not of(commands, ToServer) and judged == []
    assert not of(commands, OpenUpstream)


def test_query_pipelined_with_the_scram_answer_is_a_protocol_violation() -> None:
    session, _ = start(Accounts())
    client = ScramClient(PASSWORDS["alice"])
    data = auth.sasl_initial_response(MECHANISM, client.first()) + m.query(b"select 1")
    commands = session.receive_client(data)
    assert errors(commands)[0]["C"] == "08P01" and closed(commands)
    assert not of(commands, ToServer)


def test_query_between_own_login_and_upstream_login_is_a_protocol_violation() -> None:
    session, _ = logged_in()
    commands = session.receive_client(m.query(b"select 1"))
    assert errors(commands)[0]["C"] == "08P01" and not of(commands, ToServer)


def test_client_password_message_after_its_login_never_reaches_the_upstream() -> None:
    session, _ = logged_in()
    injected = auth.password_message("guessing-the-role-password")
    commands = session.receive_client(injected)
    assert injected not in sent(commands, ToServer)


def test_pipelined_garbage_after_a_failed_login_is_ignored() -> None:
    session, _ = start(Accounts())
    scram_login(session, "guess")
    assert session.receive_client(auth.password_message("again")) == []


@pytest.mark.parametrize(
    "final_text",
    ["c=\u00e9,r={nonce},p=AAAA", "c=biws,r={nonce},p=\u00e9\u00e9\u00e9\u00e9"],
    ids=["non-ascii-channel-binding", "non-ascii-proof"],
)
def test_non_ascii_client_final_is_a_failed_login(final_text: str) -> None:
    """base64.b64decode raises a plain ValueError for non-ASCII text: it must not escape."""
    session, _ = start(Accounts())
    client = ScramClient("guess")
    first = session.receive_client(auth.sasl_initial_response(MECHANISM, client.first()))
    nonce = requests(first)[0][1].decode().split(",")[0][2:]
    commands = session.receive_client(auth.sasl_response(final_text.format(nonce=nonce).encode()))
    assert errors(commands) == [_wrong()] and closed(commands)
    assert of(commands, LoginResult)[0].guess


def test_negotiate_protocol_version_comes_before_the_authentication_request() -> None:
    session = Session(judge, lambda: "v1", "", Accounts())  # type: ignore[arg-type]
    packet = m.StartupMessage(3, 9999, {"user": "alice", "database": "app", "_pq_.grease": "1"})
    session.receive_client(packet.encode())
    first = messages(sent(session.admitted(None), ToClient))
    assert first[0].type == ord("v")
    assert m.decode_negotiate(first[0].body) == (2, ["_pq_.grease"])


# ---- cleartext mode --------------------------------------------------------------------


def test_cleartext_mode_asks_for_the_password_and_accepts_the_right_one() -> None:
    session, commands = start(Accounts(cleartext_allowed=True))
    assert requests(commands) == [(auth.CLEARTEXT_PASSWORD, b"")]
    final = session.receive_client(auth.password_message(PASSWORDS["alice"]))
    assert kinds(final) == [OpenUpstream]  # no SASLFinal in cleartext
    startup = m.decode_startup_packet(of(final, OpenUpstream)[0].startup[4:])
    assert isinstance(startup, m.StartupMessage) and startup.params["user"] == ROLE
    assert of(finish_login(session), LoginResult)[0].method == "password"


@pytest.mark.parametrize("user", ["alice", "mallory"])
def test_cleartext_wrong_password_or_unknown_name(user: str) -> None:
    session, _ = start(Accounts(cleartext_allowed=True), user=user)
    commands = session.receive_client(auth.password_message("guess"))
    assert errors(commands) == [_wrong(user)] and of(commands, LoginResult)[0].guess
    assert not of(commands, OpenUpstream)


def test_cleartext_password_pipelined_with_the_startup_packet() -> None:
    session = Session(judge, lambda: "v1", "", Accounts(cleartext_allowed=True))  # type: ignore[arg-type]
    packet = m.StartupMessage(3, 0, {"user": "alice", "database": "app"}).encode()
    assert isinstance(session.receive_client(packet + auth.password_message("alice-pw"))[0], Admit)
    commands = session.admitted(None)
    assert requests(commands) == [(auth.CLEARTEXT_PASSWORD, b"")]
    assert of(commands, OpenUpstream)


def test_scram_answer_in_cleartext_mode_is_a_failed_login() -> None:
    session, _ = start(Accounts(cleartext_allowed=True))
    client = ScramClient(PASSWORDS["alice"])
    commands = session.receive_client(auth.sasl_initial_response(MECHANISM, client.first()))
    assert errors(commands) == [_wrong()]


def test_cleartext_unknown_name_costs_the_same_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = scram._salted

    def counting(password: str, salt: bytes, iterations: int) -> bytes:
        calls.append(password)
        return real(password, salt, iterations)

    monkeypatch.setattr(scram, "_salted", counting)
    for user in ("alice", "mallory"):
        session, _ = start(Accounts(cleartext_allowed=True), user=user)
        session.receive_client(auth.password_message("guess"))
    assert len(calls) == 2


# ---- the sidecar's login to the upstream -----------------------------------------------


def test_upstream_scram_is_answered_as_the_role_and_ok_is_forwarded() -> None:
    session, _ = logged_in()
    upstream = ScramServer(ROLE_VERIFIER)
    seen: list[list] = []
    commands, out = upstream_reply(session, auth.authentication_sasl([MECHANISM]))
    seen.append(commands)
    [frame] = messages(out)
    mechanism, client_first = auth.decode_sasl_initial(frame.body)
    assert frame.type == ord("p") and mechanism == MECHANISM
    commands, out = upstream_reply(session, auth.sasl_continue(upstream.first(client_first)))
    seen.append(commands)
    server_final = upstream.final(messages(out)[0].body)  # raises unless the proof verifies
    commands, out = upstream_reply(session, auth.sasl_final(server_final))
    seen.append(commands)
    assert kinds(commands) == [] and out == b""
    commands = finish_login(session)
    seen.append(commands)
    forwarded = messages(sent(commands, ToClient))
    assert (forwarded[0].type, forwarded[0].body) == (ord("R"), b"\0\0\0\0")
    assert of(commands, LoginResult) == [LoginResult(ok=True, role=ROLE, method=MECHANISM)]
    assert session.phase is Phase.READY
    assert all(requests(c) in ([], [(auth.OK, b"")]) for c in seen)  # no SASL for the client
    assert_no_secret(seen)

    judged.clear()
    assert sent(session.receive_client(m.query(b"select 1")), ToServer) == m.query(b"select 1")
    assert judged[-1].user == "alice" and judged[-1].groups == ("analysts",)


UPSTREAM_HASH = hashlib.sha256(b"the database server's certificate").digest()


@pytest.mark.parametrize(
    ("offer", "binding", "mechanism", "flag"),
    [
        ([MECHANISM_PLUS, MECHANISM], UPSTREAM_HASH, MECHANISM_PLUS, b"p=tls-server-end-point"),
        ([MECHANISM], UPSTREAM_HASH, MECHANISM, b"y"),  # could bind, was offered no -PLUS
        ([MECHANISM_PLUS, MECHANISM], None, MECHANISM, b"n"),  # no TLS to the upstream
    ],
)
def test_upstream_scram_binds_to_the_upstream_certificate_when_it_can(
    offer: list[str], binding: bytes | None, mechanism: str, flag: bytes
) -> None:
    """As libpq with channel_binding=prefer: the server, which computes its own certificate's
    hash, accepts the binding only if the sidecar saw that same certificate."""
    session, _ = logged_in()
    session.upstream_opened(binding)
    plus = mechanism == MECHANISM_PLUS
    upstream = ScramServer(ROLE_VERIFIER, binding=UPSTREAM_HASH if plus else None, plus=plus)
    _, out = upstream_reply(session, auth.authentication_sasl(offer))
    chosen, client_first = auth.decode_sasl_initial(messages(out)[0].body)
    assert chosen == mechanism and client_first.split(b",")[0] == flag
    _, out = upstream_reply(session, auth.sasl_continue(upstream.first(client_first)))
    server_final = upstream.final(messages(out)[0].body)  # raises unless binding and proof hold
    commands, out = upstream_reply(session, auth.sasl_final(server_final))
    assert kinds(commands) == [] and out == b""
    assert of(finish_login(session), LoginResult) == [
        LoginResult(ok=True, role=ROLE, method=MECHANISM)
    ]


def test_upstream_scram_bound_to_an_interceptors_certificate_fails() -> None:
    session, _ = logged_in()
    session.upstream_opened(hashlib.sha256(b"a man in the middle's certificate").digest())
    upstream = ScramServer(ROLE_VERIFIER, binding=UPSTREAM_HASH, plus=True)
    _, out = upstream_reply(session, auth.authentication_sasl([MECHANISM_PLUS, MECHANISM]))
    _, client_first = auth.decode_sasl_initial(messages(out)[0].body)
    _, out = upstream_reply(session, auth.sasl_continue(upstream.first(client_first)))
    with pytest.raises(scram.ScramError, match="does not match this connection's certificate"):
        upstream.final(messages(out)[0].body)


def test_upstream_scram_with_a_wrong_held_password_is_refused_by_the_upstream() -> None:
    session, _ = logged_in(Accounts(passwords={ROLE: "stale-password"}))
    upstream = ScramServer(ROLE_VERIFIER)
    _, out = upstream_reply(session, auth.authentication_sasl([MECHANISM]))
    _, client_first = auth.decode_sasl_initial(messages(out)[0].body)
    _, out = upstream_reply(session, auth.sasl_continue(upstream.first(client_first)))
    with pytest.raises(scram.ScramError, match="wrong password"):
        upstream.final(messages(out)[0].body)


def test_upstream_bad_server_signature_is_refused() -> None:
    """An upstream that cannot prove it knows the role's verifier is not trusted."""
    session, _ = logged_in()
    impostor = ScramServer(replace(ROLE_VERIFIER, server_key=b"\0" * 32))
    _, out = upstream_reply(session, auth.authentication_sasl([MECHANISM]))
    _, client_first = auth.decode_sasl_initial(messages(out)[0].body)
    _, out = upstream_reply(session, auth.sasl_continue(impostor.first(client_first)))
    commands, out = upstream_reply(session, auth.sasl_final(impostor.final(messages(out)[0].body)))
    [error] = errors(commands)
    assert error["C"] == "08004" and "does not verify" in error["D"]
    assert out == b"" and closed(commands)


def test_upstream_skipping_the_scram_final_is_refused() -> None:
    session, _ = logged_in()
    upstream = ScramServer(ROLE_VERIFIER)
    _, out = upstream_reply(session, auth.authentication_sasl([MECHANISM]))
    _, client_first = auth.decode_sasl_initial(messages(out)[0].body)
    upstream_reply(session, auth.sasl_continue(upstream.first(client_first)))
    commands = finish_login(session)
    [error] = errors(commands)
    assert error["C"] == "08004" and "skipped the end" in error["D"]
    assert not of(commands, LoginResult)[0].ok
    assert b"R\0\0\0\x08\0\0\0\0" not in sent(commands, ToClient)  # no AuthenticationOk


def test_upstream_without_scram_sha_256_is_refused() -> None:
    session, _ = logged_in()
    commands, out = upstream_reply(session, auth.authentication_sasl(["SCRAM-SHA-256-PLUS"]))
    [error] = errors(commands)
    assert error["C"] == "08004" and f"offers no {MECHANISM}" in error["D"] and out == b""


def test_upstream_md5_is_answered_with_the_role_hash() -> None:
    session, _ = logged_in()
    salt = b"\x01\x02\x03\x04"
    commands, out = upstream_reply(session, m.message(b"R", b"\0\0\0\x05" + salt))
    inner = hashlib.md5((ROLE_PASSWORD + ROLE).encode()).hexdigest()
    expected = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
    [frame] = messages(out)
    assert frame.type == ord("p") and frame.body == expected.encode() + b"\0"
    assert sent(commands, ToClient) == b""
    done = finish_login(session)
    assert of(done, LoginResult) == [LoginResult(ok=True, role=ROLE, method=MECHANISM)]
    assert_no_secret([commands, done])


def test_upstream_cleartext_is_answered_with_the_role_password() -> None:
    session, _ = logged_in()
    commands, out = upstream_reply(session, auth.cleartext_password_request())
    assert out == auth.password_message(ROLE_PASSWORD) and sent(commands, ToClient) == b""
    done = finish_login(session)
    assert of(done, LoginResult) == [LoginResult(ok=True, role=ROLE, method=MECHANISM)]
    assert_no_secret([commands, done])


def test_upstream_trust_needs_no_password() -> None:
    session, _ = logged_in(Accounts(passwords={}))
    done = finish_login(session)
    assert of(done, LoginResult) == [LoginResult(ok=True, role=ROLE, method=MECHANISM)]


@pytest.mark.parametrize(
    "request_",
    [auth.authentication_sasl([MECHANISM]), auth.cleartext_password_request(),
     m.message(b"R", b"\0\0\0\x05abcd")],
    ids=["scram", "cleartext", "md5"],
)  # fmt: skip
def test_no_held_password_for_the_role_is_a_08004_naming_it(request_: bytes) -> None:
    session, _ = logged_in(Accounts(passwords={"other_role": ROLE_PASSWORD}))
    commands, out = upstream_reply(session, request_)
    [error] = errors(commands)
    assert error["S"] == "FATAL" and error["C"] == "08004"
    assert error["M"] == f'sqlguard could not log in to the database as role "{ROLE}"'
    assert "has none for this role" in error["D"]
    assert f"identities.upstream_roles.{ROLE}" in error["H"]
    [result] = of(commands, LoginResult)
    assert not result.ok and result.guess is False
    assert out == b"" and closed(commands)
    assert_no_secret([commands])


@pytest.mark.parametrize(
    ("code", "why"),
    [(7, "authentication method 7"), (2, "authentication method 2"), (9, "authentication method 9"),
     (auth.SASL_CONTINUE, "authentication method 11"),
     (auth.SASL_FINAL, "authentication method 12")],
)  # fmt: skip
def test_unsupported_or_out_of_order_upstream_method_is_a_08004(code: int, why: str) -> None:
    session, _ = logged_in()
    commands, out = upstream_reply(session, m.message(b"R", code.to_bytes(4, "big") + b"x"))
    [error] = errors(commands)
    assert error["C"] == "08004" and why in error["D"]
    assert of(commands, LoginResult)[0].guess is False and out == b""


def test_malformed_upstream_auth_request_is_a_08004() -> None:
    session, _ = logged_in()
    commands, _ = upstream_reply(session, m.message(b"R", b"\0\0"))
    assert errors(commands)[0]["C"] == "08004"


def test_upstream_fatal_during_login_becomes_sqlguards_08004() -> None:
    session, _ = logged_in()
    upstream_reply(session, auth.cleartext_password_request())
    upstream_error = PgError("FATAL", "28P01", f'password authentication failed for user "{ROLE}"')
    commands, out = upstream_reply(session, upstream_error.encode())
    [error] = errors(commands)
    assert error["S"] == "FATAL" and error["C"] == "08004"
    assert error["M"] == f'sqlguard could not log in to the database as role "{ROLE}"'
    assert error["D"].startswith("Your own login succeeded")
    assert b"28P01" not in sent(commands, ToClient)
    assert of(commands, LoginResult) == [
        LoginResult(ok=False, reason=upstream_error.message, guess=False)
    ]
    assert out == b""
    assert session.server_closed() == [Close("upstream closed the connection")]


@pytest.mark.parametrize(
    "upstream_message",
    [f'password authentication failed for user "{ROLE}"',
     f'no pg_hba.conf entry for host "10.9.8.7", user "{ROLE}", database "app", no encryption'],
    ids=["wrong-role-password", "pg_hba"],
)  # fmt: skip
def test_upstream_login_error_text_stays_in_the_sidecar(upstream_message: str) -> None:
    session, _ = logged_in()
    upstream_reply(session, auth.cleartext_password_request())
    commands, _ = upstream_reply(session, PgError("FATAL", "28P01", upstream_message).encode())
    assert of(commands, LoginResult)[0].reason == upstream_message  # logged by the shell
    assert upstream_message.encode() not in sent(commands, ToClient)


def test_upstream_fatal_before_any_request_becomes_08004() -> None:
    session, _ = logged_in()
    error = PgError("FATAL", "28000", f'no pg_hba.conf entry for user "{ROLE}"')
    commands, _ = upstream_reply(session, error.encode())
    assert errors(commands)[0]["C"] == "08004"
    assert not of(commands, LoginResult)[0].ok


def test_upstream_login_through_an_identity_directory(tmp_path: Path) -> None:
    """The real directory, on a store written by save_people, with a fixed clock."""
    store = tmp_path / "identities.yaml"
    save_people(store, {"alice": _alice()})
    directory = IdentityDirectory(IdentitySettings(store=store), clock=lambda: NOW)
    session, opened = logged_in(directory)  # type: ignore[arg-type]
    assert opened.identity.groups == ("analysts",)
    session2, _ = start(directory)  # type: ignore[arg-type]
    _, final, _ = scram_login(session2, "guess")
    assert errors(final) == [_wrong()]
    assert of(finish_login(session), LoginResult) == [
        LoginResult(ok=True, role=ROLE, method=MECHANISM)
    ]


# ---- garbage never escapes -------------------------------------------------------------

_SAFE = (ToClient, Close, LoginResult)


def only_safe(commands: list) -> bool:
    """Only answers to the client, the end of the login, and nothing for the upstream."""
    return kinds(commands) == [type(c) for c in commands if isinstance(c, _SAFE)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=200))
def test_garbage_sasl_initial_response_never_raises(body: bytes) -> None:
    session, _ = start(Accounts())
    commands = session.receive_client(m.message(b"p", body))
    assert only_safe(commands)
    if of(commands, Close):
        assert errors(commands)[0]["C"] in ("28P01", "08P01")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from(["", "c=biws,", "c=biws,r=", "c=eSws,r=", "c="]),
    body=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80),
)
def test_garbage_sasl_response_never_raises(prefix: str, body: str) -> None:
    session, _ = start(Accounts())
    client = ScramClient(PASSWORDS["alice"])
    session.receive_client(auth.sasl_initial_response(MECHANISM, client.first()))
    commands = session.receive_client(auth.sasl_response((prefix + body).encode()))
    assert only_safe(commands)
    assert errors(commands) == [_wrong()] and not of(commands, OpenUpstream)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=64))
def test_garbage_cleartext_password_never_raises(body: bytes) -> None:
    session, _ = start(Accounts(cleartext_allowed=True))
    commands = session.receive_client(m.message(b"p", body))
    assert only_safe(commands)
    assert not of(commands, OpenUpstream)


# ---- live sessions: session_refusal ----------------------------------------------------


def test_session_refusal_is_none_for_an_active_person() -> None:
    assert session_refusal(_alice(), "alice", "app", NOW) is None


@pytest.mark.parametrize(
    ("person", "database", "message"),
    [
        (_alice(expires_at=NOW), "app",
         "sqlguard: terminating connection: access for alice expired at 2026-06-01T12:00:00Z"),
        (_alice(revoked=True), "app",
         "sqlguard: terminating connection: access for alice has been revoked"),
        (None, "app",
         "sqlguard: terminating connection: alice is no longer in the identities store"),
        (_alice(databases=("other",)), "app",
         'sqlguard: terminating connection: alice may not connect to database "app"'),
    ],
    ids=["expired", "revoked", "removed", "database-removed"],
)  # fmt: skip
def test_session_refusal_terminates_like_pg_terminate_backend(
    person: Person | None, database: str, message: str
) -> None:
    refusal = session_refusal(person, "alice", database, NOW)
    assert refusal is not None
    assert (refusal.severity, refusal.sqlstate, refusal.message) == ("FATAL", "57P01", message)
    assert refusal.detail and refusal.hint


def test_session_refusal_of_an_expired_person_carries_the_extend_hint() -> None:
    refusal = session_refusal(_alice(expires_at=NOW - timedelta(hours=1)), "alice", "app", NOW)
    assert refusal is not None and "sqlguard user extend alice" in refusal.hint
