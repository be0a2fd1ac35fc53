"""A really full disk: writes fail, the fail-closed policy refuses, and recovery loses nothing.

Two ways to fill a disk for real: a file size limit (RLIMIT_FSIZE, in a child process so the
test runner is not limited; writes past it fail with EFBIG), and, when the tests run as root,
a 64 KiB tmpfs filled to the last byte (ENOSPC).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_support import KEY, statement, wait_until

from sqlguard.observe.audit_read import verify_files
from sqlguard.observe.audit_writer import AuditLog

_CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys, time
    from pathlib import Path
    from sqlguard.observe.audit_writer import AuditLog

    def wait_until(predicate):
        deadline = time.monotonic() + 5
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.005)

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    log = AuditLog(Path(sys.argv[1]), sys.argv[2].encode(), queue_size=50, retry=(0.01, 0.02))
    log.start()
    for n in range(60):
        log.submit({"type": "statement", "user": "ann", "text": "SELECT %d" % n})
    wait_until(lambda: log.write_errors > 0)
    during = {"accepting": log.accepting, "healthy": log.healthy, "queued": log.queue_depth,
              "size": Path(sys.argv[1]).stat().st_size, "error": log.last_error}
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
    wait_until(lambda: log.accepting and log.queue_depth == 0)
    print(json.dumps({"during": during, "left": log.close(), "written": log.records_written}))
    """
)


def test_file_size_limit_fails_closed_then_recovers_every_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), KEY.decode()],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    during = report["during"]
    assert not during["accepting"] and not during["healthy"] and during["queued"] > 0
    assert during["size"] <= 4096 and "too large" in during["error"]
    assert (report["left"], report["written"]) == (0, 60)
    result = verify_files(KEY, [path])
    assert result.ok and not result.warnings and result.records == 60


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, or skip: mounting needs root (CAP_SYS_ADMIN)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)  # -l: even if a test failed


def _fill(path: Path) -> None:
    """Write ``path`` until the file system has no byte left."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(descriptor, b"x" * 1024)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(descriptor)


def test_full_tmpfs_fails_closed_then_recovers_every_record(tiny_tmpfs: Path) -> None:
    path = tiny_tmpfs / "audit.log"
    log = AuditLog(path, KEY, queue_size=10, retry=(0.01, 0.02)).start()
    log.submit(statement(0))
    wait_until(lambda: log.records_written == 1)
    _fill(tiny_tmpfs / "filler")
    for n in range(1, 16):
        assert log.submit(statement(n))
    wait_until(lambda: log.write_errors > 0)
    assert not log.accepting and not log.healthy and log.queue_depth == 15
    assert "No space left" in log.last_error
    (tiny_tmpfs / "filler").unlink()
    wait_until(lambda: log.accepting and log.queue_depth == 0)
    assert log.close() == 0 and log.records_written == 16
    result = verify_files(KEY, [path])
    assert result.ok and result.records == 16
