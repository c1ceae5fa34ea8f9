"""Export routes: request, review, approve or refuse, take a link, download once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from reference_app.exports import service
from reference_app.exports.auth import ExportApproveGuard, ExportRequestGuard
from reference_app.exports.schemas import ExportCreate, ExportLink, ExportOut, ExportRefuse
from reference_app.kit.errors import AppError
from reference_app.kit.http import BoundaryRoute, Call, CallDep
from reference_app.kit.identifiers import RowId

router = APIRouter(prefix="/exports", tags=["exports"], route_class=BoundaryRoute)


@contextmanager
def _keeping_violations(call: Call) -> Iterator[None]:
    """Commit a refused step's violation event and alert, which a rollback would lose.

    The service checks every rule before it changes anything, so nothing else is committed.
    """
    try:
        yield
    except AppError as exc:
        if exc.audited:
            call.db.commit()
        raise


@router.post("", response_model=ExportOut, status_code=status.HTTP_201_CREATED)
def request_export(body: ExportCreate, principal: ExportRequestGuard, call: CallDep) -> ExportOut:
    """Request an export of a scope of the caller's LA, for a recipient's public key."""
    with _keeping_violations(call):
        export = service.request_export(call, principal, body)
    return service.describe(call, export)


@router.get("", response_model=list[ExportOut])
def list_exports(
    principal: ExportRequestGuard,
    call: CallDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ExportOut]:
    """The caller's LA's export requests, newest first."""
    return [service.describe(call, e) for e in service.list_exports(call, principal, limit)]


@router.get("/{export_id}", response_model=ExportOut)
def get_export(export_id: RowId, principal: ExportRequestGuard, call: CallDep) -> ExportOut:
    """One export request of the caller's LA."""
    return service.describe(call, service.own(call, principal, export_id))


@router.post("/{export_id}/approve", response_model=ExportOut)
def approve(export_id: RowId, principal: ExportApproveGuard, call: CallDep) -> ExportOut:
    """Approve another data manager's request (never one's own)."""
    with _keeping_violations(call):
        export = service.approve(call, principal, export_id)
    return service.describe(call, export)


@router.post("/{export_id}/refuse", response_model=ExportOut)
def refuse(
    export_id: RowId, principal: ExportApproveGuard, call: CallDep, body: ExportRefuse | None = None
) -> ExportOut:
    """Refuse a request (or, as its requester, withdraw it), with an optional note."""
    export = service.refuse(call, principal, export_id, body.note if body else None)
    return service.describe(call, export)


@router.post("/{export_id}/link", response_model=ExportLink)
def link(export_id: RowId, principal: ExportRequestGuard, call: CallDep) -> ExportLink:
    """A short-lived download link, for the requester of an approved export."""
    with _keeping_violations(call):
        return service.issue_link(call, principal, export_id)


@router.get(
    "/download/{token}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(token: str, principal: ExportRequestGuard, call: CallDep) -> Response:
    """The export file, sealed to the recipient's key; served once, to the requester."""
    with _keeping_violations(call):
        served = service.download(call, principal, token)
    return Response(
        content=served.content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{served.filename}"'},
    )
