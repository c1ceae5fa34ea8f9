"""Alert routes: the management team's list and workflow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from reference_app.alerts import service
from reference_app.alerts.auth import AlertManage, AlertRead
from reference_app.alerts.models import AlertKind, AlertStatus
from reference_app.alerts.schemas import AlertOut, AlertStep
from reference_app.kit.http import BoundaryRoute, CallDep
from reference_app.kit.identifiers import RowId
from reference_app.practitioners.models import AccountStatus

router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=BoundaryRoute)


@router.get("", response_model=list[AlertOut])
def list_alerts(
    principal: AlertRead,
    call: CallDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: AlertStatus | None = None,
    kind: AlertKind | None = None,
) -> list[AlertOut]:
    """Alerts for the caller's review, newest first (a data manager: own LA's; an auditor: all)."""
    alerts = service.list_alerts(call, principal, limit, status=status, kind=kind)
    return [service.to_out(call, a) for a in alerts]


@router.get("/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: RowId, principal: AlertRead, call: CallDep) -> AlertOut:
    """One alert."""
    return service.to_out(call, service.get_alert(call, principal, alert_id))


@router.post("/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge(
    alert_id: RowId, body: AlertStep, principal: AlertManage, call: CallDep
) -> AlertOut:
    """Acknowledge an alert: someone has it."""
    alert = service.step(call, principal, alert_id, AlertStatus.ACKNOWLEDGED, body.note)
    return service.to_out(call, alert)


@router.post("/{alert_id}/investigate", response_model=AlertOut)
def investigate(
    alert_id: RowId, body: AlertStep, principal: AlertManage, call: CallDep
) -> AlertOut:
    """Open an investigation into an alert."""
    alert = service.step(call, principal, alert_id, AlertStatus.INVESTIGATING, body.note)
    return service.to_out(call, alert)


@router.post("/{alert_id}/close", response_model=AlertOut)
def close(alert_id: RowId, body: AlertStep, principal: AlertManage, call: CallDep) -> AlertOut:
    """Close an alert, with the outcome in the note."""
    alert = service.step(call, principal, alert_id, AlertStatus.CLOSED, body.note)
    return service.to_out(call, alert)


@router.post("/{alert_id}/suspend-subject", response_model=AlertOut)
def suspend_subject(
    alert_id: RowId, body: AlertStep, principal: AlertManage, call: CallDep
) -> AlertOut:
    """Suspend the alert's subject: their sessions end at once."""
    alert = service.set_subject_status(
        call, principal, alert_id, AccountStatus.SUSPENDED, body.note
    )
    return service.to_out(call, alert)


@router.post(
    "/{alert_id}/reinstate-subject",
    response_model=AlertOut,
    responses={202: {"model": AlertOut, "description": "Awaits a second data manager"}},
)
def reinstate_subject(
    alert_id: RowId, body: AlertStep, principal: AlertManage, call: CallDep, response: Response
) -> AlertOut:
    """Reinstate the alert's subject after review: a data manager of their own LA asks (202),
    another confirms (200)."""
    alert = service.set_subject_status(call, principal, alert_id, AccountStatus.ACTIVE, body.note)
    if service.reinstatement_pending(alert):
        response.status_code = status.HTTP_202_ACCEPTED
    return service.to_out(call, alert)
