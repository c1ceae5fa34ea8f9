"""Every query the detector makes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    Date,
    Integer,
    Row,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from reference_app.alerts.models import Canary
from reference_app.audit.models import AuditEvent, AuditLogEntry
from reference_app.children.models import Child
from reference_app.detection.models import DetectorCursor, RiskScore
from reference_app.kit.db import UTCDateTime
from reference_app.kit.sealing import sealer_for, stored_table
from reference_app.kit.sql import among
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


# The columns of an event the rules read.
SealedView = Row[tuple[int, datetime, str, int | None, str | None, str | None]]


def sealed_events_after(
    db: Session, position: int, tags: Iterable[str], limit: int
) -> tuple[int | None, Sequence[SealedView]]:
    """The next sealed events in log order: (the last position read, events with ``tags``).

    The sealed log has no gaps and only grows, so a position is a safe place to resume. The
    events are read as the few columns the rules need (id, occurred_at, outcome, actor_id,
    child_id, relationship), in one statement.
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
    events = db.execute(
        select(
            AuditEvent.id,
            AuditEvent.occurred_at,
            AuditEvent.outcome,
            AuditEvent.actor_id,
            AuditEvent.child_id,
            AuditEvent.relationship,
        )
        .join(AuditLogEntry, AuditLogEntry.event_id == AuditEvent.id)
        .where(
            AuditLogEntry.seq > position,
            AuditLogEntry.seq <= upper,
            AuditEvent.tag.in_(list(tags)),
        )
        .order_by(AuditLogEntry.seq)
    ).all()
    return upper, events


@dataclass(frozen=True, slots=True)
class ChildFacts:
    """What the rules know of a child: keyed hashes, its LA, and its shield flags as stored
    (sealed, opened only for a view that no involvement vouches for)."""

    id: str
    family_name_bidx: bytes | None
    postcode_bidx: bytes | None
    local_authority_id: int
    shielded_sealed: bytes | None
    household_shielded_sealed: bytes | None


def children(db: Session, ids: Iterable[str]) -> dict[str, ChildFacts]:
    stored = stored_table(Child.__table__)  # type: ignore[arg-type]
    rows = db.execute(
        select(
            stored.c.id,
            stored.c.family_name_bidx,
            stored.c.postcode_bidx,
            stored.c.local_authority_id,
            stored.c.shielded,
            stored.c.household_shielded,
        ).where(among(db, stored.c.id, sorted(set(ids))))
    ).all()
    return {row[0]: ChildFacts(*row) for row in rows}


def shielded(db: Session, child: ChildFacts) -> bool:
    """Whether ``child`` is shielded or in a shielded child's household."""
    sealer = sealer_for(db.get_bind().dialect)
    return any(
        blob is not None and sealer.open_flag(blob, column)
        for blob, column in (
            (child.shielded_sealed, "children.shielded"),
            (child.household_shielded_sealed, "children.household_shielded"),
        )
    )


def canaries(db: Session, ids: Iterable[str]) -> set[str]:
    wanted = sorted(set(ids))
    return set(db.scalars(select(Canary.child_id).where(among(db, Canary.child_id, wanted))))


@dataclass(frozen=True, slots=True)
class Viewer:
    """What the rules know of a practitioner."""

    id: int
    role: str
    local_authority_id: int
    family_name_bidx: bytes | None
    home_postcode_bidx: bytes | None


def practitioners(db: Session, ids: Iterable[int]) -> dict[int, Viewer]:
    rows = db.execute(
        select(
            Practitioner.id,
            Practitioner.role,
            Practitioner.local_authority_id,
            Practitioner.family_name_bidx,
            Practitioner.home_postcode_bidx,
        ).where(among(db, Practitioner.id, sorted(set(ids))))
    ).all()
    return {row[0]: Viewer(*row) for row in rows}


def practitioner(db: Session, user_id: int) -> Practitioner:
    """The account itself, for a suspension."""
    found = db.get(Practitioner, user_id)
    assert found is not None, "a practitioner the detector just read"
    return found


@dataclass(slots=True)
class Tally:
    """A daily score as the detector works on it: read once, written back once."""

    user_id: int
    day: date
    role: str
    local_authority_id: int
    views: int = 0
    score: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    alerted_at: datetime | None = None
    suspended_at: datetime | None = None
    changed: bool = True


_TALLY_COLUMNS = (
    RiskScore.user_id,
    RiskScore.day,
    RiskScore.role,
    RiskScore.local_authority_id,
    RiskScore.views,
    RiskScore.score,
    RiskScore.rules,
    RiskScore.alerted_at,
    RiskScore.suspended_at,
)


def scores(db: Session, keys: Iterable[tuple[int, date]]) -> dict[tuple[int, date], Tally]:
    """The existing scores of ``keys`` (user, day), locked until the batch commits."""
    by_day: dict[date, set[int]] = {}
    for user_id, day in keys:
        by_day.setdefault(day, set()).add(user_id)
    found: dict[tuple[int, date], Tally] = {}
    for day, users in sorted(by_day.items()):
        rows = db.execute(
            select(*_TALLY_COLUMNS)
            .where(RiskScore.day == day, among(db, RiskScore.user_id, sorted(users)))
            .with_for_update()
        )
        for user_id, day_, role, la, views, score, rules, alerted, suspended in rows:
            found[(user_id, day_)] = Tally(
                user_id=user_id,
                day=day_,
                role=role,
                local_authority_id=la,
                views=views,
                score=score,
                rules=json.loads(rules or "{}"),
                alerted_at=alerted,
                suspended_at=suspended,
                changed=False,
            )
    return found


_SCORE_TYPES: dict[str, TypeEngine[Any]] = {
    "user_id": Integer(),
    "day": Date(),
    "role": String(),
    "local_authority_id": Integer(),
    "views": Integer(),
    "score": Integer(),
    "rules": Text(),
    "alerted_at": UTCDateTime(),
    "suspended_at": UTCDateTime(),
}
_UPDATED = ("views", "score", "rules", "alerted_at", "suspended_at")


def save_scores(db: Session, tallies: Iterable[Tally]) -> None:
    """Write the changed scores back, new and existing rows alike, as one upsert.

    PostgreSQL takes each column as one array (a single statement and row set, whatever the
    number of rows); SQLite, in process, takes the rows as one executemany.
    """
    changed = [t for t in tallies if t.changed]
    if not changed:
        return
    columns = {
        "user_id": [t.user_id for t in changed],
        "day": [t.day for t in changed],
        "role": [t.role for t in changed],
        "local_authority_id": [t.local_authority_id for t in changed],
        "views": [t.views for t in changed],
        "score": [t.score for t in changed],
        "rules": [json.dumps(t.rules, sort_keys=True) for t in changed],
        "alerted_at": [t.alerted_at for t in changed],
        "suspended_at": [t.suspended_at for t in changed],
    }
    table = cast(Table, RiskScore.__table__)
    if db.get_bind().dialect.name == "postgresql":
        rows = (
            func.unnest(
                *(
                    bindparam(name, values, type_=ARRAY(_SCORE_TYPES[name]))
                    for name, values in columns.items()
                )
            )
            .table_valued(*columns)
            .render_derived()
        )
        statement = pg_insert(table).from_select(list(columns), select(rows))
        db.execute(
            statement.on_conflict_do_update(
                index_elements=["user_id", "day"],
                set_={name: statement.excluded[name] for name in _UPDATED},
            )
        )
        return
    upsert = sqlite_insert(table)
    db.execute(
        upsert.on_conflict_do_update(
            index_elements=["user_id", "day"],
            set_={name: upsert.excluded[name] for name in _UPDATED},
        ),
        [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)],
    )


def group_views(
    db: Session, groups: Iterable[tuple[date, str, int]]
) -> dict[tuple[date, str, int], dict[int, int]]:
    """Views of every user in each peer group (a day, a role, an LA), by user, in one query."""
    wanted = sorted(set(groups))
    found: dict[tuple[date, str, int], dict[int, int]] = {group: {} for group in wanted}
    if not wanted:
        return found
    rows = db.execute(
        select(
            RiskScore.day,
            RiskScore.role,
            RiskScore.local_authority_id,
            RiskScore.user_id,
            RiskScore.views,
        ).where(tuple_(RiskScore.day, RiskScore.role, RiskScore.local_authority_id).in_(wanted))
    )
    for day, role, la, user_id, views in rows:
        found[(day, role, la)][int(user_id)] = int(views)
    return found
