"""Raising alerts for review, and the management team's workflow on them.

An alert moves ``open -> acknowledged -> investigating -> closed`` (steps may be skipped, never
reversed); the team may suspend the alert's subject from it, and the subject's employing LA
reinstate them (two of its data managers, through an open alert). Every step is audited.

A step moves the alert on only from the status its caller read (``kit.transitions``): of two data
managers stepping the same alert at once one wins, the other is refused with 409
``state_changed``, so no step is recorded twice and none is undone. Nobody handles an alert
about themselves (403 ``own_alert``, the ``alert_separation`` control).
The notification that goes out when an alert is raised carries references (alert id, kind,
severity, LA, child identifier), never a child's personal data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from reference_app.access.principal import Principal
from reference_app.alerts import repository
from reference_app.alerts.models import Alert, AlertKind, AlertSeverity, AlertStatus
from reference_app.alerts.schemas import AlertOut, AlertSubject
from reference_app.audit.service import sealed_text
from reference_app.audit.tags import EventTag
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import Conflict, Forbidden, NotFound
from reference_app.kit.http import Call
from reference_app.kit.transitions import StateChanged
from reference_app.practitioners import repository as accounts
from reference_app.practitioners.models import AccountStatus

notifications = logging.getLogger("contactpoint.alerts")

_STEPS: dict[AlertStatus, tuple[EventTag, frozenset[AlertStatus]]] = {
    # target status: (its audit tag, the statuses it may be reached from)
    AlertStatus.ACKNOWLEDGED: (EventTag.ALERT_ACKNOWLEDGED, frozenset({AlertStatus.OPEN})),
    AlertStatus.INVESTIGATING: (
        EventTag.ALERT_INVESTIGATING,
        frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED}),
    ),
    AlertStatus.CLOSED: (
        EventTag.ALERT_CLOSED,
        frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.INVESTIGATING}),
    ),
}


def raise_alert(
    call: Call,
    subject: Principal | int,
    *,
    kind: AlertKind,
    severity: AlertSeverity,
    local_authority_id: int,
    child_id: str | None,
    audit_event_id: int | None,
    summary: str,
    details: dict[str, Any] | None = None,
) -> Alert:
    """Raise an alert to ``local_authority_id``'s management team; it carries references only.

    ``subject`` is the caller whose request raised it, or the id of a user a detector found
    (then the trail records the alert with no acting principal).
    """
    principal = subject if isinstance(subject, Principal) else None
    subject_user_id = subject.user_id if isinstance(subject, Principal) else subject
    alert = Alert(
        created_at=call.ctx.clock.now(),
        kind=kind.value,
        severity=severity.value,
        status=AlertStatus.OPEN.value,
        subject_user_id=subject_user_id,
        local_authority_id=local_authority_id,
        child_id=child_id,
        audit_event_id=audit_event_id,
        summary=summary,
        details=json.dumps(details or {}, sort_keys=True),
    )
    call.db.add(alert)
    call.db.flush()
    call.audit(
        EventTag.ALERT_RAISED,
        principal=principal,
        child_id=child_id,
        details={"alert_id": alert.id, "kind": kind.value, "subject_user_id": subject_user_id},
    )
    notifications.warning("alert raised %s", json.dumps(notification(alert), sort_keys=True))
    return alert


def notification(alert: Alert) -> dict[str, Any]:
    """What goes out to the management team's channel: a reference to follow, nothing more."""
    return {
        "alert_id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity,
        "local_authority_id": alert.local_authority_id,
        "child_ref": alert.child_id,
        "subject_user_id": alert.subject_user_id,
    }


def is_canary(call: Call, child_id: str) -> bool:
    """Whether ``child_id`` is a honeytoken record."""
    return repository.is_canary(call.db, child_id)


def to_out(call: Call, alert: Alert) -> AlertOut:
    user = accounts.by_id(call.db, alert.subject_user_id)
    return AlertOut(
        id=alert.id,
        kind=alert.kind,
        severity=alert.severity,
        status=alert.status,
        created_at=alert.created_at,
        updated_at=alert.updated_at,
        subject_user_id=alert.subject_user_id,
        subject=AlertSubject(
            id=alert.subject_user_id,
            username=user.username if user else None,
            role=user.role if user else None,
            status=user.status if user else None,
        ),
        local_authority_id=alert.local_authority_id,
        child_id=alert.child_id,
        audit_event_id=alert.audit_event_id,
        summary=alert.summary,
        details=json.loads(alert.details or "{}"),
        handled_by=alert.handled_by,
        reinstatement_requested_by=alert.reinstatement_requested_by,
    )


def list_alerts(
    call: Call,
    principal: Principal,
    limit: int,
    *,
    status: AlertStatus | None = None,
    kind: AlertKind | None = None,
) -> Sequence[Alert]:
    """Alerts the caller reviews, newest first."""
    return repository.list_for(
        call.db,
        principal,
        status=status.value if status else None,
        kind=kind.value if kind else None,
        limit=limit,
    )


def get_alert(call: Call, principal: Principal, alert_id: int) -> Alert:
    alert = repository.get_for(call.db, principal, alert_id)
    if alert is None:
        raise NotFound("No such alert for your review.", code="alert_not_found")
    return alert


def _note_details(call: Call, alert: Alert, note: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"alert_id": alert.id, "kind": alert.kind}
    if note:
        details["note_enc"] = sealed_text(call.ctx, note, "audit.alert_note")
    return details


def _handled(call: Call, principal: Principal, alert_id: int) -> Alert:
    """An alert the caller reviews and may act on: never one about themselves."""
    alert = get_alert(call, principal, alert_id)
    if alert.subject_user_id == principal.user_id and enabled(
        call.ctx.settings, Control.ALERT_SEPARATION
    ):
        raise Forbidden(
            "Nobody handles an alert about themselves; another data manager must.",
            code="own_alert",
        )
    return alert


def step(
    call: Call, principal: Principal, alert_id: int, target: AlertStatus, note: str | None
) -> Alert:
    """Move an alert on (acknowledge, investigate, close) from the status the caller read,
    audited with the note sealed."""
    alert = _handled(call, principal, alert_id)
    tag, sources = _STEPS[target]
    seen = alert.status
    if AlertStatus(seen) not in sources:
        raise Conflict(
            f"The alert is {seen}; it cannot be moved to {target.value}.",
            code="alert_step_not_allowed",
        )
    moved = repository.move(
        call.db,
        alert,
        seen,
        status=target.value,
        updated_at=call.ctx.clock.now(),
        handled_by=principal.user_id,
    )
    if not moved:
        raise StateChanged(f"The alert was moved on by someone else since it read {seen}.")
    call.audit(
        tag, principal=principal, child_id=alert.child_id, details=_note_details(call, alert, note)
    )
    return alert


def close_claim_alerts(
    call: Call, principal: Principal, child_id: str, involvement_id: int, decision: str
) -> list[Alert]:
    """Close the open alerts a claim raised, now that ``principal`` decided it: the team's list
    keeps only what still needs someone, and the trail records who closed them and why."""
    candidates = call.db.scalars(
        select(Alert).where(
            Alert.kind == AlertKind.INVOLVEMENT_CLAIM.value,
            Alert.local_authority_id == principal.local_authority_id,
            Alert.child_id == child_id,
            Alert.status != AlertStatus.CLOSED.value,
        )
    ).all()
    closed = []
    for alert in candidates:
        if json.loads(alert.details or "{}").get("involvement_id") != involvement_id:
            continue
        if not repository.move(
            call.db,
            alert,
            alert.status,
            status=AlertStatus.CLOSED.value,
            updated_at=call.ctx.clock.now(),
            handled_by=principal.user_id,
        ):
            continue  # someone closed or stepped it meanwhile: theirs is the step on the trail
        details = {"alert_id": alert.id, "kind": alert.kind, "claim": decision}
        call.audit(EventTag.ALERT_CLOSED, principal=principal, child_id=child_id, details=details)
        closed.append(alert)
    return closed


def set_subject_status(
    call: Call, principal: Principal, alert_id: int, status: AccountStatus, note: str | None
) -> Alert:
    """Suspend or reinstate the alert's subject; suspension ends their sessions at once.

    Suspending is one person's call, at once. Reinstating is the subject's employing LA's: two
    of its data managers (one asks, another confirms) through an alert still open, so neither
    another LA's team nor one person alone undoes a suspension (``reinstatement_pending`` tells
    the caller the first step is recorded).
    """
    from reference_app.practitioners.service import set_status

    alert = _handled(call, principal, alert_id)
    user = accounts.by_id(call.db, alert.subject_user_id)
    if user is None:
        raise NotFound("The alert's subject no longer exists.", code="practitioner_not_found")
    if user.status == status.value:
        raise Conflict(f"The account is already {status.value}.", code="account_unchanged")
    details = _note_details(call, alert, note)
    now = call.ctx.clock.now()
    if status is AccountStatus.ACTIVE and enabled(call.ctx.settings, Control.SUSPENSION_AUTHORITY):
        _check_reinstatement_authority(principal, alert, user.local_authority_id)
        first = alert.reinstatement_requested_by
        if first is None:
            if not repository.request_reinstatement(call.db, alert, principal.user_id, now):
                raise StateChanged("Another data manager asked, or the alert was closed, first.")
            call.audit(
                EventTag.USER_REINSTATEMENT_REQUESTED,
                principal=principal,
                details={"practitioner_id": user.id, **details},
            )
            return alert
        if first == principal.user_id:
            raise Forbidden(
                "A reinstatement is confirmed by a data manager other than the one who asked.",
                code="own_reinstatement_request",
            )
        details["requested_by"] = first
        if not repository.take_reinstatement(call.db, alert, first, principal.user_id, now):
            raise StateChanged("The reinstatement was confirmed, or the alert closed, meanwhile.")
    # The account moves on only from the status read here: of two data managers suspending (or
    # confirming a reinstatement) at once, one does it and the other is refused.
    if not set_status(call, user, status, by=principal, details=details):
        raise StateChanged("The account's status was changed by someone else since it was read.")
    # Any half-agreed reinstatement lapses once the subject's status moves.
    alert.reinstatement_requested_by = None
    alert.reinstatement_requested_at = None
    alert.updated_at = now
    alert.handled_by = principal.user_id
    return alert


def reinstatement_pending(alert: Alert) -> bool:
    """Whether a reinstatement through ``alert`` awaits its second data manager."""
    return alert.reinstatement_requested_by is not None


def _check_reinstatement_authority(
    principal: Principal, alert: Alert, employing_la_id: int
) -> None:
    """Only the subject's employing LA reinstates, and only through an alert still open."""
    if not (principal.is_data_manager and principal.local_authority_id == employing_la_id):
        raise Forbidden(
            "Only the data managers of the practitioner's own local authority reinstate them.",
            code="reinstatement_not_permitted",
        )
    if alert.status == AlertStatus.CLOSED.value:
        raise Conflict(
            "The alert is closed; reinstate through an open alert about the practitioner.",
            code="alert_closed",
        )
