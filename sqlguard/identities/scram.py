"""The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677), as PostgreSQL speaks it.

Written here rather than taken from scramp: scramp 1.4.15+ refuses libpq's client-first
message, whose user name is empty (``n,,n=,r=...``). PostgreSQL ignores the SCRAM user name
and uses the startup packet's, so we accept any name (empty, pgjdbc's ``*``, or a real one).

Channel binding (``SCRAM-SHA-256-PLUS``, type ``tls-server-end-point``, RFC 5929) ties the
exchange to the TLS connection it runs over: the client proves it saw the hash of *this*
server's certificate, so a man in the middle holding another certificate cannot relay the
login. ``ScramServer`` checks it as PostgreSQL does (``read_client_first_message``): a
client that chose ``-PLUS`` must bind; one that did not must not; and one that says ``y``
("I can bind, but you offered no -PLUS") is refused where -PLUS *was* offered, since someone
took it out of the offer on the way.

A verifier checks the password it was made from and no other:

>>> verifier = parse_verifier(make_verifier("pencil"))
>>> verifier.iterations
4096
>>> verifier.matches("pencil"), verifier.matches("pen")
(True, False)
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from sqlguard.identities.saslprep import saslprep

MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"
BINDING_TYPE = "tls-server-end-point"  # the one PostgreSQL and its clients speak
DEFAULT_ITERATIONS = 4096
SALT_BYTES = 16  # what PostgreSQL uses
NONCE_BYTES = 18  # what PostgreSQL uses
# Highest iteration count the client side accepts: a hostile server could ask for billions.
MAX_ITERATIONS = 1_000_000
_VERIFIER = re.compile(
    r"SCRAM-SHA-256\$(?P<iter>[0-9]{1,9}):(?P<salt>[A-Za-z0-9+/=]+)"
    r"\$(?P<stored>[A-Za-z0-9+/=]+):(?P<server>[A-Za-z0-9+/=]+)"
)
_PRINTABLE_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable ASCII except ','


class ScramError(ValueError):
    """The exchange failed: malformed message, refused option or wrong password.

    The message is for the sidecar's log; tell the client only "password authentication
    failed" (SQLSTATE 28P01), as PostgreSQL does, so it learns nothing about why.
    """


@dataclass(frozen=True)
class Verifier:
    """A stored SCRAM secret: enough to check a password, not enough to log in with.

    ``repr`` hides the keys: StoredKey and ServerKey allow an offline guessing attack and
    ServerKey lets its holder impersonate the server, so they must not reach logs.
    """

    iterations: int
    salt: bytes = field(repr=False)
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    @property
    def text(self) -> str:
        """PostgreSQL's ``rolpassword`` form (``ALTER ROLE ... PASSWORD`` accepts it as is)."""
        return (
            f"{MECHANISM}${self.iterations}:{_b64(self.salt)}"
            f"${_b64(self.stored_key)}:{_b64(self.server_key)}"
        )

    def matches(self, password: str) -> bool:
        """Is ``password`` the one this verifier was made from? (Costs one PBKDF2 run.)"""
        stored, _ = _keys(_salted(password, self.salt, self.iterations))
        return hmac.compare_digest(stored, self.stored_key)


def make_verifier(password: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    """A new verifier for ``password`` with a fresh random salt, in PostgreSQL's format."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(SALT_BYTES)
    stored, server = _keys(_salted(password, salt, iterations))
    return Verifier(iterations, salt, stored, server).text


def parse_verifier(text: str) -> Verifier:
    """Read PostgreSQL's stored form; the error never echoes the text (it is a secret)."""
    match = _VERIFIER.fullmatch(text.strip())
    if not match:
        raise ScramError(
            "not a SCRAM-SHA-256 verifier (expected "
            "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)"
        )
    try:
        salt, stored, server = (
            base64.b64decode(match[name], validate=True) for name in ("salt", "stored", "server")
        )
    except binascii.Error:
        raise ScramError("SCRAM-SHA-256 verifier has invalid base64") from None
    if len(stored) != 32 or len(server) != 32 or not salt or int(match["iter"]) < 1:
        raise ScramError("SCRAM-SHA-256 verifier has wrong key lengths or iteration count")
    return Verifier(int(match["iter"]), salt, stored, server)


def mock_verifier(name: str, server_secret: bytes) -> Verifier:
    """A verifier no password matches, stable per name: run the exchange for unknown names
    with it (as PostgreSQL does) so a client cannot tell unknown names from wrong passwords."""
    digest = hmac.new(server_secret, b"mock-salt:" + name.encode(), hashlib.sha256).digest()
    unmatchable = hmac.new(server_secret, b"mock-key:" + name.encode(), hashlib.sha256).digest()
    return Verifier(DEFAULT_ITERATIONS, digest[:SALT_BYTES], unmatchable, unmatchable)


class ScramServer:
    """One SCRAM-SHA-256 exchange, sans-IO: feed it the client's SASL payloads in order.

    ``first`` takes the SASLInitialResponse data and returns the AuthenticationSASLContinue
    data; ``final`` takes the SASLResponse data and returns the AuthenticationSASLFinal data,
    or raises ``ScramError``. Only after ``final`` returns is the client authenticated.

    ``binding``: the connection's ``tls-server-end-point`` data when -PLUS was offered (TLS,
    and a certificate that has one), else None; ``plus``: the client chose -PLUS.
    """

    def __init__(
        self,
        verifier: Verifier,
        *,
        nonce: str | None = None,
        binding: bytes | None = None,
        plus: bool = False,
    ) -> None:
        if plus and binding is None:
            raise ValueError(f"{MECHANISM_PLUS} needs the connection's channel binding data")
        self._verifier = verifier
        self._binding = binding
        self._plus = plus
        self._server_nonce = nonce or _b64(secrets.token_bytes(NONCE_BYTES))
        self._gs2_header: bytes | None = None
        self._first_bare = ""
        self._server_first = ""
        self.client_user = ""  # informative only: PostgreSQL uses the startup packet's user

    def first(self, client_first: bytes) -> bytes:
        """Parse client-first, return server-first (``r=...,s=...,i=...``)."""
        if self._gs2_header is not None:
            raise ScramError("SCRAM client-first message sent twice")
        text = _ascii(client_first, "client-first")
        flag, authzid, bare = _split_gs2(text)
        self._check_binding_flag(flag)
        if authzid:
            raise ScramError("SCRAM authorization identity (a=) is not supported")
        attributes = _attributes(bare, "client-first")
        if not attributes or attributes[0][0] != "n" or len(attributes) < 2:
            raise ScramError("client-first must start with n=<user>,r=<nonce>")
        if attributes[1][0] != "r" or not _PRINTABLE_NONCE.fullmatch(attributes[1][1]):
            raise ScramError("client-first has a missing or invalid nonce")
        _refuse_mandatory(attributes[2:])
        self.client_user = attributes[0][1]
        self._gs2_header = f"{flag},{authzid},".encode()
        self._first_bare = bare
        nonce = attributes[1][1] + self._server_nonce
        salt, iterations = _b64(self._verifier.salt), self._verifier.iterations
        self._server_first = f"r={nonce},s={salt},i={iterations}"
        return self._server_first.encode()

    def _check_binding_flag(self, flag: str) -> None:
        if flag.startswith("p="):
            if not self._plus:
                raise ScramError(
                    f"the client chose {MECHANISM} but sent channel binding data ({flag[:40]!r})"
                )
            if flag[2:] != BINDING_TYPE:
                raise ScramError(f"unsupported channel binding type {flag[2:40]!r}")
            return
        if flag not in ("n", "y"):
            raise ScramError(f"invalid channel-binding flag {flag[:10]!r}")
        if self._plus:
            raise ScramError(f"the client chose {MECHANISM_PLUS} but sent no channel binding data")
        if flag == "y" and self._binding is not None:
            raise ScramError(
                f"channel binding downgrade: the client can bind but saw no {MECHANISM_PLUS} "
                "offer, and this server made one (was the offer altered on the way?)"
            )

    def final(self, client_final: bytes) -> bytes:
        """Check client-final's binding, nonce and proof; return server-final (``v=...``)."""
        if self._gs2_header is None or not self._server_first:
            raise ScramError("SCRAM client-final message out of order")
        text = _ascii(client_final, "client-final")
        self._server_first, server_first = "", self._server_first  # one attempt only
        without_proof, _, proof_text = text.rpartition(",p=")
        attributes = _attributes(without_proof, "client-final")
        if len(attributes) < 2 or attributes[0][0] != "c" or attributes[1][0] != "r":
            raise ScramError("client-final must be c=<binding>,r=<nonce>,...,p=<proof>")
        bound = (self._binding or b"") if self._plus else b""
        expected = self._gs2_header + bound
        if _unb64(attributes[0][1], "channel binding") != expected:
            what = "this connection's certificate" if self._plus else "client-first"
            raise ScramError(f"client-final channel binding does not match {what}")
        if attributes[1][1] != server_first[2:].split(",", 1)[0]:
            raise ScramError("client-final nonce does not match")
        _refuse_mandatory(attributes[2:])
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode()
        self._check_proof(_unb64(proof_text, "proof"), auth_message)
        signature = hmac.new(self._verifier.server_key, auth_message, hashlib.sha256).digest()
        return f"v={_b64(signature)}".encode()

    def _check_proof(self, proof: bytes, auth_message: bytes) -> None:
        stored_key = self._verifier.stored_key
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        if len(proof) != len(signature):
            raise ScramError("client proof has the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key):
            raise ScramError("wrong password (client proof does not verify)")


class ScramClient:
    """The client side, for the sidecar's own login to the upstream as a mapped role.

    The salted password is derived once per (password, salt, iteration count) and kept for
    the process: the upstream role's salt does not change between logins, and PBKDF2 would
    otherwise block the event loop for milliseconds on every new upstream connection.

    ``binding``: the server certificate's ``tls-server-end-point`` data, to log in with
    SCRAM-SHA-256-PLUS (the server must have offered it). Without it, ``could_bind`` says
    the connection runs over TLS, so the client could bind but was offered no -PLUS (``y``),
    which a server that did offer it refuses as a downgrade; else ``n``, as libpq does.
    """

    def __init__(
        self,
        password: str,
        *,
        nonce: str | None = None,
        binding: bytes | None = None,
        could_bind: bool = False,
    ) -> None:
        self._password = password
        self._nonce = nonce or _b64(secrets.token_bytes(NONCE_BYTES))
        flag = f"p={BINDING_TYPE}" if binding is not None else "y" if could_bind else "n"
        self._gs2_header = f"{flag},,"
        self._binding = binding or b""
        self._expected_signature = b""
        self._first_bare = ""

    def __repr__(self) -> str:
        return "ScramClient(<password hidden>)"

    def first(self) -> bytes:
        """client-first; the user name is left empty, as libpq does (the server ignores it)."""
        self._first_bare = f"n=,r={self._nonce}"
        self._expected_signature = b""
        return f"{self._gs2_header}{self._first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        """client-final with the proof, from the server's nonce, salt and iteration count."""
        text = _ascii(server_first, "server-first")
        attributes = dict(_attributes(text, "server-first")[:3])
        nonce, salt_text, iterations_text = (attributes.get(key, "") for key in "rsi")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ScramError("server-first nonce does not extend the client's nonce")
        digits = iterations_text.isascii() and iterations_text.isdigit()
        if not digits or not 0 < int(iterations_text) <= MAX_ITERATIONS:
            raise ScramError(f"server-first iteration count must be 1 to {MAX_ITERATIONS}")
        salt = _unb64(salt_text, "salt")
        salted = _client_salted(self._password, salt, int(iterations_text))
        bound = _b64(self._gs2_header.encode() + self._binding)  # "biws": "n,,"
        without_proof = f"c={bound},r={nonce}"
        auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key, server_key = _keys(salted)
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._expected_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify(self, server_final: bytes) -> None:
        """The server proves it knew the verifier; without this a fake server could pose."""
        text = _ascii(server_final, "server-final")
        if text.startswith("e="):
            raise ScramError(f"the server refused the SCRAM exchange: {text[2:]}")
        if not text.startswith("v=") or not self._expected_signature:
            raise ScramError("malformed or unexpected server-final message")
        if not hmac.compare_digest(_unb64(text[2:], "server signature"), self._expected_signature):
            raise ScramError("the server's SCRAM signature does not verify")


@functools.lru_cache(maxsize=64)
def _client_salted(password: str, salt: bytes, iterations: int) -> bytes:
    """The client side's salted passwords: one per upstream role in practice."""
    return _salted(password, salt, iterations)


def _salted(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)


def _keys(salted_password: bytes) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) from SaltedPassword, per RFC 5802 section 3."""
    client_key = hmac.new(salted_password, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted_password, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), server_key


def _split_gs2(text: str) -> tuple[str, str, str]:
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise ScramError("client-first lacks a GS2 header (n,, or y,,)")
    flag, authzid, bare = parts
    return flag, authzid, bare


def _attributes(text: str, what: str) -> list[tuple[str, str]]:
    """``a=value`` pairs in order; a value may contain '=' (base64 padding)."""
    pairs = []
    for item in text.split(","):
        if len(item) < 2 or item[1] != "=" or not item[0].isalpha():
            raise ScramError(f"malformed attribute in {what} message")
        pairs.append((item[0], item[2:]))
    return pairs


def _refuse_mandatory(extensions: list[tuple[str, str]]) -> None:
    if any(name == "m" for name, _ in extensions):
        raise ScramError("SCRAM mandatory extension (m=) is not supported")


def _ascii(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError(f"{what} message is not UTF-8") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise ScramError(f"invalid base64 in {what}") from None
