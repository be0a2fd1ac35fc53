"""Reading back: file order, partial chains, tail across files, following through rotation."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import pytest
from audit_support import KEY, statement, wait_until

from sqlguard.observe.audit_read import (
    follow_records,
    log_files,
    parse_since,
    tail_records,
    verify_files,
)
from sqlguard.observe.audit_writer import AuditLog


@pytest.fixture
def rotated_log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    with AuditLog(path, KEY, max_bytes=500) as log:
        for n in range(1, 13):
            log.submit(statement(n))
            wait_until(lambda: log.queue_depth == 0)
    return path


def test_log_files_are_in_chain_order_and_ignore_other_names(rotated_log: Path) -> None:
    (rotated_log.parent / "audit.log.bak").write_text("not ours\n")
    (rotated_log.parent / "other.log.000001").write_text("not ours\n")
    files = log_files(rotated_log)
    assert files[-1] == rotated_log and len(files) >= 3
    assert [f.name for f in files[:-1]] == sorted(f.name for f in files[:-1])
    assert all(f.name.startswith("audit.log.0") for f in files[:-1])


def test_archived_head_needs_partial_and_is_reported(rotated_log: Path) -> None:
    later = log_files(rotated_log)[1:]
    problem = verify_files(KEY, later).problem
    assert problem is not None and problem.kind == "missing" and problem.line == 1
    result = verify_files(KEY, later, partial=True)
    assert result.ok and [w.kind for w in result.warnings] == ["start"]


def test_tail_returns_the_last_records_in_chain_order(rotated_log: Path) -> None:
    last = tail_records(log_files(rotated_log), 5)
    texts = [record["text"] for record in last if record["type"] == "statement"]
    assert texts[-1] == "SELECT 12" and len(last) == 5
    assert [r["seq"] for r in last] == sorted(r["seq"] for r in last)
    files = log_files(rotated_log)
    assert len(tail_records(files, 1000)) == verify_files(KEY, files).records


@pytest.mark.timeout(10)
def test_follow_sees_every_new_record_through_rotations(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path, KEY) as log:
        log.submit(statement(0))
    coming = follow_records(path, poll=0.01)
    with AuditLog(path, KEY, max_bytes=500) as log:
        for n in range(1, 11):
            log.submit(statement(n))
            wait_until(lambda: log.queue_depth == 0)
    seen = [r.get("text") for r in islice(coming, 10 + len(log_files(path)) - 1)]
    assert [text for text in seen if text] == [f"SELECT {n}" for n in range(1, 11)]


def test_parse_since_accepts_ages_and_times() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_since("90s", now) == datetime(2026, 3, 1, 11, 58, 30, tzinfo=UTC)
    assert parse_since("2d", now).day == 27
    assert parse_since("2026-03-01T10:00:00+01:00").hour == 10
    with pytest.raises(ValueError):
        parse_since("last week")
