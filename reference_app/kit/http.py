"""Per-request dependencies: the instance context, a database session, and request info."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reference_app.access.principal import Principal
from reference_app.audit.service import RequestInfo, record
from reference_app.audit.tags import EventTag, Outcome
from reference_app.context import AppContext


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _finish(db: Session, *, commit: bool) -> None:
    try:
        if commit:
            db.commit()
        else:
            db.rollback()
    finally:
        db.close()


def request_info(request: Request) -> RequestInfo:
    client = request.client
    return RequestInfo(
        request_id=getattr(request.state, "request_id", None),
        source=client.host if client else None,
    )


@dataclass(frozen=True, slots=True)
class Call:
    """What a service needs from the request: context, session, and where it came from."""

    ctx: AppContext
    db: Session
    info: RequestInfo

    def audit(
        self,
        tag: EventTag,
        *,
        principal: Principal | None = None,
        outcome: Outcome = Outcome.ALLOWED,
        child_id: str | None = None,
        reason_code: str | None = None,
        relationship: str | None = None,
        details: dict[str, Any] | None = None,
        actor_id: int | None = None,
        search_hits: Iterable[str] = (),
    ) -> int:
        """Append a typed event to the trail in this request's transaction; return its id."""
        return record(
            self.db,
            self.ctx,
            tag,
            info=self.info,
            principal=principal,
            outcome=outcome,
            child_id=child_id,
            reason_code=reason_code,
            relationship=relationship,
            details=details,
            actor_id=actor_id,
            search_hits=search_hits,
        )


async def get_call(request: Request) -> AsyncIterator[Call]:
    """The request's call, with a session of its own; the request boundary commits, services
    never do.

    Opening a session touches no connection (one is taken at the first statement, in a worker
    thread), so it happens on the event loop. A sync handler's route commits in the handler's
    own thread (``BoundaryRoute``); only a rollback, or a commit left by an async handler,
    takes a worker thread here. Each thread hop costs the request CPU: a request hops twice
    (authentication, handler), not once per dependency.
    """
    ctx = get_context(request)
    db = ctx.sessions()
    try:
        yield Call(ctx=ctx, db=db, info=request_info(request))
    except BaseException:
        # Shielded: a request cancelled (its client gone) still returns its connection.
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_finish, db, commit=False)
        raise
    if db.in_transaction():
        await run_in_threadpool(_finish, db, commit=True)
    else:  # committed in the handler's thread (``BoundaryRoute``), or never begun
        db.close()


CallDep = Annotated[Call, Depends(get_call, scope="function")]


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a sync handler so it commits the request's session in its own worker thread when it
    returns (a failure propagates to ``get_call``, which rolls back)."""
    if inspect.iscoroutinefunction(endpoint) or getattr(endpoint, "commits", False):
        return endpoint  # async, or wrapped already (a router included in another)

    @functools.wraps(endpoint)
    def handler(*args: Any, **kwargs: Any) -> Any:
        result = endpoint(*args, **kwargs)
        for value in kwargs.values():
            if isinstance(value, Call):
                value.db.commit()
                break
        return result

    handler.commits = True  # type: ignore[attr-defined]
    return handler


class BoundaryRoute(APIRoute):
    """The request boundary on every route: a sync handler commits the request's session in
    the thread it ran in, sparing the request a hop to a worker thread just to commit."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _committing(endpoint), **kwargs)


class HeadAsGet:
    """Answer ``HEAD`` wherever ``GET`` is served: the route runs as a GET (checks, audit and
    all) and the answer keeps its headers but not its body (RFC 9110, 9.3.2)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, headers_only)
        finally:
            if "route" in inner:  # the matched route, for the request metrics further out
                scope["route"] = inner["route"]
