"""The SCRAM server against an independent client written from RFC 5802/7677."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from sqlguard.identities.scram import (
    ScramError,
    ScramServer,
    make_verifier,
    mock_verifier,
    parse_verifier,
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Client:
    """A minimal SCRAM-SHA-256 client, straight from the RFC (ASCII passwords)."""

    def __init__(
        self, password: str, user: str = "", gs2: str = "n,,", binding: bytes = b""
    ) -> None:
        self.password, self.gs2, self.nonce = password, gs2, "rOprNGfwEbeRWgbNEkqO"
        self.binding = binding  # RFC 5802 section 7: c= is base64(GS2 header + binding data)
        self.first_bare = f"n={user},r={self.nonce}"

    def first(self) -> bytes:
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(item.split("=", 1) for item in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac(
            "sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        self.server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        without_proof = f"c={_b64(self.gs2.encode() + self.binding)},r={attrs['r']}"
        self.auth = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), self.auth, hashlib.sha256)
        proof = bytes(a ^ b for a, b in zip(client_key, signature.digest(), strict=True))
        return f"{without_proof},p={_b64(proof)}".encode()

    def check(self, server_final: bytes) -> bool:
        expected = hmac.new(self.server_key, self.auth, hashlib.sha256).digest()
        return server_final.decode() == f"v={_b64(expected)}"


def _exchange(
    password: str,
    attempt: str,
    *,
    offered: bytes | None = None,
    plus: bool = False,
    **client: Any,
) -> tuple[Client, bytes]:
    verifier = parse_verifier(make_verifier(password, iterations=64))
    server = ScramServer(verifier, binding=offered, plus=plus)
    peer = Client(attempt, **client)
    return peer, server.final(peer.final(server.first(peer.first())))


@pytest.mark.parametrize("user", ["", "*", "alice"])
@pytest.mark.parametrize("gs2", ["n,,", "y,,"])
def test_right_password_authenticates_any_scram_user_name(user: str, gs2: str) -> None:
    peer, server_final = _exchange("s3cret", "s3cret", user=user, gs2=gs2)
    assert peer.check(server_final)  # the client can verify the server too


def test_wrong_password_is_refused() -> None:
    with pytest.raises(ScramError, match="wrong password"):
        _exchange("s3cret", "guess")


def test_rfc7677_vector() -> None:
    """RFC 7677 section 3: user/pencil, known salt, nonces and proof."""
    salted = hashlib.pbkdf2_hmac(
        "sha256", b"pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    verifier = parse_verifier(
        f"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==${_b64(stored)}:{_b64(server_key)}"
    )
    server = ScramServer(verifier, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    first = server.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert (
        first
        == b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final = server.final(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


CERT_HASH = hashlib.sha256(b"the certificate this connection was served").digest()
PLUS = "p=tls-server-end-point,,"


def test_plus_with_this_connections_binding_authenticates() -> None:
    peer, server_final = _exchange(
        "pw", "pw", offered=CERT_HASH, plus=True, gs2=PLUS, binding=CERT_HASH
    )
    assert peer.check(server_final)


def test_plus_bound_to_another_certificate_is_refused() -> None:
    """What a man in the middle with its own certificate would relay."""
    other = hashlib.sha256(b"the interceptor's certificate").digest()
    with pytest.raises(ScramError, match="does not match this connection's certificate"):
        _exchange("pw", "pw", offered=CERT_HASH, plus=True, gs2=PLUS, binding=other)


@pytest.mark.parametrize(
    ("plus", "gs2", "message"),
    [
        (True, "n,,", "chose SCRAM-SHA-256-PLUS but sent no channel binding"),
        (True, "y,,", "chose SCRAM-SHA-256-PLUS but sent no channel binding"),
        (False, PLUS, "chose SCRAM-SHA-256 but sent channel binding data"),
        (True, "p=tls-unique,,", "unsupported channel binding type 'tls-unique'"),
        (False, "y,,", "channel binding downgrade"),
    ],
)
def test_binding_flags_that_contradict_the_mechanism_or_the_offer(
    plus: bool, gs2: str, message: str
) -> None:
    """As PostgreSQL's read_client_first_message: the last is a client that can bind and saw
    no -PLUS offer, although this server made one."""
    with pytest.raises(ScramError, match=message):
        _exchange("pw", "pw", offered=CERT_HASH, plus=plus, gs2=gs2, binding=CERT_HASH)


def test_a_client_that_does_not_bind_may_ignore_the_offer() -> None:
    peer, server_final = _exchange("pw", "pw", offered=CERT_HASH, gs2="n,,")
    assert peer.check(server_final)


def test_plus_needs_binding_data() -> None:
    with pytest.raises(ValueError, match="channel binding data"):
        ScramServer(parse_verifier(make_verifier("x", iterations=1)), plus=True)


@pytest.mark.parametrize(
    "client_first",
    [b"p=tls-server-end-point,,n=,r=abc", b"n,a=admin,n=,r=abc", b"x,,n=,r=abc", b"n,,r=abc",
     b"n,,n=,r=abc,m=ext", b"garbage", b"n,,n=,r=a,b", b"\xff\xfe"],
)  # fmt: skip
def test_malformed_or_refused_client_first(client_first: bytes) -> None:
    server = ScramServer(parse_verifier(make_verifier("x", iterations=1)))
    with pytest.raises(ScramError):
        server.first(client_first)


def test_tampered_client_final_is_refused() -> None:
    server = ScramServer(parse_verifier(make_verifier("pw", iterations=8)))
    peer = Client("pw")
    final = peer.final(server.first(peer.first())).decode()
    for bad in (final.replace("c=biws", "c=eSws"), final.replace(",r=", ",r=X"), final[:-8]):
        fresh = ScramServer(parse_verifier(make_verifier("pw", iterations=8)))
        fresh.first(peer.first())
        with pytest.raises(ScramError):
            fresh.final(bad.encode())
    server.final(final.encode())
    with pytest.raises(ScramError, match="out of order"):
        server.final(final.encode())  # no second attempt on one exchange


def test_final_before_first_is_refused() -> None:
    with pytest.raises(ScramError, match="out of order"):
        ScramServer(parse_verifier(make_verifier("x", iterations=1))).final(b"c=biws,r=a,p=AA==")


def test_mock_verifier_never_matches_and_is_stable() -> None:
    mock = mock_verifier("nobody", b"secret")
    assert mock == mock_verifier("nobody", b"secret")
    assert not mock.matches("")
    with pytest.raises(ScramError):
        _run_with(mock, "anything")


def _run_with(verifier: object, password: str) -> bytes:
    server = ScramServer(verifier)  # type: ignore[arg-type]
    peer = Client(password)
    return server.final(peer.final(server.first(peer.first())))


@pytest.mark.parametrize(
    "text",
    ["", "md5abc", "SCRAM-SHA-256$0:AAAA$" + "A" * 44 + ":" + "A" * 44,
     "SCRAM-SHA-256$4096:AAAA$AAAA:AAAA", "SCRAM-SHA-256$4096:!!$x:y"],
)  # fmt: skip
def test_bad_verifiers_are_refused_without_echo(text: str) -> None:
    with pytest.raises(ScramError) as caught:
        parse_verifier(text)
    assert "AAAA" not in str(caught.value)


def test_verifier_repr_hides_keys() -> None:
    verifier = parse_verifier(make_verifier("pw", iterations=2))
    assert repr(verifier) == "Verifier(iterations=2)"
    assert parse_verifier(verifier.text) == verifier


def test_non_ascii_password_is_saslprepped() -> None:
    """U+00AD (soft hyphen) maps to nothing, so 'I\\u00adX' and 'IX' are one password."""
    assert parse_verifier(make_verifier("I\u00adX", iterations=2)).matches("IX")
