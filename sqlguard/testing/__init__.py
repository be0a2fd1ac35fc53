"""Test-support code shared by the test suite, the benchmarks and the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlguard.testing.postgres import (
        BINDIR_ENV,
        SUPERUSER,
        TEST_ROLES,
        Database,
        PostgresCluster,
        PostgresHarnessError,
        embedded_bindir,
        find_bindir,
        server_version,
    )

__all__ = [
    "BINDIR_ENV",
    "SUPERUSER",
    "TEST_ROLES",
    "Database",
    "PostgresCluster",
    "PostgresHarnessError",
    "embedded_bindir",
    "find_bindir",
    "server_version",
]


def __getattr__(name: str) -> object:
    """Import lazily: an eager import would make `python -m sqlguard.testing.postgres` load the
    module twice, which runpy warns about."""
    if name in __all__:
        from sqlguard.testing import postgres

        return getattr(postgres, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
