"""The ``identities:`` config section: strict parsing, and role secrets that never leak."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sqlguard.config import ConfigError
from sqlguard.identities.config import IdentitySettings, RoleSecret, identity_settings

BASE = Path("/etc/sqlguard")
SECRET = "Tr0ub4dor&3-horse"


def test_minimal_section_defaults_to_scram_and_no_roles() -> None:
    settings = identity_settings({"store": "identities.yaml"}, BASE)
    assert settings == IdentitySettings(store=BASE / "identities.yaml")
    assert settings.password_auth == "scram-sha-256" and not settings.cleartext_allowed
    assert dict(settings.upstream_roles) == {}


def test_full_section_with_relative_and_absolute_paths() -> None:
    raw = {
        "store": "/var/lib/sqlguard/ids.yaml",
        "password-auth": "PASSWORD",  # dashes and case are forgiven
        "upstream_roles": {
            "analysts": {"password_file": "secrets/analysts"},
            "readonly": {"password_env": "RO_PASSWORD"},
        },
    }
    settings = identity_settings(raw, BASE)
    assert settings.store == Path("/var/lib/sqlguard/ids.yaml")
    assert settings.password_auth == "password" and settings.cleartext_allowed
    assert settings.upstream_roles == {
        "analysts": RoleSecret("analysts", password_file=BASE / "secrets/analysts"),
        "readonly": RoleSecret("readonly", password_env="RO_PASSWORD"),
    }


@pytest.mark.parametrize("roles", [None, {}, []])
def test_empty_upstream_roles_mean_none(roles: Any) -> None:
    settings = identity_settings({"store": "s.yaml", "upstream_roles": roles}, BASE)
    assert dict(settings.upstream_roles) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["store"], "identities must be a mapping (store, password_auth, upstream_roles)"),
        ("identities.yaml", "identities must be a mapping"),
        ({"store": "s", "stor": "t", "users": 1},
         "identities: unknown key(s) stor, users; known: password_auth, store, upstream_roles"),
        ({}, "identities.store: give the identities file, e.g. identities.yaml"),
        ({"store": ""}, "identities.store: give the identities file"),
        ({"store": 5}, "identities.store: give the identities file"),
        ({"password_auth": "password"}, "identities.store: give the identities file"),
        ({"store": "s", "password_auth": "md5"},
         "identities.password_auth must be scram-sha-256 or password, not 'md5' (md5 is not "
         "offered: it would need a password-equivalent hash on the sidecar)"),
        ({"store": "s", "password_auth": "trust"},
         "must be scram-sha-256 or password, not 'trust'"),
        ({"store": "s", "upstream_roles": ["analysts"]},
         "identities.upstream_roles must map role names to a password source"),
        ({"store": "s", "upstream_roles": {"r": {"password_file": "f", "password_env": "E"}}},
         "identities.upstream_roles.r: give exactly one of password_file: PATH or "
         "password_env: VARIABLE"),
        ({"store": "s", "upstream_roles": {"r": {}}}, "upstream_roles.r: give exactly one of"),
        ({"store": "s", "upstream_roles": {"r": None}}, "upstream_roles.r: give exactly one of"),
        ({"store": "s", "upstream_roles": {"r": "/run/secrets/r"}},
         "upstream_roles.r: give exactly one of"),
        ({"store": "s", "upstream_roles": {"r": {"password": SECRET}}},
         "upstream_roles.r: give exactly one of"),
    ],
)  # fmt: skip
def test_invalid_section_is_refused_with_a_precise_message(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        identity_settings(raw, BASE)
    assert SECRET not in str(caught.value)  # a password put inline is never echoed


@pytest.mark.parametrize("key", ["password_file", "password_env"])
def test_null_password_source_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=r"upstream_roles\.r"):
        identity_settings({"store": "s", "upstream_roles": {"r": {key: None}}}, BASE)


# ---- RoleSecret.read ------------------------------------------------------------------


def test_password_file_is_read_without_its_line_ending(tmp_path: Path) -> None:
    path = tmp_path / "analysts"
    path.write_text(f"{SECRET}\r\n")
    assert RoleSecret("analysts", password_file=path).read() == SECRET


def test_password_file_keeps_inner_and_leading_spaces(tmp_path: Path) -> None:
    path = tmp_path / "analysts"
    path.write_text(" pass word \n")
    assert RoleSecret("analysts", password_file=path).read() == " pass word "


def test_a_rotated_password_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "analysts"
    secret = RoleSecret("analysts", password_file=path)
    path.write_text("first\n")
    assert secret.read() == "first"
    path.write_text("second\n")
    assert secret.read() == "second"


def test_password_env_is_read_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = RoleSecret("readonly", password_env="SQLGUARD_TEST_RO_PASSWORD")
    monkeypatch.setenv("SQLGUARD_TEST_RO_PASSWORD", SECRET)
    assert secret.read() == SECRET
    monkeypatch.setenv("SQLGUARD_TEST_RO_PASSWORD", "rotated")
    assert secret.read() == "rotated"


def test_missing_password_file_names_the_role_and_file(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(ConfigError) as caught:
        RoleSecret("analysts", password_file=path).read()
    where = "identities.upstream_roles.analysts.password_file"
    assert str(caught.value).startswith(f"{where}: cannot read {path}")


def test_unreadable_password_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"analysts\.password_file: cannot read"):
        RoleSecret("analysts", password_file=tmp_path).read()  # a directory


def test_password_file_that_is_not_utf8_does_not_echo_it(tmp_path: Path) -> None:
    path = tmp_path / "analysts"
    path.write_bytes(SECRET.encode() + b"\xff\xfe")
    with pytest.raises(ConfigError) as caught:
        RoleSecret("analysts", password_file=path).read()
    message = str(caught.value)
    assert f"{path} is not UTF-8 text" in message and SECRET not in message
    assert "0xff" not in message  # no byte of the secret either


@pytest.mark.parametrize("content", ["", "\n", "\r\n\r\n"])
def test_empty_password_file_names_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "analysts"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        RoleSecret("analysts", password_file=path).read()
    assert str(caught.value) == (
        f"identities.upstream_roles.analysts: {path} is empty or unset; "
        "put the role's password there"
    )


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_password_env_names_the_variable(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("SQLGUARD_TEST_RO_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("SQLGUARD_TEST_RO_PASSWORD", value)
    with pytest.raises(ConfigError) as caught:
        RoleSecret("readonly", password_env="SQLGUARD_TEST_RO_PASSWORD").read()
    assert str(caught.value) == (
        "identities.upstream_roles.readonly: environment variable SQLGUARD_TEST_RO_PASSWORD "
        "is empty or unset; put the role's password there"
    )


def test_role_secret_repr_shows_the_source_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLGUARD_TEST_RO_PASSWORD", SECRET)
    secret = RoleSecret("readonly", password_env="SQLGUARD_TEST_RO_PASSWORD")
    secret.read()
    assert SECRET not in repr(secret) and "SQLGUARD_TEST_RO_PASSWORD" in repr(secret)
