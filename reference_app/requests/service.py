"""Business rules for parents' rights: change requests and their decision, and the subject
access pack.

A rectification, shielding or unshielding request is raised on the family's behalf by a
practitioner who can see the child's full record, or by the child's LA team, and decided by a
data manager of the child's LA other than the one who raised it. Approval applies the change
through the children service, so the change writes its own audit event as a direct one would
(an approved unshielding raised by a data manager counts as the two data managers an unshield
needs).
"""

from __future__ import annotations

import json
from typing import Any

from reference_app.access.permissions import AccessReason, Role
from reference_app.access.principal import Principal
from reference_app.audit.models import AuditEvent
from reference_app.audit.service import RESULT_REFS, sealed_children, sealed_text
from reference_app.audit.tags import EventTag
from reference_app.children import repository as children_repository
from reference_app.children import service as children
from reference_app.children.models import Child
from reference_app.children.schemas import ChildCorrect
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from reference_app.kit.http import Call
from reference_app.requests import repository
from reference_app.requests.models import ChangeRequest, Decision, RequestKind, RequestStatus
from reference_app.requests.schemas import (
    Actor,
    DecisionCreate,
    DecisionStep,
    Organisation,
    RequestCreate,
    RequestDetail,
    Step,
)

PROPOSED = "change_requests.proposed"
JUSTIFICATION = "change_requests.justification"
DECISION_NOTE = "change_requests.decision_note"

# What each kind of event means, in words a family reads in the pack.
DESCRIPTIONS: dict[str, str] = {
    EventTag.ACCESS_DENIED: "An attempt to act on the record was refused",
    EventTag.ACCESS_REFUSED: "A request naming the record was refused",
    EventTag.ALERT_RAISED: "An access to the record was flagged for review",
    EventTag.AUDIT_EVENTS_READ: "The record's access history was reviewed",
    EventTag.CARER_ADDED: "A parent or carer was added",
    EventTag.CARER_CORRECTED: "A parent's or carer's details were corrected",
    EventTag.CHILD_CORRECTED: "The record was corrected",
    EventTag.CHILD_CREATED: "The record was created",
    EventTag.CHILD_DECEASED_RECORDED: "The child's death was recorded",
    EventTag.CHILD_RECORD_OVERRIDE: "The record was opened with the emergency override",
    EventTag.CHILD_RECORD_VIEWED: "The record was viewed",
    EventTag.CHILD_SEARCH_PERFORMED: (
        "A search showed the child among its results (name, gender, age, local authority)"
    ),
    EventTag.CHILD_SHIELDED: "The record was shielded",
    EventTag.CHILD_UNSHIELDED: "Shielding was removed from the record",
    EventTag.INVOLVEMENT_CONFIRMED: "The local authority confirmed a service's involvement",
    EventTag.INVOLVEMENT_ENDED: "A service ended its involvement",
    EventTag.INVOLVEMENT_REGISTERED: "A service registered its involvement",
    EventTag.INVOLVEMENT_REJECTED: "The local authority rejected a service's involvement",
    EventTag.INVOLVEMENT_UPDATED: "A service updated its involvement",
    EventTag.REQUEST_APPROVED: "A request about the record was approved",
    EventTag.REQUEST_RAISED: "A request about the record was raised",
    EventTag.REQUEST_REJECTED: "A request about the record was rejected",
    EventTag.RETENTION_ARCHIVED: "The record was archived (the child had turned 18)",
    EventTag.RETENTION_PURGED: "The record was deleted at the end of its retention period",
    EventTag.SUBJECT_ACCESS_PRODUCED: "A subject access pack was produced",
}
# Event details that say what happened without personal data: the view level, the names of
# the fields shown or changed, an alert's or request's kind, the request, the pack's format.
SHOWN_DETAILS = ("level", "fields", "kind", "request_id", "format")

PACK_NOTES = (
    "Staff are identified by organisation and role. The names of individual staff are not "
    "included; the local authority discloses them, where appropriate, through its own process.",
    "Searches are listed where the child was among the results shown to the searcher.",
    "Free-text reasons written by staff are not included; reason codes are.",
    "Services include sensitive services (sexual health, mental health, substance misuse). "
    "The local authority reviews the pack before release, as a young person's confidential "
    "contact with such a service may not be disclosed to their parents without consent.",
)


# Change requests -------------------------------------------------------------------------


def _raisable(call: Call, principal: Principal, raw_child_id: str) -> Child:
    """The child a request may be raised for: own LA for the LA's team; for a practitioner, a
    child whose full record they may see (own LA or involved, not shielded, archived or
    deceased)."""
    if principal.is_data_manager:
        return children._owned(call, principal, raw_child_id)
    child = children_repository.get(call.db, children.parse_child_id(raw_child_id))
    if child is None or child.closed:
        raise NotFound("No child with that identifier.", code="child_not_found")
    today = call.ctx.clock.now().date()
    involved = children_repository.is_involved(
        call.db,
        child.id,
        principal,
        today,
        claims_count=not enabled(call.ctx.settings, Control.CLAIM_CONFIRMATION),
    )
    decision = children.decide(
        principal,
        child,
        involved=involved,
        reason=AccessReason.SERVICE_DELIVERY,
        rules=children.Rules.of(call.ctx.settings),
    )
    if decision.level is not children.ViewLevel.FULL:
        raise Forbidden(
            "A request can be raised only for a child whose full record you can see; the "
            "family can contact the child's LA management team.",
            code="request_not_permitted",
        )
    return child


def raise_request(call: Call, principal: Principal, body: RequestCreate) -> RequestDetail:
    """Record a family's request for the child's LA to decide; the trail names the fields."""
    child = _raisable(call, principal, body.child_id)
    if (body.kind is RequestKind.SHIELDING and child.shielded) or (
        body.kind is RequestKind.UNSHIELDING and not child.shielded
    ):
        raise Conflict("The record is already as requested.", code="nothing_to_change")
    cipher = call.ctx.crypto.cipher
    proposed = body.changes.model_dump(mode="json", exclude_none=True) if body.changes else None
    request = repository.add(
        call.db,
        ChangeRequest(
            child_id=child.id,
            local_authority_id=child.local_authority_id,
            kind=body.kind.value,
            raised_by=principal.user_id,
            raised_at=call.ctx.clock.now(),
            proposed_enc=cipher.encrypt(json.dumps(proposed, sort_keys=True), PROPOSED)
            if proposed
            else None,
            justification_enc=cipher.encrypt(body.justification, JUSTIFICATION),
            status=RequestStatus.PENDING.value,
        ),
    )
    call.audit(
        EventTag.REQUEST_RAISED,
        principal=principal,
        child_id=child.id,
        details={
            "request_id": request.id,
            "kind": request.kind,
            "fields": sorted(proposed or {}),
            "justification_enc": sealed_text(call.ctx, body.justification, "audit.justification"),
        },
    )
    return detail(call, request, full=principal.is_data_manager)


def _visible(call: Call, principal: Principal, request_id: int) -> tuple[ChangeRequest, bool]:
    """A request the caller may see, and whether in full: the child's LA team sees it all,
    the practitioner who raised it its fields and outcome; anyone else gets not found."""
    request = repository.get(call.db, request_id)
    if request is not None:
        if principal.is_data_manager and request.local_authority_id == (
            principal.local_authority_id
        ):
            return request, True
        if request.raised_by == principal.user_id:
            return request, False
    raise NotFound("No such request.", code="request_not_found")


def show(call: Call, principal: Principal, request_id: int) -> RequestDetail:
    request, full = _visible(call, principal, request_id)
    return detail(call, request, full=full)


def listing(
    call: Call,
    principal: Principal,
    *,
    status: RequestStatus | None,
    before_id: int | None,
    limit: int,
) -> list[ChangeRequest]:
    """The LA team's requests for its own children; a practitioner's own requests."""
    own_la = principal.is_data_manager
    return list(
        repository.listing(
            call.db,
            local_authority_id=principal.local_authority_id if own_la else None,
            raised_by=None if own_la else principal.user_id,
            status=status,
            before_id=before_id,
            limit=limit,
        )
    )


def decide(
    call: Call, principal: Principal, request_id: int, body: DecisionCreate
) -> RequestDetail:
    """Approve (and apply) or reject a pending request of the caller's LA, by someone other
    than the one who raised it; a decided request stays decided."""
    request = repository.get(call.db, request_id)
    if request is None or request.local_authority_id != principal.local_authority_id:
        raise NotFound("No such request in your local authority.", code="request_not_found")
    if request.raised_by == principal.user_id:
        raise Forbidden(
            "A request is decided by a data manager other than the one who raised it.",
            code="own_request",
        )
    if request.status != RequestStatus.PENDING:
        raise Conflict("This request has already been decided.", code="request_decided")
    if body.decision is Decision.REJECT and not body.note:
        raise InvalidInput("Give the reason for a rejection in note.", code="note_required")
    status = RequestStatus.APPROVED if body.decision is Decision.APPROVE else RequestStatus.REJECTED
    note_enc = call.ctx.crypto.cipher.encrypt(body.note, DECISION_NOTE) if body.note else None
    now = call.ctx.clock.now()
    decided = repository.mark_decided(
        call.db,
        request.id,
        status=status,
        decided_by=principal.user_id,
        decided_at=now,
        note_enc=note_enc,
    )
    if not decided:  # another data manager decided it since it was read
        raise Conflict("This request has already been decided.", code="request_decided")
    if status is RequestStatus.APPROVED:
        _apply(call, principal, request, body.note)
    details: dict[str, Any] = {"request_id": request.id, "kind": request.kind}
    if body.note:
        details["decision_note_enc"] = sealed_text(call.ctx, body.note, "audit.decision_note")
    approved = status is RequestStatus.APPROVED
    tag = EventTag.REQUEST_APPROVED if approved else EventTag.REQUEST_REJECTED
    call.audit(tag, principal=principal, child_id=request.child_id, details=details)
    call.db.refresh(request)
    return detail(call, request, full=True)


def _apply(call: Call, principal: Principal, request: ChangeRequest, note: str | None) -> None:
    """Make the approved change through the children service (which audits it)."""
    if request.kind == RequestKind.RECTIFICATION:
        changes = ChildCorrect.model_validate(_proposed(call, request) or {})
        children.correct(call, principal, request.child_id, changes)
    else:
        shielded = request.kind == RequestKind.SHIELDING
        agreed_by = None if shielded else _data_manager_of(call, request)
        children.set_shield(call, principal, request.child_id, shielded, note, agreed_by=agreed_by)


def _data_manager_of(call: Call, request: ChangeRequest) -> int | None:
    """The raiser, when a data manager of the child's LA: with the decider, two of the LA's data
    managers agreed an unshield. Raised by a practitioner, the unshield awaits a second one."""
    role, org = repository.actors(call.db, [request.raised_by]).get(request.raised_by, ("", None))
    same_la = org is not None and org.local_authority_id == request.local_authority_id
    return request.raised_by if role == Role.LA_DATA_MANAGER and same_la else None


def _proposed(call: Call, request: ChangeRequest) -> dict[str, Any] | None:
    if request.proposed_enc is None:
        return None
    return dict(json.loads(call.ctx.crypto.cipher.decrypt(request.proposed_enc, PROPOSED)))


def _actor(who: dict[int, tuple[str, Any]], practitioner_id: int) -> Actor:
    role, org = who.get(practitioner_id, ("unknown", None))
    return Actor(
        practitioner_id=practitioner_id,
        role=role,
        organisation=Organisation(name=org.name, kind=org.kind) if org else None,
    )


def detail(call: Call, request: ChangeRequest, *, full: bool) -> RequestDetail:
    """A request's decision trail: raised and decided, who, when and what."""
    cipher = call.ctx.crypto.cipher
    proposed = _proposed(call, request)
    people = [request.raised_by] + ([request.decided_by] if request.decided_by else [])
    who = repository.actors(call.db, people)
    decided = None
    if request.decided_at is not None and request.decided_by is not None:
        note = None
        if full and request.decision_note_enc is not None:
            note = cipher.decrypt(request.decision_note_enc, DECISION_NOTE)
        decided = DecisionStep(
            at=request.decided_at,
            by=_actor(who, request.decided_by),
            decision=Decision.APPROVE
            if request.status == RequestStatus.APPROVED
            else Decision.REJECT,
            note=note,
        )
    return RequestDetail(
        id=request.id,
        child_id=request.child_id,
        kind=RequestKind(request.kind),
        status=RequestStatus(request.status),
        fields=sorted(proposed or {}),
        raised=Step(at=request.raised_at, by=_actor(who, request.raised_by)),
        decided=decided,
        proposed_changes=proposed if full else None,
        justification=cipher.decrypt(request.justification_enc, JUSTIFICATION) if full else None,
    )


# Subject access --------------------------------------------------------------------------


def subject_access_pack(
    call: Call, principal: Principal, raw_child_id: str, fmt: str
) -> dict[str, Any]:
    """The pack for one child of the caller's LA: the data held, every recorded access, and the
    requests concerning the child. Producing it is audited, and the pack lists that event.

    The pack goes to the family, so it names who acted by organisation (and its kind) and role,
    never by the practitioner's name or account id: staff identities are personal data of the
    staff, disclosed, where appropriate, through the LA's own process (and a name in a pack
    handed to a family could expose a social worker or a police officer to harm). The same
    holds for the practitioner an involvement names. A purged child's pack still lists the
    access history, which the trail keeps.
    """
    child_id = children.parse_child_id(raw_child_id)
    child = children_repository.get(call.db, child_id)
    purged: AuditEvent | None = None
    if child is None:
        purged = repository.purge_event(call.db, child_id)
        owner = json.loads(purged.details).get("local_authority_id") if purged else None
    else:
        owner = child.local_authority_id
    if owner != principal.local_authority_id:
        raise NotFound(
            "No child with that identifier in your local authority.", code="child_not_found"
        )
    call.audit(
        EventTag.SUBJECT_ACCESS_PRODUCED,
        principal=principal,
        child_id=child_id,
        details={"format": fmt},
    )
    producer = repository.organisations(call.db, [principal.organisation_id])
    org = producer.get(principal.organisation_id)
    return {
        "child_id": child_id,
        "produced_at": call.ctx.clock.now().isoformat(timespec="seconds"),
        "produced_by": {
            "organisation": {"name": org.name, "kind": org.kind} if org else None,
            "role": principal.role.value,
        },
        "data_held": _data_held(children.full_record(call, child)) if child else None,
        "purged_at": purged.occurred_at.isoformat(timespec="seconds") if purged else None,
        "access_history": _access_history(call, child_id),
        "requests": [
            _without_staff_ids(detail(call, r, full=True).model_dump(mode="json"))
            for r in repository.for_child(call.db, child_id)
        ],
        "notes": list(PACK_NOTES),
    }


def _data_held(full: dict[str, Any]) -> dict[str, Any]:
    """The full record, sensitive services included, without the practitioners' ids."""
    held = dict(full)
    held["services"] = [
        {
            **{
                k: v for k, v in service.items() if not k.startswith("_") and k != "practitioner_id"
            },
            "consent_recorded": service["_consent"],
        }
        for service in full["services"]
    ]
    return held


def _without_staff_ids(trail: dict[str, Any]) -> dict[str, Any]:
    for step in ("raised", "decided"):
        if trail.get(step):
            trail[step]["by"].pop("practitioner_id", None)
    return trail


def _access_history(call: Call, child_id: str) -> list[dict[str, Any]]:
    """Every event naming the child, and every search that showed it, oldest first."""
    events = {e.id: e for e in repository.events_naming(call.db, child_id)}
    [token] = sealed_children(call.db, [child_id])
    for event in repository.searches_returning(call.db, child_id):
        # The hits index is derived: trust only what the event itself records. A search lists
        # the children it returned sealed (``result_refs``), or in clear if recorded before 0017.
        details = json.loads(event.details)
        if token in details.get(RESULT_REFS, []) or child_id in details.get("result_ids", []):
            events[event.id] = event
    ordered = [events[k] for k in sorted(events)]
    orgs = repository.organisations(
        call.db, {e.actor_organisation_id for e in ordered if e.actor_organisation_id}
    )
    history = []
    for event in ordered:
        org = orgs.get(event.actor_organisation_id or 0)
        details = json.loads(event.details)
        entry: dict[str, Any] = {
            "event_id": event.id,
            "occurred_at": event.occurred_at.isoformat(timespec="seconds"),
            "action": event.tag,
            "description": DESCRIPTIONS.get(event.tag, event.tag),
            "organisation": {"name": org.name, "kind": org.kind} if org else None,
            "role": event.actor_role,
            "reason": event.reason_code,
            "relationship": event.relationship,
            "outcome": event.outcome,
        }
        entry.update({key: details[key] for key in SHOWN_DETAILS if key in details})
        history.append(entry)
    return history
