"""sqlguard audit verify / keygen / tail / search, through click's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from audit_support import KEY, chained_lines, statement
from click.testing import CliRunner

from sqlguard.observe.audit_chain import AuditChain
from sqlguard.observe.audit_cli import COMMANDS, audit
from sqlguard.observe.audit_writer import AuditLog


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.key"
    path.write_bytes(KEY + b"\n")
    return path


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(audit, [str(arg) for arg in args])
    return result.exit_code, result.output


def test_commands_export_the_audit_group() -> None:
    assert [audit] == COMMANDS
    assert set(audit.commands) == {"verify", "keygen", "tail", "search"}


def test_verify_ok(tmp_path: Path, key_file: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("".join(chained_lines(3)))
    code, output = run("verify", log, "--key-file", key_file)
    assert code == 0 and output.startswith("OK: 3 records in 1 file(s), last seq 3")


def test_verify_names_the_altered_record(tmp_path: Path, key_file: Path) -> None:
    log = tmp_path / "audit.log"
    data = bytearray("".join(chained_lines(3)).encode())
    data[data.index(b"SELECT 2") + 7] ^= 1  # one byte
    log.write_bytes(bytes(data))
    code, output = run("verify", log, "--key-file", key_file)
    assert code == 1
    assert f"BROKEN: {log}:2: seq 2: altered" in output


def test_verify_names_the_missing_middle_file(tmp_path: Path, key_file: Path) -> None:
    chain = AuditChain(KEY)
    names = ["audit.log.000001", "audit.log.000002", "audit.log"]
    for name in names:
        (tmp_path / name).write_text(chain.seal(statement(1)) + "\n")
    files = [tmp_path / name for name in names]
    assert run("verify", *files, "--key-file", key_file)[0] == 0
    code, output = run("verify", files[0], files[2], "--key-file", key_file)
    assert code == 1 and f"{files[2]}:1: seq 3: missing: expected seq 2" in output


def test_verify_warns_about_a_crash_leftover_but_passes(tmp_path: Path, key_file: Path) -> None:
    log = tmp_path / "audit.log"
    lines = chained_lines(2)
    log.write_text(lines[0] + lines[1][:20])
    code, output = run("verify", log, "--key-file", key_file)
    assert code == 0 and "warning:" in output and "truncated" in output


def test_verify_usage_mistakes_exit_2(tmp_path: Path, key_file: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("short")
    assert run("verify", "--key-file", key_file)[0] == 2
    code, output = run("verify", key_file, "--key-file", short)
    assert code == 2 and "at least 16 bytes" in output
    assert run("verify", tmp_path / "absent.log", "--key-file", key_file)[0] == 2


def test_keygen_then_verify_from_the_config(tmp_path: Path) -> None:
    assert run("keygen", "--out", tmp_path / "audit.key")[0] == 0
    assert (tmp_path / "audit.key").stat().st_mode & 0o777 == 0o600
    assert run("keygen", "--out", tmp_path / "audit.key")[0] == 1  # never overwrites a key
    config = tmp_path / "sqlguard.yaml"
    config.write_text(yaml.safe_dump({"audit": {"path": "audit.log", "key_file": "audit.key"}}))
    key = (tmp_path / "audit.key").read_bytes().strip()
    with AuditLog(tmp_path / "audit.log", key, max_bytes=200) as log:
        for n in range(5):
            log.submit(statement(n))
    code, output = run("verify", "--config", config)
    assert code == 0 and "OK: " in output


@pytest.fixture
def live_log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    with AuditLog(path, KEY, max_bytes=400) as log:
        for n in range(1, 7):
            log.submit(statement(n, user="bob" if n % 2 else "ann"))
        log.submit({"ts": "2026-01-02T00:00:00.000000Z", "type": "login", "user": "ann"})
        log.submit({**statement(9, decision="deny"), "ts": "2026-01-02T00:00:01.000000Z"})
    return path


def test_tail_prints_the_last_records_across_rotated_files(live_log: Path) -> None:
    code, output = run("tail", live_log, "-n", "3")
    lines = output.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[-1].split("  ")[1:] == ["statement", "ann@shop", "deny", "r1", "SELECT 9"]
    assert "login  ann" in lines[-2]


def test_search_filters_by_user_decision_type_and_time(live_log: Path) -> None:
    code, output = run("search", "--path", live_log, "--user", "ann", "--type", "statement")
    assert code == 0 and [line.split()[-1] for line in output.splitlines()] == ["2", "4", "6", "9"]
    output = run("search", "--path", live_log, "--decision", "deny", "--json")[1]
    assert '"text": "SELECT 9"' in output and len(output.splitlines()) == 1
    output = run("search", "--path", live_log, "--since", "2026-01-02T00:00")[1]
    assert len(output.splitlines()) == 2
    assert run("search", "--path", live_log, "--since", "yesterday")[0] == 2


def test_tail_needs_a_file(tmp_path: Path) -> None:
    assert run("tail")[0] == 2
