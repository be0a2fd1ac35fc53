"""The ``tls:`` and ``upstream_tls:`` sections of the config, and the SSLContexts built from them.

    tls:                      # TLS between clients and the sidecar
      cert: server.crt        # PEM; relative paths are relative to the config file's directory
      key: server.key         # PEM, not encrypted
      required: false         # true: clients that do not use TLS are refused
      min_version: TLSv1.2    # or TLSv1.3

    upstream_tls:             # TLS between the sidecar and PostgreSQL, like libpq's sslmode
      mode: verify-full       # disable | require | verify-ca | verify-full
      ca: root.crt            # the CA that signed the server's certificate (verify-*)
      cert: sqlguard.crt      # optional client certificate, with its key
      key: sqlguard.key

Parsing checks that the files exist; building a context (``server_tls``, ``server_context``,
``upstream_context``) reads them. The builders have no side effects and are called again on
every reload (SIGHUP), so a renewed certificate is picked up by new connections while a bad
one is reported as a TlsConfigError and the running context stays in use.

Paths are joined to the config file's directory but symlinks are not resolved: Kubernetes
secret volumes and cert-manager rotate certificates by swapping a symlink, and a resolved path
would pin the old files forever.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from sqlguard.config import ConfigError
from sqlguard.tls.binding import end_point_binding, leaf_certificate

log = logging.getLogger("sqlguard.tls")

# PostgreSQL 17's direct TLS (sslnegotiation=direct) requires this ALPN protocol; libpq 17
# offers it on every TLS connection.
ALPN_PROTOCOLS: Final = ("postgresql",)
UPSTREAM_MODES: Final = ("disable", "require", "verify-ca", "verify-full")
# TLS 1.0 and 1.1 are deprecated (RFC 8996) and disabled by OpenSSL 3's default security level.
_VERSIONS: Final = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_CLIENT_KEYS: Final = ("cert", "key", "required", "min_version")
_UPSTREAM_KEYS: Final = ("mode", "ca", "cert", "key")


class TlsConfigError(ConfigError):
    """A certificate, key or CA file cannot be used; the message names the setting and file."""


@dataclass(frozen=True, slots=True)
class ClientTlsSettings:
    """The sidecar's own certificate, presented to clients (the ``tls:`` section).

    ``required`` only records the policy: refusing plaintext clients is the session's job.
    """

    cert_file: Path
    key_file: Path
    required: bool = False
    min_version: str = "TLSv1.2"


@dataclass(frozen=True, slots=True)
class UpstreamTlsSettings:
    """How the sidecar talks TLS to PostgreSQL (the ``upstream_tls:`` section).

    ``mode`` follows libpq's sslmode, with one deliberate difference: ``require`` never
    verifies the server's certificate. libpq's ``require`` quietly behaves like ``verify-ca``
    when a root certificate file happens to exist, so the same setting means different things
    on different machines; here verification is only ever what the mode says, and giving
    ``ca`` with ``require`` is a config error that points to ``verify-ca``. ``allow`` and
    ``prefer`` are not offered: they fall back to plaintext without telling anyone.
    """

    mode: str = "disable"  # disable | require | verify-ca | verify-full
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate, optional; needs key_file
    key_file: Path | None = None


# -- parsing --------------------------------------------------------------------------------


def client_tls_settings(raw: object, base_dir: Path) -> ClientTlsSettings:
    """Validate the ``tls:`` mapping; every mistake is a ConfigError naming the setting.

    >>> client_tls_settings({"cert": "/etc/ssl/nothing.crt"}, Path("/etc"))
    Traceback (most recent call last):
    ...
    sqlguard.config.ConfigError: tls.key is missing: write the path of the PEM private key
    """
    mapping = _mapping(raw, "tls", _CLIENT_KEYS, "cert: server.crt, key: server.key")
    for key in ("cert", "key"):
        if mapping.get(key) is None:
            what = "PEM certificate (chain) clients get" if key == "cert" else "PEM private key"
            raise ConfigError(f"tls.{key} is missing: write the path of the {what}")
    required = mapping.get("required", False)
    if not isinstance(required, bool):
        raise ConfigError(f"tls.required must be true or false, not {required!r}")
    min_version = mapping.get("min_version", "TLSv1.2")
    canonical = None
    if isinstance(min_version, str):  # accept any case: tlsv1.3 is not worth a failed start
        canonical = {name.lower(): name for name in _VERSIONS}.get(min_version.lower())
    if canonical is None:
        raise ConfigError(
            f"tls.min_version must be one of {', '.join(_VERSIONS)}, not {min_version!r}"
        )
    return ClientTlsSettings(
        cert_file=_file(mapping["cert"], "tls.cert", base_dir),
        key_file=_file(mapping["key"], "tls.key", base_dir),
        required=required,
        min_version=canonical,
    )


def upstream_tls_settings(raw: object, base_dir: Path) -> UpstreamTlsSettings:
    """Validate the ``upstream_tls:`` mapping; every mistake is a ConfigError naming the
    setting.

    >>> upstream_tls_settings({"mode": "require"}, Path("/etc"))
    UpstreamTlsSettings(mode='require', ca_file=None, cert_file=None, key_file=None)
    >>> upstream_tls_settings({"mode": "verify"}, Path("/etc"))
    Traceback (most recent call last):
    ...
    sqlguard.config.ConfigError: upstream_tls.mode must be one of disable, require, \
verify-ca, verify-full, not 'verify'
    """
    mapping = _mapping(raw, "upstream_tls", _UPSTREAM_KEYS, "mode: verify-full, ca: root.crt")
    mode = mapping.get("mode", "disable")
    if not isinstance(mode, str) or mode not in UPSTREAM_MODES:
        hint = ""
        if mode in ("allow", "prefer"):
            hint = f" ({mode} silently falls back to plaintext; write require or verify-full)"
        raise ConfigError(
            f"upstream_tls.mode must be one of {', '.join(UPSTREAM_MODES)}, not {mode!r}{hint}"
        )
    ca, cert, key = (mapping.get(name) for name in ("ca", "cert", "key"))
    if mode == "disable" and (ca is not None or cert is not None or key is not None):
        raise ConfigError(
            "upstream_tls.ca, cert and key have no effect with upstream_tls.mode disable: "
            "write mode: require, verify-ca or verify-full, or remove them"
        )
    if mode.startswith("verify-") and ca is None:
        raise ConfigError(
            f"upstream_tls.mode {mode} needs upstream_tls.ca "
            "(the CA certificate file that signed the server's certificate)"
        )
    if mode == "require" and ca is not None:
        raise ConfigError(
            "upstream_tls.ca is not used with upstream_tls.mode require, which never verifies "
            "the server's certificate: write mode: verify-ca (or verify-full) to verify it, "
            "or remove ca"
        )
    if (cert is None) != (key is None):
        given, missing = ("cert", "key") if key is None else ("key", "cert")
        raise ConfigError(
            f"upstream_tls.{given} needs upstream_tls.{missing}: the client certificate and "
            "its private key go together"
        )
    return UpstreamTlsSettings(
        mode=mode,
        ca_file=None if ca is None else _file(ca, "upstream_tls.ca", base_dir),
        cert_file=None if cert is None else _file(cert, "upstream_tls.cert", base_dir),
        key_file=None if key is None else _file(key, "upstream_tls.key", base_dir),
    )


def _mapping(raw: object, section: str, known: tuple[str, ...], example: str) -> dict[str, object]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{section} must be a mapping ({', '.join(known)}), e.g. {{{example}}}")
    unknown = sorted(str(key) for key in raw if key not in known)
    if unknown:
        raise ConfigError(
            f"{section}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return raw


def _file(value: object, setting: str, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{setting} must be a file path, not {value!r}")
    path = base_dir / Path(value).expanduser()
    if not path.exists():
        raise ConfigError(f"{setting}: file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"{setting}: {path} is not a file")
    return path


# -- contexts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerTls:
    """What client connections are served with: the context, and its certificate's SCRAM
    channel binding data (``tls-server-end-point``; None when the certificate has none)."""

    context: ssl.SSLContext
    binding: bytes | None


def server_tls(settings: ClientTlsSettings) -> ServerTls:
    """``server_context`` and the binding data of the certificate it loaded. The file is read
    before and after the context loads it: a certificate rotated in between would leave the
    binding of another certificate, and every -PLUS login would fail, so that is an error
    (a reload keeps the current files; the next one picks up the new pair)."""
    before = _read(settings.cert_file, "tls.cert")
    context = server_context(settings)
    if _read(settings.cert_file, "tls.cert") != before:
        raise TlsConfigError(
            f"tls.cert: {settings.cert_file} changed while it was being loaded; reload again"
        )
    try:
        binding = end_point_binding(leaf_certificate(before))
    except ValueError as exc:  # OpenSSL took it, so this is rare: no binding, not no TLS
        log.warning("tls.cert: no SCRAM channel binding for %s: %s", settings.cert_file, exc)
        binding = None
    return ServerTls(context, binding)


def _read(path: Path, setting: str) -> bytes:
    """The file's bytes; an unreadable file is a TlsConfigError that names the setting."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None


def server_context(settings: ClientTlsSettings) -> ssl.SSLContext:
    """The context client connections are served with; raises TlsConfigError when the
    certificate or key cannot be used (unreadable, not PEM, encrypted, not matching)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[settings.min_version]
    # Renegotiation (TLS 1.2) is a CPU-exhaustion vector and PostgreSQL refuses it too.
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    # libpq never resumes sessions, so TLS 1.3 session tickets would be encrypted and sent on
    # every connection for nothing (PostgreSQL turns them off as well).
    context.num_tickets = 0
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    _load_chain(context, settings.cert_file, settings.key_file, "tls.cert", "tls.key")
    return context


def upstream_context(settings: UpstreamTlsSettings) -> ssl.SSLContext | None:
    """The client context for connections to PostgreSQL, None for mode disable.

    ``require`` encrypts without verifying anything; ``verify-ca`` checks the chain against
    ``ca_file``; ``verify-full`` also checks the host name (pass ``server_hostname`` to the
    channel). ALPN ``postgresql`` is offered always: PostgreSQL 17 needs it for direct TLS and
    older servers ignore it.
    """
    if settings.mode == "disable":
        return None
    if settings.mode not in UPSTREAM_MODES:
        modes = ", ".join(UPSTREAM_MODES)
        raise TlsConfigError(f"upstream_tls.mode must be one of {modes}, not {settings.mode!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    if settings.mode == "require":
        context.check_hostname = False  # must be switched off before verify_mode
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = settings.mode == "verify-full"
        context.verify_mode = ssl.CERT_REQUIRED
        if settings.ca_file is None:
            raise TlsConfigError(
                f"upstream_tls.mode {settings.mode} needs upstream_tls.ca "
                "(the CA certificate file that signed the server's certificate)"
            )
        _load_ca(context, settings.ca_file)
    if settings.cert_file is not None or settings.key_file is not None:
        if settings.cert_file is None or settings.key_file is None:
            raise TlsConfigError(
                "upstream_tls.cert and upstream_tls.key go together: give both or neither"
            )
        _load_chain(
            context, settings.cert_file, settings.key_file, "upstream_tls.cert", "upstream_tls.key"
        )
    return context


class _EncryptedKeyError(Exception):
    """Raised from the password callback: the key file is encrypted."""


def _no_password() -> NoReturn:
    """Passed as load_cert_chain's password callback. Without one, OpenSSL prompts for the
    passphrase on the terminal, which would hang a sidecar started from a shell."""
    raise _EncryptedKeyError


def _load_chain(
    context: ssl.SSLContext, cert: Path, key: Path, cert_setting: str, key_setting: str
) -> None:
    _read(cert, cert_setting)
    _read(key, key_setting)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except _EncryptedKeyError:
        raise TlsConfigError(
            f"{key_setting}: {key} is encrypted; sqlguard cannot ask for a passphrase: "
            f"write the key unencrypted (e.g. openssl pkey -in {key} -out plain.key) "
            "and protect it with file permissions (chmod 600)"
        ) from None
    except ssl.SSLError as exc:
        if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
            raise TlsConfigError(
                f"{key_setting}: {key} is not the private key of the certificate in "
                f"{cert_setting} ({cert}); was one of them replaced without the other?"
            ) from None
        _diagnose(cert, key, cert_setting, key_setting, exc)
    except OSError as exc:  # raced with a rotation between the check and the load
        raise TlsConfigError(f"{cert_setting}/{key_setting}: cannot read: {exc}") from None


def _load_ca(context: ssl.SSLContext, ca: Path) -> None:
    _read(ca, "upstream_tls.ca")
    try:
        context.load_verify_locations(cafile=ca)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(
            f"upstream_tls.ca: {ca} holds no usable PEM certificate "
            f"(-----BEGIN CERTIFICATE-----): {exc}"
        ) from None


def _diagnose(
    cert: Path, key: Path, cert_setting: str, key_setting: str, exc: ssl.SSLError
) -> NoReturn:
    """OpenSSL says only "PEM lib" for most bad files; find out which file is wrong."""
    try:
        x509.load_pem_x509_certificates(cert.read_bytes())
    except (ValueError, OSError):
        raise TlsConfigError(
            f"{cert_setting}: {cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    try:
        serialization.load_pem_private_key(key.read_bytes(), password=None)
    except TypeError:  # cryptography's way of saying "encrypted"
        raise TlsConfigError(f"{key_setting}: {key} is encrypted; write it unencrypted") from None
    except (ValueError, OSError, UnsupportedAlgorithm):
        raise TlsConfigError(
            f"{key_setting}: {key} holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
        ) from None
    raise TlsConfigError(f"{cert_setting}/{key_setting}: OpenSSL refused them: {exc}") from None
