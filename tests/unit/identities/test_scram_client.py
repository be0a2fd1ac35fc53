"""The SCRAM client (the sidecar's own upstream login) against our SCRAM server."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlguard.identities import scram
from sqlguard.identities.scram import (
    MAX_ITERATIONS,
    ScramClient,
    ScramError,
    ScramServer,
    make_verifier,
    parse_verifier,
)
from sqlguard.session.login import UpstreamLogin
from sqlguard.wire import auth

ITERATIONS = 16  # fast; the exchange does not depend on the count


def _server(password: str, iterations: int = ITERATIONS) -> ScramServer:
    return ScramServer(parse_verifier(make_verifier(password, iterations=iterations)))


def _exchange(client: ScramClient, server: ScramServer) -> bytes:
    """Run first/final through both sides; return the server-final the client verified."""
    server_final = server.final(client.final(server.first(client.first())))
    client.verify(server_final)
    return server_final


def _count_salting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, int]]:
    calls: list[tuple[bytes, int]] = []
    real = scram._salted

    def counting(password: str, salt: bytes, iterations: int) -> bytes:
        calls.append((salt, iterations))
        return real(password, salt, iterations)

    monkeypatch.setattr(scram, "_salted", counting)
    return calls


def test_right_password_logs_in_and_the_server_is_verified() -> None:
    assert _exchange(ScramClient("s3cret"), _server("s3cret")).startswith(b"v=")


def test_client_first_has_an_empty_user_like_libpq() -> None:
    first = ScramClient("pw", nonce="abcdef").first()
    assert first == b"n,,n=,r=abcdef"


def test_channel_binding_round_trip() -> None:
    """The client binds with SCRAM-SHA-256-PLUS; the server checks the data it was given."""
    cert_hash = bytes(range(32))
    client = ScramClient("pw", nonce="abcdef", binding=cert_hash)
    assert client.first() == b"p=tls-server-end-point,,n=,r=abcdef"
    server = ScramServer(
        parse_verifier(make_verifier("pw", iterations=ITERATIONS)), binding=cert_hash, plus=True
    )
    assert _exchange(client, server).startswith(b"v=")
    other = ScramServer(
        parse_verifier(make_verifier("pw", iterations=ITERATIONS)), binding=b"x" * 32, plus=True
    )
    with pytest.raises(ScramError, match="does not match this connection's certificate"):
        _exchange(ScramClient("pw", binding=cert_hash), other)


def test_wrong_password_is_refused_by_the_server() -> None:
    client, server = ScramClient("guess"), _server("s3cret")
    with pytest.raises(ScramError, match="wrong password"):
        server.final(client.final(server.first(client.first())))


@pytest.mark.parametrize(
    "server_first",
    [b"r=other-nonce,s=QUJD,i=4096", b"r=abc,s=QUJD,i=4096", b"r=xabcdef,s=QUJD,i=4096",
     b"s=QUJD,i=4096"],
)  # fmt: skip
def test_server_nonce_must_extend_the_clients(server_first: bytes) -> None:
    client = ScramClient("pw", nonce="abc")
    client.first()
    with pytest.raises(ScramError, match="does not extend"):
        client.final(server_first)


@pytest.mark.parametrize("iterations", ["0", str(MAX_ITERATIONS + 1), "99999999999", "-1", "", "x"])
def test_iteration_count_out_of_range_is_refused_before_any_hashing(
    iterations: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_salting(monkeypatch)
    client = ScramClient("pw", nonce="abc")
    client.first()
    with pytest.raises(ScramError, match=f"1 to {MAX_ITERATIONS}"):
        client.final(f"r=abcdef,s=QUJD,i={iterations}".encode())
    assert calls == []  # a hostile server cannot make the sidecar run billions of rounds


def test_max_iterations_itself_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scram, "_salted", lambda *_: b"k" * 32)  # skip the million rounds
    client = ScramClient("pw", nonce="abc")
    client.first()
    assert client.final(f"r=abcdef,s=QUJD,i={MAX_ITERATIONS}".encode()).startswith(b"c=biws,")


def test_bad_server_signature_is_refused() -> None:
    client, server = ScramClient("s3cret"), _server("s3cret")
    server_final = server.final(client.final(server.first(client.first())))
    signature = bytearray(base64.b64decode(server_final[2:]))
    signature[0] ^= 1
    with pytest.raises(ScramError, match="does not verify"):
        client.verify(b"v=" + base64.b64encode(bytes(signature)))
    client.verify(server_final)  # the genuine one still verifies


def test_server_that_lacks_the_server_key_cannot_pose() -> None:
    """A server holding StoredKey (enough to check the proof) but not ServerKey is refused."""
    real = parse_verifier(make_verifier("s3cret", iterations=ITERATIONS))
    impostor = ScramServer(replace(real, server_key=b"\0" * 32))
    client = ScramClient("s3cret")
    server_final = impostor.final(client.final(impostor.first(client.first())))
    with pytest.raises(ScramError, match="does not verify"):
        client.verify(server_final)


@pytest.mark.parametrize(
    ("server_final", "message"),
    [(b"e=invalid-proof", "refused the SCRAM exchange: invalid-proof"),
     (b"e=other-error", "other-error"),
     (b"x=abc", "malformed or unexpected"),
     (b"v=!!!", "invalid base64"),
     (b"\xff", "not UTF-8")],
)  # fmt: skip
def test_server_error_or_malformed_server_final(server_final: bytes, message: str) -> None:
    client, server = ScramClient("pw"), _server("pw")
    client.final(server.first(client.first()))
    with pytest.raises(ScramError, match=message):
        client.verify(server_final)


def test_verify_before_final_is_refused() -> None:
    client = ScramClient("pw")
    client.first()
    with pytest.raises(ScramError, match="unexpected"):
        client.verify(b"v=" + base64.b64encode(b"\0" * 32))


def test_repr_hides_the_password() -> None:
    client = ScramClient("hunter2-secret")
    assert "hunter2" not in repr(client) and "hidden" in repr(client)
    assert "hunter2" not in repr(UpstreamLogin("app_ro", "hunter2-secret"))


def test_salted_password_is_reused_for_the_same_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_salting(monkeypatch)
    client, verifier = ScramClient("s3cret"), parse_verifier(make_verifier("s3cret", ITERATIONS))
    calls.clear()  # make_verifier salted once itself
    for _ in range(3):
        _exchange(client, ScramServer(verifier))
    assert calls == [(verifier.salt, ITERATIONS)]


def test_salted_password_is_derived_again_for_a_new_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    client = ScramClient("s3cret")
    servers = [_server("s3cret"), _server("s3cret"), _server("s3cret", ITERATIONS + 1)]
    calls = _count_salting(monkeypatch)
    for server in servers:  # two salts, then the first salt's count changes
        _exchange(client, server)
    assert len(calls) == 3


def _upstream_login_exchange(verifier: scram.Verifier) -> None:
    """One upstream login as UpstreamLogin does it, against a server with ``verifier``."""
    login, server = UpstreamLogin("app_ro", "s3cret"), ScramServer(verifier)
    initial = login.answer(auth.authentication_sasl([scram.MECHANISM])[5:])
    assert isinstance(initial, bytes)
    _, data = auth.decode_sasl_initial(initial[5:])
    response = login.answer(auth.sasl_continue(server.first(data))[5:])
    assert isinstance(response, bytes)
    assert login.answer(auth.sasl_final(server.final(response[5:]))[5:]) == b""


def test_salted_password_is_reused_across_upstream_logins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = parse_verifier(make_verifier("s3cret", ITERATIONS))
    calls = _count_salting(monkeypatch)
    for _ in range(3):
        _upstream_login_exchange(verifier)
    assert len(calls) == 1


def test_each_exchange_uses_a_fresh_client_nonce_by_default() -> None:
    assert ScramClient("pw").first() != ScramClient("pw").first()


@pytest.mark.parametrize(
    "server_first",
    [b"r=abcdef,s=QUJD,i=\xc2\xb2", "r=abcdef,s=\u00e9,i=4096".encode()],
    ids=["superscript-digit-iterations", "non-ascii-salt"],
)
def test_malformed_server_first_is_a_scram_error(server_first: bytes) -> None:
    """Not a plain ValueError: UpstreamLogin.answer catches only ScramError/MalformedMessage."""
    client = ScramClient("pw", nonce="abc")
    client.first()
    with pytest.raises(ScramError):
        client.final(server_first)


@settings(max_examples=60, deadline=None)
@given(password=st.text(st.characters(categories=["L", "M", "N", "P", "S", "Zs"]), min_size=1))
def test_any_printable_password_round_trips(password: str) -> None:
    """Non-ASCII passwords go through SASLprep on both sides and still match."""
    verifier = parse_verifier(make_verifier(password, iterations=2))
    client = ScramClient(password)
    _exchange(client, ScramServer(verifier))
