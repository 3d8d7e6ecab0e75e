"""Personal data kept out of log records: every record's message is redacted before any handler sees it.

A log line can carry a question (a warning that quotes it, an exception
message from a component that echoes its input). Redacting at the record
factory covers every logger and handler of the process, including ones
configured later (uvicorn's); the composition root installs it once with the
configured policy. Exception tracebacks are redacted too, once formatted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_installed: list[Callable[[str], str]] = []  # the redactor in force (the last one installed)


def _redacting_factory(inner: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        if not _installed:
            return record
        redact = _installed[-1]
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: logging reports it itself later
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = _redacted_parts(record, redact) or (cleaned, None)
        if record.exc_info and record.exc_info[1] is not None:
            # Formatted now, redacted, and cached where formatters look for it.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    factory.__dict__["clearance_redacting"] = True
    return factory


def _redacted_parts(record: logging.LogRecord, redact: Callable[[str], str]) -> tuple[Any, Any] | None:
    """The record's format and arguments each redacted, when that leaves nothing to redact; else None.

    Some formatters read the arguments themselves (uvicorn's access log unpacks
    five of them): keeping their shape keeps those lines, and the message is
    only collapsed into one redacted string when the parts cannot be cleaned apart.
    """
    if not isinstance(record.args, tuple) or not record.args or not isinstance(record.msg, str):
        return None
    args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
    try:
        message = record.msg % args
    except (TypeError, ValueError):
        return None
    return (record.msg, args) if redact(message) == message else None


def install_log_redaction(redact: Callable[[str], str]) -> None:
    """Redacts every log record of this process with ``redact`` from now on (idempotent; the last one wins)."""
    with _lock:
        current = logging.getLogRecordFactory()
        if not current.__dict__.get("clearance_redacting"):
            logging.setLogRecordFactory(_redacting_factory(current))
        _installed[:] = [redact]
