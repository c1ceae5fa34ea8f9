"""Every query of the requests context: change requests, and the trail a subject access pack
reads (events naming the child, and the searches that returned it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reference_app.audit.models import AuditEvent, AuditSearchHit
from reference_app.audit.tags import EventTag
from reference_app.practitioners.models import Practitioner
from reference_app.requests.models import ChangeRequest, RequestStatus
from reference_app.services.models import Organisation


def add(db: Session, request: ChangeRequest) -> ChangeRequest:
    db.add(request)
    db.flush()
    return request


def get(db: Session, request_id: int) -> ChangeRequest | None:
    return db.get(ChangeRequest, request_id)


def listing(
    db: Session,
    *,
    local_authority_id: int | None,
    raised_by: int | None,
    status: RequestStatus | None,
    before_id: int | None,
    limit: int,
) -> Sequence[ChangeRequest]:
    """Requests newest first, for one LA's team or for the practitioner who raised them."""
    query = select(ChangeRequest).order_by(ChangeRequest.id.desc()).limit(limit)
    if local_authority_id is not None:
        query = query.where(ChangeRequest.local_authority_id == local_authority_id)
    if raised_by is not None:
        query = query.where(ChangeRequest.raised_by == raised_by)
    if status is not None:
        query = query.where(ChangeRequest.status == status.value)
    if before_id is not None:
        query = query.where(ChangeRequest.id < before_id)
    return db.scalars(query).all()


def for_child(db: Session, child_id: str) -> Sequence[ChangeRequest]:
    return db.scalars(
        select(ChangeRequest).where(ChangeRequest.child_id == child_id).order_by(ChangeRequest.id)
    ).all()


def mark_decided(
    db: Session,
    request_id: int,
    *,
    status: RequestStatus,
    decided_by: int,
    decided_at: datetime,
    note_enc: bytes | None,
) -> bool:
    """Decide a pending request; False if it was no longer pending (decided concurrently)."""
    result = db.execute(
        update(ChangeRequest)
        .where(ChangeRequest.id == request_id, ChangeRequest.status == RequestStatus.PENDING.value)
        .values(
            status=status.value,
            decided_by=decided_by,
            decided_at=decided_at,
            decision_note_enc=note_enc,
        )
        .returning(ChangeRequest.id)
    )
    return result.first() is not None


def actors(
    db: Session, practitioner_ids: Iterable[int]
) -> dict[int, tuple[str, Organisation | None]]:
    """Each practitioner's role and organisation."""
    ids = set(practitioner_ids)
    if not ids:
        return {}
    rows = db.execute(
        select(Practitioner.id, Practitioner.role, Organisation)
        .outerjoin(Organisation, Organisation.id == Practitioner.organisation_id)
        .where(Practitioner.id.in_(ids))
    ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def organisations(db: Session, organisation_ids: Iterable[int]) -> dict[int, Organisation]:
    ids = set(organisation_ids)
    if not ids:
        return {}
    return {o.id: o for o in db.scalars(select(Organisation).where(Organisation.id.in_(ids)))}


def events_naming(db: Session, child_id: str) -> Sequence[AuditEvent]:
    """Every event recorded against the child (index on child_id)."""
    return db.scalars(
        select(AuditEvent).where(AuditEvent.child_id == child_id).order_by(AuditEvent.id)
    ).all()


def searches_returning(db: Session, child_id: str) -> Sequence[AuditEvent]:
    """Search events whose results listed the child (through the hits index, not a scan)."""
    hits = select(AuditSearchHit.event_id).where(AuditSearchHit.child_id == child_id)
    return db.scalars(
        select(AuditEvent)
        .where(AuditEvent.id.in_(hits), AuditEvent.tag == EventTag.CHILD_SEARCH_PERFORMED.value)
        .order_by(AuditEvent.id)
    ).all()


def purge_event(db: Session, child_id: str) -> AuditEvent | None:
    """The event recording that retention purged the child, if it was."""
    return db.scalars(
        select(AuditEvent)
        .where(AuditEvent.child_id == child_id, AuditEvent.tag == EventTag.RETENTION_PURGED.value)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
