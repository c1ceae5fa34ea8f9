"""Every query the detector makes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session

from reference_app.alerts.models import Canary
from reference_app.audit.models import AuditEvent, AuditLogEntry
from reference_app.children.models import Child
from reference_app.detection.models import DetectorCursor, RiskScore
from reference_app.practitioners.models import Practitioner

# Any constant will do: it names the detector's PostgreSQL advisory lock.
_DETECTOR_LOCK = 0x43504454


def try_lock(db: Session) -> bool:
    """One detector at a time across workers (PostgreSQL); SQLite serves one process."""
    if db.get_bind().dialect.name != "postgresql":
        return True
    got = db.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _DETECTOR_LOCK})
    return bool(got.scalar_one())


def cursor(db: Session, name: str) -> DetectorCursor:
    found = db.get(DetectorCursor, name, with_for_update=True)
    if found is None:
        found = DetectorCursor(name=name, position=-1)
        db.add(found)
        db.flush()
    return found


def sealed_events_after(
    db: Session, position: int, tags: Iterable[str], limit: int
) -> tuple[int | None, Sequence[AuditEvent]]:
    """The next sealed events in log order: (the last position read, events with ``tags``).

    The sealed log has no gaps and only grows, so a position is a safe place to resume.
    """
    last = db.scalar(
        select(AuditLogEntry.seq)
        .where(AuditLogEntry.seq > position)
        .order_by(AuditLogEntry.seq)
        .offset(limit - 1)
        .limit(1)
    )
    upper = (
        last
        if last is not None
        else db.scalar(select(AuditLogEntry.seq).order_by(AuditLogEntry.seq.desc()).limit(1))
    )
    if upper is None or upper <= position:
        return None, []
    events = db.scalars(
        select(AuditEvent)
        .join(AuditLogEntry, AuditLogEntry.event_id == AuditEvent.id)
        .where(
            AuditLogEntry.seq > position,
            AuditLogEntry.seq <= upper,
            AuditEvent.tag.in_(list(tags)),
        )
        .order_by(AuditLogEntry.seq)
    ).all()
    return upper, events


def children(
    db: Session, ids: Iterable[str]
) -> dict[str, Row[tuple[str, bool, bool, bytes, bytes, int]]]:
    wanted = sorted(set(ids))
    rows = db.execute(
        select(
            Child.id,
            Child.shielded,
            Child.household_shielded,
            Child.family_name_bidx,
            Child.postcode_bidx,
            Child.local_authority_id,
        ).where(Child.id.in_(wanted))
    ).all()
    return {row[0]: row for row in rows}


def canaries(db: Session, ids: Iterable[str]) -> set[str]:
    wanted = sorted(set(ids))
    return set(db.scalars(select(Canary.child_id).where(Canary.child_id.in_(wanted))))


def practitioners(db: Session, ids: Iterable[int]) -> dict[int, Practitioner]:
    wanted = sorted(set(ids))
    found = db.scalars(select(Practitioner).where(Practitioner.id.in_(wanted))).all()
    return {p.id: p for p in found}


def scores(db: Session, keys: Iterable[tuple[int, date]]) -> dict[tuple[int, date], RiskScore]:
    by_day: dict[date, set[int]] = {}
    for user_id, day in keys:
        by_day.setdefault(day, set()).add(user_id)
    found: dict[tuple[int, date], RiskScore] = {}
    for day, users in sorted(by_day.items()):
        rows = db.scalars(
            select(RiskScore)
            .where(RiskScore.day == day, RiskScore.user_id.in_(sorted(users)))
            .with_for_update()
        )
        found.update({(row.user_id, row.day): row for row in rows})
    return found


def group_views(db: Session, day: date, role: str, local_authority_id: int) -> dict[int, int]:
    """Views that day of every active user with ``role`` in the LA, by user."""
    rows = db.execute(
        select(RiskScore.user_id, RiskScore.views).where(
            RiskScore.day == day,
            RiskScore.role == role,
            RiskScore.local_authority_id == local_authority_id,
        )
    )
    return {int(user_id): int(views) for user_id, views in rows}
