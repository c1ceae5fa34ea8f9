"""Alert routes: the management team's list and workflow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from reference_app.alerts import service
from reference_app.alerts.auth import AlertManage, AlertRead
from reference_app.alerts.models import AlertKind, AlertStatus
from reference_app.alerts.schemas import AlertOut, AlertStep
from reference_app.kit.http import CallDep
from reference_app.practitioners.models import AccountStatus

router = APIRouter(prefix="/alerts", tags=["alerts"])


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
def get_alert(alert_id: int, principal: AlertRead, call: CallDep) -> AlertOut:
    """One alert."""
    return service.to_out(call, service.get_alert(call, principal, alert_id))


def _step(target: AlertStatus, doc: str) -> None:
    def route(alert_id: int, body: AlertStep, principal: AlertManage, call: CallDep) -> AlertOut:
        alert = service.step(call, principal, alert_id, target, body.note)
        return service.to_out(call, alert)

    route.__doc__ = doc
    route.__name__ = f"alert_{target.value}"
    router.post(f"/{{alert_id}}/{_PATHS[target]}", response_model=AlertOut)(route)


_PATHS = {
    AlertStatus.ACKNOWLEDGED: "acknowledge",
    AlertStatus.INVESTIGATING: "investigate",
    AlertStatus.CLOSED: "close",
}
_step(AlertStatus.ACKNOWLEDGED, "Acknowledge an alert: someone has it.")
_step(AlertStatus.INVESTIGATING, "Open an investigation into an alert.")
_step(AlertStatus.CLOSED, "Close an alert, with the outcome in the note.")


@router.post("/{alert_id}/suspend-subject", response_model=AlertOut)
def suspend_subject(
    alert_id: int, body: AlertStep, principal: AlertManage, call: CallDep
) -> AlertOut:
    """Suspend the alert's subject: their sessions end at once."""
    alert = service.set_subject_status(
        call, principal, alert_id, AccountStatus.SUSPENDED, body.note
    )
    return service.to_out(call, alert)


@router.post("/{alert_id}/reinstate-subject", response_model=AlertOut)
def reinstate_subject(
    alert_id: int, body: AlertStep, principal: AlertManage, call: CallDep
) -> AlertOut:
    """Reinstate the alert's subject after review."""
    alert = service.set_subject_status(call, principal, alert_id, AccountStatus.ACTIVE, body.note)
    return service.to_out(call, alert)
