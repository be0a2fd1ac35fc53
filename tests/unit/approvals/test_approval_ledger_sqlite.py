"""The SQLite ledger: each token id is accepted exactly once, by tasks and by processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import stat
from dataclasses import replace
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from approval_support import NOW, approval

from sqlguard.approvals.ledger import LedgerError, SqliteLedger, open_ledger
from sqlguard.approvals.tokens import Approval


def test_first_use_only(tmp_path: Path) -> None:
    async def scenario() -> list[bool]:
        ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
        first, second = approval(), approval()
        try:
            return [
                await ledger.consume(first, NOW),
                await ledger.consume(first, NOW),
                await ledger.consume(second, NOW),
            ]
        finally:
            await ledger.close()

    assert asyncio.run(scenario()) == [True, False, True]


def test_many_concurrent_tasks_one_winner(tmp_path: Path) -> None:
    async def scenario() -> list[bool]:
        ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
        claims = approval()
        try:
            return await asyncio.gather(*(ledger.consume(claims, NOW) for _ in range(50)))
        finally:
            await ledger.close()

    assert sorted(asyncio.run(scenario())) == [False] * 49 + [True]


def test_survives_reopening(tmp_path: Path) -> None:
    claims = approval()

    async def use() -> bool:
        ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
        try:
            return await ledger.consume(claims, NOW)
        finally:
            await ledger.close()

    assert asyncio.run(use()) is True
    assert asyncio.run(use()) is False


def _consume_all(
    path: str, ids: list[str], barrier: Barrier, results: multiprocessing.Queue
) -> None:
    """In a child process: present every id once, all processes starting together."""

    async def run() -> list[bool]:
        ledger = SqliteLedger(Path(path))
        barrier.wait(timeout=60)  # a sibling that never arrives must not hang the run
        try:
            return [await ledger.consume(approval(id=token_id), NOW) for token_id in ids]
        finally:
            await ledger.close()

    results.put(asyncio.run(run()))


def test_two_processes_one_file(tmp_path: Path) -> None:
    ids = [approval().id for _ in range(200)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    path = str(tmp_path / "ledger.sqlite3")
    processes = [
        context.Process(target=_consume_all, args=(path, ids, barrier, results)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    try:
        answers = [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():  # a failed run must not leave a child behind
                process.kill()
                process.join()
    assert [a + b for a, b in zip(*answers, strict=True)] == [1] * len(ids)


def test_expired_ids_are_purged_after_the_retention(tmp_path: Path) -> None:
    old = approval(expires_at=NOW + 60)
    retain = 100

    async def scenario() -> list[bool]:
        ledger = SqliteLedger(tmp_path / "ledger.sqlite3", retain=retain)
        later = NOW + 60 + retain
        try:
            first = await ledger.consume(old, NOW)
            # At the retention's edge the id is still kept (and a replay refused)...
            still_kept = await ledger.consume(old, later)
            # ...one second later another consume purges it; so a (long expired) replay
            # would pass the ledger, which is why verify checks expiry first.
            await ledger.consume(approval(), later + 1)
            purged = await ledger.consume(old, later + 1)
            return [first, still_kept, purged]
        finally:
            await ledger.close()

    assert asyncio.run(scenario()) == [True, False, True]


def test_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.sqlite3"

    async def scenario() -> None:
        ledger = SqliteLedger(path)
        await ledger.consume(approval(), NOW)
        await ledger.close()

    asyncio.run(scenario())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_closed_ledger_fails_closed(tmp_path: Path) -> None:
    async def scenario() -> None:
        ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
        await ledger.close()
        await ledger.consume(approval(), NOW)

    with pytest.raises(LedgerError, match="closed"):
        asyncio.run(scenario())


def test_unusable_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(LedgerError, match="cannot open"):
        SqliteLedger(tmp_path / "file" / "ledger.sqlite3")


def test_open_ledger_by_kind(tmp_path: Path) -> None:
    async def kinds() -> list[str]:
        ledgers = [open_ledger(str(tmp_path / "l.sqlite3")), open_ledger("postgresql://h/db")]
        for ledger in ledgers:
            await ledger.close()
        return [type(ledger).__name__ for ledger in ledgers]

    assert asyncio.run(kinds()) == ["SqliteLedger", "PostgresLedger"]


def test_ids_not_tokens_are_single_use(tmp_path: Path) -> None:
    """Two tokens with one id (say, re-signed with another reason) count as one use."""
    claims: Approval = approval()

    async def scenario() -> list[bool]:
        ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
        try:
            return [
                await ledger.consume(claims, NOW),
                await ledger.consume(replace(claims, reason="again"), NOW),
            ]
        finally:
            await ledger.close()

    assert asyncio.run(scenario()) == [True, False]
