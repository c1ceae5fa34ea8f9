"""Every audit query: appending events, the sealer's reads and writes, and listing for review."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Row,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    true,
    union_all,
)
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

_EVENTS = cast(Table, AuditEvent.__table__)
_PENDING = cast(Table, AuditPending.__table__)
# Every column an event is written with (``audit.service.record``), bound by name.
EVENT_COLUMNS = (
    "occurred_at",
    "tag",
    "outcome",
    "actor_id",
    "actor_role",
    "actor_organisation_id",
    "actor_local_authority_id",
    "source",
    "request_id",
    "child_id",
    "reason_code",
    "relationship",
    "details",
)
_INSERT_EVENT = insert(_EVENTS).values({name: bindparam(name) for name in EVENT_COLUMNS})
# PostgreSQL: the event and its pending marker in one statement (one round trip).
_written = _INSERT_EVENT.returning(_EVENTS.c.id).cte("written")
_INSERT_EVENT_AND_MARKER = (
    insert(_PENDING).from_select(["event_id"], select(_written.c.id)).returning(_PENDING.c.event_id)
)
_INSERT_EVENT_RETURNING = _INSERT_EVENT.returning(_EVENTS.c.id)
_INSERT_MARKER = insert(_PENDING).values(event_id=bindparam("event_id"))


def append_event(db: Session, values: dict[str, Any], *, search_hits: Iterable[str] = ()) -> int:
    """Insert one event, its pending marker and, for a search, its hits (the children it
    returned, ``AuditSearchHit``); return the event id.

    On every request's path, so core SQL on the session's connection, prepared once: one
    statement on PostgreSQL, two or three on SQLite (no DML in a WITH clause there; all are
    in-process).
    """
    connection = db.connection()
    hits = sorted(set(search_hits))
    if connection.dialect.name == "postgresql":
        if not hits:
            return int(connection.execute(_INSERT_EVENT_AND_MARKER, values).scalar_one())
        params = values | {f"hit_{i}": child_id for i, child_id in enumerate(hits)}
        ids = connection.execute(_event_marker_and_hits(len(hits)), params).scalars().all()
        return int(ids[0])
    event_id = int(connection.execute(_INSERT_EVENT_RETURNING, values).scalar_one())
    connection.execute(_INSERT_MARKER, {"event_id": event_id})
    if hits:
        connection.execute(_INSERT_HIT, [{"child_id": c, "event_id": event_id} for c in hits])
    return event_id


_HITS = cast(Table, AuditSearchHit.__table__)
_INSERT_HIT = insert(_HITS)


@functools.cache
def _event_marker_and_hits(count: int) -> Any:
    """PostgreSQL: an event, its marker and ``count`` search hits (``hit_0`` ...) in one
    statement, built once per count (a search returns at most its cap)."""
    written = _INSERT_EVENT.returning(_EVENTS.c.id).cte("written")
    marker = insert(_PENDING).from_select(["event_id"], select(written.c.id)).cte("marker")
    found = union_all(
        *(
            select(bindparam(f"hit_{i}", type_=_HITS.c.child_id.type).label("child_id"))
            for i in range(count)
        )
    ).subquery("found")
    return (
        insert(_HITS)
        .from_select(
            ["child_id", "event_id"],
            select(found.c.child_id, written.c.id).select_from(found.join(written, true())),
        )
        .returning(_HITS.c.event_id)
        .add_cte(marker)
    )


def append_events(db: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert many events and their pending markers; return the event ids."""
    if not rows:
        return []
    ids = db.scalars(
        insert(AuditEvent).returning(AuditEvent.id, sort_by_parameter_order=True), rows
    ).all()
    db.execute(insert(AuditPending), [{"event_id": event_id} for event_id in ids])
    return [int(event_id) for event_id in ids]


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
