"""ASGI entry point for servers:
`uvicorn --factory reference_app.asgi:create --no-proxy-headers --no-server-header`.

The registry itself believes X-Forwarded-For only from ``settings.trusted_proxies``; a server
that rewrites the peer address from forwarded headers first (uvicorn's default) would defeat it.
"""

from __future__ import annotations

from fastapi import FastAPI

from observability.registry import instrument_app
from observability.setup import configure
from reference_app.app import create_app
from reference_app.config import Settings
from reference_app.context import build_context

SERVICE_NAME = "contactpoint-registry"


def create() -> FastAPI:
    """Build the app from CONTACTPOINT_* settings, with telemetry from OTEL_* (each worker)."""
    telemetry = configure(SERVICE_NAME)
    ctx = build_context(Settings())
    app = create_app(ctx)
    instrument_app(app, telemetry, ctx.engine)
    return app
