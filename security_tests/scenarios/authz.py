"""Object and function authorization: need-to-know views, hidden records, role permissions, mass
assignment and other organisations' involvements."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any

import httpx
from sqlalchemy import DateTime, String, column, table, update

from security_tests.context import (
    DATA_MANAGER,
    SYSADMIN,
    Caller,
    Child,
    Context,
    error_code,
    expect_error,
    fictional_address,
    fictional_family_name,
    json_body,
    status_text,
)
from security_tests.engine import Severity, Skip, expect, scenario
from security_tests.scenarios._common import recipient, request_export

PRACTITIONER = "health_practitioner"
OTHER_PRACTITIONER = "education_practitioner"
PRACTITIONER_ROLES = (
    "education_practitioner",
    "health_practitioner",
    "police_practitioner",
    "social_care_practitioner",
    "voluntary_practitioner",
    "youth_offending_practitioner",
)
# What only the full view holds: where the child lives, who cares for it, who works with it.
FULL_ONLY = ("address", "carers", "services", "date_of_birth")
# Fields a caller must never set through a body meant for something else.
PROTECTED_FIELDS = ("role", "local_authority_id", "shielded", "status", "authz_version", "id")


# -- helpers -------------------------------------------------------------------------------------


def _same_la_practitioner(ctx: Context, child: Child) -> Caller:
    """A throwaway practitioner of the child's LA (else of any LA), who would see it in full."""
    template = ctx.persona_in(PRACTITIONER_ROLES, child.local_authority)
    if template is None:
        return ctx.fresh(PRACTITIONER)
    return ctx.fresh(template.role, like=template)


def _body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object a record view answered."""
    body = json_body(response)
    expect(isinstance(body, dict), f"the record is not a JSON object: {type(body).__name__}")
    return dict(body)


def _expect_limited(response: httpx.Response, who: str) -> None:
    """Fail unless ``response`` is the limited view: a 200 without what only the full view holds."""
    expect(response.status_code == 200, f"{who}: the view answered {response.status_code}")
    body = _body(response)
    shown = [name for name in FULL_ONLY if name in body]
    expect(not shown, f"{who} was shown {', '.join(shown)} (limited view expected)")
    level = (body.get("access") or {}).get("level")
    expect(level in (None, "limited"), f"{who}: the record says its view level is {level!r}")


def _expect_hidden(response: httpx.Response, who: str) -> None:
    """Fail unless ``response`` denies the record exists (404 child_not_found)."""
    expect(
        response.status_code == 404,
        f"{who} got {status_text(response)} for a hidden record, not 404",
    )
    expect_error(response, 404, "child_not_found")


def _found_by_search(caller: Caller, child: Child) -> bool:
    """Whether ``caller`` finds ``child`` by its names."""
    response = caller.search(family_name=child.family_name, given_name=child.given_name)
    expect(response.status_code == 200, f"the search answered {response.status_code}")
    return any(r.get("child_id") == child.child_id for r in response.json().get("results", []))


# -- need to know --------------------------------------------------------------------------------


@scenario(
    "authz.other-la-limited-view",
    owasp=["API1:2023", "API3:2023"],
    asvs=["8.2.2", "8.2.3"],
    severity=Severity.HIGH,
    guards=["need_to_know"],
    needs=["sample"],
)
def other_la_limited_view(ctx: Context) -> None:
    """Another LA's child shows a practitioner no address, carers or services (limited view)."""
    me = ctx.fresh(PRACTITIONER)
    mine = me.account.local_authority
    candidates = [
        row
        for row in ctx.target.sample
        if row.get("local_authority") not in (None, mine)
        and not row.get("shielded")
        and not row.get("household_shielded")
    ]
    if not candidates:
        raise Skip(f"the sample has no unshielded child outside {mine}")
    for row in candidates[:3]:
        response = me.view(str(row["child_id"]))
        if response.status_code == 404:
            continue  # archived since the sample was written: try the next
        body = _body(response) if response.status_code == 200 else {}
        if (body.get("access") or {}).get("relationship") == "involved":
            continue  # the persona's service really works with this child: full is right
        ctx.note(f"practitioner of {mine} viewed a child of {row['local_authority']}")
        _expect_limited(response, f"a practitioner of {mine}")
        return
    raise Skip("no sample child of another LA could be viewed uninvolved")


@scenario(
    "authz.involvement-grants-full-view",
    owasp=["API1:2023", "API3:2023"],
    asvs=["8.2.2", "8.2.3"],
    severity=Severity.HIGH,
    guards=["need_to_know"],
)
def involvement_grants_full_view(ctx: Context) -> None:
    """Another LA's practitioner sees the limited view until their service works with the child."""
    dm = ctx.caller(DATA_MANAGER)
    child = ctx.new_child(dm)
    me = ctx.outsider(PRACTITIONER, dm)
    _expect_limited(me.view(child.child_id), "an uninvolved practitioner of another LA")
    ctx.involve(me, child)
    response = me.view(child.child_id)
    expect(response.status_code == 200, f"the involved view answered {response.status_code}")
    body = _body(response)
    expect(
        (body.get("address") or {}).get("postcode") == child.postcode,
        "the involved practitioner was not shown the child's address",
    )
    orgs = [(s.get("organisation") or {}).get("id") for s in body.get("services") or []]
    expect(
        me.account.organisation_id in orgs,
        "the involved practitioner's own service is missing from the record",
    )


@scenario(
    "authz.self-claimed-access",
    owasp=["API1:2023", "API5:2023"],
    asvs=["8.2.2", "8.2.3"],
    severity=Severity.CRITICAL,
    guards=["claim_confirmation"],
)
def self_claimed_access(ctx: Context) -> None:
    """A practitioner's own claim of an involvement widens no view until the child's LA confirms."""
    dm = ctx.caller(DATA_MANAGER)
    child = ctx.new_child(dm)
    claimer = ctx.outsider(PRACTITIONER, dm)
    colleague = ctx.fresh(PRACTITIONER, like=claimer.account)
    _expect_limited(claimer.view(child.child_id), "an uninvolved practitioner of another LA")
    involvement = ctx.claim(claimer, child.child_id)
    ctx.note(
        f"{claimer.account.username} claimed involvement {involvement} with a child of "
        f"{child.local_authority}, unconfirmed"
    )
    _expect_limited(claimer.view(child.child_id), "the claimer, before the LA confirmed")
    _expect_limited(
        colleague.view(child.child_id), "the claimer's colleague, before the LA confirmed"
    )


@scenario(
    "authz.archived-hidden",
    owasp=["API1:2023"],
    asvs=["8.2.2", "14.2.7"],
    severity=Severity.HIGH,
    guards=["need_to_know"],
    needs=["database"],
)
def archived_hidden(ctx: Context) -> None:
    """An archived record is neither shown nor found by a practitioner of its own LA."""
    child = ctx.new_child()
    me = _same_la_practitioner(ctx, child)
    before = me.view(child.child_id)
    expect(before.status_code == 200, f"the live record answered {before.status_code}")
    children = table("children", column("id", String), column("archived_at", DateTime))
    # The one change the harness commits: archiving its own fictional child, as retention would.
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with ctx.database.begin() as db:
        db.execute(update(children).where(children.c.id == child.child_id).values(archived_at=now))
    _expect_hidden(me.view(child.child_id), "a practitioner of the child's LA")
    expect(not _found_by_search(me, child), "a search found the archived record")


@scenario(
    "authz.deceased-hidden",
    owasp=["API1:2023"],
    asvs=["8.2.2"],
    severity=Severity.HIGH,
    guards=["need_to_know"],
)
def deceased_hidden(ctx: Context) -> None:
    """A record marked deceased is hidden from all but its own LA's data managers."""
    dm = ctx.caller(DATA_MANAGER)
    child = ctx.new_child(dm)
    me = _same_la_practitioner(ctx, child)
    before = me.view(child.child_id)
    expect(before.status_code == 200, f"the live record answered {before.status_code}")
    mark = dm.patch(f"/children/{child.child_id}", json={"deceased": True})
    if mark.status_code == 422 and "deceased" in str(mark.json()):
        raise Skip("the target does not take PATCH /children/{id} {'deceased': true} (422)")
    expect(mark.status_code == 200, f"marking the child deceased answered {mark.status_code}")
    _expect_hidden(me.view(child.child_id), "a practitioner of the child's LA")
    expect(not _found_by_search(me, child), "a search found the deceased child's record")
    other = ctx.caller(DATA_MANAGER, other_than=child.local_authority)
    _expect_hidden(other.view(child.child_id), "a data manager of another LA")
    own = dm.view(child.child_id)
    ctx.note(f"the owning LA's data manager still gets {own.status_code}")


@scenario(
    "authz.other-la-data-manager",
    owasp=["API1:2023", "API3:2023"],
    asvs=["8.2.2", "8.2.3"],
    severity=Severity.HIGH,
    guards=["need_to_know"],
)
def other_la_data_manager(ctx: Context) -> None:
    """A data manager of another LA can neither correct nor shield a child, and sees it limited."""
    dm = ctx.caller(DATA_MANAGER)
    child = ctx.new_child(dm)
    other = ctx.caller(DATA_MANAGER, other_than=child.local_authority)
    renamed = other.patch(f"/children/{child.child_id}", json={"given_name": "Mallory"})
    expect_error(renamed, (403, 404))
    shield = other.post(
        f"/children/{child.child_id}/shield", json={"shielded": True, "decision_note": "harness"}
    )
    expect_error(shield, (403, 404))
    _expect_limited(other.view(child.child_id), "a data manager of another LA")
    after = dm.view(child.child_id)
    expect(after.status_code == 200, f"the owning data manager's view answered {after.status_code}")
    record = _body(after)
    expect(record.get("given_name") == child.given_name, "another LA renamed the child")
    expect(record.get("shielded") is False, "another LA shielded the child")


# -- function level ------------------------------------------------------------------------------


@scenario(
    "authz.practitioner-management-routes",
    owasp=["API5:2023"],
    asvs=["8.2.1"],
    severity=Severity.CRITICAL,
    guards=["function_authorization"],
)
def practitioner_management_routes(ctx: Context) -> None:
    """A practitioner is refused accounts, alerts, audit, exports and shielding (403)."""
    me = ctx.fresh(PRACTITIONER)
    child = ctx.new_child()
    victim = ctx.new_account(PRACTITIONER)
    attempts = {
        "create a system administrator": me.post(
            "/users",
            json={
                "username": f"sec-escalate-{secrets.token_hex(4)}",
                "display_name": f"Eve {fictional_family_name()}",
                "role": SYSADMIN,
                "organisation_id": me.account.organisation_id,
            },
        ),
        "suspend another account": me.patch(f"/users/{victim.id}", json={"status": "suspended"}),
        "list alerts": me.get("/alerts"),
        "acknowledge an alert": me.post("/alerts/1/acknowledge", json={}),
        "read the audit trail": me.get("/audit/events"),
        "list exports": me.get("/exports"),
        "request an export": request_export(
            me,
            {"kind": "local_authority"},
            recipient()[1],  # the private half is thrown away at once
            "harness: a practitioner must not export",
            recipient_name="Harness",
        ),
        "shield a child": me.post(
            f"/children/{child.child_id}/shield", json={"shielded": True, "decision_note": "x"}
        ),
        # Last: if it worked, the role change would end this session and mask the others.
        "promote itself": me.patch(f"/users/{me.account.id}", json={"role": DATA_MANAGER}),
    }
    let_through = [
        f"{what} ({status_text(r)})"
        for what, r in attempts.items()
        if r.status_code != 403 or error_code(r) != "permission_denied"
    ]
    expect(
        not let_through,
        "a practitioner was not refused 403 permission_denied: " + ", ".join(let_through),
    )
    role = me.get("/auth/me").json().get("role")
    expect(role == PRACTITIONER, f"the practitioner's role is now {role!r}")


@scenario(
    "authz.admin-no-child-data",
    owasp=["API5:2023", "API1:2023"],
    asvs=["8.2.1", "8.2.2"],
    severity=Severity.CRITICAL,
    guards=["function_authorization"],
)
def admin_no_child_data(ctx: Context) -> None:
    """A system administrator can neither search for nor read a child's record."""
    admin = ctx.fresh(SYSADMIN)
    child = ctx.new_child()
    attempts = {
        "search": admin.search(family_name=child.family_name, given_name=child.given_name),
        "view": admin.view(child.child_id),
        "subject access pack": admin.get(f"/subject-access/{child.child_id}"),
    }
    let_through = [
        f"{what} ({status_text(r)})"
        for what, r in attempts.items()
        if r.status_code != 403 or error_code(r) != "permission_denied"
    ]
    expect(
        not let_through,
        "a system administrator was not refused 403 permission_denied: " + ", ".join(let_through),
    )


# -- mass assignment and other organisations' objects -------------------------------------------


def _extras(legit: Iterable[str], values: dict[str, Any]) -> list[dict[str, Any]]:
    """One body per protected field the operation does not take, each adding just that field."""
    taken = set(legit)
    return [{name: values[name]} for name in PROTECTED_FIELDS if name not in taken]


def _refused_each(
    caller: Caller,
    method: str,
    path: str,
    base: dict[str, Any],
    extras: list[dict[str, Any]],
    what: str,
) -> None:
    """Send ``base`` plus each extra field; fail unless every one is refused 422."""
    accepted = []
    for extra in extras:
        response = caller.request(method, path, json={**base, **extra})
        if response.status_code != 422:
            accepted.append(f"{next(iter(extra))} ({response.status_code})")
    expect(not accepted, f"{what} took fields it should refuse: {', '.join(accepted)}")


@scenario(
    "authz.mass-assignment",
    owasp=["API3:2023"],
    asvs=["15.3.3"],
    severity=Severity.CRITICAL,
    gap="the request schemas refuse unknown fields; no switch relaxes them",
)
def mass_assignment(ctx: Context) -> None:
    """Role, LA, shield, status, version and id fields are refused in bodies, never applied."""
    admin = ctx.caller(SYSADMIN)
    dm = ctx.fresh(DATA_MANAGER)
    own_la = dm.account.local_authority_id
    values: dict[str, Any] = {
        "role": SYSADMIN,
        "local_authority_id": (own_la or 0) + 1,  # another LA's id
        "shielded": True,
        "status": "suspended",
        "authz_version": 0,
        "id": 1,
    }
    # Account creation: a refused body must not leave the account behind.
    username = f"sec-mass-{secrets.token_hex(4)}"
    account = {
        "username": username,
        "display_name": f"Ada {fictional_family_name()}",
        "role": PRACTITIONER,
        "organisation_id": dm.account.organisation_id,
    }
    _refused_each(admin, "POST", "/users", account, _extras(account, values), "account creation")
    created = admin.post("/users", json=account)
    expect(
        created.status_code == 201,
        f"creating {username} cleanly answered {status_text(created)}: "
        "a refused body left the account behind",
    )
    user_id = created.json()["id"]
    before = admin.patch(f"/users/{user_id}", json={})
    expect(before.status_code == 200, f"reading the account back answered {before.status_code}")
    _refused_each(
        admin,
        "PATCH",
        f"/users/{user_id}",
        {},
        _extras(("role", "status"), values),
        "account correction",
    )
    after = admin.patch(f"/users/{user_id}", json={})
    expect(after.json() == before.json(), f"the account changed: {before.json()} -> {after.json()}")
    # Children: creation, correction and search, by a data manager.
    family = fictional_family_name()
    new_child = {
        "given_name": "Ada",
        "family_name": family,
        "date_of_birth": "2016-04-01",
        "gender": "female",
        "address": fictional_address(),
    }
    _refused_each(dm, "POST", "/children", new_child, _extras((), values), "child creation")
    search = dm.search(family_name=family, given_name="Ada")
    expect(
        search.status_code == 200 and search.json().get("count") == 0,
        f"a refused child creation left a record behind ({search.status_code} "
        f"{search.json().get('count') if search.status_code == 200 else ''})",
    )
    child = ctx.new_child(dm)
    _refused_each(
        dm,
        "PATCH",
        f"/children/{child.child_id}",
        {"given_name": "Mallory"},
        _extras((), values),
        "child correction",
    )
    view = dm.view(child.child_id)
    expect(view.status_code == 200, f"the data manager's view answered {view.status_code}")
    record = _body(view)
    expect(record.get("given_name") == child.given_name, "a refused correction renamed the child")
    expect(record.get("shielded") is False, "a refused correction shielded the child")
    expect(
        (record.get("local_authority") or {}).get("code") == child.local_authority,
        "a refused correction moved the child to another LA",
    )
    _refused_each(
        dm,
        "POST",
        "/children/search",
        {"family_name": child.family_name, "given_name": child.given_name},
        _extras((), values),
        "a search",
    )


@scenario(
    "authz.involvement-bola",
    owasp=["API1:2023"],
    asvs=["8.2.2"],
    severity=Severity.HIGH,
    gap="an involvement's owner is checked in the service; no switch turns that off",
)
def involvement_bola(ctx: Context) -> None:
    """A practitioner of another organisation can neither change nor end someone's involvement."""
    child = ctx.new_child()
    owner = ctx.fresh(PRACTITIONER)
    involvement = ctx.involve(owner, child)
    intruder = ctx.fresh(OTHER_PRACTITIONER)
    if intruder.account.organisation_id == owner.account.organisation_id:
        raise Skip("the personas file has no practitioners in two organisations")
    changed = intruder.patch(f"/involvements/{involvement}", json={"lead_professional": True})
    expect_error(changed, (403, 404))
    ended = intruder.post(f"/involvements/{involvement}/end", json={})
    expect_error(ended, (403, 404))
    view = owner.view(child.child_id)
    expect(view.status_code == 200, f"the owner's view answered {view.status_code}")
    mine = [s for s in _body(view).get("services") or [] if s.get("involvement_id") == involvement]
    expect(mine, "the owner's involvement is missing from the record")
    expect(mine[0].get("lead_professional") is False, "another organisation made itself lead")
    expect(mine[0].get("ended_on") is None, "another organisation ended the involvement")


def _no_child_read(caller: Caller, child: Child, when: str) -> None:
    """Fail unless ``caller`` is refused the child's record."""
    response = caller.view(child.child_id)
    expect(
        response.status_code in (401, 403, 404),
        f"{caller.account.username} read a child's record {when}: {status_text(response)}",
    )


@scenario(
    "authz.admin-self-escalation",
    owasp=["API5:2023", "API3:2023"],
    asvs=["8.2.1", "8.2.2"],
    severity=Severity.CRITICAL,
    guards=["admin_separation"],
    # Two logins of one account wait for the next one-time code step: run beside the others.
    background=True,
)
def admin_self_escalation(ctx: Context) -> None:
    """An administrator cannot give itself, or an account it makes, child data unconfirmed."""
    dm = ctx.manager()
    child = ctx.new_child(dm, shielded=True)
    # A throwaway administrator in the data manager's own organisation: promoted, it would
    # read the child, so a refusal below is the separation and not a wrong authority.
    mine = ctx.new_account(SYSADMIN, like=dm.account)
    admin = ctx.login(mine)
    escalate = admin.patch(f"/users/{mine.id}", json={"role": DATA_MANAGER})
    ctx.note(f"the administrator's promotion of itself answered {status_text(escalate)}")
    expect_error(escalate, 403)
    _no_child_read(ctx.login(mine), child, "after promoting itself")

    made = ctx.new_account(DATA_MANAGER, like=dm.account, confirm=False)
    puppet = ctx.login(made)
    _no_child_read(puppet, child, "as a data manager an administrator created, unconfirmed")

    moved = ctx.new_account("national_auditor", like=dm.account)
    rerole = ctx.admin().patch(f"/users/{moved.id}", json={"role": DATA_MANAGER})
    if rerole.status_code != 200:
        raise Skip(f"the administrator cannot change an auditor's role: {status_text(rerole)}")
    rerolled = ctx.login(moved)
    _no_child_read(rerolled, child, "after an administrator made it a data manager, unconfirmed")

    # Confirmed by a data manager of the authority, the role works: the refusals were the wait.
    ctx.confirm_role(made)
    confirmed = puppet.view(child.child_id)
    expect(
        confirmed.status_code == 200,
        f"a confirmed data manager cannot read its authority's child: {status_text(confirmed)}",
    )
    ctx.note("an administrator-made data manager read the child only after an LA confirmation")
