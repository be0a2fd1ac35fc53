"""The ``approvals:`` section of the sidecar's config, validated into ``ApprovalSettings``.

    approvals:
      max_ttl: 1h            # longest validity a token may have (the sidecar enforces it)
      default_ttl: 15m       # what sqlguard approve uses without --ttl
      clock_skew: 30s        # tolerated difference between approvers' clocks and the sidecar's
      ledger: /var/lib/sqlguard/ledger.sqlite3     # or postgresql://... shared by sidecars
      requests: /var/lib/sqlguard/requests.sqlite3
      approvers:
        - {name: dana, public_key: keys/dana.pub, groups: [contractors]}
        - {name: eve, public_key: keys/eve.pub, groups: ["*"], revoked: true}

Relative paths are read from the config file's directory; every mistake is a ConfigError
naming the field. The sidecar never needs a private key: only approvers' public keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from sqlguard.approvals.keys import KeyFileError, load_public_key
from sqlguard.approvals.verify import Approver
from sqlguard.config import ConfigError

BUILTIN_MAX_TTL = 3600
DEFAULT_TTL = 900
DEFAULT_CLOCK_SKEW = 30
DEFAULT_LEDGER = "approvals-ledger.sqlite3"
DEFAULT_REQUESTS = "approval-requests.sqlite3"
MAX_CLOCK_SKEW = 600
"""Must stay below ``ledger.RETAIN_AFTER_EXPIRY``: the ledger keeps ids that long."""
_KEYS = frozenset({"max_ttl", "default_ttl", "clock_skew", "ledger", "requests", "approvers"})
_APPROVER_KEYS = frozenset({"name", "public_key", "groups", "revoked"})
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = (86400, 3600, 60, 1)


@dataclass(frozen=True, slots=True)
class ApprovalSettings:
    """Who may approve, for how long tokens live, and where used ids and requests are kept.

    ``ledger`` is a ``postgresql://`` URL or a SQLite file path; times are in seconds.
    """

    approvers: Mapping[str, Approver]
    max_ttl: int = BUILTIN_MAX_TTL
    default_ttl: int = DEFAULT_TTL
    clock_skew: int = DEFAULT_CLOCK_SKEW
    ledger: str = DEFAULT_LEDGER
    requests: str = DEFAULT_REQUESTS


def parse_duration(value: Any, field: str) -> int:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"1h30m"`` or ``"2d"``.

    >>> parse_duration("1h30m", "approvals.max_ttl")
    5400
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value).strip()
    match = _DURATION.fullmatch(text)
    if text.isdigit():
        return int(text)
    if not text or match is None:
        raise ConfigError(f"{field}: {value!r} is not a duration; write e.g. 90s, 15m, 1h or 1h30m")
    return sum(int(amount or 0) * unit for amount, unit in zip(match.groups(), _UNITS, strict=True))


def load_approval_settings(config_file: Path) -> ApprovalSettings:
    """The ``approvals`` section of a sidecar config file (defaults if it has none)."""
    try:
        data = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {config_file} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {config_file} must be a mapping of setting: value")
    return approval_settings(data.get("approvals"), config_file.parent)


def approval_settings(
    raw: Mapping[str, Any] | None, base_dir: Path, state_dir: Path | None = None
) -> ApprovalSettings:
    """Settings from the ``approvals`` mapping (None: all defaults); relative paths are taken
    from ``base_dir``, the default ledger and request files go to ``state_dir`` (default:
    ``base_dir``)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("approvals must be a mapping (max_ttl, clock_skew, approvers, ...)")
    values = {str(key).replace("-", "_"): value for key, value in raw.items()}
    _no_unknown(values, _KEYS, "approvals")
    state = state_dir or base_dir
    max_ttl = _positive(values, "max_ttl", BUILTIN_MAX_TTL)
    return ApprovalSettings(
        approvers=_approvers(values.get("approvers") or [], base_dir),
        max_ttl=max_ttl,
        default_ttl=_default_ttl(values, max_ttl),
        clock_skew=_clock_skew(values),
        ledger=_ledger(values, base_dir, state),
        requests=str(base_dir / values.get("requests", state / DEFAULT_REQUESTS)),
    )


def _positive(values: Mapping[str, Any], key: str, default: int) -> int:
    seconds = parse_duration(values.get(key, default), f"approvals.{key}")
    if seconds <= 0:
        raise ConfigError(f"approvals.{key} must be longer than 0 seconds")
    return seconds


def _default_ttl(values: Mapping[str, Any], max_ttl: int) -> int:
    default_ttl = _positive(values, "default_ttl", min(DEFAULT_TTL, max_ttl))
    if default_ttl > max_ttl:
        raise ConfigError(
            f"approvals.default_ttl ({default_ttl} s) is longer than approvals.max_ttl "
            f"({max_ttl} s); shorten it or raise max_ttl"
        )
    return default_ttl


def _clock_skew(values: Mapping[str, Any]) -> int:
    skew = parse_duration(values.get("clock_skew", DEFAULT_CLOCK_SKEW), "approvals.clock_skew")
    if skew > MAX_CLOCK_SKEW:
        raise ConfigError(
            f"approvals.clock_skew must be at most {MAX_CLOCK_SKEW // 60} minutes; "
            "synchronise the clocks (NTP) instead"
        )
    return skew


def _ledger(values: Mapping[str, Any], base_dir: Path, state: Path) -> str:
    ledger = str(values.get("ledger", state / DEFAULT_LEDGER))
    if ledger.startswith(("postgresql://", "postgres://")):
        return ledger
    return str(base_dir / ledger)


def _approvers(raw: Any, base_dir: Path) -> Mapping[str, Approver]:
    if not isinstance(raw, list):
        raise ConfigError("approvals.approvers must be a list of {name, public_key, groups}")
    approvers: dict[str, Approver] = {}
    for number, entry in enumerate(raw):
        approver = _approver(entry, f"approvals.approvers[{number}]", base_dir)
        if approver.name in approvers:
            raise ConfigError(f"approvals.approvers[{number}]: {approver.name!r} is listed twice")
        approvers[approver.name] = approver
    return MappingProxyType(approvers)


def _approver(entry: Any, where: str, base_dir: Path) -> Approver:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping with name, public_key and groups")
    _no_unknown(entry, _APPROVER_KEYS, where)
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name must be the approver's name (their PostgreSQL user)")
    where = f"{where} ({name})"
    if not isinstance(entry.get("public_key"), str):
        raise ConfigError(f"{where}.public_key must be the path of the approver's NAME.pub file")
    try:
        key = load_public_key(base_dir / entry["public_key"])
    except KeyFileError as exc:
        raise ConfigError(f"{where}.public_key: {exc}") from None
    revoked = entry.get("revoked", False)
    if not isinstance(revoked, bool):
        raise ConfigError(f"{where}.revoked must be true or false")
    return Approver(name, key, _groups(entry.get("groups"), where), revoked)


def _groups(groups: Any, where: str) -> frozenset[str]:
    if (
        not isinstance(groups, list)
        or not groups
        or not all(isinstance(group, str) and group for group in groups)
    ):
        raise ConfigError(
            f"{where}.groups must list the requester groups this approver may approve for "
            '(group names from the rules, or ["*"] for every group)'
        )
    return frozenset(groups)


def _no_unknown(values: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(map(str, values)) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
