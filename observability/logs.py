"""Structured logs: one JSON object a line, with the trace and request ids, personal data masked
(by the formatter, `observability.privacy.scrub`).

The request id comes from `bind_request_id` (called by the registry's middleware as each request
begins; a context variable, so it follows the request into the thread pool), the trace and span
ids from the current OpenTelemetry span.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

from opentelemetry import trace

from observability.privacy import scrub

_request_id: ContextVar[str | None] = ContextVar("contactpoint_request_id", default=None)
HANDLER_NAME = "contactpoint-json"


def bind_request_id(request_id: str) -> None:
    """Name the request this context serves (its logs carry it; its span too)."""
    _request_id.set(request_id)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("contactpoint.request_id", request_id)


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, request_id, trace_id, span_id (and exc_type on errors)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            # Masked here, for this handler's output only: a filter that rewrote the record
            # would change it for every other handler too.
            "message": scrub(record.getMessage()),
        }
        request_id = _request_id.get()
        if request_id:
            entry["request_id"] = request_id
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
            entry["span_id"] = format(ctx.span_id, "016x")
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: a message or a stack can quote the input that caused it.
            entry["exc_type"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


def install_json_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Route the root logger (and uvicorn's) through one JSON handler with the filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def remove_json_logging() -> None:
    """Take the JSON handler off the root logger again (tests; telemetry turned off)."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            root.removeHandler(existing)
