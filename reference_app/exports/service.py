"""Business rules for exports: the one bulk read path out of the registry.

An LA data manager requests a scope of the LA's children with a justification, a recipient and
the recipient's age public key (``age1...``); the row count is taken there and then, and a
scope above ``export_max_rows`` is refused. A different data manager of the same LA approves or
refuses; approval registers the export's watermark children. The requester then takes a
short-lived signed link and downloads the file once, before the approval expires: JSON lines,
sealed in the age format to the recipient's key (``age -d -i key.txt`` opens it). Any attempt
outside these rules is refused, recorded as ``export:violation`` and alerted
(``export_violation``) to the export's LA.

Each rule has a control switch (``reference_app.kit.controls``) a development build may turn
off to show that the harness notices: ``export_two_person``, ``export_size_cap``,
``export_link_checks``, ``export_watermark`` and ``export_encryption``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pyrage.x25519 import Recipient
from sqlalchemy.orm import Session

from reference_app.access.principal import Principal
from reference_app.alerts.models import AlertKind, AlertSeverity, Canary
from reference_app.alerts.service import raise_alert
from reference_app.audit.service import sealed_text
from reference_app.audit.tags import EventTag, Outcome
from reference_app.children.models import Child
from reference_app.children.service import child_address, child_columns, child_identity
from reference_app.exports import links, repository, watermark
from reference_app.exports.models import ExportRequest, ExportStatus, ExportWatermark, ScopeKind
from reference_app.exports.schemas import MAX_AGE, ExportCreate, ExportLink, ExportOut, ExportScope
from reference_app.kit import identifiers
from reference_app.kit.agefile import KeyFileError, fingerprint, load_recipient, seal
from reference_app.kit.clock import start_of_day
from reference_app.kit.controls import Control, enabled
from reference_app.kit.crypto import Crypto
from reference_app.kit.errors import AppError, Conflict, Forbidden, Gone, InvalidInput, NotFound
from reference_app.kit.http import Call
from reference_app.practitioners import repository as practitioner_repository

DOWNLOAD_PATH = "/api/v1/exports/download/"
LABEL_PREFIX = b"contactpoint-export/v1:"  # the label of an export in the old envelope format
_JUSTIFICATION = "export_requests.justification"
_RECIPIENT = "export_requests.recipient_name"
# A watermark child is born in the scope's age range; without one, any age a registered child has.
_WATERMARK_AGES = (0, 17)


class Violation(StrEnum):
    """A rule of the export workflow broken: the error code answered and the alert's cause."""

    ALREADY_DOWNLOADED = "export_already_downloaded"
    EXPIRED = "export_expired"
    LINK_EXPIRED = "export_link_expired"
    LINK_INVALID = "export_link_invalid"
    APPROVER_NOT_INDEPENDENT = "export_approver_not_independent"
    NOT_APPROVED = "export_not_approved"
    NOT_REQUESTER = "export_not_requester"
    REFUSED = "export_refused"
    SELF_APPROVAL = "export_self_approval"
    TOO_LARGE = "export_too_large"


_ANSWERS: dict[Violation, tuple[type[AppError], str]] = {
    Violation.ALREADY_DOWNLOADED: (Gone, "This export has been downloaded; it leaves only once."),
    Violation.EXPIRED: (Gone, "This export has expired."),
    Violation.LINK_EXPIRED: (Gone, "This download link has expired; ask for a new one."),
    Violation.LINK_INVALID: (Forbidden, "This download link is not valid."),
    Violation.APPROVER_NOT_INDEPENDENT: (
        Forbidden,
        "Your account or role is too new, or was given by the requester: another, established "
        "data manager of your local authority must approve this export.",
    ),
    Violation.NOT_APPROVED: (Forbidden, "This export has not been approved."),
    Violation.NOT_REQUESTER: (Forbidden, "Only the data manager who requested it may download it."),
    Violation.REFUSED: (Forbidden, "This export was refused."),
    Violation.SELF_APPROVAL: (
        Forbidden,
        "You requested this export: another data manager of your local authority must approve it.",
    ),
    Violation.TOO_LARGE: (
        InvalidInput,
        "The scope holds more children than one export may; narrow it.",
    ),
}
_CRITICAL = frozenset({Violation.LINK_INVALID, Violation.NOT_REQUESTER})


def _violation(
    call: Call,
    principal: Principal,
    rule: Violation,
    *,
    export: ExportRequest | None,
    details: dict[str, Any] | None = None,
) -> AppError:
    """Record and alert a broken rule; return the error to raise (routes keep the record)."""
    event_id = call.audit(
        EventTag.EXPORT_VIOLATION,
        principal=principal,
        outcome=Outcome.DENIED,
        details={"export_id": export.id if export else None, "rule": rule.value, **(details or {})},
    )
    raise_alert(
        call,
        principal,
        kind=AlertKind.EXPORT_VIOLATION,
        severity=AlertSeverity.CRITICAL if rule in _CRITICAL else AlertSeverity.HIGH,
        local_authority_id=export.local_authority_id if export else principal.local_authority_id,
        child_id=None,
        audit_event_id=event_id,
        summary=f"Export rule broken: {rule.value}" + (f" (export {export.id})" if export else ""),
    )
    error_type, message = _ANSWERS[rule]
    error = error_type(message, code=rule.value)
    error.audited = True
    return error


def birth_dates(today: date, min_age: int, max_age: int) -> list[date]:
    """Every date of birth that makes a child between ``min_age`` and ``max_age`` on ``today``."""
    found = []
    day = today - timedelta(days=366 * (max_age + 1) + 1)
    while day <= today:
        age = today.year - day.year - ((today.month, today.day) < (day.month, day.day))
        if min_age <= age <= max_age:
            found.append(day)
        day += timedelta(days=1)
    return found


def _scope(call: Call, export: ExportRequest, today: date) -> repository.Scope:
    dob_index = None
    if export.scope_min_age is not None or export.scope_max_age is not None:
        low = export.scope_min_age or 0
        high = MAX_AGE if export.scope_max_age is None else export.scope_max_age
        index = call.ctx.crypto.index
        dob_index = [index.date(day.isoformat()) for day in birth_dates(today, low, high)]
    return repository.Scope(
        local_authority_id=export.local_authority_id,
        organisation_id=export.scope_organisation_id,
        date_of_birth_bidx=dob_index,
        today=today,
    )


def _effective_status(export: ExportRequest, now: datetime) -> ExportStatus:
    status = ExportStatus(export.status)
    live = status in (ExportStatus.REQUESTED, ExportStatus.APPROVED)
    return ExportStatus.EXPIRED if live and now >= export.expires_at else status


def describe(call: Call, export: ExportRequest) -> ExportOut:
    """The export as its LA's data managers see it (justification and recipient decrypted)."""
    cipher = call.ctx.crypto.cipher
    return ExportOut(
        id=export.id,
        status=_effective_status(export, call.ctx.clock.now()).value,
        scope=ExportScope(
            kind=ScopeKind(export.scope_kind),
            organisation_id=export.scope_organisation_id,
            min_age=export.scope_min_age,
            max_age=export.scope_max_age,
        ),
        justification=cipher.decrypt(export.justification_enc, _JUSTIFICATION),
        recipient_name=cipher.decrypt(export.recipient_name_enc, _RECIPIENT),
        recipient_fingerprint=export.recipient_fingerprint,
        row_count=export.row_count,
        requested_by=export.requested_by,
        requested_at=export.requested_at,
        decided_by=export.decided_by,
        decided_at=export.decided_at,
        expires_at=export.expires_at,
        downloaded_at=export.downloaded_at,
        downloaded_rows=export.downloaded_rows,
        download_sha256=export.download_sha256,
    )


def request_export(call: Call, principal: Principal, body: ExportCreate) -> ExportRequest:
    """Record a request for a scope of the caller's own LA, refusing one above the size cap."""
    try:
        recipient = load_recipient(body.recipient_public_key)
    except KeyFileError as exc:
        raise InvalidInput(
            "The recipient key must be one age X25519 public key (age1...).",
            code="invalid_recipient_key",
        ) from exc
    scope = body.scope
    if scope.organisation_id is not None:
        org = repository.organisation(call.db, scope.organisation_id)
        if org is None or org.local_authority_id != principal.local_authority_id:
            raise InvalidInput(
                "The organisation is not one of your local authority's.",
                code="export_scope_invalid",
            )
    now = call.ctx.clock.now()
    cipher = call.ctx.crypto.cipher
    export = ExportRequest(
        local_authority_id=principal.local_authority_id,
        status=ExportStatus.REQUESTED.value,
        scope_kind=scope.kind.value,
        scope_organisation_id=scope.organisation_id,
        scope_min_age=scope.min_age,
        scope_max_age=scope.max_age,
        justification_enc=cipher.encrypt(body.justification, _JUSTIFICATION),
        recipient_name_enc=cipher.encrypt(body.recipient_name, _RECIPIENT),
        recipient_public_key=f"{recipient}\n",
        recipient_fingerprint=fingerprint(recipient),
        row_count=0,
        requested_by=principal.user_id,
        requested_at=now,
        expires_at=now + timedelta(seconds=call.ctx.settings.export_ttl_seconds),
    )
    rows = repository.count_scope(call.db, _scope(call, export, now.date()))
    cap = call.ctx.settings.export_max_rows
    if rows > cap and enabled(call.ctx.settings, Control.EXPORT_SIZE_CAP):
        raise _violation(
            call, principal, Violation.TOO_LARGE, export=None, details={"rows": rows, "cap": cap}
        )
    export.row_count = rows
    call.db.add(export)
    call.db.flush()
    call.audit(
        EventTag.EXPORT_REQUESTED,
        principal=principal,
        details={
            "export_id": export.id,
            "scope": scope.model_dump(mode="json"),
            "rows": rows,
            "cap": cap,
            "recipient_fingerprint": export.recipient_fingerprint,
            "justification_enc": sealed_text(call.ctx, body.justification, "audit.justification"),
        },
    )
    return export


def list_exports(call: Call, principal: Principal, limit: int) -> Sequence[ExportRequest]:
    return repository.list_for_la(call.db, principal.local_authority_id, limit)


def own(call: Call, principal: Principal, export_id: int) -> ExportRequest:
    """An export of the caller's own LA, or not found (never confirming another LA's)."""
    export = repository.get(call.db, export_id)
    if export is None or export.local_authority_id != principal.local_authority_id:
        raise NotFound("No export with that id in your local authority.", code="export_not_found")
    return export


def _pending(export: ExportRequest, now: datetime) -> None:
    if export.status != ExportStatus.REQUESTED:
        raise Conflict(
            f"This export is {export.status}, not awaiting a decision.", code="export_not_pending"
        )
    if now >= export.expires_at:
        raise Conflict("This request has expired; request the export again.", code="export_expired")


def _decide(
    call: Call,
    principal: Principal,
    export: ExportRequest,
    outcome: ExportStatus,
    now: datetime,
    **values: Any,
) -> None:
    """Record the decision on a pending request, unless another decision came first."""
    if not repository.transition(
        call.db,
        export,
        ExportStatus.REQUESTED.value,
        status=outcome.value,
        decided_by=principal.user_id,
        decided_at=now,
        **values,
    ):
        raise Conflict("Another decision on this export came first.", code="export_not_pending")


def _approver_problem(
    call: Call, principal: Principal, export: ExportRequest, now: datetime
) -> str | None:
    """Why the caller may not be the second person on ``export``, or None.

    An approver made or re-roled yesterday, or by the requester, is not a second person: an
    administrator could make one (a sock puppet) and a requester could make their own.
    """
    approver = practitioner_repository.by_id(call.db, principal.user_id)
    if approver is None:
        return "unknown_approver"
    since = now - timedelta(days=call.ctx.settings.approver_min_account_age_days)
    if approver.created_at > since:
        return "account_too_new"
    if approver.role_granted_at is not None and approver.role_granted_at > since:
        return "role_too_new"
    made_by = {approver.created_by, approver.role_granted_by, approver.role_confirmed_by}
    if export.requested_by in made_by:
        return "made_by_requester"
    return None


def approve(call: Call, principal: Principal, export_id: int) -> ExportRequest:
    """Approve another data manager's request and register its watermark children."""
    export = own(call, principal, export_id)
    same_person = export.requested_by == principal.user_id
    if same_person and enabled(call.ctx.settings, Control.EXPORT_TWO_PERSON):
        raise _violation(call, principal, Violation.SELF_APPROVAL, export=export)
    now = call.ctx.clock.now()
    if enabled(call.ctx.settings, Control.APPROVER_INDEPENDENCE):
        problem = _approver_problem(call, principal, export, now)
        if problem is not None:
            raise _violation(
                call,
                principal,
                Violation.APPROVER_NOT_INDEPENDENT,
                export=export,
                details={"cause": problem},
            )
    _pending(export, now)
    ttl = timedelta(seconds=call.ctx.settings.export_ttl_seconds)
    _decide(call, principal, export, ExportStatus.APPROVED, now, expires_at=now + ttl)
    marks = 0
    if enabled(call.ctx.settings, Control.EXPORT_WATERMARK):
        marks = _register_watermarks(call, export, now)
    call.audit(
        EventTag.EXPORT_APPROVED,
        principal=principal,
        details={
            "export_id": export.id,
            "requested_by": export.requested_by,
            "same_person": same_person,
            # The count only: the trail is readable by the requester, the ids would unmask them.
            "watermark_rows": marks,
            "expires_at": export.expires_at.isoformat(),
        },
    )
    return export


def refuse(call: Call, principal: Principal, export_id: int, note: str | None) -> ExportRequest:
    """Refuse a request; the requester may withdraw their own (it exports nothing)."""
    export = own(call, principal, export_id)
    now = call.ctx.clock.now()
    _pending(export, now)
    _decide(call, principal, export, ExportStatus.REFUSED, now)
    details: dict[str, Any] = {
        "export_id": export.id,
        "withdrawn": export.requested_by == principal.user_id,
    }
    if note:
        details["decision_note_enc"] = sealed_text(call.ctx, note, "audit.decision_note")
    call.audit(EventTag.EXPORT_REFUSED, principal=principal, details=details)
    return export


def _register_watermarks(call: Call, export: ExportRequest, now: datetime) -> int:
    """Make the export's fictional children: registered, canaries, and mapped to the export."""
    db, crypto = call.db, call.ctx.crypto
    key = call.ctx.keyring.subkey(watermark.PRF_PURPOSE)
    ids = repository.scope_ids(db, _scope(call, export, now.date()))
    picked = [ids[i] for i in watermark.neighbour_offsets(key, export.id, len(ids))]
    neighbours = []
    for child in repository.children_by_id(db, picked):
        address = child_address(crypto, child)
        neighbours.append(
            watermark.Neighbour(
                family_name=child_identity(crypto, child)["family_name"],
                town=str(address.get("town") or ""),
                postcode=str(address.get("postcode") or ""),
            )
        )
    if export.scope_min_age is None and export.scope_max_age is None:
        low, high = _WATERMARK_AGES
    else:
        low = export.scope_min_age or 0
        high = (
            max(low, _WATERMARK_AGES[1]) if export.scope_max_age is None else export.scope_max_age
        )
    la = repository.local_authority(db, export.local_authority_id)
    made = watermark.generate(
        key,
        export.id,
        birth_dates=birth_dates(now.date(), low, high),
        neighbours=neighbours,
        fallback_town=la.name.split(",")[0] if la else "",
        taken=lambda child_id: repository.child_exists(db, child_id),
    )
    for row in made:
        db.add(
            Child(
                id=row.child_id,
                local_authority_id=export.local_authority_id,
                gender=row.gender,
                shielded=False,
                archived_at=None,
                created_at=start_of_day(now),
                updated_at=start_of_day(now),
                **child_columns(
                    crypto,
                    given_name=row.given_name,
                    family_name=row.family_name,
                    date_of_birth=row.date_of_birth,
                    address=row.address,
                ),
            )
        )
    db.flush()
    for ordinal, row in enumerate(made):
        db.add(Canary(child_id=row.child_id, registered_at=now))
        db.add(ExportWatermark(child_id=row.child_id, export_id=export.id, ordinal=ordinal))
    db.flush()
    return len(made)


def _check_downloadable(
    call: Call, principal: Principal, export: ExportRequest, now: datetime
) -> None:
    """The rules for taking a link and for downloading: who, which state, and when."""
    checks = enabled(call.ctx.settings, Control.EXPORT_LINK_CHECKS)
    if checks and principal.user_id != export.requested_by:
        raise _violation(call, principal, Violation.NOT_REQUESTER, export=export)
    state = {
        ExportStatus.REFUSED: Violation.REFUSED,
        ExportStatus.REQUESTED: Violation.NOT_APPROVED,
        ExportStatus.DOWNLOADED: Violation.ALREADY_DOWNLOADED,
    }.get(ExportStatus(export.status))
    if state is not None:
        raise _violation(call, principal, state, export=export)
    if checks and now >= export.expires_at:
        raise _violation(call, principal, Violation.EXPIRED, export=export)


def issue_link(call: Call, principal: Principal, export_id: int) -> ExportLink:
    """A short-lived download link for the requester of an approved, live export."""
    export = own(call, principal, export_id)
    now = call.ctx.clock.now()
    _check_downloadable(call, principal, export, now)
    expires = min(
        now + timedelta(seconds=call.ctx.settings.export_link_ttl_seconds), export.expires_at
    )
    token = links.issue(
        call.ctx.keyring, export_id=export.id, user_id=principal.user_id, expires_at=expires
    )
    call.audit(
        EventTag.EXPORT_LINK_ISSUED,
        principal=principal,
        details={"export_id": export.id, "expires_at": expires.isoformat()},
    )
    return ExportLink(token=token, url=DOWNLOAD_PATH + token, expires_at=expires)


@dataclass(frozen=True, slots=True)
class Download:
    content: bytes
    filename: str


def _sealing_key(export: ExportRequest) -> Recipient:
    """The recipient's age key; a request kept from before the age format had a PEM key."""
    try:
        return load_recipient(export.recipient_public_key)
    except KeyFileError:
        raise Conflict(
            "This export was requested with a recipient key in the old PEM form, which exports "
            "no longer use: request it again with the recipient's age public key (age1...).",
            code="export_recipient_key_outdated",
        ) from None


def export_row(crypto: Crypto, child: Child, la_code: str) -> dict[str, Any]:
    """One line of an export file; watermark children go through here too, so they match."""
    identity = child_identity(crypto, child)
    return {
        "child_id": child.id,
        "given_name": identity["given_name"],
        "family_name": identity["family_name"],
        "date_of_birth": identity["date_of_birth"],
        "gender": child.gender,
        "address": child_address(crypto, child),
        "la_code": la_code,
    }


def download(call: Call, principal: Principal, token: str) -> Download:
    """Serve an approved export once, to its requester, through a valid link."""
    try:
        claims = links.read(token)
    except links.LinkError:
        raise _violation(call, principal, Violation.LINK_INVALID, export=None) from None
    export = repository.get(call.db, claims.export_id)
    if export is None:
        raise _violation(call, principal, Violation.LINK_INVALID, export=None)
    now = call.ctx.clock.now()
    if enabled(call.ctx.settings, Control.EXPORT_LINK_CHECKS):
        if not links.signed(call.ctx.keyring, token):
            raise _violation(call, principal, Violation.LINK_INVALID, export=export)
        if claims.user_id != principal.user_id:
            raise _violation(call, principal, Violation.NOT_REQUESTER, export=export)
        if now >= claims.expires_at:
            raise _violation(call, principal, Violation.LINK_EXPIRED, export=export)
    _check_downloadable(call, principal, export, now)
    children = repository.scope_children(call.db, _scope(call, export, now.date()))
    cap = call.ctx.settings.export_max_rows
    if len(children) > cap and enabled(call.ctx.settings, Control.EXPORT_SIZE_CAP):
        # The scope grew past the cap after the request was approved.
        raise _violation(
            call,
            principal,
            Violation.TOO_LARGE,
            export=export,
            details={"rows": len(children), "cap": cap},
        )
    marks = repository.watermark_children(call.db, export.id)
    la = repository.local_authority(call.db, export.local_authority_id)
    la_code = la.ons_code if la else ""
    crypto = call.ctx.crypto
    # Ordered by child id: random ids put the watermark rows at pseudo-random places.
    rows = sorted(
        (export_row(crypto, child, la_code) for child in [*children, *marks]),
        key=lambda row: str(row["child_id"]),
    )
    plain = b"".join(
        json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n" for row in rows
    )
    encrypted = enabled(call.ctx.settings, Control.EXPORT_ENCRYPTION)
    content = seal(plain, _sealing_key(export)) if encrypted else plain
    digest = hashlib.sha256(content).hexdigest()
    if not repository.transition(
        call.db,
        export,
        ExportStatus.APPROVED.value,
        status=ExportStatus.DOWNLOADED.value,
        downloaded_at=now,
        downloaded_rows=len(rows),
        download_sha256=digest,
        download_encrypted=encrypted,
    ):
        # Another download of the same export committed first: this copy never leaves.
        raise _violation(call, principal, Violation.ALREADY_DOWNLOADED, export=export)
    call.audit(
        EventTag.EXPORT_DOWNLOADED,
        principal=principal,
        details={
            "export_id": export.id,
            "rows": len(rows),
            "scope_rows": len(children),
            "sha256": digest,
            "encrypted": encrypted,
            "recipient_fingerprint": export.recipient_fingerprint,
        },
    )
    suffix = "age" if encrypted else "jsonl"
    return Download(content=content, filename=f"contactpoint-export-{export.id}.{suffix}")


_CHILD_ID = re.compile(r"(?<![0-9A-Z])[0-9A-HJKMNP-TV-Z]{13}(?![0-9A-Z])")


def child_ids_in(text: str) -> list[str]:
    """Every well-formed child identifier in ``text`` (check character verified)."""
    found = {m for m in _CHILD_ID.findall(text.upper()) if identifiers.is_valid(m)}
    return sorted(found)


def _person(db: Session, crypto: Crypto, practitioner_id: int | None) -> dict[str, Any] | None:
    if practitioner_id is None:
        return None
    user = repository.practitioner(db, practitioner_id)
    if user is None:
        return {"id": practitioner_id}
    return {
        "id": user.id,
        "username": user.username,
        "display_name": crypto.cipher.decrypt(user.display_name_enc, "practitioners.display_name"),
    }


def trace(db: Session, crypto: Crypto, text: str) -> list[dict[str, Any]]:
    """Name every export whose watermark rows appear in ``text`` (a leaked copy)."""
    ids = child_ids_in(text)
    hits: dict[int, list[str]] = defaultdict(list)
    for mark in repository.watermarks_among(db, ids):
        hits[mark.export_id].append(mark.child_id)
    found = []
    for export_id in sorted(hits):
        export = repository.get(db, export_id)
        if export is None:
            continue
        la = repository.local_authority(db, export.local_authority_id)
        found.append(
            {
                "export_id": export.id,
                "local_authority": la.ons_code if la else None,
                "status": export.status,
                "requested_by": _person(db, crypto, export.requested_by),
                "approved_by": _person(db, crypto, export.decided_by),
                "recipient_name": crypto.cipher.decrypt(export.recipient_name_enc, _RECIPIENT),
                "recipient_fingerprint": export.recipient_fingerprint,
                "requested_at": export.requested_at.isoformat(),
                "approved_at": export.decided_at.isoformat() if export.decided_at else None,
                "downloaded_at": export.downloaded_at.isoformat() if export.downloaded_at else None,
                "download_sha256": export.download_sha256,
                "watermarks_found": sorted(hits[export_id]),
                "watermarks_total": repository.watermark_count(db, export.id),
            }
        )
    return found
