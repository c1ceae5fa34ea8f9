"""Exfiltration (the lost discs): no bulk extract leaves without a second person's approval,
within a size cap, once, to its requester, encrypted to the recipient and watermarked.

Every scenario runs the export workflow in the persona's local authority: a throwaway data
manager requests, and the established data manager persona approves (an account made today is
not an independent second person). The workflow scope is one year of age (the harness's
own child, registered aged nine, is in it), so files stay small and far below any cap. An
approved file is opened with the recipient key the scenario generated, in the standard age format
(age-encryption.org/v1, opened here with pyrage as any age tool would).
"""

from __future__ import annotations

import email.utils
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pyrage import x25519

from reference_app.kit.agefile import MAGIC
from security_tests.context import (
    DATA_MANAGER,
    Caller,
    Child,
    Context,
    error_code,
    expect_error,
    fictional_family_name,
    status_text,
)
from security_tests.dump import Subject, scan
from security_tests.engine import Severity, Skip, expect, scenario
from security_tests.scenarios._common import (
    altered,
    b64url_encode,
    decode_segment,
    encode_segment,
    export_rows,
    recipient,
    request_export,
)
from security_tests.scenarios.shielding import add_carer, sensitive_clinician
from security_tests.target import Account

WORKFLOW_AGE = 9  # the harness child's age, and the one-year scope the workflow exports
WORKFLOW_SCOPE = {"kind": "local_authority", "min_age": WORKFLOW_AGE, "max_age": WORKFLOW_AGE}
WHOLE_LA = {"kind": "local_authority"}
JUSTIFICATION = "Security harness: export workflow check with fictional children"
WATERMARK_ROWS = 3  # the registry promises three per-export canary rows in every file
LINK_LIFETIME_MAX = 3600.0  # a download link lives minutes, never more than an hour
SHORT_ENOUGH_TO_WAIT = 20.0  # a link this short-lived is waited out to see it expire
# Shorter values (some given names) occur by chance in kilobytes of ciphertext: not sought.
MIN_NAME_LENGTH = 5


@dataclass
class Export:
    """One export taken through the workflow by a requester and an approver."""

    id: int
    requester: Caller
    approver: Caller
    key: x25519.Identity


def _managers(ctx: Context) -> tuple[Caller, Caller]:
    """A throwaway data manager (requester) and the established data manager persona of its
    local authority (approver): an account made today may not approve an export."""
    return ctx.fresh(DATA_MANAGER), ctx.manager()


def _requested(
    ctx: Context, requester: Caller, approver: Caller, scope: dict[str, Any] = WORKFLOW_SCOPE
) -> Export:
    """Request an export of ``scope`` for a newly generated recipient key."""
    key, pem = recipient()
    response = request_export(requester, scope, pem, JUSTIFICATION)
    if response.status_code != 201:
        raise Skip(f"cannot request an export of {scope}: {status_text(response)}")
    export = Export(int(response.json()["id"]), requester, approver, key)
    ctx.note(f"export {export.id}: {response.json().get('row_count')} rows in scope {scope}")
    return export


def _approved(ctx: Context, scope: dict[str, Any] = WORKFLOW_SCOPE) -> Export:
    """An export requested by one throwaway data manager and approved by another."""
    requester, approver = _managers(ctx)
    ctx.new_child(requester, age=WORKFLOW_AGE)
    export = _requested(ctx, requester, approver, scope)
    _approve(export)
    return export


def _approve(export: Export) -> None:
    response = export.approver.post(f"/exports/{export.id}/approve")
    if response.status_code != 200:
        raise Skip(
            f"another data manager cannot approve export {export.id}: {status_text(response)}"
        )


def _link(export: Export) -> dict[str, Any]:
    """The requester's download link for an approved export."""
    response = export.requester.post(f"/exports/{export.id}/link")
    if response.status_code != 200:
        raise Skip(
            f"the requester cannot take a link to approved export {export.id}: "
            f"{status_text(response)}"
        )
    return dict(response.json())


def _fetch(caller: Caller, token: str) -> httpx.Response:
    return caller.get(f"/exports/download/{token}")


def _download(export: Export) -> bytes:
    """Take a link and download the file once, as the requester."""
    response = _fetch(export.requester, _link(export)["token"])
    expect(
        response.status_code == 200,
        f"the requester's download of approved export {export.id} answered {status_text(response)}",
    )
    return response.content


def _claims(token: str) -> dict[str, Any] | None:
    """The claims of a link in the registry's format (``b64url(json).b64url(mac)``), or None."""
    body, dot, _ = token.partition(".")
    if not dot:
        return None
    try:
        claims = decode_segment(body)
    except ValueError:  # binascii.Error and JSONDecodeError are ValueErrors
        return None
    return claims if isinstance(claims, dict) and isinstance(claims.get("x"), int) else None


def _with_claims(token: str, **changes: Any) -> str:
    """The token with its claims edited and its signature kept as it was."""
    body, _, signature = token.partition(".")
    return encode_segment({**decode_segment(body), **changes}) + "." + signature


def _server_now(response: httpx.Response) -> datetime:
    """The target's clock from the answer's Date header (ours when it sends none)."""
    try:
        return email.utils.parsedate_to_datetime(response.headers["date"])
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


@scenario(
    "exfiltration.no-export-without-approval",
    owasp=["API6:2023", "API1:2023"],
    asvs=["2.3.5", "2.3.1"],
    severity=Severity.CRITICAL,
    gap="the approval state is checked unconditionally; no switch lets an unapproved export out",
)
def no_export_without_approval(ctx: Context) -> None:
    """No download link or file leaves for an export that is pending or was refused."""
    requester, approver = _managers(ctx)
    pending = _requested(ctx, requester, approver)
    expect_error(requester.post(f"/exports/{pending.id}/link"), 403, "export_not_approved")
    # A link made up for the pending export (in the registry's own format) is refused too.
    forged = encode_segment(
        {"e": pending.id, "u": requester.account.id, "x": int(time.time()) + 300, "n": "00"}
    )
    expect_error(
        _fetch(requester, f"{forged}.{b64url_encode(secrets.token_bytes(32))}"), (403, 404)
    )
    refused = _requested(ctx, requester, approver)
    decision = approver.post(f"/exports/{refused.id}/refuse", json={"note": "not justified"})
    expect(decision.status_code == 200, f"the approver cannot refuse: {decision.status_code}")
    expect_error(approver.post(f"/exports/{refused.id}/approve"), 409, "export_not_pending")
    expect_error(requester.post(f"/exports/{refused.id}/link"), 403, "export_refused")


@scenario(
    "exfiltration.no-self-approval",
    owasp=["API6:2023", "API5:2023"],
    asvs=["2.3.5", "16.3.3"],
    severity=Severity.CRITICAL,
    guards=["export_two_person"],
)
def no_self_approval(ctx: Context) -> None:
    """The requester can never approve their own export, and trying alerts the LA's team."""
    requester, approver = _managers(ctx)
    export = _requested(ctx, requester, approver)
    expect_error(requester.post(f"/exports/{export.id}/approve"), 403, "export_self_approval")
    since = time.monotonic()
    shown = requester.get(f"/exports/{export.id}")
    expect(
        shown.status_code == 200 and shown.json().get("status") == "requested",
        f"after the refused self-approval export {export.id} is "
        f"{shown.json().get('status') if shown.status_code == 200 else shown.status_code}",
    )
    alert = ctx.expect_alert(
        approver,
        "export_violation",
        subject=requester,
        since=since,
        where=lambda a: str(export.id) in str(a.get("summary")),
        what=f"self-approval of export {export.id}",
    )
    ctx.note(f"alert {alert['id']}: {alert['summary']}")


@scenario(
    "exfiltration.size-cap",
    owasp=["API4:2023", "API6:2023"],
    asvs=["2.3.2"],
    severity=Severity.HIGH,
    guards=["export_size_cap"],
)
def size_cap(ctx: Context) -> None:
    """An export whose scope holds more children than the cap is refused (422)."""
    # The whole LA is the largest scope a data manager can ask for: try each persona's LA.
    managers: dict[str | None, Account] = {}
    for account in ctx.target.accounts:
        if account.role == DATA_MANAGER and not account.throwaway:
            managers.setdefault(account.local_authority, account)
    if not managers:
        raise Skip("the personas file has no la_data_manager")
    sizes: dict[str | None, int] = {}
    cap: int | None = None
    for la, persona in managers.items():
        requester = ctx.fresh(DATA_MANAGER, like=persona)
        _, pem = recipient()
        response = request_export(requester, WHOLE_LA, pem, JUSTIFICATION)
        if response.status_code == 422 and error_code(response) == "export_too_large":
            ctx.note(f"{la}: the whole-LA scope was refused as over the cap")
            return
        expect(
            response.status_code == 201,
            f"{la}: the whole-LA export request answered {status_text(response)}",
        )
        export = response.json()
        sizes[la] = int(export["row_count"])
        cap = cap or _cap_on_trail(requester, int(export["id"]))
        # Withdrawn at once: the request was only a measurement.
        requester.post(f"/exports/{export['id']}/refuse", json={"note": "harness measurement"})
        expect(
            cap is None or sizes[la] <= cap,
            f"{la}: an export of {sizes[la]} children was accepted over the cap of {cap}",
        )
    measured = ", ".join(f"{la} {n}" for la, n in sizes.items())
    raise Skip(
        f"no scope on this target exceeds the export cap ({cap if cap else 'not stated'}): "
        f"whole-LA scopes hold {measured} children; give the target a larger population "
        "or a lower cap (CONTACTPOINT_EXPORT_MAX_ROWS on the reference registry)"
    )


def _cap_on_trail(requester: Caller, export_id: int) -> int | None:
    """The cap the registry recorded with the request on its audit trail, if it says."""
    response = requester.get(
        "/audit/events",
        params={"tag": "export:requested", "actor_id": requester.account.id, "limit": 10},
    )
    if response.status_code != 200:
        return None
    for event in response.json():
        details = event.get("details") or {}
        if details.get("export_id") == export_id and isinstance(details.get("cap"), int):
            return int(details["cap"])
    return None


@scenario(
    "exfiltration.tampered-link-refused",
    owasp=["API2:2023", "API1:2023"],
    asvs=["9.1.1"],
    severity=Severity.CRITICAL,
    guards=["export_link_checks"],
)
def tampered_link_refused(ctx: Context) -> None:
    """A download link with a changed signature or changed claims is refused (403)."""
    export = _approved(ctx)
    token = _link(export)["token"]
    body, _, signature = token.partition(".")
    expect_error(
        _fetch(export.requester, f"{body}.{altered(signature)}"), 403, "export_link_invalid"
    )
    expect_error(_fetch(export.requester, "not-a-link"), (403, 404))
    claims = _claims(token)
    if claims is None:
        ctx.note("the link is not in the registry's format: claims were not edited")
    else:
        longer = _with_claims(token, x=claims["x"] + 86_400)
        expect_error(_fetch(export.requester, longer), 403, "export_link_invalid")
        other = _with_claims(token, e=export.id + 1)
        expect_error(_fetch(export.requester, other), (403, 404))
    # The refusals were about the tampering: the genuine link still serves the file.
    genuine = _fetch(export.requester, token)
    expect(
        genuine.status_code == 200,
        f"the genuine link failed after the tampered ones: {genuine.status_code}",
    )


@scenario(
    "exfiltration.expired-link-refused",
    owasp=["API2:2023"],
    asvs=["9.2.1"],
    severity=Severity.HIGH,
    guards=["export_link_checks"],
)
def expired_link_refused(ctx: Context) -> None:
    """A link lives minutes, its expiry is signed, and a link past it is refused."""
    export = _approved(ctx)
    taken = export.requester.post(f"/exports/{export.id}/link")
    expect(taken.status_code == 200, f"no link for an approved export: {taken.status_code}")
    link = taken.json()
    expires = datetime.fromisoformat(link["expires_at"])
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    lifetime = (expires - _server_now(taken)).total_seconds()
    ctx.note(f"the link expires {lifetime:.0f} s after it was issued")
    expect(
        0 < lifetime <= LINK_LIFETIME_MAX,
        f"the download link lives {lifetime:.0f} s (at most {LINK_LIFETIME_MAX:.0f} s expected)",
    )
    token = link["token"]
    claims = _claims(token)
    if claims is not None:
        expect(
            abs(claims["x"] - expires.timestamp()) < 2,
            f"the token's expiry claim {claims['x']} is not the stated expiry {expires}",
        )
        # A black box cannot make a correctly signed link older; it can move the signed
        # expiry into the past, which the signature must catch.
        stale = _with_claims(token, x=int(expires.timestamp()) - 86_400)
        expect_error(_fetch(export.requester, stale), (403, 410))
    else:
        ctx.note("the link is not in the registry's format: its expiry was not edited")
    if lifetime > SHORT_ENOUGH_TO_WAIT:
        ctx.note(
            f"a genuinely expired link was not tried: it would mean waiting {lifetime:.0f} s "
            "(start the target with a link lifetime under "
            f"{SHORT_ENOUGH_TO_WAIT:.0f} s, e.g. CONTACTPOINT_EXPORT_LINK_TTL_SECONDS=10)"
        )
        return
    time.sleep(lifetime + 1)
    expect_error(_fetch(export.requester, token), 410, "export_link_expired")
    fresh = _link(export)["token"]
    expect(
        _fetch(export.requester, fresh).status_code == 200,
        "a fresh link for the still approved export does not serve the file",
    )


@scenario(
    "exfiltration.single-download",
    owasp=["API6:2023"],
    asvs=["2.3.2", "2.3.4"],
    severity=Severity.HIGH,
    gap="the downloaded state is checked unconditionally; no switch serves a file twice",
)
def single_download(ctx: Context) -> None:
    """An export leaves once: a second download and a new link are refused (410)."""
    export = _approved(ctx)
    token = _link(export)["token"]
    first = _fetch(export.requester, token)
    expect(first.status_code == 200, f"the first download answered {first.status_code}")
    expect_error(_fetch(export.requester, token), 410, "export_already_downloaded")
    expect_error(
        export.requester.post(f"/exports/{export.id}/link"), 410, "export_already_downloaded"
    )


@scenario(
    "exfiltration.link-bound-to-requester",
    owasp=["API1:2023", "API2:2023"],
    asvs=["8.2.2"],
    severity=Severity.CRITICAL,
    guards=["export_link_checks"],
)
def link_bound_to_requester(ctx: Context) -> None:
    """Only the requester takes a link or downloads with it; anyone else holding it is refused."""
    export = _approved(ctx)
    token = _link(export)["token"]
    expect_error(export.approver.post(f"/exports/{export.id}/link"), 403, "export_not_requester")
    expect_error(_fetch(export.approver, token), 403, "export_not_requester")
    thief = ctx.outsider_if_any(DATA_MANAGER, export.requester)
    if thief is not None:
        expect_error(_fetch(thief, token), (403, 404))
    mine = _fetch(export.requester, token)
    expect(
        mine.status_code == 200,
        f"the requester's own download failed after the refusals: {mine.status_code}",
    )


@scenario(
    "exfiltration.export-encrypted",
    owasp=["API3:2023", "API8:2023"],
    asvs=["14.2.4"],
    severity=Severity.CRITICAL,
    guards=["export_encryption"],
)
def export_encrypted(ctx: Context) -> None:
    """The export file is sealed to the recipient's key: no name, birth date or postcode shows."""
    export = _approved(ctx)
    blob = _download(export)
    rows = export_rows(blob, export.key)
    expect(rows, "the export file holds no rows, so its encryption cannot be judged")
    # Counted by kind, never quoted: the failure message must not repeat personal data.
    shown: dict[str, int] = {}
    for row in rows:
        for kind, value in (
            ("family names", row.get("family_name")),
            ("given names", row.get("given_name")),
            ("dates of birth", row.get("date_of_birth")),
            ("postcodes", (row.get("address") or {}).get("postcode")),
        ):
            if isinstance(value, str) and len(value) >= MIN_NAME_LENGTH and value.encode() in blob:
                shown[kind] = shown.get(kind, 0) + 1
    expect(
        not shown,
        f"the downloaded file of {len(rows)} rows shows in clear: "
        + ", ".join(f"{n} {kind}" for kind, n in shown.items()),
    )
    expect(
        blob.startswith(MAGIC),
        f"the file does not start with the age header {MAGIC!r} (starts {blob[:12]!r})",
    )
    ctx.note(f"{len(blob)} bytes sealed; {len(rows)} rows opened with the recipient key")


@scenario(
    "exfiltration.export-watermarked",
    owasp=["API6:2023"],
    asvs=["14.2.4", "16.3.3"],
    severity=Severity.HIGH,
    guards=["export_watermark", "canary_alerts"],
)
def export_watermarked(ctx: Context) -> None:
    """Each export carries its own canary rows, and looking one up alerts the LA's team."""
    requester, approver = _managers(ctx)
    child = ctx.new_child(requester, age=WORKFLOW_AGE)
    # Two exports of one scope: rows in one file only are that export's watermark rows.
    first = _requested(ctx, requester, approver)
    second = _requested(ctx, requester, approver)
    _approve(first)
    _approve(second)
    files = {e.id: export_rows(_download(e), e.key) for e in (first, second)}
    ids = {export_id: {row["child_id"] for row in rows} for export_id, rows in files.items()}
    marks = {
        first.id: sorted(ids[first.id] - ids[second.id]),
        second.id: sorted(ids[second.id] - ids[first.id]),
    }
    for export_id in (first.id, second.id):
        expect(
            child.child_id in ids[export_id],
            f"export {export_id} lacks the harness child {child.child_id} of its scope",
        )
        expect(
            len(marks[export_id]) >= WATERMARK_ROWS,
            f"export {export_id} holds {len(marks[export_id])} rows of its own "
            f"(watermarks), at least {WATERMARK_ROWS} expected",
        )
        _same_shape(files[export_id], set(marks[export_id]), child)
    ctx.note(f"watermark rows: {marks}")
    canary = marks[first.id][0]
    looked = requester.view(canary)
    since = time.monotonic()
    expect(looked.status_code == 200, f"the watermark child {canary} cannot be viewed")
    ctx.expect_alert(
        approver,
        "canary_access",
        subject=requester,
        since=since,
        child_id=canary,
        what=f"a view of watermark child {canary} of export {first.id}",
    )


def _same_shape(rows: list[dict[str, Any]], marks: set[str], child: Child) -> None:
    """Watermark rows carry every field a real row does, so nothing sets them apart."""
    real = next(row for row in rows if row["child_id"] == child.child_id)
    for row in rows:
        if row["child_id"] in marks:
            expect(
                set(row) == set(real),
                f"watermark row {row['child_id']} has fields {sorted(row)}, "
                f"a real row {sorted(real)}",
            )


@scenario(
    "exfiltration.sock-puppet-approver",
    owasp=["API6:2023", "API5:2023"],
    asvs=["2.3.5"],
    severity=Severity.CRITICAL,
    guards=["approver_independence"],
)
def sock_puppet_approver(ctx: Context) -> None:
    """A data manager account made today cannot be the second person on a real export."""
    requester = ctx.manager()
    ctx.new_child(requester, age=WORKFLOW_AGE)
    # Made by the administrator (and confirmed by the authority): what an insider pair, or an
    # administrator working with a data manager, would use as a second pair of hands.
    puppet = ctx.fresh(DATA_MANAGER)
    export = _requested(ctx, requester, puppet)
    try:
        answer = puppet.post(f"/exports/{export.id}/approve")
        ctx.note(f"the new account's approval answered {status_text(answer)}")
        expect_error(answer, 403)
    finally:
        requester.post(f"/exports/{export.id}/refuse", json={"note": "harness: withdrawn"})


# -- a stolen copy of the database ---------------------------------------------------------------


@scenario(
    "exfiltration.dump-inference",
    owasp=["API3:2023", "API8:2023"],
    asvs=["14.2.4"],
    severity=Severity.CRITICAL,
    gap="sealing is part of the schema (migrations 0015 to 0017), not a switch; "
    "tests/security_tests/test_dump.py runs the same scan on a copy written as before sealing "
    "and finds every fact",
    needs=["database"],
)
def dump_inference(ctx: Context) -> None:
    """A copy of the database tells no child's shield, sensitive service, household or viewers."""
    dm = ctx.manager()
    family = fictional_family_name()

    def alike(postcode: str | None = None) -> Child:
        # One name, gender, age and shape of postcode: the rows differ only by what is done to them.
        code = postcode or f"Q{secrets.choice('ABCDEFGH')}{secrets.randbelow(90) + 10} 9ZZ"
        made = ctx.new_child(
            dm, family_name=family, given_name="Esme", gender="female", postcode=code
        )
        return made

    shielded = alike()
    carer_id, _ = add_carer(dm, shielded)
    sibling = alike(shielded.postcode)
    linked = dm.post(
        f"/children/{sibling.child_id}/carers/{carer_id}",
        json={"relationship": "mother", "parental_responsibility": True},
    )
    expect(linked.status_code == 201, f"cannot link the carer to a sibling: {status_text(linked)}")
    shield = dm.post(
        f"/children/{shielded.child_id}/shield", json={"shielded": True, "decision_note": "harness"}
    )
    expect(shield.status_code == 200, f"cannot shield the child: {status_text(shield)}")
    controls = [alike(), alike()]
    for control in controls:
        add_carer(dm, control)
    patient = alike()
    add_carer(dm, patient)
    clinician, service = sensitive_clinician(ctx, dm)
    made = clinician.post(
        f"/children/{patient.child_id}/involvements", json={"consent_recorded": True}
    )
    expect(made.status_code == 201, f"cannot record the sensitive service: {status_text(made)}")
    ctx.confirm(dm, int(made.json()["id"]))
    viewed = alike()
    add_carer(dm, viewed)
    viewer = ctx.colleague("health_practitioner", dm)
    expect(viewer.view(viewed.child_id).status_code == 200, "the practitioner cannot view a child")
    # A search that returns them all puts every one in a search event's results.
    expect(viewer.search(family_name=family, given_name="Esme").status_code == 200, "no search")
    subjects = [
        Subject("the shielded child", "is shielded", shielded.child_id),
        Subject("the shielded child's sibling", "lives with the shielded child", sibling.child_id),
        Subject("a patient", f"uses a sensitive service ({service})", patient.child_id),
        Subject("a viewed child", "was viewed by a named practitioner", viewed.child_id),
    ]
    with ctx.database.connect() as conn:
        ways = scan(
            conn,
            subjects,
            [c.child_id for c in controls],
            distinguish={subjects[0].label, subjects[1].label},
        )
    expect(not ways, "a copy of the database tells: " + "; ".join(map(str, ways)))
    ctx.note(
        f"{len(subjects)} children and 2 ordinary ones alike: no table names them outside "
        "children, repeats a value of their rows or a moment, and no column sets the shielded "
        "child or its household apart"
    )
