"""Structured logs: one JSON object per line, on stderr.

Every line carries time, level, logger, message and service; the correlation id when a call or
event is being handled; trace_id/span_id when a span is active (so a log line links to its
trace); the exception type and traceback when one is logged; and any `extra={...}` fields.
Code keeps using the stdlib `logging.getLogger(__name__)`; only `configure_logging` is new.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

import orjson
from opentelemetry import trace

from services.kit.request_context import current_correlation_id

__all__ = ["JsonFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else on a record came from `extra=` and is emitted.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (UTF-8, no embedded newlines)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        correlation_id = current_correlation_id()
        if correlation_id is not None:
            entry["correlation_id"] = correlation_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        attributes = vars(record)
        # extra= fields, in the order given; they never replace the fields above. Most records
        # have none: one set difference (in C) tells, instead of a test per attribute.
        if attributes.keys() - _STANDARD_ATTRIBUTES:
            for key, value in attributes.items():
                if key not in _STANDARD_ATTRIBUTES and key not in entry:
                    entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception_type"] = record.exc_info[0].__name__
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # orjson: a gateway writes a line per request, and json.dumps was most of a line's cost.
        # It refuses a few values json.dumps takes (an int beyond 64 bits, non-str keys): those
        # lines take json.dumps.
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:
            return json.dumps(entry, default=str, ensure_ascii=False)


# The formatted second of the last line: log lines come in bursts within one second.
_last_second: tuple[int, str] = (-1, "")


def _utc_timestamp(created: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2025-01-31T12:00:00.123Z."""
    global _last_second
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    cached_second, text = _last_second
    if cached_second != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, text)
    return f"{text}.{millis:03d}Z"


def configure_logging(service: str, level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send every logger's records to `stream` (stderr) as JSON lines; call once in main.

    Replaces the root logger's handlers, so libraries that log (grpc, nats, sqlalchemy) come out
    as JSON too, and routes `warnings` through logging.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    # A line never prints the thread or the process, so records need not look them up (the
    # logging HOWTO's "Optimization"): each record skipped getpid() and current_thread().
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
