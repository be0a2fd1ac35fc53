"""``sqlguard user ...`` and ``sqlguard grant`` through click's CliRunner."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sqlguard.identities import cli
from sqlguard.identities.records import parse_time
from sqlguard.identities.scram import parse_verifier
from sqlguard.identities.store import load_people

NOW = parse_time("2026-06-01T12:00Z")


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cli, "_now", lambda: NOW)
    group = click.Group(commands=cli.COMMANDS)
    store = str(tmp_path / "ids.yaml")

    def invoke(*args: str, stdin: str | None = None, ok: bool = True):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(group, [*args, "--store", store], input=stdin)
        assert (result.exit_code == 0) == ok, result.output
        return result

    invoke.store = Path(store)  # type: ignore[attr-defined]
    return invoke


def _add(run, name: str = "alice", *extra: str, stdin: str = "pw\n", ok: bool = True):  # type: ignore[no-untyped-def]
    return run("user", "add", name, "--groups", "analysts,ops", "--upstream-role", "app_ro",
               "--database", "app", "--expires", "2026-06-02T12:00Z", "--task", "OPS-123",
               "--granted-by", "bob", *extra, stdin=stdin, ok=ok)  # fmt: skip


def test_add_with_password_stdin_stores_only_a_verifier(run) -> None:  # type: ignore[no-untyped-def]
    result = _add(run, "alice", "--password-stdin", stdin="hunter2\n")
    assert "1d left" in result.output
    person = load_people(run.store)["alice"]
    assert person.groups == ("analysts", "ops") and person.granted_by == "bob"
    assert parse_verifier(person.verifier).matches("hunter2")
    assert "hunter2" not in run.store.read_text()


def test_generate_prints_password_once(run) -> None:  # type: ignore[no-untyped-def]
    result = _add(run, "alice", "--generate")
    password = result.output.split("not stored): ")[1].strip()
    assert parse_verifier(load_people(run.store)["alice"].verifier).matches(password)
    assert password not in run("user", "list").output


def test_add_refuses_duplicates_and_missing_password_source(run) -> None:  # type: ignore[no-untyped-def]
    _add(run, "alice", "--password-stdin")
    assert "already exists" in _add(run, "alice", "--password-stdin", ok=False).output
    assert "exactly one" in _add(run, "bob", ok=False).output
    assert "empty password" in _add(run, "bob", "--password-stdin", stdin="\n", ok=False).output


def test_list_shows_remaining_and_expired_never_verifiers(  # type: ignore[no-untyped-def]
    run, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add(run, "alice", "--password-stdin")
    assert "(1d left)" in run("user", "list").output
    monkeypatch.setattr(cli, "_now", lambda: NOW + timedelta(days=1, hours=2))
    output = run("user", "list").output
    assert "(expired 2h ago)" in output and "SCRAM" not in output and "task=OPS-123" in output


def test_revoke_and_extend(run) -> None:  # type: ignore[no-untyped-def]
    _add(run, "alice", "--password-stdin")
    run("user", "extend", "alice", "--until", "2026-12-31T18:00Z")
    assert load_people(run.store)["alice"].expires_at == parse_time("2026-12-31T18:00Z")
    assert "in the past" in run("user", "extend", "alice", "--until", "2020-01-01T00:00Z",
                                ok=False).output  # fmt: skip
    run("user", "revoke", "alice")
    assert load_people(run.store)["alice"].revoked
    assert "(revoked)" in run("user", "list").output
    assert "is revoked" in run("user", "extend", "alice", "--until", "30d", ok=False).output
    assert "no identity" in run("user", "revoke", "nobody", ok=False).output


def test_passwd_replaces_the_verifier(run) -> None:  # type: ignore[no-untyped-def]
    _add(run, "alice", "--password-stdin", stdin="old-pw\n")
    before = load_people(run.store)["alice"]
    run("user", "passwd", "alice", "--password-stdin", stdin="new-pw\n")
    after = load_people(run.store)["alice"]
    assert parse_verifier(after.verifier).matches("new-pw")
    assert not parse_verifier(after.verifier).matches("old-pw")
    assert after == replace(before, verifier=after.verifier)  # nothing else changed
    password = run("user", "passwd", "alice", "--generate").output.split("not stored): ")[1]
    assert parse_verifier(load_people(run.store)["alice"].verifier).matches(password.strip())
    assert "no identity" in run("user", "passwd", "bob", "--generate", ok=False).output
    assert "exactly one" in run("user", "passwd", "alice", ok=False).output
    run("user", "revoke", "alice")
    assert "is revoked" in run("user", "passwd", "alice", "--generate", ok=False).output


def test_grant_adds_lapsing_group(run) -> None:  # type: ignore[no-untyped-def]
    _add(run, "alice", "--password-stdin")
    run("grant", "alice", "--group", "dba", "--for", "4h", "--task", "OPS-124")
    person = load_people(run.store)["alice"]
    assert person.groups_at(NOW) == ("analysts", "ops", "dba")
    assert person.groups_at(NOW + timedelta(hours=4)) == ("analysts", "ops")
    assert "dba (until 2026-06-01 16:00Z, OPS-124)" in run("user", "list").output
    assert "not a duration" in run("grant", "alice", "--group", "g", "--for", "soon",
                                   "--task", "T", ok=False).output  # fmt: skip


def test_naive_expiry_is_refused(run) -> None:  # type: ignore[no-untyped-def]
    result = run("user", "add", "a", "--groups", "g", "--upstream-role", "r",
                 "--database", "*", "--expires", "2026-12-31T18:00", "--task", "T",
                 "--generate", ok=False)  # fmt: skip
    assert "no timezone" in result.output
