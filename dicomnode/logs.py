"""Structured logging, configured once by the CLI.

JSON lines (default) or text. Extra fields passed with ``extra={...}`` become JSON keys.
Patient identifiers are never logged: pynetdicom's identifier logging is off (see
:func:`dicomnode.net.scp.configure_pynetdicom`), and the node's own messages carry UIDs,
AE titles and counts only.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from dicomnode.config.schema import LogFormat, LoggingConfig

__all__ = ["JsonFormatter", "set_level", "setup_logging"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                # An extra field never replaces time, level, logger or message.
                name = key if key not in entry else f"extra_{key}"
                entry[name] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        }
        return base + ("".join(f" {k}={v}" for k, v in extras.items()) if extras else "")


class _NoLibraryTracebacks(logging.Filter):
    """Libraries' tracebacks only at DEBUG: above it their records keep one line.

    pynetdicom logs ``LOGGER.exception(exc)`` for a peer's malformed PDU or message; a peer
    must not be able to fill the log with tracebacks (issue 15), and a traceback's locals
    could quote a header.
    """

    def __init__(self, keep: bool):
        super().__init__()
        self.keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not self.keep and record.name.split(".")[0] == "pynetdicom":
            kind = record.exc_info[0].__name__ if record.exc_info[0] else "error"
            record.msg, record.args = f"{record.getMessage()} ({kind})", None
            record.exc_info = record.exc_text = None
        return True


def setup_logging(config: LoggingConfig, stream: Any = None) -> None:
    """Configure the root logger from ``logging:`` in the config (CLI use only)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_NoLibraryTracebacks(keep=config.level == "DEBUG"))
    if config.format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(config.level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def set_level(level: str) -> None:
    """Log at ``level`` from now on (at start-up, and when a reload changes ``logging.level``)."""
    logging.getLogger().setLevel(level)
    # pynetdicom logs every PDU at DEBUG and association chatter at INFO.
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, _NoLibraryTracebacks):
                found.keep = level == "DEBUG"
