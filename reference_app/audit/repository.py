"""Every audit query: appending events, the sealer's reads and writes, and listing for review."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.orm import Session

from reference_app.audit.models import (
    AuditCheckpoint,
    AuditEvent,
    AuditLogEntry,
    AuditPending,
    AuditSearchHit,
)
from reference_app.children.models import Child


def append_event(db: Session, values: dict[str, Any]) -> int:
    """Insert one event and its pending marker; return the event id."""
    event_id = db.execute(insert(AuditEvent).values(**values).returning(AuditEvent.id)).scalar_one()
    db.execute(insert(AuditPending).values(event_id=event_id))
    return int(event_id)


def append_events(db: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert many events and their pending markers; return the event ids."""
    if not rows:
        return []
    ids = db.scalars(
        insert(AuditEvent).returning(AuditEvent.id, sort_by_parameter_order=True), rows
    ).all()
    db.execute(insert(AuditPending), [{"event_id": event_id} for event_id in ids])
    return [int(event_id) for event_id in ids]


def append_search_hits(db: Session, event_id: int, child_ids: list[str]) -> None:
    """Index a search event by each child it returned."""
    if child_ids:
        db.execute(
            insert(AuditSearchHit),
            [{"child_id": child_id, "event_id": event_id} for child_id in set(child_ids)],
        )


def latest_checkpoint(db: Session) -> AuditCheckpoint | None:
    return db.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
    ).first()


def pending_events(db: Session, limit: int) -> Sequence[AuditEvent]:
    ids = select(AuditPending.event_id).order_by(AuditPending.event_id).limit(limit)
    return db.scalars(
        select(AuditEvent).where(AuditEvent.id.in_(ids)).order_by(AuditEvent.id)
    ).all()


def write_seal(
    db: Session, entries: list[dict[str, int]], checkpoint: AuditCheckpoint, event_ids: list[int]
) -> None:
    """Write a sealed batch: log positions, its checkpoint, and clear the pending markers."""
    db.execute(insert(AuditLogEntry), entries)
    db.add(checkpoint)
    db.flush()
    db.execute(delete(AuditPending).where(AuditPending.event_id.in_(event_ids)))


def all_checkpoints(db: Session) -> Sequence[AuditCheckpoint]:
    return db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size)).all()


def log_in_order(db: Session, batch: int = 50000) -> Any:
    """Yield (seq, event_id, event or None) in log order, streaming in batches."""
    last = -1
    while True:
        rows = db.execute(
            select(AuditLogEntry.seq, AuditLogEntry.event_id, AuditEvent)
            .outerjoin(AuditEvent, AuditEvent.id == AuditLogEntry.event_id)
            .where(AuditLogEntry.seq > last)
            .order_by(AuditLogEntry.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def unsealed_event_ids(db: Session, older_than: datetime) -> Sequence[int]:
    """Events older than ``older_than`` with no log position, pending or not."""
    return db.scalars(
        select(AuditEvent.id)
        .outerjoin(AuditLogEntry, AuditLogEntry.event_id == AuditEvent.id)
        .where(AuditLogEntry.seq.is_(None), AuditEvent.occurred_at < older_than)
        .order_by(AuditEvent.id)
    ).all()


def pending_count(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(AuditPending)) or 0)


def list_events(
    db: Session,
    *,
    local_authority_id: int | None,
    child_id: str | None,
    actor_id: int | None,
    tag: str | None,
    before_id: int | None,
    limit: int,
) -> Sequence[AuditEvent]:
    """Events for review; a local authority sees its own staff's and its own children's."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if local_authority_id is not None:
        own_children = select(Child.id).where(Child.local_authority_id == local_authority_id)
        query = query.where(
            or_(
                AuditEvent.actor_local_authority_id == local_authority_id,
                AuditEvent.child_id.in_(own_children),
            )
        )
    if child_id is not None:
        query = query.where(AuditEvent.child_id == child_id)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if tag is not None:
        query = query.where(AuditEvent.tag == tag)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return db.scalars(query).all()
