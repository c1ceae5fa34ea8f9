"""Alert routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from reference_app.access.guards import require
from reference_app.access.permissions import Permission
from reference_app.access.principal import Principal
from reference_app.alerts import service
from reference_app.kit.http import CallDep

router = APIRouter(tags=["alerts"])
AlertRead = Annotated[Principal, Depends(require(Permission.ALERT_READ))]


class AlertOut(BaseModel):
    id: int
    kind: str
    severity: str
    status: str
    created_at: datetime
    subject_user_id: int
    local_authority_id: int
    child_id: str | None
    audit_event_id: int | None
    summary: str


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(
    principal: AlertRead, call: CallDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[AlertOut]:
    """Alerts for the caller's review, newest first."""
    return [
        AlertOut.model_validate(a, from_attributes=True)
        for a in service.list_alerts(call, principal, limit)
    ]
