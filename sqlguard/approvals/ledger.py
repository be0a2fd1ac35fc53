"""The ledger of used token ids: what makes each approval token good for one statement, once.

``consume`` is an atomic insert-if-absent of the token's id: it answers True to exactly one
caller per id, whether the callers are tasks of one sidecar, processes on one host sharing a
SQLite file, or sidecars on many hosts sharing a PostgreSQL table. An id is kept until its
token has expired plus ``retain`` seconds (more than any clock skew, so a token the verifier
would still accept is never forgotten), then purged opportunistically by a later ``consume``.

A ledger that cannot answer raises ``LedgerError``: the caller must refuse the statement
(fail closed), never let it through unrecorded.
"""

from __future__ import annotations

import asyncio  # noqa: TID251 - the ledgers are I/O adapters, awaited by the shell
import re
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

import asyncpg

from sqlguard.approvals.sqlitefile import StoreError, open_sqlite
from sqlguard.approvals.tokens import Approval

RETAIN_AFTER_EXPIRY = 3600
DEFAULT_TABLE = "sqlguard_used_approvals"
_PG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_TABLE = re.compile(r"(?:[a-z_][a-z0-9_]{0,39}\.)?[a-z_][a-z0-9_]{0,39}")


class LedgerError(RuntimeError):
    """The ledger could not record a use: refuse the statement and say the ledger is down."""


class Ledger(Protocol):
    """Where used token ids are kept; see the module docstring."""

    async def connect(self) -> None:
        """Open now, to fail at startup rather than at the first approval (else lazy)."""

    async def consume(self, approval: Approval, now: int) -> bool:
        """True the first time ``approval.id`` is presented, False ever after."""

    async def close(self) -> None:
        """Release connections and files."""


def open_ledger(url_or_path: str, *, retain: int = RETAIN_AFTER_EXPIRY) -> Ledger:
    """A PostgreSQL ledger for ``postgresql://`` URLs, else a SQLite ledger at that path."""
    if url_or_path.startswith(("postgresql://", "postgres://")):
        return PostgresLedger(url_or_path, retain=retain)
    return SqliteLedger(Path(url_or_path), retain=retain)


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS used_approvals (
    id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, used_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS used_approvals_expiry ON used_approvals (expires_at);
"""


class SqliteLedger:
    """Used ids in a SQLite file; safe for several processes on one host (not network disks).

    Each ``consume`` is one transaction with a synced commit, run in a worker thread
    (``asyncio.to_thread``) because an fsync can take milliseconds the event loop must not
    lose. A lock keeps this object's one connection to one statement at a time.
    """

    def __init__(self, path: Path, *, retain: int = RETAIN_AFTER_EXPIRY) -> None:
        self._path = path
        self._retain = retain
        self._lock = threading.Lock()
        try:
            self._db: sqlite3.Connection | None = open_sqlite(path, _SQLITE_SCHEMA, durable=True)
        except StoreError as exc:
            raise LedgerError(f"approval ledger: {exc}") from exc

    async def connect(self) -> None:
        """Already open: the file was opened by the constructor."""

    async def consume(self, approval: Approval, now: int) -> bool:
        return await asyncio.to_thread(self._consume, approval.id, approval.expires_at, now)

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _consume(self, token_id: str, expires_at: int, now: int) -> bool:
        with self._lock:
            if self._db is None:
                raise LedgerError(f"approval ledger {self._path} is closed")
            try:
                return _insert_once(self._db, token_id, expires_at, now, now - self._retain)
            except sqlite3.Error as exc:
                raise LedgerError(f"approval ledger {self._path}: {exc}") from exc


def _insert_once(db: sqlite3.Connection, token_id: str, expires: int, now: int, cut: int) -> bool:
    """Insert-if-absent and purge in one transaction; BEGIN IMMEDIATE takes the write lock
    first, so processes queue (busy timeout) instead of failing on a lock upgrade."""
    db.execute("BEGIN IMMEDIATE")
    try:
        inserted = db.execute(
            "INSERT INTO used_approvals (id, expires_at, used_at) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (token_id, expires, now),
        ).rowcount
        db.execute("DELETE FROM used_approvals WHERE expires_at < ?", (cut,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return inserted == 1


class PostgresLedger:
    """Used ids in a PostgreSQL table, for sidecars on several hosts sharing one ledger.

    ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` is atomic in PostgreSQL: of two
    concurrent inserts of one id, the second waits for the first to commit and then inserts
    nothing. Requesters must not be able to write this table (a deleted row revives a
    token): keep it in a database or schema they cannot reach.
    """

    def __init__(
        self, dsn: str, table: str = DEFAULT_TABLE, *, retain: int = RETAIN_AFTER_EXPIRY
    ) -> None:
        if not _TABLE.fullmatch(table):
            raise LedgerError(f"ledger table {table!r} must be [schema.]name, lower case")
        self._dsn = dsn
        self._table = ".".join(f'"{part}"' for part in table.split("."))
        self._index = f'"{table.rpartition(".")[2]}_expires_at"'
        self._retain = retain
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def connect(self) -> None:
        await self._ready()

    async def consume(self, approval: Approval, now: int) -> bool:
        pool = await self._ready()
        try:
            async with pool.acquire() as connection, connection.transaction():
                inserted = await connection.fetchval(
                    f"INSERT INTO {self._table} (id, expires_at, used_at) VALUES ($1, $2, $3)"
                    " ON CONFLICT (id) DO NOTHING RETURNING id",
                    approval.id,
                    approval.expires_at,
                    now,
                )
                await connection.execute(
                    f"DELETE FROM {self._table} WHERE expires_at < $1", now - self._retain
                )
        except _PG_ERRORS as exc:
            raise LedgerError(f"approval ledger table {self._table}: {exc}") from exc
        return inserted is not None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _ready(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await self._open_pool()
        return self._pool

    async def _open_pool(self) -> asyncpg.Pool:
        try:
            pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=2, command_timeout=10)
        except _PG_ERRORS as exc:
            # The message names no DSN: it may hold a password.
            raise LedgerError(f"approval ledger: cannot connect to PostgreSQL: {exc}") from exc
        try:
            await self._create_table(pool)
        except _PG_ERRORS as exc:
            await pool.close()
            raise LedgerError(f"approval ledger: cannot create {self._table}: {exc}") from exc
        return pool

    async def _create_table(self, pool: asyncpg.Pool) -> None:
        """Under an advisory lock: concurrent CREATE TABLE IF NOT EXISTS can still collide."""
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"sqlguard ledger {self._table}"
            )
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} (id text PRIMARY KEY,"
                " expires_at bigint NOT NULL, used_at bigint NOT NULL)"
            )
            await connection.execute(
                f"CREATE INDEX IF NOT EXISTS {self._index} ON {self._table} (expires_at)"
            )
