"""The audit: section: a valid one, and an error naming the field for each mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from audit_support import KEY

from sqlguard.config import ConfigError
from sqlguard.observe.audit_config import AuditSettings, Policy, audit_settings
from sqlguard.observe.audit_read import verify_files
from sqlguard.observe.audit_writer import AuditLog


def settings(base: Path, **raw: Any) -> AuditSettings:
    return audit_settings({"path": "audit.log", **raw}, base)


def test_a_valid_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "audit.key").write_bytes(KEY + b"\n")
    loaded = settings(tmp_path, key_file="audit.key", max_bytes="1MB", policy="fail_open")
    assert loaded.path == tmp_path / "audit.log" and loaded.key == KEY
    assert (loaded.max_bytes, loaded.policy, loaded.fsync) == (1024**2, Policy.fail_open, True)
    assert KEY.decode() not in repr(loaded)
    monkeypatch.setenv("AUDIT_KEY", KEY.decode())
    assert settings(tmp_path, key_env="AUDIT_KEY", queue_size=5).queue_size == 5
    assert loaded.commit_interval == 0.05
    assert settings(tmp_path, key_env="AUDIT_KEY", commit_interval=1).commit_interval == 1.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"key_env": "NOPE_UNSET"}, "key_env \\$NOPE_UNSET: the key needs at least 16 bytes"),
        ({}, "exactly one of key_file and key_env"),
        ({"key_file": "absent.key"}, "cannot read"),
        ({"key_env": "K", "policy": "shrug"}, "audit.policy"),
        ({"key_env": "K", "max_bytes": "lots"}, "audit.max_bytes"),
        ({"key_env": "K", "queue_size": 0}, "audit.queue_size"),
        ({"key_env": "K", "fsync": "yes"}, "audit.fsync"),
        ({"key_env": "K", "commit_interval": 0}, "audit.commit_interval: give seconds above 0"),
        ({"key_env": "K", "commit_interval": 2}, "audit.commit_interval"),
        ({"key_env": "K", "commit_interval": "50ms"}, "audit.commit_interval"),
        ({"key_env": "K", "commit_interval": True}, "audit.commit_interval"),
        ({"key_env": "K", "colour": "red"}, "unknown setting"),
        ({"key_env": "K", "path": ""}, "audit.path"),
    ],
)
def test_mistakes_name_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any], message: str
) -> None:
    monkeypatch.setenv("K", KEY.decode())
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, **raw)


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        audit_settings(["audit.log"], tmp_path)


def test_the_writer_is_built_from_the_settings(tmp_path: Path) -> None:
    (tmp_path / "audit.key").write_bytes(KEY)
    loaded = settings(tmp_path, key_file="audit.key", queue_size=2, fsync=False)
    with AuditLog.from_settings(loaded) as log:
        assert log.path == tmp_path / "audit.log" and log.policy is Policy.fail_closed
        log.submit({"type": "rules_reload", "version": "v2"})
        log.submit({"type": "rules_reload", "version": "v3"})
    assert verify_files(KEY, [loaded.path]).records == 2
