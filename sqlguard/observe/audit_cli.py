"""``sqlguard audit``: verify the chain, make a key, and read the log at a terminal.

``verify`` exits 0 when the chain holds (a crash's unfinished last line is only a warning),
1 naming the first broken, missing or altered record as FILE:LINE, seq and what is wrong,
and 2 for usage mistakes. ``tail`` and ``search`` only read: they do not verify.
``COMMANDS`` is registered on the ``sqlguard`` group by ``sqlguard.cli``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import yaml

from sqlguard.observe.audit_chain import CHAIN_FIELDS
from sqlguard.observe.audit_config import audit_path, audit_settings, load_key
from sqlguard.observe.audit_read import (
    RecordFilter,
    follow_records,
    iter_records,
    log_files,
    parse_since,
    tail_records,
    verify_files,
)

_FILES = click.argument(
    "files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
_CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The sidecar's YAML config file (its audit: section).",
)
_PATH = click.option(
    "--path", "live", type=click.Path(path_type=Path), help="The live log file (audit.path)."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines.")
_SHOWN = ("ts", "type", "user", "database", "decision", "rule_id", "text")


@click.group()
def audit() -> None:
    """Check and read the tamper-evident audit log."""


@audit.command()
@_FILES
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--key-env", help="Environment variable holding the key.")
@_CONFIG
@click.option("--partial", is_flag=True, help="The first file may start mid-chain (archived).")
def verify(
    files: tuple[Path, ...],
    key_file: Path | None,
    key_env: str | None,
    config_file: Path | None,
    partial: bool,
) -> None:
    """Check the chain through FILE... (rotated files and the live one, any order)."""
    if config_file:
        settings = _guarded(audit_settings, *_audit_section(config_file))
        key, files = settings.key, files or tuple(log_files(settings.path))
    else:
        key = _guarded(load_key, key_file, key_env)
    if not files:
        raise click.UsageError("give the log FILE(s), or --config to find them")
    result = verify_files(key, files, partial=partial)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.problem:
        click.echo(f"BROKEN: {result.problem}")
        raise SystemExit(1)
    click.echo(f"OK: {result.records} records in {len(files)} file(s), last seq {result.last_seq}")


@audit.command()
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path, dir_okay=False))
def keygen(out_file: Path) -> None:
    """Write a new random HMAC key (64 hex digits) to a new file, mode 0600."""
    try:
        descriptor = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise click.ClickException(f"cannot create {out_file}: {exc.strerror}") from None
    with os.fdopen(descriptor, "w") as file:
        file.write(os.urandom(32).hex() + "\n")
    click.echo(f"audit key: {out_file} (audit.key_file; keep it apart from the log)")


@audit.command()
@click.argument("live_file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("-n", "count", default=20, show_default=True, help="How many records.")
@_CONFIG
@_PATH
@_JSON
@click.option("-f", "--follow", is_flag=True, help="Then print new records as they come.")
def tail(
    live_file: Path | None,
    count: int,
    config_file: Path | None,
    live: Path | None,
    as_json: bool,
    follow: bool,
) -> None:
    """Print the last records of the log (the live file and, if needed, rotated ones)."""
    path = _live_path(config_file, live_file or live)
    if follow and not path.exists():
        raise click.UsageError(f"{path} does not exist (yet): nothing to follow")
    coming = follow_records(path) if follow else iter(())
    files = log_files(path)
    last = tail_records(files, count)
    _print(last, as_json)
    seen = last[-1]["seq"] if last else 0
    _print((record for record in coming if record["seq"] > seen), as_json)


@audit.command()
@_FILES
@_CONFIG
@_PATH
@click.option("--user", help="Only this PostgreSQL user.")
@click.option("--decision", help="Only this decision: allow, deny, require_approval, ...")
@click.option("--type", "record_type", help="Only this record type: statement, login, ...")
@click.option("--since", help="Only records from then on: ISO time, or an age like 15m, 1h, 2d.")
@_JSON
def search(
    files: tuple[Path, ...],
    config_file: Path | None,
    live: Path | None,
    user: str | None,
    decision: str | None,
    record_type: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """Print the records that match every given criterion, oldest first."""
    try:
        moment = parse_since(since) if since else None
    except ValueError:
        hint = f"{since!r}: write e.g. 1h or 2026-01-31T12:00"
        raise click.BadParameter(hint, param_hint="--since") from None
    wanted = RecordFilter(user, decision, record_type, moment)
    _print(filter(wanted, iter_records(_log_files(files, config_file, live))), as_json)


def _log_files(files: tuple[Path, ...], config_file: Path | None, live: Path | None) -> list[Path]:
    """The files to read: as given, else the log at ``--path``, else the configured one."""
    return list(files) if files else log_files(_live_path(config_file, live))


def _live_path(config_file: Path | None, live: Path | None) -> Path:
    """The live log file: as given, else from the config's ``audit.path``."""
    if live is None and config_file is not None:
        live = _guarded(audit_path, *_audit_section(config_file))
    if live is None:
        raise click.UsageError("give the log file, --path or --config")
    return live


def _audit_section(config_file: Path) -> tuple[Any, Path]:
    """The ``audit:`` mapping of a config file and the directory relative paths start from."""
    try:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise click.UsageError(f"cannot read config file {config_file}: {exc}") from None
    if not isinstance(raw, dict) or "audit" not in raw:
        raise click.UsageError(f"{config_file} has no audit: section")
    return raw["audit"], config_file.parent


def _guarded(function: Any, *args: Any) -> Any:
    """Call ``function``; a ConfigError becomes a usage error (exit 2) with its message."""
    from sqlguard.config import ConfigError

    try:
        return function(*args)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _print(records: Iterable[dict[str, Any]], as_json: bool) -> None:
    for record in records:
        click.echo(json.dumps(record, ensure_ascii=False) if as_json else format_record(record))


def format_record(record: dict[str, Any]) -> str:
    """One readable line: time, type, user@database, decision, rule, then the statement text
    (or, for other record types, their remaining fields).

    >>> format_record({"ts": "T", "seq": 3, "type": "login", "user": "ann", "ok": True,
    ...                "prev": "0", "mac": "1"})
    'T  login  ann  -  -  ok=True'
    """
    who = str(record.get("user", "-")) + (f"@{record['database']}" if "database" in record else "")
    rest = {k: v for k, v in record.items() if k not in CHAIN_FIELDS and k not in _SHOWN}
    detail = record.get("text") or " ".join(f"{k}={v}" for k, v in sorted(rest.items()))
    fields = [record.get("ts", "?"), record.get("type", "?"), who]
    fields += [record.get("decision", "-"), record.get("rule_id", "-"), detail]
    return "  ".join(str(field) for field in fields)


COMMANDS: list[click.Command] = [audit]
