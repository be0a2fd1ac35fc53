"""Settings from a YAML file and flags, with errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlguard.config import ConfigError, load_settings, parse_upstream


def test_file_then_flags_override(tmp_path: Path) -> None:
    config = tmp_path / "sqlguard.yaml"
    config.write_text(
        "listen: 0.0.0.0:7000\nupstream: postgresql://app:s%40cret@db:5433/shop\n"
        "max-message-bytes: 1024\nrules_poll_interval: 0\n"
    )
    settings = load_settings(config, listen="127.0.0.1:7001")
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 7001)
    assert settings.upstream.password == "s@cret"
    assert settings.upstream.port == 5433
    assert settings.max_message_bytes == 1024
    assert settings.rules_poll_interval == 0


def test_password_is_not_in_repr() -> None:
    assert "s3cret" not in repr(parse_upstream("postgresql://u:s3cret@h/db"))


def test_unix_socket_upstream() -> None:
    upstream = parse_upstream("postgresql://u@/db?host=/run/postgresql&port=5433")
    assert (upstream.socket_dir, upstream.port) == ("/run/postgresql", 5433)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("listen: nowhere\n", "HOST:PORT"),
        ("upstream: mysql://x\n", "postgresql://"),
        ("max_message_bytes: -1\n", "max_message_bytes must be positive"),
        ("connect_timeout: soon\n", "connect_timeout must be a number"),
        ("colour: blue\n", "unknown setting"),
        ("log_format: xml\n", "log_format must be json or console"),
        ("- just\n- a list\n", "must be a mapping"),
        ("listen: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.yaml")
