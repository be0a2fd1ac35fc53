"""The `sqlguard` command: serve, demo, explain."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from sqlguard.config import ConfigError, load_settings


@click.group()
@click.version_option(package_name="sqlguard")
def main() -> None:
    """sqlguard: a SQL firewall sidecar for PostgreSQL."""


@main.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML config file.")
@click.option("--listen", help="HOST:PORT to accept clients on (default 127.0.0.1:6432).")
@click.option("--upstream", help="postgresql://USER[:PASSWORD]@HOST:PORT/DBNAME of the database.")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), help="Rule file directory.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def serve(
    config_file: Path | None,
    listen: str | None,
    upstream: str | None,
    rules_dir: Path | None,
    log_level: str | None,
) -> None:
    """Run the sidecar in front of a PostgreSQL server (SIGHUP reloads rules)."""
    from sqlguard.policy.loader import RuleError
    from sqlguard.shell.server import run

    try:
        settings = load_settings(
            config_file, listen=listen, upstream=upstream, rules_dir=rules_dir, log_level=log_level
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    _configure_logging(settings.log_level)
    try:
        run(settings)
    except RuleError as exc:
        raise click.ClickException(f"rules not loaded: {exc}") from exc
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.listen_host}:{settings.listen_port}: {exc}"
        ) from exc


@main.command()
@click.option("--port", default=6432, show_default=True, help="Port for the sidecar.")
def demo(port: int) -> None:
    """Start a throwaway PostgreSQL with sample data and the sidecar in front of it."""
    from sqlguard.demo import run_demo

    _configure_logging("WARNING")
    run_demo(port)


@main.command()
@click.argument("sql")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), help="Rule file directory.")
@click.option("--user", default="contractor", show_default=True, help="Identity to judge for.")
def explain(sql: str, rules_dir: Path | None, user: str) -> None:
    """Show how sqlguard reads SQL and what the rules decide, without a server."""
    from sqlguard.firewall import Firewall
    from sqlguard.policy.loader import RuleError, load_rules
    from sqlguard.policy.model import Identity

    settings = load_settings(None, rules_dir=rules_dir)
    try:
        firewall = Firewall(load_rules(settings.rules_dir))
    except RuleError as exc:
        raise click.ClickException(str(exc)) from exc
    text = sql.encode()
    for facts in firewall.facts(text):
        kinds = ", ".join(sorted(facts.kinds))
        tables = ", ".join(sorted(facts.tables)) or "-"
        click.echo(f"statement: {facts.text}\n  kinds: {kinds}\n  tables: {tables}")
        if facts.reason:
            click.echo(f"  not understood: {facts.reason}")
    decision = firewall.judge(text, Identity(user=user, database=""))
    click.echo(f"decision: {decision.action} {decision.rule_id or '(no rule matched)'}")
    if decision.refused:
        click.echo(
            f"  message: {decision.message}\n  detail: {decision.detail}\n  hint: {decision.hint}"
        )
        sys.exit(1)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
