"""The tls: and upstream_tls: sections, and the SSLContexts built from them."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from sqlguard.config import ConfigError
from sqlguard.testing.certs import CertFiles, issue, make_ca
from sqlguard.tls.config import (
    ClientTlsSettings,
    TlsConfigError,
    UpstreamTlsSettings,
    client_tls_settings,
    server_context,
    upstream_context,
    upstream_tls_settings,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertFiles]:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory)
    other = issue(make_ca(directory / "other", "other CA"), directory / "other", "server")
    return {
        "ca": ca,
        "server": issue(ca, directory, "server"),
        "client": issue(ca, directory, "sqlguard", client=True),
        "other": other,
        "encrypted": issue(ca, directory / "enc", "server", key_password=b"secret"),
    }


# -- tls: ------------------------------------------------------------------------------------


def test_client_settings_resolve_relative_paths(pki: dict[str, CertFiles]) -> None:
    base = pki["server"].cert.parent
    settings = client_tls_settings({"cert": "server.crt", "key": "server.key"}, base)
    assert settings == ClientTlsSettings(base / "server.crt", base / "server.key")
    assert settings.required is False and settings.min_version == "TLSv1.2"
    strict = client_tls_settings(
        {"cert": str(pki["server"].cert), "key": "server.key", "required": True,
         "min_version": "tlsv1.3"},
        base,
    )  # fmt: skip
    assert strict.cert_file == pki["server"].cert
    assert strict.required is True and strict.min_version == "TLSv1.3"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "tls must be a mapping (cert, key, required, min_version)"),
        ({"key": "server.key"}, "tls.cert is missing: write the path of the PEM certificate"),
        ({"cert": "server.crt"}, "tls.key is missing: write the path of the PEM private key"),
        ({"cert": "server.crt", "key": "server.key", "ciphers": "x", "ca": "y"},
         "tls: unknown setting(s) ca, ciphers; known: cert, key, required, min_version"),
        ({"cert": "server.crt", "key": "server.key", "required": "yes"},
         "tls.required must be true or false, not 'yes'"),
        ({"cert": "server.crt", "key": "server.key", "min_version": "TLSv1.1"},
         "tls.min_version must be one of TLSv1.2, TLSv1.3, not 'TLSv1.1'"),
        ({"cert": "server.crt", "key": "server.key", "min_version": 1.3},
         "tls.min_version must be one of TLSv1.2, TLSv1.3, not 1.3"),
        ({"cert": 5, "key": "server.key"}, "tls.cert must be a file path, not 5"),
        ({"cert": "missing.crt", "key": "server.key"},
         "tls.cert: file {base}/missing.crt does not exist"),
        ({"cert": "server.crt", "key": "."}, "tls.key: {base} is not a file"),
    ],
)  # fmt: skip
def test_client_settings_errors(pki: dict[str, CertFiles], raw: object, message: str) -> None:
    base = pki["server"].cert.parent
    with pytest.raises(ConfigError) as err:
        client_tls_settings(raw, base)
    assert str(err.value).startswith(message.format(base=base)), str(err.value)


# -- upstream_tls: ---------------------------------------------------------------------------


def test_upstream_settings(pki: dict[str, CertFiles]) -> None:
    base = pki["ca"].cert.parent
    assert upstream_tls_settings({}, base) == UpstreamTlsSettings()
    assert upstream_tls_settings({"mode": "require"}, base).mode == "require"
    full = upstream_tls_settings(
        {"mode": "verify-full", "ca": pki["ca"].cert.name, "cert": "sqlguard.crt",
         "key": "sqlguard.key"},
        base,
    )  # fmt: skip
    assert full == UpstreamTlsSettings(
        "verify-full", pki["ca"].cert, pki["client"].cert, pki["client"].key
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("verify-full", "upstream_tls must be a mapping (mode, ca, cert, key)"),
        ({"mode": "verify"}, "upstream_tls.mode must be one of disable, require, verify-ca, "
                             "verify-full, not 'verify'"),
        ({"mode": "prefer"}, "upstream_tls.mode must be one of disable, require, verify-ca, "
                             "verify-full, not 'prefer' (prefer silently falls back to plaintext"),
        ({"mode": "verify-full"}, "upstream_tls.mode verify-full needs upstream_tls.ca (the CA "
                                  "certificate file that signed the server's certificate)"),
        ({"mode": "verify-ca"}, "upstream_tls.mode verify-ca needs upstream_tls.ca"),
        ({"mode": "require", "ca": "sqlguard-test-ca.crt"},
         "upstream_tls.ca is not used with upstream_tls.mode require, which never verifies"),
        ({"ca": "sqlguard-test-ca.crt"},
         "upstream_tls.ca, cert and key have no effect with upstream_tls.mode disable"),
        ({"mode": "require", "cert": "sqlguard.crt"},
         "upstream_tls.cert needs upstream_tls.key: the client certificate and its private key"),
        ({"mode": "require", "key": "sqlguard.key"}, "upstream_tls.key needs upstream_tls.cert"),
        ({"mode": "verify-ca", "ca": "nope.crt"},
         "upstream_tls.ca: file {base}/nope.crt does not exist"),
        ({"mode": "require", "sslmode": "require"},
         "upstream_tls: unknown setting(s) sslmode; known: mode, ca, cert, key"),
    ],
)  # fmt: skip
def test_upstream_settings_errors(pki: dict[str, CertFiles], raw: object, message: str) -> None:
    base = pki["ca"].cert.parent
    with pytest.raises(ConfigError) as err:
        upstream_tls_settings(raw, base)
    assert str(err.value).startswith(message.format(base=base)), str(err.value)


# -- server_context --------------------------------------------------------------------------


def test_server_context(pki: dict[str, CertFiles]) -> None:
    context = server_context(ClientTlsSettings(pki["server"].cert, pki["server"].key))
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE
    assert context.options & ssl.OP_NO_RENEGOTIATION
    strict = server_context(
        ClientTlsSettings(pki["server"].cert, pki["server"].key, min_version="TLSv1.3")
    )
    assert strict.minimum_version is ssl.TLSVersion.TLSv1_3
    assert strict is not context  # a reload builds a fresh context


def test_server_context_key_of_another_certificate(pki: dict[str, CertFiles]) -> None:
    settings = ClientTlsSettings(pki["server"].cert, pki["other"].key)
    with pytest.raises(TlsConfigError, match=r"tls.key: .* is not the private key of the cert"):
        server_context(settings)
    assert issubclass(TlsConfigError, ConfigError)


def test_server_context_encrypted_key_is_refused_without_prompting(
    pki: dict[str, CertFiles],
) -> None:
    settings = ClientTlsSettings(pki["encrypted"].cert, pki["encrypted"].key)
    with pytest.raises(TlsConfigError, match=r"tls.key: .* is encrypted; sqlguard cannot ask"):
        server_context(settings)


def test_server_context_files_that_are_not_pem(pki: dict[str, CertFiles], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsConfigError, match=r"tls.cert: .*junk.pem holds no PEM certificate"):
        server_context(ClientTlsSettings(junk, pki["server"].key))
    with pytest.raises(TlsConfigError, match=r"tls.key: .*junk.pem holds no PEM private key"):
        server_context(ClientTlsSettings(pki["server"].cert, junk))
    with pytest.raises(TlsConfigError, match=r"tls.key: .*server.crt holds no PEM private key"):
        server_context(ClientTlsSettings(pki["server"].cert, pki["server"].cert))


def test_server_context_unreadable_files(pki: dict[str, CertFiles], tmp_path: Path) -> None:
    missing = tmp_path / "gone.key"
    with pytest.raises(TlsConfigError, match=r"tls.key: cannot read .*gone.key: No such file"):
        server_context(ClientTlsSettings(pki["server"].cert, missing))
    if os.geteuid() == 0:
        return  # root reads files whatever their mode
    locked = tmp_path / "locked.key"
    locked.write_bytes(pki["server"].key.read_bytes())
    locked.chmod(0)
    with pytest.raises(TlsConfigError, match=r"tls.key: cannot read .*: Permission denied"):
        server_context(ClientTlsSettings(pki["server"].cert, locked))


def test_key_files_are_private(pki: dict[str, CertFiles]) -> None:
    """PostgreSQL refuses a server key readable by group or others."""
    for files in pki.values():
        assert files.key.stat().st_mode & 0o777 == 0o600


# -- upstream_context ------------------------------------------------------------------------


def test_upstream_context_per_mode(pki: dict[str, CertFiles]) -> None:
    ca = pki["ca"].cert
    assert upstream_context(UpstreamTlsSettings()) is None
    expected = {
        "require": (ssl.CERT_NONE, False),
        "verify-ca": (ssl.CERT_REQUIRED, False),
        "verify-full": (ssl.CERT_REQUIRED, True),
    }
    for mode, (verify_mode, check_hostname) in expected.items():
        context = upstream_context(UpstreamTlsSettings(mode, None if mode == "require" else ca))
        assert context is not None
        assert (context.verify_mode, context.check_hostname) == (verify_mode, check_hostname)
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
        # require must not pick up a CA store: it verifies nothing.
        assert len(context.get_ca_certs()) == (0 if mode == "require" else 1)


def test_upstream_context_client_certificate(pki: dict[str, CertFiles]) -> None:
    client = pki["client"]
    context = upstream_context(UpstreamTlsSettings("require", None, client.cert, client.key))
    assert context is not None
    with pytest.raises(TlsConfigError, match=r"upstream_tls.key: .* is not the private key"):
        upstream_context(UpstreamTlsSettings("require", None, client.cert, pki["other"].key))
    with pytest.raises(TlsConfigError, match=r"upstream_tls.cert and upstream_tls.key go"):
        upstream_context(UpstreamTlsSettings("require", None, client.cert, None))


def test_upstream_context_bad_ca(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("nothing\n")
    with pytest.raises(TlsConfigError, match=r"upstream_tls.ca: .*ca.pem holds no usable PEM"):
        upstream_context(UpstreamTlsSettings("verify-ca", junk))
    with pytest.raises(TlsConfigError, match=r"upstream_tls.mode verify-full needs upstream_tls"):
        upstream_context(UpstreamTlsSettings("verify-full"))
    with pytest.raises(TlsConfigError, match=r"upstream_tls.mode must be one of"):
        upstream_context(UpstreamTlsSettings("prefer"))
