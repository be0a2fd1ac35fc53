"""Helper processes of the sidecar (span exporter, audit writer): how they are started and
how they set themselves up.

A helper reads its work from stdin until the sidecar closes it, so it outlives a Ctrl-C
(which reaches the whole process group) and a SIGTERM long enough to finish what it holds:
it ignores both and ends at end of input, even when the sidecar itself was killed.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence


def helper_command(module: str, log_level: str, log_format: str) -> list[str]:
    """The command line that runs ``module``'s ``main`` with the sidecar's logging."""
    return [sys.executable, "-m", module, "--log-level", log_level, "--log-format", log_format]


def helper_setup(module: str, argv: Sequence[str] | None) -> None:
    """Logging as the sidecar logs, and the signals a helper ignores."""
    from sqlguard.observe.logs import configure_logging

    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--log-format", default="json")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
