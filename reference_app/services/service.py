"""Involvements: claimed, updated and ended by the practitioner who owns them; confirmed or
rejected by a data manager of the child's LA; consent on a sensitive one withdrawn through its
service or the child's LA.

A practitioner's registration is a claim, not evidence of a need to know: anyone could claim any
child. So (``claim_confirmation``) a claim widens no view until the child's LA confirms it, every
claim alerts that LA's management team, and a practitioner may make only
``involvement_claims_per_day`` claims in a day (``rate_limits``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from reference_app.access.principal import Principal
from reference_app.alerts.models import AlertKind, AlertSeverity
from reference_app.alerts.service import close_claim_alerts, raise_alert
from reference_app.audit.tags import EventTag
from reference_app.children import repository as children
from reference_app.children.models import Child
from reference_app.children.service import child_identity, parse_child_id
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyRequests
from reference_app.kit.http import Call
from reference_app.kit.schemas import within
from reference_app.kit.transitions import StateChanged
from reference_app.services import repository
from reference_app.services.models import Involvement, Organisation

CLAIM_WINDOW = dt.timedelta(days=1)


def _born(call: Call, child: Child) -> dt.date:
    return dt.date.fromisoformat(str(child_identity(call.ctx.crypto, child)["date_of_birth"]))


def check_dates(
    call: Call,
    child: Child,
    *,
    started_on: dt.date | None = None,
    caf_assessment_on: dt.date | None = None,
) -> None:
    """Refuse dates in the future, before the child was born, or (a start) further back than
    ``involvement_backdate_days``: a claim dated years ago would reach the child's history."""
    if started_on is None and caf_assessment_on is None:
        return
    today = call.ctx.clock.now().date()
    born = (_born(call, child), "the child's date of birth")
    days = call.ctx.settings.involvement_backdate_days
    window = (today - dt.timedelta(days=days), f"{days} days ago")
    latest = (today, "today")
    within(started_on, "started_on", earliest=max(born, window), latest=latest)
    within(caf_assessment_on, "caf_assessment_on", earliest=born, latest=latest)


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
    """Record the caller's claim that their service works with a child; sensitive services
    need consent. The claim alerts the child's LA, which confirms or rejects it."""
    child = children.get(call.db, parse_child_id(raw_child_id))
    if child is None or child.closed:
        raise NotFound("No child with that identifier.", code="child_not_found")
    check_dates(call, child, started_on=started_on, caf_assessment_on=caf_assessment_on)
    now = call.ctx.clock.now()
    settings = call.ctx.settings
    if enabled(settings, Control.RATE_LIMITS) and (
        repository.claims_since(call.db, principal.user_id, now - CLAIM_WINDOW)
        >= settings.involvement_claims_per_day
    ):
        raise TooManyRequests(
            "You have registered as many involvements as a day allows; ask your LA management "
            "team if more are needed.",
            code="claim_limit_reached",
            retry_after=int(CLAIM_WINDOW.total_seconds()),
        )
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
        created_at=now,
    )
    call.db.add(involvement)
    call.db.flush()
    event_id = call.audit(
        EventTag.INVOLVEMENT_REGISTERED,
        principal=principal,
        child_id=child.id,
        details={"involvement_id": involvement.id, "sensitive": involvement.sensitive},
    )
    if enabled(settings, Control.CLAIM_CONFIRMATION):
        raise_alert(
            call,
            principal,
            kind=AlertKind.INVOLVEMENT_CLAIM,
            severity=AlertSeverity.MEDIUM,
            local_authority_id=child.local_authority_id,
            child_id=child.id,
            audit_event_id=event_id,
            summary="A practitioner claims to work with a child: confirm or reject the claim",
            details={"involvement_id": involvement.id, "organisation_id": organisation.id},
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


# The columns an owner may change, by the names the trail records them under.
_FIELD_NAMES = {
    "is_lead_professional": "lead_professional",
    "caf_assessment_on": "caf_assessment_on",
}


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
    values: dict[str, Any] = {}
    if lead_professional is not None:
        values["is_lead_professional"] = lead_professional
    if caf_assessment_on is not None:
        child = children.get(call.db, involvement.child_id)
        if child is not None:
            check_dates(call, child, caf_assessment_on=caf_assessment_on)
        values["caf_assessment_on"] = caf_assessment_on
    if values and not repository.change_running(call.db, involvement, **values):
        raise StateChanged("This involvement was ended meanwhile.")
    changed = [_FIELD_NAMES[name] for name in values]
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
    today = call.ctx.clock.now().date()
    within(
        ended_on,
        "ended_on",
        earliest=(involvement.started_on, "the involvement's start"),
        latest=(today, "today"),
    )
    ended = repository.change_running(
        call.db, involvement, ended_on=ended_on or today, is_lead_professional=False
    )
    if not ended:
        raise StateChanged("This involvement was ended meanwhile.")
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
        if enabled(call.ctx.settings, Control.UNIFORM_REFUSALS):
            raise NotFound("No such involvement.", code="involvement_not_found")
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
    if not repository.withdraw_consent(call.db, involvement, call.ctx.clock.now()):
        raise StateChanged("Consent was withdrawn meanwhile.")
    call.audit(
        EventTag.INVOLVEMENT_CONSENT_WITHDRAWN,
        principal=principal,
        child_id=involvement.child_id,
        details={"involvement_id": involvement.id},
    )
    return involvement


def _decidable(call: Call, principal: Principal, involvement_id: int) -> Involvement:
    """An open claim on a child of the caller's LA; anything else is not found, so an id says
    nothing of another LA's involvements."""
    involvement = repository.get(call.db, involvement_id)
    child = children.get(call.db, involvement.child_id) if involvement is not None else None
    if (
        involvement is None
        or child is None
        or not principal.is_data_manager
        or child.local_authority_id != principal.local_authority_id
    ):
        raise NotFound("No such involvement in your local authority.", code="involvement_not_found")
    if involvement.ended_on is not None:
        raise Conflict("This involvement has ended.", code="involvement_ended")
    if involvement.confirmed_at is not None:
        raise Conflict("This involvement is already confirmed.", code="involvement_confirmed")
    return involvement


def _decide_claim(call: Call, involvement: Involvement, **values: Any) -> None:
    """Decide the claim from the open state read; of two decisions at once one stands."""
    if not repository.decide_claim(call.db, involvement, **values):
        raise StateChanged("Another data manager decided this claim first.")


def confirm(call: Call, principal: Principal, involvement_id: int) -> Involvement:
    """Confirm a claim: the service's need to know now stands (a data manager of the child's LA)."""
    involvement = _decidable(call, principal, involvement_id)
    _decide_claim(
        call, involvement, confirmed_at=call.ctx.clock.now(), confirmed_by=principal.user_id
    )
    close_claim_alerts(call, principal, involvement.child_id, involvement.id, "confirmed")
    call.audit(
        EventTag.INVOLVEMENT_CONFIRMED,
        principal=principal,
        child_id=involvement.child_id,
        details={"involvement_id": involvement.id, "claimed_by": involvement.practitioner_id},
    )
    return involvement


def reject(call: Call, principal: Principal, involvement_id: int) -> Involvement:
    """Reject a claim: it ends today, never having widened a view."""
    involvement = _decidable(call, principal, involvement_id)
    _decide_claim(
        call, involvement, ended_on=call.ctx.clock.now().date(), is_lead_professional=False
    )
    close_claim_alerts(call, principal, involvement.child_id, involvement.id, "rejected")
    call.audit(
        EventTag.INVOLVEMENT_REJECTED,
        principal=principal,
        child_id=involvement.child_id,
        details={"involvement_id": involvement.id, "claimed_by": involvement.practitioner_id},
    )
    return involvement
