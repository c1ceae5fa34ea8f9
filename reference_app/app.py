"""The FastAPI application: routers, one error envelope, security middleware, audit sealer."""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from reference_app.access.guards import authenticate
from reference_app.access.principal import Principal
from reference_app.api import API_PREFIX, api_router, route_table, route_template
from reference_app.audit.refusals import Refusal, record_refusal
from reference_app.audit.service import seal_all
from reference_app.config import Environment, Settings
from reference_app.context import AppContext
from reference_app.detection.service import scan
from reference_app.exports.links import MAX_TOKEN
from reference_app.health import router as health_router
from reference_app.kit.background import Periodic
from reference_app.kit.contract import authenticates, complete
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import AppError, error_body
from reference_app.kit.http import CallDep, HeadAsGet, request_info
from reference_app.kit.identifiers import CHILD_ID_PATTERN, LENGTH
from reference_app.kit.middleware import SecurityMiddleware
from reference_app.kit.text import CONTROL_CHARACTERS

log = logging.getLogger("contactpoint")
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
}
# Documented bounds of parameters and body fields, by name, on every route that has them.
PARAMETER_SCHEMAS = {
    "child_id": {"pattern": CHILD_ID_PATTERN, "minLength": LENGTH, "maxLength": LENGTH},
    # A download link's token: two base64url parts (claims, signature).
    "token": {"pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$", "maxLength": MAX_TOKEN},
}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _record_refusal(request: Request, status: int, code: str) -> None:
    """Put a refused API request on the trail (its own transaction: the request's was rolled
    back), by route template, never by raw path."""
    if not request.url.path.startswith(API_PREFIX):
        return
    ctx: AppContext = request.app.state.ctx
    principal: Principal | None = getattr(request.state, "principal", None)
    template = route_template(request.scope)
    child_id = request.scope.get("path_params", {}).get("child_id")
    refusal = Refusal(
        method=request.method,
        route=template,
        status=status,
        code=code,
        child_id=child_id if isinstance(child_id, str) else None,
    )
    record_refusal(ctx, refusal, principal=principal, info=request_info(request))


async def _audit_refusal(request: Request, status: int, code: str) -> None:
    try:
        await run_in_threadpool(_record_refusal, request, status, code)
    except Exception:  # the refusal stands even if the trail is unwritable; say so in logs
        log.exception("could not audit a refusal")


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    for follow_up in exc.follow_ups:
        try:
            await run_in_threadpool(follow_up)
        except Exception:  # the refusal stands; the failure to follow it up is logged
            log.exception("could not complete a refusal's follow-up")
    # Already audited: the refusal is on the trail under its own tag (a failed login, a limit).
    if exc.status < 500 and not exc.audited:
        await _audit_refusal(request, exc.status, exc.error_code)
    return JSONResponse(
        error_body(exc.error_code, exc.error_message, _request_id(request)),
        status_code=exc.status,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Name the fields and the rule, never echo the input (it may be personal data).
    problems = []
    errors = exc.errors()
    # Control characters get their own code: a client can tell them from a malformed request.
    hostile = any(err.get("type") == CONTROL_CHARACTERS for err in errors)
    for err in errors[:10]:
        where = ".".join(str(part) for part in err.get("loc", ()) if part != "body")
        problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    message = "The request is not valid: " + "; ".join(problems)
    await _audit_refusal(request, 422, "invalid_request")
    return JSONResponse(
        error_body(
            CONTROL_CHARACTERS if hostile else "invalid_request",
            message[:1000],
            _request_id(request),
        ),
        status_code=422,
    )


@functools.cache
def _route_patterns() -> list[tuple[re.Pattern[str], frozenset[str]]]:
    # The route's own path (its convertors too) under the prefix its documented path has.
    return [
        (
            compile_path(path.removesuffix(route.path_format) + route.path)[0],
            frozenset(route.methods or ()),
        )
        for path, route in route_table()
    ]


def _allowed(path: str) -> str:
    """Every method some route serves at ``path`` (HEAD wherever GET is)."""
    methods: set[str] = set()
    for pattern, served in _route_patterns():
        if pattern.match(path):
            methods |= served
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status, headers = exc.status_code, dict(getattr(exc, "headers", None) or {})
    code = _STATUS_CODES.get(status, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "The request could not be served."
    if status == 400:
        # FastAPI's one 400 is a body it could not decode (not UTF-8): to the client, a body
        # that is not JSON of the declared shape, answered as every other such body is.
        status, code = 422, "invalid_request"
        message = "The request is not valid: body: not JSON text"
    if status == 405:
        headers["Allow"] = _allowed(request.url.path) or headers.get("Allow", "")
    if status < 500:
        await _audit_refusal(request, status, code)
    return JSONResponse(
        error_body(code, message, _request_id(request)),
        status_code=status,
        headers=headers,
    )


def openapi_public(settings: Settings) -> bool:
    """Whether the OpenAPI document is served without a login: only a development build may
    (it maps every route, the administrative ones included)."""
    if not enabled(settings, Control.SECURITY_HEADERS):
        return True
    return settings.openapi_public and settings.environment is Environment.DEVELOPMENT


# FastAPI's own OpenTelemetry support (newer releases) switches itself on once a global meter
# or tracer provider is set, and would record a second request histogram, with spans and log
# records whose attributes the registry's allow-list never saw. The registry's telemetry is
# `observability.registry`; FastAPI's is off.
_NATIVE_TELEMETRY_OFF: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def create_app(ctx: AppContext) -> FastAPI:
    """Build the registry application around one instance context."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = ctx.settings
        sealer = (
            Periodic(
                "audit-sealer",
                settings.audit_seal_interval_seconds,
                lambda: seal_all(ctx),
                final=True,
            )
            if settings.audit_sealer_enabled
            else None
        )
        detector = (
            Periodic("snooping-detector", settings.detector_interval_seconds, lambda: scan(ctx))
            if settings.detector_enabled
            else None
        )
        for worker in (sealer, detector):
            if worker:
                worker.start()
        yield
        # Bounded (a stalled store must not hold shutdown): the detector's pass is abandoned at
        # once, the sealer's final pass gets the grace period.
        if detector:
            detector.stop(timeout=1.0)
        if sealer:
            sealer.stop(timeout=settings.shutdown_grace_seconds)

    app = FastAPI(
        title="ContactPoint reference registry",
        version="1.0.0",
        # Served below, behind a login; no interactive pages (/docs, /redoc) at all.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        **_NATIVE_TELEMETRY_OFF,
    )
    app.state.ctx = ctx
    app.include_router(health_router)
    app.include_router(api_router)

    def openapi() -> dict[str, Any]:
        """FastAPI's document, completed with every refusal, the security scheme and the
        parameters' bounds (``kit.contract``)."""
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                FastAPI.openapi(app),
                route_table(),
                api_prefix=API_PREFIX,
                guarded=lambda route: authenticates(route, authenticate),
                parameter_schemas=PARAMETER_SCHEMAS,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get(f"{API_PREFIX}/openapi.json", include_in_schema=False)
    def openapi_document(request: Request, call: CallDep) -> JSONResponse:
        """The API's OpenAPI document, for any logged-in practitioner."""
        if not openapi_public(call.ctx.settings):
            authenticate(request, call)
        return JSONResponse(app.openapi())

    handlers: dict[Any, Any] = {
        AppError: _app_error,
        RequestValidationError: _validation_error,
        StarletteHTTPException: _http_error,
    }  # anything else is answered by SecurityMiddleware as a 500 envelope
    for exc_type, handler in handlers.items():
        app.add_exception_handler(exc_type, handler)
    # The routes that verify or set a password hash in the gate's lanes (kit.gate).
    credential_paths = [
        f"{API_PREFIX}/auth/{name}" for name in ("login", "enrol", "password", "totp")
    ]
    app.add_middleware(SecurityMiddleware, ctx=ctx, credential_paths=credential_paths)
    app.add_middleware(HeadAsGet)
    return app
