"""Every query on involvements that is not about a child's record (children/repository.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reference_app.kit.transitions import advance
from reference_app.services.models import Involvement


def get(db: Session, involvement_id: int) -> Involvement | None:
    return db.get(Involvement, involvement_id)


def claims_since(db: Session, practitioner_id: int, since: datetime) -> int:
    """Involvements ``practitioner_id`` registered from ``since`` on."""
    found = db.scalar(
        select(func.count(Involvement.id)).where(
            Involvement.practitioner_id == practitioner_id, Involvement.created_at >= since
        )
    )
    return int(found or 0)


def decide_claim(db: Session, involvement: Involvement, **values: Any) -> bool:
    """Confirm or reject an open claim; False if another data manager decided it first."""
    return advance(
        db,
        involvement,
        Involvement.confirmed_at.is_(None),
        Involvement.ended_on.is_(None),
        **values,
    )


def change_running(db: Session, involvement: Involvement, **values: Any) -> bool:
    """Change (or end) an involvement still running; False if it was ended (or rejected)
    meanwhile: an ended involvement is never made lead again."""
    return advance(db, involvement, Involvement.ended_on.is_(None), **values)


def withdraw_consent(db: Session, involvement: Involvement, at: datetime) -> bool:
    """Record the withdrawal once; False if it was recorded meanwhile."""
    return advance(
        db, involvement, Involvement.consent_withdrawn_at.is_(None), consent_withdrawn_at=at
    )
