"""`sqlguard check` and `sqlguard explain`, as a DBA runs them: output and exit codes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sqlguard.cli import main
from sqlguard.config import DEFAULT_RULES_DIR

TIMED = """\
groups: {all: {default: allow}}
default_group: all
rules:
  - id: no-night-drops
    match: {kinds: [drop], time: {hours: ["22:00-06:00"], timezone: Europe/Paris}}
    action: deny
    message: Not at night.
"""


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


@pytest.fixture
def timed_rules(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(TIMED)
    return tmp_path


def test_check_accepts_the_shipped_rules() -> None:
    result = run("check", "--rules", str(DEFAULT_RULES_DIR))
    assert result.exit_code == 0, result.output
    assert "groups: contractors, staff" in result.stdout and "version " in result.stdout


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TIMED.replace("[drop]", "[drp]").replace("deny", "block"))
    result = run("check", "--rules", str(tmp_path))
    assert result.exit_code == 1
    assert "a.yaml:5: rule 'no-night-drops': match.kinds: 'drp' is not one of" in result.stderr
    assert "a.yaml:6: rule 'no-night-drops': action: 'block' is not one of" in result.stderr
    assert "2 problems in" in result.stderr


def test_check_exits_2_when_it_cannot_read_the_rules(tmp_path: Path) -> None:
    result = run("check", "--rules", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "not a directory" in result.stderr


def test_explain_shows_the_statements_and_the_decision() -> None:
    result = run("explain", "--user", "someone", "SELECT 1; DROP TABLE users")
    assert result.exit_code == 1
    assert "statement 2: DROP TABLE users" in result.stdout
    assert "  tables: users" in result.stdout
    assert "decision: require_approval by no-drop" in result.stdout
    assert '  message: sqlguard: statement refused by rule "no-drop"' in result.stdout


def test_explain_json_has_the_decision_and_each_statement() -> None:
    result = run("explain", "--user", "someone", "--json", "DELETE FROM users")
    assert result.exit_code == 1
    record = json.loads(result.stdout)
    assert (record["action"], record["rule"]) == ("deny", "delete-without-where")
    assert record["message"] == 'sqlguard: statement refused by rule "delete-without-where"'
    assert record["hint"] and record["detail"] and record["sqlstate"] == "42501"
    (statement,) = record["statements"]
    assert (statement["kinds"], statement["tables"]) == (["delete"], ["users"])


def test_explain_exits_0_when_allowed() -> None:
    result = run("explain", "--user", "someone", "--json", "SELECT 1")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["action"] == "allow"


def test_explain_identity_options_choose_the_group(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "groups:\n  office: {addresses: [10.0.0.0/8], applications: [psql], default: allow}\n"
        "  rest: {default: deny, message: Only from the office.}\ndefault_group: rest\n"
    )
    office = ["explain", "--rules", str(tmp_path), "--user", "u", "--app", "psql", "SELECT 1"]
    assert run(*office, "--addr", "10.1.1.1").exit_code == 0
    assert run(*office, "--addr", "192.168.1.1").exit_code == 1


def test_explain_reads_raw_bytes_from_stdin() -> None:
    result = run("explain", "--user", "someone", "--json", "-", stdin=b"DROP TABLE \x80users")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["rule"] == "sqlguard.unparsed"


def test_explain_at_a_given_time(timed_rules: Path) -> None:
    base = ["explain", "--rules", str(timed_rules), "--user", "u", "DROP TABLE t"]
    assert run(*base, "--at", "2026-01-05T23:00:00+01:00").exit_code == 1
    assert run(*base, "--at", "2026-01-05T12:00:00").exit_code == 0
    assert run(*base, "--at", "yesterday").exit_code == 2


def test_explain_jsonl_judges_each_line(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "sql": "SELECT 1"},
        {"sql_b64": base64.b64encode(b"TRUNCATE t").decode()},
        {},
        {"sql_b64": "not base64!"},
    ]
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join(json.dumps(line) for line in lines) + "\n\nnot json\n")
    result = run("explain", "--user", "someone", "--jsonl", str(requests))
    assert result.exit_code == 2
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record.get("action") for record in records] == [
        "allow",
        "require_approval",
        None,
        None,
        None,
    ]
    assert records[0]["id"] == "a" and records[1]["rule"] == "no-truncate"
    assert [record["line"] for record in records] == [1, 2, 3, 4, 6]
    assert "sql_b64 is not valid base64" in records[3]["error"]


@pytest.mark.parametrize(("sql", "code"), [("SELECT 1", 0), ("TRUNCATE t", 1)])
def test_explain_jsonl_exit_code_is_the_worst_decision(sql: str, code: int) -> None:
    stdin = (json.dumps({"sql": "SELECT 2"}) + "\n" + json.dumps({"sql": sql})).encode()
    assert run("explain", "--user", "someone", "--jsonl", "-", stdin=stdin).exit_code == code


@pytest.mark.parametrize(
    "args",
    [
        ["explain", "SELECT 1"],
        ["explain", "--user", "u"],
        ["explain", "--user", "u", "--jsonl", "-", "SELECT 1"],
    ],
)
def test_explain_usage_errors_exit_2(args: list[str]) -> None:
    assert run(*args).exit_code == 2


def test_explain_with_broken_rules_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("rules: [{id: x, action: explode}]\n")
    result = run("explain", "--rules", str(tmp_path), "--user", "u", "SELECT 1")
    assert result.exit_code == 2 and "bad.yaml:1: rule 'x': action" in result.stderr


def test_serve_and_demo_are_still_there() -> None:
    result = run("--help")
    assert all(command in result.stdout for command in ("serve", "demo", "check", "explain"))


def test_serve_says_why_the_audit_log_cannot_start(tmp_path: Path) -> None:
    """An audit log that cannot be continued stops the start with a one-line reason."""
    key = tmp_path / "audit.key"
    key.write_text("ab" * 32)
    key.chmod(0o600)
    log = tmp_path / "audit.log"
    log.write_text('{"not": "an audit record"}\n')
    config = tmp_path / "sqlguard.yaml"
    config.write_text(f"audit: {{path: {log}, key_file: {key}}}\n")
    result = run(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "postgresql://127.0.0.1:1/x",
        "--config",
        str(config),
    )
    assert result.exit_code == 1
    assert "cannot start: cannot continue the audit log" in result.stderr
    assert "Traceback" not in result.stderr
