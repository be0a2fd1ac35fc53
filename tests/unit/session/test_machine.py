"""The session state machine, driven by scripted client and server bytes (no sockets)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlguard.policy.model import Action, Decision, Identity
from sqlguard.session.commands import (
    Admit,
    Close,
    ForwardCancel,
    LoginResult,
    OpenUpstream,
    RegisterCancelKey,
    StatementFinished,
    StatementStarted,
    ToClient,
    ToServer,
)
from sqlguard.session.machine import Phase, Session, TlsOffer
from sqlguard.wire import auth
from sqlguard.wire import messages as m
from sqlguard.wire.errors import decode_fields
from sqlguard.wire.framing import Frame, FrameScanner

ALLOW = Decision(Action.allow, "", "", "", "")
DENY = Decision(Action.deny, "no-drop", 'sqlguard: statement refused by rule "no-drop"', "d", "h")


def judge(text: bytes, identity: Identity, token: str | None = None) -> Decision:
    return DENY if b"drop" in text.lower() else ALLOW


def startup(**params: str) -> bytes:
    return m.StartupMessage(3, 0, {"user": "ann", "database": "db", **params}).encode()


def begin(session: Session, data: bytes) -> list:
    """Startup bytes in; when the session asks for admission, admit the login."""
    commands = session.receive_client(data)
    if commands and isinstance(commands[-1], Admit):
        return commands[:-1] + session.admitted(None)
    return commands


def sent(commands: list, kind: type) -> bytes:
    return b"".join(c.data for c in commands if isinstance(c, kind))


def messages(data: bytes) -> list[Frame]:
    return [i for i in FrameScanner(frozenset(range(256))).feed(data) if isinstance(i, Frame)]


def ready_session(version: list[str] | None = None) -> Session:
    versions = version or ["v1"]
    session = Session(judge, lambda: versions[0], "127.0.0.1")
    commands = begin(session, startup())
    assert isinstance(commands[0], OpenUpstream)
    session.receive_server(m.message(b"R", b"\0\0\0\0") + m.ready_for_query(b"I"))
    assert session.phase is Phase.READY
    return session


def marker_error(forwarded: bytes) -> bytes:
    """What PostgreSQL answers to the marker statement sqlguard sent in place of a refusal."""
    found = re.search(rb"sqlguard_refused_[0-9a-f]{16}", forwarded)
    assert found, forwarded
    marker = found.group()
    return m.message(
        b"E", b'SERROR\0VERROR\0C42601\0Msyntax error at or near "' + marker + b'"\0\0'
    )


def test_ssl_request_is_answered_n_then_startup_opens_upstream() -> None:
    session = Session(judge, lambda: "v1")
    commands = session.receive_client(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
    assert commands == [ToClient(b"N")]
    commands = begin(session, startup(application_name="psql"))
    assert isinstance(commands[0], OpenUpstream)
    assert commands[0].identity == Identity("ann", "db", "psql", "")


SIDECAR_CERT, DATABASE_CERT = b"\1" * 32, b"\2" * 32  # tls-server-end-point data


def passthrough_over_tls(upstream_binding: bytes | None) -> Session:
    """A client over TLS (the sidecar's certificate), logging in through to the upstream,
    which has just asked for SASL offering SCRAM-SHA-256-PLUS (it runs TLS too)."""
    session = Session(judge, lambda: "v1", "10.0.0.7", tls=TlsOffer.OPTIONAL)
    session.receive_client((8).to_bytes(4, "big") + m.SSL_REQUEST_CODE.to_bytes(4, "big"))
    session.tls_established(None, SIDECAR_CERT)
    assert isinstance(begin(session, startup())[0], OpenUpstream)
    session.upstream_opened(upstream_binding)
    offer = auth.authentication_sasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
    assert sent(session.receive_server(offer), ToClient) == offer
    return session


def test_passthrough_scram_plus_bound_to_the_sidecars_certificate_is_explained() -> None:
    """The upstream would check the binding against its own certificate and refuse."""
    session = passthrough_over_tls(DATABASE_CERT)
    choice = auth.sasl_initial_response("SCRAM-SHA-256-PLUS", b"p=tls-server-end-point,,n=,r=x")
    commands = session.receive_client(choice)
    assert not sent(commands, ToServer)
    [error] = [decode_fields(f.body) for f in messages(sent(commands, ToClient))]
    assert error["S"] == "FATAL" and error["C"] == "08P01"
    assert "channel binding cannot pass through the sidecar" in error["M"]
    assert "channel_binding=disable" in error["H"]
    assert any(isinstance(c, Close) for c in commands)
    [result] = [c for c in commands if isinstance(c, LoginResult)]
    assert not result.ok and not result.guess


@pytest.mark.parametrize(
    ("mechanism", "upstream_binding"),
    [("SCRAM-SHA-256", DATABASE_CERT), ("SCRAM-SHA-256-PLUS", SIDECAR_CERT)],
)
def test_passthrough_sasl_that_can_work_goes_upstream_unchanged(
    mechanism: str, upstream_binding: bytes
) -> None:
    """Plain SCRAM; or -PLUS where both ends present the same certificate."""
    session = passthrough_over_tls(upstream_binding)
    choice = auth.sasl_initial_response(mechanism, b"n,,n=,r=x")
    assert sent(session.receive_client(choice), ToServer) == choice
    answer = auth.sasl_response(b"c=biws,r=xy,p=AA==")  # later 'p' messages are not SASL choices
    assert sent(session.receive_client(answer), ToServer) == answer


def test_passthrough_plaintext_client_is_not_offered_scram_plus() -> None:
    """libpq gives up when -PLUS is offered over a connection without TLS ("server offered
    SCRAM-SHA-256-PLUS authentication over a non-SSL connection"), as it would be here when
    only the sidecar's upstream connection runs TLS."""
    session = Session(judge, lambda: "v1", "10.0.0.7")
    assert isinstance(begin(session, startup())[0], OpenUpstream)
    session.upstream_opened(DATABASE_CERT)
    offer = auth.authentication_sasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
    assert sent(session.receive_server(offer), ToClient) == auth.authentication_sasl(
        ["SCRAM-SHA-256"]
    )
    choice = auth.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=x")
    assert sent(session.receive_client(choice), ToServer) == choice


def test_replication_connection_is_refused_with_fatal() -> None:
    commands = begin(Session(judge, lambda: "v1"), startup(replication="database"))
    fields = decode_fields(messages(sent(commands, ToClient))[0].body)
    assert fields["S"] == "FATAL" and fields["C"] == "0A000"
    assert isinstance(commands[-1], Close)


@pytest.mark.parametrize("options", ["-c role=admin", "--session_authorization=postgres", "-X"])
def test_options_that_set_dangerous_parameters_are_refused(options: str) -> None:
    commands = begin(Session(judge, lambda: "v1"), startup(options=options))
    assert decode_fields(messages(sent(commands, ToClient))[0].body)["S"] == "FATAL"


def test_harmless_options_pass() -> None:
    commands = begin(Session(judge, lambda: "v1"), startup(options="-c statement_timeout=5s"))
    assert isinstance(commands[0], OpenUpstream)


def test_greasing_client_gets_negotiate_protocol_version() -> None:
    session = Session(judge, lambda: "v1")
    packet = m.StartupMessage(3, 9999, {"user": "ann", "_pq_.grease": "1"}).encode()
    upstream = begin(session, packet)[0]
    assert isinstance(upstream, OpenUpstream)
    assert m.decode_startup_packet(upstream.startup[4:]).minor == 2
    out = sent(session.receive_server(m.message(b"R", b"\0\0\0\0")), ToClient)
    first = messages(out)[0]
    assert first.type == ord("v")
    assert m.decode_negotiate(first.body) == (2, ["_pq_.grease"])


def test_backend_key_is_replaced_and_registered() -> None:
    session = Session(judge, lambda: "v1")
    begin(session, startup())
    commands = session.receive_server(m.backend_key_data(77, b"\1\2\3\4") + m.ready_for_query(b"I"))
    register = next(c for c in commands if isinstance(c, RegisterCancelKey))
    assert register.pid == 77 and register.upstream_key == b"\1\2\3\4"
    key_msg = messages(sent(commands, ToClient))[0]
    assert m.decode_backend_key(key_msg.body) == (77, register.client_key)
    assert register.client_key != b"\1\2\3\4"


def test_cancel_request_is_forwarded_and_closed() -> None:
    commands = Session(judge, lambda: "v1").receive_client(m.CancelRequest(5, b"abcd").encode())
    assert commands[0] == ForwardCancel(5, b"abcd")
    assert isinstance(commands[1], Close)


def test_allowed_query_is_forwarded_unchanged() -> None:
    session = ready_session()
    assert sent(session.receive_client(m.query(b"select 1")), ToServer) == m.query(b"select 1")


def test_refused_query_is_replaced_and_error_rewritten() -> None:
    session = ready_session()
    forwarded = sent(session.receive_client(m.query(b"DROP TABLE t")), ToServer)
    assert b"DROP" not in forwarded
    back = sent(session.receive_server(marker_error(forwarded) + m.ready_for_query(b"E")), ToClient)
    error, ready = messages(back)
    fields = decode_fields(error.body)
    assert fields["C"] == "42501" and fields["M"] == DENY.message
    assert fields["D"] == "d" and fields["H"] == "h"
    assert ready.body == b"E"
    assert session.tx_status == b"E"


def test_refused_parse_in_pipeline_is_replaced_in_place() -> None:
    session = ready_session()
    batch = (
        m.parse(b"", b"insert into t values (1)")
        + m.message(b"B", b"\0\0\0\0\0\0\0\0")
        + m.message(b"E", b"\0\0\0\0\0")
        + m.parse(b"s2", b"drop table t")
        + m.message(b"B", b"\0s2\0\0\0\0\0\0\0")
        + m.message(b"S")
    )
    forwarded = messages(sent(session.receive_client(batch), ToServer))
    assert [chr(f.type) for f in forwarded] == ["P", "B", "E", "P", "P", "S"]
    assert forwarded[0].raw == m.parse(b"", b"insert into t values (1)")
    assert b"drop" not in forwarded[3].raw and b"sqlguard_refused_" in forwarded[3].raw
    # The Bind of the refused statement is refused too (the server discards it anyway).
    assert b"sqlguard_refused_" in forwarded[4].raw


def test_refused_named_statement_stays_refused_in_later_batches() -> None:
    session = ready_session()
    session.receive_client(m.parse(b"s1", b"drop table t") + m.message(b"S"))
    session.receive_server(m.ready_for_query(b"I"))
    later = sent(session.receive_client(m.message(b"B", b"\0s1\0\0\0\0\0\0\0")), ToServer)
    assert b"sqlguard_refused_" in later


def test_statements_are_judged_again_after_a_rule_reload() -> None:
    versions = ["v1"]
    calls: list[bytes] = []

    def counting_judge(text: bytes, identity: Identity, token: str | None = None) -> Decision:
        calls.append(text)
        return judge(text, identity)

    session = Session(counting_judge, lambda: versions[0])
    begin(session, startup())
    session.receive_server(m.ready_for_query(b"I"))
    session.receive_client(m.parse(b"s1", b"select 1"))
    session.receive_client(m.message(b"B", b"\0s1\0\0\0\0\0\0\0"))
    assert len(calls) == 1  # a Bind of a known statement costs no re-parse
    versions[0] = "v2"
    session.receive_client(m.message(b"B", b"\0s1\0\0\0\0\0\0\0"))
    assert len(calls) == 2


def test_a_portal_bound_before_a_rule_reload_is_judged_again_at_execute() -> None:
    """A cursor bound under the old rules must not keep running under them: the next
    Execute after a reload that refuses its text is refused like a refused statement."""
    versions = ["v1"]
    forbidden: set[bytes] = set()

    def reloadable_judge(text: bytes, identity: Identity, token: str | None = None) -> Decision:
        return DENY if text in forbidden else ALLOW

    session = Session(reloadable_judge, lambda: versions[0])
    begin(session, startup())
    session.receive_server(m.message(b"R", b"\0\0\0\0") + m.ready_for_query(b"I"))
    bind = m.message(b"B", b"c1\0\0\0\0\0\0\0\0")  # unnamed statement into portal c1
    batch = m.parse(b"", b"select * from t") + bind + m.message(b"E", b"c1\0\0\0\0\x0a")
    assert sent(session.receive_client(batch), ToServer) == batch  # first 10 rows
    session.receive_client(m.parse(b"", b"select 1"))  # the unnamed statement is replaced
    execute = m.message(b"E", b"c1\0\0\0\0\x0a")
    assert sent(session.receive_client(execute), ToServer) == execute  # same rules: goes on
    versions[0], forbidden = "v2", {b"select * from t"}  # the portal's own text, not "select 1"
    commands = session.receive_client(execute)
    forwarded = sent(commands, ToServer)
    assert forwarded != execute and b"sqlguard_refused_" in forwarded
    [started] = [c for c in commands if isinstance(c, StatementStarted)]
    assert started.text == b"select * from t" and started.decision == DENY


def test_function_call_is_refused() -> None:
    session = ready_session()
    forwarded = sent(session.receive_client(m.message(b"F", b"\0\0\0\1\0\0\0\0\0\0")), ToServer)
    assert forwarded[:1] == b"Q" and b"sqlguard_refused_" in forwarded
    back = sent(session.receive_server(marker_error(forwarded) + m.ready_for_query(b"I")), ToClient)
    assert decode_fields(messages(back)[0].body)["C"] == "0A000"


def test_stale_refusal_is_dropped_when_its_batch_ended_with_another_error() -> None:
    session = ready_session()
    forwarded = sent(
        session.receive_client(m.parse(b"", b"drop table t") + m.message(b"S")), ToServer
    )
    error = marker_error(forwarded[: len(forwarded) - 5])
    session.receive_server(
        m.message(b"E", b"SERROR\0VERROR\0C25P02\0Mfailed\0\0") + m.ready_for_query(b"E")
    )
    # A later error mentioning the marker is not rewritten: the refusal ended with its Sync.
    back = sent(session.receive_server(error), ToClient)
    assert decode_fields(messages(back)[0].body)["C"] == "42601"


def test_garbage_from_client_is_a_protocol_violation() -> None:
    session = ready_session()
    commands = session.receive_client(b"\xff\x00\x00\x00\x04")
    fields = decode_fields(messages(sent(commands, ToClient))[0].body)
    assert fields["C"] == "08P01" and fields["S"] == "FATAL"
    assert isinstance(commands[-1], Close)


def test_upstream_loss_is_reported_to_client() -> None:
    session = ready_session()
    commands = session.server_closed()
    assert decode_fields(messages(sent(commands, ToClient))[0].body)["C"] == "08006"


def test_client_loss_terminates_upstream() -> None:
    session = ready_session()
    commands = session.client_closed()
    assert sent(commands, ToServer) == m.TERMINATE


def test_shutdown_tells_the_client_between_messages_only() -> None:
    session = ready_session()
    commands = session.shutdown()
    assert sent(commands, ToServer) == m.TERMINATE
    assert decode_fields(messages(sent(commands, ToClient))[0].body)["C"] == "57P01"
    mid_row = ready_session()
    mid_row.receive_server(m.message(b"D", b"\0\1" + b"\0\0\0\x10" + b"x" * 16)[:12])
    assert sent(mid_row.shutdown(), ToClient) == b""


def test_gssenc_then_ssl_then_startup() -> None:
    session = Session(judge, lambda: "v1")
    gssenc = b"\x00\x00\x00\x08\x04\xd2\x16\x30"
    ssl = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
    assert session.receive_client(gssenc) == [ToClient(b"N")]
    assert session.receive_client(ssl) == [ToClient(b"N")]
    assert isinstance(begin(session, startup())[0], OpenUpstream)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_client_bytes_never_crash_a_ready_session(chunks: list[bytes]) -> None:
    session = ready_session()
    for chunk in chunks:
        for command in session.receive_client(chunk):
            assert isinstance(command, ToServer | ToClient | Close)


@settings(max_examples=300, deadline=None)
@given(
    st.booleans(),
    st.binary(max_size=48).map(lambda body: m.message(b"p", body)) | st.binary(max_size=64),
)
def test_random_sasl_answers_in_passthrough_never_crash(encrypted: bool, answer: bytes) -> None:
    """The client's answer to the upstream's SASL offer is read (its mechanism) before it
    goes on: garbage is a protocol violation or goes upstream, never an exception."""
    session = passthrough_over_tls(DATABASE_CERT) if encrypted else Session(judge, lambda: "v1")
    if not encrypted:
        begin(session, startup())
        session.receive_server(auth.authentication_sasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))
    for command in session.receive_client(answer):
        assert isinstance(command, ToServer | ToClient | Close | LoginResult)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_server_bytes_never_crash_a_session(chunks: list[bytes]) -> None:
    session = ready_session()
    for chunk in chunks:
        session.receive_server(chunk)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_startup_bytes_never_crash(data: bytes) -> None:
    Session(judge, lambda: "v1").receive_client(data)


@pytest.mark.parametrize("kind", [b"v", b"K", b"E", b"Z"])
def test_truncated_server_messages_are_reported_not_raised(kind: bytes) -> None:
    session = Session(judge, lambda: "v1")
    begin(session, startup())
    commands = session.receive_server(m.message(kind, b"\0"))
    assert all(isinstance(c, ToClient | Close | RegisterCancelKey | LoginResult) for c in commands)


def test_query_with_embedded_nul_is_judged_whole() -> None:
    seen: list[bytes] = []

    def recording_judge(text: bytes, identity: Identity, token: str | None = None) -> Decision:
        seen.append(text)
        return ALLOW

    session = Session(recording_judge, lambda: "v1")
    begin(session, startup())
    session.receive_server(m.ready_for_query(b"I"))
    session.receive_client(m.message(b"Q", b"DELETE FROM t WHERE id = 1\0 OR true\0"))
    assert seen == [b"DELETE FROM t WHERE id = 1\0 OR true"]


def test_login_result_is_reported_once_either_way() -> None:
    ok = Session(judge, lambda: "v1")
    begin(ok, startup())
    assert LoginResult(ok=True) in ok.receive_server(m.ready_for_query(b"I"))
    assert LoginResult(ok=True) not in ok.receive_server(m.ready_for_query(b"I"))
    failed = Session(judge, lambda: "v1")
    begin(failed, startup())
    error = m.message(b"E", b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0")
    assert LoginResult(ok=False) in failed.receive_server(error)


def test_statement_lifecycle_for_query_and_pipeline() -> None:
    session = ready_session()
    started = session.receive_client(m.query(b"select 1"))
    (start,) = [c for c in started if isinstance(c, StatementStarted)]
    done = session.receive_server(m.message(b"C", b"SELECT 1\0") + m.ready_for_query(b"I"))
    assert StatementFinished(start.id, "", "SELECT 1", True) in done
    batch = (
        m.parse(b"", b"select 2")
        + m.message(b"B", b"\0\0\0\0\0\0\0\0")
        + m.message(b"E", b"\0\0\0\0\0")
        + m.message(b"E", b"\0\0\0\0\0")
        + m.message(b"S")
    )
    ids = [c.id for c in session.receive_client(batch) if isinstance(c, StatementStarted)]
    error = m.message(b"E", b"SERROR\0VERROR\0C22012\0Mdivision by zero\0\0")
    done = session.receive_server(
        m.message(b"1") + m.message(b"2") + error + m.ready_for_query(b"I")
    )
    finished = [c for c in done if isinstance(c, StatementFinished)]
    assert finished == [
        StatementFinished(ids[0], "22012", "", True),
        StatementFinished(ids[1], "", "", False),  # skipped by the server after the error
    ]
