"""The audit log written by a real child process: records on disk and chained, a start that
fails says why, a killed writer loses nothing, a stalled one makes the sidecar fail closed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from audit_support import KEY, statement, wait_until, write_log

from sqlguard.observe.audit_config import AuditSettings, Policy
from sqlguard.observe.audit_process import AuditProcess
from sqlguard.observe.audit_read import iter_records, verify_files
from sqlguard.observe.audit_writer import AuditError


def settings(path: Path, **changes: object) -> AuditSettings:
    return AuditSettings(path, KEY, **changes)  # type: ignore[arg-type]


def texts(path: Path) -> list[str]:
    return [str(record["text"]) for record in iter_records([path]) if "text" in record]


def test_records_reach_the_chain_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditProcess(settings(path)) as log:
        assert log.accepting and log.healthy
        assert all(log.submit(statement(n)) for n in range(1, 101))
        assert log.submit_deferred(statement, 101)  # built by the sending thread
        log.submit({"type": "login", "user": "ann"})
        wait_until(lambda: log.records_written == 102)
        assert log.queue_depth == 0
    assert log.close() == 0
    result = verify_files(KEY, [path])
    assert result.ok and result.records == 102
    assert texts(path) == [f"SELECT {n}" for n in range(1, 102)]
    assert all(record["ts"].endswith("Z") for record in iter_records([path]))


def test_records_queued_while_batches_are_sent_are_all_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditProcess(
        settings(path, fsync=False, commit_interval=0.001, queue_size=100_000)
    ) as log:
        for n in range(1, 20_001):
            assert log.submit_deferred(statement, n) if n % 2 else log.submit(statement(n))
        wait_until(lambda: log.records_written == 20_000, timeout=60)
    assert texts(path) == [f"SELECT {n}" for n in range(1, 20_001)]
    assert verify_files(KEY, [path]).records == 20_000


def test_a_record_the_pipe_cannot_carry_is_recorded_as_such(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditProcess(settings(path)) as log:
        log.submit(statement(1))
        log.submit({"type": "login", "when": object()})  # a bug: the log says so
        log.submit(statement(2))
    kinds = [record["type"] for record in iter_records([path])]
    assert kinds == ["statement", "unwritable_record", "statement"]
    assert verify_files(KEY, [path]).ok


def test_a_log_that_cannot_be_continued_fails_the_start(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text('{"not": "an audit record"}\n')
    with pytest.raises(AuditError, match="cannot continue the audit log"):
        AuditProcess(settings(path)).start()


def test_a_killed_writer_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 3)  # an existing log, continued
    log = AuditProcess(settings(path), restart_delay=0.05).start()
    try:
        for n in range(4, 54):
            log.submit(statement(n))
        child = log._child
        assert child is not None
        os.kill(child.pid, signal.SIGKILL)
        wait_until(lambda: log._child is not child)
        for n in range(54, 104):
            log.submit(statement(n))
        wait_until(lambda: log.queue_depth == 0 and log.healthy, timeout=20)
        assert "exit status -9" in log.last_error
    finally:
        assert log.close() == 0
    assert verify_files(KEY, [path]).ok
    written = texts(path)
    assert set(written) == {f"SELECT {n}" for n in range(1, 104)}  # at least once, in order
    assert [int(text.split()[1]) for text in written] == sorted(
        int(text.split()[1]) for text in written
    )


def test_a_stalled_writer_makes_the_log_refuse_then_recover(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditProcess(settings(path, queue_size=20)) as log:
        child = log._child
        assert child is not None
        os.kill(child.pid, signal.SIGSTOP)
        try:
            for n in range(1, 21):
                assert log.submit(statement(n))
            assert not log.accepting  # fail closed: 20 records wait for the disk
            for n in range(21, 41):
                assert log.submit(statement(n))  # events under way still queue ...
            assert not log.submit(statement(41))  # ... up to twice queue_size
            assert log.dropped == 1
        finally:
            os.kill(child.pid, signal.SIGCONT)
        wait_until(lambda: log.accepting and log.queue_depth == 0, timeout=20)
    assert texts(path) == [f"SELECT {n}" for n in range(1, 41)]


def test_fail_open_keeps_accepting(tmp_path: Path) -> None:
    with AuditProcess(settings(tmp_path / "audit.log", policy=Policy.fail_open)) as log:
        assert log.accepting
