"""The published contract: FastAPI's OpenAPI document, completed with what the API really does.

FastAPI documents a route's success and a 422 body the API never sends. ``complete`` rewrites
the document, route by route, from what is true of every route of its kind:

- every refusal is the error envelope (``ErrorEnvelope``), with the statuses a route of its
  kind can answer: 422 (its parameters or body), 400 (a body nested too deep, a bad header),
  401 and 403 (a route that authenticates), 404 (a resource missing), 409 (a change of state),
  410 (a resource named by its path that has expired), 413 (a body over the limit),
  429 (the source's allowance, with ``Retry-After``) and 503 (the database or the login
  lanes busy or down, with ``Retry-After``);
- a bearer security scheme, required by the routes that authenticate and by no other;
- parameters given their documented bounds by name (``PARAMETER_SCHEMAS``: child
  identifiers), and headers a route refuses without (marked ``required_header``) required.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi.routing import APIRoute

ERROR_SCHEMA = "ErrorEnvelope"
BEARER = "bearerAuth"
REQUIRED = "x-contactpoint-required"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_METHODS = ("get", "put", "post", "delete", "patch")

ENVELOPE: dict[str, Any] = {
    "type": "object",
    "title": ERROR_SCHEMA,
    "description": "Every 4xx and 5xx answer: a stable machine code, a message that never "
    "echoes the input, and the request id also sent as X-Request-Id.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                "message": {"type": "string"},
                "request_id": {"type": ["string", "null"]},
            },
        }
    },
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with.",
        "schema": {"type": "string"},
    }
}
REFUSALS: dict[int, str] = {
    400: "A body nested deeper than the limit, or a header the route needs missing or invalid",
    401: "No valid bearer token, or a wrong credential",
    403: "Authenticated, but not allowed to do this",
    404: "No such resource (or none the caller may know of)",
    409: "The resource's state does not allow this now",
    410: "The resource named is no longer available (an expired export or link)",
    413: "The request body is over the size limit",
    422: "The parameters or the body are not valid (not JSON of the declared shape included)",
    429: "A rate, quota or lock-out limit was reached",
    503: "The registry is busy or its database unavailable: try again after Retry-After",
}


def required_header(**schema: Any) -> dict[str, Any]:
    """``json_schema_extra`` for a header a route refuses without (400 in the envelope), with
    its documented bounds; the route reads it as optional so that refusal is its own."""
    return {REQUIRED: True, **schema}


def authenticates(route: APIRoute, authenticate: Callable[..., Any]) -> bool:
    """Whether ``authenticate`` is among the route's dependencies (at any depth)."""

    def walk(dependant: Any) -> bool:
        return any(sub.call is authenticate or walk(sub) for sub in dependant.dependencies)

    return walk(route.dependant)


def _refusal(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": REFUSALS[status],
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    if status in (429, 503):
        answer["headers"] = copy.deepcopy(_RETRY_AFTER)
    if status == 401:
        answer["headers"] = copy.deepcopy(_WWW_AUTHENTICATE)
    return answer


def _statuses(method: str, operation: dict[str, Any], *, api: bool, guarded: bool) -> set[int]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses = {503}
    if api:
        statuses.add(429)
    if parameters or has_body:
        statuses.add(422)
    if any(p.get("in") == "header" and p.get("required") for p in parameters):
        statuses.add(400)
    changes = method in ("post", "patch", "put", "delete")
    if guarded or (api and changes):  # a public change is a credential's: login, enrolment
        statuses |= {401, 403}
    if api:  # a resource named, or one the route reads (the latest checkpoint), may be missing
        statuses.add(404)
    if changes:
        statuses |= {400, 409, 413}
    if api and any(p.get("in") == "path" for p in parameters):
        statuses.add(410)
    return statuses


def _parameter(parameter: dict[str, Any], schemas: Mapping[str, dict[str, Any]]) -> None:
    schema = parameter.get("schema", {})
    if schema.pop(REQUIRED, False):
        parameter["required"] = True
        bounds = {k: v for k, v in schema.items() if k not in ("anyOf", "title")}
        parameter["schema"] = {"type": "string", **bounds}
    named = schemas.get(parameter.get("name", ""))
    if named is not None:
        target = parameter["schema"]
        for option in target.get("anyOf", []):  # an optional parameter: bound its string form
            if option.get("type") == "string":
                option.update(named)
        if target.get("type") == "string":
            target.update(named)


def _body_properties(components: dict[str, Any], schemas: Mapping[str, dict[str, Any]]) -> None:
    for model in components.values():
        for name, prop in model.get("properties", {}).items():
            if name in schemas and prop.get("type") == "string":
                prop.update(schemas[name])


def complete(
    document: dict[str, Any],
    routes: Iterable[tuple[str, APIRoute]],
    *,
    api_prefix: str,
    guarded: Callable[[APIRoute], bool],
    parameter_schemas: Mapping[str, dict[str, Any]] = {},
) -> dict[str, Any]:
    """Return ``document`` completed (see the module's docstring): ``routes`` are the routes
    with their full paths, ``guarded`` tells the ones that authenticate."""
    doc = copy.deepcopy(document)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas[ERROR_SCHEMA] = ENVELOPE
    _body_properties(schemas, parameter_schemas)
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token from POST /auth/login, naming a server-side session.",
        }
    }
    by_operation = {
        (path, method.lower()): route for path, route in routes for method in route.methods or ()
    }
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            route = by_operation.get((path, method))
            is_guarded = route is not None and guarded(route)
            for parameter in operation.get("parameters", []):
                _parameter(parameter, parameter_schemas)
            operation["security"] = [{BEARER: []}] if is_guarded else []
            responses = operation.setdefault("responses", {})
            for status in sorted(
                _statuses(method, operation, api=path.startswith(api_prefix), guarded=is_guarded)
            ):
                responses[str(status)] = _refusal(status)
    return doc
