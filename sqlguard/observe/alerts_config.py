"""The ``alerts:`` section of the sidecar's config, validated into ``AlertSettings``.

    alerts:
      url: https://hooks.slack.com/services/T000/B000/XXXX   # http or https; a secret
      format: slack              # or json (the default): {"event": ..., "rule": ..., ...}
      rate_per_rule: 5           # at most this many alerts per rule ...
      window: 60                 # ... per this many seconds; the rest are counted, not sent
      failed_login_burst: 5      # failed logins of one user or address within the window
      queue_size: 1000           # alerts waiting for the webhook before new ones are dropped
      timeout: 5                 # seconds for one POST, connect to response
      retries: 3                 # after the first attempt, with backoff 0.5 s, 1 s, 2 s

Webhook URLs often carry their credential in the path (Slack's do), so the URL is kept out
of ``repr`` and of log lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

Format = Literal["json", "slack"]
_KEYS = frozenset(
    {"url", "format", "rate_per_rule", "window", "failed_login_burst", "queue_size",
     "timeout", "retries"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Where alerts go, in which shape, and how hard the sidecar tries to deliver them."""

    url: str = field(repr=False)
    format: Format = "json"
    rate_per_rule: int = 5
    window: float = 60.0
    failed_login_burst: int = 5
    queue_size: int = 1000
    timeout: float = 5.0
    retries: int = 3


def alert_settings(raw: Any) -> AlertSettings:
    """Validate the ``alerts:`` mapping; every mistake is a ConfigError naming the field."""
    from sqlguard.config import ConfigError  # lazily, as audit_config does

    if not isinstance(raw, dict):
        raise ConfigError("alerts must be a mapping (url, format, rate_per_rule, ...)")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"alerts: unknown setting(s) {unknown}; known: {sorted(_KEYS)}")
    return AlertSettings(
        url=_url(raw.get("url")),
        format=_format(raw.get("format", "json")),
        rate_per_rule=_count(raw.get("rate_per_rule", 5), "alerts.rate_per_rule"),
        window=_seconds(raw.get("window", 60), "alerts.window"),
        failed_login_burst=_count(raw.get("failed_login_burst", 5), "alerts.failed_login_burst"),
        queue_size=_count(raw.get("queue_size", 1000), "alerts.queue_size"),
        timeout=_seconds(raw.get("timeout", 5), "alerts.timeout"),
        retries=_count(raw.get("retries", 3), "alerts.retries", minimum=0),
    )


def _url(value: Any) -> str:
    from sqlguard.config import ConfigError

    if not isinstance(value, str) or not value:
        raise ConfigError("alerts.url: give the webhook, e.g. https://hooks.example/alerts")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise ConfigError("alerts.url: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The value itself may be a secret: name the problem, not the URL.
        raise ConfigError("alerts.url: must be an http:// or https:// URL with a host")
    del port
    return value


def _format(value: Any) -> Format:
    from sqlguard.config import ConfigError

    if value not in ("json", "slack"):
        raise ConfigError(f"alerts.format: {value!r}; write json or slack")
    return "json" if value == "json" else "slack"


def _count(value: Any, field_name: str, minimum: int = 1) -> int:
    from sqlguard.config import ConfigError

    if type(value) is not int or value < minimum:
        raise ConfigError(f"{field_name}: {value!r} must be a whole number >= {minimum}")
    return value


def _seconds(value: Any, field_name: str) -> float:
    from sqlguard.config import ConfigError

    if type(value) not in (int, float) or not 0 < value < 86_400:
        raise ConfigError(f"{field_name}: {value!r} must be a number of seconds above 0")
    return float(value)
