"""Business rules for children: search, need-to-know views, redaction, correction and shielding.

What a caller sees of a record is decided here once (``decide``) and applied once (``redact``):

| caller | child | view |
| --- | --- | --- |
| practitioner, involved or same LA | not shielded | full (sensitive services only with consent) |
| practitioner, other LA, not involved | not shielded | limited: name, gender, age, owning LA |
| practitioner (any) | shielded, or its household | limited, no LA: "ask your LA team" |
| override holder, reason emergency_override | any | full, with a warning; alerted |
| data manager of the child's LA | any, archived or deceased too | full |
| data manager of another LA | any | limited |
| national auditor, system administrator | any | no access (permission) |

"Involved" means a current involvement the child's LA confirmed (or the population feed
loaded): a practitioner's own unconfirmed claim is not involvement (``claim_confirmation``).

A shielded child's household is every child sharing its address or a carer: their addresses and
carers lead to the shielded child, so shielding protects them the same way (``Child.protected``;
the flag is kept by ``refresh_households``). A search result or limited view of a protected child
never names its LA: contact is brokered between LA teams through the national registry.

Archived and deceased records are hidden (not found) from everyone else. Shielding is one data
manager's call, at once; lifting a shield takes two of the LA's data managers (one asks, the LA's
team is alerted, another approves). Need-to-know, shielding, the two-person unshield and the
audit of views and searches each have a control switch (``reference_app.kit.controls``) a
development build may turn off.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from reference_app.access.permissions import AccessReason, Permission
from reference_app.access.principal import Principal
from reference_app.alerts.models import AlertKind, AlertSeverity
from reference_app.alerts.service import raise_alert
from reference_app.audit.service import RESULT_REFS, sealed_children, sealed_text
from reference_app.audit.tags import AccessRelationship, EventTag
from reference_app.children import repository
from reference_app.children.models import Child, UnshieldRequest, UnshieldStatus
from reference_app.children.schemas import (
    ACCESS_REASON_MAX_LENGTH,
    ChildCorrect,
    ChildCreate,
    PendingUnshield,
    SearchRequest,
    SearchResponse,
    SearchResult,
    ShieldOutcome,
)
from reference_app.config import Settings
from reference_app.kit import identifiers
from reference_app.kit.clock import age_on, start_of_day
from reference_app.kit.controls import Control, enabled
from reference_app.kit.crypto import Crypto
from reference_app.kit.errors import BadRequest, Conflict, Forbidden, InvalidInput, NotFound
from reference_app.kit.http import Call
from reference_app.kit.schemas import within, years_before
from reference_app.kit.text import CONTROL_CHARACTERS, refused
from reference_app.limits.service import Limiter, SearchShape
from reference_app.services.models import OrganisationKind

OVERRIDE_WARNING = (
    "You have used the emergency override. This access is recorded, your LA management team "
    "has been alerted, and an investigation will follow."
)
# Names no LA: where a shielded child now lives is what shielding keeps back.
SHIELDED_CONTACT = (
    "This record is shielded. To make contact, ask your own LA management team: LA teams "
    "broker contact through the national registry, which does not disclose where the child "
    "lives."
)
OTHER_LA_CONTACT = "Contact the LA management team of {la} for more about this child."


class ViewLevel(StrEnum):
    FULL = "full"
    LIMITED = "limited"


@dataclass(frozen=True, slots=True)
class Decision:
    level: ViewLevel
    relationship: AccessRelationship
    override: bool = False
    # Shielding withholds the fields and the LA (the limited view says how contact is brokered).
    shielded: bool = False


@dataclass(frozen=True, slots=True)
class Rules:
    """The object- and field-level rules in force: both, unless a development build switched
    one off."""

    need_to_know: bool
    shielding: bool
    consent_withdrawal: bool = True

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(
            need_to_know=enabled(settings, Control.NEED_TO_KNOW),
            shielding=enabled(settings, Control.SHIELDING),
            consent_withdrawal=enabled(settings, Control.CONSENT_WITHDRAWAL),
        )


def child_columns(
    crypto: Crypto,
    *,
    given_name: str,
    family_name: str,
    date_of_birth: str,
    address: dict[str, Any],
) -> dict[str, Any]:
    """Encrypt a child's personal fields and compute their blind indexes, as stored."""
    cipher, index = crypto.cipher, crypto.index
    return {
        "given_name_enc": cipher.encrypt(given_name, "children.given_name"),
        "family_name_enc": cipher.encrypt(family_name, "children.family_name"),
        "date_of_birth_enc": cipher.encrypt(date_of_birth, "children.date_of_birth"),
        "address_enc": cipher.encrypt(json.dumps(address, sort_keys=True), "children.address"),
        "given_name_bidx": index.name(given_name),
        "family_name_bidx": index.name(family_name),
        "family_name_phonetic_bidx": index.phonetic(family_name),
        "date_of_birth_bidx": index.date(date_of_birth),
        "postcode_bidx": index.postcode(str(address["postcode"])),
    }


def child_identity(crypto: Crypto, child: Child) -> dict[str, str]:
    """Decrypt a child's names and ISO date of birth: the reverse of ``child_columns``."""
    cipher = crypto.cipher
    return {
        "given_name": cipher.decrypt(child.given_name_enc, "children.given_name"),
        "family_name": cipher.decrypt(child.family_name_enc, "children.family_name"),
        "date_of_birth": cipher.decrypt(child.date_of_birth_enc, "children.date_of_birth"),
    }


def child_address(crypto: Crypto, child: Child) -> dict[str, Any]:
    """Decrypt a child's address (lines, town, postcode)."""
    return dict(json.loads(crypto.cipher.decrypt(child.address_enc, "children.address")))


def parse_child_id(raw: str) -> str:
    """Normalise a typed identifier, refusing a mistyped one before any lookup."""
    try:
        return identifiers.normalise(raw)
    except identifiers.InvalidIdentifier as exc:
        raise InvalidInput(str(exc), code="invalid_child_id") from exc


def parse_reason(header: str | None) -> tuple[AccessReason, str | None]:
    """Read ``X-Access-Reason: <code>[; free text]``."""
    if not header or not header.strip():
        raise BadRequest(
            "State a reason for access in the X-Access-Reason header.",
            code="access_reason_required",
        )
    if len(header) > ACCESS_REASON_MAX_LENGTH:
        raise BadRequest(
            f"The X-Access-Reason header is longer than {ACCESS_REASON_MAX_LENGTH} characters.",
            code="access_reason_too_long",
        )
    if refused(header):
        raise BadRequest(
            "The X-Access-Reason header holds a control or text-direction character.",
            code=CONTROL_CHARACTERS,
        )
    code, _, text = header.partition(";")
    try:
        reason = AccessReason(code.strip(" "))
    except ValueError as exc:
        known = ", ".join(r.value for r in AccessReason)
        raise BadRequest(
            f"Unknown reason for access; use one of: {known}.", code="invalid_access_reason"
        ) from exc
    return reason, (text.strip()[:500] or None)


def _hex(value: bytes | None) -> str | None:
    return value.hex() if value is not None else None


def search(call: Call, principal: Principal, criteria: SearchRequest) -> SearchResponse:
    """Find children by exact or phonetic match; too many matches means refine, not a list."""
    index = call.ctx.crypto.index
    cap = call.ctx.settings.search_result_cap
    given = index.name(criteria.given_name) if criteria.given_name else None
    dob = index.date(criteria.date_of_birth.isoformat()) if criteria.date_of_birth else None
    postcode = index.postcode(criteria.postcode) if criteria.postcode else None
    exact = index.name(criteria.family_name)
    phonetic = index.phonetic(criteria.family_name)
    rules = Rules.of(call.ctx.settings)
    limiter = Limiter(call, principal)
    limiter.before_search(
        SearchShape(
            family_name=exact.hex(),
            given_name=_hex(given),
            date_of_birth=_hex(dob),
            postcode=_hex(postcode),
        )
    )
    keys = {
        "family_name": exact,
        "family_phonetic": phonetic,
        "given_name": given,
        "date_of_birth": dob,
        "postcode": postcode,
    }
    rows = repository.search(
        call.db,
        principal,
        family_name=exact,
        family_phonetic=phonetic,
        given_name=given,
        date_of_birth=dob,
        postcode=postcode,
        limit=cap + 1,
        need_to_know=rules.need_to_know,
        shielding=rules.shielding,
    )
    refine = len(rows) > cap
    results: list[SearchResult] = []
    if not refine:
        today = call.ctx.clock.now()
        # What leaves the registry counts towards the daily caps, before anything is decrypted.
        limiter.before_results([found.child.id for found in rows])
        for found in sorted(rows, key=lambda f: (f.child.family_name_bidx != exact, f.child.id)):
            results.append(_search_result(call, principal, found, today, rules))
    if enabled(call.ctx.settings, Control.AUDIT_TRAIL):
        call.audit(
            EventTag.CHILD_SEARCH_PERFORMED,
            principal=principal,
            details={
                # Keyed hashes only: an auditor holding the key can test a guess, a reader cannot.
                "criteria": {k: _hex(v) for k, v in keys.items() if v is not None},
                # Sealed: the details are hashed as stored, and must not tell who found whom.
                RESULT_REFS: sealed_children(call.db, [r.child_id for r in results]),
                "matched": len(rows),
                "refine_search": refine,
            },
            # Indexed by child, so a subject access pack finds the searches that showed a child.
            search_hits=[r.child_id for r in results],
        )
    return SearchResponse(
        results=results,
        count=len(results),
        refine_search=refine,
        message="Too many children match: add criteria to refine your search." if refine else None,
    )


def _search_result(
    call: Call, principal: Principal, found: repository.Found, today: Any, rules: Rules
) -> SearchResult:
    child = found.child
    identity = child_identity(call.ctx.crypto, child)
    # Which LA a shielded child lives in is the very thing shielding keeps back.
    withheld = withholds_la(principal, child, rules)
    return SearchResult(
        child_id=child.id,
        given_name=identity["given_name"],
        family_name=identity["family_name"],
        gender=child.gender,
        age=age_on(identity["date_of_birth"], today),
        local_authority=None if withheld else found.la_name,
        contact=SHIELDED_CONTACT if withheld else None,
    )


def withholds_la(principal: Principal, child: Child, rules: Rules) -> bool:
    """Whether a search result or limited view keeps back a protected child's LA: from all
    but that LA's own management team, which brokers contact."""
    manages = principal.is_data_manager and child.local_authority_id == principal.local_authority_id
    return rules.shielding and child.protected and not manages


def decide(
    principal: Principal,
    child: Child,
    *,
    involved: bool,
    reason: AccessReason,
    rules: Rules,
    settled: bool = True,
) -> Decision:
    """Decide what ``principal`` sees of ``child``: the one place the view rules live.

    ``involved`` is a current, confirmed involvement (any claim, with confirmation switched
    off); ``settled`` says it was confirmed long enough ago to vouch for the view to the
    insider-browsing detector, which scores a view under a young involvement as uninvolved.
    """
    own_la = child.local_authority_id == principal.local_authority_id
    if reason is AccessReason.EMERGENCY_OVERRIDE:
        if not principal.can(Permission.CHILD_RECORD_OVERRIDE):
            raise Forbidden(
                "Your role does not hold the emergency override.", code="override_not_permitted"
            )
        return Decision(ViewLevel.FULL, AccessRelationship.OVERRIDE, override=True)
    if principal.is_data_manager and own_la:
        # The LA's management team sees shielded data too: it brokers contact.
        return Decision(ViewLevel.FULL, AccessRelationship.DATA_MANAGER)
    relationship = AccessRelationship.SELF_CLAIMED
    if involved:
        relationship = (
            AccessRelationship.INVOLVED if settled else AccessRelationship.INVOLVED_RECENT
        )
    # Only a practitioner has a need to know from the LA alone; a data manager of another LA
    # (or a role that reads no child data at all) has none.
    entitled = involved or (own_la and principal.is_practitioner)
    # A shielded child's household too: its address and carers lead to the shielded child.
    shielded = child.protected and rules.shielding
    if shielded or (rules.need_to_know and not entitled):
        return Decision(ViewLevel.LIMITED, relationship, shielded=shielded)
    return Decision(ViewLevel.FULL, relationship)


def full_record(call: Call, child: Child) -> dict[str, Any]:
    """Everything the registry holds on ``child``, decrypted: what ``redact`` cuts down, and
    the data held in a subject access pack."""
    la = repository.local_authority(call.db, child.local_authority_id)
    return full_record_in(
        call,
        child,
        (la.ons_code, la.name) if la else None,
        repository.involvements(call.db, child.id),
        repository.carers(call.db, child.id),
    )


def full_record_in(
    call: Call,
    child: Child,
    local_authority: tuple[str, str] | None,
    involvements: Iterable[Any],
    carer_rows: Iterable[Any],
) -> dict[str, Any]:
    """``full_record`` of a child whose LA (code, name), involvements and carers (as the
    repository's ``involvements`` and ``carers`` give them) the caller has read already."""
    cipher = call.ctx.crypto.cipher
    identity = child_identity(call.ctx.crypto, child)
    today = call.ctx.clock.now()
    services = []
    flags: set[str] = set()
    for inv in involvements:
        active = inv.inv_ended_on is None or inv.inv_ended_on >= today.date()
        kind = inv.organisation_kind
        if active and kind == OrganisationKind.CHILDRENS_SOCIAL_CARE:
            flags.add("social_care_involved")
        if active and kind == OrganisationKind.YOUTH_OFFENDING_TEAM:
            flags.add("youth_offending_involved")
        ended_on = inv.inv_ended_on
        caf_on = inv.inv_caf_assessment_on
        services.append(
            {
                "involvement_id": inv.inv_id,
                "organisation": {
                    "id": inv.inv_organisation_id,
                    "name": inv.organisation_name,
                    "kind": kind,
                    "phone": inv.organisation_phone,
                },
                "practitioner_id": inv.inv_practitioner_id,
                "started_on": inv.inv_started_on.isoformat(),
                "ended_on": ended_on.isoformat() if ended_on else None,
                "lead_professional": inv.inv_is_lead_professional,
                "caf_assessment_on": caf_on.isoformat() if caf_on else None,
                "sensitive": inv.inv_sensitive,
                # Consent standing now; given at registration; the involvement over.
                "_consent": inv.inv_consent_recorded and inv.inv_consent_withdrawn_at is None,
                "_consent_given": inv.inv_consent_recorded,
                "_ended": ended_on is not None and ended_on <= today.date(),
            }
        )
    carers = []
    for carer in carer_rows:
        carers.append(
            {
                "carer_id": carer.carer_id,
                "given_name": cipher.decrypt(carer.carer_given_name_enc, "carers.given_name"),
                "family_name": cipher.decrypt(carer.carer_family_name_enc, "carers.family_name"),
                "relationship": carer.carer_relationship,
                "parental_responsibility": carer.carer_parental_responsibility,
                "phone": cipher.decrypt(carer.carer_phone_enc, "carers.phone")
                if carer.carer_phone_enc
                else None,
                "email": cipher.decrypt(carer.carer_email_enc, "carers.email")
                if carer.carer_email_enc
                else None,
            }
        )
    return {
        "child_id": child.id,
        "given_name": identity["given_name"],
        "family_name": identity["family_name"],
        "gender": child.gender,
        "date_of_birth": identity["date_of_birth"],
        "age": age_on(identity["date_of_birth"], today),
        "local_authority": {"code": local_authority[0], "name": local_authority[1]}
        if local_authority
        else None,
        "shielded": child.shielded,
        "household_shielded": child.household_shielded,
        "archived": child.archived_at is not None,
        "deceased": child.deceased_recorded_at is not None,
        "address": child_address(call.ctx.crypto, child),
        "carers": carers,
        "services": services,
        "warning_flags": sorted(flags),
    }


def limited_record(
    call: Call, child: Child, local_authority: tuple[str, str] | None
) -> dict[str, Any]:
    """The part of ``full_record`` a limited view can show (``redact``): names, gender, age,
    LA and shield, without reading services or carers."""
    identity = child_identity(call.ctx.crypto, child)
    return {
        "child_id": child.id,
        "given_name": identity["given_name"],
        "family_name": identity["family_name"],
        "gender": child.gender,
        "age": age_on(identity["date_of_birth"], call.ctx.clock.now()),
        "local_authority": {"code": local_authority[0], "name": local_authority[1]}
        if local_authority
        else None,
        "shielded": child.shielded,
    }


def _service_shown(service: dict[str, Any], principal: Principal, rules: Rules | None) -> bool:
    """Whether a full view shows ``service`` (one involvement) to ``principal``.

    The service itself always sees it. Anyone else sees a sensitive service only while the young
    person's consent stands; an ended involvement only the data manager (who manages the
    record) still sees: who worked with a child in the past is not another service's business.
    """
    if service["organisation"]["id"] == principal.organisation_id:
        return True
    if rules is not None and not rules.consent_withdrawal:
        # Switched off (development only): consent never recorded still hides a sensitive
        # service, but a withdrawal or an end changes nothing.
        return not service["sensitive"] or service["_consent_given"]
    if service["sensitive"] and not service["_consent"]:
        return False
    return not service["_ended"] or principal.is_data_manager


def redact(
    full: dict[str, Any], principal: Principal, decision: Decision, rules: Rules | None = None
) -> dict[str, Any]:
    """Cut a full record down to what ``decision`` allows: the one place fields are withheld."""
    la = full["local_authority"] or {"name": "the owning local authority"}
    if decision.level is ViewLevel.LIMITED and decision.shielded:
        # No LA, and "shielded" for a shielded child's household too, so the reader cannot
        # tell the shielded child's sibling from the shielded child (and so learn of one).
        return {
            "child_id": full["child_id"],
            "given_name": full["given_name"],
            "family_name": full["family_name"],
            "gender": full["gender"],
            "age": full["age"],
            "local_authority": None,
            "shielded": True,
            "contact": SHIELDED_CONTACT,
        }
    if decision.level is ViewLevel.LIMITED:
        return {
            "child_id": full["child_id"],
            "given_name": full["given_name"],
            "family_name": full["family_name"],
            "gender": full["gender"],
            "age": full["age"],
            "local_authority": full["local_authority"],
            "shielded": full["shielded"],
            "contact": OTHER_LA_CONTACT.format(la=la["name"]),
        }
    shown = dict(full)
    # Sensitive services are seen by that service, or by others only with recorded consent.
    shown["services"] = [
        {k: v for k, v in service.items() if not k.startswith("_")}
        for service in full["services"]
        if _service_shown(service, principal, rules)
    ]
    return shown


def view(
    call: Call, principal: Principal, raw_child_id: str, reason_header: str | None
) -> dict[str, Any]:
    """Return the record ``principal`` may see, audit the view, and alert on an override."""
    limiter = Limiter(call, principal)
    try:
        child_id = parse_child_id(raw_child_id)
    except InvalidInput:
        limiter.after_view_miss()
        raise
    reason, reason_text = parse_reason(reason_header)
    now = call.ctx.clock.now()
    settings = call.ctx.settings
    claims_count = not enabled(settings, Control.CLAIM_CONFIRMATION)
    # One round trip: the child, its LA, the honeytoken flag and the caller's standing.
    read = repository.read_for_view(
        call.db, child_id, principal, now.date(), claims_count=claims_count
    )
    child = read.child if read else None
    rules = Rules.of(settings)
    own_la = child is not None and child.local_authority_id == principal.local_authority_id
    if child is None or (
        child.closed and rules.need_to_know and not (principal.is_data_manager and own_la)
    ):
        limiter.after_view_miss()
        raise NotFound("No child with that identifier.", code="child_not_found")
    assert read is not None
    limiter.before_view(child.id)
    involved, confirmed_at = read.involved, read.confirmed_since
    settled = claims_count or (
        confirmed_at is not None
        and confirmed_at <= now - timedelta(days=settings.involvement_settling_days)
    )
    decision = decide(
        principal, child, involved=involved, reason=reason, rules=rules, settled=settled
    )
    # A limited view shows no services or carers: they are read only for a full one.
    record = (
        full_record_in(call, child, read.local_authority, read.services, read.carers)
        if decision.level is ViewLevel.FULL
        else limited_record(call, child, read.local_authority)
    )
    shown = redact(record, principal, decision, rules)
    details: dict[str, Any] = {"level": decision.level.value, "fields": sorted(shown)}
    if "services" in shown:
        details["services_shown"] = [s["involvement_id"] for s in shown["services"]]
    if reason_text:
        details["reason_text_enc"] = sealed_text(call.ctx, reason_text, "audit.reason_text")
    tag = EventTag.CHILD_RECORD_OVERRIDE if decision.override else EventTag.CHILD_RECORD_VIEWED
    event_id = None
    if enabled(call.ctx.settings, Control.AUDIT_TRAIL):
        event_id = call.audit(
            tag,
            principal=principal,
            child_id=child.id,
            reason_code=reason.value,
            relationship=decision.relationship.value,
            details=details,
        )
    # Alerts are raised inside the request, before the answer leaves: no delay to detection.
    alerts: list[tuple[AlertKind, AlertSeverity, str]] = []
    if enabled(call.ctx.settings, Control.CANARY_ALERTS) and read.canary:
        alerts.append(
            (
                AlertKind.CANARY_ACCESS,
                AlertSeverity.CRITICAL,
                "A honeytoken record no legitimate workflow touches was opened",
            )
        )
    if decision.override and enabled(call.ctx.settings, Control.OVERRIDE_ALERTS):
        alerts.append(
            (AlertKind.OVERRIDE, AlertSeverity.HIGH, "Emergency override used to open a record")
        )
    for kind, severity, summary in alerts:
        raise_alert(
            call,
            principal,
            kind=kind,
            severity=severity,
            local_authority_id=child.local_authority_id,
            child_id=child.id,
            audit_event_id=event_id,
            summary=summary,
        )
    warning = OVERRIDE_WARNING if decision.override else None
    shown["access"] = {
        "relationship": decision.relationship.value,
        "level": decision.level.value,
        "reason": reason.value,
        "warning": warning,
    }
    return shown


def _owned(call: Call, principal: Principal, raw_child_id: str, *, lock: bool = False) -> Child:
    """A child of the caller's own LA, or not found (never confirming another LA's child);
    ``lock`` holds its row to the end of the transaction."""
    child = repository.get(call.db, parse_child_id(raw_child_id), lock=lock)
    if child is None or child.local_authority_id != principal.local_authority_id:
        raise NotFound(
            "No child with that identifier in your local authority.", code="child_not_found"
        )
    return child


def check_birth(call: Call, date_of_birth: dt.date | None) -> None:
    """Refuse a date of birth in the future, or further back than a registered child can be
    (``registration_max_age_years``: archived at 18, purged six years on)."""
    today = call.ctx.clock.now().date()
    years = call.ctx.settings.registration_max_age_years
    within(
        date_of_birth,
        "date_of_birth",
        earliest=(years_before(today, years), f"{years} years ago"),
        latest=(today, "today"),
    )


def create(call: Call, principal: Principal, body: ChildCreate) -> Child:
    check_birth(call, body.date_of_birth)
    now = call.ctx.clock.now()
    child_id = identifiers.new_child_id()
    while repository.exists_id(call.db, child_id):
        child_id = identifiers.new_child_id()
    child = Child(
        id=child_id,
        local_authority_id=principal.local_authority_id,
        gender=body.gender.value,
        shielded=False,
        created_at=start_of_day(now),
        updated_at=start_of_day(now),
        **child_columns(
            call.ctx.crypto,
            given_name=body.given_name,
            family_name=body.family_name,
            date_of_birth=body.date_of_birth.isoformat(),
            address=body.address.model_dump(),
        ),
    )
    call.db.add(child)
    call.db.flush()
    refresh_households(call.db, call.ctx.crypto, [child])
    call.audit(
        EventTag.CHILD_CREATED,
        principal=principal,
        child_id=child.id,
    )
    return child


def correct(call: Call, principal: Principal, raw_child_id: str, body: ChildCorrect) -> Child:
    """Apply a rectification, or record a death; the trail names the fields changed, never
    their values. A deceased record is then hidden as an archived one is."""
    child = _owned(call, principal, raw_child_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    deceased = changes.pop("deceased", False)
    if not changes and not deceased:
        raise InvalidInput("Nothing to correct.", code="nothing_to_correct")
    check_birth(call, body.date_of_birth)
    now = call.ctx.clock.now()
    if deceased and child.deceased_recorded_at is None:
        child.deceased_recorded_at = now
        child.updated_at = start_of_day(now)
        call.audit(EventTag.CHILD_DECEASED_RECORDED, principal=principal, child_id=child.id)
    if not changes:
        return child
    current: dict[str, Any] = {
        **child_identity(call.ctx.crypto, child),
        "address": child_address(call.ctx.crypto, child),
    }
    # The household at the old address may lose its shielded member, or this child its own.
    before = household(call.db, call.ctx.crypto, child) if "address" in changes else []
    for key in ("given_name", "family_name", "address"):
        if key in changes:
            current[key] = changes[key]
    if "date_of_birth" in changes:
        current["date_of_birth"] = changes["date_of_birth"].isoformat()
    for column, value in child_columns(call.ctx.crypto, **current).items():
        setattr(child, column, value)
    if "gender" in changes:
        child.gender = changes["gender"].value
    child.updated_at = start_of_day(now)
    if "address" in changes:
        call.db.flush()
        refresh_households(call.db, call.ctx.crypto, [child, *before])
    call.audit(
        EventTag.CHILD_CORRECTED,
        principal=principal,
        child_id=child.id,
        details={"fields": sorted(changes)},
    )
    return child


def set_shield(
    call: Call,
    principal: Principal,
    raw_child_id: str,
    shielded: bool,
    note: str | None,
    *,
    agreed_by: int | None = None,
) -> Child:
    """Shield a child at once, or lift a shield: that exposes a hidden address, so it waits for
    a second data manager of the LA (``approve_unshield``) unless ``agreed_by`` names the other
    data manager who already agreed to it (the requester of an approved unshield or change
    request). The child's row is locked first: of two decisions at once (an unshield asked
    twice, a shield and an approval) the second reads what the first left."""
    child = _owned(call, principal, raw_child_id, lock=True)
    if (
        not shielded
        and child.shielded
        and (agreed_by is None or agreed_by == principal.user_id)
        and enabled(call.ctx.settings, Control.UNSHIELD_TWO_PERSON)
    ):
        _request_unshield(call, principal, child, note)
        return child
    child.shielded = shielded
    child.updated_at = start_of_day(call.ctx.clock.now())
    call.db.flush()
    refresh_households(call.db, call.ctx.crypto, [child])
    details: dict[str, Any] = {}
    if note:
        details["decision_note_enc"] = sealed_text(call.ctx, note, "audit.decision_note")
    if agreed_by is not None and not shielded:
        details["agreed_by"] = agreed_by
    tag = EventTag.CHILD_SHIELDED if shielded else EventTag.CHILD_UNSHIELDED
    call.audit(
        tag,
        principal=principal,
        child_id=child.id,
        details=details,
    )
    if shielded:
        _withdraw_unshield(call, principal, child)
    return child


def same_address(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """The same home: lines and postcode compared without case, spacing or punctuation (the
    town is left out, as the same street is often given under a neighbouring town)."""

    def key(address: dict[str, Any]) -> tuple[str, ...]:
        return tuple(
            "".join(ch for ch in str(address.get(part) or "").lower() if ch.isalnum())
            for part in ("line1", "line2", "postcode")
        )

    return key(first) == key(second)


def household(db: Session, crypto: Crypto, child: Child) -> list[Child]:
    """The other children sharing ``child``'s address or one of its carers.

    Addresses are encrypted with a random nonce, so the postcode's blind index finds the
    candidates and their decrypted addresses are compared here.
    """
    home = child_address(crypto, child)
    members = {
        other.id: other
        for other in repository.at_postcode(db, child.postcode_bidx, other_than=child.id)
        if same_address(home, child_address(crypto, other))
    }
    for other in repository.sharing_a_carer(db, child.id):
        members[other.id] = other
    return [members[key] for key in sorted(members)]


def refresh_households(db: Session, crypto: Crypto, changed: Iterable[Child]) -> None:
    """Recompute ``household_shielded`` for the changed children and everyone in their
    households: called when a shield, an address or a carer link changes (flushed first)."""
    members: dict[str, Child] = {}
    for child in changed:
        members[child.id] = child
        for other in household(db, crypto, child):
            members[other.id] = other
    for member in members.values():
        member.household_shielded = any(other.shielded for other in household(db, crypto, member))


def refresh_all_households(db: Session, crypto: Crypto) -> int:
    """Recompute every shielded child's household (after a bulk load or the migration that
    added the flag); returns how many shielded children were visited."""
    seeds = [
        child
        for child_id in repository.shielded_ids(db)
        if (child := repository.get(db, child_id)) is not None
    ]
    refresh_households(db, crypto, seeds)
    return len(seeds)


def _request_unshield(call: Call, principal: Principal, child: Child, note: str | None) -> None:
    """Record the first data manager's unshield and alert the LA's team; the shield stays.

    A second request while one is pending joins it: the first requester still cannot approve.
    """
    if repository.pending_unshield(call.db, child.id) is not None:
        return
    now = call.ctx.clock.now()
    request = UnshieldRequest(
        child_id=child.id,
        local_authority_id=child.local_authority_id,
        status=UnshieldStatus.PENDING.value,
        requested_by=principal.user_id,
        requested_at=now,
    )
    call.db.add(request)
    call.db.flush()
    details: dict[str, Any] = {"unshield_request_id": request.id}
    if note:
        details["decision_note_enc"] = sealed_text(call.ctx, note, "audit.decision_note")
    event_id = call.audit(
        EventTag.CHILD_UNSHIELD_REQUESTED, principal=principal, child_id=child.id, details=details
    )
    alert = raise_alert(
        call,
        principal,
        kind=AlertKind.UNSHIELD_REQUESTED,
        severity=AlertSeverity.HIGH,
        local_authority_id=child.local_authority_id,
        child_id=child.id,
        audit_event_id=event_id,
        summary="A data manager asked to lift a shield; another data manager must approve it",
        details={"unshield_request_id": request.id},
    )
    request.alert_id = alert.id


def _withdraw_unshield(call: Call, principal: Principal, child: Child) -> None:
    """Shielding again withdraws any pending unshield: nobody can approve it later by surprise."""
    pending = repository.pending_unshield(call.db, child.id)
    if pending is None:
        return
    now = call.ctx.clock.now()
    if repository.close_unshield(
        call.db, pending.id, status=UnshieldStatus.WITHDRAWN, by=principal.user_id, at=now
    ):
        call.audit(
            EventTag.CHILD_UNSHIELD_WITHDRAWN,
            principal=principal,
            child_id=child.id,
            details={"unshield_request_id": pending.id},
        )


def approve_unshield(
    call: Call, principal: Principal, raw_child_id: str, note: str | None
) -> Child:
    """The second data manager of the LA approves a pending unshield, which lifts the shield;
    the data manager who asked for it never approves it."""
    child = _owned(call, principal, raw_child_id, lock=True)
    pending = repository.pending_unshield(call.db, child.id)
    if pending is None:
        raise Conflict("No unshield is waiting for approval.", code="no_pending_unshield")
    if pending.requested_by == principal.user_id:
        raise Forbidden(
            "An unshield is approved by a data manager other than the one who asked for it.",
            code="own_unshield_request",
        )
    now = call.ctx.clock.now()
    if not repository.close_unshield(
        call.db, pending.id, status=UnshieldStatus.APPROVED, by=principal.user_id, at=now
    ):
        raise Conflict("No unshield is waiting for approval.", code="no_pending_unshield")
    call.audit(
        EventTag.CHILD_UNSHIELD_APPROVED,
        principal=principal,
        child_id=child.id,
        details={"unshield_request_id": pending.id, "requested_by": pending.requested_by},
    )
    return set_shield(call, principal, child.id, False, note, agreed_by=pending.requested_by)


def shield_outcome(call: Call, child: Child) -> ShieldOutcome:
    """Where the child's shield stands, with any unshield awaiting a second data manager."""
    pending = repository.pending_unshield(call.db, child.id)
    return ShieldOutcome(
        child_id=child.id,
        shielded=child.shielded,
        pending_unshield=PendingUnshield(
            id=pending.id,
            requested_by=pending.requested_by,
            requested_at=pending.requested_at,
            alert_id=pending.alert_id,
        )
        if pending is not None
        else None,
    )
