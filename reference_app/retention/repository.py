"""Every query retention runs: the sweep of live records, archiving, and the purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from reference_app.alerts.models import Canary
from reference_app.carers.models import Carer, ChildCarer
from reference_app.children.models import Child, UnshieldRequest
from reference_app.requests.models import ChangeRequest
from reference_app.services.models import Involvement

_BULK = {"synchronize_session": False}


def count_live(db: Session) -> int:
    return int(db.scalar(select(func.count()).where(Child.archived_at.is_(None))) or 0)


def live_batch(db: Session, *, after: str, limit: int) -> Sequence[tuple[str, bytes]]:
    """The next live (not archived) children after ``after`` in id order: id and encrypted
    date of birth, nothing else."""
    rows = db.execute(
        select(Child.id, Child.date_of_birth_enc)
        .where(Child.archived_at.is_(None), Child.id > after)
        .order_by(Child.id)
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]


def archive(db: Session, child_ids: list[str], at: datetime) -> list[str]:
    """Archive those of ``child_ids`` still live; return the ones this call archived."""
    result = db.execute(
        update(Child)
        .where(Child.id.in_(child_ids), Child.archived_at.is_(None))
        .values(archived_at=at)
        .returning(Child.id)
        .execution_options(**_BULK)
    )
    return [row[0] for row in result]


def count_due_for_purge(db: Session, before: datetime) -> int:
    return int(db.scalar(select(func.count()).where(Child.archived_at < before)) or 0)


def due_for_purge(
    db: Session, *, before: datetime, after: str, limit: int
) -> Sequence[tuple[str, int]]:
    """The next children archived before ``before``: id and owning LA."""
    rows = db.execute(
        select(Child.id, Child.local_authority_id)
        .where(Child.archived_at < before, Child.id > after)
        .order_by(Child.id)
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]


def purge(db: Session, child_ids: list[str], before: datetime) -> tuple[list[str], int]:
    """Delete the children (still archived before ``before``), their carer links,
    involvements, canary rows, change and unshield requests, and the carers left linked to no child.
    Return the purged ids and how many carers went. The audit trail is kept: it has no
    foreign key to the children.

    Carer links and involvements refer to the child by a sealed reference, which no foreign key
    can follow, so nothing cascades: each is deleted here by child id. The children still due
    are locked first, so a record reinstated meanwhile keeps its links.
    """
    due = list(
        db.scalars(
            select(Child.id)
            .where(Child.id.in_(child_ids), Child.archived_at < before)
            .with_for_update()
        )
    )
    if not due:
        return [], 0
    carer_ids = set(db.scalars(select(ChildCarer.carer_id).where(ChildCarer.child_id.in_(due))))
    for table in (ChildCarer, Involvement, Canary, ChangeRequest, UnshieldRequest):
        db.execute(delete(table).where(table.child_id.in_(due)).execution_options(**_BULK))
    purged = db.execute(
        delete(Child).where(Child.id.in_(due)).returning(Child.id).execution_options(**_BULK)
    )
    purged_ids = [row[0] for row in purged]
    carers = 0
    if carer_ids:
        orphaned = db.execute(
            delete(Carer)
            .where(
                Carer.id.in_(carer_ids),
                ~exists().where(ChildCarer.carer_id == Carer.id),
            )
            .returning(Carer.id)
            .execution_options(**_BULK)
        )
        carers = len(orphaned.all())
    return purged_ids, carers
