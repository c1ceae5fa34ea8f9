"""Shielding and sensitive services: a shielded child's address and carers never leave the registry.

Nor do they through its household (a child at the same address or sharing a carer), and no answer
names the LA a shielded child lives in. A shielded child stays findable by the fields still
visible (names, date of birth), but a search on a hidden field (the postcode) answers exactly as
for a child who does not exist, in content and in time; record views, errors and exports carry
none of the hidden values; the emergency override opens the record and alerts the LA's
management team at once. Sensitive services (mental and
sexual health, substance misuse) are recorded only with consent and never shown to another LA.
Lifting a shield takes two data managers of the LA, and alerts its team.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from security_tests import timing
from security_tests.context import (
    Caller,
    Child,
    Context,
    cannot,
    expect_error,
    fictional_family_name,
    status_text,
)
from security_tests.engine import Severity, expect, scenario
from security_tests.scenarios._common import (
    ask_unshield,
    export_rows,
    pause,
    recipient,
    request_export,
)

# Keys a limited view must not carry: the address, the carers and the services.
WITHHELD_KEYS = frozenset({"address", "carers", "services", "date_of_birth"})
SEARCH_RESULT_KEYS = frozenset(
    {"child_id", "given_name", "family_name", "gender", "age", "local_authority", "contact"}
)
TIMING_SAMPLES = 7  # per kind of search: 15 searches with the warm-up stay below the timing rule
TIMING_FLOOR_SECONDS = 0.025  # jitter on a loaded machine; a timing oracle must stand above it
TIMING_RATIO = 0.5  # medians may differ by half the larger one
TIMING_ROUNDS = 2  # a second round (a fresh searcher) only when the first differs
SENSITIVE_KINDS = ("mental_health_service", "sexual_health_service", "substance_misuse_service")
OVERRIDE = "emergency_override; harness check of the break-glass alert"


@dataclass(frozen=True)
class ShieldedChild:
    """A shielded fictional child with a carer, and the values shielding must keep back."""

    child: Child
    hidden: tuple[str, ...]


def shielded_child(ctx: Context, dm: Caller) -> ShieldedChild:
    """Register a shielded child with a carer's phone and email in the data manager's LA."""
    child = ctx.new_child(dm, shielded=True)
    _, hidden = add_carer(dm, child)
    return ShieldedChild(child, hidden)


def add_carer(dm: Caller, child: Child) -> tuple[int, tuple[str, ...]]:
    """Give ``child`` a carer with a phone and email; return its id and the values a withheld
    view must not show (address and carer)."""
    # Ofcom keeps 07700 900000-900999 for drama; example.org reaches nobody (RFC 2606).
    phone = f"+44 7700 900{secrets.randbelow(1000):03d}"
    email = f"carer-{secrets.token_hex(4)}@example.org"
    carer_family = fictional_family_name()
    response = dm.post(
        f"/children/{child.child_id}/carers",
        json={
            "given_name": "Ada",
            "family_name": carer_family,
            "relationship": "mother",
            "parental_responsibility": True,
            "phone": phone,
            "email": email,
        },
    )
    expect(response.status_code == 201, f"cannot add a carer: {response.status_code}")
    compact = child.postcode.replace(" ", "")
    hidden = (child.postcode, compact, child.address_line, phone, email, carer_family)
    return int(response.json()["carer_id"]), hidden


def leaked(response: httpx.Response, hidden: Iterable[str]) -> list[str]:
    """Which of the ``hidden`` values appear anywhere in the answer (case-insensitive)."""
    text = response.text.lower()
    return [value for value in hidden if value and value.lower() in text]


def _check_limited(response: httpx.Response, shielded: ShieldedChild, who: str) -> None:
    """Fail unless the answer is the limited view, with none of the hidden values in it."""
    expect(response.status_code == 200, f"{who}: the view answered {response.status_code}")
    body = response.json()
    shown = sorted(WITHHELD_KEYS & set(body))
    expect(not shown, f"{who} sees withheld parts of a shielded record: {', '.join(shown)}")
    found = leaked(response, shielded.hidden)
    expect(not found, f"{who} sees {len(found)} hidden value(s) of a shielded record")
    level = (body.get("access") or {}).get("level")
    expect(level == "limited", f"{who} gets the {level!r} view of a shielded record")


@scenario(
    "shielding.search-never-confirms",
    owasp=["API3:2023", "API1:2023"],
    asvs=["8.2.3", "8.2.2"],
    severity=Severity.CRITICAL,
    guards=["shielding"],
)
def search_never_confirms(ctx: Context) -> None:
    """A search on a shielded child's postcode answers exactly as for a child who does not exist."""
    dm = ctx.manager()
    shielded = shielded_child(ctx, dm)
    child = shielded.child
    searcher = ctx.colleague("health_practitioner", dm)
    by_postcode = searcher.search(family_name=child.family_name, postcode=child.postcode)
    nobody = searcher.search(
        family_name=fictional_family_name(), postcode=f"QZ{secrets.randbelow(90) + 1} 9ZZ"
    )
    expect(by_postcode.status_code == nobody.status_code == 200, "a search was refused")
    expect(
        by_postcode.json() == nobody.json(),
        "a search on the shielded child's family name and postcode answers differently from a "
        f"search for nobody: {by_postcode.json().get('count')} result(s)",
    )
    # The still-visible fields find the child: the postcode search would have matched.
    by_birth = searcher.search(family_name=child.family_name, date_of_birth=child.date_of_birth)
    results = by_birth.json().get("results", []) if by_birth.status_code == 200 else []
    expect(
        [r.get("child_id") for r in results] == [child.child_id],
        f"the shielded child is not findable by name and date of birth ({by_birth.status_code})",
    )
    extra = sorted(set(results[0]) - SEARCH_RESULT_KEYS)
    expect(not extra, f"a search result for a shielded child carries {', '.join(extra)}")
    expect(not leaked(by_birth, shielded.hidden), "a search result carries a hidden value")
    # A data manager of another LA has no more right to the postcode than a practitioner.
    stranger = ctx.outsider_if_any("la_data_manager", dm)
    if stranger is not None:
        other = stranger.search(family_name=child.family_name, postcode=child.postcode)
        expect(
            other.status_code == 200 and other.json() == nobody.json(),
            "another LA's data manager finds the shielded child by postcode",
        )


@scenario(
    "shielding.household-leak",
    owasp=["API3:2023", "API1:2023"],
    asvs=["8.2.3", "8.2.2"],
    severity=Severity.CRITICAL,
    guards=["shielding"],
)
def household_leak(ctx: Context) -> None:
    """A shielded child's sibling (same address, shared carer) is withheld and unfindable too."""
    dm = ctx.manager()
    family = fictional_family_name()
    child = ctx.new_child(dm, family_name=family)
    sibling = ctx.new_child(
        dm, family_name=family, postcode=child.postcode, address_line=child.address_line
    )
    carer_id, hidden = add_carer(dm, child)
    linked = dm.post(
        f"/children/{sibling.child_id}/carers/{carer_id}",
        json={"relationship": "mother", "parental_responsibility": True},
    )
    expect(linked.status_code == 201, f"cannot link the carer to the sibling: {linked.status_code}")
    shield = dm.post(
        f"/children/{child.child_id}/shield", json={"shielded": True, "decision_note": "harness"}
    )
    expect(shield.status_code == 200, f"cannot shield the child: {shield.status_code}")
    searcher = ctx.colleague("health_practitioner", dm)
    by_postcode = searcher.search(family_name=family, postcode=child.postcode)
    nobody = searcher.search(
        family_name=fictional_family_name(), postcode=f"QZ{secrets.randbelow(90) + 1} 9ZZ"
    )
    expect(by_postcode.status_code == nobody.status_code == 200, "a search was refused")
    found = [r.get("child_id") for r in by_postcode.json().get("results", [])]
    expect(
        by_postcode.json() == nobody.json(),
        f"a search on the household's family name and postcode finds {len(found)} child(ren)"
        + (": the shielded child's sibling" if sibling.child_id in found else ""),
    )
    # The sibling's address and carer are the shielded child's: withheld as the child's are.
    _check_limited(
        searcher.view(sibling.child_id),
        ShieldedChild(sibling, hidden),
        "a practitioner of the LA viewing the shielded child's sibling",
    )
    team = ctx.colleague("la_data_manager", dm)
    full = team.view(sibling.child_id)
    expect(full.status_code == 200, f"the LA's data manager cannot view it ({full.status_code})")
    expect(
        (full.json().get("address") or {}).get("postcode") == child.postcode
        and full.json().get("carers"),
        "the LA's data manager does not see the sibling's address and carers",
    )


@scenario(
    "shielding.la-disclosure",
    owasp=["API3:2023"],
    asvs=["8.2.3"],
    severity=Severity.HIGH,
    guards=["shielding"],
)
def la_disclosure(ctx: Context) -> None:
    """A name and date-of-birth search and the limited view of a shielded child name no LA."""
    dm = ctx.manager()
    child = ctx.new_child(dm, shielded=True)
    team = ctx.colleague("la_data_manager", dm)
    full = team.view(child.child_id)
    expect(full.status_code == 200, f"the LA's data manager cannot view it ({full.status_code})")
    la = full.json().get("local_authority") or {}
    names = [str(value) for value in (la.get("name"), la.get("code")) if value]
    expect(bool(names), "the LA's data manager is not told the child's LA")
    searchers = [("a practitioner of the LA", ctx.colleague("education_practitioner", dm))]
    far = ctx.outsider_if_any("health_practitioner", dm)
    if far is not None:
        searchers.append(("a practitioner of another LA", far))
    for who, searcher in searchers:
        found = searcher.search(family_name=child.family_name, date_of_birth=child.date_of_birth)
        expect(found.status_code == 200, f"{who}: the search answered {found.status_code}")
        results = [
            r for r in found.json().get("results", []) if r.get("child_id") == child.child_id
        ]
        expect(len(results) == 1, f"{who}: the name and date of birth do not find the child")
        # Other children the same name and date of birth find carry their own LA, rightly (a
        # phonetic match in the same LA names it): everything else in the answer is scanned.
        body = dict(found.json())
        body["results"] = results
        answer = json.dumps(body).lower()
        named = [name for name in names if name.lower() in answer]
        expect(not named, f"{who}: the search result names the shielded child's LA")
        expect(results[0].get("local_authority") is None, f"{who}: the result carries an LA")
        expect(bool(results[0].get("contact")), f"{who}: the result says nothing of contact")
        view = searcher.view(child.child_id)
        expect(view.status_code == 200, f"{who}: the view answered {view.status_code}")
        named = [name for name in names if name.lower() in view.text.lower()]
        expect(not named, f"{who}: the limited view names the shielded child's LA")
        expect(
            (view.json().get("access") or {}).get("level") == "limited",
            f"{who}: the view of a shielded child is not limited",
        )


@scenario(
    "shielding.record-view-withholds",
    owasp=["API3:2023", "API1:2023"],
    asvs=["8.2.3", "8.2.2"],
    severity=Severity.CRITICAL,
    guards=["shielding"],
)
def record_view_withholds(ctx: Context) -> None:
    """A shielded record shows practitioners, involved or not, no address, carers or services."""
    dm = ctx.manager()
    shielded = shielded_child(ctx, dm)
    child_id = shielded.child.child_id
    # One view per throwaway account keeps each well below the insider-browsing thresholds.
    uninvolved = ctx.colleague("education_practitioner", dm)
    _check_limited(uninvolved.view(child_id), shielded, "an uninvolved practitioner of the LA")
    involved = ctx.colleague("health_practitioner", dm)
    ctx.involve(involved, shielded.child)
    # The registry's rule: shielding withholds the fields from involved practitioners too; the
    # LA's management team brokers contact.
    _check_limited(involved.view(child_id), shielded, "an involved practitioner")
    far = ctx.outsider_if_any("education_practitioner", dm)
    if far is not None:
        _check_limited(far.view(child_id), shielded, "a practitioner of another LA")
    # The LA's own team sees it all: the hidden values are really held, and really withheld.
    team = ctx.colleague("la_data_manager", dm)
    full = team.view(child_id)
    expect(full.status_code == 200, f"the LA's data manager cannot view it ({full.status_code})")
    address = full.json().get("address") or {}
    expect(
        address.get("postcode") == shielded.child.postcode and full.json().get("carers"),
        "the LA's data manager does not see the shielded child's address and carers",
    )


@scenario(
    "shielding.errors-withhold",
    owasp=["API3:2023", "API8:2023"],
    asvs=["8.2.3"],
    severity=Severity.HIGH,
    guards=["function_authorization"],
)
def errors_withhold(ctx: Context) -> None:
    """Refusals about a shielded child carry its code and message, never a hidden value."""
    dm = ctx.manager()
    shielded = shielded_child(ctx, dm)
    child_id = shielded.child.child_id
    me = ctx.colleague("education_practitioner", dm)
    mistyped = child_id[:-1] + ("0" if child_id[-1] != "0" else "1")
    attempts: list[tuple[httpx.Response, int | tuple[int, ...], str | None]] = [
        (me.get(f"/children/{child_id}"), 400, "access_reason_required"),
        (me.view(child_id, reason="curiosity"), 400, "invalid_access_reason"),
        (me.view(child_id, reason="emergency_override"), 403, "override_not_permitted"),
        (me.view(mistyped), 422, "invalid_child_id"),
        (me.post(f"/children/{child_id}/shield", json={"shielded": False}), 403, None),
        (me.post(f"/children/{child_id}/involvements", json={"sensitive": True}), 422, None),
    ]
    far_dm = ctx.outsider_if_any("la_data_manager", dm)
    if far_dm is not None:
        # Another LA's data manager is told nothing exists rather than that it is not theirs.
        attempts += [
            (far_dm.patch(f"/children/{child_id}", json={"given_name": "Ada"}), 404, None),
            (far_dm.post(f"/children/{child_id}/carers", json={}), (404, 422), None),
        ]
    for response, status, code in attempts:
        expect_error(response, status, code)
        where = f"{response.request.method} {response.request.url.path}"
        expect(not leaked(response, shielded.hidden), f"{where}: the refusal has a hidden value")
        body = json.dumps(response.json()).lower()
        expect(
            shielded.child.family_name.lower() not in body,
            f"{where}: the refusal names the child",
        )


@scenario(
    "shielding.exports-exclude-shielded",
    owasp=["API3:2023", "API6:2023"],
    asvs=["8.2.3", "2.3.5"],
    severity=Severity.CRITICAL,
    gap="every export scope leaves shielded children out in its one scope query; no switch "
    "puts them in",
)
def exports_exclude_shielded(ctx: Context) -> None:
    """An approved export of a shielded child's age group holds its unshielded peer, never it."""
    dm = ctx.manager()
    age = 12
    shielded = ctx.new_child(dm, shielded=True, age=age)
    peer = ctx.new_child(dm, age=age)
    identity, public_pem = recipient()
    requester = ctx.colleague("la_data_manager", dm)
    request = request_export(
        requester,
        {"kind": "local_authority", "min_age": age, "max_age": age},
        public_pem,
        "Harness check that shielded children never leave in an export",
    )
    expect(request.status_code == 201, f"the export request answered {request.status_code}")
    export_id = request.json()["id"]
    ctx.note(f"export {export_id}: {request.json().get('row_count')} rows in scope")
    approval = dm.post(f"/exports/{export_id}/approve")
    expect(approval.status_code == 200, f"the approval answered {approval.status_code}")
    link = requester.post(f"/exports/{export_id}/link")
    expect(link.status_code == 200, f"no download link ({link.status_code})")
    download = requester.get(f"/exports/download/{link.json()['token']}")
    expect(download.status_code == 200, f"the download answered {download.status_code}")
    rows = export_rows(download.content, identity)
    ids = {row.get("child_id") for row in rows}
    expect(peer.child_id in ids, "the unshielded peer is missing: the export is not its scope")
    expect(shielded.child_id not in ids, "the export holds the shielded child")
    postcodes = {str((row.get("address") or {}).get("postcode")) for row in rows}
    expect(shielded.postcode not in postcodes, "the export holds the shielded child's address")
    ctx.note(f"the export held {len(rows)} rows; the shielded child was not among them")


@scenario(
    "shielding.postcode-timing",
    owasp=["API3:2023"],
    asvs=["8.2.3"],
    severity=Severity.MEDIUM,
    gap="timing follows the query plan; no switch adds a delay that tells a shielded child from "
    "a missing one",
)
def postcode_timing(ctx: Context) -> None:
    """A postcode search for a shielded child takes as long as one for a child who is not there."""
    dm = ctx.manager()
    child = ctx.new_child(dm, shielded=True)
    nobody = {"family_name": fictional_family_name(), "postcode": "QZ7 9ZZ"}
    target = {"family_name": child.family_name, "postcode": child.postcode}
    times: dict[str, list[float]] = {"shielded": [], "nonexistent": []}
    for round_ in range(1, TIMING_ROUNDS + 1):
        # A fresh searcher a round keeps each below the machine-timing rule.
        searcher = ctx.colleague("health_practitioner", dm)
        searcher.search(**nobody)  # warm-up: connections and caches
        for _ in range(TIMING_SAMPLES):
            order = [("shielded", target), ("nonexistent", nobody)]
            if secrets.randbelow(2):
                order.reverse()
            for kind, criteria in order:
                began = time.perf_counter()
                response = searcher.search(**criteria)
                times[kind].append(time.perf_counter() - began)
                expect(
                    response.status_code == 200, f"a timing search answered {response.status_code}"
                )
                pause()
        verdict = timing.judge(
            times["shielded"],
            times["nonexistent"],
            ratio=TIMING_RATIO,
            floor=TIMING_FLOOR_SECONDS,
            statistic=timing.median,
        )
        said = verdict.describe("shielded child", "nonexistent child", "median")
        ctx.note(f"round {round_}: {said}")
        if verdict.outcome == "same":
            return
        expect(
            verdict.outcome != "differs",
            f"the postcode search for a shielded child takes its own time: {said}",
        )
    raise timing.Inconclusive(f"inconclusive: the machine was too noisy to judge ({said})")


@scenario(
    "shielding.override-opens-and-alerts",
    owasp=["API1:2023", "API6:2023"],
    asvs=["8.2.2", "16.3.2"],
    severity=Severity.HIGH,
    guards=["override_alerts", "shielding"],
)
def override_opens_and_alerts(ctx: Context) -> None:
    """The emergency override opens a shielded record once, with a warning, and alerts the LA."""
    dm = ctx.manager()
    shielded = shielded_child(ctx, dm)
    child_id = shielded.child.child_id
    for role in ("police_practitioner", "social_care_practitioner"):
        holder = ctx.colleague(role, dm)
        opened = holder.view(child_id, reason=OVERRIDE)
        since = time.monotonic()
        expect(opened.status_code == 200, f"{role}: the override answered {opened.status_code}")
        body = opened.json()
        access = body.get("access") or {}
        expect(access.get("level") == "full", f"{role}: the override does not open the record")
        expect(access.get("warning"), f"{role}: the override carries no warning")
        expect(
            (body.get("address") or {}).get("postcode") == shielded.child.postcode,
            f"{role}: the override does not show the address",
        )
        ctx.expect_alert(dm, "override", subject=holder, since=since, child_id=child_id, what=role)
        # Shown only while the record is open: the next ordinary view is limited again.
        _check_limited(holder.view(child_id), shielded, f"{role} after the override")


@scenario(
    "shielding.sensitive-services",
    owasp=["API3:2023", "API1:2023"],
    asvs=["8.2.3", "8.2.2"],
    severity=Severity.HIGH,
    guards=["need_to_know"],
    needs=["database"],
)
def sensitive_services(ctx: Context) -> None:
    """A sensitive service is recorded only with consent and never shown to another LA."""
    dm = ctx.manager()
    clinician, organisation_name = sensitive_clinician(ctx, dm)
    child = ctx.new_child(dm, age=15)
    path = f"/children/{child.child_id}/involvements"
    expect_error(clinician.post(path, json={}), 422, "consent_required")
    team = ctx.colleague("la_data_manager", dm)
    before = team.view(child.child_id)
    expect(
        before.status_code == 200 and not before.json().get("services"),
        "an involvement refused for want of consent was recorded all the same",
    )
    consented = clinician.post(path, json={"consent_recorded": True})
    expect(
        consented.status_code == 201, f"a consented involvement answered {consented.status_code}"
    )
    expect(consented.json().get("sensitive") is True, "the service's involvement is not sensitive")
    own = clinician.view(child.child_id, reason="service_delivery")
    expect(
        own.status_code == 200 and organisation_name in own.text,
        "the sensitive service does not see its own involvement",
    )
    far = ctx.outsider("health_practitioner", dm)
    seen = far.view(child.child_id)
    expect(seen.status_code == 200, f"another LA's view answered {seen.status_code}")
    expect("services" not in seen.json(), "a practitioner of another LA sees the child's services")
    expect(
        organisation_name.lower() not in seen.text.lower(),
        "a practitioner of another LA sees the sensitive service",
    )
    ctx.note(
        "without consent nothing is recorded; with consent the registry shows the service to "
        "full views in the child's LA (its rule), and to no other LA"
    )


def sensitive_clinician(ctx: Context, dm: Caller) -> tuple[Caller, str]:
    """A throwaway practitioner of a sensitive service in ``dm``'s LA, and the service's name."""
    from sqlalchemy import bindparam, text

    la_id = dm.account.local_authority_id
    # White-box only to find a sensitive service: the API lists no organisations (read only).
    with ctx.database.connect() as db:
        row = db.execute(
            text(
                "SELECT id, name FROM organisations WHERE local_authority_id = :la "
                "AND kind IN :kinds ORDER BY id LIMIT 1"
            ).bindparams(bindparam("kinds", expanding=True)),
            {"la": la_id, "kinds": list(SENSITIVE_KINDS)},
        ).first()
    expect(row is not None, f"the LA {la_id} has no sensitive service to check")
    assert row is not None
    organisation_id, organisation_name = int(row[0]), str(row[1])
    template = dataclasses.replace(
        ctx.persona("health_practitioner"),
        organisation_id=organisation_id,
        organisation=organisation_name,
        local_authority_id=la_id,
        local_authority=dm.account.local_authority,
    )
    return ctx.fresh("health_practitioner", like=template), organisation_name


def _services(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json() if response.status_code == 200 else {}
    services = body.get("services") if isinstance(body, dict) else None
    return services if isinstance(services, list) else []


def _shows(caller: Caller, child: Child, involvement: int) -> bool:
    """Whether ``caller``'s view of ``child`` lists ``involvement``."""
    response = caller.view(child.child_id, reason="service_delivery")
    expect(response.status_code == 200, f"a colleague's view answered {status_text(response)}")
    return any(s.get("involvement_id") == involvement for s in _services(response))


@scenario(
    "shielding.consent-withdrawal",
    owasp=["API3:2023", "API1:2023"],
    asvs=["8.2.3", "14.2.7"],
    severity=Severity.HIGH,
    guards=["consent_withdrawal"],
    needs=["database"],
)
def consent_withdrawal(ctx: Context) -> None:
    """Other services stop seeing a sensitive service once consent is withdrawn, or when ended."""
    dm = ctx.manager()
    clinician, organisation_name = sensitive_clinician(ctx, dm)
    child = ctx.new_child(dm, age=15)
    made = clinician.post(
        f"/children/{child.child_id}/involvements", json={"consent_recorded": True}
    )
    if made.status_code != 201:
        cannot("record a consented sensitive involvement", made)
    involvement = int(made.json()["id"])
    colleague = ctx.colleague("education_practitioner", dm)
    expect(
        _shows(colleague, child, involvement),
        "with consent standing, a colleague in the child's LA does not see the sensitive service: "
        "the withdrawal could not be told apart",
    )
    withdrawn = clinician.post(f"/involvements/{involvement}/withdraw-consent")
    expect(
        withdrawn.status_code == 200,
        f"the service cannot record the withdrawal of consent: {status_text(withdrawn)}",
    )
    expect(
        not _shows(colleague, child, involvement),
        "after consent was withdrawn, a colleague in another service still sees the sensitive "
        "service working with the young person",
    )
    expect(
        _shows(clinician, child, involvement),
        "the sensitive service no longer sees its own involvement",
    )
    ctx.note(f"{organisation_name}: shown with consent, hidden from other services once withdrawn")
    # An ended involvement: the school that worked with the child, seen by a GP colleague.
    registered = ctx.involve(colleague, child)
    other = ctx.colleague("health_practitioner", dm)
    expect(_shows(other, child, registered), "a current involvement is not shown to colleagues")
    ended = colleague.post(f"/involvements/{registered}/end", json={})
    expect(ended.status_code == 200, f"ending an involvement answered {status_text(ended)}")
    expect(
        not _shows(other, child, registered),
        "an ended involvement is still shown to another service",
    )
    ctx.note("an ended involvement is hidden from other services at once")


def _shield_state(dm: Caller, child_id: str) -> object:
    """Whether the LA's own data manager sees the child as shielded (None if unreadable)."""
    response = dm.view(child_id)
    return response.json().get("shielded") if response.status_code == 200 else None


@scenario(
    "shielding.single-person-unshield",
    owasp=["API5:2023", "API6:2023"],
    asvs=["2.3.5", "8.2.3"],
    severity=Severity.HIGH,
    guards=["unshield_two_person"],
)
def single_person_unshield(ctx: Context) -> None:
    """One data manager cannot lift a shield: a second approves, the requester cannot, the LA
    is alerted."""
    dm = ctx.manager()
    child_id = ctx.new_child(dm, shielded=True).child_id
    requester = ctx.colleague("la_data_manager", dm)
    approver = ctx.colleague("la_data_manager", dm)
    since = ask_unshield(requester, child_id, "harness check of the second approval")
    expect(
        _shield_state(approver, child_id) is True,
        "one data manager's unshield lifted the shield at once, with no second person",
    )
    ctx.expect_alert(
        approver,
        "unshield_requested",
        subject=requester,
        since=since,
        child_id=child_id,
        what="an unshield request",
    )
    own = requester.post(f"/children/{child_id}/unshield/approve", json={})
    expect_error(own, 403, "own_unshield_request")
    expect(
        _shield_state(approver, child_id) is True,
        "the data manager who asked for the unshield approved it themselves",
    )
    approved = approver.post(f"/children/{child_id}/unshield/approve", json={})
    expect(approved.status_code == 200, f"the second approval answered {approved.status_code}")
    expect(
        _shield_state(approver, child_id) is False,
        "the second data manager's approval did not lift the shield",
    )
