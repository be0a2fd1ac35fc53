"""Pending approval requests, and the record of every token used or refused.

When a statement is refused for want of approval, the sidecar records who asked for what
(``record``); an approver reads the requests with ``sqlguard approvals list`` / ``show``
before signing. The statement is kept in full, literals included, because the approver must
judge the exact values (the file is created 0600 for that reason). Asking again for the same
statement updates the pending request instead of adding one.

The calls are synchronous: with WAL and ``synchronous=NORMAL`` a commit writes to the WAL
without an fsync, which takes well under a millisecond, so the shell may call them inline.
"""

from __future__ import annotations

import builtins
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlguard.approvals.sqlitefile import StoreError, open_sqlite
from sqlguard.approvals.tokens import Approval

MAX_STATEMENT_CHARS = 1_000_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, requester TEXT NOT NULL, database TEXT NOT NULL,
    fingerprint TEXT NOT NULL, statement TEXT NOT NULL, estimate_rows INTEGER,
    first_at INTEGER NOT NULL, last_at INTEGER NOT NULL, times INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'pending', approver TEXT, approval_id TEXT, used_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS pending_requests
    ON requests (requester, database, fingerprint) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS outcomes (
    at INTEGER NOT NULL, requester TEXT NOT NULL, approver TEXT NOT NULL,
    database TEXT NOT NULL, fingerprint TEXT NOT NULL, outcome TEXT NOT NULL,
    token_id TEXT NOT NULL
);
"""
_COLUMNS = (
    "id, requester, database, fingerprint, statement, estimate_rows, first_at, last_at, times,"
    " status, approver, approval_id, used_at"
)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A statement someone asked to run; ``times`` counts the refusals that asked for it.

    ``status`` is ``pending`` until a token for it is used, then ``used`` (with the approver,
    the token id and the time).
    """

    id: str
    requester: str
    database: str
    fingerprint: str
    statement: str
    estimate_rows: int | None
    first_at: int
    last_at: int
    times: int
    status: str
    approver: str | None
    approval_id: str | None
    used_at: int | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One approval used (``outcome`` = ``used``) or token refused (a ``Refused.reason``)."""

    at: int
    requester: str
    approver: str
    database: str
    fingerprint: str
    outcome: str
    token_id: str


class RequestStore:
    """The SQLite file of requests and outcomes; several processes may share it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_sqlite(self.path, _SCHEMA, durable=False)

    def record(
        self,
        requester: str,
        database: str,
        fingerprint: str,
        statement_text: str,
        estimate_rows: int | None,
        now: int,
    ) -> str:
        """Record (or refresh) the pending request; returns its short id, e.g. ``3f9a2c1d``."""
        values = (requester, database, fingerprint, statement_text[:MAX_STATEMENT_CHARS])
        for _ in range(3):  # a random 8-hex-digit id may, very rarely, be taken
            try:
                rows = self._rows(_UPSERT, (secrets.token_hex(4), *values, estimate_rows, now))
                return str(rows[0][0])
            except sqlite3.IntegrityError:
                continue
        raise StoreError(f"{self.path}: no free request id after 3 tries")

    def list(self, pending_only: bool = True, limit: int = 100) -> builtins.list[ApprovalRequest]:
        """The most recently asked requests first."""
        where = "WHERE status = 'pending'" if pending_only else ""
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM requests {where} ORDER BY last_at DESC, id LIMIT ?", (limit,)
        )
        return [ApprovalRequest(*row) for row in rows]  # type: ignore[arg-type]

    def get(self, request_id: str) -> ApprovalRequest | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM requests WHERE id = ?", (request_id,))
        return ApprovalRequest(*rows[0]) if rows else None  # type: ignore[arg-type]

    def mark_used(
        self, fingerprint: str, requester: str, approval: Approval, now: int | None = None
    ) -> str | None:
        """Close the pending request a used token answered; its id, or None if there was none
        (an approver may approve a statement before it is ever refused)."""
        used_at = int(time.time()) if now is None else now
        rows = self._rows(
            "UPDATE requests SET status = 'used', approver = ?, approval_id = ?, used_at = ?"
            " WHERE requester = ? AND database = ? AND fingerprint = ? AND status = 'pending'"
            " RETURNING id",
            (approval.approver, approval.id, used_at, requester, approval.database, fingerprint),
        )
        return str(rows[0][0]) if rows else None

    def record_outcome(
        self,
        requester: str,
        approver: str,
        fingerprint: str,
        outcome: str,
        token_id: str,
        now: int,
        database: str = "",
    ) -> None:
        """Log one token use or refusal (unknown parts as ``""``, e.g. of a malformed token)."""
        self._rows(
            "INSERT INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now, requester, approver, database, fingerprint, outcome, token_id),
        )

    def outcomes(self, requester: str, fingerprint: str, limit: int = 50) -> builtins.list[Outcome]:
        """The latest outcomes of tokens presented by ``requester`` for one statement."""
        rows = self._rows(
            "SELECT * FROM outcomes WHERE requester = ? AND fingerprint = ?"
            " ORDER BY at DESC LIMIT ?",
            (requester, fingerprint, limit),
        )
        return [Outcome(*row) for row in rows]  # type: ignore[arg-type]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, parameters: tuple[object, ...]) -> builtins.list[tuple[object, ...]]:
        """Run one statement (autocommitted) and fetch all its rows under the lock: a cursor
        not read to its end keeps the statement, and with it the write lock, open."""
        with self._lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise StoreError(f"approval requests {self.path}: {exc}") from exc


_UPSERT = """
INSERT INTO requests
    (id, requester, database, fingerprint, statement, estimate_rows, first_at, last_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
ON CONFLICT (requester, database, fingerprint) WHERE status = 'pending' DO UPDATE SET
    last_at = excluded.last_at, times = times + 1, statement = excluded.statement,
    estimate_rows = excluded.estimate_rows
RETURNING id
"""
