"""Subject access and change request routes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from reference_app.kit.http import BoundaryRoute, CallDep
from reference_app.kit.identifiers import RowId
from reference_app.requests import printable, service
from reference_app.requests.auth import RequestDecide, RequestRaise, SubjectAccessProduce
from reference_app.requests.models import RequestStatus
from reference_app.requests.schemas import (
    DecisionCreate,
    RequestCreate,
    RequestDetail,
    RequestSummary,
)

router = APIRouter(tags=["requests"], route_class=BoundaryRoute)


class PackFormat(StrEnum):
    HTML = "html"
    JSON = "json"


@router.get(
    "/subject-access/{child_id}",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def subject_access(
    child_id: str,
    principal: SubjectAccessProduce,
    call: CallDep,
    format: PackFormat | None = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """The subject access pack for a child of the caller's LA: JSON, or a printable page
    (``?format=html`` or ``Accept: text/html``)."""
    if format is None:
        first = (accept or "").split(",")[0].strip().lower()
        format = PackFormat.HTML if first.startswith("text/html") else PackFormat.JSON
    pack = service.subject_access_pack(call, principal, child_id, format.value)
    if format is PackFormat.JSON:
        return JSONResponse(pack)
    return HTMLResponse(
        printable.render(pack),
        headers={
            "Content-Security-Policy": printable.CONTENT_SECURITY_POLICY,
            "Content-Disposition": f'inline; filename="subject-access-{pack["child_id"]}.html"',
        },
    )


@router.post("/requests", response_model=RequestDetail, status_code=201)
def raise_request(body: RequestCreate, principal: RequestRaise, call: CallDep) -> RequestDetail:
    """Raise a rectification, shielding or unshielding request on the family's behalf."""
    return service.raise_request(call, principal, body)


@router.get("/requests", response_model=list[RequestSummary])
def list_requests(
    principal: RequestRaise,
    call: CallDep,
    status: RequestStatus | None = None,
    before_id: RowId | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Any]:
    """Requests newest first: the LA team's for its children, a practitioner's own."""
    return [
        RequestSummary.model_validate(r, from_attributes=True)
        for r in service.listing(call, principal, status=status, before_id=before_id, limit=limit)
    ]


@router.get("/requests/{request_id}", response_model=RequestDetail)
def show_request(request_id: RowId, principal: RequestRaise, call: CallDep) -> RequestDetail:
    """A request's decision trail."""
    return service.show(call, principal, request_id)


@router.post("/requests/{request_id}/decision", response_model=RequestDetail)
def decide_request(
    request_id: RowId, body: DecisionCreate, principal: RequestDecide, call: CallDep
) -> RequestDetail:
    """Approve (applying the change) or reject a request; never the raiser's own."""
    return service.decide(call, principal, request_id, body)
