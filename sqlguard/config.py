"""One validated, immutable Settings object: YAML config file, overridden by CLI flags.

Every mistake is reported as a ConfigError that names the setting and what to write
instead, because a sidecar that starts with a half-understood config is worse than one
that does not start.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

if TYPE_CHECKING:
    from sqlguard.approvals.config import ApprovalSettings
    from sqlguard.identities.config import IdentitySettings
    from sqlguard.observe.alerts_config import AlertSettings
    from sqlguard.observe.audit_config import AuditSettings
    from sqlguard.tls.config import ClientTlsSettings, UpstreamTlsSettings

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the real PostgreSQL server is. `socket_dir` is set for a Unix-socket upstream."""

    host: str
    port: int
    user: str = ""
    password: str = field(default="", repr=False)
    dbname: str = ""
    socket_dir: str = ""

    @property
    def address(self) -> str:
        return f"{self.socket_dir or self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 6432
    upstream: Upstream = field(default_factory=lambda: Upstream("127.0.0.1", 5432))
    rules_dir: Path = DEFAULT_RULES_DIR
    # Largest client message sqlguard reads whole (Query, Parse, Bind); PostgreSQL allows 1 GB.
    max_message_bytes: int = 64 * 1024 * 1024
    connect_timeout: float = 10.0
    # Seconds between checks of the rules directory for changed files (0 turns it off).
    rules_poll_interval: float = 1.0
    log_level: str = "INFO"
    log_format: str = "json"  # or "console", for people reading it in a terminal
    # Connection limits (0: none) and login protection; FATAL 53300 / 28000 when hit.
    max_connections: int = 1000
    max_connections_per_user: int = 0
    login_timeout: float = 30.0  # seconds from connect to the end of authentication
    lockout_failures: int = 5  # failed logins of one user or address within lockout_window
    lockout_window: float = 60.0
    lockout_seconds: float = 60.0  # how long such a user or address is refused
    # HOST:PORT of the admin HTTP endpoint (/metrics, /healthz, /readyz, /status, /reload);
    # empty: off. Bound anywhere but loopback, it requires admin_token.
    admin_listen: str = ""
    admin_token: str = field(default="", repr=False)
    # Approvers, token lifetimes, ledger and request store (the `approvals:` section).
    approvals: ApprovalSettings | None = None
    # The tamper-evident audit log (the `audit:` section): path, HMAC key, policy.
    audit: AuditSettings | None = None
    # The webhook for alerts (the `alerts:` section): url, format, rate limits.
    alerts: AlertSettings | None = None
    # Managed identities (the `identities:` section): the sidecar authenticates each person
    # and logs in upstream as their mapped role. None: passthrough authentication.
    identities: IdentitySettings | None = None
    # TLS for clients (the `tls:` section: cert, key, required, min_version) and to the
    # upstream (the `upstream_tls:` section: mode, ca, cert, key); None: plaintext.
    tls: ClientTlsSettings | None = None
    upstream_tls: UpstreamTlsSettings | None = None


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:6432`).

    >>> parse_listen("[::1]:6432")
    ('::1', 6432)
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"listen address {value!r} must look like HOST:PORT, e.g. 127.0.0.1:6432")
    return host.strip("[]") or "127.0.0.1", _port(int(port), "listen")


def parse_upstream(url: str) -> Upstream:
    """`postgresql://USER[:PASSWORD]@HOST:PORT/DBNAME`, or `?host=/socket/dir` for a Unix socket.

    >>> parse_upstream("postgresql://app:pw@db:5433/shop")
    Upstream(host='db', port=5433, user='app', dbname='shop', socket_dir='')
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"upstream {url!r} must be a URL like postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        )
    query = parse_qs(parts.query)
    socket_dir = query.get("host", [""])[0]
    try:
        port = parts.port or int(query.get("port", ["5432"])[0])
    except ValueError as exc:
        raise ConfigError(f"upstream {url!r} has an invalid port") from exc
    return Upstream(
        host=parts.hostname or "127.0.0.1",
        port=_port(port, "upstream"),
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        dbname=unquote(parts.path.lstrip("/")),
        socket_dir=socket_dir if socket_dir.startswith("/") else "",
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional YAML file, then flags (`None` means "not given")."""
    values = _read_file(config_file) if config_file else {}
    if "alerts" in values:
        from sqlguard.observe.alerts_config import alert_settings

        values["alerts"] = alert_settings(values["alerts"])
    if "tls" in values or "upstream_tls" in values:
        from sqlguard.tls.config import client_tls_settings, upstream_tls_settings

        assert config_file is not None
        if "tls" in values:
            values["tls"] = client_tls_settings(values["tls"], config_file.parent)
        if "upstream_tls" in values:
            values["upstream_tls"] = upstream_tls_settings(
                values["upstream_tls"], config_file.parent
            )
    if "identities" in values:
        from sqlguard.identities.config import identity_settings

        assert config_file is not None
        values["identities"] = identity_settings(values["identities"], config_file.parent)
    if "audit" in values:
        from sqlguard.observe.audit_config import audit_settings

        assert config_file is not None
        values["audit"] = audit_settings(values["audit"], config_file.parent)
    if "approvals" in values:
        # Imported here: the approvals settings report errors as this module's ConfigError.
        from sqlguard.approvals.config import approval_settings

        assert config_file is not None
        values["approvals"] = approval_settings(values["approvals"] or {}, config_file.parent)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "admin_token" not in values and os.environ.get("SQLGUARD_ADMIN_TOKEN"):
        values["admin_token"] = os.environ["SQLGUARD_ADMIN_TOKEN"]
    known = {f.name for f in dataclasses.fields(Settings)} | {"listen"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return _build(values)


def _build(values: dict[str, Any]) -> Settings:
    kwargs: dict[str, Any] = {}
    if "listen" in values:
        kwargs["listen_host"], kwargs["listen_port"] = parse_listen(str(values.pop("listen")))
    if "upstream" in values:
        upstream = values.pop("upstream")
        kwargs["upstream"] = (
            upstream if isinstance(upstream, Upstream) else parse_upstream(str(upstream))
        )
    if "rules_dir" in values:
        kwargs["rules_dir"] = Path(values.pop("rules_dir"))
    for name in ("listen_port", "max_message_bytes"):
        if name in values:
            kwargs[name] = _positive_int(values.pop(name), name)
    if values.get("log_format", "json") not in ("json", "console"):
        raise ConfigError(f"log_format must be json or console, not {values['log_format']!r}")
    for name in ("max_connections", "max_connections_per_user"):
        if name in values:
            kwargs[name] = _count(values.pop(name), name)
    if "lockout_failures" in values:
        kwargs["lockout_failures"] = _positive_int(
            values.pop("lockout_failures"), "lockout_failures"
        )
    for name in (
        "connect_timeout",
        "rules_poll_interval",
        "login_timeout",
        "lockout_window",
        "lockout_seconds",
    ):
        if name in values:
            kwargs[name] = _number(values.pop(name), name)
    kwargs.update(values)
    return Settings(**kwargs)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of setting: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from exc
    if number <= 0:
        raise ConfigError(f"{name} must be positive, not {number}")
    return number


def _count(value: Any, name: str) -> int:
    """A whole number, 0 meaning "no limit"."""
    return 0 if value in (0, "0") else _positive_int(value, name)


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from exc
    if number < 0:
        raise ConfigError(f"{name} must not be negative, not {number}")
    return number


def _port(port: int, what: str) -> int:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what} port {port} is out of range 0-65535")
    return port
