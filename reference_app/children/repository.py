"""Every query on children, with the row-level rules for who may find which record."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from reference_app.access.principal import Principal
from reference_app.carers.models import Carer, ChildCarer
from reference_app.children.models import Child, UnshieldRequest, UnshieldStatus
from reference_app.localauthorities.models import LocalAuthority
from reference_app.services.models import Involvement, Organisation


def get(db: Session, child_id: str) -> Child | None:
    return db.get(Child, child_id)


def pending_unshield(db: Session, child_id: str) -> UnshieldRequest | None:
    """The child's unshield request awaiting a second data manager, if any."""
    return db.scalars(
        select(UnshieldRequest).where(
            UnshieldRequest.child_id == child_id,
            UnshieldRequest.status == UnshieldStatus.PENDING.value,
        )
    ).first()


def close_unshield(
    db: Session, request_id: int, *, status: UnshieldStatus, by: int, at: datetime
) -> bool:
    """Move a pending unshield request to ``status``; False if someone else decided it first."""
    result = db.execute(
        update(UnshieldRequest)
        .where(
            UnshieldRequest.id == request_id,
            UnshieldRequest.status == UnshieldStatus.PENDING.value,
        )
        .values(status=status.value, decided_by=by, decided_at=at)
        .returning(UnshieldRequest.id)
    )
    return result.first() is not None


def exists_id(db: Session, child_id: str) -> bool:
    return db.scalar(select(exists().where(Child.id == child_id))) or False


def open_record() -> ColumnElement[bool]:
    """Neither archived nor deceased: what everyone but the owning LA's data managers sees."""
    return and_(Child.archived_at.is_(None), Child.deceased_recorded_at.is_(None))


def searchable(principal: Principal, *, need_to_know: bool) -> list[ColumnElement[bool]]:
    """Rows a search by ``principal`` may return, as far as SQL can tell (``findable`` decides
    the rest after reading): archived and deceased records are for the owning LA's data
    managers only (need-to-know), unless that control is switched off."""
    rules: list[ColumnElement[bool]] = []
    if need_to_know:
        manages = [Child.local_authority_id == principal.local_authority_id]
        rules.append(or_(open_record(), *(manages if principal.is_data_manager else [])))
    return rules


def findable(
    principal: Principal, child: Child, *, uses_hidden_fields: bool, shielding: bool
) -> bool:
    """Whether a search by ``principal`` may return ``child``, on what SQL cannot read (the
    shield flags are sealed).

    A search that uses a field shielding hides (the postcode) never returns a shielded child,
    nor a child of a shielded child's household (same address or carer: finding the sibling
    finds where the shielded child lives), unless the caller manages that child's LA, so a
    search can never confirm that a shielded child lives somewhere. The rule is dropped only
    when shielding is switched off.
    """
    if not (uses_hidden_fields and shielding) or not child.protected:
        return True
    return principal.is_data_manager and child.local_authority_id == principal.local_authority_id


def search(
    db: Session,
    principal: Principal,
    *,
    family_name: bytes,
    family_phonetic: bytes,
    given_name: bytes | None,
    date_of_birth: bytes | None,
    postcode: bytes | None,
    limit: int,
    need_to_know: bool,
    shielding: bool,
) -> Sequence[Child]:
    """Up to ``limit`` children matching every criterion given (exact blind-index matches,
    surname also phonetic) that ``principal`` may find: all of them when there are fewer."""
    conditions: list[ColumnElement[bool]] = [
        or_(
            Child.family_name_bidx == family_name,
            Child.family_name_phonetic_bidx == family_phonetic,
        )
    ]
    if given_name is not None:
        conditions.append(Child.given_name_bidx == given_name)
    if date_of_birth is not None:
        conditions.append(Child.date_of_birth_bidx == date_of_birth)
    if postcode is not None:
        conditions.append(Child.postcode_bidx == postcode)
    conditions.extend(searchable(principal, need_to_know=need_to_know))
    statement = select(Child).where(and_(*conditions))
    hidden = postcode is not None
    # Rows ``findable`` drops still count against a SQL LIMIT, so a LIMIT of exactly ``limit``
    # could let them crowd out rows the caller may find: read a wider window, and again a wider
    # one while the dropped rows kept it from yielding ``limit`` (a window SQL did not fill
    # holds every match). Without the rule, the window is the limit.
    filtered = hidden and shielding
    window = 2 * limit if filtered else limit
    while True:
        rows = db.scalars(statement.limit(window)).all()
        kept = [
            child
            for child in rows
            if findable(principal, child, uses_hidden_fields=hidden, shielding=shielding)
        ]
        if len(kept) >= limit or len(rows) < window:
            return kept[:limit]
        window *= 4


def involvement_standing(
    db: Session, child_id: str, principal: Principal, today: date, *, claims_count: bool
) -> tuple[bool, datetime | None]:
    """Whether the caller's organisation, or the caller, works with the child today, and since
    when the oldest such involvement stands confirmed.

    Only confirmed involvements count, unless ``claims_count`` (confirmation switched off): a
    practitioner's own claim is no evidence of a need to know until the child's LA vouches for
    it. One query: this is on the record view's hot path.
    """
    conditions: list[ColumnElement[bool]] = [
        Involvement.child_id == child_id,
        or_(
            Involvement.organisation_id == principal.organisation_id,
            Involvement.practitioner_id == principal.user_id,
        ),
        Involvement.started_on <= today,
        or_(Involvement.ended_on.is_(None), Involvement.ended_on >= today),
    ]
    if not claims_count:
        conditions.append(Involvement.confirmed_at.is_not(None))
    row = db.execute(
        select(func.count(Involvement.id), func.min(Involvement.confirmed_at)).where(*conditions)
    ).one()
    return bool(row[0]), row[1]


def is_involved(
    db: Session, child_id: str, principal: Principal, today: date, *, claims_count: bool = False
) -> bool:
    """Whether the caller has a current involvement with the child (confirmed, by default)."""
    return involvement_standing(db, child_id, principal, today, claims_count=claims_count)[0]


def involvements(db: Session, child_id: str) -> Sequence[tuple[Involvement, Organisation]]:
    rows = db.execute(
        select(Involvement, Organisation)
        .join(Organisation, Organisation.id == Involvement.organisation_id)
        .where(Involvement.child_id == child_id)
        .order_by(Involvement.started_on, Involvement.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def carers(db: Session, child_id: str) -> Sequence[tuple[ChildCarer, Carer]]:
    rows = db.execute(
        select(ChildCarer, Carer)
        .join(Carer, Carer.id == ChildCarer.carer_id)
        .where(ChildCarer.child_id == child_id)
        .order_by(Carer.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def at_postcode(db: Session, postcode: bytes, *, other_than: str) -> Sequence[Child]:
    """Children whose address has this postcode blind index: the candidates for a shared
    address (the caller compares the decrypted addresses)."""
    return db.scalars(
        select(Child).where(Child.postcode_bidx == postcode, Child.id != other_than)
    ).all()


def sharing_a_carer(db: Session, child_id: str) -> Sequence[Child]:
    """Other children linked to any of this child's carers.

    Two queries: the link's child reference is sealed, so no SQL can join it to ``children``.
    """
    mine = select(ChildCarer.carer_id).where(ChildCarer.child_id == child_id)
    others = set(
        db.scalars(
            select(ChildCarer.child_id).where(
                ChildCarer.carer_id.in_(mine), ChildCarer.child_id != child_id
            )
        )
    )
    if not others:
        return []
    return db.scalars(select(Child).where(Child.id.in_(sorted(others)))).all()


def shielded_ids(db: Session) -> list[str]:
    """Every shielded child: the seeds for recomputing all households. The flag is sealed, so
    every child's is read and opened here (in batches, for a national registry)."""
    rows = db.execute(select(Child.id, Child.shielded).execution_options(yield_per=10_000))
    return [child_id for child_id, shielded in rows if shielded]


def local_authority(db: Session, la_id: int) -> LocalAuthority | None:
    return db.get(LocalAuthority, la_id)
