"""The `sqlguard` command: serve, demo, check, explain; approvals: keygen, approve, fingerprint,
approvals list/show (in ``sqlguard.approvals.cli``)."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import click

from sqlguard.analysis.facts import StatementFacts
from sqlguard.approvals.cli import COMMANDS as APPROVAL_COMMANDS
from sqlguard.config import ConfigError, load_settings
from sqlguard.identities.cli import COMMANDS as IDENTITY_COMMANDS
from sqlguard.observe.audit_cli import COMMANDS as AUDIT_COMMANDS
from sqlguard.observe.audit_writer import AuditError
from sqlguard.observe.logs import configure_logging
from sqlguard.policy.engine import evaluate
from sqlguard.policy.loader import RuleError, RuleSet, RulesUnavailable, load_rules
from sqlguard.policy.model import Decision, Identity
from sqlguard.policy.report import decision_record, statement_record


@click.group()
@click.version_option(package_name="sqlguard")
def main() -> None:
    """sqlguard: a SQL firewall sidecar for PostgreSQL."""


for _command in (*APPROVAL_COMMANDS, *AUDIT_COMMANDS, *IDENTITY_COMMANDS):
    main.add_command(_command)


@main.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML config file.")
@click.option("--listen", help="HOST:PORT to accept clients on (default 127.0.0.1:6432).")
@click.option("--upstream", help="postgresql://USER[:PASSWORD]@HOST:PORT/DBNAME of the database.")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), help="Rule file directory.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
@click.option(
    "--admin", "admin_listen", help="HOST:PORT for /metrics, /healthz, /readyz, /status, /reload."
)
@click.option("--log-format", type=click.Choice(["json", "console"]), help="Default: json.")
def serve(
    config_file: Path | None,
    listen: str | None,
    upstream: str | None,
    rules_dir: Path | None,
    log_level: str | None,
    admin_listen: str | None,
    log_format: str | None,
) -> None:
    """Run the sidecar in front of a PostgreSQL server (SIGHUP reloads rules)."""
    from sqlguard.shell.server import run

    try:
        settings = load_settings(
            config_file,
            listen=listen,
            upstream=upstream,
            rules_dir=rules_dir,
            log_level=log_level,
            admin_listen=admin_listen,
            log_format=log_format,
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings.log_level, settings.log_format)
    try:
        run(settings)
    except RuleError as exc:
        raise click.ClickException(f"rules not loaded: {exc}") from exc
    except (OSError, ValueError, AuditError) as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc


@main.command()
@click.option("--port", default=6432, show_default=True, help="Port for the sidecar.")
def demo(port: int) -> None:
    """Start a throwaway PostgreSQL with sample data and the sidecar in front of it."""
    from sqlguard.demo import run_demo

    configure_logging("WARNING", "console")
    run_demo(port)


@main.command()
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), help="Rule file directory.")
def check(rules_dir: Path | None) -> None:
    """Validate the rule files. Exit 0 valid, 1 invalid, 2 could not run."""
    directory = _rules_directory(rules_dir)
    try:
        rules = load_rules(directory)
    except RulesUnavailable as exc:
        _exit(2, f"sqlguard check: cannot read rules: {exc}")
    except RuleError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        _exit(1, f"{count} problem{'s' * (count != 1)} in {directory}; the rules were not loaded")
    groups = ", ".join(group.name for group in rules.groups) or "none"
    click.echo(
        f"{directory}: {len(rules.rules)} rules, groups: {groups}, "
        f"default group: {rules.default_group or 'none (unnamed users are refused)'}, "
        f"version {rules.version}"
    )


@main.command()
@click.argument("sql", required=False)
@click.option("--user", required=True, help="The user name to judge for (as at login).")
@click.option("--app", default="", help="The client's application_name.")
@click.option("--addr", default="", help="The client's IP address (or 'local').")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), help="Rule file directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as one JSON object.")
@click.option(
    "--jsonl", type=click.File("rb"), help='Judge each line: {"sql": ...} or {"sql_b64": ...}.'
)
@click.option("--at", help="Judge at this ISO 8601 time (for time windows); default: now.")
def explain(
    sql: str | None,
    user: str,
    app: str,
    addr: str,
    rules_dir: Path | None,
    as_json: bool,
    jsonl: BinaryIO | None,
    at: str | None,
) -> None:
    """Show how sqlguard reads SQL (or '-' for raw bytes on stdin) and what the rules decide.

    Exit 0 allowed, 1 refused, 2 usage or configuration error.
    """
    if (sql is None) == (jsonl is None):
        raise click.UsageError("give either SQL (or - to read it from stdin) or --jsonl FILE")
    rules = _load_rules(_rules_directory(rules_dir))
    who = Identity(user=user, database="", application_name=app, client_addr=addr)
    now = _moment(at)
    if jsonl is not None:
        sys.exit(_explain_lines(rules, who, jsonl, now))
    raw = sys.stdin.buffer.read() if sql == "-" else str(sql).encode()
    decision, statements = _judge(rules, who, raw, now)
    if as_json:
        click.echo(json.dumps(decision_record(decision, statements, rules.version)))
    else:
        _print_explanation(decision, statements)
    sys.exit(1 if decision.refused else 0)


def _judge(
    rules: RuleSet, who: Identity, raw: bytes, now: datetime | None
) -> tuple[Decision, tuple[StatementFacts, ...]]:
    """Analysis and policy, as the sidecar runs them for one message."""
    from sqlguard.analysis.parse import analyze_bytes  # imports sqlglot: only when needed

    statements = analyze_bytes(raw)
    return evaluate(rules, who, statements, now), statements


def _explain_lines(rules: RuleSet, who: Identity, lines: BinaryIO, now: datetime | None) -> int:
    """One JSON decision per input line; 2 if a line was unusable, else 1 if any refused."""
    worst = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            raw = _message_of(request)
        except ValueError as exc:
            click.echo(json.dumps({"line": number, "error": str(exc)}))
            worst = 2
            continue
        decision, statements = _judge(rules, who, raw, now)
        record = decision_record(decision, statements, rules.version)
        click.echo(json.dumps({"line": number, **_request_id(request), **record}))
        worst = max(worst, int(decision.refused))
    return worst


def _message_of(request: Any) -> bytes:
    """The message bytes of one --jsonl request: {"sql": text} or {"sql_b64": base64}."""
    if isinstance(request, dict) and isinstance(request.get("sql"), str):
        return request["sql"].encode()
    if isinstance(request, dict) and isinstance(request.get("sql_b64"), str):
        try:
            return base64.b64decode(request["sql_b64"], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"sql_b64 is not valid base64: {exc}") from None
    raise ValueError('each line must be a JSON object with "sql" (text) or "sql_b64" (base64)')


def _request_id(request: dict[str, Any]) -> dict[str, Any]:
    """The request's own "id", echoed so results can be matched to inputs."""
    return {"id": request["id"]} if "id" in request else {}


def _print_explanation(decision: Decision, statements: tuple[StatementFacts, ...]) -> None:
    for number, facts in enumerate(statements, start=1):
        click.echo(f"statement {number}: {facts.text}")
        for field, values in statement_record(facts).items():
            if values:
                shown = ", ".join(values) if isinstance(values, list) else values
                click.echo(f"  {field}: {shown}")
    click.echo(f"decision: {decision.action} by {decision.rule_id}")
    for field in ("message", "detail", "hint"):
        if getattr(decision, field):
            click.echo(f"  {field}: {getattr(decision, field)}")
    if decision.observed:
        click.echo(f"  observed: {', '.join(decision.observed)}")


def _load_rules(directory: Path) -> RuleSet:
    try:
        return load_rules(directory)
    except RuleError as exc:
        _exit(2, f"sqlguard: rules in {directory} not loaded (run sqlguard check):\n{exc}")


def _rules_directory(rules_dir: Path | None) -> Path:
    try:
        return load_settings(None, rules_dir=rules_dir).rules_dir
    except ConfigError as exc:
        _exit(2, f"sqlguard: {exc}")


def _moment(at: str | None) -> datetime | None:
    """``--at`` as an aware datetime (a time without zone is UTC)."""
    if at is None:
        return None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise click.BadParameter(
            "write an ISO 8601 time, e.g. 2026-01-05T09:30+01:00", param_hint="--at"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _exit(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)
