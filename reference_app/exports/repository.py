"""Every query on exports, and the one definition of which children an export's scope holds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.orm import Session

from reference_app.alerts.models import Canary
from reference_app.children.models import Child
from reference_app.children.repository import open_record
from reference_app.exports.models import ExportRequest, ExportWatermark
from reference_app.localauthorities.models import LocalAuthority
from reference_app.practitioners.models import Practitioner
from reference_app.services.models import Involvement, Organisation

# Child ids bound in one statement: well under SQLite's and PostgreSQL's parameter limits.
_ID_BATCH = 5000


@dataclass(frozen=True, slots=True)
class Scope:
    """A scope resolved for one day: the LA, an organisation, and date-of-birth blind indexes."""

    local_authority_id: int
    organisation_id: int | None
    date_of_birth_bidx: Sequence[bytes] | None
    today: date


def _in_scope(scope: Scope) -> list[ColumnElement[bool]]:
    """The scope's rows as far as SQL can tell: never archived, deceased or a honeytoken (other
    exports' watermarks). The shield flags are sealed: the readers below leave out shielded
    children (and a shielded child's household, whose address is the shielded child's) after
    reading. An organisation's scope also keeps only the children it works with
    (``_scope_batches``)."""
    rules: list[ColumnElement[bool]] = [
        Child.local_authority_id == scope.local_authority_id,
        open_record(),
        ~exists().where(Canary.child_id == Child.id),
    ]
    if scope.date_of_birth_bidx is not None:
        # Dates of birth are encrypted: an age range is the set of their keyed hashes.
        rules.append(Child.date_of_birth_bidx.in_(list(scope.date_of_birth_bidx)))
    return rules


def involved_children(db: Session, organisation_id: int, today: date) -> list[str]:
    """The children an organisation works with today, in id order: only confirmed
    involvements count (a claim the child's LA has not confirmed puts no child in an export)."""
    found = db.scalars(
        select(Involvement.child_id).where(
            Involvement.organisation_id == organisation_id,
            Involvement.confirmed_at.is_not(None),
            Involvement.started_on <= today,
            or_(Involvement.ended_on.is_(None), Involvement.ended_on >= today),
        )
    )
    return sorted(set(found))


def _scope_batches(db: Session, scope: Scope) -> Iterator[list[ColumnElement[bool]]]:
    """The scope's rules, with an organisation's children a batch at a time, in id order.

    An involvement's child reference is sealed, so no SQL can join it to ``children``: the
    organisation's children are read first and looked up by id, in batches that stay within
    every backend's limit on bound parameters.
    """
    rules = _in_scope(scope)
    if scope.organisation_id is None:
        yield rules
        return
    ids = involved_children(db, scope.organisation_id, scope.today)
    for start in range(0, len(ids), _ID_BATCH):
        yield [*rules, Child.id.in_(ids[start : start + _ID_BATCH])]


def count_scope(db: Session, scope: Scope) -> int:
    return len(scope_ids(db, scope))


def scope_children(db: Session, scope: Scope) -> Sequence[Child]:
    return [
        child
        for rules in _scope_batches(db, scope)
        for child in db.scalars(select(Child).where(*rules).order_by(Child.id))
        if not child.protected
    ]


def scope_ids(db: Session, scope: Scope) -> list[str]:
    """The scope's children, less the protected ones: every candidate's flags are read and
    opened (in batches: an LA holds tens of thousands of children)."""
    found: list[str] = []
    for rules in _scope_batches(db, scope):
        query = select(Child.id, Child.shielded, Child.household_shielded).where(*rules)
        rows = db.execute(query.order_by(Child.id).execution_options(yield_per=10_000))
        found += [child_id for child_id, shielded, household in rows if not (shielded or household)]
    return found


def children_by_id(db: Session, child_ids: Sequence[str]) -> Sequence[Child]:
    return db.scalars(select(Child).where(Child.id.in_(child_ids)).order_by(Child.id)).all()


def child_exists(db: Session, child_id: str) -> bool:
    return bool(db.scalar(select(exists().where(Child.id == child_id))))


def organisation(db: Session, organisation_id: int) -> Organisation | None:
    return db.get(Organisation, organisation_id)


def local_authority(db: Session, la_id: int) -> LocalAuthority | None:
    return db.get(LocalAuthority, la_id)


def get(db: Session, export_id: int) -> ExportRequest | None:
    return db.get(ExportRequest, export_id)


def transition(db: Session, export: ExportRequest, from_status: str, **values: Any) -> bool:
    """Move ``export`` on from ``from_status`` in one conditional UPDATE; False if another
    request moved it first (two approvers, or two downloads, at the same moment)."""
    result = db.execute(
        update(ExportRequest)
        .where(ExportRequest.id == export.id, ExportRequest.status == from_status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    for name, value in values.items():
        setattr(export, name, value)
    return True


def list_for_la(db: Session, la_id: int, limit: int) -> Sequence[ExportRequest]:
    query = (
        select(ExportRequest)
        .where(ExportRequest.local_authority_id == la_id)
        .order_by(ExportRequest.id.desc())
        .limit(limit)
    )
    return db.scalars(query).all()


def watermark_children(db: Session, export_id: int) -> Sequence[Child]:
    query = (
        select(Child)
        .join(ExportWatermark, ExportWatermark.child_id == Child.id)
        .where(ExportWatermark.export_id == export_id)
        .order_by(ExportWatermark.ordinal)
    )
    return db.scalars(query).all()


def watermarks_among(db: Session, child_ids: Sequence[str]) -> Sequence[ExportWatermark]:
    """The watermark rows among ``child_ids`` (batched: a leaked file may hold many ids)."""
    found: list[ExportWatermark] = []
    batch = 500
    for start in range(0, len(child_ids), batch):
        chunk = list(child_ids[start : start + batch])
        found.extend(db.scalars(select(ExportWatermark).where(ExportWatermark.child_id.in_(chunk))))
    return found


def watermark_count(db: Session, export_id: int) -> int:
    query = select(func.count()).where(ExportWatermark.export_id == export_id)
    return db.scalar(query) or 0


def practitioner(db: Session, practitioner_id: int) -> Practitioner | None:
    return db.get(Practitioner, practitioner_id)
