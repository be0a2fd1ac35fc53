"""Helper processes of the sidecar (span exporter, audit writer): how they are started and
how they set themselves up.

A helper reads its work from stdin until the sidecar closes it, so it outlives a Ctrl-C
(which reaches the whole process group) and a SIGTERM long enough to finish what it holds:
it ignores both and ends at end of input, even when the sidecar itself was killed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence

log = logging.getLogger("sqlguard")


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


def finish(child: subprocess.Popen[bytes], timeout: float) -> None:
    """Close the pipes to a helper (its end of input) and wait for it to exit; one that
    does not within ``timeout`` seconds is killed, and the log says so."""
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        log.error("helper process %s did not finish in %s s; killed", child.args, timeout)
        child.kill()
        child.wait()
