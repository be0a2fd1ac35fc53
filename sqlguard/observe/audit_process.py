"""The audit log as the sidecar uses it: the same calls as ``AuditLog``, written by a child.

Sealing records into the HMAC chain, serialising them and writing them is Python work that
held the proxy's GIL for about 30 µs per statement in the running sidecar, and its write and
fsync calls cost another 10-18 µs of system time (per-thread CPU, pgbench -S). Here the
proxy only queues the record; a thread sends batches, marshalled, to ``python -m
sqlguard.observe.audit_process``, which runs an ``AuditLog`` (chain, rotation, crash
recovery, retries: all of audit_writer) and reports after every write how many records are
on disk and whether the disk is healthy.

Nothing is lost on the way, and fail-closed still means what it says:

* a record counts as written only when the child reports it on disk; until then it is kept
  here, and ``accepting`` (asked before every statement) is False while the child reports
  an unhealthy disk, while ``queue_size`` records wait, or while no child runs;
* if the child dies (killed, out of memory), a new one is started after ``restart_delay``;
  it continues the chain from the file (cutting off a half-written line, as after any
  crash) and gets every record the old one had not reported written. A record the old child
  wrote just before dying without reporting it is then written twice: at least once, never
  lost;
* ``close`` hands over what is queued and waits for the child to write it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import marshal
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from sqlguard.observe.audit_config import AuditSettings, Policy
from sqlguard.observe.audit_writer import (
    BATCH,
    AuditError,
    AuditLog,
    AuditQueue,
    Queued,
    built,
)
from sqlguard.observe.helpers import finish, helper_command, helper_setup
from sqlguard.observe.pipes import read_frame, read_frames, write_frame, write_marshalled

log = logging.getLogger("sqlguard.audit")

START_TIMEOUT = 30.0
"""Seconds a child may take to open the log and continue its chain."""
STOP_TIMEOUT = 10.0
"""Seconds a writer told to finish may take to write what it holds."""


class AuditProcess(AuditQueue):
    """The sidecar's audit log, written by a child process; ``start()`` before use."""

    def __init__(
        self,
        settings: AuditSettings,
        *,
        log_level: str = "WARNING",
        log_format: str = "json",
        restart_delay: float = 1.0,
    ) -> None:
        self.path, self.policy = settings.path, settings.policy
        self._settings, self._queue_size = settings, settings.queue_size
        self._command = helper_command(__name__, log_level, log_format)
        self._restart_delay = restart_delay
        self._cond = threading.Condition()
        self._pending: deque[Queued] = deque()  # submitted, not yet sent
        self._sent: deque[Queued] = deque()  # sent to the child, not reported written
        self._child: subprocess.Popen[bytes] | None = None
        self._reported = 0  # records the current child has reported written
        self._errors_before = 0  # write errors of earlier children
        self._sender_idle = False
        self._healthy = self._closing = False
        self._threads: list[threading.Thread] = []
        self.write_errors = self.records_written = self.dropped = 0
        self.last_error = ""

    @classmethod
    def from_settings(
        cls, settings: AuditSettings, log_level: str = "WARNING", log_format: str = "json"
    ) -> AuditProcess:
        return cls(settings, log_level=log_level, log_format=log_format)

    def start(self) -> AuditProcess:
        """Start the child and wait until it has continued the chain on disk; raises
        AuditError with the child's reason if it cannot."""
        if self._threads:
            raise RuntimeError("the audit log is already started")
        child, status = self._spawn()
        with self._cond:
            self._adopt(child, status)
        for target, name in ((self._send, "sqlguard-audit-send"), (self._read, "sqlguard-audit")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __enter__(self) -> AuditProcess:
        return self if self._threads else self.start()

    @property
    def queue_depth(self) -> int:
        """Records not yet reported on disk."""
        return len(self._pending) + len(self._sent)

    def _put(self, item: Queued) -> None:
        self._pending.append(item)
        if self._sender_idle:  # set under the lock before it checks: no append is missed
            with self._cond:
                self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> int:
        """Hand over what is queued and wait (at most ``timeout`` s) for it to be written;
        return how many records were not."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            child, self._child = self._child, None
            left = self.queue_depth
        if child is not None:
            finish(child, STOP_TIMEOUT)
        if left:
            log.error("audit log closed with %d record(s) unwritten: %s", left, self.last_error)
        return left

    # ---- the child ----------------------------------------------------------------------

    def _spawn(self) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        """A child that has opened the log, and its first report; AuditError if it failed."""
        child = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert child.stdin is not None and child.stdout is not None
        try:
            write_frame(child.stdin, _settings_frame(self._settings))
            status = _first_report(child.stdout)
        except (OSError, AuditError) as exc:
            finish(child, STOP_TIMEOUT)
            raise AuditError(f"the audit writer process did not start: {exc}") from exc
        if "fatal" in status:
            finish(child, STOP_TIMEOUT)
            raise AuditError(status["fatal"])
        return child, status

    def _adopt(self, child: subprocess.Popen[bytes], status: dict[str, Any]) -> None:
        """Make ``child`` the writer (under the lock); what the last one had not written
        goes to it first."""
        self._child, self._reported = child, 0
        self._pending.extendleft(reversed(self._sent))
        self._sent.clear()
        self._report(status)
        self._cond.notify_all()

    def _report(self, status: dict[str, Any]) -> None:
        """A child's report (under the lock): records now on disk leave the queue."""
        written = status["written"] - self._reported
        for _ in range(written):
            self._sent.popleft()
        self._reported += written
        self.records_written += written
        self.write_errors = self._errors_before + status["errors"]
        self.last_error = status["error"] or self.last_error
        self._healthy = status["healthy"]

    # ---- threads ------------------------------------------------------------------------

    def _send(self) -> None:
        """Batches to the current child; what is sent stays in ``_sent`` until reported."""
        while True:
            with self._cond:
                self._sender_idle = True
                self._cond.wait_for(lambda: (self._pending and self._child) or self._closing)
                self._sender_idle = False
                child = self._child
                if child is None or (self._closing and not self._pending):
                    break
                count = min(len(self._pending), BATCH)
                batch = [self._pending.popleft() for _ in range(count)]
                self._sent.extend(batch)
            try:
                assert child.stdin is not None
                # Built here, off the lock; a batch sent again is built again, the same.
                write_marshalled(child.stdin, _marshalled([built(item) for item in batch]))
            except (OSError, ValueError):  # ValueError: close() closed the pipe
                pass  # the reader sees the child end, and the batch goes to the next one
            time.sleep(self._settings.commit_interval)  # records gather: one send per batch
        if child is not None and child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()  # end of input: the child writes what it has and exits

    def _read(self) -> None:
        """The child's reports; a new child when one ends before ``close``."""
        while True:
            child = self._child
            if child is None:
                return
            assert child.stdout is not None
            with contextlib.suppress(OSError, ValueError):  # ValueError: closed by close()
                for status in read_frames(child.stdout):
                    with self._cond:
                        self._report(status)
            code = child.wait()
            with self._cond:
                if self._closing:
                    return
                self._child, self._healthy = None, False
                self._errors_before = self.write_errors
                self.last_error = f"the audit writer process ended (exit status {code})"
            log.error(
                "audit log: %s; restarting it, refusing statements meanwhile", self.last_error
            )
            self._restart()

    def _restart(self) -> None:
        while not self._closing:
            time.sleep(self._restart_delay)
            try:
                child, status = self._spawn()
            except AuditError as exc:
                self.last_error = str(exc)
                log.error("audit log: %s; retrying", exc)
                continue
            with self._cond:
                self._adopt(child, status)
            log.warning("audit log: a new writer process continues the chain")
            return


def _marshalled(batch: list[dict[str, Any]]) -> bytes:
    """The batch as it crosses the pipe: a record holding a value marshal cannot carry (a
    bug) becomes a record saying so, as the writer does for one JSON cannot carry."""
    try:
        return marshal.dumps(batch)
    except ValueError:
        return marshal.dumps([_carried_record(record) for record in batch])


def _carried_record(record: dict[str, Any]) -> dict[str, Any]:
    try:
        marshal.dumps(record)
    except ValueError as exc:
        kind = str(record.get("type"))
        log.error("audit log: a %s record could not be written: %s", kind, exc)
        return {"ts": record["ts"], "type": "unwritable_record", "of": kind, "error": str(exc)}
    return record


def _settings_frame(settings: AuditSettings) -> dict[str, Any]:
    """The settings as plain values marshal can carry to the child."""
    return {
        **dataclasses.asdict(settings),
        "path": str(settings.path),
        "policy": str(settings.policy),
    }


def _settings_from(frame: dict[str, Any]) -> AuditSettings:
    return AuditSettings(
        **{**frame, "path": Path(frame["path"]), "policy": Policy(frame["policy"])}
    )


def _first_report(stdout: IO[bytes]) -> dict[str, Any]:
    ready, _, _ = select.select([stdout], [], [], START_TIMEOUT)
    if not ready:
        raise AuditError(f"no answer in {START_TIMEOUT:.0f} s")
    status = read_frame(stdout)
    if status is None:
        raise AuditError("it exited; see its error above")
    return dict(status)


def main(argv: Sequence[str] | None = None) -> int:
    """The writer process: settings, then batches of records, from stdin; a report after
    every write attempt on stdout."""
    helper_setup(__name__, argv)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    frame = read_frame(stdin)
    if frame is None:
        return 1
    lock = threading.Lock()
    audit: AuditLog | None = None

    def report(**extra: Any) -> None:
        assert audit is not None
        status = {
            "written": audit.records_written,
            "errors": audit.write_errors,
            "error": audit.last_error,
            "healthy": audit.healthy,
            **extra,
        }
        with lock, contextlib.suppress(OSError):
            write_frame(stdout, status)

    audit = AuditLog.from_settings(_settings_from(frame), on_progress=report)
    try:
        audit.start()
    except (OSError, AuditError) as exc:
        with contextlib.suppress(OSError):
            write_frame(stdout, {"fatal": f"cannot continue the audit log {audit.path}: {exc}"})
        return 1
    report()
    for batch in read_frames(stdin):
        for record in batch:
            audit.submit(record)
    audit.close()
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
