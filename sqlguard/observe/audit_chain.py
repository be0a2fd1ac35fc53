"""The audit log's hash chain, without I/O: seal records into JSON lines, and check lines.

Every record carries ``seq`` (1, 2, ... continuing across rotated files), ``prev`` (the ``mac``
of the record before it, or ``GENESIS`` for the very first) and ``mac``, an HMAC-SHA256 with
the operator's key over the canonical JSON of the record without ``mac``. Canonical JSON
(sorted keys, no spaces, UTF-8) gives every record exactly one spelling, so a verifier also
insists that each line *is* that spelling: no byte can change unnoticed. Without the key
nobody can recompute a mac, so altering, removing, inserting or reordering records breaks the
chain at the first record touched.

>>> chain = AuditChain(b"k" * 32)
>>> lines = [chain.seal({"type": "x"}) + "\\n", chain.seal({"type": "y"}) + "\\n"]
>>> verify_lines(b"k" * 32, lines).ok
True
>>> verify_lines(b"k" * 32, lines[1:]).problem.kind
'missing'
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

GENESIS = "0" * 64
"""The ``prev`` of the first record of a log: there is no record before it."""
CHAIN_FIELDS = frozenset({"seq", "prev", "mac"})
"""Set by sealing; a submitted record must not carry them."""


def canonical(record: Mapping[str, Any]) -> str:
    """The one spelling of ``record`` that is hashed and written: sorted keys, no blanks,
    non-ASCII as UTF-8, floats in their shortest form (orjson; NaN is written as null).

    >>> canonical({"b": 1, "a": "é"})
    '{"a":"é","b":1}'
    """
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


def mac_of(key: bytes, record: Mapping[str, Any]) -> str:
    """HMAC-SHA256 (hex) over the canonical JSON of ``record`` minus its ``mac`` field."""
    body = {name: value for name, value in record.items() if name != "mac"}
    return _mac(_keyed(key), canonical(body).encode())


@functools.lru_cache(maxsize=4)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 with ``key`` and no data, to copy for each record: OpenSSL 3 looks a
    digest up by name on every one-shot ``hmac.digest`` (4.9 µs a record; a copy, 2 µs)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def _mac(keyed: hmac.HMAC, data: bytes) -> str:
    mac = keyed.copy()
    mac.update(data)
    return mac.hexdigest()


class AuditChain:
    """Where the chain stands: the last mac written and the next sequence number."""

    def __init__(self, key: bytes, last_mac: str = GENESIS, next_seq: int = 1) -> None:
        self.key = key
        self.last_mac = last_mac
        self.next_seq = next_seq

    def seal(self, record: Mapping[str, Any]) -> str:
        """Chain ``record`` after the last one; return its JSON line (no newline).

        The line is ``canonical(record + seq, prev, mac)``; serialising twice with orjson
        costs less than splicing the mac into the first serialisation (measured), and this
        runs for every statement.
        """
        if "mac" in record:
            raise ValueError("a record to seal must not have a mac yet")
        body = {**record, "seq": self.next_seq, "prev": self.last_mac}
        mac = _mac(_keyed(self.key), orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        self.last_mac, self.next_seq = mac, self.next_seq + 1
        body["mac"] = mac
        return canonical(body)

    def copy(self) -> AuditChain:
        """A chain to seal a batch with, adopted only once the batch is on disk."""
        return AuditChain(self.key, self.last_mac, self.next_seq)


@dataclass(frozen=True, slots=True)
class Problem:
    """The first record that does not verify, and why.

    ``kind`` is one of: ``altered`` (mac mismatch or not canonical: edited, or the wrong key),
    ``missing`` (seq jumps ahead: records removed, or moved later), ``reordered`` (seq goes
    back, or ``prev`` is not the previous mac), ``malformed`` (not a JSON record),
    ``truncated`` (an unfinished last line: a crash while writing), ``start`` (the files do
    not begin at the start of the chain).
    """

    kind: str
    line: int
    seq: int | None
    message: str
    file: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else f"line {self.line}"
        seq = f"seq {self.seq}" if self.seq is not None else "seq ?"
        return f"{where}: {seq}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """How far the chain verified: ``last_seq``/``last_mac`` of the last good record."""

    records: int
    last_seq: int
    last_mac: str
    problem: Problem | None = None
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None

    def in_file(self, name: str) -> VerifyResult:
        """The same result with ``name`` filled into its problem and warnings."""
        problem = replace(self.problem, file=name) if self.problem else None
        warnings = tuple(replace(warning, file=name) for warning in self.warnings)
        return replace(self, problem=problem, warnings=warnings)


def verify_lines(
    key: bytes,
    lines: Iterable[str],
    start_prev: str = GENESIS,
    start_seq: int = 1,
    *,
    last_file: bool = True,
) -> VerifyResult:
    """Check ``lines`` (as read from a file, newlines kept) continue the chain.

    A last line without its newline that does not parse is what a crash mid-write leaves:
    in the last file it is a warning only (everything before it verified); elsewhere it fails.
    """
    prev, seq, count, unfinished = start_prev, start_seq, 0, None
    for number, line in enumerate(lines, 1):
        if unfinished:
            break
        record, problem = _check(key, line, number, prev, seq)
        if problem and problem.kind == "truncated":
            unfinished = problem
        elif problem:
            return VerifyResult(count, seq - 1, prev, problem)
        else:
            prev, seq, count = record["mac"], seq + 1, count + 1
    if unfinished and not last_file:
        return VerifyResult(count, seq - 1, prev, unfinished)
    return VerifyResult(count, seq - 1, prev, warnings=(unfinished,) if unfinished else ())


def _check(
    key: bytes, line: str, number: int, prev: str, seq: int
) -> tuple[dict[str, Any], Problem | None]:
    """The parsed record on ``line``, and what is wrong with it as the record after ``prev``."""
    text = line.removesuffix("\n")
    record = parse_record(text)
    if record is None:
        kind = "malformed" if line.endswith("\n") else "truncated"
        return {}, Problem(kind, number, None, "not a complete audit record")
    found = record["seq"]
    if canonical(record) != text or not hmac.compare_digest(record["mac"], mac_of(key, record)):
        return record, Problem("altered", number, found, "mac mismatch: edited, or wrong key")
    if found != seq:
        kind = "missing" if found > seq else "reordered"
        return record, Problem(kind, number, found, f"expected seq {seq}, found {found}")
    if record["prev"] != prev:
        message = "prev is not the previous record's mac (a record replaced or reordered)"
        return record, Problem("reordered", number, found, message)
    return record, None


def parse_record(text: str) -> dict[str, Any] | None:
    """The record in one line, or None when it is not JSON with the chain fields."""
    try:
        text.encode()  # lone surrogates: bytes that were not UTF-8
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    chained = isinstance(record.get("mac"), str) and isinstance(record.get("prev"), str)
    return record if chained and type(record.get("seq")) is int else None
