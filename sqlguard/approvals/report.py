"""How ``sqlguard approvals list`` and ``show`` print requests to an approver's terminal.

The statement comes from the requester, who wants it approved: control and format characters
in it (terminal escapes, bidirectional overrides) could hide or reorder what the approver
reads, so every such character is shown as a visible ``\\u....`` escape instead.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import click

from sqlguard.approvals.refusals import Statement, moment
from sqlguard.approvals.requests import MAX_STATEMENT_CHARS, ApprovalRequest, Outcome

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SHOWN_AS_IS = frozenset("\n\t")
_SUMMARY_CHARS = 60


def visible(text: str) -> str:
    """``text`` with characters that could hide other text escaped.

    >>> visible("DROP\\u202e TABLE \\x1b[8mt")
    'DROP\\\\u202e TABLE \\\\u001b[8mt'
    """
    return "".join(
        f"\\u{ord(char):04x}"
        if char not in _SHOWN_AS_IS and unicodedata.category(char) in _HIDDEN
        else char
        for char in text
    )


def print_requests(requests: Sequence[ApprovalRequest]) -> None:
    """One line per request, as a table."""
    if not requests:
        click.echo("no approval requests")
        return
    header = ("ID", "LAST ASKED", "TIMES", "REQUESTER", "DATABASE", "STATUS", "STATEMENT")
    rows = [header, *(_row(request) for request in requests)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


def print_request(request: ApprovalRequest, outcomes: Sequence[Outcome]) -> None:
    """Everything an approver needs to decide, and the command to approve."""
    click.echo(f"request {request.id} ({request.status})")
    click.echo(f"  requester:   {visible(request.requester)}")
    click.echo(f"  database:    {visible(request.database)}")
    click.echo(f"  fingerprint: {request.fingerprint}")
    click.echo(
        f"  asked:       {request.times} time(s), first {moment(request.first_at)}, "
        f"last {moment(request.last_at)}"
    )
    if request.estimate_rows is not None:
        click.echo(f"  estimated rows: {request.estimate_rows}")
    if request.used_at is not None:
        click.echo(
            f"  approved by: {visible(request.approver or '')}, token {request.approval_id} used "
            f"{moment(request.used_at)}"
        )
    click.echo("statement:")
    for line in visible(request.statement.replace("\r\n", "\n")).splitlines() or [""]:
        click.echo(f"  {line}")
    if len(request.statement) >= MAX_STATEMENT_CHARS:
        click.echo(f"  (cut at {MAX_STATEMENT_CHARS} characters: do not approve unseen text)")
    click.echo("to approve it, run:")
    statement = Statement(request.requester, request.database, request.fingerprint)
    click.echo(f"  {statement.approve_command()}")
    for outcome in outcomes:
        click.echo(
            f"token {outcome.token_id or '?'} from {visible(outcome.approver) or '?'}: "
            f"{outcome.outcome} at {moment(outcome.at)}"
        )


def _row(request: ApprovalRequest) -> tuple[str, ...]:
    summary = visible(" ".join(request.statement.split()))
    if len(summary) > _SUMMARY_CHARS:
        summary = summary[: _SUMMARY_CHARS - 1] + "…"
    return (
        request.id,
        moment(request.last_at),
        str(request.times),
        visible(request.requester),
        visible(request.database),
        request.status,
        summary,
    )
