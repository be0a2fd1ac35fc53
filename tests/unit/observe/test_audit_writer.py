"""The writer: chained files on disk, rotation, restart, crash leftovers, and never blocking."""

from __future__ import annotations

import errno
import json
import threading
import time
from pathlib import Path

import pytest
from audit_support import KEY, statement, wait_until, write_log

from sqlguard.observe import audit_writer
from sqlguard.observe.audit_config import Policy
from sqlguard.observe.audit_read import iter_records, log_files, verify_files
from sqlguard.observe.audit_writer import AuditLog


def test_records_are_written_chained_and_private(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.log"
    with AuditLog(path, KEY) as log:
        assert all(log.submit(statement(n)) for n in range(1, 11))
    assert log.records_written == 10 and log.queue_depth == 0
    assert path.stat().st_mode & 0o777 == 0o600
    result = verify_files(KEY, [path])
    assert result.ok and result.records == 10
    assert [r["text"] for r in iter_records([path])][:2] == ["SELECT 1", "SELECT 2"]


def test_submit_adds_a_timestamp_and_rejects_what_it_cannot_write(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.log", KEY) as log:
        log.submit({"type": "login", "user": "ann"})
        with pytest.raises(ValueError, match="must not set"):
            log.submit({"type": "login", "seq": 4})
        log.submit({"type": "login", "when": object()})  # a bug: the writer says so
    first, unwritable = iter_records([tmp_path / "audit.log"])
    assert first["ts"].endswith("Z") and len(first["ts"]) == 27
    assert unwritable["type"] == "unwritable_record" and unwritable["of"] == "login"
    assert verify_files(KEY, [tmp_path / "audit.log"]).ok


def built_late(text: str, seen: list[str]) -> dict[str, object]:
    seen.append(threading.current_thread().name)
    return {"type": "statement", "text": text}


def broken_recipe(text: str) -> dict[str, object]:
    raise KeyError(text)


def test_deferred_records_are_built_by_the_writer_stamped_when_queued(tmp_path: Path) -> None:
    seen: list[str] = []
    with AuditLog(tmp_path / "audit.log", KEY) as log:
        before = time.time()
        log.submit_deferred(built_late, "SELECT 1", seen)
        log.submit_deferred(broken_recipe, "SELECT 2")  # a bug: recorded, the chain goes on
        log.submit({"type": "login", "user": "ann"})
        after = time.time()
    late, broken, login = iter_records([tmp_path / "audit.log"])
    assert late["text"] == "SELECT 1" and seen and threading.main_thread().name not in seen
    stamped = audit_writer.utc_now(before)[:19], audit_writer.utc_now(after)[:19]
    assert stamped[0] <= late["ts"][:19] <= stamped[1]
    assert broken["type"] == "unwritable_record" and broken["of"] == "broken_recipe"
    assert "KeyError" in broken["error"] and login["user"] == "ann"
    assert verify_files(KEY, [tmp_path / "audit.log"]).ok


def test_records_queued_while_the_writer_takes_a_batch_are_all_written(tmp_path: Path) -> None:
    """Admission takes no lock: the writer copies its batch while the event loop appends,
    with recipes built on the writer's thread in between."""
    path = tmp_path / "audit.log"
    with AuditLog(path, KEY, fsync=False, group_commit=0.001, queue_size=100_000) as log:
        for n in range(1, 20_001):
            if n % 2:
                assert log.submit(statement(n))
            else:
                assert log.submit_deferred(statement, n)
    assert log.records_written == 20_000
    assert verify_files(KEY, [path]).records == 20_000
    assert [r["text"] for r in iter_records([path])] == [f"SELECT {n}" for n in range(1, 20_001)]


def test_rotation_continues_the_chain_across_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path, KEY, max_bytes=700) as log:
        for n in range(1, 41):
            log.submit(statement(n))
            wait_until(lambda: log.queue_depth == 0)  # one record per write: many rotations
    files = log_files(path)
    assert len(files) >= 4 and files[0].name == "audit.log.000001"
    assert verify_files(KEY, reversed(files)).records == 40 + len(files) - 1
    starts = [next(iter_records([f])) for f in files[1:]]
    assert [s["type"] for s in starts] == ["rotated_from"] * len(starts)
    assert starts[0]["file"] == "audit.log.000001"
    problem = verify_files(KEY, files[:1] + files[2:]).problem
    assert problem is not None and problem.kind == "missing"
    assert problem.file == str(files[2]) and problem.line == 1


def test_a_restart_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    for first in (1, 4):
        with AuditLog(path, KEY) as log:
            for n in range(first, first + 3):
                log.submit(statement(n))
    result = verify_files(KEY, [path])
    assert result.ok and result.last_seq == 6


def test_a_crash_leftover_is_kept_in_a_record_and_the_chain_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    lines = write_log(path, 3)
    with path.open("a", encoding="utf-8") as file:
        file.write(lines[0][:30])  # what a crash mid-write leaves
    assert verify_files(KEY, [path]).warnings[0].kind == "truncated"
    with AuditLog(path, KEY) as log:
        log.submit(statement(4))
    result = verify_files(KEY, [path])
    assert result.ok and not result.warnings and result.last_seq == 5
    recovered = list(iter_records([path]))[3]
    assert recovered["type"] == "crash_recovered" and recovered["discarded"] == lines[0][:30]


def test_submit_never_waits_for_a_slow_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_write = audit_writer._write_all

    def slow(fd: int | None, data: bytes) -> None:
        time.sleep(0.2)
        slow_write(fd, data)

    monkeypatch.setattr(audit_writer, "_write_all", slow)
    with AuditLog(tmp_path / "audit.log", KEY) as log:
        started = time.perf_counter()
        assert all(log.submit(statement(n)) for n in range(200))
        assert time.perf_counter() - started < 0.1
        assert log.queue_depth > 0
    assert verify_files(KEY, [tmp_path / "audit.log"]).records == 200


@pytest.fixture
def blocked_disk(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Writes wait until the returned event is set."""
    release, real_write = threading.Event(), audit_writer._write_all

    def held(fd: int | None, data: bytes) -> None:
        release.wait(5)
        real_write(fd, data)

    monkeypatch.setattr(audit_writer, "_write_all", held)
    return release


def test_fail_closed_stops_accepting_when_the_queue_is_full(
    tmp_path: Path, blocked_disk: threading.Event
) -> None:
    log = AuditLog(tmp_path / "audit.log", KEY, queue_size=3).start()
    for n in range(3):
        assert log.accepting and log.submit(statement(n))
    assert not log.accepting
    assert all(log.submit(statement(n)) for n in range(3, 6))  # events under way still queue
    assert not log.submit(statement(6)) and log.dropped == 1  # the hard cap: counted
    blocked_disk.set()
    wait_until(lambda: log.accepting)
    assert log.close() == 0 and log.records_written == 6


def test_fail_open_keeps_accepting_while_the_disk_fails_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk_full, real_write = threading.Event(), audit_writer._write_all
    disk_full.set()

    def maybe_full(fd: int | None, data: bytes) -> None:
        if disk_full.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    monkeypatch.setattr(audit_writer, "_write_all", maybe_full)
    log = AuditLog(tmp_path / "audit.log", KEY, policy=Policy.fail_open, retry=(0.01, 0.02))
    with log.start():
        log.submit(statement(1))
        wait_until(lambda: log.write_errors > 0)
        assert log.accepting and not log.healthy and log.queue_depth == 1
        assert "No space left" in log.last_error
        disk_full.clear()
        wait_until(lambda: log.healthy and log.queue_depth == 0)
    assert verify_files(KEY, [tmp_path / "audit.log"]).records == 1


def test_close_reports_records_it_could_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int | None, data: bytes) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(audit_writer, "_write_all", broken)
    log = AuditLog(tmp_path / "audit.log", KEY, retry=(0.01, 0.01)).start()
    log.submit(statement(1))
    assert log.close(timeout=0.1) == 1
    assert not log.submit(statement(2))


def test_a_log_whose_last_line_is_not_a_record_is_not_continued(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text(json.dumps({"hello": 1}) + "\n")
    with pytest.raises(audit_writer.AuditError, match="not an audit record"):
        AuditLog(path, KEY).start()
