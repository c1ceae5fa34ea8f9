"""Adding and correcting a child's carers (the owning LA's data managers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from reference_app.access.principal import Principal
from reference_app.audit.tags import EventTag
from reference_app.carers.models import Carer, ChildCarer
from reference_app.children import service as children
from reference_app.children.models import Child
from reference_app.kit.crypto import Crypto
from reference_app.kit.errors import Conflict, InvalidInput, NotFound
from reference_app.kit.http import Call


def carer_columns(crypto: Crypto, fields: dict[str, Any]) -> dict[str, Any]:
    """Encrypt whichever carer fields are present, as stored."""
    cipher = crypto.cipher
    out: dict[str, Any] = {}
    for name in ("given_name", "family_name", "phone", "email"):
        if fields.get(name) is not None:
            out[f"{name}_enc"] = cipher.encrypt(str(fields[name]), f"carers.{name}")
    return out


def add(call: Call, principal: Principal, raw_child_id: str, fields: dict[str, Any]) -> Carer:
    child = children._owned(call, principal, raw_child_id)
    carer = Carer(**carer_columns(call.ctx.crypto, fields))
    call.db.add(carer)
    call.db.flush()
    call.db.add(
        ChildCarer(
            child_id=child.id,
            carer_id=carer.id,
            relationship=fields["relationship"],
            parental_responsibility=fields["parental_responsibility"],
        )
    )
    call.audit(
        EventTag.CARER_ADDED,
        principal=principal,
        child_id=child.id,
        details={"carer_id": carer.id},
    )
    return carer


def _in_own_la(call: Call, principal: Principal, carer_id: int) -> tuple[Carer, str]:
    """A carer linked to a child of the caller's LA (and that child), or not found."""
    # The link's child reference is sealed, so no SQL joins it to ``children``: the carer's
    # children (a household's few) first, then which of them the caller's LA holds.
    linked = sorted(
        set(call.db.scalars(select(ChildCarer.child_id).where(ChildCarer.carer_id == carer_id)))
    )
    child_id = (
        call.db.scalar(
            select(Child.id)
            .where(Child.id.in_(linked), Child.local_authority_id == principal.local_authority_id)
            .order_by(Child.id)
            .limit(1)
        )
        if linked
        else None
    )
    carer = call.db.get(Carer, carer_id) if child_id else None
    if carer is None or child_id is None:
        raise NotFound("No such carer in your local authority.", code="carer_not_found")
    return carer, child_id


def link(
    call: Call, principal: Principal, raw_child_id: str, carer_id: int, fields: dict[str, Any]
) -> Carer:
    """Link a carer already known to the caller's LA to another of its children (a sibling's
    parent): the shared carer puts the children in one household for shielding."""
    child = children._owned(call, principal, raw_child_id)
    carer, _ = _in_own_la(call, principal, carer_id)
    if call.db.get(ChildCarer, (child.id, carer.id)) is not None:
        raise Conflict("That carer is already linked to the child.", code="carer_already_linked")
    call.db.add(
        ChildCarer(
            child_id=child.id,
            carer_id=carer.id,
            relationship=fields["relationship"],
            parental_responsibility=fields["parental_responsibility"],
        )
    )
    call.db.flush()
    children.refresh_households(call.db, call.ctx.crypto, [child])
    call.audit(
        EventTag.CARER_ADDED,
        principal=principal,
        child_id=child.id,
        details={"carer_id": carer.id, "linked": True},
    )
    return carer


def correct(call: Call, principal: Principal, carer_id: int, fields: dict[str, Any]) -> Carer:
    """Correct a carer linked to a child of the caller's LA; otherwise it is not found."""
    carer, child_id = _in_own_la(call, principal, carer_id)
    if not fields:
        raise InvalidInput("Nothing to correct.", code="nothing_to_correct")
    for column, value in carer_columns(call.ctx.crypto, fields).items():
        setattr(carer, column, value)
    call.audit(
        EventTag.CARER_CORRECTED,
        principal=principal,
        child_id=child_id,
        details={"carer_id": carer.id, "fields": sorted(fields)},
    )
    return carer
