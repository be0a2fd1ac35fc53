"""tls-server-end-point binding data, checked against hashlib over the stdlib's DER."""

from __future__ import annotations

import datetime
import hashlib
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from sqlguard.tls.binding import end_point_binding, leaf_certificate


def self_signed(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, algorithm):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "binding test")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, algorithm)
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [(hashes.SHA256(), "sha256"), (hashes.SHA384(), "sha384"), (hashes.SHA512(), "sha512")],
)
def test_the_signatures_hash_function_over_the_der_certificate(algorithm, expected: str) -> None:
    pem = self_signed(ec.generate_private_key(ec.SECP256R1()), algorithm).public_bytes(Encoding.PEM)
    der = ssl.PEM_cert_to_DER_cert(pem.decode())
    assert end_point_binding(der) == hashlib.new(expected, der).digest()


# `openssl req -x509 -sha1 ...`: cryptography no longer signs with SHA-1, old CAs did.
ECDSA_WITH_SHA1 = """-----BEGIN CERTIFICATE-----
MIIBbDCCARKgAwIBAgIUZmKZnEeVUG63QHgoFwDmr6opYpowCQYHKoZIzj0EATAM
MQowCAYDVQQDDAF4MB4XDTI2MTEyOTExNTQyNloXDTI2MTEzMDExNTQyNlowDDEK
MAgGA1UEAwwBeDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAC8vDhhQd7AUS+x
w1WjpbYIqeaOSq2kzQvC4r5HkU9cnpxKBR+Fl29Sl0RKIu7WFWMTJPblSlLXF5Jh
5Ah66vujUzBRMB0GA1UdDgQWBBSdAAeFbxhGEVB5OdeqywMo9hCV+DAfBgNVHSME
GDAWgBSdAAeFbxhGEVB5OdeqywMo9hCV+DAPBgNVHRMBAf8EBTADAQH/MAkGByqG
SM49BAEDSQAwRgIhAPWQPZ5FZcem/TIF9VakEEHsw1M5671zYAgMzDhp/ErZAiEA
zetQQvDdF0ex7+oUddBZsy85Qk+jvG4FBRlV2vTON38=
-----END CERTIFICATE-----
"""


def test_sha1_signatures_bind_with_sha256() -> None:
    """RFC 5929 section 4.1: MD5 and SHA-1 are replaced by SHA-256."""
    der = ssl.PEM_cert_to_DER_cert(ECDSA_WITH_SHA1)
    assert x509.load_der_x509_certificate(der).signature_hash_algorithm.name == "sha1"
    assert end_point_binding(der) == hashlib.sha256(der).digest()


def test_ed25519_certificates_have_no_binding() -> None:
    cert = self_signed(ed25519.Ed25519PrivateKey.generate(), None)
    assert end_point_binding(cert.public_bytes(Encoding.DER)) is None


def test_the_leaf_is_the_first_certificate_of_a_chain() -> None:
    leaf, intermediate = (
        self_signed(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()) for _ in range(2)
    )
    chain = leaf.public_bytes(Encoding.PEM) + intermediate.public_bytes(Encoding.PEM)
    assert leaf_certificate(chain) == leaf.public_bytes(Encoding.DER)
    with pytest.raises(ValueError):
        leaf_certificate(b"not a certificate")
