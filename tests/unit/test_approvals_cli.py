"""keygen, approve, fingerprint and approvals list/show, as approvers run them."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from sqlguard.analysis.fingerprint import fingerprint
from sqlguard.approvals.config import load_approval_settings
from sqlguard.approvals.requests import RequestStore
from sqlguard.approvals.tokens import new_approval, read_token
from sqlguard.approvals.verify import Verified, verify
from sqlguard.cli import main

STATEMENT = "DELETE FROM orders WHERE id = 5"


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    for name in ("dana", "eve"):
        assert run("keygen", "--name", name, "--out", str(directory)).exit_code == 0
    return directory


@pytest.fixture
def config(tmp_path: Path, keys: Path) -> Path:
    path = tmp_path / "sqlguard.yaml"
    approvers = [
        {"name": "dana", "public_key": "keys/dana.pub", "groups": ["contractors"]},
        {"name": "eve", "public_key": "keys/eve.pub", "groups": ["*"], "revoked": True},
    ]
    path.write_text(
        yaml.safe_dump(
            {"approvals": {"max_ttl": "30m", "default_ttl": "10m", "approvers": approvers}}
        )
    )
    return path


def approve(keys: Path, *extra: str, key: str = "dana") -> Result:
    return run(
        "approve", "--key", str(keys / f"{key}.key"), "--requester", "bob",
        "--database", "shop", *extra,
    )  # fmt: skip


def test_keygen(tmp_path: Path) -> None:
    result = run("keygen", "--name", "dana", "--out", str(tmp_path / "k"))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "k" / "dana.key").stat().st_mode) == 0o600
    assert "dana.pub" in result.output
    again = run("keygen", "--name", "dana", "--out", str(tmp_path / "k"))
    assert again.exit_code == 1 and "already exists" in again.output


def test_approve_prints_a_token_the_sidecar_accepts(keys: Path, config: Path) -> None:
    result = approve(keys, "--sql", STATEMENT, "--reason", "ticket 42", "--config", str(config))
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("sga1.") and "\n" not in token
    assert "for bob on shop by dana" in result.stderr
    settings = load_approval_settings(config)
    verified = verify(
        token, approvers=settings.approvers, requester="bob", requester_groups={"contractors"},
        database="shop", fingerprint=fingerprint(STATEMENT), now=int(time.time()), clock_skew=30,
        max_ttl=settings.max_ttl,
    )  # fmt: skip
    assert isinstance(verified, Verified)
    assert verified.approval.reason == "ticket 42"
    assert verified.approval.expires_at - verified.approval.issued_at == 600  # default_ttl


def test_approve_by_fingerprint_binds_the_same_statement(keys: Path) -> None:
    by_sql = approve(keys, "--sql", "delete from orders where id=5;")
    by_fingerprint = approve(keys, "--fingerprint", fingerprint(STATEMENT).upper())
    assert by_sql.exit_code == by_fingerprint.exit_code == 0
    claims = [read_token(result.stdout.strip())[0] for result in (by_sql, by_fingerprint)]
    assert claims[0].fingerprint == claims[1].fingerprint == fingerprint(STATEMENT)
    assert claims[0].id != claims[1].id


def test_sql_from_stdin(keys: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["approve", "--key", str(keys / "dana.key"), "--requester", "bob", "--database", "shop",
         "--sql", "-"],
        input=STATEMENT,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "give either --sql SQL or --fingerprint"),
        (("--sql", "x", "--fingerprint", "ab" * 16), "give either"),
        (("--fingerprint", "xyz"), "must be 32 hex digits"),
        (("--sql", "SELECT 'open"), "lexer cannot read"),
        (("--sql", "x", "--ttl", "2h"), "at most 3600 s"),
        (("--sql", "x", "--ttl", "soon"), "is not a duration"),
        (("--sql", "x", "--ttl", "0s"), "more than 0"),
    ],
)
def test_approve_usage_errors(keys: Path, extra: tuple[str, ...], message: str) -> None:
    result = approve(keys, *extra)
    assert result.exit_code == 2 and message in result.output, result.output


def test_config_max_ttl(keys: Path, config: Path) -> None:
    result = approve(keys, "--sql", "x", "--ttl", "45m", "--config", str(config))
    assert result.exit_code == 2 and "at most 1800 s (approvals.max_ttl)" in result.output


def test_self_approval_is_refused_at_once(keys: Path) -> None:
    result = run(
        "approve", "--key", str(keys / "dana.key"), "--requester", "dana", "--database", "shop",
        "--sql", "x",
    )  # fmt: skip
    assert result.exit_code == 1 and "two-person rule" in result.output


def test_approver_checked_against_the_config(tmp_path: Path, keys: Path, config: Path) -> None:
    revoked = approve(keys, "--sql", "x", "--config", str(config), key="eve")
    assert revoked.exit_code == 1 and "'eve' is revoked" in revoked.output
    unknown = approve(keys, "--sql", "x", "--config", str(config), "--approver", "zoe")
    assert unknown.exit_code == 1 and "'zoe' is not an approver" in unknown.output
    wrong_key = approve(
        keys, "--sql", "x", "--config", str(config), "--approver", "dana", key="eve"
    )
    assert wrong_key.exit_code == 1 and "is not the key the config lists" in wrong_key.output


def test_approver_name_needs_a_key_file_name(tmp_path: Path, keys: Path) -> None:
    (keys / "dana.key").rename(keys / "mine.pem")
    result = run(
        "approve", "--key", str(keys / "mine.pem"), "--requester", "bob", "--database", "shop",
        "--sql", "x",
    )  # fmt: skip
    assert result.exit_code == 2 and "give --approver NAME" in result.output


def test_open_key_file_is_refused(keys: Path) -> None:
    (keys / "dana.key").chmod(0o644)
    result = approve(keys, "--sql", "x")
    assert result.exit_code == 1 and "chmod 600" in result.output


def test_fingerprint_command() -> None:
    result = run("fingerprint", "delete  from ORDERS where id = 5 -- x", "--tokens")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [fingerprint(STATEMENT), "DELETE FROM orders WHERE id = 5"]
    assert run("fingerprint", "-", stdin=STATEMENT).stdout.strip() == fingerprint(STATEMENT)
    bad = run("fingerprint", "SELECT 'open")
    assert bad.exit_code == 1 and "cannot fingerprint" in bad.output


@pytest.fixture
def requests(tmp_path: Path, config: Path) -> RequestStore:
    return RequestStore(load_approval_settings(config).requests)


def test_approvals_list_and_show(config: Path, requests: RequestStore) -> None:
    first = requests.record("bob", "shop", fingerprint(STATEMENT), STATEMENT, 1, 1_800_000_000)
    hidden = "DELETE FROM t \x1b[8mWHERE false\x1b[0m\u202e"
    second = requests.record("carol", "crm", "ab" * 16, hidden, None, 1_800_000_100)
    listing = run("approvals", "list", "--config", str(config))
    assert listing.exit_code == 0, listing.output
    lines = listing.stdout.splitlines()
    assert lines[0].split() == [
        "ID", "LAST", "ASKED", "TIMES", "REQUESTER", "DATABASE", "STATUS", "STATEMENT",
    ]  # fmt: skip
    assert lines[1].startswith(second) and lines[2].startswith(first)
    assert "\x1b" not in listing.stdout and "\\u001b[8m" in listing.stdout

    shown = run("approvals", "show", first, "--config", str(config))
    assert shown.exit_code == 0, shown.output
    assert f"request {first} (pending)" in shown.stdout
    assert "  DELETE FROM orders WHERE id = 5" in shown.stdout
    assert "estimated rows: 1" in shown.stdout
    expected = (
        "sqlguard approve --key APPROVER.key --requester bob --database shop --fingerprint "
        + fingerprint(STATEMENT)
    )
    assert expected in shown.stdout
    assert "\u202e" not in run("approvals", "show", second, "--config", str(config)).stdout


def test_approvals_list_all(config: Path, requests: RequestStore) -> None:
    requests.record("bob", "shop", fingerprint(STATEMENT), STATEMENT, None, 1_800_000_000)
    claims = new_approval(
        requester="bob", approver="dana", database="shop", fingerprint=fingerprint(STATEMENT),
        now=1_800_000_000, ttl=60,
    )  # fmt: skip
    requests.mark_used(fingerprint(STATEMENT), "bob", claims, now=1_800_000_010)
    assert "no approval requests" in run("approvals", "list", "--config", str(config)).stdout
    everything = run("approvals", "list", "--all", "--config", str(config)).stdout
    assert " used " in everything


def test_approvals_show_unknown(config: Path, requests: RequestStore) -> None:
    result = run("approvals", "show", "nothere", "--config", str(config))
    assert result.exit_code == 1 and "no approval request 'nothere'" in result.output


def test_approvals_without_a_requests_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("approvals", "list")
    assert result.exit_code == 1 and "give --config" in result.output
