"""Reading the audit log back: which files, in which order, verified or filtered.

The live file is ``audit.log``; rotation renames it to ``audit.log.000001``, ``.000002``, ...
(numbers only ever grow, so the lowest is the oldest) and the chain goes on in a new live
file. Chain order is therefore: rotated files by number, then the live file.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BufferedReader
from pathlib import Path
from typing import Any

from sqlguard.observe.audit_chain import GENESIS, Problem, VerifyResult, parse_record, verify_lines

_ROTATED = re.compile(r"(.*)\.(\d+)")
_RELATIVE = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rotated_name(live: Path, number: int) -> Path:
    """The name the live file gets when it is rotated for the ``number``-th time."""
    return live.with_name(f"{live.name}.{number:06d}")


def rotated_files(live: Path) -> list[Path]:
    """The rotated files of ``live`` that exist, oldest first."""
    found = [path for path in live.parent.glob(f"{live.name}.*") if _number(path, live.name)]
    return chain_order(found)


def log_files(live: Path) -> list[Path]:
    """Every file of the log, in chain order (the live file last, if it exists)."""
    return rotated_files(live) + ([live] if live.exists() else [])


def chain_order(paths: Iterable[Path]) -> list[Path]:
    """Sort files as the chain runs: per log, rotated by number, then the live file.

    >>> [p.name for p in chain_order(map(Path, ["a.log", "a.log.000010", "a.log.000002"]))]
    ['a.log.000002', 'a.log.000010', 'a.log']
    """

    def key(path: Path) -> tuple[str, float]:
        match = _ROTATED.fullmatch(path.name)
        if match:
            return str(path.with_name(match[1])), int(match[2])
        return str(path), float("inf")

    return sorted(paths, key=key)


def _number(path: Path, live_name: str) -> int | None:
    match = _ROTATED.fullmatch(path.name)
    return int(match[2]) if match and match[1] == live_name else None


def verify_files(key: bytes, paths: Iterable[Path], *, partial: bool = False) -> VerifyResult:
    """Verify the chain through ``paths`` (put in chain order first).

    The first file must start the chain (seq 1 after ``GENESIS``) unless ``partial`` allows
    it to start later (older files archived elsewhere): then where it starts is a warning.
    """
    ordered = chain_order(paths)
    prev, seq = GENESIS, 1
    warnings: list[Problem] = []
    if partial and ordered:
        prev, seq, warnings = _chain_start(ordered[0])
    total = 0
    for index, path in enumerate(ordered):
        with path.open(encoding="utf-8", errors="surrogateescape", newline="\n") as lines:
            part = verify_lines(key, lines, prev, seq, last_file=index == len(ordered) - 1)
        part = part.in_file(str(path))
        total += part.records
        warnings += part.warnings
        if not part.ok:
            return VerifyResult(total, part.last_seq, part.last_mac, part.problem, tuple(warnings))
        prev, seq = part.last_mac, part.last_seq + 1
    return VerifyResult(total, seq - 1, prev, None, tuple(warnings))


def _chain_start(path: Path) -> tuple[str, int, list[Problem]]:
    """Where a chain that does not begin at genesis picks up: the first record's prev and seq."""
    first = next(_records_in(path), None)
    if first is None or first["seq"] == 1:
        return GENESIS, 1, []
    message = "chain starts here; earlier files not checked"
    return first["prev"], first["seq"], [Problem("start", 1, first["seq"], message, str(path))]


def iter_records(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """The records in ``paths`` in chain order, skipping lines that are not records.

    This does not verify: run ``verify_files`` for that.
    """
    for path in chain_order(paths):
        yield from _records_in(path)


def _records_in(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", errors="replace", newline="\n") as lines:
        for line in lines:
            record = parse_record(line.removesuffix("\n"))
            if record is not None:
                yield record


def tail_records(paths: Iterable[Path], count: int) -> list[dict[str, Any]]:
    """The last ``count`` records, reading files newest first only as far as needed."""
    found: deque[dict[str, Any]] = deque()
    for path in reversed(chain_order(paths)):
        if len(found) >= count:
            break
        found.extendleft(reversed(deque(_records_in(path), maxlen=count - len(found))))
    return list(found)


def follow_records(live: Path, poll: float = 0.5) -> Iterator[dict[str, Any]]:
    """Records appended to ``live`` from now on, through rotations; polls and never ends.

    The file is opened now, so nothing written after this call is missed; after a rotation
    the renamed file is read to its end through the open handle, then the file after it in
    chain order is opened (a rotated one, if the log rotated again meanwhile).
    """
    file = live.open("rb")
    file.seek(0, os.SEEK_END)
    return _follow(file, live, poll)


def _follow(file: BufferedReader, live: Path, poll: float) -> Iterator[dict[str, Any]]:
    pending = b""
    try:
        while True:
            replaced = _replaced(file, live)  # before reading: a renamed file gets no more
            chunk = file.read()
            if chunk:
                *lines, pending = (pending + chunk).split(b"\n")
                parsed = (parse_record(line.decode(errors="replace")) for line in lines)
                yield from (record for record in parsed if record is not None)
            elif replaced:
                following = _after(file, live)
                file.close()
                file, pending = following.open("rb"), b""
            else:
                time.sleep(poll)
    finally:
        file.close()


def _after(file: BufferedReader, live: Path) -> Path:
    """The file that continues the chain after the (rotated) one ``file`` reads."""
    files = log_files(live)
    inodes = [path.stat().st_ino for path in files]
    ours = os.fstat(file.fileno()).st_ino
    return files[inodes.index(ours) + 1] if ours in inodes[:-1] else live


def _replaced(file: BufferedReader, live: Path) -> bool:
    try:
        return os.stat(live).st_ino != os.fstat(file.fileno()).st_ino
    except FileNotFoundError:
        return False


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """What ``audit search`` keeps: every given criterion must match (None: any)."""

    user: str | None = None
    decision: str | None = None
    record_type: str | None = None
    since: datetime | None = None

    def __call__(self, record: dict[str, Any]) -> bool:
        checks: list[tuple[Any, Callable[[Any], bool]]] = [
            (self.user, lambda user: record.get("user") == user),
            (self.decision, lambda decision: record.get("decision") == decision),
            (self.record_type, lambda kind: record.get("type") == kind),
            (self.since, lambda since: _record_time(record) >= since),
        ]
        return all(wanted is None or test(wanted) for wanted, test in checks)


def _record_time(record: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(record.get("ts", "")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """A point in time: ISO 8601 (UTC if no zone given) or an age such as 90s, 15m, 1h, 2d.

    >>> parse_since("1h", datetime(2026, 1, 1, 12, tzinfo=UTC)).isoformat()
    '2026-01-01T11:00:00+00:00'
    >>> parse_since("2026-01-01T10:00").isoformat()
    '2026-01-01T10:00:00+00:00'
    """
    match = _RELATIVE.fullmatch(value.strip())
    if match:
        age = timedelta(seconds=int(match[1]) * _SECONDS[match[2]])
        return (now or datetime.now(UTC)) - age
    moment = datetime.fromisoformat(value.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
