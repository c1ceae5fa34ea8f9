"""Assemble the versioned API from each context's router."""

from __future__ import annotations

from fastapi import APIRouter

from reference_app.alerts.routes import router as alerts
from reference_app.audit.routes import router as audit
from reference_app.carers.routes import router as carers
from reference_app.children.routes import router as children
from reference_app.practitioners.routes import router as practitioners
from reference_app.services.routes import router as involvements

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
for router in (practitioners, children, carers, involvements, alerts, audit):
    api_router.include_router(router)
