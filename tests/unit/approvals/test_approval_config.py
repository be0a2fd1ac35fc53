"""The approvals: section: a valid one, and a clear error naming the field for each mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlguard.approvals.config import (
    ApprovalSettings,
    approval_settings,
    load_approval_settings,
    parse_duration,
)
from sqlguard.approvals.keys import generate_keypair, same_key
from sqlguard.config import ConfigError


@pytest.fixture
def base(tmp_path: Path) -> Path:
    generate_keypair("dana", tmp_path / "keys")
    generate_keypair("eve", tmp_path / "keys")
    return tmp_path


def settings(base: Path, **raw: Any) -> ApprovalSettings:
    return approval_settings(raw, base)


DANA = {"name": "dana", "public_key": "keys/dana.pub", "groups": ["contractors"]}


def test_the_example(base: Path) -> None:
    result = settings(
        base,
        max_ttl="1h",
        clock_skew="30s",
        ledger="/var/lib/sqlguard/ledger.sqlite3",
        requests="state/requests.sqlite3",
        approvers=[
            DANA,
            {"name": "eve", "public_key": "keys/eve.pub", "groups": ["*"], "revoked": True},
        ],
    )
    assert (result.max_ttl, result.default_ttl, result.clock_skew) == (3600, 900, 30)
    assert result.ledger == "/var/lib/sqlguard/ledger.sqlite3"
    assert result.requests == str(base / "state/requests.sqlite3")
    assert sorted(result.approvers) == ["dana", "eve"]
    assert result.approvers["dana"].groups == frozenset({"contractors"})
    assert result.approvers["eve"].revoked and not result.approvers["dana"].revoked
    assert not same_key(result.approvers["dana"].public_key, result.approvers["eve"].public_key)


def test_defaults(tmp_path: Path) -> None:
    result = approval_settings({}, tmp_path / "etc", state_dir=tmp_path / "state")
    assert dict(result.approvers) == {}
    assert result.ledger == str(tmp_path / "state/approvals-ledger.sqlite3")
    assert result.requests == str(tmp_path / "state/approval-requests.sqlite3")


def test_postgres_ledger_url_is_kept(base: Path) -> None:
    url = "postgresql://sqlguard@ledger-db:5432/sqlguard"
    assert settings(base, ledger=url).ledger == url


def test_default_ttl_follows_a_short_max_ttl(base: Path) -> None:
    assert settings(base, max_ttl="5m").default_ttl == 300


def test_approvers_cannot_be_changed(base: Path) -> None:
    with pytest.raises(TypeError):
        settings(base, approvers=[DANA]).approvers["x"] = None  # type: ignore[index]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_tll": "1h"}, r"approvals: unknown setting\(s\) max_tll; known: approvers"),
        ({"max_ttl": "1x"}, r"approvals.max_ttl: '1x' is not a duration; write e.g. 90s"),
        ({"max_ttl": 0}, "approvals.max_ttl must be longer than 0"),
        ({"default_ttl": "2h"}, "default_ttl .7200 s. is longer than approvals.max_ttl"),
        ({"clock_skew": "1h"}, "clock_skew must be at most 10 minutes"),
        ({"approvers": {"dana": {}}}, "approvals.approvers must be a list"),
        ({"approvers": ["dana"]}, r"approvals.approvers\[0\] must be a mapping"),
        ({"approvers": [{**DANA, "group": ["x"]}]}, r"approvers\[0\]: unknown setting\(s\) group"),
        ({"approvers": [{**DANA, "name": ""}]}, r"approvers\[0\].name must be"),
        ({"approvers": [{**DANA, "public_key": "keys/nobody.pub"}]},
         r"approvers\[0\] \(dana\).public_key: key file .*nobody.pub does not exist"),
        ({"approvers": [{**DANA, "public_key": None}]}, r"\(dana\).public_key must be the path"),
        ({"approvers": [{**DANA, "public_key": "keys/dana.key"}]}, "not a PEM public key"),
        ({"approvers": [{**DANA, "groups": []}]}, r"\(dana\).groups must list"),
        ({"approvers": [{**DANA, "groups": "contractors"}]}, r"\(dana\).groups must list"),
        ({"approvers": [{**DANA, "revoked": "yes"}]}, r"\(dana\).revoked must be true or false"),
        ({"approvers": [DANA, DANA]}, r"approvers\[1\]: 'dana' is listed twice"),
    ],
)  # fmt: skip
def test_mistakes(base: Path, raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        approval_settings(raw, base)


def test_not_a_mapping(base: Path) -> None:
    with pytest.raises(ConfigError, match="approvals must be a mapping"):
        approval_settings(["x"], base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90), ("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400),
     ("2d", 172800), (" 1m ", 60), ("0s", 0)],
)  # fmt: skip
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value, "x") == seconds


@pytest.mark.parametrize("value", ["", "1.5h", "h", "1 h", "-5", "5x", "m1", True, -3, None])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ConfigError, match=r"x: .* is not a duration"):
        parse_duration(value, "x")


def test_load_from_a_sidecar_config_file(base: Path) -> None:
    config = base / "sqlguard.yaml"
    config.write_text(
        yaml.safe_dump({"listen": "127.0.0.1:6432", "approvals": {"approvers": [DANA]}})
    )
    assert list(load_approval_settings(config).approvers) == ["dana"]
    (base / "plain.yaml").write_text("listen: 127.0.0.1:6432\n")
    assert dict(load_approval_settings(base / "plain.yaml").approvers) == {}
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_approval_settings(base / "missing.yaml")
