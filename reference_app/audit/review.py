"""Reviewing the trail: who may see which events, and the record that they looked."""

from __future__ import annotations

from typing import Any

from reference_app.access.permissions import Role
from reference_app.access.principal import Principal
from reference_app.audit import repository
from reference_app.audit.service import event_document, readable_details
from reference_app.audit.tags import EventTag
from reference_app.kit.http import Call


def review_events(
    call: Call,
    principal: Principal,
    *,
    child_id: str | None,
    actor_id: int | None,
    tag: EventTag | None,
    before_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Events newest first: a national auditor sees all, an LA's team its own staff's and
    children's. The look itself goes on the trail."""
    scope = None if principal.role is Role.NATIONAL_AUDITOR else principal.local_authority_id
    events = repository.list_events(
        call.db,
        local_authority_id=scope,
        child_id=child_id,
        actor_id=actor_id,
        tag=tag.value if tag else None,
        before_id=before_id,
        limit=limit,
    )
    call.audit(
        EventTag.AUDIT_EVENTS_READ,
        principal=principal,
        child_id=child_id,
        details={"returned": len(events)},
    )
    return [{**event_document(e), "details": readable_details(call.db, e)} for e in events]
