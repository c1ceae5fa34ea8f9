"""Every query on alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from reference_app.access.principal import Principal
from reference_app.alerts.models import Alert, AlertStatus, Canary
from reference_app.kit.transitions import advance
from reference_app.practitioners.models import Practitioner


def visible(principal: Principal) -> list[ColumnElement[bool]]:
    """Alerts a reviewer may see: a data manager their own LA's and those about their LA's
    staff (the employing LA answers for its people), an auditor all."""
    if principal.is_data_manager:
        staff = select(Practitioner.id).where(
            Practitioner.local_authority_id == principal.local_authority_id
        )
        return [
            or_(
                Alert.local_authority_id == principal.local_authority_id,
                Alert.subject_user_id.in_(staff),
            )
        ]
    return []


def list_for(
    db: Session, principal: Principal, *, status: str | None, kind: str | None, limit: int
) -> Sequence[Alert]:
    query = select(Alert).where(*visible(principal)).order_by(Alert.id.desc()).limit(limit)
    if status:
        query = query.where(Alert.status == status)
    if kind:
        query = query.where(Alert.kind == kind)
    return db.scalars(query).all()


def get_for(db: Session, principal: Principal, alert_id: int) -> Alert | None:
    return db.scalars(select(Alert).where(Alert.id == alert_id, *visible(principal))).first()


def is_canary(db: Session, child_id: str) -> bool:
    return db.get(Canary, child_id) is not None


def move(db: Session, alert: Alert, seen: str, **values: Any) -> bool:
    """Step ``alert`` on from the status ``seen``; False if another step came first."""
    return advance(db, alert, Alert.status == seen, **values)


def request_reinstatement(db: Session, alert: Alert, by: int, at: datetime) -> bool:
    """Record the first data manager of a reinstatement, unless another asked first or the
    alert was closed meanwhile."""
    return advance(
        db,
        alert,
        Alert.reinstatement_requested_by.is_(None),
        Alert.status != AlertStatus.CLOSED.value,
        reinstatement_requested_by=by,
        reinstatement_requested_at=at,
    )


def take_reinstatement(db: Session, alert: Alert, first: int, by: int, at: datetime) -> bool:
    """Take up ``first``'s reinstatement request to confirm it, unless another data manager
    confirmed it or the alert was closed meanwhile."""
    return advance(
        db,
        alert,
        Alert.reinstatement_requested_by == first,
        Alert.status != AlertStatus.CLOSED.value,
        reinstatement_requested_by=None,
        reinstatement_requested_at=None,
        updated_at=at,
        handled_by=by,
    )
