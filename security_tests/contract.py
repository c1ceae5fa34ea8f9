"""The published contract, checked against the answers a run really got.

A `Recorder` added to a target's observers keeps every exchange the harness's clients make (in
memory, never written out: the bodies hold personal data). `Contract` validates each one against
the target's OpenAPI document with openapi-core: the status must be documented for the
operation, and the body and headers must match what the document says of that status. An
exchange that names no documented operation (a probe of an unknown path or method) must be a
404 or 405 in the error envelope.

A violation names the operation, the status and the schema rule broken, never the values (they
may be a child's personal data).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from jsonschema_path import SchemaPath
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError
from openapi_schema_validator import OAS31Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

# Statuses an undocumented path or method may answer (besides limits applied before routing).
UNROUTED = frozenset({404, 405, 413, 429, 503})
ENVELOPE_SCHEMA = "ErrorEnvelope"


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as sent and received."""

    method: str
    url: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    status: int
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes

    @classmethod
    def of(cls, response: httpx.Response) -> Exchange:
        request = response.request
        return cls(
            method=request.method,
            url=str(request.url),
            request_headers=tuple(request.headers.multi_items()),
            request_body=request.content,
            status=response.status_code,
            response_headers=tuple(response.headers.multi_items()),
            response_body=response.content,
        )


class Recorder:
    """Keep the exchanges of a run (thread-safe: scenarios run side by side)."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        exchange = Exchange.of(response)
        with self._lock:
            self.exchanges.append(exchange)


class _Request:
    """An exchange's request as openapi-core reads one."""

    def __init__(self, exchange: Exchange, method: str | None = None) -> None:
        url = urlsplit(exchange.url)
        self.host_url = f"{url.scheme}://{url.netloc}"
        self.path = url.path
        self.method = (method or exchange.method).lower()
        headers = Headers(list(exchange.request_headers))
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(url.query, keep_blank_values=True)),
            header=headers,
            cookie=ImmutableMultiDict(),
        )
        self.body = exchange.request_body or None
        self.content_type = str(headers.get("content-type", ""))


class _Response:
    def __init__(self, exchange: Exchange) -> None:
        self.data = exchange.response_body
        self.status_code = exchange.status
        self.headers = Headers(list(exchange.response_headers))
        self.content_type = str(self.headers.get("content-type", ""))


def _reasons(exc: BaseException) -> str:
    """The schema rules an error broke, by place, without the values."""
    found: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        for schema_error in getattr(error, "schema_errors", ()) or ():
            where = "/".join(str(part) for part in schema_error.absolute_path) or "(body)"
            found.append(f"{where}: {schema_error.validator}")
        todo.extend([error.__cause__, error.__context__])
    return "; ".join(found) or type(exc).__name__


class Contract:
    """An OpenAPI document, ready to check exchanges against."""

    def __init__(self, document: Mapping[str, Any], *, undocumented: Iterable[str] = ()) -> None:
        self.document = dict(document)
        # Paths served outside the document (the document itself): any answer goes.
        self.undocumented = frozenset(undocumented)
        self.openapi = OpenAPI(SchemaPath.from_dict(self.document))
        envelope = self.document["components"]["schemas"][ENVELOPE_SCHEMA]
        self._envelope = OAS31Validator(envelope)

    def operation(self, exchange: Exchange) -> str:
        """``METHOD /template`` of the exchange (its raw path when no operation matches)."""
        path = urlsplit(exchange.url).path
        for template, operations in self.document.get("paths", {}).items():
            parts, wanted = template.strip("/").split("/"), path.strip("/").split("/")
            same = len(parts) == len(wanted) and all(
                p == w or (p.startswith("{") and p.endswith("}"))
                for p, w in zip(parts, wanted, strict=True)
            )
            if same and exchange.method.lower() in operations:
                return f"{exchange.method} {template}"
        return f"{exchange.method} (undocumented)"

    def violations(self, exchange: Exchange) -> list[str]:
        """What in the exchange's answer the document does not allow (empty: it conforms)."""
        method = "GET" if exchange.method == "HEAD" else exchange.method
        request = _Request(exchange, method)
        try:
            result = self.openapi.unmarshal_response(request, _Response(exchange))
        except Exception as exc:  # an exchange the validator cannot read is a violation too
            return [f"{self.operation(exchange)} {exchange.status}: {_reasons(exc)}"]
        # A 405 says the path is not served with that method: whatever operation the path
        # resembles (GET /children/search looks like GET /children/{child_id}) is not it.
        if exchange.status == 405 or any(isinstance(e, PathError) for e in result.errors):
            return self._unrouted(exchange)
        if exchange.method == "HEAD":
            return []
        return [
            f"{self.operation(exchange)} {exchange.status}: {_reasons(e)}" for e in result.errors
        ]

    def _unrouted(self, exchange: Exchange) -> list[str]:
        path = urlsplit(exchange.url).path
        if path in self.undocumented:
            return []
        where = f"{exchange.method} {path}"
        if exchange.status not in UNROUTED:
            return [f"{where} (no documented operation) answered {exchange.status}"]
        try:
            body = json.loads(exchange.response_body)
        except ValueError:
            return [f"{where} {exchange.status}: the body is not JSON"]
        problems = [
            f"{where} {exchange.status}: {'/'.join(map(str, e.absolute_path)) or '(body)'}: "
            f"{e.validator}"
            for e in self._envelope.iter_errors(body)
        ]
        return problems


@dataclass(frozen=True)
class Verdict:
    """The exchanges checked, the operations they reached, and the violations found."""

    checked: int
    operations: Counter[str]
    statuses: Counter[int]
    violations: list[str]

    def summary(self) -> str:
        return (
            f"{self.checked} exchanges, {len(self.operations)} operations, statuses "
            + ", ".join(f"{s}x{n}" for s, n in sorted(self.statuses.items()))
            + f"; {len(self.violations)} violation(s)"
        )


def check(contract: Contract, exchanges: Iterable[Exchange]) -> Verdict:
    """Check every exchange; each distinct violation is listed once."""
    checked = 0
    operations: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    found: dict[str, None] = {}
    for exchange in exchanges:
        checked += 1
        operations[contract.operation(exchange)] += 1
        statuses[exchange.status] += 1
        for violation in contract.violations(exchange):
            found.setdefault(violation, None)
    return Verdict(checked, operations, statuses, list(found))
