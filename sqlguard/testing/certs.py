"""Throwaway certificate authorities and certificates for TLS tests.

Generated with ``cryptography`` rather than the ``openssl`` command line, so tests need no
binary beyond Python and behave the same everywhere. Keys are EC P-256: generating one takes
well under a millisecond, where RSA-2048 takes tens of milliseconds per certificate.

Key files are written with mode 0600. That matters beyond hygiene: PostgreSQL refuses to start
with an ``ssl_key_file`` that is group- or world-readable (0640 is allowed only when root owns
it) or that is not owned by the server's user, so a caller running PostgreSQL as another user
must ``chown`` the key it hands over.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     ca = make_ca(Path(tmp))
...     server = issue(ca, Path(tmp), "server")
...     (server.cert.name, server.key.name, oct(server.key.stat().st_mode & 0o777))
('server.crt', 'server.key', '0o600')
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1")


@dataclass(frozen=True, slots=True)
class CertFiles:
    """A PEM certificate and its PEM private key, as files."""

    cert: Path
    key: Path


def make_ca(directory: Path, name: str = "sqlguard test CA", *, days: int = 30) -> CertFiles:
    """A self-signed CA that may sign end-entity certificates (path length 0), written to
    ``directory/<name as a slug>.crt`` and ``.key``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name)
    public = key.public_key()
    builder = (
        _validity(x509.CertificateBuilder(), days)
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    cert = builder.sign(key, hashes.SHA256())
    return _write(directory, name, cert, key, None)


def issue(
    ca: CertFiles,
    directory: Path,
    name: str,
    hosts: Sequence[str] | None = None,
    *,
    client: bool = False,
    days: int = 30,
    key_password: bytes | None = None,
) -> CertFiles:
    """A certificate for ``name`` signed by ``ca``, written to ``directory/<slug>.crt/.key``.

    ``name`` is the subject's common name. A server certificate (the default) lists ``hosts``
    (default ``localhost`` and ``127.0.0.1``) as subjectAltName DNS or IP entries, which is
    what clients check, not the common name. A client certificate (``client=True``) is for
    PostgreSQL ``cert`` authentication, which matches the common name against the user name;
    it carries ``hosts`` only when they are given. ``days`` < 1 makes a certificate that has
    already expired. ``key_password`` writes the key encrypted, to test that it is refused.
    """
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{ca.key}: expected an EC key made by make_ca")
    if hosts is None:
        hosts = () if client else DEFAULT_HOSTS
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        _validity(x509.CertificateBuilder(), days)
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in hosts]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return _write(directory, name, cert, key, key_password)


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signatures always (ECDSA keys sign the handshake); certificates only for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    """Valid from an hour ago (clock skew between test processes is harmless) for ``days``."""
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=days)
    not_before = min(now - datetime.timedelta(hours=1), not_after - datetime.timedelta(hours=1))
    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(
    directory: Path,
    name: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    key_password: bytes | None,
) -> CertFiles:
    directory.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "cert"
    cert_path = directory / f"{slug}.crt"
    key_path = directory / f"{slug}.key"
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(key_password)
        if key_password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # Create the key 0600 from the start (no window where it is readable), and fchmod in case
    # the file already existed with a wider mode.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertFiles(cert=cert_path, key=key_path)
