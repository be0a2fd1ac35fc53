"""The audit log writer: ``submit`` never blocks the data path, and no record is lost silently.

``submit`` only appends to a bounded in-memory queue (``submit_deferred`` appends the recipe
of a record, built later on the thread that takes it off the queue). One thread takes batches
from the front, seals them into the chain, writes, fsyncs, and only then removes them from the queue
and adopts the new chain position. A failed write (disk full, file too large, I/O error)
therefore loses nothing: the file is cut back to its last complete record, the records stay
queued, the thread retries with backoff, and the first write that succeeds recovers.

While records cannot be written, the ``policy`` decides what the proxy does (it asks
``accepting`` before each statement):

* ``fail_closed`` (default): not accepting while the disk fails or ``queue_size`` records wait;
  the proxy refuses statements with ``UNAVAILABLE_MESSAGE``. Events already under way
  (a statement finishing, a connection closing) still queue, up to twice ``queue_size``.
* ``fail_open``: always accepting. Beyond twice ``queue_size`` a record is refused by
  ``submit`` (which returns False), counted in ``dropped`` and logged: never silently.

On start the writer continues the chain from the last complete record on disk; an unfinished
line left by a crash is cut off and kept, as text, in a ``crash_recovered`` record.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

from sqlguard.observe.audit_chain import CHAIN_FIELDS, AuditChain, parse_record
from sqlguard.observe.audit_config import (
    DEFAULT_COMMIT_INTERVAL,
    DEFAULT_MAX_BYTES,
    DEFAULT_QUEUE_SIZE,
    AuditSettings,
    Policy,
)
from sqlguard.observe.audit_read import rotated_files, rotated_name

log = logging.getLogger("sqlguard.audit")

BATCH = 512
"""Records per write and fsync: large enough to amortise fsync, small enough to retry."""
UNAVAILABLE_SQLSTATE = "53000"
"""insufficient_resources: what the proxy answers while the log is not accepting."""
UNAVAILABLE_MESSAGE = "sqlguard cannot write its audit log; statements are refused until it can"


class AuditError(RuntimeError):
    """The existing log cannot be continued (its last line is not an audit record)."""


# The last whole second formatted, as one tuple: replaced in a single assignment, so the
# proxy's thread and the writer's never see a second paired with another second's text.
_formatted_second: tuple[int, str] = (-1, "")


def utc_now(now: float | None = None) -> str:
    """RFC 3339 UTC with microseconds, the ``ts`` of every record: now, or at ``now`` (seconds
    since the epoch).

    The date and time of day are formatted once per second (every statement asks).

    >>> len(utc_now()), utc_now()[-1], utc_now(0.25)
    (27, 'Z', '1970-01-01T00:00:00.250000Z')
    """
    global _formatted_second
    if now is None:
        now = time.time()
    second = int(now)
    cached, text = _formatted_second
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _formatted_second = (second, text)
    return f"{text}.{int((now - second) * 1_000_000):06d}Z"


Deferred = tuple[Callable[..., dict[str, Any]], tuple[Any, ...], float]
"""A record queued as its recipe: ``build(*args)``, stamped with the time it was queued."""
Queued = dict[str, Any] | Deferred


def built(item: Queued) -> dict[str, Any]:
    """A queued record, built now if it was queued by ``submit_deferred``."""
    if isinstance(item, dict):
        return item
    build, args, now = item
    try:
        record = build(*args)
    except Exception as exc:  # a bug in a recipe: say so in the log, keep the chain going
        log.exception("audit log: a record could not be built")
        record = {"type": "unwritable_record", "of": build.__name__, "error": repr(exc)}
    record["ts"] = utc_now(now)
    return record


class AuditQueue:
    """What the proxy sees of an audit log: records admitted into a bounded queue, and
    statements admitted by the policy (see the module docstring). Subclasses own the queue:
    ``queue_depth`` counts the records not yet on disk, ``_put`` adds one (called without
    ``_cond``: it takes it only to notify)."""

    policy: Policy
    last_error: str
    dropped: int
    _queue_size: int
    _closing: bool
    _healthy: bool
    _cond: threading.Condition

    @property
    def queue_depth(self) -> int:
        raise NotImplementedError

    @property
    def healthy(self) -> bool:
        """Did the last write succeed?"""
        return self._healthy

    @property
    def accepting(self) -> bool:
        """May the proxy run new statements? (See the module docstring for the policies.)"""
        if self._closing:
            return False
        if self.policy is Policy.fail_open:
            return True
        return self._healthy and self.queue_depth < self._queue_size

    def submit(self, record: dict[str, Any]) -> bool:
        """Queue ``record`` (``ts`` added to it if missing) without waiting for the disk; the
        log keeps it, so the caller must not change it afterwards.

        False means it was not queued (closed, or the hard cap reached): counted and logged.
        Raises ValueError for a record that sets the chain's own fields. A record JSON cannot
        carry is found by the writer, which logs it and records that it could not (checking
        here would serialise every record twice on the proxy's hot path).
        """
        if CHAIN_FIELDS & record.keys():
            raise ValueError(f"audit records must not set {sorted(CHAIN_FIELDS)}")
        if "ts" not in record:
            record["ts"] = utc_now()
        return self._admit(record)

    def submit_deferred(self, build: Callable[..., dict[str, Any]], *args: Any) -> bool:
        """Queue the record ``build(*args)`` will make, stamped now, as ``submit`` does;
        ``build`` runs on the thread that takes records off the queue, so it must not set the
        chain's fields or ``ts``, and ``args`` must not change afterwards.

        Why: every statement is recorded, and building and stamping its record in the event
        loop cost about 30 µs of CPU there (pgbench -S -M prepared -c 8, timed in the running
        sidecar), between system calls that leave the caches cold; the sending thread builds a
        whole batch in one go for a fraction of that."""
        return self._admit((build, args, time.time()))

    def _admit(self, item: Queued) -> bool:
        """Without the lock: every statement passes here, on the event loop. Appends to the
        queue and takes from its other end are atomic; ``_put`` takes the lock only to wake
        a consumer that waits for a first record."""
        if not self._closing and self.queue_depth < 2 * self._queue_size:
            self._put(item)
            return True
        self.dropped += 1
        refused = self.dropped
        if refused == 1 or refused % 1000 == 0:
            log.error("audit log: %d record(s) could not be queued: %s", refused, self.last_error)
        return False

    def _put(self, item: Queued) -> None:
        raise NotImplementedError

    def close(self, timeout: float = 10.0) -> int:
        raise NotImplementedError

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AuditLog(AuditQueue):
    """The chained, rotated JSON-lines audit log of one sidecar. ``start()`` before use."""

    def __init__(
        self,
        path: Path,
        key: bytes,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        policy: Policy = Policy.fail_closed,
        fsync: bool = True,
        retry: tuple[float, float] = (0.05, 2.0),
        group_commit: float = DEFAULT_COMMIT_INTERVAL,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.path, self.policy = path, policy
        self._on_progress = on_progress  # after every write attempt, on the writer thread
        self._max_bytes, self._queue_size = max_bytes, queue_size
        self._fsync, self._retry = fsync, retry
        self._group_commit = group_commit
        self._writer_idle = False  # the writer waits for a first record (notify it)
        self._queue: deque[Queued] = deque()
        self._cond = threading.Condition()
        self._chain = AuditChain(key)
        self._prefix: list[dict[str, Any]] = []  # the writer's own records, due first
        self._fd: int | None = None
        self._size = 0  # bytes of complete records in the live file
        self._healthy, self._closing, self._abandon = True, False, False
        self._thread: threading.Thread | None = None
        self.write_errors = self.records_written = self.dropped = 0
        self.last_error = ""

    @classmethod
    def from_settings(
        cls, settings: AuditSettings, on_progress: Callable[[], None] | None = None
    ) -> AuditLog:
        return cls(
            settings.path,
            settings.key,
            max_bytes=settings.max_bytes,
            queue_size=settings.queue_size,
            policy=settings.policy,
            fsync=settings.fsync,
            group_commit=settings.commit_interval,
            on_progress=on_progress,
        )

    def start(self) -> AuditLog:
        """Continue the chain on disk and start the writing thread (raises if it cannot)."""
        if self._thread is not None:
            raise RuntimeError("the audit log is already started")
        try:
            self._resume()
        except BaseException:
            self._close_file()
            raise
        self._thread = threading.Thread(target=self._run, name="sqlguard-audit", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> AuditLog:
        """Start, unless ``start()`` was already called."""
        return self if self._thread else self.start()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def _put(self, item: Queued) -> None:
        self._queue.append(item)
        # Waking the writer costs a futex call and a GIL hand-over: do it only when it
        # waits for a first record or a batch is full (group commit, _gather). It sets
        # _writer_idle under the lock before it checks the queue, so no append is missed.
        if self._writer_idle or len(self._queue) >= BATCH:
            with self._cond:
                self._cond.notify()

    def close(self, timeout: float = 10.0) -> int:
        """Write what is queued (waiting at most ``timeout`` s); return how many were not."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout)
        with self._cond:
            left, self._abandon = len(self._queue), True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(1.0)
        if left:
            log.error("audit log closed with %d record(s) unwritten: %s", left, self.last_error)
        return left

    def _resume(self) -> None:
        """Adopt the chain position of the last complete record; cut off a crash's leftover."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = _open_append(self.path)
        line, unfinished = _read_tail(self.path)
        if unfinished:
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - len(unfinished))
            text = unfinished.decode(errors="replace")
            self._prefix.append({"ts": utc_now(), "type": "crash_recovered", "discarded": text})
        self._size = os.fstat(self._fd).st_size
        older = rotated_files(self.path)
        if not line and older:
            line = _read_tail(older[-1])[0]
        if line:
            self._chain = _chain_after(self._chain.key, line, self.path)

    def _run(self) -> None:
        delay = self._retry[0]
        while batch := self._next_batch():
            written = self._write(batch)
            if self._on_progress is not None:
                self._on_progress()
            if written:
                delay = self._retry[0]
                self._gather()
            elif not self._pause(delay):
                break
            else:
                delay = min(delay * 2, self._retry[1])
        self._close_file()

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _next_batch(self) -> list[dict[str, Any]]:
        """The oldest queued records (left queued until written); empty means stop."""
        with self._cond:
            self._writer_idle = True
            self._cond.wait_for(lambda: self._queue or self._closing or self._abandon)
            self._writer_idle = False
            # Copied in one C call: appends on the event loop would break a Python-level
            # iteration over the deque.
            items = [] if self._abandon else list(islice(self._queue, BATCH))
        return [built(item) for item in items]

    def _gather(self) -> None:
        """Group commit: after a write, wait ``group_commit`` seconds for more records
        (unless BATCH are waiting), so a steady stream of statements costs one write and fsync
        per interval, not per record."""
        with self._cond:
            self._cond.wait_for(
                lambda: len(self._queue) >= BATCH or self._closing or self._abandon,
                timeout=self._group_commit,
            )

    def _pause(self, delay: float) -> bool:
        """Wait before retrying; False when ``close`` gave up waiting."""
        with self._cond:
            self._cond.wait_for(lambda: self._abandon, timeout=delay)
            return not self._abandon

    def _write(self, batch: list[dict[str, Any]]) -> bool:
        chain = self._chain.copy()
        try:
            self._prepare_file()
            records = [*self._prefix, *batch]
            data = "".join(_sealed(chain, record) + "\n" for record in records).encode()
            _write_all(self._fd, data)
            if self._fsync:
                os.fsync(self._fd)  # type: ignore[arg-type]
        except OSError as exc:
            self._failed(exc)
            return False
        self._written(chain, len(data), len(batch))
        return True

    def _prepare_file(self) -> None:
        """Reopen if needed, cut a failed write's partial line, and rotate when full."""
        if self._fd is None:
            self._fd = _open_append(self.path)
        if os.fstat(self._fd).st_size != self._size:
            os.ftruncate(self._fd, self._size)
        if self._size >= self._max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        """Rename the live file to the next number; the chain goes on in a new live file."""
        self._close_file()
        older = rotated_files(self.path)
        number = int(older[-1].name.rpartition(".")[2]) + 1 if older else 1
        target = rotated_name(self.path, number)
        os.rename(self.path, target)
        self._size = 0
        self._prefix.append({"ts": utc_now(), "type": "rotated_from", "file": target.name})
        self._fd = _open_append(self.path)

    def _failed(self, exc: OSError) -> None:
        with self._cond:
            self.write_errors += 1
            self.last_error = f"{self.path}: {exc.strerror or exc}"
            was_healthy, self._healthy = self._healthy, False
        if was_healthy:
            log.error("audit log: cannot write (%s); policy %s", self.last_error, self.policy)

    def _written(self, chain: AuditChain, size: int, count: int) -> None:
        with self._cond:
            for _ in range(count):
                self._queue.popleft()
            self._chain, self._size, self._prefix = chain, self._size + size, []
            self.records_written += count
            recovered, self._healthy = not self._healthy, True
        if recovered:
            log.warning("audit log: writing again after %d error(s)", self.write_errors)


def _open_append(path: Path) -> int:
    """The live file for appending, created 0600: the log holds statement text."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _sealed(chain: AuditChain, record: dict[str, Any]) -> str:
    """The record's line; a record JSON cannot carry (a bug) leaves a record saying so."""
    try:
        return chain.seal(record)
    except (TypeError, ValueError) as exc:
        log.error("audit log: a %s record could not be written: %s", record.get("type"), exc)
        kind = str(record.get("type"))
        return chain.seal(
            {"ts": utc_now(), "type": "unwritable_record", "of": kind, "error": str(exc)}
        )


def _write_all(fd: int | None, data: bytes) -> None:
    """Write all of ``data``; a short write at a size limit is followed by the real error."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]  # type: ignore[arg-type]


def _read_tail(path: Path) -> tuple[bytes, bytes]:
    """The last complete line of ``path`` (without newline), and any unfinished bytes after."""
    with path.open("rb") as file:
        end = file.seek(0, os.SEEK_END)
        start, buffer = end, b""
        while start > 0 and buffer.count(b"\n") < 2:
            start = max(0, start - 65536)
            file.seek(start)
            buffer = file.read(end - start)
    complete, newline, unfinished = buffer.rpartition(b"\n")
    return complete.rpartition(b"\n")[2] if newline else b"", unfinished


def _chain_after(key: bytes, line: bytes, path: Path) -> AuditChain:
    record = parse_record(line.decode(errors="replace"))
    if record is None:
        raise AuditError(f"{path}: the last line is not an audit record; move the file aside")
    return AuditChain(key, record["mac"], record["seq"] + 1)
