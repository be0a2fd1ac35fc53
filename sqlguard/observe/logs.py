"""Log lines for machines by default (one JSON object per line), for people on request.

Messages are written so that they never carry statement text, literal values or secrets:
decisions are logged by rule and identity, statements only in the audit log, sanitised.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message (and error with a traceback).

    >>> record = logging.LogRecord("sqlguard", logging.INFO, "f", 1, "hello %s", ("ann",), None)
    >>> sorted(json.loads(JsonFormatter().format(record)))
    ['level', 'logger', 'message', 'ts']
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "json") -> None:
    """Root logging to stderr in the chosen format ("json" or "console")."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
