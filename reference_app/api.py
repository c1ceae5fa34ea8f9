"""Assemble the versioned API from each context's router."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute

from reference_app.alerts.routes import router as alerts
from reference_app.audit.routes import router as audit
from reference_app.carers.routes import router as carers
from reference_app.children.routes import router as children
from reference_app.exports.routes import router as exports
from reference_app.health import router as health
from reference_app.limits.service import check_source
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


def source_limit(request: Request) -> None:
    """Every API call counts against its source address's per-minute allowance."""
    client = request.client
    check_source(request.app.state.ctx, client.host if client else None)


api_router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(source_limit)])
for router in CONTEXT_ROUTERS:
    api_router.include_router(router)


def route_table() -> list[tuple[str, APIRoute]]:
    """Every application route with its full path (for route audits and the harness)."""
    table = [(route.path, route) for route in health.routes if isinstance(route, APIRoute)]
    for router in CONTEXT_ROUTERS:
        table.extend(
            (API_PREFIX + route.path, route)
            for route in router.routes
            if isinstance(route, APIRoute)
        )
    return table
