"""Opening the approvals' SQLite files: private, WAL, and shared safely by processes on a host.

Both files matter to security: the ledger's rows are what stops a replay (deleting one makes
a token usable again), and the request store holds full statements, literals included. So
they are created 0600 (SQLite gives its -wal and -shm files the same mode) in a directory
only the sidecar's user should be able to write. SQLite's locking does not work on network
file systems: several hosts must share a PostgreSQL ledger instead.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT = 10.0
"""Seconds a write waits for another process's write to finish (they take milliseconds)."""


class StoreError(RuntimeError):
    """An approvals file could not be opened, read or written; the message names the file."""


def open_sqlite(path: Path, schema: str, *, durable: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with ``schema`` applied.

    ``durable`` syncs every commit to disk (``synchronous=FULL``): a used token id lost in a
    power cut would make that token usable again until it expires.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            _create_private(path)
            return _connect(path, schema, durable)
        except sqlite3.OperationalError as exc:
            # Switching a new file to WAL while another process opens it too can answer
            # "database is locked" at once, without SQLite's busy wait: wait here instead.
            if not _busy(exc) or time.monotonic() > deadline:
                raise StoreError(f"cannot open {path}: {exc}") from exc
            time.sleep(0.02 + random.random() * 0.03)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc


def _connect(path: Path, schema: str, durable: bool) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        connection.executescript(schema)
    except BaseException:
        connection.close()
        raise
    return connection


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _create_private(path: Path) -> None:
    """Create the file 0600 if it is missing (SQLite would follow the umask, often 0644)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
