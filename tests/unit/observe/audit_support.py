"""Helpers shared by the audit tests: a key, and a log with n statement records."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlguard.observe.audit_chain import AuditChain

KEY = b"test-audit-key-0123456789abcdef"


def statement(n: int, user: str = "ann", decision: str = "allow") -> dict[str, object]:
    return {
        "ts": f"2026-01-01T00:00:{n % 60:02d}.000000Z",
        "type": "statement",
        "user": user,
        "database": "shop",
        "decision": decision,
        "rule_id": "r1",
        "text": f"SELECT {n}",
    }


def chained_lines(count: int, chain: AuditChain | None = None) -> list[str]:
    chain = chain or AuditChain(KEY)
    return [chain.seal(statement(n)) + "\n" for n in range(1, count + 1)]


def write_log(path: Path, count: int) -> list[str]:
    lines = chained_lines(count)
    path.write_text("".join(lines), encoding="utf-8")
    return lines


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` (the writer works in its own thread) until true, or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)
