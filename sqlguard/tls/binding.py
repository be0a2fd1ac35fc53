"""SCRAM channel binding data of type ``tls-server-end-point`` (RFC 5929, section 4.1).

It is the hash of the server's certificate, with the hash function of the certificate's
signature (SHA-256 where that is MD5 or SHA-1). A client that binds its SCRAM proof to it
proves it saw *this* certificate, so a login relayed through a man in the middle with
another certificate fails. PostgreSQL and libpq, pgjdbc and the other drivers that bind
support this type only.
"""

from __future__ import annotations

import functools
import ssl

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding


def peer_binding(connection: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The binding data of the certificate the peer of a TLS connection presented (the
    upstream's, for the sidecar's own logins), or None without TLS or certificate."""
    der = connection.getpeercert(binary_form=True) if connection is not None else None
    return end_point_binding(der) if der else None


@functools.lru_cache(maxsize=16)  # one upstream certificate, met on every connection
def end_point_binding(certificate_der: bytes) -> bytes | None:
    """The binding data of a DER certificate, or None when RFC 5929 defines none for its
    signature (Ed25519 and Ed448 sign without a separate hash function)."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is None:
        return None
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate_der)
    return digest.finalize()


def leaf_certificate(pem_chain: bytes) -> bytes:
    """The first certificate of a PEM file (the server's own; intermediates follow it), DER.
    Raises ValueError when the file holds none."""
    return x509.load_pem_x509_certificates(pem_chain)[0].public_bytes(Encoding.DER)
