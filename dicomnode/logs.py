"""Structured logging, configured once by the CLI (and by each pipeline child, the same way).

JSON lines (default) or text. Extra fields passed with ``extra={...}`` become JSON keys.
Patient identifiers are never logged: pynetdicom's identifier logging is off (see
:func:`dicomnode.net.scp.configure_pynetdicom`), and the node's own messages carry UIDs,
AE titles and counts only. What libraries print is not ours to word: pydicom, highdicom and
pynetdicom quote header values in their warnings (``Invalid value for VR CS: '...'``, a
patient name highdicom finds odd). Python warnings become log records, and every record
passes one filter before it is written: the identifiers of the job at hand
(:func:`job_identifiers`, set by a pipeline child) are redacted from all of them, and every
quoted value but a UID is redacted from the libraries' records, whose identifiers we may
not know. ``logging.log_identifiers: true`` turns both off.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from os import PathLike
from typing import Any, TextIO

from dicomnode.config.schema import LogFormat, LoggingConfig
from dicomnode.phi import REDACTED, PatientIdentifiers, redact

__all__ = [
    "JsonFormatter",
    "inherited_config",
    "job_identifiers",
    "scrub_quoted",
    "set_level",
    "setup_logging",
]

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
        if record.processName not in ("MainProcess", None) and "process" not in entry:
            entry["process"] = record.processName  # a pipeline child
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
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


#: A quoted value in a library's message: 'text' or "text" (one line, backslash escapes).
_QUOTED = re.compile(r"'(?P<single>(?:[^'\\\n]|\\.)*)'|\"(?P<double>(?:[^\"\\\n]|\\.)*)\"")
#: What stays quoted: nothing, or a dotted-decimal UID (it identifies no patient).
_KEEP = re.compile(r"[0-9]+(?:\.[0-9]+)+|")


def scrub_quoted(text: str) -> str:
    """``text`` with every quoted value but a UID replaced by ``'[redacted]'``.

    For messages of libraries, which quote the header values they complain about.
    """

    def replace(found: re.Match[str]) -> str:
        value = found.group("single") if found.group("single") is not None else found["double"]
        if _KEEP.fullmatch(value):
            return found.group()
        quote = found.group()[0]
        return f"{quote}{REDACTED}{quote}"

    return _QUOTED.sub(replace, text)


class _JobFiles:
    """The input files of the job a pipeline child works on; their identifiers read lazily."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: tuple[str | PathLike[str], ...] = ()
        self._identifiers: PatientIdentifiers | None = PatientIdentifiers()
        self._reading = threading.local()

    def set(self, files: Sequence[str | PathLike[str]]) -> None:
        with self._lock:
            self._files, self._identifiers = tuple(files), None if files else PatientIdentifiers()

    def identifiers(self) -> PatientIdentifiers:
        if getattr(self._reading, "busy", False):  # pydicom logs while we read the headers
            return PatientIdentifiers()
        with self._lock:
            if self._identifiers is None:
                self._reading.busy = True
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        self._identifiers = PatientIdentifiers.from_files(list(self._files))
                finally:
                    self._reading.busy = False
            return self._identifiers


_JOB = _JobFiles()


@contextmanager
def job_identifiers(files: Sequence[str | PathLike[str]]) -> Iterator[None]:
    """Redact the patient identifiers in the headers of ``files`` from every log record
    written meanwhile (their headers are read only if a record is written)."""
    _JOB.set(files)
    try:
        yield
    finally:
        _JOB.set(())


class _Redact(logging.Filter):
    """The job's identifiers out of every record; quoted values out of libraries' records."""

    def filter(self, record: logging.LogRecord) -> bool:
        identifiers = _JOB.identifiers()
        library = record.name.split(".")[0] != "dicomnode"

        def clean(text: str) -> str:
            text = redact(text, identifiers)
            return scrub_quoted(text) if library else text

        message = record.getMessage()
        cleaned = clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            record.exc_text = clean(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = clean(record.exc_text)
        return True


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning``: a warning is a WARNING record of logger ``py.warnings``."""
    logging.getLogger("py.warnings").warning(
        "%s: %s", category.__name__, message, extra={"origin": f"{filename}:{lineno}"}
    )


def setup_logging(config: LoggingConfig, stream: Any = None) -> None:
    """Configure the root logger from ``logging:`` in the config (the CLI and pipeline
    children only); Python warnings are logged from now on."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_NoLibraryTracebacks(keep=config.level == "DEBUG"))
    if not config.log_identifiers:
        handler.addFilter(_Redact())
    if config.format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    warnings.showwarning = _show_warning
    set_level(config.level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def inherited_config() -> LoggingConfig:
    """The logging set up in this process, for a child process to set up the same way."""
    handlers = logging.getLogger().handlers
    as_json = any(isinstance(h.formatter, JsonFormatter) for h in handlers)
    redacting = not handlers or any(isinstance(f, _Redact) for h in handlers for f in h.filters)
    level = logging.getLevelName(logging.getLogger("dicomnode").getEffectiveLevel())
    return LoggingConfig(
        level=level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "ERROR",
        format=LogFormat.JSON if as_json else LogFormat.TEXT,
        log_identifiers=not redacting,
    )


def set_level(level: str) -> None:
    """Log at ``level`` from now on (at start-up, and when a reload changes ``logging.level``)."""
    logging.getLogger().setLevel(level)
    # pynetdicom logs every PDU at DEBUG and association chatter at INFO.
    libraries = logging.DEBUG if level == "DEBUG" else logging.WARNING
    logging.getLogger("pynetdicom").setLevel(libraries)
    # highdicom logs "copy attributes of module ..." for every object it makes, at INFO.
    logging.getLogger("highdicom").setLevel(libraries)
    # uvicorn: "Started server process" and the like at INFO (with ANSI colour extras).
    logging.getLogger("uvicorn").setLevel(libraries)
    # urllib3 logs each request's URL at DEBUG: a QIDO-RS URL carries the PatientID.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, _NoLibraryTracebacks):
                found.keep = level == "DEBUG"
