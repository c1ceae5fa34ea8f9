"""Assemble the versioned API from each context's router."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from reference_app.access.guards import authenticate
from reference_app.alerts.routes import router as alerts
from reference_app.audit.routes import router as audit
from reference_app.carers.routes import router as carers
from reference_app.children.routes import router as children
from reference_app.exports.routes import router as exports
from reference_app.health import router as health
from reference_app.kit.sources import check_source
from reference_app.practitioners.routes import router as practitioners
from reference_app.requests.routes import router as requests
from reference_app.services.routes import router as involvements

API_PREFIX = "/api/v1"
CONTEXT_ROUTERS = (
    practitioners,
    children,
    carers,
    involvements,
    alerts,
    audit,
    exports,
    requests,
)


async def source_limit(request: Request) -> None:
    """Every API call counts against its source address's per-minute allowance: here, or, on a
    route that authenticates, first thing in ``authenticate``'s worker thread (each thread hop
    costs a request CPU; this spares one)."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and _authenticates(route):
        return
    client = request.client
    await run_in_threadpool(check_source, request.app.state.ctx, client.host if client else None)


# Route (kept, so its id is not reused) and the answer, by the route's id: routes compare by
# value and are not hashable.
_AUTHENTICATES: dict[int, tuple[APIRoute, bool]] = {}


def _authenticates(route: APIRoute) -> bool:
    """Whether ``authenticate`` is among the route's dependencies (at any depth)."""

    def walk(dependant: Any) -> bool:
        return any(sub.call is authenticate or walk(sub) for sub in dependant.dependencies)

    known = _AUTHENTICATES.get(id(route))
    if known is None:
        known = _AUTHENTICATES[id(route)] = (route, walk(route.dependant))
    return known[1]


api_router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(source_limit)])
for router in CONTEXT_ROUTERS:
    api_router.include_router(router)


def route_template(scope: Any) -> str | None:
    """The documented template of the route a request matched (``/api/v1/children/{child_id}``),
    or None when none matched: a convertor in the route's own path (``{id:kind}``) is not
    shown, and a context router's path, relative to the prefix, gets it back."""
    route = scope.get("route")
    template = getattr(route, "path_format", getattr(route, "path", None))
    if not isinstance(template, str):
        return None
    if not template.startswith(API_PREFIX) and scope["path"].startswith(API_PREFIX):
        template = API_PREFIX + template
    return template


def route_table() -> list[tuple[str, APIRoute]]:
    """Every application route with its full path as documented (for route audits, the
    contract and the harness)."""
    table = [(route.path_format, route) for route in health.routes if isinstance(route, APIRoute)]
    for router in CONTEXT_ROUTERS:
        table.extend(
            (API_PREFIX + route.path_format, route)
            for route in router.routes
            if isinstance(route, APIRoute)
        )
    return table


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)]


def request_models() -> list[type[BaseModel]]:
    """Every model a request body is made of, nested ones too (for checks over all fields)."""
    todo = [
        m
        for _, route in route_table()
        if route.body_field is not None
        for m in _models(route.body_field.field_info.annotation)
    ]
    seen: dict[type[BaseModel], None] = {}
    while todo:
        model = todo.pop()
        if model not in seen:
            seen[model] = None
            todo.extend(
                m for field in model.model_fields.values() for m in _models(field.annotation)
            )
    return list(seen)
