"""Audit routes: the trail for reviewers, and the latest signed checkpoint for witnesses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from reference_app.access.guards import require
from reference_app.access.permissions import Permission
from reference_app.access.principal import Principal
from reference_app.audit import repository
from reference_app.audit.review import review_events
from reference_app.audit.service import checkpoint_document
from reference_app.audit.tags import EventTag
from reference_app.kit import identifiers
from reference_app.kit.errors import InvalidInput, NotFound
from reference_app.kit.http import BoundaryRoute, CallDep
from reference_app.kit.identifiers import EventId, RowId

router = APIRouter(prefix="/audit", tags=["audit"], route_class=BoundaryRoute)
AuditRead = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]


@router.get("/events")
def list_events(
    principal: AuditRead,
    call: CallDep,
    child_id: Annotated[str | None, Query(max_length=13)] = None,
    actor_id: RowId | None = None,
    tag: EventTag | None = None,
    before_id: EventId | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Audit events, newest first; an LA's team sees its own staff's and children's events."""
    if child_id is not None and not (
        identifiers.CANONICAL.fullmatch(child_id) and identifiers.is_valid(child_id)
    ):
        # Only the canonical form the API answers (its documented pattern) with a correct check
        # character: a filter that can match nothing is a mistake, not an empty page.
        raise InvalidInput(
            "child_id is a child identifier as the API gives it: 13 characters of Crockford "
            "base 32 in capitals, with its check character",
            code="invalid_child_id",
        )
    return review_events(
        call,
        principal,
        child_id=child_id,
        actor_id=actor_id,
        tag=tag,
        before_id=before_id,
        limit=limit,
    )


@router.get("/checkpoints/latest")
def latest_checkpoint(principal: AuditRead, call: CallDep) -> dict[str, Any]:
    """The latest signed tree head, for a witness to keep outside the host."""
    checkpoint = repository.latest_checkpoint(call.db)
    if checkpoint is None:
        raise NotFound("Nothing has been sealed yet.", code="no_checkpoint")
    return checkpoint_document(checkpoint)
