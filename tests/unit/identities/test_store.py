"""The identities store: strict reading, atomic private writes, time-bound groups."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from sqlguard.identities.records import Person, TemporaryGroup, parse_time
from sqlguard.identities.store import StoreFormatError, load_people, save_people, update_people

NOW = parse_time("2026-06-01T12:00Z")
VERIFIER = "SCRAM-SHA-256$4096:AAAA$" + "A" * 43 + "=:" + "A" * 43 + "="


def _alice() -> Person:
    grant = TemporaryGroup("dba", NOW + timedelta(hours=4), "OPS-124", "bob")
    return Person("alice", ("analysts",), VERIFIER, "app_ro", ("app",),
                  NOW + timedelta(days=30), "OPS-123", "bob", False, (grant,))  # fmt: skip


def test_round_trip_is_private_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "identities.yaml"
    save_people(path, {"alice": _alice()})
    assert load_people(path) == {"alice": _alice()}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["identities.yaml"]


def test_missing_file_is_empty_store(tmp_path: Path) -> None:
    assert load_people(tmp_path / "none.yaml") == {}


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "identities.yaml"
    save_people(path, {"alice": _alice()})
    before = path.read_bytes()

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_people(path, {})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["identities.yaml"]


def test_update_people_applies_change(tmp_path: Path) -> None:
    path = tmp_path / "identities.yaml"
    update_people(path, lambda people: {**people, "alice": _alice()})
    assert list(load_people(path)) == ["alice"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("version: 1\npeople:\n  alice:\n    verifier: x\n    upstream_role: r\n",
         r":4: field 'verifier': expected a SCRAM"),
        ("version: 1\npeople:\n  alice:\n    verifer: x\n", r":4: field 'verifer': unknown field"),
        ("version: 1\npeople:\n  alice:\n    upstream_role: r\n",
         "missing required field 'verifier'"),
        (f"version: 1\npeople:\n  a:\n    verifier: {VERIFIER}\n    upstream_role: r\n"
         "    expires_at: '2026-01-01T10:00'\n", r":6: field 'expires_at': .*no timezone"),
        (f"version: 1\npeople:\n  a:\n    verifier: {VERIFIER}\n    upstream_role: r\n"
         "    groups: admins\n", r":6: field 'groups': expected a list"),
        (f"version: 1\npeople:\n  a:\n    verifier: {VERIFIER}\n    upstream_role: r\n"
         "    revoked: 'no'\n", r"field 'revoked'"),
        ("version: 1\npeople:\n  a: {}\n  a: {}\n", "duplicate key 'a'"),
        ("version: 2\n", "version: 1"),
        ("people: [\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_invalid_store_names_file_line_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text(body)
    with pytest.raises(StoreFormatError, match=message) as caught:
        load_people(path)
    assert str(path) in str(caught.value)


def test_unquoted_yaml_timestamp_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text(
        f"version: 1\npeople:\n  a:\n    verifier: {VERIFIER}\n    upstream_role: r\n"
        "    expires_at: 2026-12-31T18:00:00Z\n"
    )
    assert load_people(path)["a"].expires_at == parse_time("2026-12-31T18:00Z")


def test_groups_lapse_and_expiry() -> None:
    alice = _alice()
    assert alice.groups_at(NOW) == ("analysts", "dba")
    assert alice.groups_at(NOW + timedelta(hours=4)) == ("analysts",)
    assert alice.active(NOW) and not alice.expired(NOW)
    assert alice.expired(NOW + timedelta(days=30))
    assert alice.remaining(NOW) == timedelta(days=30)
    assert alice.may_use("app") and not alice.may_use("other")
    assert "SCRAM" not in repr(alice)
