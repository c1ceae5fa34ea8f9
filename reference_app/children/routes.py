"""Children routes: search, view with a reason, creation, correction and shielding."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from starlette.convertors import Convertor, register_url_convertor

from reference_app.children import service
from reference_app.children.auth import (
    ChildCorrectGuard,
    ChildCreateGuard,
    ChildRead,
    ChildSearch,
    ChildShieldGuard,
)
from reference_app.children.schemas import (
    ACCESS_REASON_MAX_LENGTH,
    ACCESS_REASON_PATTERN,
    ChildCorrect,
    ChildCreate,
    ChildCreated,
    SearchRequest,
    SearchResponse,
    ShieldChange,
    ShieldOutcome,
    UnshieldApproval,
)
from reference_app.kit.contract import required_header
from reference_app.kit.http import BoundaryRoute, CallDep

router = APIRouter(prefix="/children", tags=["children"], route_class=BoundaryRoute)


class ChildSegment(Convertor[str]):
    """A child identifier as the last segment of ``/children/...``: anything but the literal
    segments of the sibling routes, so ``PATCH /children/search`` is a method that path does
    not serve (405), not a view of a child called "search"."""

    regex = "(?!search$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("child_segment", ChildSegment())


@router.post("/search", response_model=SearchResponse)
def search(body: SearchRequest, principal: ChildSearch, call: CallDep) -> SearchResponse:
    """Search by family name and at least one more criterion (POST: no personal data in URLs)."""
    return service.search(call, principal, body)


@router.get("/{child_id:child_segment}")
def view(
    child_id: str,
    principal: ChildRead,
    call: CallDep,
    x_access_reason: Annotated[
        str | None,
        Header(
            description="`<reason code>[; free text]`",
            json_schema_extra=required_header(
                minLength=1, maxLength=ACCESS_REASON_MAX_LENGTH, pattern=ACCESS_REASON_PATTERN
            ),
        ),
    ] = None,
) -> dict[str, Any]:
    """A child's record as the caller is entitled to see it; needs ``X-Access-Reason``."""
    return service.view(call, principal, child_id, x_access_reason)


@router.post("", response_model=ChildCreated, status_code=status.HTTP_201_CREATED)
def create(body: ChildCreate, principal: ChildCreateGuard, call: CallDep) -> ChildCreated:
    """Register a child in the caller's local authority."""
    return ChildCreated(child_id=service.create(call, principal, body).id)


@router.patch("/{child_id:child_segment}", response_model=ChildCreated)
def correct(
    child_id: str, body: ChildCorrect, principal: ChildCorrectGuard, call: CallDep
) -> ChildCreated:
    """Correct a child's details (the caller's own local authority only)."""
    return ChildCreated(child_id=service.correct(call, principal, child_id, body).id)


@router.post(
    "/{child_id}/shield",
    response_model=ShieldOutcome,
    responses={202: {"model": ShieldOutcome, "description": "Unshield awaits a second approval"}},
)
def shield(
    child_id: str,
    body: ShieldChange,
    principal: ChildShieldGuard,
    call: CallDep,
    response: Response,
) -> ShieldOutcome:
    """Shield a child's record at once, or ask to lift the shield (202: a second data manager of
    the LA approves it), with the decision noted in the trail."""
    child = service.set_shield(call, principal, child_id, body.shielded, body.decision_note)
    outcome = service.shield_outcome(call, child)
    if not body.shielded and outcome.shielded:
        response.status_code = status.HTTP_202_ACCEPTED
    return outcome


@router.post("/{child_id}/unshield/approve", response_model=ShieldOutcome)
def approve_unshield(
    child_id: str, body: UnshieldApproval, principal: ChildShieldGuard, call: CallDep
) -> ShieldOutcome:
    """Approve another data manager's pending unshield: the shield is lifted."""
    child = service.approve_unshield(call, principal, child_id, body.decision_note)
    return service.shield_outcome(call, child)
