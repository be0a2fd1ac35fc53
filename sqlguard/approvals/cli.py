"""The approver's commands: keygen, approve, fingerprint, approvals list / show.

They are registered on the ``sqlguard`` command group by ``sqlguard.cli``. An approver runs
them on their own machine with their private key; ``approvals list``/``show`` read the
sidecar's request file, so they run where that file is.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sqlguard.analysis.fingerprint import fingerprint as fingerprint_of
from sqlguard.analysis.fingerprint import normal_tokens
from sqlguard.approvals.config import (
    BUILTIN_MAX_TTL,
    DEFAULT_TTL,
    ApprovalSettings,
    approval_settings,
    load_approval_settings,
    parse_duration,
)
from sqlguard.approvals.keys import (
    PRIVATE_SUFFIX,
    KeyFileError,
    generate_keypair,
    load_private_key,
    same_key,
)
from sqlguard.approvals.refusals import moment
from sqlguard.approvals.report import print_request, print_requests
from sqlguard.approvals.requests import RequestStore
from sqlguard.approvals.sqlitefile import StoreError
from sqlguard.approvals.tokens import MalformedToken, mint, new_approval
from sqlguard.config import ConfigError

_CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The sidecar's YAML config file (its approvals: section).",
)


@click.command()
@click.option("--name", required=True, help="The approver's name, as the sidecar config lists it.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
def keygen(name: str, out_dir: Path) -> None:
    """Make an Ed25519 key pair for an approver: NAME.key (private, 0600) and NAME.pub."""
    try:
        private_path, public_path = generate_keypair(name, out_dir)
    except (KeyFileError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"private key: {private_path} (keep it to yourself; sqlguard approve --key)")
    click.echo(f"public key:  {public_path} (give it to the sidecar's operator for approvals:)")


@click.command()
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--approver", help="Your approver name (default: the key file's name minus .key).")
@click.option("--requester", required=True, help="The PostgreSQL user who will run it.")
@click.option("--database", required=True, help="The database it runs in (tokens are bound to it).")
@click.option("--sql", help="The statement, as the requester will send it ('-': read stdin).")
@click.option("--fingerprint", "given_fingerprint", help="Its fingerprint (approvals show).")
@click.option("--ttl", help="How long the token is valid, e.g. 15m (at most approvals.max_ttl).")
@click.option("--reason", default="", help="Why you approve (kept in the token).")
@_CONFIG
def approve(
    key_file: Path,
    approver: str | None,
    requester: str,
    database: str,
    sql: str | None,
    given_fingerprint: str | None,
    ttl: str | None,
    reason: str,
    config_file: Path | None,
) -> None:
    """Print a single-use approval token for one statement (only the token goes to stdout)."""
    settings = _settings(config_file) if config_file else None
    statement = _statement_fingerprint(sql, given_fingerprint)
    approver = approver or _name_from(key_file)
    if approver == requester:
        raise click.ClickException("you cannot approve your own statements (two-person rule)")
    key = _private_key(key_file)
    if settings is not None:
        _check_listed(settings, approver, key_file, key)
    seconds = _ttl(ttl, settings)
    try:
        approval = new_approval(
            requester=requester,
            approver=approver,
            database=database,
            fingerprint=statement,
            now=int(time.time()),
            ttl=seconds,
            reason=reason,
        )
    except MalformedToken as exc:
        raise click.ClickException(f"cannot make this token: {exc}") from None
    click.echo(mint(approval, key))
    click.echo(
        f"approved statement {statement} for {requester} on {database} by {approver} until "
        f"{moment(approval.expires_at)} (token {approval.id}); attach it as "
        "/* sqlguard:approval=TOKEN */ before the statement",
        err=True,
    )


@click.command()
@click.argument("sql")
@click.option("--tokens", is_flag=True, help="Also print the tokens the fingerprint is made of.")
def fingerprint(sql: str, tokens: bool) -> None:
    """Print the fingerprint of SQL ('-': read stdin) that approval tokens bind."""
    text = sys.stdin.read() if sql == "-" else sql
    try:
        click.echo(fingerprint_of(text))
        if tokens:
            click.echo(" ".join(normal_tokens(text)))
    except ValueError as exc:
        raise click.ClickException(f"cannot fingerprint the statement: {exc}") from None


@click.group()
def approvals() -> None:
    """See the approval requests of refused statements."""


@approvals.command("list")
@_CONFIG
@click.option("--all", "show_all", is_flag=True, help="Include requests already answered.")
def list_requests(config_file: Path | None, show_all: bool) -> None:
    """List approval requests, newest first."""
    store = _request_store(config_file)
    try:
        requests = store.list(pending_only=not show_all)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    print_requests(requests)


@approvals.command("show")
@click.argument("request_id")
@_CONFIG
def show_request(request_id: str, config_file: Path | None) -> None:
    """Show one request in full: who asked, when, the statement, the approve command."""
    store = _request_store(config_file)
    try:
        request = store.get(request_id)
        outcomes = store.outcomes(request.requester, request.fingerprint) if request else []
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if request is None:
        raise click.ClickException(f"no approval request {request_id!r} in {store.path}")
    print_request(request, outcomes)


COMMANDS = (keygen, approve, fingerprint, approvals)


def _settings(config_file: Path) -> ApprovalSettings:
    try:
        return load_approval_settings(config_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _statement_fingerprint(sql: str | None, given: str | None) -> str:
    if (sql is None) == (given is None):
        raise click.UsageError("give either --sql SQL or --fingerprint FINGERPRINT")
    if given is not None:
        if not re.fullmatch(r"[0-9a-f]{32}", given.strip().lower()):
            raise click.BadParameter(
                "must be 32 hex digits (from approvals show)", param_hint="--fingerprint"
            )
        return given.strip().lower()
    try:
        return fingerprint_of(sys.stdin.read() if sql == "-" else str(sql))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--sql") from None


def _name_from(key_file: Path) -> str:
    """``dana.key`` -> ``dana``: keygen names the files after the approver."""
    name = key_file.name.removesuffix(PRIVATE_SUFFIX)
    if name == key_file.name:
        raise click.UsageError(f"cannot tell the approver from {key_file}; give --approver NAME")
    return name


def _private_key(key_file: Path) -> Ed25519PrivateKey:
    try:
        return load_private_key(key_file)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None


def _check_listed(
    settings: ApprovalSettings, approver: str, key_file: Path, key: Ed25519PrivateKey
) -> None:
    """Fail now, not at the requester's statement, if the sidecar would refuse the token."""
    listed = settings.approvers.get(approver)
    if listed is None:
        raise click.ClickException(f"{approver!r} is not an approver in the config")
    if listed.revoked:
        raise click.ClickException(f"approver {approver!r} is revoked in the config")
    if not same_key(listed.public_key, key.public_key()):
        raise click.ClickException(
            f"{key_file} is not the key the config lists for approver {approver!r}"
        )


def _ttl(ttl: str | None, settings: ApprovalSettings | None) -> int:
    maximum = settings.max_ttl if settings else BUILTIN_MAX_TTL
    if ttl is None:
        return settings.default_ttl if settings else DEFAULT_TTL
    try:
        seconds = parse_duration(ttl, "--ttl")
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    if not 0 < seconds <= maximum:
        raise click.BadParameter(
            f"must be more than 0 and at most {maximum} s"
            + (" (approvals.max_ttl)" if settings else " (give --config for the sidecar's limit)"),
            param_hint="--ttl",
        )
    return seconds


def _request_store(config_file: Path | None) -> RequestStore:
    try:
        settings = (
            load_approval_settings(config_file) if config_file else approval_settings({}, Path())
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    path = Path(settings.requests)
    if not path.is_file():
        raise click.ClickException(
            f"no approval requests file at {path}; give --config with the sidecar's config file"
        )
    try:
        return RequestStore(path)
    except StoreError as exc:
        raise click.ClickException(f"{exc} (run this as the sidecar's user)") from None
