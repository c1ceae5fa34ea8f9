"""Involvement routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from reference_app.access.guards import require
from reference_app.access.permissions import Permission
from reference_app.access.principal import Principal
from reference_app.kit.http import BoundaryRoute, CallDep
from reference_app.kit.identifiers import RowId
from reference_app.services import service
from reference_app.services.schemas import (
    InvolvementChange,
    InvolvementCreate,
    InvolvementEnd,
    InvolvementOut,
)

router = APIRouter(tags=["involvements"], route_class=BoundaryRoute)
InvolvementWrite = Annotated[Principal, Depends(require(Permission.INVOLVEMENT_WRITE))]
ConsentWithdraw = Annotated[Principal, Depends(require(Permission.INVOLVEMENT_CONSENT_WITHDRAW))]
InvolvementConfirm = Annotated[Principal, Depends(require(Permission.INVOLVEMENT_CONFIRM))]


@router.post(
    "/children/{child_id}/involvements",
    response_model=InvolvementOut,
    status_code=status.HTTP_201_CREATED,
)
def register(
    child_id: str, body: InvolvementCreate, principal: InvolvementWrite, call: CallDep
) -> InvolvementOut:
    """Claim that the caller's service works with a child (the child's LA confirms it)."""
    return InvolvementOut.of(
        service.register(
            call,
            principal,
            child_id,
            started_on=body.started_on,
            lead_professional=body.lead_professional,
            caf_assessment_on=body.caf_assessment_on,
            consent_recorded=body.consent_recorded,
        )
    )


@router.patch("/involvements/{involvement_id}", response_model=InvolvementOut)
def update(
    involvement_id: RowId, body: InvolvementChange, principal: InvolvementWrite, call: CallDep
) -> InvolvementOut:
    """Set lead professional or the CAF assessment date (the owner only)."""
    return InvolvementOut.of(
        service.update(
            call,
            principal,
            involvement_id,
            lead_professional=body.lead_professional,
            caf_assessment_on=body.caf_assessment_on,
        )
    )


@router.post("/involvements/{involvement_id}/end", response_model=InvolvementOut)
def end(
    involvement_id: RowId, body: InvolvementEnd, principal: InvolvementWrite, call: CallDep
) -> InvolvementOut:
    """End an involvement (the owner only)."""
    return InvolvementOut.of(service.end(call, principal, involvement_id, body.ended_on))


@router.post("/involvements/{involvement_id}/withdraw-consent", response_model=InvolvementOut)
def withdraw_consent(
    involvement_id: RowId, principal: ConsentWithdraw, call: CallDep
) -> InvolvementOut:
    """Record the young person's withdrawal of consent (the service itself or the child's LA)."""
    return InvolvementOut.of(service.withdraw_consent(call, principal, involvement_id))


@router.post("/involvements/{involvement_id}/confirm", response_model=InvolvementOut)
def confirm(involvement_id: RowId, principal: InvolvementConfirm, call: CallDep) -> InvolvementOut:
    """Confirm a claimed involvement with a child of the caller's LA."""
    return InvolvementOut.of(service.confirm(call, principal, involvement_id))


@router.post("/involvements/{involvement_id}/reject", response_model=InvolvementOut)
def reject(involvement_id: RowId, principal: InvolvementConfirm, call: CallDep) -> InvolvementOut:
    """Reject a claimed involvement with a child of the caller's LA (it ends today)."""
    return InvolvementOut.of(service.reject(call, principal, involvement_id))
