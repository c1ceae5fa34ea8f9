"""Every query on children, with the row-level rules for who may find which record."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Row,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from reference_app.access.principal import Principal
from reference_app.alerts.models import Canary
from reference_app.carers.models import Carer, ChildCarer
from reference_app.children.models import Child, UnshieldRequest, UnshieldStatus
from reference_app.localauthorities.models import LocalAuthority
from reference_app.services.models import Involvement, Organisation


def get(db: Session, child_id: str, *, lock: bool = False) -> Child | None:
    """The child; with ``lock``, read afresh and row-locked to the end of the transaction (on
    PostgreSQL; SQLite runs one writer at a time), so two shield decisions queue."""
    if lock:
        return db.get(Child, child_id, with_for_update=True, populate_existing=True)
    return db.get(Child, child_id)


# -- the record view's reads: core SQL, prepared once, on the session's connection --------------

_CHILDREN = Child.__table__
_LAS = LocalAuthority.__table__
_INVOLVEMENTS = Involvement.__table__
_ORGANISATIONS = Organisation.__table__
_LINKS = ChildCarer.__table__
_CARERS = Carer.__table__
_CANARIES = Canary.__table__


def _standing_conditions() -> list[ColumnElement[bool]]:
    """The caller's current involvements with the child: the organisation's or the caller's
    own, begun and not ended by ``today``, confirmed unless ``claims_count`` (every value
    bound: ``involved_child_id``, ``organisation_id``, ``practitioner_id``, ``today``,
    ``claims_count``)."""
    inv = _INVOLVEMENTS.c
    return [
        # Sealed child reference: bound by value (its own parameter, sealed for its column).
        inv.child_id == bindparam("involved_child_id"),
        or_(
            inv.organisation_id == bindparam("organisation_id"),
            inv.practitioner_id == bindparam("practitioner_id"),
        ),
        inv.started_on <= bindparam("today"),
        or_(inv.ended_on.is_(None), inv.ended_on >= bindparam("today")),
        or_(bindparam("claims_count", type_=Boolean), inv.confirmed_at.is_not(None)),
    ]


def _standing(column: Any) -> Any:
    """``column`` (an aggregate) over the caller's current involvements with the child."""
    return select(column).where(*_standing_conditions()).scalar_subquery()


# A record view's reads as one statement of three row shapes (``part``): the child's own row
# with its LA, honeytoken flag and the caller's standing ("child"), one row per involvement with
# its organisation ("service"), one per carer with the link ("carer"). Each part pads the
# others' columns with NULLs typed as theirs, so every value comes back decoded (sealed refs
# opened, dates parsed) whichever part it is in.
_CHILD_COLUMNS: list[Any] = [
    *_CHILDREN.c,
    _LAS.c.ons_code.label("la_code"),
    _LAS.c.name.label("la_name"),
    exists().where(_CANARIES.c.child_id == _CHILDREN.c.id).label("is_canary"),
    _standing(func.count(_INVOLVEMENTS.c.id)).label("standing_count"),
    _standing(func.min(_INVOLVEMENTS.c.confirmed_at)).label("confirmed_since"),
]
_SERVICE_COLUMNS: list[Any] = [
    *(
        column.label(f"inv_{column.key}")
        for column in _INVOLVEMENTS.c
        if column.key not in ("child_id", "created_at", "confirmed_by")
    ),
    _ORGANISATIONS.c.name.label("organisation_name"),
    _ORGANISATIONS.c.kind.label("organisation_kind"),
    _ORGANISATIONS.c.phone.label("organisation_phone"),
]
_CARER_COLUMNS: list[Any] = [
    _CARERS.c.id.label("carer_id"),
    _CARERS.c.given_name_enc.label("carer_given_name_enc"),
    _CARERS.c.family_name_enc.label("carer_family_name_enc"),
    _CARERS.c.phone_enc.label("carer_phone_enc"),
    _CARERS.c.email_enc.label("carer_email_enc"),
    _LINKS.c.relationship.label("carer_relationship"),
    _LINKS.c.parental_responsibility.label("carer_parental_responsibility"),
]
_ALL_COLUMNS = [*_CHILD_COLUMNS, *_SERVICE_COLUMNS, *_CARER_COLUMNS]


def _part(name: str, own: list[Any]) -> Any:
    """A select of ``own`` columns, the rest NULL cast to the type of the column they stand in
    for (PostgreSQL matches a UNION's columns by type)."""
    mine = {column.key for column in own}
    return select(
        literal_column(f"'{name}'").label("part"),
        *(
            column if column.key in mine else cast(null(), column.type).label(column.key)
            for column in _ALL_COLUMNS
        ),
    )


_VIEW_READ = union_all(
    _part("child", _CHILD_COLUMNS)
    .select_from(_CHILDREN.outerjoin(_LAS, _LAS.c.id == _CHILDREN.c.local_authority_id))
    .where(_CHILDREN.c.id == bindparam("child_id")),
    _part("service", _SERVICE_COLUMNS)
    .select_from(
        _INVOLVEMENTS.join(_ORGANISATIONS, _ORGANISATIONS.c.id == _INVOLVEMENTS.c.organisation_id)
    )
    .where(_INVOLVEMENTS.c.child_id == bindparam("involved_child_id")),
    _part("carer", _CARER_COLUMNS)
    .select_from(_LINKS.join(_CARERS, _CARERS.c.id == _LINKS.c.carer_id))
    .where(_LINKS.c.child_id == bindparam("linked_child_id")),
)
_CHILD_KEYS = tuple(column.key for column in _CHILDREN.c)


@dataclass(frozen=True, slots=True)
class ViewRead:
    """What a record view reads: the child, its LA (code, name), whether it is a honeytoken,
    the caller's standing (``involvement_standing``), and the child's services and carers (as
    ``involvements`` and ``carers`` give them)."""

    child: Child
    local_authority: tuple[str, str] | None
    canary: bool
    involved: bool
    confirmed_since: datetime | None
    services: list[Row[Any]]
    carers: list[Row[Any]]


def read_for_view(
    db: Session, child_id: str, principal: Principal, today: date, *, claims_count: bool
) -> ViewRead | None:
    """Everything a record view decides on and shows, in one round trip (``None``: no such
    child).

    Only a practitioner has a standing: for anyone else the involvement test matches nothing.
    """
    practitioner = principal.is_practitioner
    rows = (
        db.connection()
        .execute(
            _VIEW_READ,
            {
                "child_id": child_id,
                "involved_child_id": child_id,
                "linked_child_id": child_id,
                "organisation_id": principal.organisation_id if practitioner else None,
                "practitioner_id": principal.user_id if practitioner else None,
                "today": today,
                "claims_count": claims_count,
            },
        )
        .all()
    )
    found = [row for row in rows if row.part == "child"]
    if not found:
        return None
    mapping = found[0]._mapping
    # A transient instance, never added to the session: the rules read it, nothing writes it.
    child = Child(**{key: mapping[key] for key in _CHILD_KEYS})
    return ViewRead(
        child=child,
        local_authority=(mapping["la_code"], mapping["la_name"])
        if mapping["la_code"] is not None
        else None,
        canary=bool(mapping["is_canary"]),
        involved=bool(mapping["standing_count"]),
        confirmed_since=mapping["confirmed_since"],
        services=sorted(
            (row for row in rows if row.part == "service"),
            key=lambda row: (row.inv_started_on, row.inv_id),
        ),
        carers=sorted((row for row in rows if row.part == "carer"), key=lambda row: row.carer_id),
    )


_INVOLVEMENT_ROWS = (
    select(*_SERVICE_COLUMNS)
    .join(_ORGANISATIONS, _ORGANISATIONS.c.id == _INVOLVEMENTS.c.organisation_id)
    .where(_INVOLVEMENTS.c.child_id == bindparam("child_id"))
    .order_by(_INVOLVEMENTS.c.started_on, _INVOLVEMENTS.c.id)
)
_CARER_ROWS = (
    select(*_CARER_COLUMNS)
    .join(_CARERS, _CARERS.c.id == _LINKS.c.carer_id)
    .where(_LINKS.c.child_id == bindparam("child_id"))
    .order_by(_CARERS.c.id)
)


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
    children = _CHILDREN.c
    return and_(children.archived_at.is_(None), children.deceased_recorded_at.is_(None))


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


@functools.cache
def _search_statement(
    given_name: bool, date_of_birth: bool, postcode: bool, *, need_to_know: bool, manager: bool
) -> Any:
    """The search's statement for one shape of criteria, built once: every value is bound."""
    children = _CHILDREN.c
    conditions: list[ColumnElement[bool]] = [
        or_(
            children.family_name_bidx == bindparam("family_name"),
            children.family_name_phonetic_bidx == bindparam("family_phonetic"),
        )
    ]
    if given_name:
        conditions.append(children.given_name_bidx == bindparam("given_name"))
    if date_of_birth:
        conditions.append(children.date_of_birth_bidx == bindparam("date_of_birth"))
    if postcode:
        conditions.append(children.postcode_bidx == bindparam("postcode"))
    if need_to_know:
        # Archived and deceased records are for the owning LA's data managers only (as far as
        # SQL can tell; ``findable`` decides the rest after reading).
        manages = [children.local_authority_id == bindparam("local_authority_id")]
        conditions.append(or_(open_record(), *(manages if manager else [])))
    return (
        select(*children, _LAS.c.name.label("la_name"))
        .select_from(_CHILDREN.outerjoin(_LAS, _LAS.c.id == children.local_authority_id))
        .where(and_(*conditions))
        .limit(bindparam("window", type_=Integer))
    )


@dataclass(frozen=True, slots=True)
class Found:
    """A child a search found, with its LA's name (``None``: no LA on record)."""

    child: Child
    la_name: str | None


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
) -> list[Found]:
    """Up to ``limit`` children matching every criterion given (exact blind-index matches,
    surname also phonetic) that ``principal`` may find: all of them when there are fewer.

    On the search's hot path: core SQL on the session's connection, each child with its LA's
    name in the same row (no look-up per result)."""
    statement = _search_statement(
        given_name is not None,
        date_of_birth is not None,
        postcode is not None,
        need_to_know=need_to_know,
        manager=principal.is_data_manager,
    )
    params = {
        "family_name": family_name,
        "family_phonetic": family_phonetic,
        "given_name": given_name,
        "date_of_birth": date_of_birth,
        "postcode": postcode,
        "local_authority_id": principal.local_authority_id,
    }
    hidden = postcode is not None
    connection = db.connection()
    # Rows ``findable`` drops still count against a SQL LIMIT, so a LIMIT of exactly ``limit``
    # could let them crowd out rows the caller may find: read a wider window, and again a wider
    # one while the dropped rows kept it from yielding ``limit`` (a window SQL did not fill
    # holds every match). Without the rule, the window is the limit.
    filtered = hidden and shielding
    window = 2 * limit if filtered else limit
    while True:
        rows = connection.execute(statement, {**params, "window": window}).all()
        kept: list[Found] = []
        for row in rows:
            mapping = row._mapping
            child = Child(**{key: mapping[key] for key in _CHILD_KEYS})
            if findable(principal, child, uses_hidden_fields=hidden, shielding=shielding):
                kept.append(Found(child, mapping["la_name"]))
        if len(kept) >= limit or len(rows) < window:
            return kept[:limit]
        window *= 4


_STANDING = select(func.count(_INVOLVEMENTS.c.id), func.min(_INVOLVEMENTS.c.confirmed_at)).where(
    *_standing_conditions()
)


def involvement_standing(
    db: Session, child_id: str, principal: Principal, today: date, *, claims_count: bool
) -> tuple[bool, datetime | None]:
    """Whether the caller's organisation, or the caller, works with the child today, and since
    when the oldest such involvement stands confirmed.

    Only confirmed involvements count, unless ``claims_count`` (confirmation switched off): a
    practitioner's own claim is no evidence of a need to know until the child's LA vouches for
    it. The record view reads the same in its one statement (``read_for_view``).
    """
    row = (
        db.connection()
        .execute(
            _STANDING,
            {
                "involved_child_id": child_id,
                "organisation_id": principal.organisation_id,
                "practitioner_id": principal.user_id,
                "today": today,
                "claims_count": claims_count,
            },
        )
        .one()
    )
    return bool(row[0]), row[1]


def is_involved(
    db: Session, child_id: str, principal: Principal, today: date, *, claims_count: bool = False
) -> bool:
    """Whether the caller has a current involvement with the child (confirmed, by default)."""
    return involvement_standing(db, child_id, principal, today, claims_count=claims_count)[0]


def involvements(db: Session, child_id: str) -> Sequence[Row[Any]]:
    """The child's involvements (``inv_*``), each with its organisation's name, kind and phone
    (``organisation_*``), oldest first."""
    return db.connection().execute(_INVOLVEMENT_ROWS, {"child_id": child_id}).all()


def carers(db: Session, child_id: str) -> Sequence[Row[Any]]:
    """The child's carers (``carer_*``: encrypted fields as stored, the link's relationship and
    parental responsibility), by carer."""
    return db.connection().execute(_CARER_ROWS, {"child_id": child_id}).all()


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
