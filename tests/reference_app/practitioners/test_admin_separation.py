"""Administrators never hold child data: nobody changes their own account, and a child-data role
given by anyone but a data manager of the account's LA waits for one to confirm it."""

from __future__ import annotations

from typing import Any

from httpx import Response
from sqlalchemy import select

from reference_app.access.permissions import CHILD_DATA_ROLES, Role
from reference_app.audit.models import AuditEvent
from reference_app.audit.tags import EventTag
from reference_app.kit.controls import Control
from reference_app.practitioners import service
from reference_app.practitioners.models import Practitioner
from reference_app.services.models import OrganisationKind
from tests.fixtures.stale import principal_of, read, refused, stale_call
from tests.fixtures.world import LA_A, LA_B, Account, World, strict_world, unique_name

USERS = "/api/v1/users"
PASSWORD = "a long enough passphrase"


def _create(
    w: World, role: Role, la: str = LA_A, admin: dict[str, str] | None = None
) -> dict[str, Any]:
    kind = OrganisationKind.LA_MANAGEMENT_TEAM if role is Role.LA_DATA_MANAGER else None
    org = w.orgs[(la, kind or OrganisationKind.GP_PRACTICE)]
    made = w.client.post(
        USERS,
        json={
            "username": f"made.{unique_name().lower()}",
            "display_name": "Made Account",
            "role": role.value,
            "organisation_id": org,
        },
        headers=admin or w.headers(Role.SYSTEM_ADMINISTRATOR),
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def _log_in(w: World, created: dict[str, Any], role: Role, la: str = LA_A) -> dict[str, str]:
    """Enrol (or take the handed-out credentials) and log in; return the session's headers."""
    password, secret = created.get("password"), created.get("totp_secret")
    if password is None:
        enrolled = w.client.post(
            "/api/v1/auth/enrol",
            json={
                "username": created["username"],
                "enrolment_code": created["enrolment_code"],
                "password": PASSWORD,
            },
        )
        assert enrolled.status_code == 200, enrolled.text
        password, secret = PASSWORD, enrolled.json()["totp_secret"]
    account = Account(created["id"], created["username"], password, secret, role, la, 0)
    return w.login(account)


def _view(w: World, headers: dict[str, str], child_id: str) -> Response:
    return w.client.get(
        f"/api/v1/children/{child_id}", headers={**headers, "X-Access-Reason": "safeguarding"}
    )


def _confirm(w: World, practitioner_id: int, headers: dict[str, str]) -> Response:
    return w.client.post(f"{USERS}/{practitioner_id}/confirm-role", headers=headers)


def _row(w: World, practitioner_id: int) -> Practitioner:
    with w.ctx.sessions() as db:
        row = db.get(Practitioner, practitioner_id)
        assert row is not None
        db.expunge(row)
        return row


def test_child_data_roles_are_the_practitioners_and_data_managers() -> None:
    assert Role.LA_DATA_MANAGER in CHILD_DATA_ROLES
    assert Role.SOCIAL_CARE_PRACTITIONER in CHILD_DATA_ROLES  # an override holder
    assert Role.VOLUNTARY_PRACTITIONER in CHILD_DATA_ROLES
    assert Role.SYSTEM_ADMINISTRATOR not in CHILD_DATA_ROLES
    assert Role.NATIONAL_AUDITOR not in CHILD_DATA_ROLES


def test_nobody_changes_their_own_role_or_status(world: World) -> None:
    admin = world.new_account(Role.SYSTEM_ADMINISTRATOR)
    headers = world.login(admin)
    for change in ({"role": "la_data_manager"}, {"status": "suspended"}):
        refused = world.client.patch(f"{USERS}/{admin.id}", json=change, headers=headers)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "own_account_change"
    row = _row(world, admin.id)
    assert (row.role, row.status) == ("system_administrator", "active")
    assert world.client.get("/api/v1/auth/me", headers=headers).status_code == 200


def test_an_administrator_made_data_manager_reads_nothing_until_its_la_confirms(
    world: World,
) -> None:
    child = world.child(LA_A, shielded=True)
    created = _create(world, Role.LA_DATA_MANAGER)
    assert created["role_pending"] is True
    headers = _log_in(world, created, Role.LA_DATA_MANAGER)
    me = world.client.get("/api/v1/auth/me", headers=headers).json()
    assert me["role_pending"] is True
    refused = _view(world, headers, child.id)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    # Another LA's data manager is told nothing; an administrator holds no confirmation.
    other_la = _confirm(world, created["id"], world.headers(Role.LA_DATA_MANAGER, LA_B))
    assert other_la.status_code == 404
    by_admin = _confirm(world, created["id"], world.headers(Role.SYSTEM_ADMINISTRATOR))
    assert by_admin.status_code == 403
    confirmer = world.accounts[(Role.LA_DATA_MANAGER, LA_A)]
    confirmed = _confirm(world, created["id"], world.headers(Role.LA_DATA_MANAGER))
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["role_pending"] is False
    assert _view(world, headers, child.id).status_code == 200
    again = _confirm(world, created["id"], world.headers(Role.LA_DATA_MANAGER))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "role_not_pending"
    row = _row(world, created["id"])
    assert row.role_confirmed_by == confirmer.id
    assert row.created_by == world.accounts[(Role.SYSTEM_ADMINISTRATOR, LA_A)].id
    with world.ctx.sessions() as db:
        actors = db.scalars(
            select(AuditEvent.actor_id).where(AuditEvent.tag == EventTag.USER_ROLE_CONFIRMED)
        ).all()
    assert confirmer.id in actors


def test_an_administrator_re_role_into_child_data_waits_for_confirmation(world: World) -> None:
    auditor = world.new_account(Role.NATIONAL_AUDITOR)
    changed = world.client.patch(
        f"{USERS}/{auditor.id}",
        json={"role": "health_practitioner"},
        headers=world.headers(Role.SYSTEM_ADMINISTRATOR),
    )
    assert changed.status_code == 200
    assert changed.json()["role_pending"] is True
    headers = world.login(auditor)
    search = world.client.post(
        "/api/v1/children/search",
        json={"family_name": "Nobody", "given_name": "Noone"},
        headers=headers,
    )
    assert search.status_code == 403
    row = _row(world, auditor.id)
    assert row.role_granted_by == world.accounts[(Role.SYSTEM_ADMINISTRATOR, LA_A)].id


def test_roles_without_child_data_take_effect_at_once(world: World) -> None:
    created = _create(world, Role.NATIONAL_AUDITOR)
    assert created["role_pending"] is False


def test_a_data_manager_cannot_confirm_itself(world: World) -> None:
    dm = world.new_account(Role.LA_DATA_MANAGER)
    refused = _confirm(world, dm.id, world.login(dm))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "own_account_change"


def test_with_admin_separation_off_an_administrator_promotes_itself(world: World) -> None:
    """On: test_nobody_changes_their_own_role_or_status,
    test_an_administrator_made_data_manager_reads_nothing_until_its_la_confirms."""
    with strict_world(world, off=[Control.ADMIN_SEPARATION]) as w:
        child = w.child(LA_A, shielded=True)
        admin = w.new_account(Role.SYSTEM_ADMINISTRATOR, LA_A, OrganisationKind.LA_MANAGEMENT_TEAM)
        promoted = w.client.patch(
            f"{USERS}/{admin.id}", json={"role": "la_data_manager"}, headers=w.login(admin)
        )
        assert promoted.status_code == 200
        w.clock.advance(31)
        assert _view(w, w.login(admin), child.id).status_code == 200
        other_admin = w.login(w.new_account(Role.SYSTEM_ADMINISTRATOR))
        created = _create(w, Role.LA_DATA_MANAGER, admin=other_admin)
        assert created["role_pending"] is False
        w.clock.advance(31)
        assert _view(w, _log_in(w, created, Role.LA_DATA_MANAGER), child.id).status_code == 200


def test_a_role_confirmed_since_it_was_read_is_not_confirmed_again(world: World) -> None:
    created = _create(world, Role.LA_DATA_MANAGER)
    late = principal_of(world, world.new_account(Role.LA_DATA_MANAGER, LA_A))
    with stale_call(world) as call:
        seen = read(call, lambda c: c.db.get(Practitioner, created["id"]))  # held: mapped weakly
        assert seen.role_pending is True
        other = world.login(world.new_account(Role.LA_DATA_MANAGER, LA_A))
        assert _confirm(world, created["id"], other).status_code == 200
        confirm = service.confirm_role
        assert refused(call, confirm, late, created["id"]) == (409, "state_changed")
    query = select(AuditEvent).where(AuditEvent.tag == EventTag.USER_ROLE_CONFIRMED.value)
    with world.ctx.sessions() as db:
        confirmed = [
            e for e in db.scalars(query) if f'"practitioner_id":{created["id"]}' in e.details
        ]
    assert len(confirmed) == 1
