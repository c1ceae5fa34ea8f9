"""Liveness and readiness probes (public by definition)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from reference_app.context import AppContext
from reference_app.kit.errors import error_body

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(request: Request) -> dict[str, str] | JSONResponse:
    """The database answers, so the instance can take traffic."""
    ctx: AppContext = request.app.state.ctx
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse(
            error_body(
                "not_ready",
                "The database is not reachable.",
                getattr(request.state, "request_id", None),
            ),
            status_code=503,
        )
    return {"status": "ready"}
