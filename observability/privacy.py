"""No personal data in telemetry: an attribute allow-list for spans, and a log filter.

A span leaves the process with only the attributes named here; everything else (query strings,
client addresses, user agents, raw paths, peer ports, a planted ``child.name``) is dropped
before any exporter sees it. SQL is kept only as the parameterised text the SQLAlchemy
instrumentation records (bound values are never recorded; ``db.query.parameter.*`` is dropped).
Exception events keep the exception's type, never its message or stack (they can quote input).

``OTEL_CONTACTPOINT_SPAN_ALLOW`` (comma list) adds attribute names for a deployment that asks,
e.g. ``client.address,user_agent.original``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor

ALLOWED_SPAN_ATTRIBUTES = frozenset(
    {
        # HTTP server, stable conventions: the route template, never the path or query.
        "http.route",
        "http.request.method",
        "http.response.status_code",
        "url.scheme",
        "network.protocol.version",
        "server.port",
        "error.type",
        # Database and Redis client spans: the system, the operation and parameterised text.
        "db.system",
        "db.system.name",
        "db.operation.name",
        "db.collection.name",
        "db.namespace",
        "db.query.text",
        "db.statement",  # the older name, from instrumentations not yet on the stable names
        "db.redis.database_index",
        "net.peer.port",
        # Ours: not personal.
        "contactpoint.request_id",
    }
)
ALLOW_ENV = "OTEL_CONTACTPOINT_SPAN_ALLOW"
EVENT_ATTRIBUTES = frozenset({"exception.type", "exception.escaped"})


def allowed_attributes(env: Mapping[str, str] | None = None) -> frozenset[str]:
    env = os.environ if env is None else env
    extra = {name.strip() for name in env.get(ALLOW_ENV, "").split(",") if name.strip()}
    return ALLOWED_SPAN_ATTRIBUTES | extra


def _keep(attributes: Mapping[str, Any] | None, allowed: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in (attributes or {}).items() if k in allowed}


def redact(span: ReadableSpan, allowed: frozenset[str]) -> ReadableSpan:
    """A copy of the span with only allowed attributes (events and links likewise)."""
    events = [
        Event(e.name, _keep(e.attributes, EVENT_ATTRIBUTES), e.timestamp) for e in span.events
    ]
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_keep(span.attributes, allowed),
        events=events,
        links=[type(link)(link.context, None) for link in span.links],
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanProcessor(SpanProcessor):
    """Hands the wrapped processor (and so its exporter) only the redacted copy of a span."""

    def __init__(self, inner: SpanProcessor, allowed: Iterable[str] | None = None) -> None:
        self.inner = inner
        self.allowed = frozenset(allowed) if allowed is not None else allowed_attributes()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass  # nothing leaves at the start; the inner processor only needs the end

    def on_end(self, span: ReadableSpan) -> None:
        self.inner.on_end(redact(span, self.allowed))

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


# What a log line must not carry even if a message slips: a child's reference (13 characters
# of the registry's alphabet), a date, a UK postcode, an e-mail address, an IPv4 address.
_PATTERNS = [
    re.compile(r"\b[0-9A-HJKMNP-TV-Z]{13}\b"),
    re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),
    re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", re.IGNORECASE),
    re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"),
]


def scrub(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


class PersonalDataFilter(logging.Filter):
    """Rewrites a record's message with identifiers, dates, postcodes and addresses masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
