"""TlsChannel: two channels pumping bytes into each other in memory, and one real ssl socket."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from sqlguard.testing.certs import CertFiles, issue, make_ca
from sqlguard.tls.channel import TlsChannel, TlsError
from sqlguard.tls.config import (
    ClientTlsSettings,
    UpstreamTlsSettings,
    server_context,
    upstream_context,
)

SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # what a non-direct PostgreSQL client sends


@dataclass(frozen=True)
class Certs:
    ca: CertFiles
    server: CertFiles
    other_ca: CertFiles


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory = tmp_path_factory.mktemp("certs")
    ca = make_ca(directory)
    other = make_ca(directory / "other", "another CA")
    return Certs(ca=ca, server=issue(ca, directory, "server"), other_ca=other)


@pytest.fixture(scope="module")
def server_ctx(certs: Certs) -> ssl.SSLContext:
    return server_context(ClientTlsSettings(certs.server.cert, certs.server.key))


def client_ctx(ca: Path, mode: str = "verify-full") -> ssl.SSLContext:
    context = upstream_context(UpstreamTlsSettings(mode=mode, ca_file=ca))
    assert context is not None
    return context


def pair(
    server_ctx: ssl.SSLContext, client_context: ssl.SSLContext, hostname: str = "localhost"
) -> tuple[TlsChannel, TlsChannel]:
    client = TlsChannel(client_context, server_side=False, server_hostname=hostname)
    return client, TlsChannel(server_ctx, server_side=True)


class Pump:
    """Shuttles bytes between a client and a server channel, collecting their plaintext."""

    def __init__(self, client: TlsChannel, server: TlsChannel) -> None:
        self.client, self.server = client, server
        self.client_got = bytearray()
        self.server_got = bytearray()

    def run(self, to_server: bytes = b"", to_client: bytes = b"") -> None:
        for _ in range(100):
            if not to_server and not to_client:
                return
            if to_server:
                plain, out = self.server.receive(to_server)
                self.server_got += plain
                to_server, to_client = b"", to_client + out
            if to_client:
                plain, out = self.client.receive(to_client)
                self.client_got += plain
                to_client, to_server = b"", to_server + out
        raise AssertionError("the channels kept talking")


def handshake(client: TlsChannel, server: TlsChannel) -> Pump:
    pump = Pump(client, server)
    pump.run(to_server=client.start())
    assert client.established and server.established
    return pump


def test_handshake_negotiates_tls13_and_alpn_postgresql(
    certs: Certs, server_ctx: ssl.SSLContext
) -> None:
    client, server = pair(server_ctx, client_ctx(certs.ca.cert))
    assert server.start() == b""
    assert not client.established and client.version is None and client.cipher is None
    handshake(client, server)
    assert server.alpn == client.alpn == "postgresql"
    assert server.version == client.version == "TLSv1.3"
    assert server.cipher == client.cipher and server.cipher is not None
    assert client.start() == b""  # nothing more to start once established


def test_data_both_ways_including_one_mebibyte(certs: Certs, server_ctx: ssl.SSLContext) -> None:
    client, server = pair(server_ctx, client_ctx(certs.ca.cert))
    pump = handshake(client, server)
    pump.run(to_server=client.send(b"Q\x00\x00\x00\x0dselect 1\x00"))
    assert pump.server_got == b"Q\x00\x00\x00\x0dselect 1\x00"
    big = os.urandom(1 << 20)
    ciphertext = client.send(big)
    assert len(ciphertext) > len(big)
    plain, out = server.receive(ciphertext)  # one call yields every record
    assert plain == big and out == b""
    pump.run(to_client=server.send(big[::-1]))
    assert pump.client_got == big[::-1]
    assert client.send(b"") == b""


def test_client_hello_already_read_is_fed_in_pieces(
    certs: Certs, server_ctx: ssl.SSLContext
) -> None:
    """Direct TLS: the proxy read the first bytes before it knew they were a ClientHello."""
    client, server = pair(server_ctx, client_ctx(certs.ca.cert))
    hello = client.start()
    assert hello[0] == 0x16  # a TLS handshake record
    to_client = b""
    for index in range(len(hello)):
        plain, out = server.receive(hello[index : index + 1])
        assert plain == b""
        to_client += out
    assert to_client  # ServerHello .. Finished came once the whole ClientHello was in
    Pump(client, server).run(to_client=to_client)
    assert client.established and server.established


def test_send_before_handshake_is_queued_and_flushed(
    certs: Certs, server_ctx: ssl.SSLContext
) -> None:
    client, server = pair(server_ctx, client_ctx(certs.ca.cert))
    message = bytearray(b"first query")
    assert client.send(message) == b""
    message[:] = b"overwritten"  # the caller may reuse its buffer
    assert client.send(b", second") == b""
    assert server.send(b"greeting") == b""
    pump = handshake(client, server)
    assert pump.server_got == b"first query, second"
    assert pump.client_got == b"greeting"


def test_wrong_ca_fails_on_the_client_and_alerts_the_server(
    certs: Certs, server_ctx: ssl.SSLContext
) -> None:
    client, server = pair(server_ctx, client_ctx(certs.other_ca.cert))
    with pytest.raises(TlsError, match="TLS handshake failed: certificate verify failed") as err:
        handshake(client, server)
    assert err.value.reason == "CERTIFICATE_VERIFY_FAILED"
    assert isinstance(err.value, ValueError)
    alert = client.pending_output()
    assert alert  # tells the server why before the connection closes
    with pytest.raises(TlsError, match=r"TLS handshake failed: .*unknown ca"):
        server.receive(alert)
    with pytest.raises(TlsError, match="certificate verify failed"):  # the channel stays failed
        client.receive(b"")
    with pytest.raises(TlsError):
        client.send(b"x")
    assert client.close() == b"" and server.close() == b""


def test_hostname_mismatch_fails_verify_full_but_not_verify_ca(
    certs: Certs, server_ctx: ssl.SSLContext
) -> None:
    client, server = pair(server_ctx, client_ctx(certs.ca.cert), hostname="db.example.com")
    with pytest.raises(TlsError, match="certificate verify failed: Hostname mismatch"):
        handshake(client, server)
    client, server = pair(server_ctx, client_ctx(certs.ca.cert, "verify-ca"), "db.example.com")
    handshake(client, server)


def test_ip_address_is_checked_against_ip_san(certs: Certs, server_ctx: ssl.SSLContext) -> None:
    handshake(*pair(server_ctx, client_ctx(certs.ca.cert), hostname="127.0.0.1"))
    with pytest.raises(TlsError, match="IP address mismatch"):
        handshake(*pair(server_ctx, client_ctx(certs.ca.cert), hostname="127.0.0.2"))


@pytest.mark.parametrize(
    "garbage",
    [SSL_REQUEST, b"\x00\x00\x00\x10\x00\x03\x00\x00user\x00x\x00\x00", b"GET / HTTP/1.1\r\n\r\n"],
)
def test_plaintext_to_a_server_channel_is_a_tls_error(
    server_ctx: ssl.SSLContext, garbage: bytes
) -> None:
    server = TlsChannel(server_ctx, server_side=True)
    with pytest.raises(TlsError, match=r"TLS handshake failed: .*\(the peer is not speaking TLS\)"):
        server.receive(garbage)
    assert server.close() == b""  # never raises


def test_close_notify_both_ways(certs: Certs, server_ctx: ssl.SSLContext) -> None:
    client, server = pair(server_ctx, client_ctx(certs.ca.cert))
    handshake(client, server)
    goodbye = client.send(b"X\x00\x00\x00\x04") + client.close()
    assert client.close() == b""  # only once
    plain, out = server.receive(goodbye)
    assert plain == b"X\x00\x00\x00\x04" and out == b""
    assert server.peer_eof and not client.peer_eof
    assert server.receive(b"") == (b"", b"")
    reply = server.close()
    assert reply
    assert client.receive(reply) == (b"", b"")
    assert client.peer_eof
    with pytest.raises(TlsError, match="protocol is shutdown"):
        client.send(b"too late")


def test_close_before_handshake_never_raises(certs: Certs, server_ctx: ssl.SSLContext) -> None:
    client, server = pair(server_ctx, client_ctx(certs.ca.cert))
    assert server.close() == b""
    client.start()
    assert client.close() == b""


def test_corrupted_record_after_handshake(certs: Certs, server_ctx: ssl.SSLContext) -> None:
    client, server = pair(server_ctx, client_ctx(certs.ca.cert))
    handshake(client, server)
    record = bytearray(client.send(b"hello"))
    record[-1] ^= 0xFF
    with pytest.raises(TlsError, match=r"^TLS error: .*(bad record mac|decrypt)"):
        server.receive(bytes(record))
    assert server.pending_output()  # the bad_record_mac alert


@pytest.mark.parametrize(("offered", "selected"), [(None, None), (["http/1.1"], None)])
def test_alpn_without_postgresql_still_handshakes(
    certs: Certs, server_ctx: ssl.SSLContext, offered: list[str] | None, selected: None
) -> None:
    """OpenSSL (via Python) does not fail the handshake when ALPN does not match: the
    session must check `alpn` itself when it requires `postgresql` (direct TLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(certs.ca.cert)
    if offered is not None:
        context.set_alpn_protocols(offered)
    client, server = pair(server_ctx, context)
    handshake(client, server)
    assert server.alpn is selected and client.alpn is selected


def test_tls12_client_and_min_version(certs: Certs, server_ctx: ssl.SSLContext) -> None:
    context = client_ctx(certs.ca.cert)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    client, server = pair(server_ctx, context)
    handshake(client, server)
    assert client.version == server.version == "TLSv1.2"
    assert server.alpn == "postgresql"
    strict = server_context(
        ClientTlsSettings(certs.server.cert, certs.server.key, False, "TLSv1.3")
    )
    client, server = pair(strict, context)
    with pytest.raises(TlsError, match=r"TLS handshake failed: .*protocol"):
        handshake(client, server)


def test_real_ssl_socket_client_against_server_channel(
    certs: Certs, server_ctx: ssl.SSLContext
) -> None:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    theirs.settimeout(5)
    outcome: dict[str, object] = {}

    def client() -> None:
        try:
            with client_ctx(certs.ca.cert).wrap_socket(theirs, server_hostname="localhost") as tls:
                outcome["alpn"] = tls.selected_alpn_protocol()
                tls.sendall(b"ping")
                reply = b""
                while len(reply) < 4:
                    reply += tls.recv(4 - len(reply))
                outcome["reply"] = reply
                tls.unwrap()
        except Exception as exc:  # pragma: no cover - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=client)
    thread.start()
    try:
        server = TlsChannel(server_ctx, server_side=True)
        received = b""
        while not server.peer_eof:
            data = ours.recv(65536)
            if not data:
                break
            plain, out = server.receive(data)
            if out:
                ours.sendall(out)
            received += plain
            if received == b"ping":
                ours.sendall(server.send(b"pong"))
                received = b"ping-answered"
        ours.sendall(server.close())
        thread.join(5)
    finally:
        ours.close()
        theirs.close()
    assert "error" not in outcome, outcome.get("error")
    assert outcome == {"alpn": "postgresql", "reply": b"pong"}
    assert server.peer_eof and server.alpn == "postgresql"
