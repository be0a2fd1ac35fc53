"""Reload rules and identities when their files change, including a ConfigMap swap.

A ConfigMap volume exposes each file as a symlink into a `..data` directory that is
itself a symlink, replaced atomically on update: watching one file's inode misses that,
so the watcher polls a fingerprint of what every rule file resolves to. Polling once a
second costs a few stat() calls and needs no platform-specific notification API.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("sqlguard.reload")

Fingerprint = tuple[tuple[str, str, int, int, int], ...]


def rules_fingerprint(directory: Path) -> Fingerprint:
    """What the rule files are now: name, resolved path, inode, size and mtime of each."""
    entries = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return ()
    for name in names:
        if not name.endswith((".yaml", ".yml")):
            continue
        path = directory / name
        try:
            stat = path.stat()
        except OSError:
            continue
        entries.append((name, os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


async def watch(
    fingerprint: Callable[[], object],
    changed: Callable[[], object] | None,
    interval: float,
    tick: Callable[[], object] | None = None,
) -> None:
    """Every ``interval`` seconds: call ``changed`` if the fingerprint moved, else ``tick``.

    ``tick`` is for work that depends on the clock rather than on the files (identities
    that expire); ``changed`` None only ticks. Runs until cancelled.
    """
    seen = fingerprint()
    while True:
        await asyncio.sleep(interval)
        now = fingerprint() if changed is not None else seen
        if now != seen:
            seen = now
            log.info("files changed: reloading")
            assert changed is not None
            changed()
        elif tick is not None:
            tick()
