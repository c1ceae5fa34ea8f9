"""Every audit query: appending events, the sealer's reads and writes, and listing for review."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Row, Select, Table, bindparam, delete, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from reference_app.audit.models import (
    AuditCheckpoint,
    AuditEvent,
    AuditLogEntry,
    AuditPending,
    AuditSearchHit,
)
from reference_app.children.models import Child
from reference_app.kit.crypto import DecryptionError
from reference_app.kit.sealing import Sealer, sealer_for, stored_table
from reference_app.kit.sql import among


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


def pending_events(db: Session, limit: int) -> Sequence[Row[Any]]:
    """The oldest pending events, every column as stored and read (the child's id opened), in
    id order: one statement, no ORM objects."""
    ids = select(AuditPending.event_id).order_by(AuditPending.event_id).limit(limit)
    return db.execute(
        select(AuditEvent.__table__).where(AuditEvent.id.in_(ids)).order_by(AuditEvent.id)
    ).all()


def write_seal(
    db: Session, first_seq: int, event_ids: list[int], checkpoint: AuditCheckpoint
) -> None:
    """Write a sealed batch: log positions from ``first_seq`` in the order of ``event_ids``, its
    checkpoint, and clear the pending markers; three statements whatever the batch's size.

    PostgreSQL takes the ids as one array (positions from its ordinality); SQLite, in process,
    takes the positions as one executemany and the ids as bound parameters.
    """
    entries = cast(Table, AuditLogEntry.__table__)
    if db.get_bind().dialect.name == "postgresql":
        ids = bindparam("event_ids", event_ids, type_=ARRAY(BigInteger))
        batch = func.unnest(ids).table_valued("event_id", with_ordinality="n").render_derived()
        db.execute(
            insert(entries).from_select(
                ["seq", "event_id"], select(batch.c.n + (first_seq - 1), batch.c.event_id)
            )
        )
    else:
        db.execute(
            insert(entries),
            [{"seq": first_seq + i, "event_id": event_id} for i, event_id in enumerate(event_ids)],
        )
    db.add(checkpoint)
    db.flush()
    db.execute(delete(AuditPending).where(among(db, AuditPending.event_id, event_ids)))


def all_checkpoints(db: Session) -> Sequence[AuditCheckpoint]:
    return db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size)).all()


def log_in_order(
    db: Session, batch: int = 50000
) -> Iterator[tuple[int, int, dict[str, Any] | None]]:
    """Yield (seq, event_id, the event's column values or None) in log order, in batches.

    The child's id is read as stored and opened here, not by the column's type: a token altered
    in the database then reads as a value no leaf was signed for (an edit, named as such),
    instead of an error that stops the verification.
    """
    events = stored_table(AuditEvent.__table__)  # type: ignore[arg-type]
    sealer: Sealer | None = None
    last = -1
    while True:
        rows = db.execute(
            select(AuditLogEntry.seq, AuditLogEntry.event_id, events)
            .outerjoin(events, events.c.id == AuditLogEntry.event_id)
            .where(AuditLogEntry.seq > last)
            .order_by(AuditLogEntry.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            values = dict(row._mapping)
            seq, event_id = values.pop("seq"), values.pop("event_id")
            if values["id"] is None:
                yield seq, event_id, None
                continue
            token = values["child_id"]
            if token is not None:
                sealer = sealer or sealer_for(db.get_bind().dialect)
                values["child_id"] = _open_child(sealer, bytes(token))
            yield seq, event_id, values
        last = rows[-1][0]


def _open_child(sealer: Sealer, token: bytes) -> str:
    try:
        return sealer.open_ref(token, "audit_events.child_id")
    except DecryptionError:
        return f"unreadable:{token.hex()}"


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
    """Events for review; a local authority sees its own staff's and its own children's.

    The trail's child ids are sealed, so SQL cannot match them against ``children``: which
    events are about the LA's own children is decided on the ids as read.
    """
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if child_id is not None:
        query = query.where(AuditEvent.child_id == child_id)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if tag is not None:
        query = query.where(AuditEvent.tag == tag)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if local_authority_id is None:
        return db.scalars(query.limit(limit)).all()
    if child_id is not None:
        # One child: all its events if it is the LA's own, else only the LA's staff's.
        if not _own_children(db, local_authority_id, [child_id]):
            query = query.where(AuditEvent.actor_local_authority_id == local_authority_id)
        return db.scalars(query.limit(limit)).all()
    return _scan_own(db, query, local_authority_id, limit)


def _own_children(db: Session, local_authority_id: int, child_ids: Iterable[str]) -> set[str]:
    """Those of ``child_ids`` that are the LA's own children."""
    wanted = sorted(set(child_ids))
    own: set[str] = set()
    for start in range(0, len(wanted), 5000):
        own.update(
            db.scalars(
                select(Child.id).where(
                    Child.id.in_(wanted[start : start + 5000]),
                    Child.local_authority_id == local_authority_id,
                )
            )
        )
    return own


# Pages of events an LA's reviewer's listing reads when it names no child: from a few times the
# limit, doubling while the LA's events are sparse.
_PAGE_FIRST, _PAGE_MOST = 200, 20000


def _scan_own(
    db: Session,
    query: Select[tuple[AuditEvent]],
    local_authority_id: int,
    limit: int,
) -> Sequence[AuditEvent]:
    """The newest ``limit`` events of ``query`` by the LA's staff or about its children: their
    ids, actors' LAs and children read newest first a page at a time, then the events kept."""
    kept: list[int] = []
    page = max(_PAGE_FIRST, 4 * limit)
    heads = query.with_only_columns(
        AuditEvent.id, AuditEvent.actor_local_authority_id, AuditEvent.child_id
    )
    before: int | None = None
    while len(kept) < limit:
        paged = heads if before is None else heads.where(AuditEvent.id < before)
        rows = db.execute(paged.limit(page)).all()
        own = _own_children(
            db,
            local_authority_id,
            (child for _, la, child in rows if child is not None and la != local_authority_id),
        )
        kept.extend(
            event_id for event_id, la, child in rows if la == local_authority_id or child in own
        )
        if len(rows) < page:
            break
        before = rows[-1][0]
        page = min(_PAGE_MOST, page * 2)
    wanted = kept[:limit]
    if not wanted:
        return []
    return db.scalars(
        select(AuditEvent).where(AuditEvent.id.in_(wanted)).order_by(AuditEvent.id.desc())
    ).all()
