"""TLS as a byte-in, byte-out transformer over a pair of memory BIOs.

Why not asyncio's ``loop.start_tls`` or an ``ssl`` socket: a PostgreSQL 17 client using
direct TLS (``sslnegotiation=direct``) sends a ClientHello as its very first bytes, so by the
time the sidecar knows the connection is TLS it has already read them off the socket, and
``start_tls`` cannot be handed bytes that were already read. Feeding an ``ssl.SSLObject``
through ``MemoryBIO`` pairs works the same for that case and for the classic SSLRequest/'S'
exchange, keeps sockets out of the core, and lets the tests pump bytes between two channels
in memory.

The caller owns the transport::

    channel = TlsChannel(context, server_side=True)
    plaintext, to_peer = channel.receive(data)  # data: bytes read from the socket
    transport.write(to_peer)                    # handshake records, alerts, ciphertext
    transport.write(channel.send(reply))        # b"" until the handshake is done

A channel is not thread-safe: one connection, one task.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from typing import Final

# Size of one SSLObject.read: it allocates this much, then shrinks the bytes to what it got.
# OpenSSL hands back at most one record (16 KiB of plaintext) per call, so a bigger chunk
# reads no more per call, and above glibc's mmap threshold (128 KiB) every read became an
# mmap/munmap: 256 KiB made reading a small query ~20 us instead of ~2.3 us.
_READ_CHUNK: Final = 64 * 1024

# OpenSSL's texts for common failures say what broke, not what it means for an operator.
_NOT_TLS: Final = " (the peer is not speaking TLS)"  # a plain startup packet, HTTP, a scanner
_NO_VERSION: Final = " (no TLS version that both sides accept)"
_HINTS: Final = {
    "WRONG_VERSION_NUMBER": _NOT_TLS,
    "HTTP_REQUEST": _NOT_TLS,
    "HTTPS_PROXY_REQUEST": _NOT_TLS,
    "UNKNOWN_PROTOCOL": _NOT_TLS,
    "PACKET_LENGTH_TOO_LONG": _NOT_TLS,
    "UNSUPPORTED_PROTOCOL": _NO_VERSION,
    "TLSV1_ALERT_PROTOCOL_VERSION": _NO_VERSION,
}
_OPENSSL_TEXT: Final = re.compile(r"^\[[^\]]*\]\s*(.*?)\s*(?:\(_ssl\.c:\d+\))?$")


class TlsError(ValueError):
    """The TLS session failed (handshake or record layer); the message is for humans.

    ``reason`` is OpenSSL's reason code (``"CERTIFICATE_VERIFY_FAILED"``), stable enough for a
    metric label, or None when OpenSSL gave none.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class TlsChannel:
    """One TLS session, client or server side, with no I/O of its own.

    ``receive`` and ``send`` return the bytes to write to the peer instead of writing them, so
    the caller decides when and how (an asyncio Protocol just calls ``transport.write``).
    """

    __slots__ = (
        "_closed",
        "_error",
        "_established",
        "_incoming",
        "_outgoing",
        "_peer_eof",
        "_queued",
        "_server_side",
        "_ssl",
    )

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        """``server_hostname`` (client side) is sent as SNI and, when the context has
        ``check_hostname``, checked against the certificate; such a context raises ValueError
        here without it."""
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._server_side = server_side
        self._established = False
        self._peer_eof = False
        self._closed = False
        self._error: TlsError | None = None
        # Plaintext sent before the handshake finished: there are no keys to encrypt it yet.
        self._queued: list[bytes] = []

    # -- driving the session ------------------------------------------------------------

    def start(self) -> bytes:
        """The client's first flight (ClientHello) to write; b"" on the server side, which
        speaks only when spoken to."""
        if self._server_side or self._established:
            return b""
        self._raise_if_failed()
        self._handshake()
        return self._drain()

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Feed ciphertext from the peer; return (plaintext for the application, bytes to
        write to the peer now).

        Drives the handshake while it is incomplete; once it completes, plaintext queued by
        ``send`` is encrypted into the second element. Raises TlsError when the handshake or
        a record fails; the alert telling the peer why is then in ``pending_output()``.
        """
        self._raise_if_failed()
        if data:
            self._incoming.write(data)
        if not self._established and not self._handshake():
            return b"", self._drain()
        return self._read_plaintext(), self._drain()

    def send(self, plaintext: bytes | bytearray | memoryview) -> bytes:
        """Ciphertext of ``plaintext`` to write to the peer.

        Before the handshake completes the plaintext is queued and b"" returned; the ciphertext
        then comes out of the ``receive`` call that completes the handshake.
        """
        self._raise_if_failed()
        if not plaintext:
            return b""
        if not self._established:
            self._queued.append(bytes(plaintext))  # a copy: the caller may reuse its buffer
            return b""
        try:
            self._ssl.write(plaintext)
        except ssl.SSLError as exc:
            raise self._fail(exc, "TLS error") from exc
        return self._drain()

    def pending_output(self) -> bytes:
        """Bytes waiting to go to the peer, above all the alert left by a failed handshake:
        sending it before closing tells the peer why instead of a bare disconnect."""
        return self._drain()

    def close(self) -> bytes:
        """close_notify (plus anything still pending) to write before closing the transport.

        Never raises: closing happens on error paths too, and a channel that never finished
        its handshake simply has nothing to say.
        """
        if not self._closed:
            self._closed = True
            self._queued.clear()
            # With memory BIOs unwrap writes close_notify, then raises SSLWantReadError while
            # it waits for the peer's; before or after a failed handshake it raises SSLError.
            # (ssl.SSLError is an OSError.)
            with contextlib.suppress(OSError, ValueError):
                self._ssl.unwrap()
        return self._drain()

    # -- state ---------------------------------------------------------------------------

    @property
    def established(self) -> bool:
        """The handshake completed: application data flows."""
        return self._established

    @property
    def alpn(self) -> str | None:
        """The ALPN protocol both sides agreed on, or None.

        None also when the client offered no ALPN or none the server knows: OpenSSL (through
        Python) then completes the handshake without ALPN instead of failing it, so a caller
        that requires ``postgresql`` (direct TLS does) must check this after the handshake.
        """
        return self._ssl.selected_alpn_protocol()

    @property
    def version(self) -> str | None:
        """The negotiated protocol version ("TLSv1.3"), None before the handshake."""
        return self._ssl.version()

    @property
    def cipher(self) -> str | None:
        """The negotiated cipher suite name, None before the handshake."""
        cipher = self._ssl.cipher()
        return cipher[0] if cipher else None

    @property
    def peer_eof(self) -> bool:
        """The peer sent close_notify: it will send no more application data."""
        return self._peer_eof

    # -- internals -----------------------------------------------------------------------

    def _handshake(self) -> bool:
        """Advance the handshake; True once it is complete (queued plaintext is then
        encrypted into the outgoing BIO, behind the handshake's last records)."""
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError as exc:
            raise self._fail(exc, "TLS handshake failed") from exc
        self._established = True
        if self._queued:
            queued = self._queued
            data = queued[0] if len(queued) == 1 else b"".join(queued)
            queued.clear()
            try:
                self._ssl.write(data)
            except ssl.SSLError as exc:
                raise self._fail(exc, "TLS error") from exc
        return True

    def _read_plaintext(self) -> bytes:
        """All plaintext the buffered ciphertext yields.

        The loop stops as soon as no input is left instead of waiting for SSLWantReadError:
        raising and catching that exception on every message doubled the cost of reading a
        small query.
        """
        if self._peer_eof:
            return b""
        ssl_object = self._ssl
        incoming = self._incoming
        result = b""
        parts: list[bytes] | None = None
        while incoming.pending or ssl_object.pending():
            try:
                chunk = ssl_object.read(_READ_CHUNK)
            except ssl.SSLWantReadError:  # a partial record: the rest comes later
                break
            except ssl.SSLZeroReturnError:
                self._peer_eof = True
                break
            except ssl.SSLError as exc:
                raise self._fail(exc, "TLS error") from exc
            if not chunk:  # SSLObject.read returns b"" after close_notify
                self._peer_eof = True
                break
            if not result:
                result = chunk
            elif parts is None:
                parts = [result, chunk]
            else:
                parts.append(chunk)
        return b"".join(parts) if parts is not None else result

    def _drain(self) -> bytes:
        outgoing = self._outgoing
        return outgoing.read() if outgoing.pending else b""

    def _fail(self, exc: ssl.SSLError, what: str) -> TlsError:
        """Remember the failure (the session cannot continue) and describe it."""
        self._queued.clear()
        reason = getattr(exc, "reason", None)
        error = TlsError(f"{what}: {_describe(exc)}", reason)
        self._error = error
        return error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise TlsError(str(self._error), self._error.reason)


def _describe(exc: ssl.SSLError) -> str:
    """OpenSSL's text without its ``[SSL: REASON]`` prefix and ``(_ssl.c:1006)`` suffix.

    >>> _describe(ssl.SSLError(1, "[SSL: HTTP_REQUEST] http request (_ssl.c:1006)"))
    'http request'
    """
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    raw = exc.strerror if isinstance(exc.strerror, str) else str(exc)
    match = _OPENSSL_TEXT.match(raw)
    text = match.group(1) if match and match.group(1) else raw
    return text + _HINTS.get(getattr(exc, "reason", None) or "", "")
