"""Which upstream backend a client's cancel key belongs to.

Each client gets its own random secret key (never the upstream's), so a CancelRequest can
only reach the backend of a connection whose BackendKeyData the requester actually saw.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UpstreamKey:
    """The upstream backend's pid and secret key, to be sent on a fresh upstream connection."""

    pid: int
    key: bytes


class CancelRegistry:
    """Maps (pid, client key) to the upstream key; shared by all connections of one sidecar."""

    def __init__(self) -> None:
        self._keys: dict[int, list[tuple[bytes, UpstreamKey]]] = {}

    def register(self, pid: int, client_key: bytes, upstream: UpstreamKey) -> None:
        self._keys.setdefault(pid, []).append((client_key, upstream))

    def unregister(self, pid: int, client_key: bytes) -> None:
        entries = [e for e in self._keys.get(pid, []) if e[0] != client_key]
        if entries:
            self._keys[pid] = entries
        else:
            self._keys.pop(pid, None)

    def lookup(self, pid: int, client_key: bytes) -> UpstreamKey | None:
        """The upstream key, or None; compares keys in constant time."""
        for key, upstream in self._keys.get(pid, []):
            if hmac.compare_digest(key, client_key):
                return upstream
        return None

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._keys.values())
