"""Liveness and readiness probes (public by definition).

``/healthz`` says the process answers: it touches no store and skips the admission queue
(``kit.middleware.UNQUEUED_PATHS``), so it stays quick while every request waits on a stalled
database. ``/readyz`` says the instance can serve: each store it writes takes a write (the
database one rolled back, Redis a key that expires by itself, SQLite's filesystem has room),
within a bound; when one cannot, it answers 503 ``not_ready`` naming the dependency (an
operators' endpoint). It turns ready again by itself when the store returns.
"""

from __future__ import annotations

import os
import secrets
import threading
from datetime import UTC, datetime

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import delete, insert
from sqlalchemy.engine import make_url

from reference_app.context import AppContext
from reference_app.kit import faults
from reference_app.kit.errors import error_body
from reference_app.limits.models import LimitCounter
from reference_app.limits.store import RedisStore

router = APIRouter(tags=["health"])

# Checks still running (stuck on a stalled store) are not started again: one thread at most.
_running = threading.Lock()
# The dependency the check in progress is writing to (named when it does not finish in time).
_current = [""]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no store is asked)."""
    return {"status": "ok"}


def check_database(ctx: AppContext) -> None:
    """Write to the database and roll back: raises when it cannot take a write."""
    key = f"ready:{secrets.token_hex(8)}"
    with ctx.engine.connect() as conn, conn.begin() as transaction:
        conn.execute(insert(LimitCounter).values(key=key, count=0, expires_at=datetime.now(UTC)))
        conn.execute(delete(LimitCounter).where(LimitCounter.key == key))
        transaction.rollback()
    database = make_url(ctx.engine.url).database
    if ctx.engine.dialect.name == "sqlite" and database and database != ":memory:":
        directory = os.path.dirname(os.path.abspath(database))
        stats = os.statvfs(directory)
        free_mib = stats.f_bavail * stats.f_frsize / 2**20
        if free_mib < ctx.settings.ready_min_free_mib:
            raise faults.DependencyUnavailable(
                faults.Dependency.DATABASE, f"{free_mib:.1f} MiB free on its filesystem"
            )


def check_limits(ctx: AppContext) -> None:
    """Write a short-lived key to the limits store when it is a store of its own (Redis)."""
    if isinstance(ctx.limits, RedisStore):
        ctx.limits.check_writable(secrets.token_hex(8))


def _checks(ctx: AppContext) -> list[str]:
    """The dependencies that cannot take a write now (an empty list: ready)."""
    failing = []
    for dependency, check in (
        (faults.Dependency.DATABASE, check_database),
        (faults.Dependency.LIMITS, check_limits),
    ):
        _current[0] = dependency.value
        try:
            check(ctx)
        except Exception as exc:
            if faults.classify(exc) is None and not isinstance(exc, OSError):
                faults.log.exception("readiness check of the %s failed", dependency.value)
            else:
                faults.log_unavailable(dependency, exc, where="readiness")
            failing.append(dependency.value)
    return failing


def _run_checks(ctx: AppContext) -> list[str]:
    try:
        return _checks(ctx)
    finally:
        _running.release()


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> dict[str, str] | JSONResponse:
    """Every store can take a write, so the instance can take traffic."""
    ctx: AppContext = request.app.state.ctx
    bound = ctx.settings.database_connect_timeout_seconds + ctx.settings.admission_wait_seconds
    if _running.acquire(blocking=False):
        failing = None
        # Abandoned at the bound (the thread ends when the store answers, releasing the lock).
        with anyio.move_on_after(bound):
            failing = await anyio.to_thread.run_sync(_run_checks, ctx, abandon_on_cancel=True)
        if failing is None:
            failing = [f"{_current[0]} did not answer within {bound:g} s"]
    else:
        failing = [f"{_current[0]} has not answered the previous check"]
    if failing:
        return JSONResponse(
            error_body(
                "not_ready",
                "Not ready: " + ", ".join(failing) + ".",
                getattr(request.state, "request_id", None),
            ),
            status_code=503,
            headers={"Retry-After": str(faults.RETRY_AFTER_SECONDS)},
        )
    return {"status": "ready"}
