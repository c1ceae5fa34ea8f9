"""Per-request dependencies: the instance context, a database session, and request info."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

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


async def get_db(request: Request) -> AsyncIterator[Session]:
    """Open the request's session; the request boundary commits, services never do.

    Opening a session touches no connection (one is taken at the first statement, in the
    handler's thread), so it happens on the event loop; only the commit or rollback needs a
    worker thread. Each thread hop costs the request CPU: the hot paths hop three times
    (authentication, handler, commit), not once per dependency.
    """
    db = get_context(request).sessions()
    try:
        yield db
    except BaseException:
        # Shielded: a request cancelled (its client gone) still returns its connection.
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_finish, db, commit=False)
        raise
    await run_in_threadpool(_finish, db, commit=True)


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
        )


async def get_call(
    request: Request, db: Annotated[Session, Depends(get_db, scope="function")]
) -> Call:
    return Call(ctx=get_context(request), db=db, info=request_info(request))


CallDep = Annotated[Call, Depends(get_call)]
