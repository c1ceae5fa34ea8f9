"""Raising alerts for review, and listing them for the teams that review them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from reference_app.access.principal import Principal
from reference_app.alerts.models import Alert, AlertKind, AlertSeverity, AlertStatus, Canary
from reference_app.audit.tags import EventTag
from reference_app.kit.http import Call


def raise_alert(
    call: Call,
    subject: Principal,
    *,
    kind: AlertKind,
    severity: AlertSeverity,
    local_authority_id: int,
    child_id: str | None,
    audit_event_id: int | None,
    summary: str,
    details: dict[str, Any] | None = None,
) -> Alert:
    """Raise an alert to ``local_authority_id``'s management team; it carries references only."""
    alert = Alert(
        created_at=call.ctx.clock.now(),
        kind=kind.value,
        severity=severity.value,
        status=AlertStatus.OPEN.value,
        subject_user_id=subject.user_id,
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
        principal=subject,
        child_id=child_id,
        details={"alert_id": alert.id, "kind": kind.value},
    )
    return alert


def is_canary(call: Call, child_id: str) -> bool:
    """Whether ``child_id`` is a honeytoken record."""
    return call.db.get(Canary, child_id) is not None


def list_alerts(call: Call, principal: Principal, limit: int) -> Sequence[Alert]:
    """Alerts the caller reviews: an LA's management team its own LA's, an auditor all."""
    query = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if principal.is_data_manager:
        query = query.where(Alert.local_authority_id == principal.local_authority_id)
    return call.db.scalars(query).all()
