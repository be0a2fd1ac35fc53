"""Reload the rules when their files change, including a Kubernetes ConfigMap swap.

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


async def watch_rules(directory: Path, reload: Callable[[], object], interval: float) -> None:
    """Call `reload` whenever the fingerprint changes; runs until cancelled."""
    seen = rules_fingerprint(directory)
    while True:
        await asyncio.sleep(interval)
        now = rules_fingerprint(directory)
        if now != seen:
            seen = now
            log.info("rule files in %s changed", directory)
            reload()
