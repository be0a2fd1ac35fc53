"""IdentityDirectory: the sidecar's view of the store and the role secrets, with reloads."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from sqlguard.config import ConfigError
from sqlguard.identities.config import IdentitySettings, RoleSecret
from sqlguard.identities.directory import IdentityDirectory
from sqlguard.identities.records import Person, StoreFormatError, TemporaryGroup, parse_time
from sqlguard.identities.scram import (
    ScramClient,
    ScramError,
    ScramServer,
    make_verifier,
    mock_verifier,
)
from sqlguard.identities.store import save_people

NOW = parse_time("2026-06-01T12:00Z")
PASSWORD = "alice-pw"


def _person(name: str = "alice", password: str = PASSWORD, **changes: object) -> Person:
    person = Person(
        name,
        ("analysts",),
        make_verifier(password, iterations=8),
        "app_ro",
        ("app",),
        NOW + timedelta(days=1),
        "OPS-1",
        "bob",
    )
    return replace(person, **changes)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "identities.yaml"
    save_people(path, {"alice": _person()})
    return path


def _directory(store: Path, **settings: object) -> IdentityDirectory:
    return IdentityDirectory(IdentitySettings(store=store, **settings), clock=lambda: NOW)  # type: ignore[arg-type]


def _log_in(directory: IdentityDirectory, name: str, password: str) -> bytes:
    """A full SCRAM exchange with the directory's verifier for ``name``."""
    client, server = ScramClient(password), ScramServer(directory.verifier(name))
    return server.final(client.final(server.first(client.first())))


def test_find_and_verifier_of_a_stored_person(store: Path) -> None:
    directory = _directory(store)
    alice = directory.find("alice")
    assert alice is not None and alice.upstream_role == "app_ro" and alice.groups == ("analysts",)
    assert directory.verifier("alice").matches(PASSWORD)
    assert _log_in(directory, "alice", PASSWORD).startswith(b"v=")
    assert [p.name for p in directory.people()] == ["alice"]


def test_clock_and_password_mode_come_from_settings(store: Path) -> None:
    assert _directory(store).now() == NOW
    assert not _directory(store).cleartext_allowed
    assert _directory(store, password_auth="password").cleartext_allowed


def test_unknown_name_gets_a_stable_mock_verifier_that_nothing_matches(store: Path) -> None:
    directory = _directory(store)
    assert directory.find("mallory") is None
    mock = directory.verifier("mallory")
    assert mock == directory.verifier("mallory")  # the same salt on every attempt
    assert mock != directory.verifier("eve")
    for guess in ("", "mallory", PASSWORD):
        assert not mock.matches(guess)
        with pytest.raises(ScramError, match="wrong password"):
            _log_in(directory, "mallory", guess)


def test_mock_verifiers_differ_between_directories(store: Path) -> None:
    """The mock secret lives only as long as the process, so salts cannot be precomputed."""
    assert _directory(store).verifier("mallory") != _directory(store).verifier("mallory")
    assert _directory(store).verifier("mallory") != mock_verifier("mallory", b"\0" * 32)


def test_mock_exchange_looks_like_a_real_one(store: Path) -> None:
    directory = _directory(store)
    real, mock = directory.verifier("alice"), directory.verifier("mallory")
    assert len(mock.salt) == 16 and len(mock.stored_key) == len(real.stored_key) == 32


def test_missing_store_is_an_empty_directory(tmp_path: Path) -> None:
    directory = _directory(tmp_path / "absent.yaml")
    assert directory.people() == [] and directory.find("alice") is None
    assert directory.next_change(NOW) is None


def test_upstream_password_from_file_and_env(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "analysts").write_text("file-secret\n")
    monkeypatch.setenv("SQLGUARD_TEST_RO", "env-secret")
    roles = {
        "analysts": RoleSecret("analysts", password_file=tmp_path / "analysts"),
        "app_ro": RoleSecret("app_ro", password_env="SQLGUARD_TEST_RO"),
    }
    directory = _directory(store, upstream_roles=roles)
    assert directory.upstream_password("analysts") == "file-secret"
    assert directory.upstream_password("app_ro") == "env-secret"
    assert directory.upstream_password("other") is None  # trust/peer/cert upstream

    (tmp_path / "analysts").write_text("rotated\n")
    monkeypatch.setenv("SQLGUARD_TEST_RO", "env-rotated")
    assert directory.upstream_password("analysts") == "file-secret"  # until reloaded
    directory.reload()
    assert directory.upstream_password("analysts") == "rotated"
    assert directory.upstream_password("app_ro") == "env-rotated"


def test_unset_role_secret_fails_at_start(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQLGUARD_TEST_RO", raising=False)
    roles = {"app_ro": RoleSecret("app_ro", password_env="SQLGUARD_TEST_RO")}
    with pytest.raises(ConfigError, match="SQLGUARD_TEST_RO is empty or unset"):
        _directory(store, upstream_roles=roles)


def test_reload_picks_up_changes(store: Path) -> None:
    directory = _directory(store)
    save_people(store, {"alice": _person(revoked=True), "bob": _person("bob", "bob-pw")})
    assert directory.find("bob") is None  # nothing changes before the reload
    directory.reload()
    alice, bob = directory.find("alice"), directory.find("bob")
    assert alice is not None and alice.revoked
    assert bob is not None and directory.verifier("bob").matches("bob-pw")
    save_people(store, {"bob": _person("bob", "bob-pw")})
    directory.reload()
    assert directory.find("alice") is None and not directory.verifier("alice").matches(PASSWORD)


def test_broken_store_on_reload_keeps_the_previous_people(store: Path) -> None:
    directory = _directory(store)
    before = directory.find("alice")
    store.write_text("version: 1\npeople:\n  alice:\n    verifer: x\n  bob: {}\n")
    with pytest.raises(StoreFormatError, match="unknown field"):
        directory.reload()
    assert before is not None and directory.find("alice") is before
    assert directory.verifier("alice").matches(PASSWORD)
    assert directory.find("bob") is None


def test_failed_secret_on_reload_keeps_people_and_passwords(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLGUARD_TEST_RO", "env-secret")
    roles = {"app_ro": RoleSecret("app_ro", password_env="SQLGUARD_TEST_RO")}
    directory = _directory(store, upstream_roles=roles)
    save_people(store, {"bob": _person("bob", "bob-pw")})
    monkeypatch.delenv("SQLGUARD_TEST_RO")
    with pytest.raises(ConfigError):
        directory.reload()
    assert directory.find("alice") is not None and directory.find("bob") is None
    assert directory.upstream_password("app_ro") == "env-secret"


def test_bad_verifier_in_the_store_names_the_person(store: Path) -> None:
    directory = _directory(store)
    bad = "SCRAM-SHA-256$4096:AAAA$AAAA:AAAA"  # passes the store's prefix check only
    save_people(store, {"alice": _person(), "carol": _person("carol", verifier=bad)})
    with pytest.raises(StoreFormatError) as caught:
        directory.reload()
    assert str(caught.value).startswith(f"{store}: carol: ")
    assert "AAAA" not in str(caught.value)  # the verifier is a secret: not echoed
    assert directory.find("carol") is None and directory.find("alice") is not None
    with pytest.raises(StoreFormatError, match="carol"):
        _directory(store)


def test_next_change_is_the_earliest_future_expiry_or_lapse(store: Path) -> None:
    grants = (
        TemporaryGroup("dba", NOW - timedelta(hours=1)),  # lapsed already
        TemporaryGroup("dba", NOW + timedelta(hours=5)),
    )
    save_people(
        store,
        {
            "alice": _person(expires_at=NOW + timedelta(hours=8), temporary_groups=grants),
            "bob": _person("bob", expires_at=NOW + timedelta(hours=3)),
            "carol": _person("carol", expires_at=None),
            "dave": _person("dave", expires_at=NOW - timedelta(minutes=1)),  # expired
        },
    )
    directory = _directory(store)
    assert directory.next_change(NOW) == NOW + timedelta(hours=3)
    assert directory.next_change(NOW + timedelta(hours=3)) == NOW + timedelta(hours=5)
    assert directory.next_change(NOW + timedelta(hours=6)) == NOW + timedelta(hours=8)
    assert directory.next_change(NOW + timedelta(hours=8)) is None


def test_next_change_of_a_grant_lapsing_before_expiry(store: Path) -> None:
    grant = TemporaryGroup("dba", NOW + timedelta(minutes=30))
    save_people(store, {"alice": _person(temporary_groups=(grant,))})
    assert _directory(store).next_change(NOW) == NOW + timedelta(minutes=30)


def test_fingerprint_changes_when_the_store_is_replaced(store: Path) -> None:
    directory = _directory(store)
    before = directory.fingerprint()
    assert before == directory.fingerprint()  # stable while nothing changes
    save_people(store, {"alice": _person()})  # atomic replace: a new inode
    assert directory.fingerprint() != before


def test_fingerprint_covers_password_files(store: Path, tmp_path: Path) -> None:
    secret = tmp_path / "analysts"
    secret.write_text("one\n")
    roles = {"analysts": RoleSecret("analysts", password_file=secret)}
    directory = _directory(store, upstream_roles=roles)
    before = directory.fingerprint()
    replacement = tmp_path / "analysts.new"
    replacement.write_text("two-two\n")
    os.replace(replacement, secret)  # how a mounted secret is rotated
    assert directory.fingerprint() != before


def test_fingerprint_of_a_store_that_appears_or_vanishes(tmp_path: Path) -> None:
    path = tmp_path / "identities.yaml"
    directory = _directory(path)
    absent = directory.fingerprint()
    save_people(path, {"alice": _person()})
    present = directory.fingerprint()
    assert present != absent
    path.unlink()
    assert directory.fingerprint() == absent
