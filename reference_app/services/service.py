"""Involvements: registered, updated and ended by the practitioner who owns them; consent on a
sensitive one withdrawn through its service or the child's LA."""

from __future__ import annotations

import datetime as dt

from reference_app.access.principal import Principal
from reference_app.audit.tags import EventTag
from reference_app.children import repository as children
from reference_app.children.service import parse_child_id
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from reference_app.kit.http import Call
from reference_app.services.models import Involvement, Organisation


def register(
    call: Call,
    principal: Principal,
    raw_child_id: str,
    *,
    started_on: dt.date | None,
    lead_professional: bool,
    caf_assessment_on: dt.date | None,
    consent_recorded: bool,
) -> Involvement:
    """Record that the caller's service works with a child; sensitive services need consent."""
    child = children.get(call.db, parse_child_id(raw_child_id))
    if child is None or child.closed:
        raise NotFound("No child with that identifier.", code="child_not_found")
    organisation = call.db.get(Organisation, principal.organisation_id)
    assert organisation is not None
    if organisation.sensitive and not consent_recorded:
        raise InvalidInput(
            "A sensitive service's involvement is recorded only with the young person's "
            "explicit consent.",
            code="consent_required",
        )
    involvement = Involvement(
        child_id=child.id,
        organisation_id=organisation.id,
        practitioner_id=principal.user_id,
        started_on=started_on or call.ctx.clock.now().date(),
        is_lead_professional=lead_professional,
        caf_assessment_on=caf_assessment_on,
        sensitive=organisation.sensitive,
        consent_recorded=consent_recorded,
        created_at=call.ctx.clock.now(),
    )
    call.db.add(involvement)
    call.db.flush()
    call.audit(
        EventTag.INVOLVEMENT_REGISTERED,
        principal=principal,
        child_id=child.id,
        details={"involvement_id": involvement.id, "sensitive": involvement.sensitive},
    )
    return involvement


def _owned(call: Call, principal: Principal, involvement_id: int) -> Involvement:
    involvement = call.db.get(Involvement, involvement_id)
    if involvement is None:
        raise NotFound("No such involvement.", code="involvement_not_found")
    if involvement.practitioner_id != principal.user_id:
        if enabled(call.ctx.settings, Control.UNIFORM_REFUSALS):
            # Someone else's answers as a missing one: a 403 would confirm that the id exists
            # (and so that some practitioner works with some child).
            raise NotFound("No such involvement.", code="involvement_not_found")
        raise Forbidden(
            "Only the practitioner who owns an involvement may change it.",
            code="not_involvement_owner",
        )
    return involvement


def update(
    call: Call,
    principal: Principal,
    involvement_id: int,
    *,
    lead_professional: bool | None,
    caf_assessment_on: dt.date | None,
) -> Involvement:
    involvement = _owned(call, principal, involvement_id)
    if involvement.ended_on is not None:
        raise Conflict("This involvement has ended.", code="involvement_ended")
    changed = []
    if lead_professional is not None:
        involvement.is_lead_professional = lead_professional
        changed.append("lead_professional")
    if caf_assessment_on is not None:
        involvement.caf_assessment_on = caf_assessment_on
        changed.append("caf_assessment_on")
    call.audit(
        EventTag.INVOLVEMENT_UPDATED,
        principal=principal,
        child_id=involvement.child_id,
        details={"involvement_id": involvement.id, "fields": changed},
    )
    return involvement


def end(
    call: Call, principal: Principal, involvement_id: int, ended_on: dt.date | None
) -> Involvement:
    involvement = _owned(call, principal, involvement_id)
    if involvement.ended_on is not None:
        raise Conflict("This involvement has already ended.", code="involvement_ended")
    involvement.ended_on = ended_on or call.ctx.clock.now().date()
    involvement.is_lead_professional = False
    call.audit(
        EventTag.INVOLVEMENT_ENDED,
        principal=principal,
        child_id=involvement.child_id,
        details={"involvement_id": involvement.id},
    )
    return involvement


def withdraw_consent(call: Call, principal: Principal, involvement_id: int) -> Involvement:
    """Record that the young person withdrew consent: other services stop seeing a sensitive
    involvement. Recorded by anyone in the service itself or the child's LA data manager."""
    involvement = call.db.get(Involvement, involvement_id)
    child = children.get(call.db, involvement.child_id) if involvement is not None else None
    if involvement is None or child is None:
        raise NotFound("No such involvement.", code="involvement_not_found")
    own_service = involvement.organisation_id == principal.organisation_id
    own_la = principal.is_data_manager and child.local_authority_id == principal.local_authority_id
    if not (own_service or own_la):
        raise Forbidden(
            "Only the service itself or the child's local authority may record a withdrawal.",
            code="not_involvement_service",
        )
    if not involvement.sensitive:
        raise Conflict(
            "Consent governs only a sensitive service's involvement.", code="not_sensitive"
        )
    if involvement.consent_withdrawn_at is not None:
        raise Conflict("Consent has already been withdrawn.", code="consent_already_withdrawn")
    involvement.consent_withdrawn_at = call.ctx.clock.now()
    call.audit(
        EventTag.INVOLVEMENT_CONSENT_WITHDRAWN,
        principal=principal,
        child_id=involvement.child_id,
        details={"involvement_id": involvement.id},
    )
    return involvement
